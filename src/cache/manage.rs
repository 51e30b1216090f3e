//! What an app sees and manages of its cache: which assets are there and how complete
//! ([`AssetCache::entries`], [`AssetCache::is_cached`]), how much disk they take
//! ([`AssetCache::used_bytes`]), and removal ([`AssetCache::remove`]), deferred while an
//! asset is in use.
//!
//! Removal of an asset in use: a marker file `<id>/removing` records the request. From
//! then on the asset is gone for everything new (no lease is granted, queries skip it),
//! and whoever drops the last lease of it (in any process) removes the directory. A
//! marker left behind by a process that died holding a lease is finished by the next
//! [`AssetCache::open`] or eviction pass, which remove every marked asset nobody leases.

use std::fs;
use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::platform::sync_dir;
use crate::FileError;

use super::{
    cache_error, decode_index, read_meta, read_record, tree_size, AssetCache, AssetId, MetaState,
    BODY, FILE_DIR, INDEX, META, PART, REMOVING, TRASH_PREFIX, USED,
};

/// One asset in the cache, as [`AssetCache::entries`] lists it.
///
/// ```
/// use kithara_file::{AssetCache, CacheEntry};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let cache = AssetCache::open(dir.path())?;
/// for CacheEntry { id, len, complete, last_used } in cache.entries() {
///     let state = if complete { "complete" } else { "partial" };
///     println!("{id}: {len} bytes, {state}, last used {last_used:?}");
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheEntry {
    /// The asset's id (see [`AssetId::from_url`] and [`AssetId::from_key`]).
    pub id: AssetId,
    /// The length of the file: of the committed body when `complete`; for a partial
    /// download, the length its server announced, as recorded in the partial download's
    /// last checkpoint. `0` when that is not known yet (no checkpoint yet, or a server that
    /// sent no length); it is never the number of bytes downloaded so far.
    pub len: u64,
    /// Whether a committed, valid body is in place: a session opened on it now is served
    /// from disk with no request (what [`AssetCache::is_cached`] says).
    pub complete: bool,
    /// When a session last opened the asset (the last lease), as recorded on disk, so it
    /// survives restarts; [`UNIX_EPOCH`] if unknown. Eviction removes the oldest first.
    pub last_used: SystemTime,
}

