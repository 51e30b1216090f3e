//! A response body into the handoff: every socket read is staged at once (a waiting
//! reader may take it), full chunks are sent, and each chunk that ends its buffer goes
//! to the pool (`driver/buffer_pool.rs`), which reuses the buffer once the reader has
//! dropped every byte of it.

use std::io::{ErrorKind, Read};

use bytes::{Buf, Bytes, BytesMut};
use crossbeam_channel::select;

use super::handoff::{Message, Staged, Staging};
use super::retry::{classify, Failure, Transient};
use super::run::{Driver, Interrupt};
use super::Fetch;
use crate::range_policy::Validators;

/// The first bytes of every response reach a waiting reader read by read: a decoder's
/// first read after an open or a seek must not wait for a chunk to fill.
const URGENT_BYTES: u64 = 64 * 1024;

/// An open response: its body and where its bytes go.
pub(crate) struct OpenBody {
    pub body: ureq::BodyReader<'static>,
    /// Body bytes to discard first (a `200` full body answering a later start).
    pub skip: u64,
    /// The offset after the last byte the body carries, when known.
    pub end: Option<u64>,
    /// The body's framing (its Content-Length) ends exactly at `end`: once the last byte
    /// is in, the read that ends the body returns at once, with no socket read.
    pub framed: bool,
    /// Bytes below this offset go out to a waiting reader at once.
    pub urgent_until: u64,
    /// A `206`'s validators: a run of them that delivers nothing is judged by
    /// `short_partials_verdict` when the retries give up.
    pub partial_validators: Option<Validators>,
}

impl OpenBody {
    pub(crate) fn new(
        body: ureq::BodyReader<'static>,
        start: u64,
        skip: u64,
        end: Option<u64>,
    ) -> Self {
        OpenBody {
            body,
            skip,
            end,
            framed: false,
            urgent_until: start.saturating_add(URGENT_BYTES),
            partial_validators: None,
        }
    }
}

/// How pumping a body ended.
pub(crate) enum Pumped {
    /// The body ended where it said it would (or the fetch has all it asked for).
    Complete,
    Interrupted(Interrupt),
    Failed(Failure),
}

/// What one socket read gave.
enum Read1 {
    More,
    /// The body ended (cleanly, or past what the response promised).
    Ended,
    Failed(std::io::Error),
}

/// Reads a framed body that has given every byte it promised to its end (a read that
/// returns 0 at once), before its last bytes wait for the reader or for room in the
/// channel: that read hands the connection back to the agent's pool, so a seek made
/// meanwhile reuses it (on a metered link a full window used to wait in the look-ahead
/// first, and the seek after it paid a new TCP connection). Whatever the read gives, the
/// body ends here: every promised byte is in.
fn finish_body(body: &mut ureq::BodyReader<'static>) {
    let mut probe = [0u8; 1];
    while matches!(body.read(&mut probe), Err(e) if e.kind() == ErrorKind::Interrupted) {}
}

impl Driver {
    /// Moves a body into the handoff until it ends, fails, or a command interrupts.
    /// `position` follows the bytes delivered.
    pub(crate) fn pump(&mut self, fetch: Fetch, open: &mut OpenBody, position: &mut u64) -> Pumped {
        let result = loop {
            if let Some(interrupt) = self.poll_interrupt() {
                break Pumped::Interrupted(interrupt);
            }
            match self.read_once(fetch, open, position) {
                Ok(Read1::More) => {}
                Ok(Read1::Ended) => break self.body_ended(open, *position),
                Ok(Read1::Failed(error)) => {
                    break Pumped::Failed(classify(ureq::Error::from(error)))
                }
                Err(interrupt) => break Pumped::Interrupted(interrupt),
            }
            // A body that ends where the fetch does is read to its end (a last read that
            // returns 0 at once), so its connection goes back to the pool.
            if fetch
                .end
                .is_some_and(|end| *position >= end && open.end != Some(end))
            {
                break Pumped::Complete;
            }
        };
        match result {
            Pumped::Interrupted(interrupt) => {
                self.abandon_staged();
                Pumped::Interrupted(interrupt)
            }
            other => match self.flush(fetch.epoch) {
                Ok(()) => other,
                Err(interrupt) => Pumped::Interrupted(interrupt),
            },
        }
    }

    /// The first read of the first body, on the caller's thread: its bytes wait in the
    /// handoff for the first `read`, with no thread handoff before the first byte
    /// (130–200 µs measured). Returns the body while it has more to give.
    pub(crate) fn pump_first(
        &mut self,
        fetch: Fetch,
        mut open: OpenBody,
        position: &mut u64,
    ) -> Option<OpenBody> {
        match self.read_once(fetch, &mut open, position) {
            Ok(Read1::More) => Some(open),
            // Ended or failed: the driver thread's loop sees where it stands and goes on.
            _ => {
                let _ = self.flush(fetch.epoch);
                self.end_request();
                None
            }
        }
    }

