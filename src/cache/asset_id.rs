//! An asset's stable id: the hex SHA-256 of its key (the normalized URL or a cache key).

use std::fmt;

use sha2::{Digest, Sha256};

/// Stable id of an asset: the lowercase hex SHA-256 (64 characters, only `[0-9a-f]`) of
/// its key.
///
/// The same key gives the same id on every run, platform and compiler, so the id names the
/// asset's directory in the cache. Being hex, it can never escape the cache root. A
/// session's id is [`FileSession::asset_id`](crate::FileSession::asset_id); an app makes
/// the same id with [`AssetId::from_url`] or [`AssetId::from_key`] to ask the
/// [`AssetCache`](crate::AssetCache) about an asset. `Display` prints the hex.
///
/// ```
/// use kithara_file::{AssetId, Url};
///
/// let url: Url = "https://cdn.example/track.mp3".parse()?;
/// let id = AssetId::from_url(&url);
/// assert_eq!(id.to_string(), id.as_str());
/// assert_ne!(id, AssetId::from_key("track.mp3"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AssetId(String);

impl AssetId {
    /// The 64 lowercase hex characters of the id.
    ///
    /// ```
    /// use kithara_file::AssetId;
    /// let id = AssetId::from_key("track-4711");
    /// assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
    /// ```
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of an arbitrary key: what a session opened with
    /// [`FileSourceOptions::with_cache_key(key)`](crate::FileSourceOptions::with_cache_key)
    /// uses, whatever its URL.
    ///
    /// ```
    /// use kithara_file::{AssetId, FileSourceOptions};
    ///
    /// let id = AssetId::from_key("album-7/track-3");
    /// assert_eq!(id, AssetId::from_key("album-7/track-3"));
    /// assert_eq!(id.as_str().len(), 64);
    /// // Sessions opened with this option use the same id (see `FileSession::asset_id`).
    /// let _options = FileSourceOptions::new().with_cache_key("album-7/track-3");
    /// ```
    #[must_use]
    pub fn from_key(key: &str) -> AssetId {
        AssetId(to_hex(&Sha256::digest(key.as_bytes())))
    }

    /// The id of a URL, keyed by its normalized form: what a session opened on `url`
    /// without a [cache key](crate::FileSourceOptions::with_cache_key) uses.
    ///
    /// Parsing already lowercases scheme and host and drops a default port; on top of that
    /// the fragment (never sent to the server) and the userinfo (credentials must not end up
    /// deciding, or being derivable from, cache names) are removed. The query string stays:
    /// a signed URL whose signature changes names a new asset unless a cache key is set.
    ///
    /// ```
    /// use kithara_file::{AssetId, Url};
    ///
    /// let a: Url = "HTTP://Example.COM:80/track.flac#t=30".parse()?;
    /// let b: Url = "http://user:secret@example.com/track.flac".parse()?;
    /// assert_eq!(AssetId::from_url(&a), AssetId::from_url(&b));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn from_url(url: &url::Url) -> AssetId {
        let mut key = url.clone();
        key.set_fragment(None);
        // Both fail only for URLs that cannot carry credentials, so there is nothing to strip.
        let _ = key.set_username("");
        let _ = key.set_password(None);
        AssetId::from_key(key.as_str())
    }

    /// Recognizes an asset directory name.
    pub(super) fn parse(name: &str) -> Option<AssetId> {
        let valid =
            name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| AssetId(name.to_owned()))
    }
}

impl fmt::Display for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub(super) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}
