//! The on-disk asset cache: a second play of the same URL is served from disk, offline.
//!
//! Layout under the cache root (everything an asset owns lives in its own directory):
//!
//! ```text
//! <root>/<asset_id>/lock              leases hold it shared, eviction takes it exclusive
//! <root>/<asset_id>/writer.lock       held exclusive by the one writer of the asset
//! <root>/<asset_id>/used              its mtime is the last-used time (LRU eviction)
//! <root>/<asset_id>/file/body         a complete file, byte for byte; immutable once in place
//! <root>/<asset_id>/file/meta         length + validators of `body` (checksummed)
//! <root>/<asset_id>/file/part         data of a partial download (sparse, random access)
//! <root>/<asset_id>/file/part.index   covered ranges of `part` + validators (checksummed)
//! <root>/<asset_id>/file/*.tmp        temp names for atomic replacement of meta and index
//! <root>/.trash-*                     an asset being evicted (renamed away, then removed)
//! ```
//!
//! Concurrency model: any number of sessions, in this process or others, may lease an
//! asset; exactly one of them at a time can be its writer. Locks are `flock`-style file
//! locks, so a killed process releases them with its last descriptor: no decision here is
//! ever made from the mere existence of a file.

// The session driver is the user of the crate-internal API; until it is wired in, only the
// tests call it.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::platform::{self, same_file, sync_dir};
use crate::range_set::RangeSet;
use crate::{lock, FileError};

const LOCK: &str = "lock";
const WRITER_LOCK: &str = "writer.lock";
const USED: &str = "used";
const FILE_DIR: &str = "file";
const BODY: &str = "body";
const META: &str = "meta";
const META_TMP: &str = "meta.tmp";
const PART: &str = "part";
const INDEX: &str = "part.index";
const INDEX_TMP: &str = "part.index.tmp";
const TRASH_PREFIX: &str = ".trash-";
const PROBE_PREFIX: &str = ".probe-";

const META_MAGIC: &[u8; 8] = b"KFMETA01";
const INDEX_MAGIC: &[u8; 8] = b"KFPIDX01";
const CHECKSUM_LEN: usize = 32;
/// Meta and index files are tiny; anything larger is not ours and is not read whole.
const MAX_RECORD_LEN: u64 = 16 << 20;
/// A lease retries when eviction removes the directory between its open and its lock;
/// more than a few rounds means something else keeps deleting the directory.
const LEASE_ATTEMPTS: usize = 8;

/// Unique suffixes for probe and trash names within this process (the pid separates processes).
static NAME_SEQ: AtomicU64 = AtomicU64::new(0);

/// Stable id of an asset: the lowercase hex SHA-256 (64 characters, only `[0-9a-f]`) of
/// its key.
///
/// The same key gives the same id on every run, platform and compiler, so the id names the
/// asset's directory in the cache. Being hex, it can never escape the cache root.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AssetId(String);

impl AssetId {
    /// The 64 lowercase hex characters of the id.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of an arbitrary key.
    pub(crate) fn from_key(key: &str) -> AssetId {
        AssetId(to_hex(&Sha256::digest(key.as_bytes())))
    }

    /// The id of a URL, keyed by its normalized form.
    ///
    /// Parsing already lowercases scheme and host and drops a default port; on top of that
    /// the fragment (never sent to the server) and the userinfo (credentials must not end up
    /// deciding, or being derivable from, cache names) are removed.
    pub(crate) fn from_url(url: &url::Url) -> AssetId {
        let mut key = url.clone();
        key.set_fragment(None);
        // Both fail only for URLs that cannot carry credentials, so there is nothing to strip.
        let _ = key.set_username("");
        let _ = key.set_password(None);
        AssetId::from_key(key.as_str())
    }

    /// Recognizes an asset directory name.
    fn parse(name: &str) -> Option<AssetId> {
        let valid =
            name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| AssetId(name.to_owned()))
    }
}

impl fmt::Display for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// A handle to an on-disk asset cache rooted at one directory.
///
/// Cheap to clone (an `Arc` inside), `Send` and `Sync`. Clones share the in-process lease
/// registry; several caches opened on the same root (in this process or in others) stay
/// correct through file locks, so eviction never removes an asset someone has leased.
#[derive(Clone, Debug)]
pub struct AssetCache {
    shared: Arc<Shared>,
    max_bytes: Option<u64>,
}

#[derive(Debug)]
struct Shared {
    root: PathBuf,
    /// Lease counts per asset in this process.
    pins: Mutex<HashMap<AssetId, usize>>,
    /// Serializes eviction passes of this process, so two commits do not scan at once.
    evicting: Mutex<()>,
}

impl AssetCache {
    /// Opens (creating it and its parents if needed) the cache rooted at `root`.
    ///
    /// The root is checked by creating and removing a file inside it, so a cache that
    /// opens can store assets. No size limit is set; see [`AssetCache::with_max_bytes`].
    ///
    /// # Errors
    ///
    /// [`FileError::Cache`] if the root cannot be created, is not a directory, or a file
    /// cannot be created and removed inside it.
    pub fn open(root: impl AsRef<Path>) -> Result<AssetCache, FileError> {
        let root = root.as_ref().to_path_buf();
        fs::create_dir_all(&root)
            .map_err(|e| cache_error("cannot create cache root", &root, &e))?;
        let md =
            fs::metadata(&root).map_err(|e| cache_error("cannot stat cache root", &root, &e))?;
        if !md.is_dir() {
            return Err(FileError::Cache(format!(
                "cache root {} is not a directory",
                root.display()
            )));
        }
        let probe = root.join(unique_name(PROBE_PREFIX, "probe"));
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .map_err(|e| cache_error("cannot create a file in cache root", &root, &e))?;
        fs::remove_file(&probe)
            .map_err(|e| cache_error("cannot remove a file from cache root", &root, &e))?;
        Ok(AssetCache {
            shared: Arc::new(Shared {
                root,
                pins: Mutex::new(HashMap::new()),
                evicting: Mutex::new(()),
            }),
            max_bytes: None,
        })
    }

    /// Returns this handle with a size limit of `max_bytes` for everything under the root.
    ///
    /// Whenever the total exceeds the limit (checked right here and after every completed
    /// download committed through this handle), least-recently-leased assets are removed
    /// until it fits. Leased assets, in this process or another, are never removed, so the
    /// total can stay above the limit while they are in use. Eviction is best effort: an
    /// asset that cannot be removed is skipped silently. Other clones keep their own limit.
    #[must_use]
    pub fn with_max_bytes(mut self, max_bytes: u64) -> AssetCache {
        self.max_bytes = Some(max_bytes);
        self.evict();
        self
    }

