//! The user's handle: [`FileSource`] opens a [`FileSession`], which reads and seeks like
//! a local file while its driver thread downloads ahead.
//!
//! Its parts:
//! - [`open`]: from a URL (and a cache) to a session: cache hit, resumed partial, or fresh;
//! - [`cached`]: a session over a complete body in the cache (memory-mapped, no thread);
//! - [`remote`]: a session over the network: cursor, reading turn, driver;
//! - [`cursor`]: the remote reader's position, the chunks it holds, the fetch it follows;
//! - [`stream`]: the same bytes as an async `Stream`.

#[cfg(any(feature = "futures-io", feature = "tokio"))]
mod async_read;
mod cached;
mod cursor;
pub(crate) mod open;
mod remote;
mod stream;

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::Arc;

use url::Url;

use crate::cache::{AssetCache, AssetId, AssetLease, PartialFile};
use crate::driver::{Status, StopSignal};
use crate::events::{DownloadState, EventSink, FileEvent, Progress};
use crate::range_policy::{resolve_seek, resolve_seek_bytes, SeekTargetError};
use crate::{FileError, FileSourceOptions};

#[cfg(any(feature = "futures-io", feature = "tokio"))]
pub use async_read::AsyncFileReader;
pub use stream::FileStream;

/// Opens remote files as [`FileSession`]s: [`open`](FileSource::open) streams from the
/// network, [`open_with_cache`](FileSource::open_with_cache) through an [`AssetCache`].
///
/// ```no_run
/// use kithara_file::{AssetCache, FileSource, FileSourceOptions};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let url: kithara_file::Url = "https://cdn.example/track.mp3".parse()?;
/// let direct = FileSource::open(url.clone(), FileSourceOptions::new())?;
/// let cache = AssetCache::open("/var/cache/my-player")?;
/// let cached = FileSource::open_with_cache(url, FileSourceOptions::new(), &cache)?;
/// # drop((direct, cached));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct FileSource;

impl FileSource {
    /// Opens `url` for streaming.
    ///
    /// Starts the session's driver thread and returns once the first response's headers
    /// have arrived, so the length is known (when the server tells it) before the first
    /// read. When the time left allows a whole read timeout, it also waits for the first
    /// bytes here: the first `read` then costs no thread handoff. Transient failures of that first request are retried like any other, within
    /// [`FileSourceOptions::with_open_timeout`] for the whole call.
    ///
    /// ```no_run
    /// # use kithara_file::{FileSource, FileSourceOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::io::Read;
    /// let url = "http://127.0.0.1:8000/track.flac".parse()?;
    /// let options = FileSourceOptions::new().with_read_timeout(std::time::Duration::from_secs(5));
    /// let mut session = FileSource::open(url, options)?;
    /// println!("{:?} bytes, {:?}", session.byte_len(), session.content_type());
    /// let mut head = [0u8; 4];
    /// session.read_exact(&mut head)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// - [`FileError::InvalidUrl`] for anything but an `http` or `https` URL with a host;
    /// - [`FileError::InvalidOptions`] for a bad option value;
    /// - [`FileError::HttpStatus`] when the server refuses (`404`, `403`, ...);
    /// - [`FileError::Network`] when the server cannot be reached within the retry budget
    ///   or the open timeout;
    /// - [`FileError::Protocol`] for an answer that breaks the HTTP contract.
    pub fn open(url: Url, options: FileSourceOptions) -> Result<FileSession, FileError> {
        open::open(url, options, None)
    }

    /// Opens `url` through an asset cache.
    ///
    /// - A complete body in the cache is served from disk (memory-mapped) with no
    ///   network request at all, so this works offline.
    /// - Otherwise the session streams from the network and writes what it downloads
    ///   into the cache; the body becomes visible only once complete and synced, and it
    ///   is committed as soon as the last byte arrived, whether the session is then read
    ///   to the end, dropped or stopped. Bytes a stopped session left behind are reused:
    ///   only the gaps are fetched, after the server confirms the resource has not changed.
    ///
    /// A cache that fails (read-only, full, locked by another writer) only turns caching
    /// off for this session; playback goes on from the network.
    ///
    /// # Errors
    ///
    /// As [`FileSource::open`]; never a cache error.
    ///
    /// ```no_run
    /// # use kithara_file::{FileSource, FileSourceOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use kithara_file::AssetCache;
    /// let cache = AssetCache::open("/var/cache/my-player")?;
    /// let url = "https://cdn.example/track.mp3".parse()?;
    /// let session = FileSource::open_with_cache(url, FileSourceOptions::new(), &cache)?;
    /// println!("served from disk: {}", session.is_cached());
    /// # Ok(())
    /// # }
    /// ```
    pub fn open_with_cache(
        url: Url,
        options: FileSourceOptions,
        cache: impl Into<AssetCache>,
    ) -> Result<FileSession, FileError> {
        open::open(url, options, Some(cache.into()))
    }
}

