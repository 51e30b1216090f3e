//! Session configuration: a `with_*` builder, validated once when a session opens.

use std::fmt;
use std::time::Duration;

use url::Url;

use crate::agent::{check_proxy, parse_root_certificates, redact_proxy};
use crate::events::{EventSink, FileEvent};
use crate::redact::{self, redact};
use crate::FileError;

/// Default bytes the driver may hold ahead of the reader.
pub const DEFAULT_LOOK_AHEAD: u64 = 4 * 1024 * 1024;

/// Smallest accepted look-ahead: one chunk, so the driver can always make progress.
pub const MIN_LOOK_AHEAD: u64 = 64 * 1024;

/// Largest look-ahead: 1 GiB. A larger one (`u64::MAX` for "as much as it can") is this:
/// the channel's slots are allocated up front, and `u64::MAX` asked for 2^46 of them
/// (the process aborted).
pub(crate) const MAX_LOOK_AHEAD: u64 = 1024 * 1024 * 1024;

/// Headers the crate sets itself, or that would change what a response means: a user
/// value would break byte offsets (`Range`, `Accept-Encoding`), turn a resume into a `304`
/// or `412` (the conditionals), or break the framing (`Host`, `Content-Length`, ...).
pub(crate) const RESERVED_HEADERS: &[&str] = &[
    "range",
    "if-range",
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "accept-encoding",
    "te",
    "content-length",
    "transfer-encoding",
    "trailer",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "expect",
];

/// A request header and whether it is a secret.
#[derive(Clone)]
pub(crate) struct Header {
    pub name: String,
    pub value: String,
    /// Added with [`FileSourceOptions::with_secret_header`]: never shown, never sent to
    /// another origin (built-in secrets are recognised by name as well).
    pub secret: bool,
}

impl Header {
    /// Whether this header stays with the origin it was given for.
    pub(crate) fn is_secret(&self) -> bool {
        self.secret || redact::is_secret_header(&self.name)
    }
}

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
///     .with_header("Authorization", "Bearer secret")
///     .with_secret_header("X-Library-Token", "also secret");
/// // Credentials never show up in debug output.
/// assert!(!format!("{options:?}").contains("secret"));
/// ```
#[derive(Clone)]
pub struct FileSourceOptions {
    pub(crate) range_seek: bool,
    pub(crate) look_ahead: u64,
    /// `with_metered_link`: without a cache, requests end within the look-ahead.
    pub(crate) look_ahead_capped: bool,
    pub(crate) headers: Vec<Header>,
    pub(crate) user_agent: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Duration,
    pub(crate) open_timeout: Duration,
    pub(crate) max_retries: u32,
    pub(crate) retry_base_delay: Duration,
    pub(crate) retry_max_delay: Duration,
    pub(crate) max_redirects: u32,
    pub(crate) cache_key: Option<String>,
    pub(crate) events: Option<EventSink>,
    pub(crate) max_bytes: Option<u64>,
    pub(crate) url_refresh: Option<UrlRefresh>,
    pub(crate) rate_limit: Option<u64>,
    pub(crate) revalidate: bool,
    /// PEM texts as given; parsed (and checked) at open.
    pub(crate) root_certificates: Vec<Vec<u8>>,
    pub(crate) proxy: Option<Url>,
}

/// The user's callback that gives a fresh URL for one that expired.
#[derive(Clone)]
pub(crate) struct UrlRefresh(std::sync::Arc<RefreshFn>);

type RefreshFn = dyn Fn(&Url, u16) -> Option<Url> + Send + Sync;

impl UrlRefresh {
    pub(crate) fn refresh(&self, failed: &Url, status: u16) -> Option<Url> {
        (self.0)(failed, status)
    }
}

impl fmt::Debug for UrlRefresh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<callback>")
    }
}

