//! The one error type of the crate, and its mapping to [`std::io::Error`].

use std::io;

/// Everything that can go wrong while opening, reading or seeking a remote file.
///
/// Every variant carries the context a user needs to act on it. Text in variants never
/// contains credentials: URLs are redacted before they are stored here.
///
/// Through [`std::io::Read`] and [`std::io::Seek`] a `FileError` arrives wrapped in an
/// [`io::Error`]; `io_err.get_ref()` downcasts back to it:
///
/// ```
/// use kithara_file::FileError;
/// let io_err: std::io::Error = FileError::Stopped.into();
/// let back = io_err.get_ref().and_then(|e| e.downcast_ref::<FileError>());
/// assert!(matches!(back, Some(FileError::Stopped)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The URL cannot be streamed: not http or https, no host, or not parseable.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// A [`FileSourceOptions`](crate::FileSourceOptions) value is out of range or malformed.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// A seek past the known end of the file. The position did not change.
    #[error("cannot seek to byte {position}: the file has {size} bytes")]
    InvalidSeekPosition {
        /// The requested absolute position.
        position: u64,
        /// The known length of the file.
        size: u64,
    },
    /// The seek cannot be served: the server (or the options) do not allow Range requests
    /// and the target is not held, or the length needed for `SeekFrom::End` is unknown.
    #[error("seek not supported for this source")]
    SeekNotSupported,
    /// The server answered with a status that is not a success and not retryable (or was
    /// retried until the retry budget ran out).
    #[error("HTTP status {status} from {url}")]
    HttpStatus {
        /// The HTTP status code.
        status: u16,
        /// The URL that answered, with credentials removed.
        url: String,
    },
    /// The network failed and retries, if any, did not recover.
    #[error("network failure: {0}")]
    Network(String),
    /// The server broke the HTTP contract: a malformed or misplaced `Content-Range`, a
    /// refused redirect, a body that cannot be parsed.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The resource changed on the server since the session opened it (validators or
    /// length differ). Bytes handed out so far are a prefix of the first version; nothing
    /// of the new version follows.
    #[error("resource changed on the server: {0}")]
    ResourceChanged(String),
    /// The asset cache cannot be used (only [`AssetCache::open`](crate::AssetCache::open)
    /// reports this; later cache failures only disable caching for a session).
    #[error("cache error: {0}")]
    Cache(String),
    /// The session was stopped with [`FileSession::stop`](crate::FileSession::stop).
    #[error("the session was stopped")]
    Stopped,
}

impl FileError {
    /// The [`io::ErrorKind`] this error maps to when it crosses `Read` or `Seek`.
    ///
    /// Never `Interrupted` (callers retry those in a loop) and never `UnexpectedEof`
    /// (decoders take that as the end of the track).
    #[must_use]
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            FileError::InvalidUrl(_)
            | FileError::InvalidOptions(_)
            | FileError::InvalidSeekPosition { .. } => io::ErrorKind::InvalidInput,
            FileError::SeekNotSupported => io::ErrorKind::Unsupported,
            FileError::HttpStatus { status, .. } => match status {
                404 | 410 => io::ErrorKind::NotFound,
                401 | 403 => io::ErrorKind::PermissionDenied,
                _ => io::ErrorKind::Other,
            },
            FileError::Network(_) => io::ErrorKind::ConnectionAborted,
            FileError::Protocol(_) | FileError::ResourceChanged(_) => io::ErrorKind::InvalidData,
            FileError::Cache(_) | FileError::Stopped => io::ErrorKind::Other,
        }
    }
}

impl From<FileError> for io::Error {
    fn from(err: FileError) -> Self {
        io::Error::new(err.io_kind(), err)
    }
}
