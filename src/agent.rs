//! The ureq agent behind every request of a session (timeouts, redirects by hand, the
//! trusted roots, the proxy, the input buffer), and what a TLS failure tells the user.

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::{Agent, Proxy};
use url::Url;

use crate::options::FileSourceOptions;

/// The agent for one session, whose requests go to `url` (for the input buffer: see
/// [`input_buffer_size`]). `options` were validated at open, so every root certificate and
/// the proxy URL parse.
pub(crate) fn build_agent(options: &FileSourceOptions, url: &Url) -> Agent {
    let mut config = Agent::config_builder()
        .http_status_as_error(false)
        // Redirects are followed by hand: the https-to-http check and the final URL need it.
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_connect(Some(options.connect_timeout))
        .timeout_recv_response(Some(options.read_timeout))
        .timeout_per_read(Some(options.read_timeout))
        .user_agent(options.user_agent.as_str())
        .input_buffer_size(input_buffer_size(options.look_ahead, url));
    // Without `with_proxy` the builder keeps ureq's default, `Proxy::try_from_env()`, read
    // now (when the session opens).
    if let Some(proxy) = &options.proxy {
        config = config.proxy(Proxy::new(proxy.as_str()).ok());
    }
    if !options.root_certificates.is_empty() {
        let tls = TlsConfig::builder()
            .root_certs(root_certs(&options.root_certificates))
            .build();
        config = config.tls_config(tls);
    }
    config.build().into()
}

/// ureq's default input buffer.
const UREQ_INPUT_BUFFER: usize = 128 * 1024;

/// ureq's input buffer, what one socket read can take: over `http`, an eighth of the
/// look-ahead from 128 KiB up to 512 KiB (512 KiB with the default 4 MiB look-ahead; the
/// bench's `OURS_INPUT_BUFFER` and row 1f assume it). Over `https` ureq's default 128
/// KiB, because ureq's TLS layer allocates a second buffer of the same size (that rustls
/// fills one record, at most ~16 KiB, at a time) and the gain below was measured over
/// plain TCP only. A session redirected from `http` to `https` keeps its agent's size.
///
/// Measured against nginx on loopback (2 cores), a whole sequential read (rows 1a and 1c):
/// - reads of up to 128 KiB: 1,400-1,550 MiB/s at 0.72-0.76 CPU s/GiB;
/// - up to 512 KiB: 2,200-2,400 MiB/s at 0.37-0.42 CPU s/GiB. The kernel's copy out of the
///   socket took half the `perf` samples for the same bytes (357 against 709 per GiB);
/// - up to 1 MiB: 2,400-2,730 MiB/s at 0.28-0.32 CPU s/GiB, for twice the buffer.
///
/// The larger the reads, the more often the driver empties the socket and blocks in the
/// next read (71 % of its context switches with 1 MiB were socket reads waiting for
/// nginx): 4-5 context switches per MiB with 512 KiB, against 2-3 with 128 KiB and 6-8
/// with 1 MiB. Against plain ureq given the same 512 KiB, kithara-file reads 0.85-1.02x
/// as fast, and plain ureq switches 3.6-5.3 times per MiB (row 1f, four runs).
///
/// The cost: ureq zero-fills the whole buffer for every connection it opens (row 4, open
/// to first byte: 200, 247 and 191 µs against 209, 185 and 208 µs in three interleaved
/// runs of 51 opens), and each connection holds it while open or idle in the agent's pool
/// (6a: 7.3-7.6 against 6.9 MiB of anonymous memory for a 1 GiB read; 7b: 4,935 against
/// 4,546 KiB per session). A smaller look-ahead asks for less memory, so the buffer
/// shrinks with it.
fn input_buffer_size(look_ahead: u64, url: &Url) -> usize {
    if url.scheme() != "http" {
        return UREQ_INPUT_BUFFER;
    }
    (look_ahead / 8).clamp(UREQ_INPUT_BUFFER as u64, 512 * 1024) as usize
}

/// The default roots plus the user's. ureq's default (`RootCerts::WebPki`) cannot be
/// extended, so the same Mozilla list is taken in certificate form from
/// `webpki-root-certs` (borrowed, not copied) and the user's certificates are appended.
fn root_certs(extra: &[Vec<u8>]) -> RootCerts {
    let defaults = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()));
    let mine = extra
        .iter()
        .flat_map(|pem| parse_root_certificates(pem).unwrap_or_default());
    RootCerts::from(defaults.chain(mine))
}