    /// The root directory of the cache, as given to [`AssetCache::open`].
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// The directory holding everything of one asset: `<root>/<id>`.
    #[must_use]
    pub fn asset_dir(&self, id: &AssetId) -> PathBuf {
        self.shared.root.join(id.as_str())
    }

    /// Where the complete body of an asset lives once downloaded: `<root>/<id>/file/body`.
    ///
    /// A file at this path is always a complete download, byte for byte; it never exists
    /// half-written.
    #[must_use]
    pub fn body_path(&self, id: &AssetId) -> PathBuf {
        self.asset_dir(id).join(FILE_DIR).join(BODY)
    }

    /// Pins the asset `id` until the returned lease is dropped and records now as its
    /// last-used time. Creates the asset directory if needed.
    pub(crate) fn lease(&self, id: &AssetId) -> Result<AssetLease, FileError> {
        // Pin in-process before taking the file lock: an eviction pass of this process
        // that looks between the two sees the pin and skips the asset.
        let pin = Pin::new(self.clone(), id.clone());
        let dir = self.asset_dir(id);
        let lock = lock_asset_shared(&dir).map_err(|e| cache_error("cannot lease", &dir, &e))?;
        touch(&dir.join(USED)).map_err(|e| cache_error("cannot mark as used", &dir, &e))?;
        Ok(AssetLease {
            inner: Arc::new(LeaseInner {
                dir,
                _lock: lock,
                pin,
            }),
        })
    }

    /// Bytes of all files under the root (complete bodies, partial downloads and the small
    /// bookkeeping files). Files that vanish during the walk are not counted.
    #[must_use]
    pub fn total_bytes(&self) -> u64 {
        tree_size(&self.shared.root)
    }

    /// Removes least-recently-used unleased assets until the total fits `max_bytes`.
    /// Best effort: errors skip the asset at hand and never reach the caller, because a
    /// failed eviction must not fail the download that triggered it.
    fn evict(&self) {
        let Some(max) = self.max_bytes else {
            return;
        };
        let _serial = lock(&self.shared.evicting);
        let Ok(entries) = fs::read_dir(&self.shared.root) else {
            return;
        };
        let mut total = 0u64;
        let mut candidates = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let name = entry.file_name();
            let name = name.to_str().unwrap_or("");
            if let Some(id) = AssetId::parse(name).filter(|_| is_dir) {
                let size = tree_size(&path);
                total = total.saturating_add(size);
                let used = fs::metadata(path.join(USED))
                    .and_then(|m| m.modified())
                    .unwrap_or(UNIX_EPOCH);
                candidates.push((used, id, size));
            } else if is_dir && name.starts_with(TRASH_PREFIX) {
                // Left behind by an eviction that was killed halfway; nothing can use it.
                let _ = fs::remove_dir_all(&path);
                total = total.saturating_add(tree_size(&path));
            } else {
                total = total.saturating_add(tree_size(&path));
            }
        }
        if total <= max {
            return;
        }
        candidates.sort();
        for (_, id, size) in candidates {
            if total <= max {
                break;
            }
            if self.try_remove_asset(&id) {
                total = total.saturating_sub(size);
            }
        }
    }

    /// Removes one asset unless it is leased here or in another process.
    fn try_remove_asset(&self, id: &AssetId) -> bool {
        // Held until the directory is renamed away, so no lease of this process can
        // start in between (a lease pins before it locks).
        let pins = lock(&self.shared.pins);
        if pins.contains_key(id) {
            return false;
        }
        let dir = self.asset_dir(id);
        let lock_path = dir.join(LOCK);
        let Ok(file) = open_rw(&lock_path) else {
            return false;
        };
        if file.try_lock().is_err() || !same_file(&file, &lock_path) {
            return false;
        }
        // Renaming is atomic for other processes: a lease that was waiting for our lock
        // finds its lock file no longer at the asset's path and starts over on a fresh
        // directory, instead of racing the recursive delete.
        let trash = self
            .shared
            .root
            .join(unique_name(TRASH_PREFIX, id.as_str()));
        if fs::rename(&dir, &trash).is_err() {
            return false;
        }
        drop(file);
        drop(pins);
        // Unlinking leaves mapped bodies of earlier readers intact.
        let _ = fs::remove_dir_all(&trash);
        true
    }
}

/// One in-process pin of an asset; unpins on drop (also when a lease fails halfway).
#[derive(Debug)]
struct Pin {
    cache: AssetCache,
    id: AssetId,
}

impl Pin {
    fn new(cache: AssetCache, id: AssetId) -> Pin {
        *lock(&cache.shared.pins).entry(id.clone()).or_insert(0) += 1;
        Pin { cache, id }
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut pins = lock(&self.cache.shared.pins);
        if let Some(count) = pins.get_mut(&self.id) {
            *count -= 1;
            if *count == 0 {
                pins.remove(&self.id);
            }
        }
    }
}

/// Length and validators of a complete body (or of the file a partial download belongs to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CachedMeta {
    pub len: u64,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// Pins an asset while alive: eviction, in this process or another, never removes a leased
/// asset. Dropping the lease (and every [`PartialFile`] begun from it) unpins it.
#[derive(Clone)]
pub(crate) struct AssetLease {
    inner: Arc<LeaseInner>,
}

#[derive(Debug)]
struct LeaseInner {
    dir: PathBuf,
    /// Shared lock on `<id>/lock`: what other processes' eviction sees.
    _lock: File,
    /// What this process's eviction sees.
    pin: Pin,
}

impl LeaseInner {
    fn cache(&self) -> &AssetCache {
        &self.pin.cache
    }
}

impl AssetLease {
    /// The leased asset.
    #[cfg(test)]
    pub(crate) fn id(&self) -> &AssetId {
        &self.inner.pin.id
    }

    /// The complete body, memory-mapped (zero-copy), with its meta; `None` if there is no
    /// usable complete body.
    ///
    /// A body whose meta is missing or corrupt, or whose length differs from the meta, is
    /// unlinked (so it gets refetched) unless a writer of the asset is active right now;
    /// `None` is returned either way. A commit racing this call also yields `None`.
    /// Whether a complete body is in place (a cheap check; `complete_body` verifies it).
    pub(crate) fn has_complete_body(&self) -> bool {
        // A body only ever appears by rename after it was synced complete.
        self.inner.dir.join(FILE_DIR).join(BODY).is_file()
    }

