//! A lease pins an asset against eviction while a session uses it; through it a session
//! reads the complete body or claims the writer role.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::platform::same_file;
use crate::FileError;

use super::{
    cache_error, lock_asset_shared, map_body, open_rw, read_meta, touch, AssetCache, CachedMeta,
    MetaState, PartialFile, Pin, BODY, FILE_DIR, META, USED, WRITER_LOCK,
};

/// Pins an asset while alive: eviction, in this process or another, never removes a leased
/// asset. Dropping the lease (and every [`PartialFile`] begun from it) unpins it.
#[derive(Clone)]
pub(crate) struct AssetLease {
    inner: Arc<LeaseInner>,
}

#[derive(Debug)]
pub(super) struct LeaseInner {
    pub(super) dir: PathBuf,
    /// Shared lock on `<id>/lock`: what other processes' eviction sees.
    _lock: File,
    /// What this process's eviction sees. Declared after `_lock`, so it drops after it:
    /// the last pin finishes a requested removal, which needs the file lock free.
    pin: Pin,
}

impl AssetLease {
    /// Locks `dir` shared (creating it) and marks it used; `pin` is already counted.
    pub(super) fn take(dir: PathBuf, pin: Pin) -> Result<AssetLease, FileError> {
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
}

impl AssetLease {
    /// The size limit of the cache this lease is from.
    pub(crate) fn cache_limit(&self) -> Option<u64> {
        self.inner.cache().limit()
    }
}

impl LeaseInner {
    pub(super) fn cache(&self) -> &AssetCache {
        &self.pin.cache
    }
}

impl AssetLease {
    /// The leased asset.
    #[cfg(test)]
    pub(crate) fn id(&self) -> &super::AssetId {
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
