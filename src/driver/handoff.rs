//! How bytes get from the driver thread to the reader.
//!
//! Full chunks travel through a bounded channel (the look-ahead), each tagged with the
//! epoch of its fetch and its byte offset. The chunk the driver is still filling sits in
//! a shared slot that every socket read extends at once: a reader that finds the channel
//! empty takes those bytes itself, so nothing that has arrived waits behind the next
//! blocking read of a stalled socket. In the steady state chunks still go out whole (one
//! handoff per chunk).
//!
//! Whether a reader waits, and the waker of a task that polls, live in the same slot and
//! change only under its lock (crossbeam's `SyncWaker` does the same), so a wake-up can
//! never fall between a reader's last look and its wait.

use std::mem;
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use crossbeam_channel::{bounded, select, Receiver, Sender, TryRecvError};

use super::cancel::STALL_CHECK;
use super::run::Interrupt;
use super::stop::StopWatch;
use super::Command;
use crate::{lock, FileError};

/// How long a blocked reader lets the driver go on filling a chunk before it takes the
/// bytes received so far. Within it, a fast link fills a whole 256 KiB chunk (~0.13 ms at
/// 2 GB/s), so handoffs stay one per chunk; past it, the driver hands every read over.
const PATIENCE: Duration = Duration::from_millis(1);

/// What the driver hands the reader.
#[derive(Debug)]
pub(crate) enum Message {
    /// `bytes` belong at `offset` of the file.
    Data {
        epoch: u64,
        offset: u64,
        bytes: Bytes,
    },
    /// The fetch delivered everything it was asked for (when it reached the end of a
    /// file of unknown length, the length is known by now).
    End { epoch: u64 },
    /// The fetch gave up.
    Failed { epoch: u64, error: FileError },
}

/// What a reader waits for: the bytes of fetch `epoch` from `offset` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Want {
    pub epoch: u64,
    pub offset: u64,
}

/// The fetch the driver works on and how far its bytes have arrived (channel and slot).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Front {
    pub epoch: u64,
    pub received_to: u64,
    /// When the fetch started, last received bytes or stopped waiting for the reader: a
    /// long silence is a stall.
    pub moved_at: Instant,
    /// The driver waits for the reader (the look-ahead is full): silent, not stalled.
    pub paced: bool,
}

/// Bytes of the chunk being filled: they start at `offset` of fetch `epoch`.
pub(crate) struct Staged {
    pub epoch: u64,
    pub offset: u64,
    pub bytes: BytesMut,
}

impl Staged {
    fn end(&self) -> u64 {
        self.offset + self.bytes.len() as u64
    }
}

/// Who waits for bytes: a thread blocked in `read`, or a task that polled.
enum Waiter<'a> {
    Blocked,
    Task(&'a Waker),
}

struct Slot {
    front: Front,
    staged: Option<Staged>,
    /// A reader blocked waiting for bytes, since then.
    blocked_since: Option<Instant>,
    /// A task that polled and found nothing.
    task: Option<Waker>,
    /// What the waiting reader or task asked for last.
    wanted: Option<Want>,
    /// Staged bytes a reader took, kept for the driver's cache write-through.
    taken: Vec<(u64, Bytes)>,
    keep_taken: bool,
    /// Chunks below this get a buffer of their own size when handed out, so a slow link
    /// cannot pin a whole chunk allocation per few bytes in the reader's history.
    small: usize,
    /// The driver side is gone.
    closed: bool,
}

impl Slot {
    fn take_for(&mut self, want: Want) -> Option<Bytes> {
        let wanted = self.staged.as_ref().is_some_and(|s| {
            s.epoch == want.epoch && s.offset == want.offset && !s.bytes.is_empty()
        });
        if !wanted {
            return None;
        }
        let bytes = self.staged.take()?.bytes.freeze();
        if self.keep_taken {
            self.taken.push((want.offset, bytes.clone()));
        }
        Some(bytes)
    }

