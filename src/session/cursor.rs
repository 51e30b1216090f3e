//! The reader's cursor over a remote file: where it is, the chunks it holds (the newest
//! one and a window of recently read ones), and the fetch whose chunks it accepts.
//!
//! Every chunk is checked before a byte of it is used: a chunk of an older fetch (epoch)
//! is dropped unread, and a chunk of the live fetch must start exactly where the previous
//! one ended. The cursor never waits itself: [`Cursor::next`] says what it needs, and the
//! caller waits for it without holding the cursor's lock.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};

use crate::cache::PartialFile;
use crate::driver::{
    Command, DriverHandle, Fetch, Message, Status, StopSignal, Want, CHUNK_SIZE, HISTORY_BYTES,
    NEAR_AHEAD,
};
use crate::{lock, FileError};

/// What a cursor works with, borrowed from its session.
pub(crate) struct Env<'a> {
    pub status: &'a Status,
    pub driver: &'a DriverHandle,
    pub stop: &'a StopSignal,
    /// What the cursor holds, for queries.
    pub held: &'a Mutex<Held>,
}

/// What a cursor holds in memory, published for queries (which never take the cursor).
#[derive(Debug, Default)]
pub(crate) struct Held {
    /// The chunks in memory, merged.
    pub ranges: Vec<Range<u64>>,
    /// The live fetch and the offset of the next chunk it will deliver.
    pub live: Option<Want>,
}

/// A piece of the file: `bytes` start at `offset`.
#[derive(Clone)]
struct Chunk {
    offset: u64,
    bytes: Bytes,
}

impl Chunk {
    fn end(&self) -> u64 {
        self.offset.saturating_add(self.bytes.len() as u64)
    }

    fn covers(&self, position: u64) -> bool {
        self.offset <= position && position < self.end()
    }
}

/// The fetch whose chunks the cursor accepts.
struct Live {
    epoch: u64,
    /// Offset of the next chunk the channel will deliver.
    next: u64,
    end: Option<u64>,
    done: bool,
}

/// What the cursor found at its position.
pub(crate) enum Step {
    /// The bytes at the position (not consumed yet).
    Bytes(Bytes),
    End,
    /// Nothing until the driver delivers `Want`.
    Wait(Want),
}

pub(crate) struct Cursor {
    position: u64,
    epoch: u64,
    live: Option<Live>,
    current: Option<Chunk>,
    history: VecDeque<Chunk>,
    history_bytes: usize,
    /// An error every later read repeats (the resource changed).
    sticky: Option<FileError>,
    /// Bytes already in the cache's partial file, read back from disk.
    partial: Option<Arc<PartialFile>>,
}

impl Cursor {
    pub(crate) fn new(first: Fetch, partial: Option<Arc<PartialFile>>) -> Self {
        let mut cursor = Cursor {
            position: 0,
            epoch: 0,
            live: None,
            current: None,
            history: VecDeque::new(),
            history_bytes: 0,
            sticky: None,
            partial,
        };
        cursor.begin(first);
        cursor
    }

    pub(crate) fn position(&self) -> u64 {
        self.position
    }

    /// Accepts the chunks of `fetch` from now on.
    fn begin(&mut self, fetch: Fetch) {
        self.epoch = fetch.epoch;
        self.live = Some(Live {
            epoch: fetch.epoch,
            next: fetch.start,
            end: fetch.end,
            done: false,
        });
    }

    /// The bytes at the position, the end of the file, or what to wait for. Starts a
    /// fetch when the position is neither held nor on its way.
    pub(crate) fn next(&mut self, env: &Env<'_>) -> Result<Step, FileError> {
        loop {
            if let Some(error) = &self.sticky {
                return Err(error.clone());
            }
            if env.stop.is_stopped() {
                return Err(FileError::Stopped);
            }
            let position = self.position;
            if let Some(chunk) = self.current.as_ref().filter(|c| c.covers(position)) {
                let from = (position - chunk.offset) as usize;
                return Ok(Step::Bytes(chunk.bytes.slice(from..)));
            }
            if env.status.size().is_some_and(|size| position >= size) {
                return Ok(Step::End);
            }
            if let Some(chunk) = self.history.iter().find(|c| c.covers(position)) {
                self.current = Some(chunk.clone());
                continue;
            }
            // The live fetch first, so the reader keeps draining it; then the disk.
            if !self.live_reaches(env, position) {
                if !self.load_from_disk() {
                    self.request(env)?;
                }
                continue;
            }
            let live = self.live.as_ref().expect("live_reaches needs a live fetch");
            return Ok(Step::Wait(Want {
                epoch: live.epoch,
                offset: live.next,
            }));
        }
    }

    /// Consumes `n` bytes at the position.
    pub(crate) fn advance(&mut self, env: &Env<'_>, n: usize) {
        self.position = self.position.saturating_add(n as u64);
        env.status.reader_read(n);
        env.status.reader_moved(self.position);
    }

    /// Takes one message for the live fetch, dropping those of older fetches.
    pub(crate) fn accept(&mut self, env: &Env<'_>, message: Message) -> Result<(), FileError> {
        let Some(live) = self.live.as_mut() else {
            return Ok(());
        };
        match message {
            Message::Data {
                epoch,
                offset,
                bytes,
            } if epoch == live.epoch => {
                if offset != live.next {
                    let error = FileError::Protocol(format!(
                        "internal: a chunk for byte {offset} arrived where byte {} was due",
                        live.next
                    ));
                    self.sticky = Some(error.clone());
                    return Err(error);
                }
                let chunk = Chunk { offset, bytes };
                live.next = chunk.end();
                if chunk.end() > self.position {
                    self.current = Some(chunk.clone());
                    self.remember(chunk);
                }
                self.publish(env);
                Ok(())
            }
            Message::End { epoch } if epoch == live.epoch => {
                live.done = true;
                Ok(())
            }
            Message::Failed { epoch, error } if epoch == live.epoch => {
                self.live = None;
                if matches!(error, FileError::ResourceChanged(_)) {
                    self.sticky = Some(error.clone());
                }
                self.publish(env);
                Err(error)
            }
            _ => Ok(()),
        }
    }