impl Default for FileSourceOptions {
    fn default() -> Self {
        FileSourceOptions {
            range_seek: true,
            look_ahead: DEFAULT_LOOK_AHEAD,
            look_ahead_capped: false,
            headers: Vec::new(),
            user_agent: concat!("kithara-file/", env!("CARGO_PKG_VERSION")).to_string(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(10),
            open_timeout: Duration::from_secs(15),
            max_retries: 5,
            retry_base_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(5),
            max_redirects: 10,
            cache_key: None,
            events: None,
            max_bytes: None,
            url_refresh: None,
            rate_limit: None,
            revalidate: false,
            root_certificates: Vec::new(),
            proxy: None,
        }
    }
}

impl FileSourceOptions {
    /// Options with every default.
    ///
    /// ```
    /// use kithara_file::FileSourceOptions;
    /// let options = FileSourceOptions::new(); // the same as FileSourceOptions::default()
    /// # drop(options);
    /// ```
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
    ///
    /// ```
    /// use kithara_file::FileSourceOptions;
    /// // A server known to mishandle Range: read straight through, never seek by Range.
    /// let options = FileSourceOptions::new().with_range_seek(false);
    /// # drop(options);
    /// ```
    #[must_use]
    pub fn with_range_seek(mut self, enabled: bool) -> Self {
        self.range_seek = enabled;
        self
    }

    /// Bytes the downloader may hold ahead of the reader. Default: 4 MiB; at least 64 KiB.
    ///
    /// This bounds the memory a session holds, whatever the file size: the look-ahead
    /// plus a 256 KiB window of recently read bytes for short backward seeks, the chunk
    /// buffers these partly fill (a quarter of the look-ahead each, at most 1 MiB), and
    /// ureq's buffers for each open connection (128 KiB out; in, over `http`, an eighth
    /// of the look-ahead, 128 to 512 KiB, and over `https` 128 KiB twice: TCP and TLS).
    ///
    /// The driver never receives more than this ahead of the reader, wherever the reader
    /// stops ([`FileSession::bytes_fetched`](crate::FileSession::bytes_fetched) minus the
    /// position), and refills once a chunk's worth (a quarter of the look-ahead, at most
    /// 256 KiB) is free. A fetch that starts ahead of the reader (the reader still plays
    /// cached bytes before it) may take this much from its start. Whole-file playback
    /// stays one open-ended request, paced by the reader, so the kernel's socket buffers
    /// may hold a few MB the server already sent;
    /// [`with_metered_link`](Self::with_metered_link) bounds the requests themselves.
    /// At most 1 GiB: a larger value (`u64::MAX` for "as much as it can") is 1 GiB.
    ///
    /// ```
    /// use kithara_file::FileSourceOptions;
    /// // A small-memory device: hold at most 1 MiB ahead of the decoder.
    /// let options = FileSourceOptions::new().with_look_ahead(1024 * 1024);
    /// # drop(options);
    /// ```
    #[must_use]
    pub fn with_look_ahead(mut self, bytes: u64) -> Self {
        self.look_ahead = bytes.min(MAX_LOOK_AHEAD);
        self
    }

    /// Treats the link as metered: a session without a cache asks only for what the
    /// look-ahead allows. Default: false.
    ///
    /// Every request, the first too, is bounded (`Range: bytes=P-Q`) and ends at most a
    /// look-ahead past the reader's position, so a reader that stops after 1 MiB costs
    /// at most 1 MiB + the look-ahead of traffic, whatever the socket buffers would have
    /// taken in (measured, a reader stopping after 1 MiB of a 64 MiB file with a 256 KiB
    /// look-ahead: 1.2 MiB served, against 5.5 MB with one open-ended request). A sequential read is then a request
    /// per half look-ahead, on one kept-alive connection. A session that writes a cache
    /// keeps open-ended requests (nothing it downloads is wasted), and a server that
    /// ignores Range requests sends the whole file whatever is asked.
    ///
    /// ```
    /// use kithara_file::FileSourceOptions;
    /// // A phone on mobile data: never more than 1 MiB in flight past the decoder.
    /// let options = FileSourceOptions::new()
    ///     .with_look_ahead(1024 * 1024)
    ///     .with_metered_link(true);
    /// # drop(options);
    /// ```
    #[must_use]
    pub fn with_metered_link(mut self, metered: bool) -> Self {
        self.look_ahead_capped = metered;
        self
    }

