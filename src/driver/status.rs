//! What the driver reports, readable from every handle at any time without waiting: each
//! field is an atomic the driver updates as it goes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_channel::{bounded, Receiver, Sender};

use std::sync::Mutex;

use crate::events::{DownloadState, StateCell};
use crate::{lock, FileError};

/// "Length unknown". `range_policy` never accepts a length this large, so the sentinel
/// cannot collide with a real one.
const UNKNOWN_SIZE: u64 = u64::MAX;

/// A seek back this short is a step within the reader's run of reading, not a new one:
/// demuxers re-read a few bytes while they play.
const SKIP_WITHIN_RUN: u64 = 64 * 1024;

/// A session's download, as the driver last reported it.
#[derive(Debug)]
pub(crate) struct Status {
    size: AtomicU64,
    ranges: AtomicBool,
    state: StateCell,
    requests: AtomicU64,
    bytes_fetched: AtomicU64,
    retries: AtomicU64,
    /// A cache commit is under way: dropping the session waits for it.
    committing: AtomicBool,
    /// This session committed the asset's body to the cache.
    committed: AtomicBool,
    /// The reader's position (the cursor's, for queries and for pacing read-ahead).
    position: AtomicU64,
    /// Bytes the reader has read (not sought past): how far it really read on since a
    /// fetch started, for the read-ahead after a seek.
    read_total: AtomicU64,
    /// Where the reader's current run of reading began: the target of its last seek of
    /// more than [`SKIP_WITHIN_RUN`]. Reading on from there is what shows it plays.
    run_start: AtomicU64,
    /// The driver waits for the reader to reach this position (`u64::MAX`: it does not).
    demand_at: AtomicU64,
    demand_tx: Sender<()>,
    demand_rx: Receiver<()>,
    /// The error the last fetch gave up with (a prefetch has no reader to hand it to).
    failure: Mutex<Option<FileError>>,
}

impl Status {
    /// `ranges`: whether seeks may use Range requests (the option; the server may turn it off).
    pub(crate) fn new(size: Option<u64>, ranges: bool, state: DownloadState) -> Self {
        let (demand_tx, demand_rx) = bounded(1);
        Status {
            size: AtomicU64::new(size.unwrap_or(UNKNOWN_SIZE)),
            ranges: AtomicBool::new(ranges),
            state: StateCell::new(state),
            requests: AtomicU64::new(0),
            bytes_fetched: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            committing: AtomicBool::new(false),
            committed: AtomicBool::new(false),
            position: AtomicU64::new(0),
            read_total: AtomicU64::new(0),
            run_start: AtomicU64::new(0),
            demand_at: AtomicU64::new(u64::MAX),
            demand_tx,
            demand_rx,
            failure: Mutex::new(None),
        }
    }

    pub(crate) fn set_failure(&self, error: FileError) {
        *lock(&self.failure) = Some(error);
    }

    pub(crate) fn failure(&self) -> Option<FileError> {
        lock(&self.failure).clone()
    }

    /// The reader's position.
    pub(crate) fn position(&self) -> u64 {
        self.position.load(Ordering::SeqCst)
    }

    /// The reader moved (read or seek); wakes a driver waiting for it to get that far.
    pub(crate) fn reader_moved(&self, position: u64) {
        self.set_position(position);
        if position >= self.demand_at.load(Ordering::SeqCst) {
            self.demand_at.store(u64::MAX, Ordering::SeqCst);
            let _ = self.demand_tx.try_send(());
        }
    }

    /// The reader seeks from `from` to `to`, with a new fetch (`fetch`) or not. A new run
    /// of reading starts there when the seek needs a fetch or goes back more than
    /// [`SKIP_WITHIN_RUN`]. A skip forward that the running fetch reaches is not a new run
    /// (a demuxer stepping over another track's data): its bytes arrive anyway, and only
    /// what the reader reads counts (see `read_total`).
    pub(crate) fn reader_seeks(&self, from: u64, to: u64, fetch: bool) {
        if fetch || to.saturating_add(SKIP_WITHIN_RUN) < from {
            self.run_start.store(to, Ordering::Relaxed);
        }
    }

    /// Stores the reader's position without waking a driver that waits for it (see
    /// [`Status::reader_moved`]).
    pub(crate) fn set_position(&self, position: u64) {
        self.position.store(position, Ordering::SeqCst);
    }

    /// Where the reader's current run of reading began (see [`Status::reader_seeks`]).
    pub(crate) fn run_start(&self) -> u64 {
        self.run_start.load(Ordering::Relaxed)
    }

    /// The reader read `n` bytes (then [`Status::reader_moved`] says where it is).
    pub(crate) fn reader_read(&self, n: usize) {
        self.read_total.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// All bytes the reader has read so far.
    pub(crate) fn read_total(&self) -> u64 {
        self.read_total.load(Ordering::Relaxed)
    }

    /// The driver wants to hear when the reader reaches `position`; `None` if it already
    /// has, else the receiver that gets a message when it does (maybe a stale one: look again).
    pub(crate) fn demand(&self, position: u64) -> Option<&Receiver<()>> {
        // Store then load, as the reader stores then loads: one of the two sees the other.
        self.demand_at.store(position, Ordering::SeqCst);
        if self.position.load(Ordering::SeqCst) >= position {
            self.demand_at.store(u64::MAX, Ordering::SeqCst);
            return None;
        }
        Some(&self.demand_rx)
    }

    /// The length of the file, once known.
    pub(crate) fn size(&self) -> Option<u64> {
        match self.size.load(Ordering::Acquire) {
            UNKNOWN_SIZE => None,
            size => Some(size),
        }
    }

    pub(crate) fn set_size(&self, size: u64) {
        self.size
            .store(size.min(UNKNOWN_SIZE - 1), Ordering::Release);
    }

    pub(crate) fn forget_size(&self) {
        self.size.store(UNKNOWN_SIZE, Ordering::Release);
    }

    /// Whether seeks may start Range requests: the options allow it and the server has not
    /// shown that it ignores them.
    pub(crate) fn ranges(&self) -> bool {
        self.ranges.load(Ordering::Acquire)
    }

    pub(crate) fn disable_ranges(&self) {
        self.ranges.store(false, Ordering::Release);
    }

    pub(crate) fn state(&self) -> DownloadState {
        self.state.get()
    }

    pub(crate) fn set_state(&self, state: DownloadState) {
        self.state.set(state);
    }

    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn bytes_fetched(&self) -> u64 {
        self.bytes_fetched.load(Ordering::Relaxed)
    }

    pub(crate) fn count_fetched(&self, bytes: usize) {
        self.bytes_fetched
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    pub(crate) fn count_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn is_committing(&self) -> bool {
        self.committing.load(Ordering::Acquire)
    }

    pub(crate) fn set_committing(&self, committing: bool) {
        self.committing.store(committing, Ordering::Release);
    }

    /// Whether this session committed the asset's body.
    pub(crate) fn is_committed(&self) -> bool {
        self.committed.load(Ordering::Acquire)
    }

    pub(crate) fn set_committed(&self) {
        self.committed.store(true, Ordering::Release);
    }
}
