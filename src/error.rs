//! The one error type of the crate, and its mapping to [`std::io::Error`].

use std::io;

/// Everything that can go wrong while opening, reading or seeking a remote file.
///
/// Every variant carries the context a user needs to act on it. Its `Display` starts with
/// what happened and, where a URL is involved, ends with that URL; the message never
/// repeats the variant's own word (`protocol error: ...`, never `protocol error:
/// protocol: ...`).
///
/// Text in variants never contains credentials: URLs are shown without userinfo and
/// without their query string (`https://cdn.example/track.mp3?…`), and header values
/// never appear unless the header is a harmless one.
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
///
/// What a player might do with each (the enum is `#[non_exhaustive]`: keep a catch-all):
///
/// ```
/// use kithara_file::FileError;
///
/// fn what_to_tell_the_user(error: &FileError) -> &'static str {
///     match error {
///         FileError::InvalidUrl(_) | FileError::InvalidOptions(_) => "a bug in the app",
///         FileError::HttpStatus { status: 401 | 403, .. } => "sign in again",
///         FileError::HttpStatus { status: 404 | 410, .. } => "the track is gone",
///         FileError::HttpStatus { .. } => "the server refused",
///         FileError::Network(_) => "no connection: try again, or play a cached track",
///         FileError::Protocol(_) | FileError::ResourceChanged(_) => "the server misbehaved",
///         FileError::InvalidSeekPosition { .. } | FileError::SeekNotSupported => "cannot seek there",
///         FileError::Cache(_) => "the cache folder is unusable",
///         FileError::Stopped => "stopped",
///         _ => "something went wrong",
///     }
/// }
/// assert_eq!(what_to_tell_the_user(&FileError::Stopped), "stopped");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The URL cannot be streamed: not http or https, no host, or not parseable.
    ///
    /// ```
    /// use kithara_file::{FileError, FileSource, FileSourceOptions};
    /// let url = "file:///music/a.mp3".parse()?;
    /// let error = FileSource::open(url, FileSourceOptions::new()).unwrap_err();
    /// assert!(matches!(error, FileError::InvalidUrl(_)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// A [`FileSourceOptions`](crate::FileSourceOptions) value is out of range or malformed,
    /// reported by `open` before any request.
    ///
    /// ```
    /// use kithara_file::{FileError, FileSource, FileSourceOptions};
    /// let options = FileSourceOptions::new().with_header("Range", "bytes=0-1"); // reserved
    /// let error = FileSource::open("http://127.0.0.1:1/a".parse()?, options).unwrap_err();
    /// assert!(matches!(error, FileError::InvalidOptions(_)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// A seek past the known end of the file. The position did not change.
    ///
    /// ```no_run
    /// use kithara_file::{FileError, FileSource, FileSourceOptions};
    /// let session = FileSource::open("http://127.0.0.1:8000/a.mp3".parse()?, FileSourceOptions::new())?;
    /// if let Some(len) = session.byte_len() {
    ///     let past_the_end = i64::try_from(len)? + 1;
    ///     assert!(matches!(
    ///         session.seek_bytes(past_the_end),
    ///         Err(FileError::InvalidSeekPosition { .. })
    ///     ));
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[error("cannot seek to byte {position}: the file has {size} bytes")]
    InvalidSeekPosition {
        /// The requested absolute position.
        position: u64,
        /// The known length of the file.
        size: u64,
    },
    /// The seek cannot be served: the server (or the options) do not allow Range requests
    /// and the target is not held, or the length needed for `SeekFrom::End` is unknown.
    ///
    /// ```no_run
    /// use std::io::{Seek, SeekFrom};
    /// use kithara_file::{FileError, FileSource, FileSourceOptions};
    /// let options = FileSourceOptions::new().with_range_seek(false);
    /// let mut session = FileSource::open("http://127.0.0.1:8000/a.mp3".parse()?, options)?;
    /// session.seek(SeekFrom::Start(10 << 20))?; // forward: read and discarded
    /// if let Err(e) = session.seek(SeekFrom::Start(0)) {
    ///     // Backward past the bytes still held, without Range requests.
    ///     let cause = e.get_ref().and_then(|e| e.downcast_ref::<FileError>());
    ///     assert_eq!(cause, Some(&FileError::SeekNotSupported));
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[error("seek not supported for this source")]
    SeekNotSupported,
    /// The server answered with a status that is not a success and not retryable, or a
    /// retryable one (`5xx`, `408`, `429`) until the retry budget ran out (then `status`
    /// is the last one), or with a `Retry-After` longer than the longest retry delay.
    ///
    /// ```no_run
    /// use kithara_file::{FileError, FileSource, FileSourceOptions};
    /// let url = "http://127.0.0.1:8000/missing.mp3".parse()?;
    /// match FileSource::open(url, FileSourceOptions::new()) {
    ///     Err(FileError::HttpStatus { status: 404, url }) => println!("not found: {url}"),
    ///     other => println!("{other:?}"),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[error("HTTP status {status} from {url}")]
    HttpStatus {
        /// The HTTP status code.
        status: u16,
        /// The URL that answered, with credentials removed.
        url: String,
    },
    /// The network failed (refused, reset, stalled past the read timeout, TLS) and
    /// retries, if any, did not recover.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use kithara_file::{FileError, FileSource, FileSourceOptions};
    /// let options = FileSourceOptions::new().with_open_timeout(Duration::from_secs(1));
    /// let url = "http://127.0.0.1:9/a.mp3".parse()?; // nothing listens there
    /// assert!(matches!(FileSource::open(url, options), Err(FileError::Network(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[error("network failure: {0}")]
    Network(String),
    /// The server broke the HTTP contract: a malformed or misplaced `Content-Range`, a
    /// refused redirect, a response that cannot be parsed, a `Content-Encoding` applied
    /// although `identity` was asked for.
    ///
    /// ```no_run
    /// use std::io::Read;
    /// use kithara_file::{FileError, FileSource, FileSourceOptions};
    /// let mut session = FileSource::open("http://127.0.0.1:8000/a.mp3".parse()?, FileSourceOptions::new())?;
    /// if let Err(e) = session.read_to_end(&mut Vec::new()) {
    ///     if let Some(FileError::Protocol(why)) = e.get_ref().and_then(|e| e.downcast_ref()) {
    ///         eprintln!("broken server: {why}");
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The resource changed on the server since the session opened it (validators or
    /// length differ). Bytes handed out so far are a prefix of the first version; nothing
    /// of the new version follows.
    ///
    /// ```no_run
    /// use std::io::Read;
    /// use kithara_file::{FileError, FileSource, FileSourceOptions};
    /// let mut session = FileSource::open("http://127.0.0.1:8000/a.mp3".parse()?, FileSourceOptions::new())?;
    /// let mut bytes = Vec::new();
    /// if let Err(e) = session.read_to_end(&mut bytes) {
    ///     if let Some(FileError::ResourceChanged(_)) = e.get_ref().and_then(|e| e.downcast_ref()) {
    ///         // `bytes` is a prefix of the old version: open the file again for the new one.
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[error("resource changed on the server: {0}")]
    ResourceChanged(String),
    /// The asset cache cannot be used (only [`AssetCache::open`](crate::AssetCache::open)
    /// reports this; later cache failures only disable caching for a session).
    ///
    /// ```
    /// use kithara_file::{AssetCache, FileError};
    /// # let dir = tempfile::tempdir()?;
    /// let file = dir.path().join("not-a-directory");
    /// std::fs::write(&file, b"")?;
    /// assert!(matches!(AssetCache::open(&file), Err(FileError::Cache(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[error("cache unusable: {0}")]
    Cache(String),
    /// The session was stopped with [`FileSession::stop`](crate::FileSession::stop).
    ///
    /// ```no_run
    /// use std::io::Read;
    /// use kithara_file::{FileError, FileSource, FileSourceOptions};
    /// let mut session = FileSource::open("http://127.0.0.1:8000/a.mp3".parse()?, FileSourceOptions::new())?;
    /// session.stop();
    /// let e = session.read(&mut [0u8; 16]).unwrap_err();
    /// assert_eq!(e.get_ref().and_then(|e| e.downcast_ref()), Some(&FileError::Stopped));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[error("the session was stopped")]
    Stopped,
}

