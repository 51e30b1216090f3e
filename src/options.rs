//! Session configuration: a `with_*` builder, validated once when a session opens.

use std::fmt;
use std::time::Duration;

use url::Url;

use crate::agent::{check_proxy, parse_root_certificates, redact_proxy};
use crate::events::{EventSink, FileEvent};
use crate::FileError;

/// Default bytes the driver may hold ahead of the reader.
pub const DEFAULT_LOOK_AHEAD: u64 = 4 * 1024 * 1024;

/// Smallest accepted look-ahead: one chunk, so the driver can always make progress.
pub const MIN_LOOK_AHEAD: u64 = 64 * 1024;

/// Headers the crate sets itself; a user value would break byte offsets or validation.
const RESERVED_HEADERS: &[&str] = &[
    "range",
    "if-range",
    "accept-encoding",
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
];

/// Headers whose values never appear in `Debug` output.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

/// How a [`FileSession`](crate::FileSession) talks to the server.
///
/// Every setter documents its default. Values are checked when the session opens
/// ([`FileSource::open`](crate::FileSource::open) returns [`FileError::InvalidOptions`]
/// for a bad one), so building options never fails.
///
/// ```
/// use std::time::Duration;
/// use kithara_file::FileSourceOptions;
///
/// let options = FileSourceOptions::new()
///     .with_look_ahead(8 * 1024 * 1024)
///     .with_read_timeout(Duration::from_secs(5))
///     .with_header("Authorization", "Bearer secret");
/// // Credentials never show up in debug output.
/// assert!(!format!("{options:?}").contains("secret"));
/// ```
#[derive(Clone)]
pub struct FileSourceOptions {
    pub(crate) range_seek: bool,
    pub(crate) look_ahead: u64,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) user_agent: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Duration,
    pub(crate) max_retries: u32,
    pub(crate) retry_base_delay: Duration,
    pub(crate) retry_max_delay: Duration,
    pub(crate) max_redirects: u32,
    pub(crate) cache_key: Option<String>,
    pub(crate) events: Option<EventSink>,
    /// PEM texts as given; parsed (and checked) at open.
    pub(crate) root_certificates: Vec<Vec<u8>>,
    pub(crate) proxy: Option<Url>,
}

impl Default for FileSourceOptions {
    fn default() -> Self {
        FileSourceOptions {
            range_seek: true,
            look_ahead: DEFAULT_LOOK_AHEAD,
            headers: Vec::new(),
            user_agent: concat!("kithara-file/", env!("CARGO_PKG_VERSION")).to_string(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(10),
            max_retries: 5,
            retry_base_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(5),
            max_redirects: 10,
            cache_key: None,
            events: None,
            root_certificates: Vec::new(),
            proxy: None,
        }
    }
}

impl FileSourceOptions {
    /// Options with every default.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether seeks may use HTTP Range requests. Default: `true`.
    ///
    /// With `false` the crate never sends a `Range` header: a forward seek reads and
    /// discards up to the target, a backward seek is served only from bytes the session
    /// still holds (else [`FileError::SeekNotSupported`]), and
    /// [`FileSession::is_seekable`](crate::FileSession::is_seekable) is `false`.
    #[must_use]
    pub fn with_range_seek(mut self, enabled: bool) -> Self {
        self.range_seek = enabled;
        self
    }

    /// Bytes the downloader may hold ahead of the reader. Default: 4 MiB; at least 64 KiB.
    ///
    /// This bounds the memory a session holds, whatever the file size: the look-ahead
    /// plus a 256 KiB window of recently read bytes for short backward seeks.
    #[must_use]
    pub fn with_look_ahead(mut self, bytes: u64) -> Self {
        self.look_ahead = bytes;
        self
    }

    /// Adds a request header sent with every request. Default: none.
    ///
    /// `Range`, `If-Range`, `Accept-Encoding` and connection-level headers are the crate's
    /// to set and are rejected as [`FileError::InvalidOptions`].
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The `User-Agent` header. Default: `kithara-file/<version>`.
    #[must_use]
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Longest wait for a TCP (and TLS) connection. Default: 10 s.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Longest silence on an open response (headers or body) before it counts as a
    /// stall, is aborted and resumed. Default: 10 s.
    #[must_use]
    pub fn with_read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// How many times in a row a transient failure is retried before the reader gets
    /// [`FileError::Network`]. The count resets whenever a retry delivers bytes.
    /// Default: 5.
    #[must_use]
    pub fn with_max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Exponential backoff between retries: `base` doubling up to `max`, with jitter.
    /// A `Retry-After` from the server is honoured up to `max`. Default: 100 ms to 5 s.
    #[must_use]
    pub fn with_retry_delay(mut self, base: Duration, max: Duration) -> Self {
        self.retry_base_delay = base;
        self.retry_max_delay = max;
        self
    }