    /// Adds a request header sent with every request. Default: none.
    ///
    /// Its value shows in `Debug` output only for a few harmless headers (`Accept`,
    /// `Accept-Language`, `User-Agent`, ...); credentials (`Authorization`,
    /// `Proxy-Authorization`, `Cookie`, `X-Api-Key`, `X-Auth-Token`,
    /// `X-Amz-Security-Token`, `Private-Token`, and names containing `auth`, `token`,
    /// `secret`, `session`, `api-key`, ...) are never shown and never sent to another
    /// origin after a redirect. For any other secret use
    /// [`with_secret_header`](Self::with_secret_header).
    ///
    /// Headers the crate sets itself or that change what a response means (`Range`,
    /// `If-Range`, `If-None-Match`, `If-Modified-Since`, `If-Match`,
    /// `If-Unmodified-Since`, `Accept-Encoding`, `Host`, `Content-Length`,
    /// `Transfer-Encoding`, `Connection` and the other hop-by-hop headers) are refused:
    /// [`FileSource::open`](crate::FileSource::open) returns
    /// [`FileError::InvalidOptions`].
    ///
    /// ```
    /// use kithara_file::FileSourceOptions;
    /// let options = FileSourceOptions::new()
    ///     .with_header("Accept", "audio/*")
    ///     .with_header("Authorization", "Bearer secret-token");
    /// assert!(!format!("{options:?}").contains("secret-token"));
    /// ```
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(Header {
            name: name.into(),
            value: value.into(),
            secret: false,
        });
        self
    }

