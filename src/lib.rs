//! Play a file straight off an HTTP server as if it were local.
//!
//! A [`FileSession`] is `std::io::Read + std::io::Seek` over a remote file. A background
//! thread (the driver) downloads ahead of the reader into a bounded channel, so memory
//! stays flat whatever the file size; seeks outside the bytes already held become HTTP
//! Range requests; transient network failures are retried and resumed at the exact byte.
//! The same bytes are also available as an async [`Stream`](futures_core::Stream) of
//! [`Bytes`] through [`FileSession::stream`], with no async runtime inside the crate.
//!
//! ```no_run
//! use std::io::{Read, Seek, SeekFrom};
//! use kithara_file::{FileSource, FileSourceOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let url = "http://127.0.0.1:8000/track.flac".parse()?;
//! let mut session = FileSource::open(url, FileSourceOptions::new())?;
//! println!("{:?} bytes", session.byte_len());
//!
//! let mut head = [0u8; 4096];
//! session.read_exact(&mut head)?;        // blocks until the bytes arrive
//! session.seek(SeekFrom::End(-128))?;    // a Range request, no full download
//! let mut tail = Vec::new();
//! session.read_to_end(&mut tail)?;       // Ok(0) only at the real end
//! # Ok(())
//! # }
//! ```
//!
//! # Contract
//!
//! - `read` returns `Ok(0)` only at the end of the file. Network failures that retries
//!   cannot mend come back as errors that wrap a [`FileError`] (downcast with
//!   `io_err.get_ref()`), never as a short file.
//! - Every byte handed out is the byte at that offset of the first version of the file:
//!   responses are checked (`206` with the right `Content-Range`, validators pinned on
//!   the first response); a change on the server is [`FileError::ResourceChanged`].
//! - Dropping the last handle stops the driver thread and joins it without waiting on
//!   the network.
//! - No server input panics or hangs a session, and nothing the crate shows (errors,
//!   events, `Debug`, its `log` lines) contains a URL's userinfo or query string or a
//!   credential header's value.
//!
//! # Platforms
//!
//! Linux is supported and tested. macOS and the BSDs use the same `std` calls (portable
//! `File::try_lock` file locks, `std::os::unix::fs::FileExt` positional I/O) but are not
//! tested by this project. Windows has an implementation of the few OS specifics of the
//! asset cache that is neither built nor tested by CI: treat it as unsupported. Other
//! targets do not compile.
//!
//! # Cargo features
//!
//! None is on by default; each only adds trait implementations (and their optional
//! dependency), never a runtime or a thread:
//!
//! - `symphonia`: `symphonia_core::io::MediaSource` (symphonia 0.6) for [`FileSession`];
//! - `symphonia-05`: the same for symphonia 0.5 (what rodio 0.23 decodes with);
//! - `futures-io`: `FileSession::async_reader`, an `AsyncFileReader` that implements
//!   `futures_io::AsyncRead + AsyncSeek` (for `futures`, async-std, smol);
//! - `tokio`: the same `AsyncFileReader` implements `tokio::io::AsyncRead + AsyncSeek`
//!   (with both features, one type implements both sets). `AsyncFileReader` exists when
//!   either is on;
//! - `play`: builds `examples/play.rs`, which plays a URL on the default output device
//!   (rodio with audio output; links ALSA on Linux).
//!
//! ```toml
//! [dependencies]
//! kithara-file = { version = "0.1", features = ["tokio"] }
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod agent;
mod cache;
mod driver;
mod error;
mod events;
#[cfg(any(feature = "symphonia", feature = "symphonia-05"))]
mod media_source;
mod options;
mod platform;
mod prefetch;
mod range_policy;
mod range_set;
mod redact;
mod session;

use std::sync::{Mutex, MutexGuard, PoisonError};

pub use bytes::Bytes;
pub use url::Url;

pub use cache::{AssetCache, AssetId, CacheEntry};
pub use error::FileError;
pub use events::{DownloadState, FileEvent, Progress};
pub use options::FileSourceOptions;
pub use prefetch::Prefetch;
#[cfg(any(feature = "futures-io", feature = "tokio"))]
pub use session::AsyncFileReader;
pub use session::{FileSession, FileSource, FileStream};

/// Locks a mutex whose data stays consistent even if a holder panicked (every update
/// under these locks is a single assignment or a completed operation), so poisoning is
/// ignored rather than taking the session down.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
