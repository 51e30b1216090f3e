//! What a player's UI shows: a [`Progress`] snapshot on demand, and [`FileEvent`]s as
//! they happen, without polling.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::FileError;

/// Where a session's download stands: [`Progress::state`], from
/// [`FileSession::progress`](crate::FileSession::progress) or
/// [`Prefetch::progress`](crate::Prefetch::progress).
///
/// ```
/// use kithara_file::DownloadState;
///
/// fn label(state: DownloadState) -> &'static str {
///     match state {
///         DownloadState::Connecting => "connecting…",
///         DownloadState::Buffering => "buffering…",
///         DownloadState::Streaming => "",
///         DownloadState::Complete => "downloaded",
///         DownloadState::Retrying => "reconnecting…",
///         DownloadState::Failed => "failed",
///         _ => "", // non_exhaustive
///     }
/// }
/// assert_eq!(label(DownloadState::Buffering), "buffering…");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DownloadState {
    /// A request is on its way; no response yet.
    Connecting,
    /// The reader is waiting for bytes that have not arrived.
    Buffering,
    /// Bytes are arriving.
    Streaming,
    /// Every byte of the file has been downloaded (or is in the cache).
    Complete,
    /// A transient failure happened; the driver waits before it retries.
    Retrying,
    /// The last fetch gave up (the reader got the error).
    Failed,
}

/// A snapshot of a session, for a progress bar: from
/// [`FileSession::progress`](crate::FileSession::progress) or
/// [`Prefetch::progress`](crate::Prefetch::progress).
///
/// ```
/// use kithara_file::{DownloadState, Progress};
///
/// fn bar(p: &Progress) -> String {
///     match p.total {
///         Some(total) if total > 0 => format!("{:3}%", p.downloaded * 100 / total),
///         _ => format!("{} KiB", p.downloaded / 1024),
///     }
/// }
/// let p = Progress { downloaded: 512, total: Some(2048), position: 0, state: DownloadState::Streaming };
/// assert_eq!(bar(&p), " 25%");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Body bytes received from the network so far (a cache hit downloads nothing).
    pub downloaded: u64,
    /// The length of the file, when known.
    pub total: Option<u64>,
    /// The reader's position.
    pub position: u64,
    /// What the session is doing.
    pub state: DownloadState,
}

/// Something that happened to a session, delivered to the callback given to
/// [`FileSourceOptions::with_events`](crate::FileSourceOptions::with_events).
///
/// The callback runs on the driver thread: forward events to the UI rather than doing work
/// in it.
///
/// ```no_run
/// use std::sync::mpsc;
/// use kithara_file::{FileEvent, FileSource, FileSourceOptions};
///
/// let (tx, events) = mpsc::channel();
/// let options = FileSourceOptions::new().with_events(move |event| {
///     let _ = tx.send(event);
/// });
/// let _session = FileSource::open("http://127.0.0.1:8000/a.mp3".parse()?, options)?;
/// for event in events {
///     match event {
///         FileEvent::Opened { length, from_cache, .. } => println!("{length:?} bytes, cached: {from_cache}"),
///         FileEvent::Retrying { attempt, delay, cause } => println!("retry {attempt} in {delay:?}: {cause}"),
///         FileEvent::CacheDisabled { reason } => println!("not caching: {reason}"),
///         FileEvent::Complete => break,
///         FileEvent::Error(e) => return Err(e.into()),
///         _ => {}
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileEvent {
    /// The first response arrived (or the complete body was found in the cache).
    Opened {
        /// The file's length, when known.
        length: Option<u64>,
        /// The `Content-Type` of the first response.
        content_type: Option<String>,
        /// Served from the asset cache, with no request.
        from_cache: bool,
    },
    /// Download progress, at most every 100 ms (never per chunk).
    Progress {
        /// Body bytes received so far.
        downloaded: u64,
        /// The length of the file, when known.
        total: Option<u64>,
    },
    /// The reader moved.
    Seek {
        /// The position before the seek.
        from: u64,
        /// The new position.
        to: u64,
    },
    /// A transient failure; the driver retries after `delay`.
    Retrying {
        /// The retry about to happen (1 for the first).
        attempt: u32,
        /// How long the driver waits first.
        delay: Duration,
        /// What went wrong, with credentials removed.
        cause: String,
    },
    /// The response went silent for longer than the read timeout.
    Stalled,
    /// Bytes flow again after a stall.
    Resumed,
    /// Every byte of the file has been downloaded (or was found in the cache). A fetch that
    /// reaches the end of the file (a decoder's probe of the last bytes) is not enough.
    Complete,
    /// The complete body has been committed to the asset cache: from now on
    /// [`FileSession::is_cached`](crate::FileSession::is_cached) is `true` and the next
    /// session on this asset is served from disk.
    Cached,
    /// A cache failure (read-only or full disk, a broken entry, a body of unknown length)
    /// turned caching off for this session; playback goes on from the network.
    CacheDisabled {
        /// What went wrong.
        reason: String,
    },
    /// A fetch gave up; the reader gets this error.
    Error(FileError),
}

/// The user's callback, shared by the options and the driver.
#[derive(Clone)]
pub(crate) struct EventSink(Arc<dyn Fn(FileEvent) + Send + Sync>);

impl EventSink {
    pub(crate) fn new(callback: impl Fn(FileEvent) + Send + Sync + 'static) -> Self {
        EventSink(Arc::new(callback))
    }

    pub(crate) fn emit(&self, event: FileEvent) {
        (self.0)(event);
    }
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<callback>")
    }
}

/// The driver's side of the state, readable from any handle.
#[derive(Debug)]
pub(crate) struct StateCell(AtomicU8);

impl StateCell {
    pub(crate) fn new(state: DownloadState) -> Self {
        StateCell(AtomicU8::new(state as u8))
    }

    pub(crate) fn set(&self, state: DownloadState) {
        self.0.store(state as u8, Ordering::Release);
    }

    pub(crate) fn get(&self) -> DownloadState {
        match self.0.load(Ordering::Acquire) {
            0 => DownloadState::Connecting,
            1 => DownloadState::Buffering,
            2 => DownloadState::Streaming,
            3 => DownloadState::Complete,
            4 => DownloadState::Retrying,
            _ => DownloadState::Failed,
        }
    }
}