    /// How many redirects a request may follow. Default: 10.
    #[must_use]
    pub fn with_max_redirects(mut self, redirects: u32) -> Self {
        self.max_redirects = redirects;
        self
    }

    /// The key the asset cache files this URL under, instead of the normalized URL.
    /// Use it for signed URLs whose query changes on every request. Default: none.
    #[must_use]
    pub fn with_cache_key(mut self, key: impl Into<String>) -> Self {
        self.cache_key = Some(key.into());
        self
    }

    /// Trusts the CA certificate(s) in `pem` (PEM text, as in a `.crt`/`.pem` file) in
    /// addition to the default roots, for servers with a private CA: a NAS, a self-hosted
    /// music server, a company network. Repeatable; a PEM bundle adds every certificate in
    /// it. Default: the default roots only.
    ///
    /// Text that holds no PEM certificate, is not valid PEM, holds a certificate that does
    /// not parse, or holds a private key is [`FileError::InvalidOptions`] at open.
    ///
    /// **The default roots** are Mozilla's root program as bundled into the binary by the
    /// `webpki-roots` crate (ureq's rustls default; with extra roots the same list comes
    /// from `webpki-root-certs`), not the operating system's store. Why: the same trust on
    /// every platform, nothing to read from disk, and it works in minimal containers
    /// without `ca-certificates`; the list is as fresh as the crate version built in. The
    /// price: a CA installed only in the OS store (a private CA, a TLS-inspecting
    /// corporate proxy) is not trusted until it is passed here.
    ///
    /// A server certificate that fails verification (unknown issuer, name mismatch,
    /// expired) fails at once with [`FileError::Network`], never retried, and the message
    /// says it is the certificate and what rustls reported.
    ///
    /// ```
    /// use kithara_file::FileSourceOptions;
    /// # let pem = b"-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n";
    /// // let pem = std::fs::read("/etc/my-nas/ca.crt")?;
    /// let options = FileSourceOptions::new().with_root_certificate(pem);
    /// # drop(options);
    /// ```
    #[must_use]
    pub fn with_root_certificate(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.root_certificates.push(pem.as_ref().to_vec());
        self
    }

    /// Sends every request through this HTTP proxy: `http://[user:password@]host[:port]`
    /// (port 80 if none). Anything but an `http://` URL of scheme, host and port (with
    /// optional credentials) is [`FileError::InvalidOptions`] at open.
    ///
    /// ureq opens an HTTP `CONNECT` tunnel through the proxy for `http` and `https`
    /// origins alike, so the proxy sees only `host:port` and must allow `CONNECT` to the
    /// origin's port. Credentials go to the proxy as `Proxy-Authorization: Basic` on the
    /// `CONNECT`; they never appear in `Debug` output or in errors. An explicit proxy
    /// applies to every host (`NO_PROXY` is not consulted).
    ///
    /// Default: ureq's lookup in the environment, read when the session opens: the first
    /// of `ALL_PROXY`, `all_proxy`, `HTTPS_PROXY`, `https_proxy`, `HTTP_PROXY`,
    /// `http_proxy` that parses as a proxy URL, used for every origin whatever its scheme,
    /// with hosts matching `NO_PROXY`/`no_proxy` (`localhost`, `.example.com`,
    /// `*.internal`, `*`) connected directly. No variable set: no proxy.
    #[must_use]
    pub fn with_proxy(mut self, proxy: Url) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// Calls `callback` with every [`FileEvent`] of the session: opened, progress (at most
    /// every 100 ms), seeks, retries, stalls, completion, errors. Default: none.
    ///
    /// The callback runs on the session's driver thread (seek events on the thread that
    /// seeks): keep it short and never block in it. Forwarding to a channel is the usual
    /// way:
    ///
    /// ```
    /// use kithara_file::{FileEvent, FileSourceOptions};
    /// let (events, received) = crossbeam_channel::unbounded::<FileEvent>();
    /// let options = FileSourceOptions::new().with_events(move |event| {
    ///     let _ = events.send(event);
    /// });
    /// # drop((options, received));
    /// ```
    #[must_use]
    pub fn with_events(mut self, callback: impl Fn(FileEvent) + Send + Sync + 'static) -> Self {
        self.events = Some(EventSink::new(callback));
        self
    }