    /// The complete body, memory-mapped (zero-copy), with its meta; `None` if there is no
    /// usable complete body (see the checks above).
    pub(crate) fn complete_body(&self) -> Option<(Bytes, CachedMeta)> {
        let file_dir = self.inner.dir.join(FILE_DIR);
        let body_path = file_dir.join(BODY);
        let meta_path = file_dir.join(META);
        // Meta is read before and after opening the body. A commit unlinks the old body,
        // then replaces meta, then renames the new body in: a body opened between two equal
        // reads of meta is therefore the body that meta describes.
        let before = read_meta(&meta_path);
        let body = File::open(&body_path).ok()?;
        let body_len = body.metadata().ok()?.len();
        let after = read_meta(&meta_path);
        if before != after {
            return None;
        }
        match after {
            MetaState::Valid(meta) if meta.len == body_len => {
                if body_len == 0 {
                    return Some((Bytes::new(), meta));
                }
                let map = map_body(&body).ok()?;
                (u64::try_from(map.len()) == Ok(meta.len)).then(|| (Bytes::from_owner(map), meta))
            }
            MetaState::Unreadable => None,
            MetaState::Valid(_) | MetaState::Missing | MetaState::Corrupt => {
                self.discard_damaged_body(&body, &body_path);
                None
            }
        }
    }

    /// Unlinks a body that does not match its meta, unless a writer is active: then the
    /// name may already point at the writer's fresh body.
    fn discard_damaged_body(&self, body: &File, body_path: &Path) {
        let Ok(writer) = open_rw(&self.inner.dir.join(WRITER_LOCK)) else {
            return;
        };
        if writer.try_lock().is_ok() && same_file(body, body_path) {
            let _ = fs::remove_file(body_path);
        }
    }

    /// Claims the writer role for this asset.
    ///
    /// Returns `Ok(None)` when another session or process is the writer (then stream
    /// without caching). The claim is an exclusive lock on `<id>/writer.lock`, held by the
    /// returned [`PartialFile`] and released with it (or with a killed process).
    ///
    /// On success, the previous run's partial data is resumed if its index is valid (it
    /// parses and checksums, has meta, every range lies within `meta.len`, and the data
    /// file reaches the furthest covered byte); otherwise the partial data and index are
    /// discarded.
    ///
    /// # Errors
    ///
    /// [`FileError::Cache`] if the lock or partial files cannot be opened, read or repaired.
    pub(crate) fn begin_write(&self) -> Result<Option<Arc<PartialFile>>, FileError> {
        let writer_path = self.inner.dir.join(WRITER_LOCK);
        let writer =
            open_rw(&writer_path).map_err(|e| cache_error("cannot open", &writer_path, &e))?;
        match writer.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(e)) => {
                return Err(cache_error("cannot lock", &writer_path, &e));
            }
        }
        let file_dir = self.inner.dir.join(FILE_DIR);
        PartialFile::open(Arc::clone(&self.inner), writer)
            .map(|p| Some(Arc::new(p)))
            .map_err(|e| cache_error("cannot open partial download in", &file_dir, &e))
    }
}

/// A partial download shared by the downloader thread (writes) and reader threads (reads).
///
/// Reads and writes of the data file run concurrently; only `reset` and `commit` exclude
/// them. Coverage updates are O(1) for sequential appends and are kept in memory until
/// [`PartialFile::checkpoint`]. Dropping it keeps the partial data on disk for the next
/// run, as of the last checkpoint (call `checkpoint` before dropping to keep more).
pub(crate) struct PartialFile {
    lease: Arc<LeaseInner>,
    file_dir: PathBuf,
    /// The data file and whether it has become the body. Read-locked for I/O on the data,
    /// write-locked by `reset` and `commit`, which must not interleave with that I/O.
    gate: RwLock<Gate>,
    /// Serializes index writes (they share one temp name).
    persist: Mutex<()>,
    state: Mutex<Coverage>,
    /// Exclusive lock on `<id>/writer.lock`: the writer role.
    _writer: File,
}

struct Gate {
    data: File,
    committed: bool,
}

struct Coverage {
    meta: Option<CachedMeta>,
    ranges: RangeSet,
}

impl Coverage {
    fn is_complete(&self) -> bool {
        match &self.meta {
            None => false,
            Some(meta) if meta.len == 0 => self.ranges.0.is_empty(),
            Some(meta) => matches!(self.ranges.0.as_slice(), [r] if *r == (0..meta.len)),
        }
    }
}

impl PartialFile {
    fn open(lease: Arc<LeaseInner>, writer: File) -> io::Result<PartialFile> {
        let file_dir = lease.dir.join(FILE_DIR);
        fs::create_dir_all(&file_dir)?;
        // We hold the writer lock, so temp files present now belong to a killed writer.
        remove_if_exists(&file_dir.join(INDEX_TMP))?;
        remove_if_exists(&file_dir.join(META_TMP))?;
        let data = open_rw(&file_dir.join(PART))?;
        let data_len = data.metadata()?.len();
        let resumed = read_record(&file_dir.join(INDEX))
            .ok()
            .flatten()
            .and_then(|bytes| decode_index(&bytes))
            .filter(|(meta, ranges)| {
                let furthest = ranges.0.last().map_or(0, |r| r.end);
                furthest <= meta.len && furthest <= data_len
            });
        let (meta, ranges) = match resumed {
            Some((meta, ranges)) => (Some(meta), ranges),
            None => {
                // Never mapped, so truncating the part file in place is safe.
                data.set_len(0)?;
                remove_if_exists(&file_dir.join(INDEX))?;
                (None, RangeSet::default())
            }
        };
        Ok(PartialFile {
            lease,
            file_dir,
            gate: RwLock::new(Gate {
                data,
                committed: false,
            }),
            persist: Mutex::new(()),
            state: Mutex::new(Coverage { meta, ranges }),
            _writer: writer,
        })
    }

    /// The validators the partial data belongs to: from the previous run's index, or as
    /// set by [`PartialFile::reset`]. `None` for fresh partial data.
    pub(crate) fn meta(&self) -> Option<CachedMeta> {
        lock(&self.state).meta.clone()
    }

    /// Covered ranges: sorted, merged (no two touch) and non-empty.
    pub(crate) fn covered(&self) -> Vec<Range<u64>> {
        lock(&self.state).ranges.0.clone()
    }

    /// If `pos` lies inside a covered range, that range's end.
    pub(crate) fn covered_end(&self, pos: u64) -> Option<u64> {
        lock(&self.state).ranges.covered_end(pos)
    }

    /// The start of the first covered range that starts strictly after `pos`.
    pub(crate) fn next_covered_start(&self, pos: u64) -> Option<u64> {
        lock(&self.state).ranges.next_start_after(pos)
    }

    /// Forgets all coverage, truncates the data, records `meta`, and persists the empty
    /// index durably before the truncation (so a crash never pairs old bytes with new
    /// meta). A no-op returning `Ok` after commit.
    ///
    /// # Errors
    ///
    /// I/O errors writing the index or truncating the data; coverage is then empty in
    /// memory and on disk at least as far as anything is persisted.
    pub(crate) fn reset(&self, meta: CachedMeta) -> io::Result<()> {
        self.start_over(Some(meta))
    }

