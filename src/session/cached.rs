//! A session over a complete body in the cache: the whole file is one memory-mapped
//! chunk. No driver thread, no request, nothing ever waits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

use crate::lock;
use crate::range_policy::SeekTargetError;

pub(crate) struct Cached {
    body: Bytes,
    /// Serializes moves of the cursor (a read's copy and its advance belong together).
    cursor: Mutex<()>,
}

impl Cached {
    pub(crate) fn new(body: Bytes) -> Self {
        Cached {
            body,
            cursor: Mutex::new(()),
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.body.len() as u64
    }

    /// Copies the bytes at `position` into `buf` and advances it.
    pub(crate) fn read(&self, position: &AtomicU64, buf: &mut [u8]) -> usize {
        self.read_with(position, |rest| {
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            n
        })
    }

    /// Hands the rest of the file from `position` to `copy`, which takes what fits and
    /// says how many bytes it took; advances by that many.
    pub(crate) fn read_with(
        &self,
        position: &AtomicU64,
        copy: impl FnOnce(&[u8]) -> usize,
    ) -> usize {
        let _cursor = lock(&self.cursor);
        let rest = self.rest(position.load(Ordering::Acquire));
        let n = copy(&rest).min(rest.len());
        position.fetch_add(n as u64, Ordering::AcqRel);
        n
    }

    /// The whole rest of the file from `position` (zero-copy), consumed.
    pub(crate) fn take_rest(&self, position: &AtomicU64) -> Bytes {
        let _cursor = lock(&self.cursor);
        let rest = self.rest(position.load(Ordering::Acquire));
        position.fetch_add(rest.len() as u64, Ordering::AcqRel);
        rest
    }

    /// Moves to the target `resolve` computes from the current position; returns where
    /// the cursor was and where it is now.
    pub(crate) fn seek(
        &self,
        position: &AtomicU64,
        resolve: impl FnOnce(u64) -> Result<u64, SeekTargetError>,
    ) -> Result<(u64, u64), SeekTargetError> {
        let _cursor = lock(&self.cursor);
        let from = position.load(Ordering::Acquire);
        let to = resolve(from)?;
        position.store(to, Ordering::Release);
        Ok((from, to))
    }

    fn rest(&self, position: u64) -> Bytes {
        let from = usize::try_from(position).map_or(self.body.len(), |p| p.min(self.body.len()));
        self.body.slice(from..)
    }
}