    /// Records a waiter; a task is refused once the driver is gone (nothing would wake it).
    /// `want`: what it waits for (`None`: a task waiting for the reading turn, which
    /// leaves what the reader in the turn asked for as it is).
    fn wait(&mut self, want: Option<Want>, waiter: Waiter<'_>) -> Result<(), Closed> {
        if want.is_some() {
            self.wanted = want;
        }
        match waiter {
            Waiter::Blocked => {
                self.blocked_since.get_or_insert_with(Instant::now);
            }
            Waiter::Task(_) if self.closed => return Err(Closed),
            Waiter::Task(task) => match &self.task {
                Some(current) if current.will_wake(task) => {}
                _ => self.task = Some(task.clone()),
            },
        }
        Ok(())
    }

    fn reader_waits(&self, urgent: bool) -> bool {
        self.task.is_some()
            || self
                .blocked_since
                .is_some_and(|since| urgent || since.elapsed() >= PATIENCE)
    }
}

/// Creates both ends; `capacity` chunks fit in the channel.
pub(crate) fn handoff(capacity: usize, chunk_size: usize) -> (Outlet, Inlet) {
    let (sender, receiver) = bounded(capacity);
    let slot = Arc::new(Mutex::new(Slot {
        front: Front {
            epoch: 0,
            received_to: 0,
            moved_at: Instant::now(),
            paced: false,
        },
        staged: None,
        blocked_since: None,
        task: None,
        wanted: None,
        taken: Vec::new(),
        keep_taken: false,
        // A quarter chunk, at most 64 KiB: a slow link's small pieces are copied rather
        // than pinning a whole chunk buffer each; bigger pieces are not worth a copy.
        small: (chunk_size / 4).min(64 * 1024),
        closed: false,
    }));
    let outlet = Outlet {
        data: Some(sender),
        slot: Arc::clone(&slot),
        discard: false,
    };
    (
        outlet,
        Inlet {
            data: receiver,
            slot,
        },
    )
}

/// A chunk out of the slot: as one handoff, copied when small.
fn owned(bytes: Bytes, small: usize) -> Bytes {
    if bytes.len() < small {
        Bytes::copy_from_slice(&bytes)
    } else {
        bytes
    }
}

/// The driver's end.
pub(crate) struct Outlet {
    data: Option<Sender<Message>>,
    slot: Arc<Mutex<Slot>>,
    /// Nobody reads (a prefetch): messages are dropped once the cache has them.
    discard: bool,
}

/// What staging one read gave back to the driver.
pub(crate) struct Staging {
    /// The chunk to send now (it is full, or a reader waits for it).
    pub send: Option<Staged>,
    /// Bytes readers took from the slot since the last call (for the cache).
    pub taken: Vec<(u64, Bytes)>,
}

impl Outlet {
    /// No reader: every message is dropped (the driver writes the cache before sending).
    pub(crate) fn discard(&mut self) {
        self.discard = true;
    }

    /// Keeps the bytes readers take from the slot, for the cache write-through.
    pub(crate) fn keep_taken(&self, keep: bool) {
        lock(&self.slot).keep_taken = keep;
    }

    /// A new fetch starts at `start`: what was staged for older ones is dropped.
    pub(crate) fn begin(&self, epoch: u64, start: u64) {
        let mut slot = lock(&self.slot);
        slot.front = Front {
            epoch,
            received_to: start,
            moved_at: Instant::now(),
            paced: false,
        };
        slot.staged = None;
    }

    /// The driver starts (`true`) or stops waiting for the reader to make room in the
    /// look-ahead; the silence before it started does not count as a stall.
    pub(crate) fn pace(&self, paced: bool) {
        let mut slot = lock(&self.slot);
        slot.front.paced = paced;
        slot.front.moved_at = Instant::now();
    }