    /// Forgets the partial data of an older version: no coverage, no meta, in memory
    /// and on disk. Nothing can be committed until [`PartialFile::reset`] records a version.
    pub(crate) fn discard(&self) -> io::Result<()> {
        self.start_over(None)
    }

    /// Drops all coverage, then records `meta` (or none) durably and empties the data.
    fn start_over(&self, meta: Option<CachedMeta>) -> io::Result<()> {
        let gate = write(&self.gate);
        if gate.committed {
            return Ok(());
        }
        // Memory first: whatever fails below, no old coverage is claimed any more.
        {
            let mut state = lock(&self.state);
            state.meta = None;
            state.ranges = RangeSet::default();
        }
        let _persist = lock(&self.persist);
        self.write_index(meta.as_ref(), &[])?;
        sync_dir(&self.file_dir)?;
        lock(&self.state).meta = meta;
        gate.data.set_len(0)
    }

    /// Writes `data` at `offset` and marks it covered in memory (persisted by the next
    /// [`PartialFile::checkpoint`]). No fsync. A no-op returning `Ok` after commit.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the write would reach past a known `meta.len` (or overflow);
    /// I/O errors of the write (then nothing new is marked covered).
    pub(crate) fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let end = u64::try_from(data.len())
            .ok()
            .and_then(|len| offset.checked_add(len))
            .ok_or_else(|| invalid_input("write past the end of the address space"))?;
        let gate = read(&self.gate);
        if gate.committed {
            return Ok(());
        }
        // Meta only changes under the write gate, so this check holds for the write below.
        if let Some(meta) = &lock(&self.state).meta {
            if end > meta.len {
                return Err(invalid_input("write past the recorded length"));
            }
        }
        platform::write_all_at(&gate.data, data, offset)?;
        lock(&self.state).ranges.insert(offset..end);
        Ok(())
    }

    /// Copies covered bytes at `offset` into `buf`: `min(buf.len(), covered_end - offset)`
    /// bytes, or 0 if `offset` is not covered. Keeps working after commit.
    ///
    /// # Errors
    ///
    /// I/O errors reading the data file.
    pub(crate) fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let gate = read(&self.gate);
        let Some(end) = self.covered_end(offset) else {
            return Ok(0);
        };
        let n = usize::try_from(end - offset).map_or(buf.len(), |n| n.min(buf.len()));
        platform::read_exact_at(&gate.data, &mut buf[..n], offset).map_err(|e| match e.kind() {
            // Never let a missing byte look like the end of the file to a decoder.
            io::ErrorKind::UnexpectedEof => {
                io::Error::other("cache data file is shorter than its coverage")
            }
            _ => e,
        })?;
        Ok(n)
    }

    /// Persists the coverage: syncs the data first, then writes the index to a temp name,
    /// fsyncs it and renames it over the index. A crash can lose coverage recorded since,
    /// but the index never claims bytes that are not on disk. A no-op after commit.
    ///
    /// # Errors
    ///
    /// I/O errors syncing the data or writing the index (the previous index stays).
    pub(crate) fn checkpoint(&self) -> io::Result<()> {
        let gate = read(&self.gate);
        if gate.committed {
            return Ok(());
        }
        let _persist = lock(&self.persist);
        // Snapshot before syncing: every range in it was written before it was recorded.
        let (meta, ranges) = {
            let state = lock(&self.state);
            (state.meta.clone(), state.ranges.0.clone())
        };
        gate.data.sync_data()?;
        // No directory fsync: losing this rename leaves the previous index, whose coverage
        // is a subset of this one under the same meta (reset syncs the directory itself).
        self.write_index(meta.as_ref(), &ranges)
    }

    /// Whether the meta is known and `[0, meta.len)` is covered entirely.
    pub(crate) fn is_complete(&self) -> bool {
        lock(&self.state).is_complete()
    }

    /// Turns the complete partial data into the asset's body, then runs eviction.
    ///
    /// Steps: sync the data; unlink any older body; write and fsync `file/meta` (by temp
    /// name and rename) and fsync the directory; rename `part` to `body`; fsync the
    /// directory; remove the index. After the rename, `write_at`, `reset` and `checkpoint`
    /// are no-ops returning `Ok`, and `read_at` keeps serving the same bytes. Calling it
    /// again after success is a no-op.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if not [`PartialFile::is_complete`]. I/O errors of the steps: before
    /// the rename nothing is committed (retrying is fine); after it `is_committed()` is
    /// true and the body is in place, only its durability or the index cleanup failed.
    pub(crate) fn commit(&self) -> io::Result<()> {
        {
            let gate = read(&self.gate);
            if gate.committed {
                return Ok(());
            }
            // The long flush happens here, where readers still run.
            gate.data.sync_data()?;
        }
        let mut gate = write(&self.gate);
        if gate.committed {
            return Ok(());
        }
        let meta = {
            let state = lock(&self.state);
            match (&state.meta, state.is_complete()) {
                (Some(meta), true) => meta.clone(),
                _ => return Err(invalid_input("commit of an incomplete download")),
            }
        };
        gate.data.sync_data()?;
        // The old body goes before its meta is replaced; `complete_body` relies on it.
        remove_if_exists(&self.file_dir.join(BODY))?;
        write_durable(
            &self.file_dir.join(META_TMP),
            &self.file_dir.join(META),
            &encode_meta(&meta),
        )?;
        // The new meta must be on disk before a body can appear next to it.
        sync_dir(&self.file_dir)?;
        fs::rename(self.file_dir.join(PART), self.file_dir.join(BODY))?;
        gate.committed = true;
        drop(gate);
        sync_dir(&self.file_dir)?;
        remove_if_exists(&self.file_dir.join(INDEX))?;
        self.lease.cache().evict();
        Ok(())
    }

    /// Whether [`PartialFile::commit`] has renamed the data into place as the body.
    pub(crate) fn is_committed(&self) -> bool {
        read(&self.gate).committed
    }

    fn write_index(&self, meta: Option<&CachedMeta>, ranges: &[Range<u64>]) -> io::Result<()> {
        write_durable(
            &self.file_dir.join(INDEX_TMP),
            &self.file_dir.join(INDEX),
            &encode_index(meta, ranges),
        )
    }
}

// ---- Meta and index records ----
//
// Binary, ending in a SHA-256 of everything before it, so a torn or foreign file is
// recognized instead of trusted: magic(8) | fields | sha256(32).

#[derive(Debug, PartialEq, Eq)]
enum MetaState {
    Valid(CachedMeta),
    Missing,
    Corrupt,
    /// An I/O error other than absence: no verdict, so nothing is deleted on its account.
    Unreadable,
}

