//! [`AssetCache`]: the handle on a cache root, its in-process lease registry (pins) and
//! LRU eviction.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use crate::platform::same_file;
use crate::{lock, FileError};

use super::{
    cache_error, open_rw, tree_size, unique_name, AssetId, AssetLease, BODY, FILE_DIR, LOCK,
    PROBE_PREFIX, TRASH_PREFIX, USED,
};

/// A handle to an on-disk asset cache rooted at one directory.
///
/// Cheap to clone (an `Arc` inside), `Send` and `Sync`. Clones share the in-process lease
/// registry; several caches opened on the same root (in this process or in others) stay
/// correct through file locks, so eviction never removes an asset someone has leased.
///
/// Sessions use it through [`FileSource::open_with_cache`](crate::FileSource::open_with_cache)
/// (which takes an `AssetCache` or a `&AssetCache`); [`AssetCache::prefetch`] fills it in
/// the background; [`entries`](AssetCache::entries), [`is_cached`](AssetCache::is_cached),
/// [`used_bytes`](AssetCache::used_bytes) and [`remove`](AssetCache::remove) manage it.
///
/// ```
/// use kithara_file::AssetCache;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let root = dir.path().join("my-player");
/// // e.g. dirs::cache_dir().join("my-player")
/// let cache = AssetCache::open(&root)?.with_max_bytes(1 << 30);
/// let for_the_ui = cache.clone(); // cheap: the same cache
/// assert_eq!(for_the_ui.root(), cache.root());
/// assert!(cache.entries().is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct AssetCache {
    shared: Arc<Shared>,
    max_bytes: Option<u64>,
}

