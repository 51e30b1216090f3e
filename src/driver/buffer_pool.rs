//! Chunk buffers for the driver thread: the one being filled, and the buffers of chunks
//! sent, taken back once nobody holds any byte of them.
//!
//! The fresh buffers of a fetch double from the first size to the largest while it runs:
//! a seek's first bytes do not wait on zeroing a large buffer, and a sequential read moves
//! 1 MiB per message. A free buffer that went out whole is used at its size, with no
//! zeroing; one a reader took pieces of comes back from its start, zeroed again.
//! Buffers are reused rather than freed and allocated again: a fresh one is
//! zeroed (memset was half of the driver's instructions before buffers were reused), and
//! a pool that lets buffers go is at the allocator's mercy for its peak (a 1 GiB read
//! peaked one 1 MiB buffer above a 64 MiB one when every buffer a reader had taken pieces
//! of was freed: 647 fresh buffers in one read, against 8 now).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::{chunk_size, largest_chunk, HISTORY_BYTES};

/// Chunk buffers: the one being filled, and the last chunk of each buffer sent, through
/// which the buffer comes back.
pub(crate) struct BufferPool {
    first: usize,
    largest: usize,
    /// The size of the buffer taken last in this fetch; 0 before its first.
    size: usize,
    spare: BytesMut,
    recycled: VecDeque<Bytes>,
    limit: usize,
}

impl BufferPool {
    /// The pool of a session with this look-ahead. It keeps every buffer the look-ahead
    /// and the reader's history can span in the largest buffers, one more where a buffer is
    /// only partly inside, and two spare: it keeps the newest, so a buffer that becomes free
    /// after more were sent is freed, and the next one is allocated and zeroed. 8 for the
    /// default 4 MiB look-ahead (a sequential read with it full holds 6), 23 for 64 KiB
    /// (16 KiB chunks, about 21 held).
    pub(crate) fn for_look_ahead(look_ahead: u64) -> Self {
        let largest = largest_chunk(look_ahead);
        let span = look_ahead.saturating_add(HISTORY_BYTES as u64);
        let limit = span.div_ceil(largest as u64) as usize + 3;
        BufferPool::new(chunk_size(look_ahead), largest, limit)
    }

    /// A pool whose fetches start their fresh buffers at `first` bytes and grow them to
    /// `largest`, keeping at most `limit` sent buffers for reuse.
    fn new(first: usize, largest: usize, limit: usize) -> Self {
        BufferPool {
            first,
            largest: largest.max(first),
            size: 0,
            spare: BytesMut::new(),
            recycled: VecDeque::new(),
            limit,
        }
    }

    /// The unfilled rest of the current buffer; the next buffer when it is used up.
    pub(crate) fn spare(&mut self) -> &mut BytesMut {
        if self.spare.is_empty() {
            self.spare = self.take();
        }
        &mut self.spare
    }

    /// The size a fetch's fresh buffers start at.
    pub(crate) fn first_chunk(&self) -> usize {
        self.first
    }

    /// Starts the next read in a buffer of its own (a new fetch), so chunks stay whole;
    /// a fresh buffer is of the first size again.
    pub(crate) fn fresh(&mut self) {
        self.spare = BytesMut::new();
        self.size = 0;
    }

    /// Keeps `chunk`, the chunk that ends its buffer (the read that filled the buffer sent
    /// it), to take the buffer back once every other piece of it is dropped. One chunk per
    /// buffer: two kept handles would keep each other from ever looking free.
    pub(crate) fn keep(&mut self, chunk: &Bytes) {
        if self.recycled.len() >= self.limit {
            self.recycled.pop_front();
        }
        self.recycled.push_back(chunk.clone());
    }

    /// The next buffer: the oldest one nobody holds that is big enough, else a fresh one
    /// (zeroed). Kept buffers too small for what a running fetch now wants are freed.
    fn take(&mut self) -> BytesMut {
        // The used-up rest of the last buffer still shares it: it goes first, or that
        // buffer could never be found free.
        self.spare = BytesMut::new();
        let wanted = match self.size {
            0 => self.first,
            size => size.saturating_mul(2).min(self.largest),
        };
        self.size = wanted;
        while let Some(index) = self.recycled.iter().position(Bytes::is_unique) {
            let free = self.recycled.remove(index).map(Bytes::try_into_mut);
            if let Some(buffer) = free.and_then(Result::ok).and_then(|b| reclaim(b, wanted)) {
                return buffer;
            }
        }
        BytesMut::zeroed(wanted)
    }
}