fn read_meta(path: &Path) -> MetaState {
    match read_record(path) {
        Ok(None) => MetaState::Missing,
        Ok(Some(bytes)) => decode_meta(&bytes).map_or(MetaState::Corrupt, MetaState::Valid),
        Err(_) => MetaState::Unreadable,
    }
}

/// The whole file, `None` if absent; files too large to be a record read as empty
/// (which then fails to decode).
fn read_record(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(MAX_RECORD_LEN).read_to_end(&mut bytes)?;
    if u64::try_from(bytes.len()) == Ok(MAX_RECORD_LEN) {
        bytes.clear();
    }
    Ok(Some(bytes))
}

fn encode_meta(meta: &CachedMeta) -> Vec<u8> {
    let mut out = META_MAGIC.to_vec();
    put_meta(&mut out, meta);
    seal(out)
}

fn decode_meta(bytes: &[u8]) -> Option<CachedMeta> {
    let mut r = Fields(unseal(bytes, META_MAGIC)?);
    let meta = r.meta()?;
    r.0.is_empty().then_some(meta)
}

fn encode_index(meta: Option<&CachedMeta>, ranges: &[Range<u64>]) -> Vec<u8> {
    let mut out = INDEX_MAGIC.to_vec();
    match meta {
        None => out.push(0),
        Some(meta) => {
            out.push(1);
            put_meta(&mut out, meta);
        }
    }
    out.extend_from_slice(&(ranges.len() as u64).to_le_bytes());
    for r in ranges {
        out.extend_from_slice(&r.start.to_le_bytes());
        out.extend_from_slice(&r.end.to_le_bytes());
    }
    seal(out)
}

/// Decodes an index that has meta and well-formed ranges; anything else is unusable.
fn decode_index(bytes: &[u8]) -> Option<(CachedMeta, RangeSet)> {
    let mut r = Fields(unseal(bytes, INDEX_MAGIC)?);
    if r.u8()? != 1 {
        return None;
    }
    let meta = r.meta()?;
    let count = r.u64()?;
    if u64::try_from(r.0.len()).ok()? != count.checked_mul(16)? {
        return None;
    }
    let mut ranges = Vec::new();
    let mut prev_end = None;
    for _ in 0..count {
        let (start, end) = (r.u64()?, r.u64()?);
        if start >= end || prev_end.is_some_and(|p| start <= p) {
            return None;
        }
        prev_end = Some(end);
        ranges.push(start..end);
    }
    Some((meta, RangeSet(ranges)))
}

fn put_meta(out: &mut Vec<u8>, meta: &CachedMeta) {
    out.extend_from_slice(&meta.len.to_le_bytes());
    for s in [&meta.etag, &meta.last_modified] {
        match s {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                out.extend_from_slice(&(s.len() as u64).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
}

fn seal(mut out: Vec<u8>) -> Vec<u8> {
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// The fields between magic and checksum, if both are right.
fn unseal<'a>(bytes: &'a [u8], magic: &[u8; 8]) -> Option<&'a [u8]> {
    let body_len = bytes.len().checked_sub(CHECKSUM_LEN)?;
    let (body, sum) = bytes.split_at(body_len);
    if Sha256::digest(body).as_slice() != sum {
        return None;
    }
    body.strip_prefix(magic.as_slice())
}

struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }

    fn opt_string(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => {
                let len = usize::try_from(self.u64()?).ok()?;
                let s = std::str::from_utf8(self.take(len)?).ok()?;
                Some(Some(s.to_owned()))
            }
            _ => None,
        }
    }

    fn meta(&mut self) -> Option<CachedMeta> {
        Some(CachedMeta {
            len: self.u64()?,
            etag: self.opt_string()?,
            last_modified: self.opt_string()?,
        })
    }
}

// ---- File system helpers ----

/// Maps a committed body read-only.
#[allow(unsafe_code)]
fn map_body(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: `file` is a committed body: complete, fsynced and renamed into place, and
    // immutable from then on. Its writer stops writing under the same lock that guards the
    // rename, and this module never truncates or writes a body in place: a body is replaced
    // only by renaming another file over its name and evicted only by unlinking, both of
    // which leave this inode, and so the mapping, unchanged.
    unsafe { memmap2::Mmap::map(file) }
}

/// Opens `<dir>/lock` and locks it shared, making sure the lock is on the file that is at
/// that path now (eviction may have renamed the directory away while we waited).
fn lock_asset_shared(dir: &Path) -> io::Result<File> {
    let path = dir.join(LOCK);
    let mut last_err = None;
    for _ in 0..LEASE_ATTEMPTS {
        let file = match fs::create_dir_all(dir.join(FILE_DIR)).and_then(|()| open_rw(&path)) {
            Ok(file) => file,
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        };
        file.lock_shared()?;
        if same_file(&file, &path) {
            return Ok(file);
        }
    }
    Err(last_err
        .unwrap_or_else(|| io::Error::other("asset directory kept disappearing while leasing")))
}

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// Sets the mtime of `path` (created if needed) to now; survives restarts, unlike atime.
fn touch(path: &Path) -> io::Result<()> {
    open_rw(path)?.set_modified(SystemTime::now())
}

fn write_durable(tmp: &Path, dst: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(tmp, dst)
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Bytes of regular files under `path` (or of `path` itself), not following symlinks.
fn tree_size(path: &Path) -> u64 {
    let Ok(md) = fs::symlink_metadata(path) else {
        return 0;
    };
    if md.is_file() {
        return md.len();
    }
    if !md.is_dir() {
        return 0;
    }
    let Ok(entries) = fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| tree_size(&e.path()))
        .fold(0, u64::saturating_add)
}

fn unique_name(prefix: &str, what: &str) -> String {
    let seq = NAME_SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{what}-{}-{seq}", std::process::id())
}

fn cache_error(what: &str, path: &Path, err: &io::Error) -> FileError {
    FileError::Cache(format!("{what} {}: {err}", path.display()))
}