    /// Adds the bytes of one read, at `offset` of fetch `epoch`, to the chunk being filled.
    /// The chunk comes back to be sent when `full`, or when a reader waits for it: a task
    /// at once, a blocked reader once it has waited [`PATIENCE`] or when `urgent` (the first
    /// bytes of a response, which a reader after a seek waits for).
    pub(crate) fn stage(
        &self,
        epoch: u64,
        offset: u64,
        piece: BytesMut,
        urgent: bool,
        full: bool,
    ) -> Staging {
        let mut slot = lock(&self.slot);
        slot.front.received_to = offset + piece.len() as u64;
        slot.front.moved_at = Instant::now();
        match &mut slot.staged {
            // Contiguous pieces of one buffer: `unsplit` is O(1).
            Some(staged) if staged.epoch == epoch && staged.end() == offset => {
                staged.bytes.unsplit(piece);
            }
            other => {
                // `begin` and `unstage` empty the slot first: nothing is ever dropped here.
                debug_assert!(other.as_ref().is_none_or(|s| s.bytes.is_empty()));
                *other = Some(Staged {
                    epoch,
                    offset,
                    bytes: piece,
                });
            }
        }
        // A piece goes out only to a reader that waits for exactly it: pieces queued
        // behind messages it has not taken yet (or sent while it is taking the one before)
        // would each hold a channel slot (the channel counts messages), and pieces left
        // over after a burst of reads shrank a 4 MiB look-ahead to 1.75 MiB. Any other
        // reader takes the slot's bytes itself once it has drained the channel.
        let wanted = slot.staged.as_ref().map(|staged| Want {
            epoch: staged.epoch,
            offset: staged.offset,
        });
        let reader_needs_it =
            slot.reader_waits(urgent) && wanted.is_some() && slot.wanted == wanted;
        let send = if full || reader_needs_it {
            slot.staged.take()
        } else {
            None
        };
        Staging {
            send,
            taken: mem::take(&mut slot.taken),
        }
    }

    /// Takes back what is staged (the body ended or failed): it goes out as a chunk.
    pub(crate) fn unstage(&self) -> Staging {
        let mut slot = lock(&self.slot);
        Staging {
            send: slot.staged.take(),
            taken: mem::take(&mut slot.taken),
        }
    }

    /// A chunk as it is sent: copied when small, so it does not hold its whole buffer.
    pub(crate) fn seal(&self, chunk: Bytes) -> Bytes {
        let small = lock(&self.slot).small;
        owned(chunk, small)
    }

    /// Sends a message, watching commands and the stop signal while the channel is full.
    pub(crate) fn send(
        &self,
        message: Message,
        commands: &Receiver<Command>,
        stop: &StopWatch,
    ) -> Result<(), Interrupt> {
        let Some(data) = &self.data else {
            return Err(Interrupt::Exit);
        };
        if self.discard {
            return Ok(());
        }
        let sent = match data.try_send(message) {
            Ok(()) => Ok(()),
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => Err(Interrupt::Exit),
            Err(crossbeam_channel::TrySendError::Full(message)) => select! {
                send(data, message) -> sent => {
                    sent.map_err(|_| Interrupt::Exit)?;
                    super::let_reader_run();
                    Ok(())
                }
                recv(commands) -> command => Err(Interrupt::from_command(command.ok())),
                recv(stop.receiver()) -> _ => Err(Interrupt::Exit),
            },
        };
        if sent.is_ok() {
            self.wake_task();
        }
        sent
    }

    fn wake_task(&self) {
        wake(&self.slot);
    }
}

/// Wakes the registered task, outside the lock.
fn wake(slot: &Mutex<Slot>) {
    let task = lock(slot).task.take();
    if let Some(task) = task {
        task.wake();
    }
}

impl Drop for Outlet {
    /// However the driver ends (a panic in a user callback too): readers see the channel
    /// close, and a waiting task is woken to see it.
    fn drop(&mut self) {
        self.data.take();
        let task = {
            let mut slot = lock(&self.slot);
            slot.closed = true;
            slot.staged = None;
            slot.task.take()
        };
        if let Some(task) = task {
            task.wake();
        }
    }
}

/// Why a reader gets no more messages: stopped, or the driver thread ended.
#[derive(Debug)]
pub(crate) struct Closed;

/// The reader's end.
pub(crate) struct Inlet {
    data: Receiver<Message>,
    slot: Arc<Mutex<Slot>>,
}

/// Clears "a reader is blocked" however the wait ends.
struct Blocked<'a>(&'a Inlet);

impl Drop for Blocked<'_> {
    fn drop(&mut self) {
        let mut slot = lock(&self.0.slot);
        slot.blocked_since = None;
        slot.wanted = None;
    }
}