impl FileError {
    /// The [`io::ErrorKind`] this error maps to when it crosses `Read` or `Seek`.
    ///
    /// Never `Interrupted` (callers retry those in a loop) and never `UnexpectedEof`
    /// (decoders take that as the end of the track).
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use kithara_file::FileError;
    /// let gone = FileError::HttpStatus { status: 404, url: "https://cdn.example/a.mp3".into() };
    /// assert_eq!(gone.io_kind(), ErrorKind::NotFound);
    /// assert_eq!(FileError::Network("reset".into()).io_kind(), ErrorKind::ConnectionAborted);
    /// assert_eq!(std::io::Error::from(gone).kind(), ErrorKind::NotFound);
    /// ```
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

/// Why one request attempt failed, as far as the final error is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LastFailure {
    /// The server answered with a retryable status.
    Status(u16),
    /// The transport failed (connect, reset, stall, truncated body): what happened.
    Transport(String),
}

/// The error a fetch ends with once its retries are spent: the last status as
/// [`FileError::HttpStatus`], or the last transport failure as [`FileError::Network`].
pub(crate) fn gave_up(last: &LastFailure, retries: u32, url: &str) -> FileError {
    match last {
        LastFailure::Status(status) => FileError::HttpStatus {
            status: *status,
            url: url.to_string(),
        },
        LastFailure::Transport(cause) => {
            let tries = if retries == 1 { "retry" } else { "retries" };
            FileError::Network(format!("{cause}; gave up after {retries} {tries}: {url}"))
        }
    }
}