/// A remote file opened for streaming: `Read + Seek` like a local file, with a
/// background thread downloading ahead of the reader.
///
/// `&FileSession` implements `Read` and `Seek` too (like `&std::fs::File`), so one thread
/// can read while another calls [`stop`](FileSession::stop) or asks for the
/// [`position`](FileSession::position). Reads from several threads are serialized. No
/// query (`position`, `byte_len`, `buffered_ranges`, `progress`, ...) and no `stop` ever
/// waits for a read that is blocked on the network.
///
/// # Reading
///
/// `read` blocks until bytes arrive; a byte that has arrived from the network is readable
/// at once, whatever the socket does next. `Ok(0)` means the end of the file and nothing
/// else: a network failure that retries could not mend is an error (kind
/// `ConnectionAborted`, wrapping [`FileError::Network`]), never a short file.
///
/// # Seeking
///
/// `seek` never blocks on the network. A seek into bytes the session holds (downloaded
/// ahead, or among the last 256 KiB read), or at most 128 KiB past what the running
/// request has received, costs no request; any other seek starts a `Range` request for
/// the new position and bytes of the old request never reach the reader afterwards.
/// Seeking to the length is allowed and the next read returns 0.
///
/// # Handles
///
/// `clone` gives another handle on the same session, like `File::try_clone`: all handles
/// share one cursor (a read or seek through one moves it for all) and one download. Give
/// one to a decoder on its thread and keep one for stats and [`stop`](FileSession::stop),
/// which stops every handle. Dropping a handle while others live changes nothing.
///
/// ```no_run
/// use std::io::Read;
/// use kithara_file::{FileSource, FileSourceOptions};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let session = FileSource::open("http://127.0.0.1:8000/a.mp3".parse()?, FileSourceOptions::new())?;
/// let mut reader = session.clone();
/// let decoder = std::thread::spawn(move || {
///     let mut bytes = Vec::new();
///     reader.read_to_end(&mut bytes).map(|_| bytes.len())
/// });
/// println!("{:?}", session.progress());
/// session.stop(); // the decoder's read returns an error wrapping FileError::Stopped
/// let _ = decoder.join();
/// # Ok(())
/// # }
/// ```
///
/// # Stopping and dropping
///
/// After [`stop`](FileSession::stop), `read` and `seek` return [`FileError::Stopped`].
/// Dropping the last handle of the session (its clones, every [`FileStream`] and every
/// async reader of it) stops the driver, cancels any request in flight, and joins the
/// thread (a cache commit in progress is finished first).
#[derive(Clone)]
pub struct FileSession {
    inner: Arc<Inner>,
}

/// What every part of a session reads: the status (the reader's position among it) and
/// the stop signal.
pub(crate) struct SessionState {
    pub status: Arc<Status>,
    pub stop: StopSignal,
}

/// Where a session's bytes come from.
#[allow(
    clippy::large_enum_variant,
    reason = "one per session, inside its Arc: boxing would only add an indirection"
)]
enum Source {
    Cached(cached::Cached),
    Remote(remote::Remote),
}

struct Inner {
    state: SessionState,
    source: Source,
    asset_id: AssetId,
    /// The URL, redacted.
    url: String,
    content_type: Option<String>,
    cache: Option<CacheUse>,
    events: Option<EventSink>,
}

/// A session's hold on its cache entry.
struct CacheUse {
    /// Pins the asset against eviction for the session's life.
    lease: AssetLease,
    /// The partial file this session writes (and reads back), when it is the writer.
    partial: Option<Arc<PartialFile>>,
}

