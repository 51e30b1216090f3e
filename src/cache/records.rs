//! The small checksummed records next to the data: `meta` (a body's length and
//! validators) and `part.index` (a partial download's coverage).

use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::range_set::RangeSet;

use super::{CHECKSUM_LEN, INDEX_MAGIC, MAX_RECORD_LEN, META_MAGIC};

/// `CachedMeta::len` of a body whose length is not known yet (an endless stream): such a
/// partial file is never checkpointed nor resumed, only committed once its body ended.
pub(crate) const UNKNOWN_LEN: u64 = u64::MAX;

/// Length and validators of a complete body (or of the file a partial download belongs to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CachedMeta {
    pub len: u64,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

// Binary, ending in a SHA-256 of everything before it, so a torn or foreign file is
// recognized instead of trusted: magic(8) | fields | sha256(32).

#[derive(Debug, PartialEq, Eq)]
pub(super) enum MetaState {
    Valid(CachedMeta),
    Missing,
    Corrupt,
    /// An I/O error other than absence: no verdict, so nothing is deleted on its account.
    Unreadable,
}

pub(super) fn read_meta(path: &Path) -> MetaState {
    match read_record(path) {
        Ok(None) => MetaState::Missing,
        Ok(Some(bytes)) => decode_meta(&bytes).map_or(MetaState::Corrupt, MetaState::Valid),
        Err(_) => MetaState::Unreadable,
    }
}

/// The whole file, `None` if absent; files too large to be a record read as empty
/// (which then fails to decode).
pub(super) fn read_record(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(MAX_RECORD_LEN).read_to_end(&mut bytes)?;
    if u64::try_from(bytes.len()) == Ok(MAX_RECORD_LEN) {
        bytes.clear();
    }
    Ok(Some(bytes))
}

pub(super) fn encode_meta(meta: &CachedMeta) -> Vec<u8> {
    let mut out = META_MAGIC.to_vec();
    put_meta(&mut out, meta);
    seal(out)
}

pub(super) fn decode_meta(bytes: &[u8]) -> Option<CachedMeta> {
    let mut r = Fields(unseal(bytes, META_MAGIC)?);
    let meta = r.meta()?;
    r.0.is_empty().then_some(meta)
}

pub(super) fn encode_index(meta: Option<&CachedMeta>, ranges: &[Range<u64>]) -> Vec<u8> {
    let mut out = INDEX_MAGIC.to_vec();
    match meta {
        None => out.push(0),
        Some(meta) => {
            out.push(1);
            put_meta(&mut out, meta);
        }
    }
    out.extend_from_slice(&(ranges.len() as u64).to_le_bytes());
    for r in ranges {
        out.extend_from_slice(&r.start.to_le_bytes());
        out.extend_from_slice(&r.end.to_le_bytes());
    }
    seal(out)
}

/// Decodes an index that has meta and well-formed ranges; anything else is unusable.
pub(super) fn decode_index(bytes: &[u8]) -> Option<(CachedMeta, RangeSet)> {
    let mut r = Fields(unseal(bytes, INDEX_MAGIC)?);
    if r.u8()? != 1 {
        return None;
    }
    let meta = r.meta()?;
    let count = r.u64()?;
    if u64::try_from(r.0.len()).ok()? != count.checked_mul(16)? {
        return None;
    }
    let mut ranges = Vec::new();
    let mut prev_end = None;
    for _ in 0..count {
        let (start, end) = (r.u64()?, r.u64()?);
        if start >= end || prev_end.is_some_and(|p| start <= p) {
            return None;
        }
        prev_end = Some(end);
        ranges.push(start..end);
    }
    Some((meta, RangeSet(ranges)))
}

pub(super) fn put_meta(out: &mut Vec<u8>, meta: &CachedMeta) {
    out.extend_from_slice(&meta.len.to_le_bytes());
    for s in [&meta.etag, &meta.last_modified] {
        match s {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                out.extend_from_slice(&(s.len() as u64).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
}

pub(super) fn seal(mut out: Vec<u8>) -> Vec<u8> {
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// The fields between magic and checksum, if both are right.
pub(super) fn unseal<'a>(bytes: &'a [u8], magic: &[u8; 8]) -> Option<&'a [u8]> {
    let body_len = bytes.len().checked_sub(CHECKSUM_LEN)?;
    let (body, sum) = bytes.split_at(body_len);
    if Sha256::digest(body).as_slice() != sum {
        return None;
    }
    body.strip_prefix(magic.as_slice())
}

pub(super) struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }

    fn opt_string(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => {
                let len = usize::try_from(self.u64()?).ok()?;
                let s = std::str::from_utf8(self.take(len)?).ok()?;
                Some(Some(s.to_owned()))
            }
            _ => None,
        }
    }

    fn meta(&mut self) -> Option<CachedMeta> {
        Some(CachedMeta {
            len: self.u64()?,
            etag: self.opt_string()?,
            last_modified: self.opt_string()?,
        })
    }
}
