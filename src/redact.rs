//! The one place that decides what of a URL or a header a user, a log or an error may see.
//!
//! - URLs are shown without userinfo, query or fragment: `https://cdn.example/a.mp3?…`
//!   (the `?…` marker says a query was there; signed URLs keep their signature in it).
//! - Header values are shown only for an allowlist of harmless headers; every other value
//!   is `<redacted>`.
//! - Secret headers (the built-in list, a few name patterns, and every header added with
//!   [`FileSourceOptions::with_secret_header`](crate::FileSourceOptions::with_secret_header))
//!   are never forwarded to another origin after a redirect.
//! - Text a server controls (a malformed header value quoted in an error) is cut to a
//!   short excerpt, so a hostile header cannot flood errors or logs.

use url::Url;

/// Headers whose values are harmless to show (no credentials, no URLs).
const SHOWN_HEADERS: &[&str] = &[
    "accept",
    "accept-charset",
    "accept-language",
    "cache-control",
    "content-type",
    "dnt",
    "pragma",
    "user-agent",
];

/// Headers that carry credentials: never shown, never sent to another origin.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "apikey",
    "x-auth-token",
    "x-access-token",
    "x-amz-security-token",
    "x-goog-api-key",
    "private-token",
    "job-token",
    "x-csrf-token",
    "x-xsrf-token",
    "ocp-apim-subscription-key",
];

/// Name parts that mark a header as a credential whatever its exact name
/// (`X-Plex-Token`, `X-Emby-Authorization`, `X-Session-Id`, `X-Jellyfin-Api-Key`, ...).
const SECRET_NAME_PARTS: &[&str] = &[
    "auth",
    "token",
    "secret",
    "password",
    "passwd",
    "session",
    "cookie",
    "signature",
    "credential",
    "api-key",
    "apikey",
    "access-key",
];

/// The longest excerpt of server-controlled text put into an error.
const EXCERPT_CHARS: usize = 64;

/// The URL as shown to users and logs: no userinfo, no query (a `?…` marker instead), no
/// fragment (`#…`).
pub(crate) fn redact(url: &Url) -> String {
    let mut clean = url.clone();
    // Only fails for URLs that cannot have userinfo, which then have none.
    let _ = clean.set_username("");
    let _ = clean.set_password(None);
    clean.set_query(None);
    clean.set_fragment(None);
    let mut shown = clean.to_string();
    if url.query().is_some() {
        shown.push_str("?…");
    }
    if url.fragment().is_some() {
        shown.push_str("#…");
    }
    shown
}

/// Whether `name` is a credential header by the built-in rules (case-insensitive).
pub(crate) fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_HEADERS.contains(&name.as_str())
        || SECRET_NAME_PARTS.iter().any(|part| name.contains(part))
}

/// Whether the value of `name` may be shown (the allowlist; case-insensitive).
pub(crate) fn is_shown_header(name: &str) -> bool {
    SHOWN_HEADERS.contains(&name.to_ascii_lowercase().as_str()) && !is_secret_header(name)
}

/// The value of a header as shown: itself for an allowlisted header, else `<redacted>`.
pub(crate) fn header_value<'a>(name: &str, value: &'a str) -> &'a str {
    if is_shown_header(name) {
        value
    } else {
        "<redacted>"
    }
}

/// A short, quoted, escaped excerpt of text a server sent, for an error message.
pub(crate) fn excerpt(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(EXCERPT_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

/// [`excerpt`] for raw header bytes (not necessarily UTF-8).
pub(crate) fn excerpt_bytes(bytes: &[u8]) -> String {
    excerpt(&String::from_utf8_lossy(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_userinfo_query_and_fragment() {
        for (url, shown) in [
            (
                "https://cdn.example/track.mp3",
                "https://cdn.example/track.mp3",
            ),
            (
                "https://cdn.example/track.mp3?X-Amz-Signature=abc&X-Amz-Credential=k",
                "https://cdn.example/track.mp3?…",
            ),
            (
                "http://alice:hunter2@nas.local:8080/a%20b.flac?sig=1#t=3",
                "http://nas.local:8080/a%20b.flac?…#…",
            ),
            ("http://alice@h/x", "http://h/x"),
            ("http://h/x?", "http://h/x?…"),
        ] {
            assert_eq!(redact(&url.parse().unwrap()), shown, "{url}");
        }
    }

    #[test]
    fn secret_headers_by_name_and_pattern() {
        for name in [
            "Authorization",
            "proxy-authorization",
            "COOKIE",
            "x-api-key",
            "X-Auth-Token",
            "x-amz-security-token",
            "Private-Token",
            "X-Plex-Token",
            "X-Emby-Authorization",
            "X-Session-Id",
            "x-goog-api-key",
        ] {
            assert!(is_secret_header(name), "{name}");
            assert!(!is_shown_header(name), "{name}");
            assert_eq!(header_value(name, "v"), "<redacted>");
        }
        for name in ["Accept", "User-Agent", "accept-language"] {
            assert!(!is_secret_header(name), "{name}");
            assert_eq!(header_value(name, "v"), "v");
        }
        // Not secret, but not known harmless either: hidden.
        assert_eq!(header_value("X-Trace", "v"), "<redacted>");
    }

    #[test]
    fn excerpts_are_short_and_escaped() {
        assert_eq!(excerpt("bytes 0-1/2"), "\"bytes 0-1/2\"");
        let long = "x".repeat(1000);
        assert!(excerpt(&long).len() < 80);
        assert_eq!(excerpt_bytes(b"a\xffb\n"), "\"a\u{fffd}b\\n\"");
    }
}
