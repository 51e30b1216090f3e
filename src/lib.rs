//! Play a file straight off an HTTP server as if it were local.
//!
//! A [`FileSession`] is [`std::io::Read`] + [`std::io::Seek`] over a remote file. A
//! background thread (the driver) downloads ahead of the reader into a bounded channel, so
//! memory stays flat whatever the file size; seeks outside the bytes already held become
//! HTTP Range requests; transient network failures are retried and resumed at the exact
//! byte. An [`AssetCache`] keeps what was downloaded for the next play, offline too, and
//! can [prefetch](AssetCache::prefetch) the next track. The same bytes are also an async
//! [`Stream`] ([`FileSession::stream`]) and, with a feature, an [`AsyncFileReader`], with
//! no async runtime inside the crate.
//!
//! [`Stream`]: https://docs.rs/futures-core/0.3/futures_core/stream/trait.Stream.html
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
//! `cargo run --release --example demo` shows all of it against a loopback server it
//! starts itself (streaming, seeks, a cut connection resumed, a prefetch, the cache and
//! offline playback); `cargo run --release --example demo -- URL` streams any URL.
//!
//! # Use cases
//!
//! ## Streaming
//!
//! [`FileSource::open`] returns once the first response's headers arrived (a `404` is an
//! error right there), then `read` blocks until bytes arrive. [`FileSession::progress`]
//! and [`FileSourceOptions::with_events`] feed a progress bar; [`FileSession::stop`] ends
//! a blocked read from another thread. Every knob is a `with_*` setter of
//! [`FileSourceOptions`], each with its default.
//!
//! ```no_run
//! use std::io::Read;
//! use kithara_file::{FileSource, FileSourceOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let url = "https://cdn.example/podcast.mp3".parse()?;
//! let mut session = FileSource::open(url, FileSourceOptions::new())?;
//! let mut copy = std::fs::File::create("podcast.mp3")?;
//! let bytes = std::io::copy(&mut session, &mut copy)?;
//! assert_eq!(Some(bytes), session.byte_len());
//! # Ok(())
//! # }
//! ```
//!
//! ## Seeking
//!
//! `Seek` (all three [`SeekFrom`](std::io::SeekFrom)s) and [`FileSession::seek_bytes`]
//! never block on the network: a seek into bytes the session holds costs nothing, any
//! other starts a `Range` request: bounded at first (16 KiB, then growing with what the
//! reader reads on, on a kept-alive connection), one open-ended request once the reader
//! has read 256 KiB on (it is playing, not probing). [`FileSession::is_seekable`] says whether every
//! position is reachable; [`FileSession::buffered_ranges`] is what a seek bar shows.
//!
//! ```no_run
//! use std::io::{Read, Seek, SeekFrom};
//! use kithara_file::{FileSource, FileSourceOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut session = FileSource::open("http://127.0.0.1:8000/a.flac".parse()?, FileSourceOptions::new())?;
//! if session.is_seekable() {
//!     session.seek(SeekFrom::Start(1 << 20))?;
//!     let mut frame = [0u8; 4096];
//!     session.read_exact(&mut frame)?;
//! }
//! println!("available without the network: {:?}", session.buffered_ranges());
//! # Ok(())
//! # }
//! ```
//!
//! ## Decoding with symphonia
//!
//! With the `symphonia` feature a [`FileSession`] is a symphonia 0.6 `MediaSource`
//! (`symphonia-05` for 0.5), so it goes straight into a `MediaSourceStream`. It reports
//! itself seekable only when Range requests work and the length is known.
//!
//! ```no_run
//! # #[cfg(feature = "symphonia")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use symphonia::core::formats::probe::Hint;
//! use symphonia::core::io::MediaSourceStream;
//! use kithara_file::{FileSource, FileSourceOptions};
//!
//! let session = FileSource::open("http://127.0.0.1:8000/a.flac".parse()?, FileSourceOptions::new())?;
//! let stream = MediaSourceStream::new(Box::new(session), Default::default());
//! let format = symphonia::default::get_probe().probe(
//!     Hint::new().with_extension("flac"),
//!     stream,
//!     Default::default(),
//!     Default::default(),
//! )?;
//! println!("{}", format.format_info().long_name);
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "symphonia"))]
//! # fn main() {}
//! ```
//!
//! ## Playing with rodio
//!
//! rodio 0.23 takes any `Read + Seek + Send + Sync + 'static` value; no feature is needed.
//! Give it the length (and `seekable`) only when Range requests work.
//! `cargo run --example play --features play -- URL` plays a URL.
//!
//! ```no_run
//! use kithara_file::{FileSource, FileSourceOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let session = FileSource::open("http://127.0.0.1:8000/a.mp3".parse()?, FileSourceOptions::new())?;
//! let mut builder = rodio::Decoder::builder().with_hint("mp3");
//! if let (true, Some(len)) = (session.is_seekable(), session.byte_len()) {
//!     builder = builder.with_byte_len(len).with_seekable(true);
//! }
//! let decoder = builder.with_data(session).build()?;
//! // player.append(decoder);
//! # drop(decoder);
//! # Ok(())
//! # }
//! ```
//!
//! ## Async
//!
//! [`FileSession::stream`] is a [`FileStream`], a `Stream<Item = Result<Bytes,
//! FileError>>` that works under any executor. With the `futures-io` or `tokio` feature,
//! [`FileSession::async_reader`] is an [`AsyncFileReader`]: `AsyncRead + AsyncSeek` over
//! the same cursor. No poll ever blocks an executor thread; [`FileSource::open`] itself
//! waits for the first headers, so call it through `spawn_blocking` in async code.
//!
//! ```no_run
//! use futures::StreamExt;
//! use kithara_file::{FileSource, FileSourceOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let session = FileSource::open("http://127.0.0.1:8000/a.bin".parse()?, FileSourceOptions::new())?;
//! let total = futures::executor::block_on(async {
//!     let mut stream = session.stream();
//!     let mut total = 0;
//!     while let Some(chunk) = stream.next().await {
//!         total += chunk?.len();
//!     }
//!     Ok::<_, kithara_file::FileError>(total)
//! })?;
//! # let _ = total;
//! # Ok(())
//! # }
//! ```
//!
//! ## Cache
//!
//! [`AssetCache::open`] a directory and open sessions with [`FileSource::open_with_cache`]:
//! a complete body is served memory-mapped with no request; a download is committed once
//! complete and synced, and a stopped one resumes from its partial file.
//! [`AssetCache::with_max_bytes`] bounds the disk (LRU, never under a session). An app
//! manages it by [`AssetId`] ([`AssetId::from_url`], [`AssetId::from_key`]):
//! [`AssetCache::is_cached`], [`AssetCache::entries`] ([`CacheEntry`]),
//! [`AssetCache::used_bytes`], [`AssetCache::remove`].
//!
//! ```
//! use kithara_file::{AssetCache, AssetId, Url};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let root = dir.path();
//! let cache = AssetCache::open(root)?.with_max_bytes(2 << 30);
//! let url: Url = "https://cdn.example/track.mp3".parse()?;
//! assert!(!cache.is_cached(&AssetId::from_url(&url)));
//! // let session = FileSource::open_with_cache(url, FileSourceOptions::new(), &cache)?;
//! for entry in cache.entries() {
//!     println!("{}: {} bytes, complete: {}", entry.id, entry.len, entry.complete);
//! }
//! println!("{} bytes on disk", cache.used_bytes());
//! # Ok(())
//! # }
//! ```
//!
//! ## Prefetch
//!
//! [`AssetCache::prefetch`] downloads the next track into the cache in the background and
//! returns a [`Prefetch`]. A session opened on it meanwhile takes over: no byte is
//! downloaded twice. [`FileSourceOptions::with_max_bytes`] limits it to the first bytes
//! and [`FileSourceOptions::with_rate_limit`] caps its rate.
//!
//! ```no_run
//! use std::time::Duration;
//! use kithara_file::{AssetCache, FileSource, FileSourceOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cache = AssetCache::open("/var/cache/my-player")?;
//! let next = "https://cdn.example/next.mp3".parse()?;
//! let prefetch = cache.prefetch(next, FileSourceOptions::new().with_max_bytes(512 * 1024))?;
//! prefetch.wait(Duration::from_secs(10))?;
//! // The user presses "next": the first 512 KiB come from disk.
//! let session = FileSource::open_with_cache(
//!     "https://cdn.example/next.mp3".parse()?,
//!     FileSourceOptions::new(),
//!     &cache,
//! )?;
//! # drop(session);
//! # Ok(())
//! # }
//! ```
//!
//! ## Offline
//!
//! The cache is offline-first: a complete body is served without asking the server, so it
//! plays with no network at all ([`FileSession::is_cached`] is then `true` and
//! [`FileSession::request_count`] stays 0). With
//! [`FileSourceOptions::with_revalidate(true)`](FileSourceOptions::with_revalidate) it asks
//! the server first (`304` serves the cache, a new version replaces it, no answer serves
//! the cache).
//!
//! ```no_run
//! use kithara_file::{AssetCache, AssetId, FileSource, FileSourceOptions, Url};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cache = AssetCache::open("/var/cache/my-player")?;
//! let url: Url = "https://cdn.example/track.mp3".parse()?;
//! if cache.is_cached(&AssetId::from_url(&url)) {
//!     let session = FileSource::open_with_cache(url, FileSourceOptions::new(), &cache)?;
//!     assert_eq!(session.request_count(), 0);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! ## Errors
//!
//! Everything is a [`FileError`]. Through `Read` and `Seek` it arrives wrapped in an
//! [`std::io::Error`] (of kind [`FileError::io_kind`]): downcast with `get_ref()`. `read`
//! returns `Ok(0)` only at the real end, so a decoder never mistakes a network failure
//! for the end of a track.
//!
//! ```
//! use kithara_file::{FileError, FileSource, FileSourceOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let url = "ftp://example.com/track.mp3".parse()?;
//! match FileSource::open(url, FileSourceOptions::new()) {
//!     Err(FileError::InvalidUrl(why)) => println!("{why}"),
//!     Err(FileError::HttpStatus { status: 404, .. }) => println!("no such track"),
//!     Err(other) => return Err(other.into()),
//!     Ok(_) => unreachable!("ftp is not streamed"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! ## Signed URLs, metered links, private servers
//!
//! - [`FileSourceOptions::with_url_refresh`]: a fresh URL when a signed one expires
//!   mid-track (`401`/`403`/`410`), resumed at the exact byte;
//!   [`with_cache_key`](FileSourceOptions::with_cache_key) keeps one cache entry for URLs
//!   whose query changes.
//! - [`FileSourceOptions::with_rate_limit`]: caps the download rate (requests of half a
//!   second at the cap, so the server cannot run ahead into socket buffers);
//!   [`with_look_ahead`](FileSourceOptions::with_look_ahead) caps what is received ahead
//!   of the reader, and [`with_metered_link`](FileSourceOptions::with_metered_link) also
//!   what is requested (bounded requests ending within the look-ahead).
//! - [`FileSourceOptions::with_root_certificate`] trusts a private CA;
//!   [`with_proxy`](FileSourceOptions::with_proxy) sets an HTTP proxy;
//!   [`with_secret_header`](FileSourceOptions::with_secret_header) adds a credential that is
//!   never shown and never follows a redirect to another origin.
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
//!   credential header's value. ureq's own `debug` and `trace` log lines do show full
//!   request URLs (a signed URL's query included): filter the `ureq` target below
//!   `debug` where URLs are signed.
//!
//! # Cargo features
//!
//! None is on by default; each only adds trait implementations (and their optional
//! dependency), never a runtime or a thread:
//!
//! - `symphonia`: [`symphonia_core::io::MediaSource`][ms06] (symphonia 0.6) for
//!   [`FileSession`];
//! - `symphonia-05`: the same for symphonia 0.5 ([`MediaSource`][ms05], what rodio 0.23
//!   decodes with);
//! - `futures-io`: [`FileSession::async_reader`], an [`AsyncFileReader`] that implements
//!   [`futures_io::AsyncRead`][far] + [`AsyncSeek`][fas] (for `futures`, async-std, smol);
//! - `tokio`: the same [`AsyncFileReader`] implements [`tokio::io::AsyncRead`][tar] +
//!   [`AsyncSeek`][tas] (with both features, one type implements both sets).
//!   `AsyncFileReader` and `async_reader` exist when either is on;
//! - `play`: builds `examples/play.rs`, which plays a URL on the default output device
//!   (rodio with audio output; links ALSA on Linux). The library does not change.
//!
//! ```toml
//! [dependencies]
//! kithara-file = { version = "0.1", features = ["tokio"] }
//! ```
//!
//! [ms06]: https://docs.rs/symphonia-core/0.6/symphonia_core/io/trait.MediaSource.html
//! [ms05]: https://docs.rs/symphonia-core/0.5/symphonia_core/io/trait.MediaSource.html
//! [far]: https://docs.rs/futures-io/0.3/futures_io/trait.AsyncRead.html
//! [fas]: https://docs.rs/futures-io/0.3/futures_io/trait.AsyncSeek.html
//! [tar]: https://docs.rs/tokio/1/tokio/io/trait.AsyncRead.html
//! [tas]: https://docs.rs/tokio/1/tokio/io/trait.AsyncSeek.html
//!
//! # Platforms
//!
//! Linux is supported and tested (CI runs on Debian 12). macOS and the BSDs use the same
//! `std` calls (portable `File::try_lock` file locks, `std::os::unix::fs::FileExt`
//! positional I/O) but are not tested by this project. Windows has an implementation of
//! the few OS specifics of the asset cache that is neither built nor tested by CI: treat
//! it as unsupported. Targets that are neither Unix nor Windows (WebAssembly among them)
//! stop the build with a `compile_error!`.
// Without the features that define them, the crate docs' links to the async reader point
// at the section on features, so `cargo doc` is clean with any feature set.
#![cfg_attr(
    not(any(feature = "futures-io", feature = "tokio")),
    doc = "",
    doc = "[`AsyncFileReader`]: #cargo-features",
    doc = "[`FileSession::async_reader`]: #cargo-features"
)]
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

/// The chunk type of [`FileStream`], re-exported from the `bytes` crate.
pub use bytes::Bytes;
/// The URL type every `open` takes, re-exported from the `url` crate.
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