    /// Moves to `target`, which the caller validated against the known size. Starts the
    /// fetch for it now when it is not held or on its way, so the bytes travel before the
    /// next read.
    pub(crate) fn seek_to(&mut self, env: &Env<'_>, target: u64) -> Result<u64, FileError> {
        if let Some(error) = &self.sticky {
            return Err(error.clone());
        }
        if target == self.position {
            return Ok(target);
        }
        let held = self.holds(target);
        let ranges = env.status.ranges();
        if !ranges && target < self.position && !held {
            return Err(FileError::SeekNotSupported);
        }
        let at_end = env.status.size().is_some_and(|size| target >= size);
        let fetch = !held && !at_end && !self.live_reaches(env, target) && ranges;
        env.status.reader_seeks(self.position, target, fetch);
        self.position = target;
        // The driver sees the new position before the seek's fetch (a fetch that starts
        // behind a stale position would wait for the reader to come back), but is woken
        // by it only after: woken first, it asked for the whole gap to the target (4 MB
        // requests, abandoned at once).
        env.status.set_position(target);
        let requested = if fetch { self.request(env) } else { Ok(()) };
        env.status.reader_moved(target);
        requested.map(|()| target)
    }

    /// Whether the bytes at `position` are in memory or in the partial cache file.
    fn holds(&self, position: u64) -> bool {
        self.current.as_ref().is_some_and(|c| c.covers(position))
            || self.history.iter().any(|c| c.covers(position))
            || self.on_disk(position).is_some()
    }

    /// The end of the cached run of bytes that contains `position`, if any.
    fn on_disk(&self, position: u64) -> Option<u64> {
        self.partial.as_ref()?.covered_end(position)
    }

    /// Reads the cached bytes at the position into `current`; `false` if there are none
    /// (or the disk failed, which turns disk reads off for this session).
    fn load_from_disk(&mut self) -> bool {
        let (Some(partial), Some(end)) = (&self.partial, self.on_disk(self.position)) else {
            return false;
        };
        let len = (end - self.position).min(CHUNK_SIZE as u64) as usize;
        let mut buffer = BytesMut::zeroed(len);
        match partial.read_at(self.position, &mut buffer) {
            Ok(n) if n > 0 => {
                buffer.truncate(n);
                self.current = Some(Chunk {
                    offset: self.position,
                    bytes: buffer.freeze(),
                });
                true
            }
            _ => {
                self.partial = None;
                false
            }
        }
    }

    /// Whether the live fetch will deliver `position` without a new request: it is next,
    /// already received or about to be (`NEAR_AHEAD`), or (without ranges) anywhere ahead.
    fn live_reaches(&self, env: &Env<'_>, position: u64) -> bool {
        let Some(live) = &self.live else {
            return false;
        };
        if live.done || position < live.next || live.end.is_some_and(|end| position >= end) {
            return false;
        }
        if position == live.next || !env.status.ranges() {
            return true;
        }
        let front = env.driver.inlet.front();
        front.epoch == live.epoch && position <= front.received_to.saturating_add(NEAR_AHEAD)
    }

    fn remember(&mut self, chunk: Chunk) {
        // What lies ahead of the reader in the newest chunk is not read yet: it does not
        // count towards the window of recently read bytes.
        let unread = chunk.end().saturating_sub(chunk.offset.max(self.position)) as usize;
        self.history_bytes += chunk.bytes.len();
        self.history.push_back(chunk);
        while let Some(oldest) = self.history.front() {
            if self.history_bytes - oldest.bytes.len() < HISTORY_BYTES + unread {
                break;
            }
            self.history_bytes -= oldest.bytes.len();
            self.history.pop_front();
        }
    }

    /// Starts a new fetch at the position, up to the next cached bytes; chunks of older
    /// fetches are dropped from now on.
    fn request(&mut self, env: &Env<'_>) -> Result<(), FileError> {
        let fetch = Fetch {
            epoch: self.epoch + 1,
            start: self.position,
            end: self
                .partial
                .as_ref()
                .and_then(|p| p.next_covered_start(self.position)),
        };
        env.driver
            .commands
            .send(Command::Fetch(fetch))
            .map_err(|_| FileError::Stopped)?;
        let inlet = &env.driver.inlet;
        env.driver
            .cancel
            .nudge(fetch.epoch, inlet.front(), inlet.is_full());
        self.begin(fetch);
        self.publish(env);
        Ok(())
    }

    /// Publishes what is held for queries: per accepted chunk, so in place and without
    /// sorting (history is in arrival order; `buffered_ranges` sorts and merges).
    fn publish(&self, env: &Env<'_>) {
        let mut held = lock(env.held);
        held.ranges.clear();
        for chunk in self.history.iter().chain(self.current.iter()) {
            let range = chunk.offset..chunk.end();
            match held.ranges.last_mut() {
                Some(last) if last.start <= range.start && range.start <= last.end => {
                    last.end = last.end.max(range.end);
                }
                _ => held.ranges.push(range),
            }
        }
        held.live = self.live.as_ref().map(|live| Want {
            epoch: live.epoch,
            offset: live.next,
        });
    }
}

/// Sorts and merges ranges; empty ones are dropped.
pub(crate) fn merge_ranges(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.retain(|r| r.start < r.end);
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}