impl Inlet {
    /// Blocks until a message arrives or staged bytes for `want` can be taken; `None`
    /// after [`STALL_CHECK`] without either, so the caller can look again (a seek from
    /// another thread, a stalled request to cancel).
    pub(crate) fn wait(&self, want: Want, stop: &StopWatch) -> Result<Option<Message>, Closed> {
        let _blocked = Blocked(self);
        let mut timeout = PATIENCE;
        loop {
            match self.data.try_recv() {
                Ok(message) => return Ok(Some(message)),
                Err(TryRecvError::Disconnected) => return Err(Closed),
                Err(TryRecvError::Empty) => {}
            }
            if let Some(message) = self.take_staged(want, Waiter::Blocked)? {
                return Ok(Some(message));
            }
            select! {
                recv(self.data) -> message => return message.map(Some).map_err(|_| Closed),
                recv(stop.receiver()) -> _ => return Err(Closed),
                default(timeout) => {}
            }
            if timeout == STALL_CHECK {
                return Ok(None);
            }
            timeout = STALL_CHECK;
        }
    }

    /// A message or staged bytes for `want` if there are any; otherwise `task` is woken
    /// when there are.
    pub(crate) fn poll(&self, want: Want, task: &Waker) -> Result<Option<Message>, Closed> {
        match self.data.try_recv() {
            Ok(message) => return Ok(Some(message)),
            Err(TryRecvError::Disconnected) => return Err(Closed),
            Err(TryRecvError::Empty) => {}
        }
        if let Some(message) = self.take_staged(want, Waiter::Task(task))? {
            return Ok(Some(message));
        }
        // The driver may have sent between the first look and the registration.
        match self.data.try_recv() {
            Ok(message) => Ok(Some(message)),
            Err(TryRecvError::Disconnected) => Err(Closed),
            Err(TryRecvError::Empty) => Ok(None),
        }
    }

    /// Staged bytes for `want`; else the waiter is recorded, under the same lock, so the
    /// driver's next read goes to it (no bytes can land in between unseen).
    fn take_staged(&self, want: Want, waiter: Waiter<'_>) -> Result<Option<Message>, Closed> {
        let (bytes, small) = {
            let mut slot = lock(&self.slot);
            match slot.take_for(want) {
                Some(bytes) => (bytes, slot.small),
                None => {
                    slot.wait(Some(want), waiter)?;
                    return Ok(None);
                }
            }
        };
        Ok(Some(Message::Data {
            epoch: want.epoch,
            offset: want.offset,
            bytes: owned(bytes, small),
        }))
    }

    /// Has `task` woken by the next handoff (or [`Inlet::wake_task`]).
    pub(crate) fn register_task(&self, task: &Waker) -> Result<(), Closed> {
        lock(&self.slot).wait(None, Waiter::Task(task))
    }

    /// Forgets a registered task that got what it waited for.
    pub(crate) fn clear_task(&self) {
        let mut slot = lock(&self.slot);
        slot.task = None;
        slot.wanted = None;
    }

    /// Wakes a registered task (the reading turn it waited for is free).
    pub(crate) fn wake_task(&self) {
        wake(&self.slot);
    }

    pub(crate) fn front(&self) -> Front {
        lock(&self.slot).front
    }

    /// Whether a reader or a task is waiting for bytes (the UI calls that buffering).
    pub(crate) fn is_waiting(&self) -> bool {
        let slot = lock(&self.slot);
        slot.blocked_since.is_some() || slot.task.is_some()
    }

    /// Whether the channel is full: the driver is held back, not stalled.
    pub(crate) fn is_full(&self) -> bool {
        self.data.is_full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_chunk_goes_out_as_a_copy_and_a_large_one_as_it_is() {
        let (outlet, _inlet) = handoff(4, 256 * 1024);
        let small = Bytes::from(vec![1u8; 1000]);
        let large = Bytes::from(vec![2u8; 64 * 1024]);
        // The copy lets the pool's handle be the buffer's last: it comes back for reuse.
        let sent = outlet.seal(small.clone());
        assert_eq!(sent, small);
        assert_ne!(sent.as_ptr(), small.as_ptr());
        assert!(
            small.is_unique(),
            "the sent copy shares nothing with the original"
        );
        let sent = outlet.seal(large.clone());
        assert_eq!(sent.as_ptr(), large.as_ptr());
    }
}