    /// Checks every value; the first bad one is reported.
    pub(crate) fn validate(&self) -> Result<(), FileError> {
        let invalid = |msg: String| Err(FileError::InvalidOptions(msg));
        if self.look_ahead < MIN_LOOK_AHEAD {
            return invalid(format!(
                "look_ahead is {} bytes; it must be at least {MIN_LOOK_AHEAD}",
                self.look_ahead
            ));
        }
        if self.connect_timeout.is_zero() {
            return invalid("connect_timeout must be greater than zero".into());
        }
        if self.read_timeout.is_zero() {
            return invalid("read_timeout must be greater than zero".into());
        }
        if self.retry_base_delay > self.retry_max_delay {
            return invalid(format!(
                "retry delay base {:?} is greater than its max {:?}",
                self.retry_base_delay, self.retry_max_delay
            ));
        }
        if ureq::http::HeaderValue::from_str(&self.user_agent).is_err() {
            return invalid("user_agent is not a valid header value".into());
        }
        for (name, value) in &self.headers {
            if ureq::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return invalid(format!("header name {name:?} is not valid"));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return invalid(format!("header {name:?} is set by kithara-file itself"));
            }
            if ureq::http::HeaderValue::from_str(value).is_err() {
                return invalid(format!("the value of header {name:?} is not valid"));
            }
        }
        if let Some(key) = &self.cache_key {
            if key.is_empty() {
                return invalid("cache_key must not be empty".into());
            }
        }
        for (n, pem) in self.root_certificates.iter().enumerate() {
            if let Err(why) = parse_root_certificates(pem) {
                return invalid(format!("root certificate #{} {why}", n + 1));
            }
        }
        if let Some(proxy) = &self.proxy {
            check_proxy(proxy).map_err(FileError::InvalidOptions)?;
        }
        Ok(())
    }
}

/// Whether a header's value must be hidden from logs and debug output.
pub(crate) fn is_secret_header(name: &str) -> bool {
    SECRET_HEADERS.contains(&name.to_ascii_lowercase().as_str())
}

impl fmt::Debug for FileSourceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if is_secret_header(name) {
                    "<redacted>"
                } else {
                    value.as_str()
                };
                (name.as_str(), shown)
            })
            .collect();
        f.debug_struct("FileSourceOptions")
            .field("range_seek", &self.range_seek)
            .field("look_ahead", &self.look_ahead)
            .field("headers", &headers)
            .field("user_agent", &self.user_agent)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_base_delay", &self.retry_base_delay)
            .field("retry_max_delay", &self.retry_max_delay)
            .field("max_redirects", &self.max_redirects)
            .field("cache_key", &self.cache_key.as_ref().map(|_| "<set>"))
            .field("events", &self.events)
            .field("root_certificates", &self.root_certificates.len())
            .field("proxy", &self.proxy.as_ref().map(redact_proxy))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        FileSourceOptions::new().validate().unwrap();
    }

    #[test]
    fn a_tiny_look_ahead_is_rejected() {
        let err = FileSourceOptions::new()
            .with_look_ahead(10)
            .validate()
            .unwrap_err();
        assert!(matches!(err, FileError::InvalidOptions(_)), "{err}");
    }

    #[test]
    fn zero_timeouts_and_inverted_delays_are_rejected() {
        for options in [
            FileSourceOptions::new().with_read_timeout(Duration::ZERO),
            FileSourceOptions::new().with_connect_timeout(Duration::ZERO),
            FileSourceOptions::new()
                .with_retry_delay(Duration::from_secs(2), Duration::from_secs(1)),
        ] {
            assert!(matches!(
                options.validate(),
                Err(FileError::InvalidOptions(_))
            ));
        }
    }

    #[test]
    fn reserved_and_malformed_headers_are_rejected() {
        for (name, value) in [
            ("Range", "bytes=0-"),
            ("accept-encoding", "gzip"),
            ("bad header", "x"),
            ("X-Ok", "line\nbreak"),
        ] {
            let options = FileSourceOptions::new().with_header(name, value);
            assert!(
                matches!(options.validate(), Err(FileError::InvalidOptions(_))),
                "{name}: {value:?} was accepted"
            );
        }
    }

    #[test]
    fn debug_redacts_credentials() {
        let options = FileSourceOptions::new()
            .with_header("Authorization", "Bearer hunter2")
            .with_header("Cookie", "session=hunter2")
            .with_header("X-Trace", "visible")
            .with_proxy("http://proxyuser:hunter2@127.0.0.1:3128".parse().unwrap());
        let shown = format!("{options:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("proxyuser"), "{shown}");
        assert!(shown.contains("visible"), "{shown}");
        assert!(shown.contains("http://***@127.0.0.1:3128"), "{shown}");
    }

    #[test]
    fn bad_proxies_and_root_certificates_are_rejected_without_showing_secrets() {
        for options in [
            FileSourceOptions::new().with_proxy("https://u:hunter2@proxy.example".parse().unwrap()),
            FileSourceOptions::new().with_proxy("socks5://u:hunter2@127.0.0.1".parse().unwrap()),
            FileSourceOptions::new().with_root_certificate("hunter2"),
            FileSourceOptions::new().with_root_certificate(b"\x30\x82\x01\x0a"),
        ] {
            match options.validate() {
                Err(FileError::InvalidOptions(why)) => assert!(!why.contains("hunter2"), "{why}"),
                other => panic!("accepted: {other:?}"),
            }
        }
    }
}