impl AssetCache {
    /// Whether the complete, valid body of asset `id` is in the cache, so that a session
    /// opened on it now is served from disk without any request (also offline).
    ///
    /// Valid means committed (a body only ever appears once complete and synced) and
    /// matching its recorded length. Never creates, touches or leases anything. `false`
    /// for an asset whose [removal](AssetCache::remove) is pending.
    ///
    /// ```no_run
    /// use kithara_file::{AssetCache, AssetId, FileSource, FileSourceOptions, Url};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = AssetCache::open("/tmp/kithara-cache")?;
    /// let url: Url = "https://example.com/next-track.mp3".parse()?;
    /// if cache.is_cached(&AssetId::from_url(&url)) {
    ///     // Plays offline.
    ///     let _session = FileSource::open_with_cache(url, FileSourceOptions::new(), &cache)?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn is_cached(&self, id: &AssetId) -> bool {
        !self.removal_requested(id) && committed_len(&self.asset_dir(id).join(FILE_DIR)).is_some()
    }

    /// Removes asset `id` (its complete body and any partial download) from the cache.
    /// Returns `false` when there was nothing to remove (see [`AssetCache::entries`]).
    ///
    /// An asset that no session uses is removed at once. An asset in use (leased by a live
    /// session, in this process or another) is never removed under it:
    /// - at once, the asset is gone for everything new: [`is_cached`](AssetCache::is_cached)
    ///   is `false`, [`entries`](AssetCache::entries) omits it, and a session opened on it
    ///   streams from the network without the cache (it neither reads nor writes it);
    /// - sessions already serving it go on unchanged: a memory-mapped body stays readable,
    ///   a download in progress goes on writing and may even commit;
    /// - its files stay on disk (and in [`used_bytes`](AssetCache::used_bytes)) until the
    ///   last of those sessions ends; that session's end removes them. If its process dies
    ///   first, the next [`AssetCache::open`] or eviction pass on this root removes them.
    ///
    /// The request is a marker file (`<id>/removing`), so it survives restarts and is seen
    /// by other processes sharing the root. Once the asset is removed, a new session caches
    /// it afresh.
    ///
    /// ```
    /// use kithara_file::{AssetCache, AssetId};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// let cache = AssetCache::open(dir.path())?;
    /// let id = AssetId::from_key("album-7/track-3");
    /// if cache.remove(&id)? {
    ///     assert!(!cache.is_cached(&id));
    /// }
    /// assert!(!cache.remove(&id)?); // nothing left to remove
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`FileError::Cache`] when the file system refuses: the marker cannot be written (a
    /// read-only cache) or the unused asset cannot be renamed away. The asset is then left
    /// as it was.
    pub fn remove(&self, id: &AssetId) -> Result<bool, FileError> {
        let dir = self.asset_dir(id);
        if self.removal_requested(id) {
            // Already gone as far as anyone can see; finish it if nobody holds it now.
            self.try_remove_asset(id);
            return Ok(false);
        }
        if !holds_data(&dir) {
            return Ok(false);
        }
        // Marked before the attempt: a lease taken in between either sees the marker and
        // backs off, or is seen by the attempt and finishes the removal when it ends.
        match mark_for_removal(&dir) {
            Ok(()) => {}
            // Evicted meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(cache_error("cannot mark for removal", &dir, &e)),
        }
        match self.remove_unless_leased(id) {
            // Removed now, or in use: the last lease removes it.
            Ok(_) => Ok(true),
            // The last lease (or another `remove`) was quicker.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => {
                // Leave no marker that would hide an asset nobody is going to remove.
                let _ = fs::remove_file(dir.join(REMOVING));
                Err(cache_error("cannot remove", &dir, &e))
            }
        }
    }

    /// Bytes on disk under the root, counted as the lengths of all regular files:
    /// complete bodies, partial downloads (a partial download's data file counts up to its
    /// furthest written byte), the small bookkeeping files, and assets whose removal waits
    /// for their last session. It is the measure [`AssetCache::with_max_bytes`] limits.
    /// Files that vanish during the walk are not counted.
    ///
    /// ```
    /// use kithara_file::AssetCache;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// let cache = AssetCache::open(dir.path())?;
    /// println!("the cache takes {:.1} MiB", cache.used_bytes() as f64 / 1048576.0);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn used_bytes(&self) -> u64 {
        tree_size(self.root())
    }

    /// Every asset in the cache that holds data (a complete body or a partial download),
    /// most recently used first. Assets whose removal is pending are left out.
    ///
    /// A snapshot: sessions in this or other processes may change the cache meanwhile.
    /// Never creates, touches or leases anything.
    ///
    /// ```
    /// use kithara_file::AssetCache;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// let cache = AssetCache::open(dir.path())?;
    /// let partial: u64 = cache.entries().iter().filter(|e| !e.complete).map(|e| e.len).sum();
    /// println!("{partial} bytes of files not downloaded completely");
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn entries(&self) -> Vec<CacheEntry> {
        let mut entries: Vec<CacheEntry> = asset_dirs(self.root())
            .filter(|(_, dir)| holds_data(dir) && !dir.join(REMOVING).exists())
            .map(|(id, dir)| entry(id, &dir))
            .collect();
        entries.sort_by(|a, b| b.last_used.cmp(&a.last_used).then(a.id.cmp(&b.id)));
        entries
    }

    /// Whether removal of asset `id` was requested and is not finished.
    pub(super) fn removal_requested(&self, id: &AssetId) -> bool {
        fs::symlink_metadata(self.asset_dir(id).join(REMOVING)).is_ok()
    }

    /// Removes every asset marked for removal that nobody leases, and what a killed
    /// removal left in the trash. Best effort.
    pub(super) fn sweep_removals(&self) {
        let Ok(children) = fs::read_dir(self.root()) else {
            return;
        };
        for child in children.flatten() {
            let name = child.file_name();
            let name = name.to_str().unwrap_or("");
            let is_dir = child.file_type().is_ok_and(|t| t.is_dir());
            if !is_dir {
                continue;
            }
            if let Some(id) = AssetId::parse(name) {
                if child.path().join(REMOVING).exists() {
                    self.try_remove_asset(&id);
                }
            } else if name.starts_with(TRASH_PREFIX) {
                let _ = fs::remove_dir_all(child.path());
            }
        }
    }
}

/// The asset directories under `root`, by id.
fn asset_dirs(root: &Path) -> impl Iterator<Item = (AssetId, std::path::PathBuf)> {
    fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|child| child.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|child| {
            let id = AssetId::parse(child.file_name().to_str()?)?;
            Some((id, child.path()))
        })
}

fn entry(id: AssetId, dir: &Path) -> CacheEntry {
    let file_dir = dir.join(FILE_DIR);
    let committed = committed_len(&file_dir);
    let len = committed.or_else(|| partial_len(&file_dir)).unwrap_or(0);
    let last_used = fs::metadata(dir.join(USED))
        .and_then(|m| m.modified())
        .unwrap_or(UNIX_EPOCH);
    CacheEntry {
        id,
        len,
        complete: committed.is_some(),
        last_used,
    }
}

/// Whether the asset directory holds a body or a partial download (a directory with only
/// its lock files holds nothing worth listing).
fn holds_data(dir: &Path) -> bool {
    let file_dir = dir.join(FILE_DIR);
    [BODY, PART, INDEX]
        .iter()
        .any(|name| fs::symlink_metadata(file_dir.join(name)).is_ok())
}

/// The length of the committed body in `file_dir`, if there is one that matches its meta.
/// Meta is read before and after looking at the body, as a lease does: a commit unlinks
/// the old body before it replaces meta.
fn committed_len(file_dir: &Path) -> Option<u64> {
    let before = read_meta(&file_dir.join(META));
    let body = fs::symlink_metadata(file_dir.join(BODY)).ok()?;
    let after = read_meta(&file_dir.join(META));
    match (before, after) {
        (MetaState::Valid(a), MetaState::Valid(b))
            if a == b && body.is_file() && body.len() == a.len =>
        {
            Some(a.len)
        }
        _ => None,
    }
}

/// The file length a partial download's index records, if it has a valid one.
fn partial_len(file_dir: &Path) -> Option<u64> {
    let bytes = read_record(&file_dir.join(INDEX)).ok()??;
    decode_index(&bytes).map(|(meta, _)| meta.len)
}

/// Writes the removal marker durably into an existing asset directory.
fn mark_for_removal(dir: &Path) -> io::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(REMOVING))?;
    sync_dir(dir)
}