impl Inner {
    fn stop(&self) {
        // The signal first: a cancelled driver then finds it closed.
        self.state.stop.stop();
        if let Source::Remote(remote) = &self.source {
            remote.stop();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The driver (in `source`) is joined next, before the cache lease is released.
        self.stop();
    }
}

impl FileSession {
    /// The stable id of this session's asset, derived from the URL (or the
    /// [`with_cache_key`](FileSourceOptions::with_cache_key) key).
    ///
    /// ```no_run
    /// # use kithara_file::{FileSource, FileSourceOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use kithara_file::{AssetId, Url};
    /// let url: Url = "http://127.0.0.1:8000/a.mp3".parse()?;
    /// let session = FileSource::open(url.clone(), FileSourceOptions::new())?;
    /// assert_eq!(session.asset_id(), &AssetId::from_url(&url));
    /// # Ok(())
    /// # }
    /// ```
    pub fn asset_id(&self) -> &AssetId {
        &self.inner.asset_id
    }

    /// The length of the file, when the server told it (or the download reached the end).
    ///
    /// ```no_run
    /// # use kithara_file::{FileSource, FileSourceOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let session = FileSource::open("http://127.0.0.1:8000/a.mp3".parse()?, FileSourceOptions::new())?;
    /// match session.byte_len() {
    ///     Some(len) => println!("{len} bytes"),
    ///     None => println!("length unknown (a live stream?)"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn byte_len(&self) -> Option<u64> {
        self.inner.state.status.size()
    }

    /// The position of the next byte `read` returns.
    ///
    /// ```no_run
    /// # use kithara_file::{FileSource, FileSourceOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let session = FileSource::open("http://127.0.0.1:8000/a.mp3".parse()?, FileSourceOptions::new())?;
    /// use std::io::Read;
    /// let mut reader = session.clone();
    /// reader.read_exact(&mut [0u8; 100])?;
    /// assert_eq!(session.position(), 100); // clones share one cursor
    /// # Ok(())
    /// # }
    /// ```
    pub fn position(&self) -> u64 {
        self.inner.state.status.position()
    }

    /// Whether any position can be reached by seeking: true only when the server honours
    /// Range requests, the options allow them, and the length is known.
    ///
    /// ```no_run
    /// # use kithara_file::{FileSource, FileSourceOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let session = FileSource::open("http://127.0.0.1:8000/a.mp3".parse()?, FileSourceOptions::new())?;
    /// use std::io::{Seek, SeekFrom};
    /// let mut session = session;
    /// if session.is_seekable() {
    ///     session.seek(SeekFrom::End(-128))?; // e.g. an ID3v1 tag
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_seekable(&self) -> bool {
        self.inner.state.status.ranges() && self.byte_len().is_some()
    }