/// The certificates in one PEM text given to `with_root_certificate`, or why it is not
/// a PEM certificate: not PEM, no certificate in it, a certificate that does not parse
/// (rustls would skip it silently and the user would see "unknown issuer" instead), or a
/// private key (a mix-up of files that should not travel further).
pub(crate) fn parse_root_certificates(pem: &[u8]) -> Result<Vec<Certificate<'static>>, String> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => {
                let der = rustls::pki_types::CertificateDer::from(cert.der().to_vec());
                rustls::RootCertStore::empty()
                    .add(der)
                    .map_err(|e| format!("holds a certificate that does not parse ({e})"))?;
                certs.push(cert);
            }
            Ok(PemItem::PrivateKey(_)) => {
                return Err("holds a private key; pass only the CA's certificate".into())
            }
            Ok(_) => return Err("holds a PEM item that is not a certificate".into()),
            Err(e) => return Err(format!("is not valid PEM ({e})")),
        }
    }
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

/// Why `proxy` cannot be used, if it cannot. The message never shows its credentials.
pub(crate) fn check_proxy(proxy: &Url) -> Result<(), String> {
    let shown = redact_proxy(proxy);
    if proxy.scheme() != "http" {
        return Err(format!("proxy {shown} is not an http:// URL"));
    }
    if proxy.host_str().is_none_or(str::is_empty) {
        return Err(format!("proxy {shown} has no host"));
    }
    if !matches!(proxy.path(), "" | "/") || proxy.query().is_some() || proxy.fragment().is_some() {
        return Err(format!("proxy {shown} must be only scheme, host and port"));
    }
    Proxy::new(proxy.as_str())
        .map(drop)
        .map_err(|_| format!("proxy {shown} is not a valid proxy URL"))
}

/// The proxy URL for display: scheme, host and port; credentials replaced by `***`.
pub(crate) fn redact_proxy(proxy: &Url) -> String {
    let credentials = if proxy.username().is_empty() && proxy.password().is_none() {
        ""
    } else {
        "***@"
    };
    let host = proxy.host_str().unwrap_or("");
    match proxy.port() {
        Some(port) => format!("{}://{credentials}{host}:{port}", proxy.scheme()),
        None => format!("{}://{credentials}{host}", proxy.scheme()),
    }
}

/// What to tell the user when `error` is a TLS failure: that it is the certificate (and
/// which check failed) or the handshake, with what rustls reported. `None` for anything
/// else. A TLS failure is never retried: the same server sends the same certificate.
pub(crate) fn tls_failure_message(error: &ureq::Error) -> Option<String> {
    let rustls_error = match error {
        ureq::Error::Rustls(e) => e,
        // rustls reports handshake failures as io `InvalidData` wrapping its error.
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())?,
        ureq::Error::Tls(what) => return Some(format!("TLS setup failed: {what}")),
        _ => return None,
    };
    Some(match rustls_error {
        rustls::Error::InvalidCertificate(problem) => format!(
            "the server's certificate was rejected ({}): rustls: {rustls_error}",
            certificate_problem(problem)
        ),
        other => format!("TLS connection failed: rustls: {other}"),
    })
}