fn invalid_input(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

// As with `crate::lock`: a panic under these locks leaves no half-updated data.
fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

impl From<&AssetCache> for AssetCache {
    /// Another handle on the same cache (a cheap `Arc` clone), so APIs can take either.
    fn from(cache: &AssetCache) -> Self {
        cache.clone()
    }
}

#[cfg(test)]
#[allow(
    clippy::single_range_in_vec_init,
    reason = "expected coverage is written as a list of ranges"
)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tempfile::TempDir;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    fn meta(len: u64) -> CachedMeta {
        CachedMeta {
            len,
            etag: Some("\"v1\"".to_owned()),
            last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".to_owned()),
        }
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ seed)
            .collect::<Vec<u8>>()
    }

    /// Downloads `data` into the cache as asset `key` in one go and commits it.
    fn put(cache: &AssetCache, key: &str, data: &[u8]) -> AssetId {
        let id = AssetId::from_key(key);
        let lease = cache.lease(&id).unwrap();
        let part = lease.begin_write().unwrap().unwrap();
        part.reset(meta(data.len() as u64)).unwrap();
        for (i, chunk) in data.chunks(64 * 1024).enumerate() {
            part.write_at((i * 64 * 1024) as u64, chunk).unwrap();
        }
        part.commit().unwrap();
        id
    }

    fn new_cache() -> (TempDir, AssetCache) {
        let dir = TempDir::new().unwrap();
        let cache = AssetCache::open(dir.path().join("cache")).unwrap();
        (dir, cache)
    }

    #[test]
    fn asset_id_is_stable() {
        // sha256("https://example.com/audio/track.mp3"), computed once with sha256sum.
        let id = AssetId::from_url(&url("https://example.com/audio/track.mp3"));
        assert_eq!(
            id.as_str(),
            "b77e51dcd164c202e648562c18ef4a539d07c32f74071d9f36da1d65f526cd23"
        );
        assert_eq!(id.to_string(), id.as_str());
    }

    #[test]
    fn asset_id_normalizes_urls() {
        let plain = AssetId::from_url(&url("http://example.com/a"));
        assert_eq!(AssetId::from_url(&url("HTTP://Example.COM:80/a#x")), plain);
        assert_eq!(
            AssetId::from_url(&url("http://user:pw@example.com/a")),
            plain
        );
        assert_eq!(AssetId::from_url(&url("http://user@example.com/a")), plain);
        assert_ne!(AssetId::from_url(&url("http://example.com/a?q=1")), plain);
        assert_ne!(AssetId::from_url(&url("https://example.com/a")), plain);
        assert_ne!(AssetId::from_url(&url("http://example.com:8080/a")), plain);
    }

    #[test]
    fn asset_id_is_lowercase_hex() {
        for key in ["", "a", "../../etc/passwd", "http://x/\u{e9}"] {
            let id = AssetId::from_key(key);
            assert_eq!(id.as_str().len(), 64);
            assert!(id
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            assert_eq!(AssetId::parse(id.as_str()), Some(id));
        }
        assert_eq!(AssetId::parse("ABCD"), None);
    }

    #[test]
    fn open_on_a_file_is_a_cache_error() {
        let dir = TempDir::new().unwrap();
        let file = dir.path().join("not-a-dir");
        fs::write(&file, b"x").unwrap();
        assert!(matches!(AssetCache::open(&file), Err(FileError::Cache(_))));
        assert!(matches!(
            AssetCache::open(file.join("below")),
            Err(FileError::Cache(_))
        ));
    }

    #[test]
    fn open_creates_nested_root() {
        let dir = TempDir::new().unwrap();
        let root = dir.path().join("a").join("b").join("c");
        let cache = AssetCache::open(&root).unwrap();
        assert!(root.is_dir());
        assert_eq!(cache.root(), root);
        let id = AssetId::from_key("k");
        assert_eq!(cache.asset_dir(&id), root.join(id.as_str()));
        assert_eq!(
            cache.body_path(&id),
            root.join(id.as_str()).join("file").join("body")
        );
        // Nothing but the (empty) root is left by the probe.
        assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
    }

    #[test]
    fn open_on_read_only_root_is_a_cache_error() {
        let dir = TempDir::new().unwrap();
        let root = dir.path().join("ro");
        fs::create_dir(&root).unwrap();
        platform::set_dir_writable(&root, false).unwrap();
        let probe = root.join("probe");
        if fs::write(&probe, b"x").is_ok() {
            fs::remove_file(&probe).unwrap();
            eprintln!(
                "note: skipping read-only root assertions: permissions do not stop writes here \
                 (running as root?)"
            );
            return;
        }
        assert!(matches!(AssetCache::open(&root), Err(FileError::Cache(_))));
        assert!(matches!(
            AssetCache::open(root.join("nested")),
            Err(FileError::Cache(_))
        ));
        platform::set_dir_writable(&root, true).unwrap();
    }

    #[test]
    fn partial_write_read_and_coverage() {
        let (_dir, cache) = new_cache();
        let lease = cache.lease(&AssetId::from_key("partial")).unwrap();
        let part = lease.begin_write().unwrap().unwrap();
        assert_eq!(part.meta(), None);
        assert!(part.covered().is_empty());
        part.reset(meta(1000)).unwrap();
        assert_eq!(part.meta(), Some(meta(1000)));

        let data = pattern(1000, 7);
        part.write_at(100, &data[100..200]).unwrap();
        part.write_at(200, &data[200..300]).unwrap();
        part.write_at(500, &data[500..600]).unwrap();
        assert_eq!(part.covered(), [100..300, 500..600]);

        assert_eq!(part.covered_end(0), None);
        assert_eq!(part.covered_end(100), Some(300));
        assert_eq!(part.covered_end(299), Some(300));
        assert_eq!(part.covered_end(300), None);
        assert_eq!(part.covered_end(550), Some(600));
        assert_eq!(part.next_covered_start(0), Some(100));
        assert_eq!(part.next_covered_start(100), Some(500));
        assert_eq!(part.next_covered_start(300), Some(500));
        assert_eq!(part.next_covered_start(500), None);

        let mut buf = [0u8; 64];
        assert_eq!(part.read_at(0, &mut buf).unwrap(), 0);
        assert_eq!(part.read_at(300, &mut buf).unwrap(), 0);
        assert_eq!(part.read_at(100, &mut buf).unwrap(), 64);
        assert_eq!(buf[..], data[100..164]);
        assert_eq!(part.read_at(280, &mut buf).unwrap(), 20);
        assert_eq!(buf[..20], data[280..300]);

        // Past the recorded length is refused and marks nothing.
        let err = part.write_at(990, &[0; 20]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(part.covered(), [100..300, 500..600]);
        assert!(!part.is_complete());
        assert_eq!(
            part.commit().unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );

        part.reset(meta(10)).unwrap();
        assert!(part.covered().is_empty());
        assert_eq!(part.meta(), Some(meta(10)));
        assert_eq!(part.read_at(100, &mut buf).unwrap(), 0);
    }

    #[test]
    fn checkpoint_survives_to_the_next_run() {
        let (_dir, cache) = new_cache();
        let id = AssetId::from_key("resume");
        let data = pattern(300_000, 3);
        {
            let lease = cache.lease(&id).unwrap();
            let part = lease.begin_write().unwrap().unwrap();
            part.reset(meta(300_000)).unwrap();
            part.write_at(0, &data[..100_000]).unwrap();
            part.write_at(200_000, &data[200_000..250_000]).unwrap();
            part.checkpoint().unwrap();
            // Written after the last checkpoint: lost by the next run, never claimed.
            part.write_at(100_000, &data[100_000..150_000]).unwrap();
            drop(part);
            drop(lease);
        }
        let lease = cache.lease(&id).unwrap();
        let part = lease.begin_write().unwrap().unwrap();
        assert_eq!(part.meta(), Some(meta(300_000)));
        assert_eq!(part.covered(), [0..100_000, 200_000..250_000]);
        let mut buf = vec![0u8; 50_000];
        assert_eq!(part.read_at(200_000, &mut buf).unwrap(), 50_000);
        assert_eq!(buf, data[200_000..250_000]);

        part.write_at(100_000, &data[100_000..200_000]).unwrap();
        part.write_at(250_000, &data[250_000..]).unwrap();
        assert!(part.is_complete());
        part.commit().unwrap();
        let (body, m) = lease.complete_body().unwrap();
        assert_eq!(m, meta(300_000));
        assert_eq!(body[..], data[..]);
    }

    /// Writes a checkpointed partial download of `key` and returns its file dir.
    fn checkpointed(cache: &AssetCache, key: &str) -> PathBuf {
        let id = AssetId::from_key(key);
        let lease = cache.lease(&id).unwrap();
        let part = lease.begin_write().unwrap().unwrap();
        part.reset(meta(1000)).unwrap();
        part.write_at(0, &pattern(500, 1)).unwrap();
        part.checkpoint().unwrap();
        cache.asset_dir(&id).join(FILE_DIR)
    }

    fn assert_fresh(cache: &AssetCache, key: &str) {
        let lease = cache.lease(&AssetId::from_key(key)).unwrap();
        let part = lease.begin_write().unwrap().unwrap();
        assert_eq!(part.meta(), None);
        assert!(part.covered().is_empty());
        let file_dir = cache.asset_dir(lease.id()).join(FILE_DIR);
        assert_eq!(fs::metadata(file_dir.join(PART)).unwrap().len(), 0);
        assert!(!file_dir.join(INDEX).exists());
    }

    #[test]
    fn index_claiming_more_than_the_data_is_discarded() {
        let (_dir, cache) = new_cache();
        let file_dir = checkpointed(&cache, "short");
        // As if the data never reached the disk (a crash after an index rename of a buggy
        // writer, or someone truncated it).
        OpenOptions::new()
            .write(true)
            .open(file_dir.join(PART))
            .unwrap()
            .set_len(499)
            .unwrap();
        assert_fresh(&cache, "short");
    }

    #[test]
    fn index_beyond_meta_len_is_discarded() {
        let (_dir, cache) = new_cache();
        let file_dir = checkpointed(&cache, "beyond");
        let index = encode_index(Some(&meta(100)), &[0..500]);
        fs::write(file_dir.join(INDEX), index).unwrap();
        assert_fresh(&cache, "beyond");
    }

    #[test]
    fn corrupt_index_is_discarded() {
        let (_dir, cache) = new_cache();
        let file_dir = checkpointed(&cache, "corrupt");
        let mut index = fs::read(file_dir.join(INDEX)).unwrap();
        let mid = index.len() / 2;
        index[mid] ^= 0xff;
        fs::write(file_dir.join(INDEX), &index).unwrap();
        assert_fresh(&cache, "corrupt");

        let file_dir = checkpointed(&cache, "garbage");
        fs::write(file_dir.join(INDEX), b"not an index").unwrap();
        assert_fresh(&cache, "garbage");
    }

    #[test]
    fn stale_temp_files_are_repaired() {
        let (_dir, cache) = new_cache();
        let file_dir = checkpointed(&cache, "tmp");
        fs::write(file_dir.join(INDEX_TMP), b"half").unwrap();
        fs::write(file_dir.join(META_TMP), b"half").unwrap();
        let lease = cache.lease(&AssetId::from_key("tmp")).unwrap();
        let part = lease.begin_write().unwrap().unwrap();
        assert_eq!(part.covered(), [0..500]);
        assert!(!file_dir.join(INDEX_TMP).exists());
        assert!(!file_dir.join(META_TMP).exists());
    }

    #[test]
    fn commit_makes_a_complete_body() {
        let (_dir, cache) = new_cache();
        let data = pattern(200_000, 9);
        let id = AssetId::from_key("commit");
        let lease = cache.lease(&id).unwrap();
        assert!(lease.complete_body().is_none());
        let part = lease.begin_write().unwrap().unwrap();
        part.reset(meta(200_000)).unwrap();
        // Out of order, to exercise merging.
        part.write_at(100_000, &data[100_000..]).unwrap();
        part.write_at(0, &data[..100_000]).unwrap();
        part.checkpoint().unwrap();
        assert!(part.is_complete());
        assert!(!part.is_committed());
        part.commit().unwrap();
        assert!(part.is_committed());

        let (body, m) = lease.complete_body().unwrap();
        assert_eq!(m, meta(200_000));
        assert_eq!(body[..], data[..]);
        assert!(cache.body_path(&id).is_file());
        let file_dir = cache.asset_dir(&id).join(FILE_DIR);
        for leftover in [PART, INDEX, INDEX_TMP, META_TMP] {
            assert!(!file_dir.join(leftover).exists(), "{leftover} left behind");
        }

        // The writer is done: writes and resets cannot touch the body any more.
        part.write_at(0, &[0xff; 10]).unwrap();
        part.reset(meta(5)).unwrap();
        part.checkpoint().unwrap();
        part.commit().unwrap();
        let mut buf = [0u8; 10];
        assert_eq!(part.read_at(0, &mut buf).unwrap(), 10);
        assert_eq!(buf[..], data[..10]);
        assert_eq!(fs::read(cache.body_path(&id)).unwrap(), data);
        drop(part);

        // The next run finds it through a fresh lease.
        drop(lease);
        let lease = cache.lease(&id).unwrap();
        let (again, _) = lease.complete_body().unwrap();
        assert_eq!(again[..], data[..]);
        // A mapped body stays readable after it is evicted (unlinked).
        drop(lease);
        let small = cache.clone().with_max_bytes(0);
        assert!(!cache.asset_dir(&id).exists());
        assert_eq!(again[..], data[..]);
        drop(small);
    }

    #[test]
    fn empty_body_commits() {
        let (_dir, cache) = new_cache();
        let id = put(&cache, "empty", &[]);
        let lease = cache.lease(&id).unwrap();
        let (body, m) = lease.complete_body().unwrap();
        assert!(body.is_empty());
        assert_eq!(m.len, 0);
    }

    #[test]
    fn recommit_replaces_the_body() {
        let (_dir, cache) = new_cache();
        let id = put(&cache, "twice", &pattern(1000, 1));
        let lease = cache.lease(&id).unwrap();
        let (old, _) = lease.complete_body().unwrap();
        let part = lease.begin_write().unwrap().unwrap();
        let new_meta = CachedMeta {
            len: 2000,
            etag: Some("\"v2\"".to_owned()),
            last_modified: None,
        };
        part.reset(new_meta.clone()).unwrap();
        part.write_at(0, &pattern(2000, 2)).unwrap();
        part.commit().unwrap();
        let (new, m) = lease.complete_body().unwrap();
        assert_eq!(m, new_meta);
        assert_eq!(new[..], pattern(2000, 2)[..]);
        // The earlier mapping still sees the old version, untouched.
        assert_eq!(old[..], pattern(1000, 1)[..]);
    }

    #[test]
    fn body_length_mismatch_removes_body() {
        let (_dir, cache) = new_cache();
        let id = put(&cache, "mismatch", &pattern(1000, 4));
        // Replace the body (by rename, as anything touching a body must) with a shorter one.
        let body = cache.body_path(&id);
        let tmp = body.with_file_name("other");
        fs::write(&tmp, pattern(999, 4)).unwrap();
        fs::rename(&tmp, &body).unwrap();
        let lease = cache.lease(&id).unwrap();
        assert!(lease.complete_body().is_none());
        assert!(!body.exists());
    }

    #[test]
    fn body_without_valid_meta_is_removed() {
        let (_dir, cache) = new_cache();
        let id = put(&cache, "nometa", &pattern(100, 5));
        let meta_path = cache.asset_dir(&id).join(FILE_DIR).join(META);
        fs::write(&meta_path, b"garbage").unwrap();
        let lease = cache.lease(&id).unwrap();
        assert!(lease.complete_body().is_none());
        assert!(!cache.body_path(&id).exists());

        let id = put(&cache, "nometa2", &pattern(100, 5));
        fs::remove_file(cache.asset_dir(&id).join(FILE_DIR).join(META)).unwrap();
        let lease = cache.lease(&id).unwrap();
        assert!(lease.complete_body().is_none());
        assert!(!cache.body_path(&id).exists());
    }

    #[test]
    fn only_one_writer_at_a_time() {
        let (_dir, cache) = new_cache();
        let id = AssetId::from_key("writer");
        let first_lease = cache.lease(&id).unwrap();
        let second_lease = cache.lease(&id).unwrap();
        let first = first_lease.begin_write().unwrap().unwrap();
        assert!(second_lease.begin_write().unwrap().is_none());
        assert!(first_lease.begin_write().unwrap().is_none());
        // Another handle on the same root is another "process" as far as locks go.
        let other = AssetCache::open(cache.root()).unwrap();
        assert!(other.lease(&id).unwrap().begin_write().unwrap().is_none());
        drop(first);
        assert!(second_lease.begin_write().unwrap().is_some());
    }

    #[test]
    fn eviction_removes_least_recently_used() {
        let (_dir, cache) = new_cache();
        let cache = cache.with_max_bytes(2500);
        let pause = || std::thread::sleep(Duration::from_millis(20));
        let a = put(&cache, "a", &pattern(1000, 1));
        pause();
        let b = put(&cache, "b", &pattern(1000, 2));
        pause();
        assert!(cache.total_bytes() <= 2500, "{}", cache.total_bytes());
        // Using `a` again makes `b` the least recently used.
        drop(cache.lease(&a).unwrap());
        pause();
        let c = put(&cache, "c", &pattern(1000, 3));
        assert!(cache.asset_dir(&a).exists());
        assert!(!cache.asset_dir(&b).exists());
        assert!(cache.asset_dir(&c).exists());
        assert!(cache.total_bytes() <= 2500);

        // A leased asset survives even the smallest limit, whatever its age; an asset
        // leased through another handle (another registry) too, by its file lock.
        let lease_a = cache.lease(&a).unwrap();
        let other = AssetCache::open(cache.root()).unwrap();
        let lease_c = other.lease(&c).unwrap();
        let tight = cache.clone().with_max_bytes(1);
        assert!(cache.asset_dir(&a).exists());
        assert!(cache.asset_dir(&c).exists());
        assert!(lease_a.complete_body().is_some());
        drop(lease_a);
        drop(tight.with_max_bytes(1));
        assert!(!cache.asset_dir(&a).exists());
        assert!(cache.asset_dir(&c).exists());
        drop(lease_c);
        drop(cache.clone().with_max_bytes(1));
        assert!(!cache.asset_dir(&c).exists());
        assert_eq!(cache.total_bytes(), 0);
    }

    #[test]
    fn committed_asset_is_kept_even_above_the_limit() {
        let (_dir, cache) = new_cache();
        let cache = cache.with_max_bytes(10);
        let old = put(&cache, "old", &pattern(100, 1));
        let id = AssetId::from_key("big");
        let lease = cache.lease(&id).unwrap();
        let part = lease.begin_write().unwrap().unwrap();
        part.reset(meta(5000)).unwrap();
        part.write_at(0, &pattern(5000, 2)).unwrap();
        part.commit().unwrap();
        assert!(!cache.asset_dir(&old).exists());
        assert_eq!(lease.complete_body().unwrap().0.len(), 5000);
    }

    #[test]
    fn lease_after_eviction_recreates_the_directory() {
        let (_dir, cache) = new_cache();
        let id = put(&cache, "again", &pattern(10, 1));
        drop(cache.clone().with_max_bytes(0));
        assert!(!cache.asset_dir(&id).exists());
        let lease = cache.lease(&id).unwrap();
        assert!(lease.complete_body().is_none());
        assert!(lease.begin_write().unwrap().is_some());
        // No trash left behind under the root.
        let names: Vec<_> = fs::read_dir(cache.root())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from(id.as_str())]);
    }

    #[test]
    fn concurrent_reader_and_writer() {
        let (_dir, cache) = new_cache();
        let lease = cache.lease(&AssetId::from_key("threads")).unwrap();
        let part = lease.begin_write().unwrap().unwrap();
        let data = pattern(4 << 20, 6);
        part.reset(meta(data.len() as u64)).unwrap();
        let reader = {
            let part = Arc::clone(&part);
            let data = data.clone();
            std::thread::spawn(move || {
                let mut pos = 0;
                let mut buf = vec![0u8; 10_000];
                while pos < data.len() {
                    let n = part.read_at(pos as u64, &mut buf).unwrap();
                    assert_eq!(buf[..n], data[pos..pos + n]);
                    pos += n;
                    if n == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        };
        for (i, chunk) in data.chunks(64 * 1024).enumerate() {
            part.write_at((i * 64 * 1024) as u64, chunk).unwrap();
        }
        part.commit().unwrap();
        reader.join().unwrap();
    }
}