    /// The `Content-Type` of the first response, if it had one; `None` for a session
    /// served from the cache.
    ///
    /// A `text/html` label on a `206 Partial Content` answer is not trusted (busybox httpd
    /// labels every 206 so, while a plain GET of the same file says `audio/mpeg`): then
    /// the type is `None`. A `200` labelled `text/html` is reported as it is (and never
    /// cached: it may be a captive portal's login page).
    ///
    /// ```no_run
    /// # use kithara_file::{FileSource, FileSourceOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let session = FileSource::open("http://127.0.0.1:8000/a.mp3".parse()?, FileSourceOptions::new())?;
    /// let audio = session.content_type().is_some_and(|t| t.starts_with("audio/"));
    /// println!("audio: {audio}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn content_type(&self) -> Option<String> {
        self.inner.content_type.clone()
    }

    /// Moves the read position to `position` bytes from the start. A negative position
    /// clamps to 0. Returns the new position.
    ///
    /// Seeking to the same place twice sends nothing. With an unknown length any
    /// position is accepted and reads past the real end return 0.
    ///
    /// # Errors
    ///
    /// - [`FileError::InvalidSeekPosition`] past the known length; the position does not
    ///   change and nothing is sent;
    /// - [`FileError::SeekNotSupported`] for a backward seek outside the held bytes when
    ///   Range requests are off or unsupported by the server;
    /// - [`FileError::Stopped`] after [`stop`](FileSession::stop).
    ///
    /// ```no_run
    /// # use kithara_file::{FileSource, FileSourceOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let session = FileSource::open("http://127.0.0.1:8000/a.mp3".parse()?, FileSourceOptions::new())?;
    /// assert_eq!(session.seek_bytes(4096)?, 4096);
    /// assert_eq!(session.seek_bytes(-1)?, 0); // clamps to the start
    /// # Ok(())
    /// # }
    /// ```
    pub fn seek_bytes(&self, position: i64) -> Result<u64, FileError> {
        let size = self.byte_len();
        self.move_cursor(|_| resolve_seek_bytes(position, size).map_err(SeekTargetError::File))
            .map_err(|error| match error {
                SeekTargetError::File(error) => error,
                // Never: a negative position clamps to 0.
                SeekTargetError::BeforeStart => FileError::SeekNotSupported,
            })
    }

    /// Stops the session: a blocked `read` returns at once with an error wrapping
    /// [`FileError::Stopped`], later reads and seeks fail the same way, a stream yields
    /// one `Err(Stopped)` and ends, and the request in flight is cancelled. The driver
    /// thread is joined when the last handle is dropped. Never blocks.
    ///
    /// ```no_run
    /// # use kithara_file::{FileSource, FileSourceOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let session = FileSource::open("http://127.0.0.1:8000/a.mp3".parse()?, FileSourceOptions::new())?;
    /// use std::io::Read;
    /// let mut reader = session.clone();
    /// let decoder = std::thread::spawn(move || reader.read_to_end(&mut Vec::new()));
    /// session.stop(); // the user pressed stop: the blocked read returns at once
    /// assert!(decoder.join().unwrap().is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn stop(&self) {
        self.inner.stop();
    }

    /// An async [`Stream`] of the bytes from the current position,
    /// sharing this session's cursor and channel: see [`FileStream`].
    ///
    /// [`Stream`]: https://docs.rs/futures-core/0.3/futures_core/stream/trait.Stream.html
    ///
    /// ```no_run
    /// # use kithara_file::{FileSource, FileSourceOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let session = FileSource::open("http://127.0.0.1:8000/a.mp3".parse()?, FileSourceOptions::new())?;
    /// use futures::StreamExt;
    /// let mut stream = session.stream();
    /// futures::executor::block_on(async {
    ///     while let Some(chunk) = stream.next().await {
    ///         println!("{} bytes", chunk?.len());
    ///     }
    ///     Ok::<_, kithara_file::FileError>(())
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn stream(&self) -> FileStream {
        FileStream::new(Arc::clone(&self.inner))
    }

    /// The byte ranges available without the network: the cache's bytes, what the
    /// session holds in memory, and what the driver has downloaded ahead. Sorted and
    /// merged, for a player's seek bar.
    ///
    /// ```no_run
    /// # use kithara_file::{FileSource, FileSourceOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let session = FileSource::open("http://127.0.0.1:8000/a.mp3".parse()?, FileSourceOptions::new())?;
    /// for range in session.buffered_ranges() {
    ///     println!("held: bytes {}..{}", range.start, range.end);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn buffered_ranges(&self) -> Vec<Range<u64>> {
        match &self.inner.source {
            Source::Cached(cached) => std::iter::once(0..cached.len()).collect(),
            Source::Remote(remote) => remote.buffered_ranges(),
        }
    }

    /// Whether the complete body of this asset is in the cache: served from it, or
    /// committed since (by this session, another session, or another process).
    /// Always `false` for a session opened without a cache.
    ///
    /// ```no_run
    /// # use kithara_file::{FileSource, FileSourceOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use kithara_file::AssetCache;
    /// let cache = AssetCache::open("/var/cache/my-player")?;
    /// let url = "https://cdn.example/track.mp3".parse()?;
    /// let session = FileSource::open_with_cache(url, FileSourceOptions::new(), &cache)?;
    /// if session.is_cached() {
    ///     println!("plays offline");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_cached(&self) -> bool {
        // A writer's own commit is what counts (a body already there may be the version it
        // replaces); a reader counts whoever committed.
        matches!(self.inner.source, Source::Cached(_))
            || self.inner.state.status.is_committed()
            || self
                .inner
                .cache
                .as_ref()
                .is_some_and(|cache| cache.partial.is_none() && cache.lease.has_complete_body())
    }

    /// A snapshot for a progress bar: bytes downloaded, the length if known, the read
    /// position, and what the session is doing.
    ///
    /// ```no_run
    /// # use kithara_file::{FileSource, FileSourceOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let session = FileSource::open("http://127.0.0.1:8000/a.mp3".parse()?, FileSourceOptions::new())?;
    /// let progress = session.progress();
    /// if let Some(total) = progress.total {
    ///     println!("{:.0}% downloaded", 100.0 * progress.downloaded as f64 / total.max(1) as f64);
    /// }
    /// println!("{:?}", progress.state);
    /// # Ok(())
    /// # }
    /// ```
    pub fn progress(&self) -> Progress {
        let status = &self.inner.state.status;
        let mut state = status.state();
        let waiting = matches!(&self.inner.source, Source::Remote(r) if r.is_waiting());
        if waiting && matches!(state, DownloadState::Streaming | DownloadState::Connecting) {
            state = DownloadState::Buffering;
        }
        Progress {
            downloaded: status.bytes_fetched(),
            total: self.byte_len(),
            position: self.position(),
            state,
        }
    }

    /// How many times the driver backed off and retried after a transient failure.
    ///
    /// ```no_run
    /// # use kithara_file::{FileSource, FileSourceOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let session = FileSource::open("http://127.0.0.1:8000/a.mp3".parse()?, FileSourceOptions::new())?;
    /// println!("{} retries so far", session.retry_count());
    /// # Ok(())
    /// # }
    /// ```
    pub fn retry_count(&self) -> u64 {
        self.inner.state.status.retries()
    }

    /// How many HTTP requests the session has sent (retries and redirects included).
    ///
    /// ```no_run
    /// # use kithara_file::{FileSource, FileSourceOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let session = FileSource::open("http://127.0.0.1:8000/a.mp3".parse()?, FileSourceOptions::new())?;
    /// use std::io::Read;
    /// let mut session = session;
    /// session.read_to_end(&mut Vec::new())?;
    /// println!("{} request(s) for the whole file", session.request_count());
    /// # Ok(())
    /// # }
    /// ```
    pub fn request_count(&self) -> u64 {
        self.inner.state.status.requests()
    }

    /// Body bytes received from the network (including bytes skipped or discarded).
    ///
    /// ```no_run
    /// # use kithara_file::{FileSource, FileSourceOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let session = FileSource::open("http://127.0.0.1:8000/a.mp3".parse()?, FileSourceOptions::new())?;
    /// println!("{} bytes from the network", session.bytes_fetched());
    /// # Ok(())
    /// # }
    /// ```
    pub fn bytes_fetched(&self) -> u64 {
        self.inner.state.status.bytes_fetched()
    }

    fn read_impl(&self, buf: &mut [u8]) -> io::Result<usize> {
        let state = &self.inner.state;
        if state.stop.is_stopped() {
            return Err(FileError::Stopped.into());
        }
        if buf.is_empty() {
            return Ok(0);
        }
        match &self.inner.source {
            Source::Cached(cached) => Ok(cached.read(&state.status, buf)),
            Source::Remote(remote) => Ok(remote.read(state, buf)?),
        }
    }

    fn seek_impl(&self, from: SeekFrom) -> io::Result<u64> {
        let size = self.byte_len();
        self.move_cursor(|position| resolve_seek(from, position, size))
            .map_err(|error| match error {
                SeekTargetError::BeforeStart => io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "invalid seek to a negative position",
                ),
                SeekTargetError::File(error) => error.into(),
            })
    }

    /// Moves the cursor to where `resolve` says, from the current position; the seek
    /// event goes out after every lock is released.
    fn move_cursor(
        &self,
        resolve: impl FnOnce(u64) -> Result<u64, SeekTargetError>,
    ) -> Result<u64, SeekTargetError> {
        let state = &self.inner.state;
        if state.stop.is_stopped() {
            return Err(SeekTargetError::File(FileError::Stopped));
        }
        let (from, to) = match &self.inner.source {
            Source::Cached(cached) => cached.seek(&state.status, resolve)?,
            Source::Remote(remote) => remote.seek(state, resolve)?,
        };
        if from != to {
            if let Some(events) = &self.inner.events {
                events.emit(FileEvent::Seek { from, to });
            }
        }
        Ok(to)
    }
}

impl Read for FileSession {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_impl(buf)
    }
}

impl Read for &FileSession {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_impl(buf)
    }
}

impl Seek for FileSession {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.seek_impl(pos)
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.position())
    }
}

impl Seek for &FileSession {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.seek_impl(pos)
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.position())
    }
}

impl fmt::Debug for FileSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSession")
            .field("url", &self.inner.url)
            .field("asset_id", &self.inner.asset_id.as_str())
            .field("byte_len", &self.byte_len())
            .field("position", &self.position())
            .field("seekable", &self.is_seekable())
            .finish()
    }
}