/// A certificate check in a few words, with what the user can do about it.
fn certificate_problem(problem: &rustls::CertificateError) -> &'static str {
    use rustls::CertificateError as E;
    match problem {
        E::UnknownIssuer => {
            "unknown issuer: not signed by a trusted root; a private CA can be trusted with \
             FileSourceOptions::with_root_certificate"
        }
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            "name mismatch: it is not valid for this host"
        }
        E::Expired | E::ExpiredContext { .. } => "expired",
        E::NotValidYet | E::NotValidYetContext { .. } => "not valid yet",
        E::Revoked => "revoked",
        E::BadSignature => "bad signature",
        E::BadEncoding => "malformed",
        E::InvalidPurpose | E::InvalidPurposeContext { .. } => "not issued for TLS servers",
        _ => "failed verification",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CertificateError;

    fn wrapped(problem: CertificateError) -> ureq::Error {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(problem),
        );
        ureq::Error::from(io)
    }

    #[test]
    fn the_input_buffer_over_http_is_an_eighth_of_the_look_ahead_within_128_to_512_kib() {
        const KIB: u64 = 1024;
        let http = Url::parse("http://example.com/a.mp3").unwrap();
        for (look_ahead, buffer) in [
            (64 * KIB, 128 * KIB),
            (1024 * KIB, 128 * KIB),
            (2048 * KIB, 256 * KIB),
            (crate::options::DEFAULT_LOOK_AHEAD, 512 * KIB),
            (1024 * 1024 * KIB, 512 * KIB),
        ] {
            assert_eq!(
                input_buffer_size(look_ahead, &http) as u64,
                buffer,
                "{look_ahead}"
            );
        }
        let small = FileSourceOptions::new().with_look_ahead(1024 * KIB);
        for (options, buffer) in [(FileSourceOptions::new(), 512 * KIB), (small, 128 * KIB)] {
            let agent = build_agent(&options, &http);
            assert_eq!(agent.config().input_buffer_size() as u64, buffer);
        }
    }

    #[test]
    fn the_input_buffer_over_https_is_ureqs_default() {
        let https = Url::parse("https://example.com/a.mp3").unwrap();
        let default = ureq::config::Config::default().input_buffer_size();
        for look_ahead in [64 * 1024, crate::options::DEFAULT_LOOK_AHEAD, u64::MAX] {
            assert_eq!(input_buffer_size(look_ahead, &https), default);
        }
        let agent = build_agent(&FileSourceOptions::new(), &https);
        assert_eq!(agent.config().input_buffer_size(), default);
    }

    #[test]
    fn certificate_failures_say_which_check_failed() {
        for (problem, words) in [
            (CertificateError::UnknownIssuer, "unknown issuer"),
            (CertificateError::NotValidForName, "name mismatch"),
            (CertificateError::Expired, "expired"),
            (CertificateError::NotValidYet, "not valid yet"),
        ] {
            let message = tls_failure_message(&wrapped(problem)).unwrap();
            assert!(message.contains("certificate"), "{message}");
            assert!(message.contains(words), "{message}");
            assert!(
                message.contains("rustls: invalid peer certificate"),
                "{message}"
            );
        }
    }

    #[test]
    fn other_errors_are_not_tls_failures() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(tls_failure_message(&ureq::Error::from(refused)), None);
        let plain = std::io::Error::new(std::io::ErrorKind::InvalidData, "not rustls");
        assert_eq!(tls_failure_message(&ureq::Error::from(plain)), None);
        assert_eq!(tls_failure_message(&ureq::Error::HostNotFound), None);
        let alert = ureq::Error::Rustls(rustls::Error::AlertReceived(
            rustls::AlertDescription::HandshakeFailure,
        ));
        let message = tls_failure_message(&alert).unwrap();
        assert!(message.starts_with("TLS connection failed"), "{message}");
    }

    #[test]
    fn proxies_are_checked_and_shown_without_credentials() {
        let url = |s: &str| Url::parse(s).unwrap();
        check_proxy(&url("http://127.0.0.1:3128")).unwrap();
        check_proxy(&url("http://user:hunter2@proxy.example:8080/")).unwrap();
        for bad in [
            "https://proxy.example:3128",
            "socks5://user:hunter2@127.0.0.1:1080",
            "http://user:hunter2@proxy.example:3128/path",
            "file:///tmp/proxy",
        ] {
            let err = check_proxy(&url(bad)).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
        }
        assert_eq!(
            redact_proxy(&url("http://user:hunter2@proxy.example:8080/")),
            "http://***@proxy.example:8080"
        );
        assert_eq!(
            redact_proxy(&url("http://127.0.0.1:3128")),
            "http://127.0.0.1:3128"
        );
    }

    #[test]
    fn extra_roots_keep_every_default_root() {
        let RootCerts::Specific(certs) = root_certs(&[]) else {
            panic!("not a certificate list");
        };
        let defaults = webpki_root_certs::TLS_SERVER_ROOT_CERTS.len();
        assert!(defaults > 100, "{defaults} default roots");
        assert_eq!(certs.len(), defaults);
        let ders = certs
            .iter()
            .map(|c| rustls::pki_types::CertificateDer::from(c.der().to_vec()));
        let (added, ignored) = rustls::RootCertStore::empty().add_parsable_certificates(ders);
        assert_eq!(
            (added, ignored),
            (defaults, 0),
            "rustls takes every default root"
        );
    }

    #[test]
    fn root_certificates_must_be_pem_certificates() {
        for (bad, why) in [
            (&b"not a certificate"[..], "no PEM certificate"),
            (
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "does not parse",
            ),
            (
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "private key",
            ),
            (
                b"-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n",
                "not valid PEM",
            ),
        ] {
            let err = parse_root_certificates(bad).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }
}