/// Ends the message of an error that leaves the driver with the (redacted) URL it is
/// about, unless the message already does; variants without a URL are left alone.
pub(crate) fn at_url(error: FileError, url: &str) -> FileError {
    let end = |message: String| {
        if message.ends_with(url) {
            message
        } else {
            format!("{message}: {url}")
        }
    };
    match error {
        FileError::Network(m) => FileError::Network(end(m)),
        FileError::Protocol(m) => FileError::Protocol(end(m)),
        FileError::ResourceChanged(m) => FileError::ResourceChanged(end(m)),
        FileError::InvalidUrl(m) => FileError::InvalidUrl(end(m)),
        other => other,
    }
}

/// What a failed ureq call means for the retry loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Worth another try: what happened, and whether the response went silent.
    Retry { cause: String, stalled: bool },
    /// Never retried.
    Fatal(FileError),
}

/// Sorts a ureq failure into retry or give up, with a message that says what happened in
/// plain words (never ureq's category prefixes such as `protocol:` or `io:`, never a URL:
/// [`at_url`] adds the redacted one).
pub(crate) fn classify_transport(error: &ureq::Error) -> Transport {
    let retry = |cause: String, stalled: bool| Transport::Retry { cause, stalled };
    match error {
        ureq::Error::Timeout(what) => {
            retry(format!("no answer within the read timeout ({what})"), true)
        }
        ureq::Error::BodyStalled => retry("the body stalled".into(), true),
        // rustls reports a failed handshake or a corrupt record as InvalidData: never
        // retried, never downgraded.
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            Transport::Fatal(FileError::Network(format!("TLS failed: {io}")))
        }
        ureq::Error::Io(io) => retry(io_cause(io), false),
        ureq::Error::HostNotFound => retry("host not found".into(), false),
        ureq::Error::ConnectionFailed => retry("connection failed".into(), false),
        // The text of BadUri holds the URL itself, with its query: never shown.
        ureq::Error::BadUri(_) => Transport::Fatal(FileError::InvalidUrl(
            "the HTTP client cannot request it".into(),
        )),
        ureq::Error::Tls(what) => {
            Transport::Fatal(FileError::Network(format!("TLS failed: {what}")))
        }
        ureq::Error::Rustls(what) => {
            Transport::Fatal(FileError::Network(format!("TLS failed: {what}")))
        }
        ureq::Error::Pem(what) => Transport::Fatal(FileError::Network(format!(
            "TLS failed: bad PEM data ({what:?})"
        ))),
        ureq::Error::Protocol(what) => Transport::Fatal(FileError::Protocol(format!(
            "the response cannot be parsed ({})",
            crate::redact::excerpt(&what.to_string())
        ))),
        ureq::Error::TooManyRedirects | ureq::Error::RedirectFailed => Transport::Fatal(
            FileError::Protocol("a redirect could not be followed".into()),
        ),
        ureq::Error::LargeResponseHeader(size, limit) => Transport::Fatal(FileError::Protocol(
            format!("the response head is {size} bytes, more than the limit of {limit}"),
        )),
        other => Transport::Fatal(FileError::Network(format!(
            "the HTTP client failed ({})",
            crate::redact::excerpt(&other.to_string())
        ))),
    }
}

