//! File system steps the cache is built from: locked opens, durable writes, mapping a
//! committed body, sizes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::platform::same_file;
use crate::FileError;

use super::{FILE_DIR, LEASE_ATTEMPTS, LOCK};

/// Unique suffixes for probe and trash names within this process (the pid separates processes).
pub(super) static NAME_SEQ: AtomicU64 = AtomicU64::new(0);

/// Maps a committed body read-only.
#[allow(unsafe_code)]
pub(super) fn map_body(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: `file` is a committed body: complete, fsynced and renamed into place, and
    // immutable from then on. Its writer stops writing under the same lock that guards the
    // rename, and this module never truncates or writes a body in place: a body is replaced
    // only by renaming another file over its name and evicted only by unlinking, both of
    // which leave this inode, and so the mapping, unchanged.
    unsafe { memmap2::Mmap::map(file) }
}

/// Opens `<dir>/lock` and locks it shared, making sure the lock is on the file that is at
/// that path now (eviction may have renamed the directory away while we waited).
pub(super) fn lock_asset_shared(dir: &Path) -> io::Result<File> {
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

pub(super) fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// Sets the mtime of `path` (created if needed) to now; survives restarts, unlike atime.
pub(super) fn touch(path: &Path) -> io::Result<()> {
    open_rw(path)?.set_modified(SystemTime::now())
}

pub(super) fn write_durable(tmp: &Path, dst: &Path, bytes: &[u8]) -> io::Result<()> {
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

pub(super) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Bytes of regular files under `path` (or of `path` itself), not following symlinks.
pub(super) fn tree_size(path: &Path) -> u64 {
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

pub(super) fn unique_name(prefix: &str, what: &str) -> String {
    let seq = NAME_SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{what}-{}-{seq}", std::process::id())
}

pub(super) fn cache_error(what: &str, path: &Path, err: &io::Error) -> FileError {
    FileError::Cache(format!("{what} {}: {err}", path.display()))
}

pub(super) fn invalid_input(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}
