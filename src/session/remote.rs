//! A session over a remote file: the cursor, the reading turn, and the driver.
//!
//! Locks, and why no call waits behind a blocked read:
//! - `cursor` is held only for short steps (find the bytes, copy them, accept a chunk),
//!   never across a wait for the network;
//! - `turn` lets one reader at a time receive from the driver, so chunks are accepted in
//!   order. A blocking read holds it while it waits, but no query, seek or stop ever takes
//!   it; a polling task that finds it busy is woken when it is free;
//! - `held` is what the cursor holds, republished after every change, for
//!   `buffered_ranges`.

use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::task::{Poll, Waker};

use bytes::Bytes;

use super::cursor::{merge_ranges, Cursor, Env, Held, Step};
use super::SessionState;
use crate::cache::PartialFile;
use crate::driver::{Closed, DriverHandle, Fetch, Want};
use crate::range_policy::SeekTargetError;
use crate::{lock, FileError};

pub(crate) struct Remote {
    cursor: Mutex<Cursor>,
    turn: Mutex<()>,
    held: Mutex<Held>,
    /// The partial cache file the session reads back and the driver writes, if any.
    partial: Option<Arc<PartialFile>>,
    driver: DriverHandle,
}

impl Remote {
    pub(crate) fn new(
        driver: DriverHandle,
        first: Fetch,
        partial: Option<Arc<PartialFile>>,
    ) -> Self {
        let held = Held {
            ranges: Vec::new(),
            live: Some(Want {
                epoch: first.epoch,
                offset: first.start,
            }),
        };
        Remote {
            cursor: Mutex::new(Cursor::new(first, partial.clone())),
            turn: Mutex::new(()),
            held: Mutex::new(held),
            partial,
            driver,
        }
    }

    fn env<'a>(&'a self, state: &'a SessionState) -> Env<'a> {
        Env {
            status: &state.status,
            driver: &self.driver,
            stop: &state.stop,
            held: &self.held,
        }
    }

    /// Reads at the position, blocking until bytes arrive; `Ok(0)` only at the end.
    pub(crate) fn read(&self, state: &SessionState, buf: &mut [u8]) -> Result<usize, FileError> {
        let turn = lock(&self.turn);
        let result = self.read_in_turn(state, buf);
        drop(turn);
        // A task may be waiting for the turn.
        self.driver.inlet.wake_task();
        result
    }

    fn read_in_turn(&self, state: &SessionState, buf: &mut [u8]) -> Result<usize, FileError> {
        let env = self.env(state);
        let inlet = &self.driver.inlet;
        loop {
            let want = {
                let mut cursor = lock(&self.cursor);
                match cursor.next(&env)? {
                    Step::Bytes(bytes) => {
                        let n = bytes.len().min(buf.len());
                        buf[..n].copy_from_slice(&bytes[..n]);
                        cursor.advance(&env, n);
                        return Ok(n);
                    }
                    Step::End => return Ok(0),
                    Step::Wait(want) => want,
                }
            };
            match inlet.wait(want, state.stop.as_watch()) {
                Ok(Some(message)) => lock(&self.cursor).accept(&env, message)?,
                // Nothing for a while: cancel a stalled request in the way, then look again.
                Ok(None) => self
                    .driver
                    .cancel
                    .nudge(want.epoch, inlet.front(), inlet.is_full()),
                Err(_) => return Err(gone(state)),
            }
        }
    }

    /// The next bytes for a polling task: `Ready(Ok(None))` at the end; `Pending` with
    /// `task` registered to be woken.
    pub(crate) fn poll_next(
        &self,
        state: &SessionState,
        task: &Waker,
    ) -> Poll<Result<Option<Bytes>, FileError>> {
        self.poll_take(state, task, |bytes| (bytes.len(), bytes.clone()))
    }

    /// For a polling reader: `copy` takes what fits of the bytes at the position and says
    /// how many it took; only those are consumed, the rest stays for the next poll.
    /// `Ready(Ok(0))` at the end; `Pending` with `task` registered to be woken.
    #[cfg(any(feature = "futures-io", feature = "tokio"))]
    pub(crate) fn poll_read(
        &self,
        state: &SessionState,
        task: &Waker,
        copy: impl FnOnce(&[u8]) -> usize,
    ) -> Poll<Result<usize, FileError>> {
        self.poll_take(state, task, |bytes| {
            let n = copy(bytes);
            (n, n)
        })
        .map_ok(|n| n.unwrap_or(0))
    }