#[derive(Debug)]
pub(super) struct Shared {
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
    ///
    /// ```
    /// use kithara_file::{AssetCache, FileError};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// let cache = AssetCache::open(dir.path().join("cache"))?; // created if missing
    /// # drop(cache);
    /// let not_a_dir = dir.path().join("file");
    /// std::fs::write(&not_a_dir, b"x")?;
    /// assert!(matches!(AssetCache::open(&not_a_dir), Err(FileError::Cache(_))));
    /// # Ok(())
    /// # }
    /// ```
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
        let cache = AssetCache {
            shared: Arc::new(Shared {
                root,
                pins: Mutex::new(HashMap::new()),
                evicting: Mutex::new(()),
            }),
            max_bytes: None,
        };
        // Removals requested while their assets were in use by a process that is gone.
        cache.sweep_removals();
        Ok(cache)
    }

    /// Returns this handle with a size limit of `max_bytes` for everything under the root.
    ///
    /// Whenever the total exceeds the limit (checked right here and after every completed
    /// download committed through this handle), least-recently-leased assets are removed
    /// until it fits. Leased assets, in this process or another, are never removed, so the
    /// total can stay above the limit while they are in use. Eviction is best effort: an
    /// asset that cannot be removed is skipped silently. Other clones keep their own limit.
    ///
    /// ```
    /// use kithara_file::AssetCache;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// // At most 2 GiB on disk, least recently used assets evicted first.
    /// let cache = AssetCache::open(dir.path())?.with_max_bytes(2 << 30);
    /// assert!(cache.used_bytes() <= 2 << 30);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_max_bytes(mut self, max_bytes: u64) -> AssetCache {
        self.max_bytes = Some(max_bytes);
        self.evict();
        self
    }

    /// The size limit set with [`AssetCache::with_max_bytes`].
    pub(crate) fn limit(&self) -> Option<u64> {
        self.max_bytes
    }

    /// The root directory of the cache, as given to [`AssetCache::open`].
    ///
    /// ```
    /// use kithara_file::{AssetCache, AssetId};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// let cache = AssetCache::open(dir.path())?;
    /// assert_eq!(cache.root(), dir.path());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// The directory holding everything of one asset: `<root>/<id>`.
    ///
    /// ```
    /// use kithara_file::{AssetCache, AssetId};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// let cache = AssetCache::open(dir.path())?;
    /// let id = AssetId::from_key("track-4711");
    /// assert_eq!(cache.asset_dir(&id), dir.path().join(id.as_str()));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn asset_dir(&self, id: &AssetId) -> PathBuf {
        self.shared.root.join(id.as_str())
    }

    /// Where the complete body of an asset lives once downloaded: `<root>/<id>/file/body`.
    ///
    /// A file at this path is always a complete download, byte for byte; it never exists
    /// half-written.
    ///
    /// ```
    /// use kithara_file::{AssetCache, AssetId};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// let cache = AssetCache::open(dir.path())?;
    /// let id = AssetId::from_key("track-4711");
    /// let body = cache.body_path(&id);
    /// // Hand a complete download to a tool that wants a path.
    /// if body.exists() {
    ///     println!("complete file at {}", body.display());
    /// }
    /// # assert!(!body.exists());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn body_path(&self, id: &AssetId) -> PathBuf {
        self.asset_dir(id).join(FILE_DIR).join(BODY)
    }

    /// Pins the asset `id` until the returned lease is dropped and records now as its
    /// last-used time. Creates the asset directory if needed.
    ///
    /// # Errors
    ///
    /// [`FileError::Cache`] when the asset cannot be leased, or when its removal was
    /// requested ([`AssetCache::remove`]): a new session then streams without the cache.
    pub(crate) fn lease(&self, id: &AssetId) -> Result<AssetLease, FileError> {
        // Pin in-process before taking the file lock: an eviction pass of this process
        // that looks between the two sees the pin and skips the asset.
        let pin = Pin::new(self.clone(), id.clone());
        let lease = AssetLease::take(self.asset_dir(id), pin)?;
        // Looked at after the lock: a removal marked before it is seen here, and one
        // marked after it finds this lease and waits for it to end.
        if self.removal_requested(id) {
            drop(lease);
            return Err(FileError::Cache(format!("asset {id} is being removed")));
        }
        Ok(lease)
    }

    /// Bytes of all files under the root (complete bodies, partial downloads and the small
    /// bookkeeping files). Files that vanish during the walk are not counted.
    ///
    /// ```
    /// use kithara_file::{AssetCache, AssetId};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// let cache = AssetCache::open(dir.path())?;
    /// assert_eq!(cache.total_bytes(), 0);
    /// # let _ = AssetId::from_key("x");
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn total_bytes(&self) -> u64 {
        tree_size(&self.shared.root)
    }

    /// Removes least-recently-used unleased assets until the total fits `max_bytes`.
    /// Best effort: errors skip the asset at hand and never reach the caller, because a
    /// failed eviction must not fail the download that triggered it.
    pub(super) fn evict(&self) {
        self.sweep_removals();
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
    pub(super) fn try_remove_asset(&self, id: &AssetId) -> bool {
        matches!(self.remove_unless_leased(id), Ok(true))
    }

    /// Removes one asset unless it is leased: `Ok(false)` when it is leased (here or in
    /// another process), an error when the file system refuses (a missing directory is
    /// `NotFound`).
    pub(super) fn remove_unless_leased(&self, id: &AssetId) -> io::Result<bool> {
        // Held until the directory is renamed away, so no lease of this process can
        // start in between (a lease pins before it locks).
        let pins = lock(&self.shared.pins);
        if pins.contains_key(id) {
            return Ok(false);
        }
        let dir = self.asset_dir(id);
        let lock_path = dir.join(LOCK);
        let file = open_rw(&lock_path)?;
        if file.try_lock().is_err() || !same_file(&file, &lock_path) {
            return Ok(false);
        }
        // Renaming is atomic for other processes: a lease that was waiting for our lock
        // finds its lock file no longer at the asset's path and starts over on a fresh
        // directory, instead of racing the recursive delete.
        let trash = self
            .shared
            .root
            .join(unique_name(TRASH_PREFIX, id.as_str()));
        fs::rename(&dir, &trash)?;
        drop(file);
        drop(pins);
        // Unlinking leaves mapped bodies of earlier readers intact.
        let _ = fs::remove_dir_all(&trash);
        Ok(true)
    }
}

/// One in-process pin of an asset; unpins on drop (also when a lease fails halfway).
#[derive(Debug)]
pub(super) struct Pin {
    pub(super) cache: AssetCache,
    pub(super) id: AssetId,
}

impl Pin {
    fn new(cache: AssetCache, id: AssetId) -> Pin {
        *lock(&cache.shared.pins).entry(id.clone()).or_insert(0) += 1;
        Pin { cache, id }
    }
}

impl Drop for Pin {
    /// The last pin of an asset whose removal was requested removes it, unless another
    /// process still leases it (then that process's last pin does). A lease drops its
    /// file lock before its pin, so this process's own lock is not in the way.
    fn drop(&mut self) {
        let last = {
            let mut pins = lock(&self.cache.shared.pins);
            match pins.get_mut(&self.id) {
                Some(count) => {
                    *count -= 1;
                    let last = *count == 0;
                    if last {
                        pins.remove(&self.id);
                    }
                    last
                }
                None => false,
            }
        };
        if last && self.cache.removal_requested(&self.id) {
            self.cache.try_remove_asset(&self.id);
        }
    }
}

impl From<&AssetCache> for AssetCache {
    /// Another handle on the same cache (a cheap `Arc` clone), so APIs can take either.
    fn from(cache: &AssetCache) -> Self {
        cache.clone()
    }
}
