//! The ureq agent behind every request of a session (timeouts, redirects by hand, the
//! trusted roots).

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::Agent;

use crate::options::FileSourceOptions;

/// The agent for one session. `options` were validated at open, so every root certificate
/// parses.
pub(crate) fn build_agent(options: &FileSourceOptions) -> Agent {
    let mut config = Agent::config_builder()
        .http_status_as_error(false)
        // Redirects are followed by hand: the https-to-http check and the final URL need it.
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_connect(Some(options.connect_timeout))
        .timeout_recv_response(Some(options.read_timeout))
        .timeout_per_read(Some(options.read_timeout))
        .user_agent(options.user_agent.as_str());
    if !options.root_certificates.is_empty() {
        let tls = TlsConfig::builder()
            .root_certs(root_certs(&options.root_certificates))
            .build();
        config = config.tls_config(tls);
    }
    config.build().into()
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

#[cfg(test)]
mod tests {
    use super::*;

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