    /// The polling step both take: `take` gets the bytes at the position and says how many
    /// of them to consume, and what to return.
    fn poll_take<T>(
        &self,
        state: &SessionState,
        task: &Waker,
        take: impl FnOnce(&Bytes) -> (usize, T),
    ) -> Poll<Result<Option<T>, FileError>> {
        let _turn = match self.try_turn(task) {
            Ok(Some(turn)) => turn,
            Ok(None) => return Poll::Pending,
            Err(Closed) => return Poll::Ready(Err(gone(state))),
        };
        let env = self.env(state);
        let inlet = &self.driver.inlet;
        loop {
            let want = {
                let mut cursor = lock(&self.cursor);
                match cursor.next(&env) {
                    Err(error) => return Poll::Ready(Err(error)),
                    Ok(Step::Bytes(bytes)) => {
                        let (n, item) = take(&bytes);
                        cursor.advance(&env, n);
                        inlet.clear_task();
                        return Poll::Ready(Ok(Some(item)));
                    }
                    Ok(Step::End) => return Poll::Ready(Ok(None)),
                    Ok(Step::Wait(want)) => want,
                }
            };
            match inlet.poll(want, task) {
                Ok(Some(message)) => {
                    if let Err(error) = lock(&self.cursor).accept(&env, message) {
                        return Poll::Ready(Err(error));
                    }
                }
                // A stop that came before the registration found nothing to wake.
                Ok(None) if state.stop.is_stopped() => return Poll::Ready(Err(FileError::Stopped)),
                Ok(None) => return Poll::Pending,
                Err(_) => return Poll::Ready(Err(gone(state))),
            }
        }
    }

    /// The reading turn without blocking; when a blocking read has it, `task` is woken
    /// once it is free.
    /// `Err` when the driver is gone (no one would wake the task).
    fn try_turn(&self, task: &Waker) -> Result<Option<MutexGuard<'_, ()>>, Closed> {
        let attempt = || match self.turn.try_lock() {
            Ok(turn) => Some(turn),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        if let Some(turn) = attempt() {
            return Ok(Some(turn));
        }
        // Registered before the second look: a read that ends in between wakes the task.
        self.driver.inlet.register_task(task)?;
        Ok(attempt())
    }

    /// Moves the cursor to the target `resolve` computes from the current position.
    /// Returns where it was and where it is now.
    pub(crate) fn seek(
        &self,
        state: &SessionState,
        resolve: impl FnOnce(u64) -> Result<u64, SeekTargetError>,
    ) -> Result<(u64, u64), SeekTargetError> {
        let env = self.env(state);
        let mut cursor = lock(&self.cursor);
        let from = cursor.position();
        let to = resolve(from)?;
        cursor.seek_to(&env, to).map_err(SeekTargetError::File)?;
        Ok((from, to))
    }

    /// The byte ranges available without the network: the cache's bytes, the chunks in
    /// memory, and what the driver has received ahead.
    pub(crate) fn buffered_ranges(&self) -> Vec<Range<u64>> {
        let mut ranges: Vec<Range<u64>> = self
            .partial
            .as_ref()
            .map(|partial| partial.covered())
            .unwrap_or_default();
        let live = {
            let held = lock(&self.held);
            ranges.extend(held.ranges.iter().cloned());
            held.live
        };
        if let Some(live) = live {
            let front = self.driver.inlet.front();
            if front.epoch == live.epoch && front.received_to > live.offset {
                ranges.push(live.offset..front.received_to);
            }
        }
        merge_ranges(ranges)
    }

    /// Whether a reader waits for bytes.
    pub(crate) fn is_waiting(&self) -> bool {
        self.driver.inlet.is_waiting()
    }

    /// After the stop signal closed: the request in flight is cancelled and a waiting task
    /// woken, so everything returns now.
    pub(crate) fn stop(&self) {
        self.driver.cancel.cancel_all();
        self.driver.inlet.wake_task();
    }
}

/// The error of a read whose driver is gone.
fn gone(state: &SessionState) -> FileError {
    if state.stop.is_stopped() {
        FileError::Stopped
    } else {
        FileError::Network("the downloader thread ended unexpectedly".into())
    }
}