/// An I/O failure in plain words (`UnexpectedEof` is ureq's "Peer disconnected").
fn io_cause(io: &std::io::Error) -> String {
    match io.kind() {
        std::io::ErrorKind::UnexpectedEof => "the server closed the connection early".into(),
        _ => io.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{validate_url, FileSourceOptions};
    use crate::range_policy::{plan_response, Refusal, Requested, ResponseHead};
    use crate::redact::redact;

    const SECRET_URL: &str =
        "https://alice:hunter2@cdn.example/track.mp3?sig=hunter2&X-Amz-Signature=hunter2";

    /// The word of each variant that its `Display` starts with and its message must not
    /// repeat.
    fn category(error: &FileError) -> &'static str {
        match error {
            FileError::InvalidUrl(_) => "invalid url",
            FileError::InvalidOptions(_) => "invalid options",
            FileError::InvalidSeekPosition { .. } => "cannot seek",
            FileError::SeekNotSupported => "seek not supported",
            FileError::HttpStatus { .. } => "http status",
            FileError::Network(_) => "network",
            FileError::Protocol(_) => "protocol",
            FileError::ResourceChanged(_) => "resource changed",
            FileError::Cache(_) => "cache",
            FileError::Stopped => "the session was stopped",
        }
    }

    /// Every variant, built the way the crate builds it, for a signed URL with userinfo.
    fn every_error() -> Vec<(FileError, Option<String>)> {
        let url: url::Url = SECRET_URL.parse().unwrap();
        let shown = redact(&url);
        let ranged = Requested {
            start: 100,
            end: None,
            ranged: true,
        };
        let plan_error = |head: ResponseHead| match plan_response(ranged, &head, None, &shown) {
            Err(Refusal::Fatal(error)) => at_url(error, &shown),
            other => panic!("{other:?}"),
        };
        let io = |kind| ureq::Error::Io(std::io::Error::from(kind));
        let transport = |error: &ureq::Error| match classify_transport(error) {
            Transport::Retry { cause, .. } => gave_up(&LastFailure::Transport(cause), 5, &shown),
            Transport::Fatal(error) => at_url(error, &shown),
        };
        let ftp: url::Url = "ftp://alice:hunter2@cdn.example/a?sig=hunter2"
            .parse()
            .unwrap();
        vec![
            (validate_url(&ftp).unwrap_err(), Some(redact(&ftp))),
            (
                FileSourceOptions::new()
                    .with_header("Range", "hunter2")
                    .validate()
                    .unwrap_err(),
                None,
            ),
            (
                FileError::InvalidSeekPosition {
                    position: 11,
                    size: 10,
                },
                None,
            ),
            (FileError::SeekNotSupported, None),
            (
                gave_up(&LastFailure::Status(503), 5, &shown),
                Some(shown.clone()),
            ),
            (
                plan_error(ResponseHead {
                    status: 404,
                    ..ResponseHead::default()
                }),
                Some(shown.clone()),
            ),
            (
                transport(&io(std::io::ErrorKind::ConnectionRefused)),
                Some(shown.clone()),
            ),
            (
                transport(&io(std::io::ErrorKind::UnexpectedEof)),
                Some(shown.clone()),
            ),
            (
                transport(&ureq::Error::Timeout(ureq::Timeout::PerRead)),
                Some(shown.clone()),
            ),
            (transport(&ureq::Error::HostNotFound), Some(shown.clone())),
            (
                transport(&io(std::io::ErrorKind::InvalidData)),
                Some(shown.clone()),
            ),
            (
                transport(&ureq::Error::Tls("handshake failure")),
                Some(shown.clone()),
            ),
            (
                transport(&ureq::Error::BadUri(SECRET_URL.into())),
                Some(shown.clone()),
            ),
            (
                transport(&ureq::Error::TooManyRedirects),
                Some(shown.clone()),
            ),
            (
                plan_error(ResponseHead {
                    status: 206,
                    content_range: Some("bytes 0-99/1000".into()),
                    ..ResponseHead::default()
                }),
                Some(shown.clone()),
            ),
            (
                plan_error(ResponseHead {
                    status: 200,
                    content_encoding: Some("gzip".into()),
                    ..ResponseHead::default()
                }),
                Some(shown.clone()),
            ),
            (
                at_url(
                    FileError::ResourceChanged("ETag was \"a\", now \"b\"".into()),
                    &shown,
                ),
                Some(shown.clone()),
            ),
            (
                FileError::Cache("cannot open /var/lib/kt/x: denied".into()),
                None,
            ),
            (FileError::Stopped, None),
        ]
    }

    #[test]
    fn every_message_says_what_happened_once_and_ends_with_the_redacted_url() {
        let errors = every_error();
        let mut variants = Vec::new();
        for (error, _) in &errors {
            let variant = std::mem::discriminant(error);
            if !variants.contains(&variant) {
                variants.push(variant);
            }
        }
        assert_eq!(variants.len(), 10, "every variant is covered");
        for (error, url) in errors {
            let display = error.to_string();
            let lower = display.to_lowercase();
            let word = category(&error);
            assert!(
                lower.starts_with(word),
                "{display:?} does not start with {word:?}"
            );
            assert_eq!(
                lower.matches(word).count(),
                1,
                "{display:?} repeats {word:?}"
            );
            for prefix in ["protocol:", "io:", "timeout:", "bad uri", "http:"] {
                assert!(!lower[word.len()..].contains(prefix), "{display:?}");
            }
            if let Some(url) = url {
                assert!(
                    display.ends_with(&url),
                    "{display:?} does not end with {url}"
                );
            }
            let debug = format!("{error:?}");
            for text in [&display, &debug] {
                assert!(!text.contains("hunter2"), "{text}");
                assert!(!text.contains("alice"), "{text}");
                assert!(!text.contains("sig="), "{text}");
            }
            // The io mapping is kept: never Interrupted, never UnexpectedEof.
            let io: std::io::Error = error.clone().into();
            assert!(!matches!(
                io.kind(),
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::UnexpectedEof
            ));
        }
    }

    #[test]
    fn a_retried_out_status_is_http_status_a_transport_failure_network() {
        assert_eq!(
            gave_up(&LastFailure::Status(500), 5, "u"),
            FileError::HttpStatus {
                status: 500,
                url: "u".into()
            }
        );
        let network = gave_up(&LastFailure::Transport("connection refused".into()), 1, "u");
        assert_eq!(
            network,
            FileError::Network("connection refused; gave up after 1 retry: u".into())
        );
        assert_eq!(network.io_kind(), io::ErrorKind::ConnectionAborted);
        // at_url adds the URL once.
        assert_eq!(at_url(network.clone(), "u"), network);
    }

    #[test]
    fn io_kinds_are_kept() {
        for (error, kind) in [
            (
                FileError::InvalidUrl(String::new()),
                io::ErrorKind::InvalidInput,
            ),
            (
                FileError::InvalidOptions(String::new()),
                io::ErrorKind::InvalidInput,
            ),
            (FileError::SeekNotSupported, io::ErrorKind::Unsupported),
            (
                FileError::HttpStatus {
                    status: 404,
                    url: String::new(),
                },
                io::ErrorKind::NotFound,
            ),
            (
                FileError::HttpStatus {
                    status: 403,
                    url: String::new(),
                },
                io::ErrorKind::PermissionDenied,
            ),
            (
                FileError::HttpStatus {
                    status: 503,
                    url: String::new(),
                },
                io::ErrorKind::Other,
            ),
            (
                FileError::Network(String::new()),
                io::ErrorKind::ConnectionAborted,
            ),
            (
                FileError::Protocol(String::new()),
                io::ErrorKind::InvalidData,
            ),
            (
                FileError::ResourceChanged(String::new()),
                io::ErrorKind::InvalidData,
            ),
            (FileError::Cache(String::new()), io::ErrorKind::Other),
            (FileError::Stopped, io::ErrorKind::Other),
        ] {
            assert_eq!(error.io_kind(), kind, "{error:?}");
        }
    }
}
