//! A session over a complete body in the cache: the whole file is one memory-mapped
//! chunk. No driver thread, no request, nothing ever waits.

use std::sync::Mutex;

use bytes::Bytes;

use crate::driver::Status;
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
    pub(crate) fn read(&self, status: &Status, buf: &mut [u8]) -> usize {
        self.read_with(status, |rest| {
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            n
        })
    }

    /// Hands the rest of the file from the position to `copy`, which takes what fits and
    /// says how many bytes it took; advances by that many.
    pub(crate) fn read_with(&self, status: &Status, copy: impl FnOnce(&[u8]) -> usize) -> usize {
        let _cursor = lock(&self.cursor);
        let position = status.position();
        let rest = self.rest(position);
        let n = copy(&rest).min(rest.len());
        status.reader_moved(position + n as u64);
        n
    }

    /// The whole rest of the file from `position` (zero-copy), consumed.
    pub(crate) fn take_rest(&self, status: &Status) -> Bytes {
        let _cursor = lock(&self.cursor);
        let position = status.position();
        let rest = self.rest(position);
        status.reader_moved(position + rest.len() as u64);
        rest
    }

    /// Moves to the target `resolve` computes from the current position; returns where
    /// the cursor was and where it is now.
    pub(crate) fn seek(
        &self,
        status: &Status,
        resolve: impl FnOnce(u64) -> Result<u64, SeekTargetError>,
    ) -> Result<(u64, u64), SeekTargetError> {
        let _cursor = lock(&self.cursor);
        let from = status.position();
        let to = resolve(from)?;
        status.reader_moved(to);
        Ok((from, to))
    }

    fn rest(&self, position: u64) -> Bytes {
        let from = usize::try_from(position).map_or(self.body.len(), |p| p.min(self.body.len()));
        self.body.slice(from..)
    }
}
