//! The few operating-system specifics of the asset cache, in one place.
//!
//! Everything else uses portable `std`: file locks are `File::lock_shared` /
//! `File::try_lock` (stable since Rust 1.89: `flock` on Unix, `LockFileEx` on Windows),
//! renames and fsync are `std::fs`.
//!
//! What is here:
//! - positional reads and writes (several threads read and write the partial file at once,
//!   so no shared cursor);
//! - "is this open file still the one at that path" (eviction renames a directory away
//!   while another process may be opening it);
//! - making a rename durable (fsync of the directory).
//!
//! Unix (Linux, tested; macOS and the BSDs use the same calls) is supported. Windows has an
//! implementation below but is not built or tested by this project's CI; see the README.

use std::fs::File;
use std::io;
use std::path::Path;

/// Reads exactly `buf.len()` bytes at `offset`, without moving any shared cursor.
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    imp::read_exact_at(file, buf, offset)
}

/// Writes all of `data` at `offset`, without moving any shared cursor.
pub(crate) fn write_all_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    imp::write_all_at(file, data, offset)
}

/// Whether the open `file` is the file now at `path`.
pub(crate) fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => imp::same_identity(&a, &b),
        _ => false,
    }
}

/// Makes the entries of `dir` (a rename into it) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    imp::sync_dir(dir)
}

/// Test helper: makes a directory read-only (or writable again) for its owner.
#[cfg(test)]
pub(crate) fn set_dir_writable(dir: &Path, writable: bool) -> io::Result<()> {
    imp::set_dir_writable(dir, writable)
}

#[cfg(unix)]
mod imp {
    use std::fs::{File, Metadata};
    use std::io;
    use std::os::unix::fs::{FileExt, MetadataExt};
    use std::path::Path;

    pub(super) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
        file.read_exact_at(buf, offset)
    }

    pub(super) fn write_all_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
        file.write_all_at(data, offset)
    }

    /// Device and inode: the file's identity, whatever its name.
    pub(super) fn same_identity(a: &Metadata, b: &Metadata) -> bool {
        a.dev() == b.dev() && a.ino() == b.ino()
    }

    pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    #[cfg(test)]
    pub(super) fn set_dir_writable(dir: &Path, writable: bool) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let mode = if writable { 0o755 } else { 0o555 };
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
    }
}

#[cfg(windows)]
mod imp {
    use std::fs::{File, Metadata};
    use std::io;
    use std::os::windows::fs::{FileExt, MetadataExt};
    use std::path::Path;

    pub(super) fn read_exact_at(
        file: &File,
        mut buf: &mut [u8],
        mut offset: u64,
    ) -> io::Result<()> {
        while !buf.is_empty() {
            match file.seek_read(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub(super) fn write_all_at(file: &File, mut data: &[u8], mut offset: u64) -> io::Result<()> {
        while !data.is_empty() {
            match file.seek_write(data, offset) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    data = &data[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Stable std has no file index on Windows: creation time (100 ns resolution) and
    /// size stand in for it. Windows also refuses to rename a directory while a file in it
    /// is open, which is what this check guards against on Unix.
    pub(super) fn same_identity(a: &Metadata, b: &Metadata) -> bool {
        a.creation_time() == b.creation_time() && a.file_size() == b.file_size()
    }

    /// A directory cannot be opened as a `File` on Windows; NTFS journals renames.
    pub(super) fn sync_dir(_dir: &Path) -> io::Result<()> {
        Ok(())
    }

    #[cfg(test)]
    pub(super) fn set_dir_writable(dir: &Path, writable: bool) -> io::Result<()> {
        let mut permissions = std::fs::metadata(dir)?.permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        permissions.set_readonly(!writable);
        std::fs::set_permissions(dir, permissions)
    }
}

#[cfg(not(any(unix, windows)))]
compile_error!("kithara-file supports Unix (Linux, macOS, the BSDs) and, untested, Windows");