    /// Adds a request header that is a secret: sent with every request to the URL's own
    /// origin, never to another origin a redirect leads to, and never shown (`Debug`,
    /// errors, events, logs). Default: none. The same names as for
    /// [`with_header`](Self::with_header) are refused.
    ///
    /// ```
    /// use kithara_file::FileSourceOptions;
    /// let options = FileSourceOptions::new().with_secret_header("X-Library", "k-123");
    /// assert!(!format!("{options:?}").contains("k-123"));
    /// ```
    #[must_use]
    pub fn with_secret_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(Header {
            name: name.into(),
            value: value.into(),
            secret: true,
        });
        self
    }

    /// The `User-Agent` header. Default: `kithara-file/<version>`.
    ///
    /// ```
    /// use kithara_file::FileSourceOptions;
    /// let options = FileSourceOptions::new().with_user_agent("my-player/2.1");
    /// assert!(format!("{options:?}").contains("my-player/2.1"));
    /// ```
    #[must_use]
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Longest wait for a TCP (and TLS) connection. Default: 10 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kithara_file::FileSourceOptions;
    /// let options = FileSourceOptions::new().with_connect_timeout(Duration::from_secs(3));
    /// # drop(options);
    /// ```
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Longest silence on an open response (headers or body) before it counts as a
    /// stall, is aborted and resumed. Default: 10 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kithara_file::FileSourceOptions;
    /// // A mobile link: give a stalled response 30 s before it is aborted and resumed.
    /// let options = FileSourceOptions::new().with_read_timeout(Duration::from_secs(30));
    /// # drop(options);
    /// ```
    #[must_use]
    pub fn with_read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Longest time [`FileSource::open`](crate::FileSource::open) may take as a whole:
    /// connecting, retries and their backoff, up to the first bytes. When it runs out,
    /// `open` returns [`FileError::Network`]. Default: 15 s.
    ///
    /// Later requests (seeks, resumes) are bounded by the connect and read timeouts and
    /// the retry budget instead.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kithara_file::FileSourceOptions;
    /// // Fail fast in a UI: open within 2 s or report the error.
    /// let options = FileSourceOptions::new().with_open_timeout(Duration::from_secs(2));
    /// # drop(options);
    /// ```
    #[must_use]
    pub fn with_open_timeout(mut self, timeout: Duration) -> Self {
        self.open_timeout = timeout;
        self
    }

    /// How many times in a row a transient failure is retried before the reader gets
    /// [`FileError::Network`]. The count resets whenever a retry delivers bytes.
    /// Default: 5.
    ///
    /// ```
    /// use kithara_file::FileSourceOptions;
    /// // Never retry: the first failure is the reader's error.
    /// let options = FileSourceOptions::new().with_max_retries(0);
    /// # drop(options);
    /// ```
    #[must_use]
    pub fn with_max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Exponential backoff between retries: `base` doubling up to `max`, with jitter.
    /// A `Retry-After` from the server is honoured up to `max`. Default: 100 ms to 5 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kithara_file::FileSourceOptions;
    /// let options = FileSourceOptions::new()
    ///     .with_retry_delay(Duration::from_millis(250), Duration::from_secs(30));
    /// # drop(options);
    /// ```
    #[must_use]
    pub fn with_retry_delay(mut self, base: Duration, max: Duration) -> Self {
        self.retry_base_delay = base;
        self.retry_max_delay = max;
        self
    }

    /// How many redirects a request may follow. Default: 10.
    ///
    /// ```
    /// use kithara_file::FileSourceOptions;
    /// let no_redirects = FileSourceOptions::new().with_max_redirects(0);
    /// # drop(no_redirects);
    /// ```
    #[must_use]
    pub fn with_max_redirects(mut self, redirects: u32) -> Self {
        self.max_redirects = redirects;
        self
    }

    /// The key the asset cache files this URL under, instead of the normalized URL.
    /// Use it for signed URLs whose query changes on every request. Default: none.
    ///
    /// ```
    /// use kithara_file::{AssetId, FileSourceOptions};
    /// // Signed URLs change their query on every request; the track id does not.
    /// let options = FileSourceOptions::new().with_cache_key("track-4711");
    /// let id = AssetId::from_key("track-4711"); // what `AssetCache::is_cached` takes
    /// # drop((options, id));
    /// ```
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
    ///
    /// ```
    /// use kithara_file::{FileSourceOptions, Url};
    /// let proxy: Url = "http://user:password@proxy.internal:3128".parse()?;
    /// let options = FileSourceOptions::new().with_proxy(proxy);
    /// assert!(!format!("{options:?}").contains("password"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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

    /// Downloads only the first `bytes` of the file. Default: the whole file.
    ///
    /// Meant for [`AssetCache::prefetch`](crate::AssetCache::prefetch): enough of the next
    /// track for a quick start, without the data of the whole track. A session reading
    /// through `Read` is not limited by it.
    ///
    /// ```
    /// use kithara_file::FileSourceOptions;
    /// // About ten seconds of a 320 kbps MP3.
    /// let options = FileSourceOptions::new().with_max_bytes(400 * 1024);
    /// # drop(options);
    /// ```
    #[must_use]
    pub fn with_max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// Calls `refresh` when a request after the first gets `401`, `403` or `410` (a signed
    /// URL that expired): with the URL that failed and the status. A URL it returns is
    /// used from then on, resuming at the exact byte; the resource must be the same
    /// version (validators are checked, a different one is
    /// [`FileError::ResourceChanged`]) and the cache keeps filing it under the original
    /// asset id. `None`, or a refreshed URL that fails the same way, is the error it would
    /// have been. Redirects are followed again from the new URL; credentials given with
    /// [`with_header`](Self::with_header) stay with the original URL's origin.
    /// Default: none.
    ///
    /// ```
    /// use kithara_file::{FileSourceOptions, Url};
    /// let options = FileSourceOptions::new().with_url_refresh(|expired: &Url, _status| {
    ///     // Ask your backend for a fresh signature.
    ///     let mut fresh = expired.clone();
    ///     fresh.set_query(Some("sig=renewed"));
    ///     Some(fresh)
    /// });
    /// # drop(options);
    /// ```
    #[must_use]
    pub fn with_url_refresh(
        mut self,
        refresh: impl Fn(&Url, u16) -> Option<Url> + Send + Sync + 'static,
    ) -> Self {
        self.url_refresh = Some(UrlRefresh(std::sync::Arc::new(refresh)));
        self
    }

    /// Caps the download rate at `bytes_per_second` (a token bucket with a burst of a tenth
    /// of a second). Reads of bytes already held are not slowed. Default: no cap.
    ///
    /// ```
    /// use kithara_file::FileSourceOptions;
    /// // A metered link: 64 KB/s, four times a 128 kbps stream.
    /// let options = FileSourceOptions::new().with_rate_limit(64 * 1000);
    /// # drop(options);
    /// ```
    #[must_use]
    pub fn with_rate_limit(mut self, bytes_per_second: u64) -> Self {
        self.rate_limit = Some(bytes_per_second);
        self
    }

    /// Whether a complete body in the cache is checked with the server before it is
    /// served. Default: `false` (offline-first: a cached body is served with no request).
    ///
    /// With `true`, [`FileSource::open_with_cache`](crate::FileSource::open_with_cache)
    /// sends one conditional request (`If-None-Match`, else `If-Modified-Since`): `304 Not
    /// Modified` serves the cache (no body bytes); an answer with other validators streams
    /// the new version and replaces the body once it is complete (sessions already
    /// reading the old one keep it); no answer at all serves the cache.
    ///
    /// ```
    /// use kithara_file::FileSourceOptions;
    /// let options = FileSourceOptions::new().with_revalidate(true);
    /// # drop(options);
    /// ```
    #[must_use]
    pub fn with_revalidate(mut self, revalidate: bool) -> Self {
        self.revalidate = revalidate;
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
        if self.rate_limit == Some(0) {
            return invalid("rate_limit must be greater than zero".into());
        }
        if self.read_timeout.is_zero() {
            return invalid("read_timeout must be greater than zero".into());
        }
        if self.open_timeout.is_zero() {
            return invalid("open_timeout must be greater than zero".into());
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
        for Header { name, value, .. } in &self.headers {
            let shown = redact::excerpt(name);
            if ureq::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return invalid(format!("header name {shown} is not a valid name"));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return invalid(format!(
                    "header {shown} is reserved: kithara-file sets or refuses it"
                ));
            }
            if ureq::http::HeaderValue::from_str(value).is_err() {
                // Never quote the value: it may be a credential.
                return invalid(format!("the value of header {shown} is not a valid value"));
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

impl FileSourceOptions {
    /// The user's headers for a request to `url`: all of them for the session's own
    /// origin, none of the secrets for any other (after a cross-origin redirect).
    pub(crate) fn request_headers<'a>(
        &'a self,
        same_origin: bool,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.headers
            .iter()
            .filter(move |header| same_origin || !header.is_secret())
            .map(|header| (header.name.as_str(), header.value.as_str()))
    }
}

/// Checks that `url` can be streamed: http or https, with a host.
pub(crate) fn validate_url(url: &Url) -> Result<(), FileError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FileError::InvalidUrl(format!(
            "only http and https can be streamed: {}",
            redact(url)
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(FileError::InvalidUrl(format!(
            "the URL has no host: {}",
            redact(url)
        )));
    }
    Ok(())
}

impl fmt::Debug for FileSourceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|header| {
                let shown = if header.secret {
                    "<redacted>"
                } else {
                    redact::header_value(&header.name, &header.value)
                };
                (header.name.as_str(), shown)
            })
            .collect();
        f.debug_struct("FileSourceOptions")
            .field("range_seek", &self.range_seek)
            .field("look_ahead", &self.look_ahead)
            .field("headers", &headers)
            .field("user_agent", &self.user_agent)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("open_timeout", &self.open_timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_base_delay", &self.retry_base_delay)
            .field("retry_max_delay", &self.retry_max_delay)
            .field("max_redirects", &self.max_redirects)
            .field("cache_key", &self.cache_key.as_ref().map(|_| "<set>"))
            .field("events", &self.events)
            .field("max_bytes", &self.max_bytes)
            .field("url_refresh", &self.url_refresh)
            .field("rate_limit", &self.rate_limit)
            .field("revalidate", &self.revalidate)
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
            FileSourceOptions::new().with_open_timeout(Duration::ZERO),
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
        for (name, value) in [("bad header", "x"), ("X-Ok", "line\nbreak")] {
            let options = FileSourceOptions::new().with_header(name, value);
            assert!(
                matches!(options.validate(), Err(FileError::InvalidOptions(_))),
                "{name}: {value:?} was accepted"
            );
        }
    }

    #[test]
    fn every_reserved_header_is_refused_in_any_case_and_as_a_secret() {
        for name in [
            "Range",
            "If-Range",
            "If-None-Match",
            "If-Modified-Since",
            "If-Match",
            "If-Unmodified-Since",
            "Accept-Encoding",
            "Host",
            "Content-Length",
            "Transfer-Encoding",
            "Connection",
            "TE",
            "Trailer",
            "Keep-Alive",
            "Proxy-Connection",
            "Upgrade",
            "Expect",
        ] {
            for spelled in [
                name.to_string(),
                name.to_ascii_lowercase(),
                name.to_ascii_uppercase(),
            ] {
                for options in [
                    FileSourceOptions::new().with_header(spelled.as_str(), "x"),
                    FileSourceOptions::new().with_secret_header(spelled.as_str(), "x"),
                ] {
                    let err = options.validate().unwrap_err();
                    assert!(
                        matches!(&err, FileError::InvalidOptions(m) if m.contains("reserved")),
                        "{spelled}: {err}"
                    );
                }
            }
        }
        FileSourceOptions::new()
            .with_header("Accept", "audio/*")
            .with_header("X-Anything", "x")
            .validate()
            .unwrap();
    }

    #[test]
    fn an_invalid_header_value_is_never_quoted() {
        let err = FileSourceOptions::new()
            .with_header("Authorization", "Bearer hunter2\n")
            .validate()
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn debug_shows_only_allowlisted_header_values() {
        let options = FileSourceOptions::new()
            .with_header("Authorization", "Bearer hunter2")
            .with_header("Cookie", "session=hunter2")
            .with_header("X-Api-Key", "hunter2")
            .with_header("X-Plex-Token", "hunter2")
            .with_header("X-Trace", "hunter2")
            .with_secret_header("Accept-Language", "hunter2")
            .with_header("Accept", "visible")
            .with_cache_key("hunter2");
        let shown = format!("{options:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("proxyuser"), "{shown}");
        assert!(shown.contains("visible"), "{shown}");
        assert!(shown.contains("X-Trace"), "names are shown: {shown}");
    }

    #[test]
    fn secrets_stay_with_their_origin() {
        let options = FileSourceOptions::new()
            .with_header("Authorization", "a")
            .with_header("Proxy-Authorization", "b")
            .with_header("Cookie", "c")
            .with_header("x-api-key", "d")
            .with_header("X-Auth-Token", "e")
            .with_header("X-Amz-Security-Token", "f")
            .with_header("Private-Token", "g")
            .with_secret_header("X-Library", "h")
            .with_header("Accept", "audio/*")
            .with_header("X-Trace", "1");
        assert_eq!(options.request_headers(true).count(), 10);
        let elsewhere: Vec<_> = options.request_headers(false).collect();
        assert_eq!(elsewhere, [("Accept", "audio/*"), ("X-Trace", "1")]);
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        validate_url(&"https://h/x".parse().unwrap()).unwrap();
        for bad in ["ftp://u:hunter2@h/x?sig=hunter2", "file:///etc/passwd"] {
            let err = validate_url(&bad.parse().unwrap()).unwrap_err();
            assert!(matches!(err, FileError::InvalidUrl(_)), "{err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn a_proxy_is_shown_without_its_credentials() {
        let options = FileSourceOptions::new()
            .with_proxy("http://proxyuser:hunter2@127.0.0.1:3128".parse().unwrap());
        let shown = format!("{options:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
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