    /// One socket read, staged. `Err` when a command came while the driver waited (for
    /// the reader, the rate cap or room in the channel).
    fn read_once(
        &mut self,
        fetch: Fetch,
        open: &mut OpenBody,
        position: &mut u64,
    ) -> Result<Read1, Interrupt> {
        let epoch = fetch.epoch;
        let ahead = self.look_ahead_room(fetch, *position, open.skip)?;
        let grant = self.throttle()?;
        let spare = self.pool.spare();
        let room = spare.len().min(grant).min(ahead);
        let n = match open.body.read(&mut spare[..room]) {
            Ok(0) => return Ok(Read1::Ended),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(Read1::More),
            Err(e) => return Ok(Read1::Failed(e)),
        };
        let mut piece = spare.split_to(n);
        let full = spare.is_empty();
        self.status.count_fetched(n);
        if let Some(rate) = &mut self.rate {
            rate.spend(n);
        }
        let skip = open.skip.min(n as u64);
        piece.advance(skip as usize);
        open.skip -= skip;
        // Never past the end the response promised (a lying Content-Length).
        let usable = open
            .end
            .map_or(piece.len() as u64, |end| end.saturating_sub(*position));
        let over = usable < piece.len() as u64;
        if over {
            piece.truncate(usable as usize);
        }
        let offset = *position;
        *position += piece.len() as u64;
        // Not while bytes remain to skip: a 200 answering a start at the file's end reaches
        // `end` before its skip is used up, with body bytes still to come.
        let complete = !over && open.skip == 0 && open.framed && open.end == Some(*position);
        if complete {
            finish_body(&mut open.body);
        }
        if !piece.is_empty() {
            let urgent = offset < open.urgent_until;
            self.deliver(epoch, offset, piece, urgent, full)?;
        }
        Ok(if over || complete {
            Read1::Ended
        } else {
            Read1::More
        })
    }

    /// How many bytes the next socket read may take under the rate cap, waiting (and
    /// watching commands and the stop) until some may.
    fn throttle(&mut self) -> Result<usize, Interrupt> {
        let Some(rate) = &mut self.rate else {
            return Ok(usize::MAX);
        };
        loop {
            match rate.grant() {
                Ok(bytes) => return Ok(bytes),
                Err(wait) => select! {
                    recv(self.commands) -> command => return Err(Interrupt::from_command(command.ok())),
                    recv(self.stop.receiver()) -> _ => return Err(Interrupt::Exit),
                    default(wait) => {}
                },
            }
        }
    }

    /// Stages one read's bytes; sends the chunk when it is full or a reader waits for it.
    fn deliver(
        &mut self,
        epoch: u64,
        offset: u64,
        piece: BytesMut,
        urgent: bool,
        full: bool,
    ) -> Result<(), Interrupt> {
        self.coverage.insert(offset..offset + piece.len() as u64);
        let staging = self.outlet.stage(epoch, offset, piece, urgent, full);
        let sent = self.send_staging(epoch, staging, full);
        self.after_delivery();
        sent
    }

    /// Bytes of an abandoned fetch (or of a driver that ends) still belong in the cache,
    /// never to the reader.
    pub(crate) fn abandon_staged(&mut self) {
        let staging = self.outlet.unstage();
        if let Some(staged) = staging.send {
            self.sink.write(staged.offset, &staged.bytes);
        }
        self.cache_taken(staging.taken);
        self.sink.settle();
    }

    /// Sends whatever is staged: the body ended, failed or is done.
    pub(crate) fn flush(&mut self, epoch: u64) -> Result<(), Interrupt> {
        let staging = self.outlet.unstage();
        self.send_staging(epoch, staging, false)
    }

    /// `ends_buffer`: the chunk to send, if any, ends its buffer (the read that filled the
    /// buffer staged its last bytes).
    fn send_staging(
        &mut self,
        epoch: u64,
        staging: Staging,
        ends_buffer: bool,
    ) -> Result<(), Interrupt> {
        self.cache_taken(staging.taken);
        match staging.send {
            Some(staged) => self.send_chunk(epoch, staged, ends_buffer),
            None => Ok(()),
        }
    }

    /// Writes bytes a reader took from the slot to the cache.
    fn cache_taken(&mut self, taken: Vec<(u64, Bytes)>) {
        if taken.is_empty() {
            return;
        }
        for (offset, bytes) in taken {
            self.sink.write(offset, &bytes);
        }
        self.sink.settle();
    }

    fn send_chunk(
        &mut self,
        epoch: u64,
        staged: Staged,
        ends_buffer: bool,
    ) -> Result<(), Interrupt> {
        let offset = staged.offset;
        let chunk = staged.bytes.freeze();
        // The pool keeps the chunk itself, the reader gets it (or its copy when small): the
        // buffer comes back through the pool's handle once the reader drops every piece.
        if ends_buffer {
            self.pool.keep(&chunk);
        }
        let bytes = self.outlet.seal(chunk);
        // Written before it goes out: the reader may look for it on disk next.
        self.sink.write(offset, &bytes);
        let sent = self.outlet.send(
            Message::Data {
                epoch,
                offset,
                bytes,
            },
            &self.commands,
            &self.stop,
        );
        // After the send: the reader is not kept waiting for a checkpoint's or a commit's fsyncs.
        self.sink.settle();
        sent
    }

    /// The body reported its end: complete where it promised, else a truncation to resume.
    /// A body of unknown length that ends cleanly ends the file.
    fn body_ended(&self, open: &OpenBody, position: u64) -> Pumped {
        match open.end {
            Some(end) if position < end => Pumped::Failed(Failure::Transient(Transient::new(
                format!("the body ended at byte {position} of {end}"),
            ))),
            Some(_) => Pumped::Complete,
            None => {
                if self.status.size().is_none() {
                    self.status.set_size(position);
                }
                Pumped::Complete
            }
        }
    }
}