/// A buffer of at least `wanted` bytes from `chunk`, the chunk that ended its buffer, which
/// nobody else holds: the chunk itself when it is that long (a chunk that spans its
/// buffer, or the long tail of one); else the rest of its buffer, or the whole buffer from
/// its start, with `wanted` bytes zeroed again (a reader took the buffer's first bytes as
/// pieces of their own). `None` when the buffer is smaller than `wanted`.
fn reclaim(mut chunk: BytesMut, wanted: usize) -> Option<BytesMut> {
    if chunk.len() >= wanted {
        return Some(chunk);
    }
    chunk.clear();
    if !chunk.try_reclaim(wanted) {
        return None;
    }
    chunk.resize(wanted, 0);
    Some(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that takes pieces of a buffer (bytes it found in the slot) and then the
    /// chunk that ended it: what `pump` sends.
    fn fill_in_pieces(pool: &mut BufferPool, pieces: &[usize]) -> Vec<Bytes> {
        let mut sent = Vec::new();
        for &len in pieces {
            let spare = pool.spare();
            let piece = spare.split_to(len).freeze();
            if spare.is_empty() {
                pool.keep(&piece);
            }
            sent.push(piece);
        }
        sent
    }

    #[test]
    fn a_buffer_comes_back_once_every_piece_of_it_is_dropped() {
        let mut pool = BufferPool::new(1024, 1024, 8);
        let pieces = fill_in_pieces(&mut pool, &[100, 300, 624]);
        let address = pieces[0].as_ptr();
        let first = pieces[0].clone();
        drop(pieces);
        // The reader still holds the first piece: the buffer is not free yet.
        assert_ne!(pool.take().as_ptr(), address);
        drop(first);
        let again = pool.take();
        assert_eq!(
            again.as_ptr(),
            address,
            "the same allocation, from its start"
        );
        assert_eq!(again.len(), 1024);
    }

    #[test]
    fn a_whole_chunk_comes_back_as_it_is() {
        let mut pool = BufferPool::new(1024, 1024, 8);
        let mut pieces = fill_in_pieces(&mut pool, &[1024]);
        let address = pieces[0].as_ptr();
        pieces.clear();
        let again = pool.take();
        assert_eq!(again.as_ptr(), address);
        assert_eq!(again.len(), 1024);
    }

    #[test]
    fn fresh_buffers_grow_within_a_fetch_and_start_small_again_in_the_next() {
        let mut pool = BufferPool::new(256, 1024, 8);
        let sizes: Vec<usize> = (0..4)
            .map(|_| {
                let spare = pool.spare();
                let len = spare.len();
                drop(spare.split_to(len));
                len
            })
            .collect();
        assert_eq!(sizes, [256, 512, 1024, 1024]);
        pool.fresh();
        assert_eq!(pool.spare().len(), 256);
    }

    #[test]
    fn a_free_buffer_is_used_at_its_size_with_no_zeroing() {
        let mut pool = BufferPool::new(256, 1024, 8);
        for _ in 0..3 {
            let len = pool.spare().len();
            let mut chunk = pool.spare().split_to(len);
            chunk.fill(7);
            pool.keep(&chunk.freeze());
        }
        pool.fresh();
        // 256 and 512 were too small for the growing fetch and freed; the 1024 is free.
        let spare = pool.spare();
        assert_eq!(spare.len(), 1024);
        assert!(
            spare.iter().all(|&b| b == 7),
            "reused as it was, not zeroed"
        );
    }

    #[test]
    fn a_free_buffer_behind_one_still_held_is_used() {
        let mut pool = BufferPool::new(1024, 1024, 8);
        let held = fill_in_pieces(&mut pool, &[1024]);
        let dropped = fill_in_pieces(&mut pool, &[1024]);
        let address = dropped[0].as_ptr();
        drop(dropped);
        assert_eq!(pool.take().as_ptr(), address);
        drop(held);
    }

    #[test]
    fn the_pool_keeps_what_a_look_ahead_and_the_history_span() {
        const KIB: u64 = 1024;
        let cases = [
            // look-ahead, first buffer, largest buffer, buffers kept
            (64 * KIB, 16 * 1024, 16 * 1024, 23),
            (256 * KIB, 64 * 1024, 64 * 1024, 11),
            (4096 * KIB, 256 * 1024, 1024 * 1024, 8),
            (64 * 1024 * KIB, 256 * 1024, 1024 * 1024, 68),
        ];
        for (look_ahead, first, largest, limit) in cases {
            let pool = BufferPool::for_look_ahead(look_ahead);
            assert_eq!(
                (pool.first, pool.largest, pool.limit),
                (first, largest, limit),
                "look-ahead {look_ahead}"
            );
        }
    }

    #[test]
    fn the_pool_keeps_at_most_its_limit() {
        let mut pool = BufferPool::new(16, 16, 2);
        let held = fill_in_pieces(&mut pool, &[16, 16, 16]);
        assert_eq!(pool.recycled.len(), 2);
        drop(held);
    }
}
