//! The downloader: one background thread per session that runs HTTP requests and hands the
//! body to the reader, chunk by chunk.
//!
//! The byte path: [`pump`] reads a response body into recycled chunk buffers and puts every
//! socket read into the [`handoff`] at once (a waiting reader may take it there, so no byte
//! that arrived waits behind the next blocking read); full chunks go through the bounded
//! channel, each tagged with its fetch's epoch and byte offset.
//!
//! The control path: the session sends [`Command`]s (one kind: fetch these bytes); the one
//! [`stop`] signal ends everything; [`cancel`] aborts the request in flight from another
//! thread. The thread's loop ([`run`]) opens each fetch through [`http`] (redirects, the
//! answer checked by `range_policy`), retries transient failures by [`retry`]'s rules, and
//! writes what it receives through [`cache_sink`] into the asset cache. [`status`] is what
//! every handle can read without waiting: length, state, counters.

mod buffer_pool;
mod cache_sink;
mod cancel;
mod fetch;
mod handoff;
mod http;
mod look_ahead;
mod prefetching;
mod pump;
mod rate;
mod report;
mod retry;
mod run;
mod status;
mod stop;
mod window;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use url::Url;

use crate::cache::PartialFile;
use crate::range_policy::Validators;
use crate::{FileError, FileSourceOptions};

pub(crate) use cancel::Cancel;
pub(crate) use handoff::{Closed, Inlet, Message, Want};
pub(crate) use http::Freshness;
pub(crate) use status::Status;
pub(crate) use stop::StopSignal;

/// The first fresh buffer of every fetch, and the chunk a look-ahead's channel slots are
/// counted in. A reader that outruns the network blocks about once per chunk, so the chunk
/// sets the context switches per MiB (a sequential 256 MiB read from nginx: 64 KiB chunks
/// ~12/MiB, 256 KiB 5.6-7.1/MiB, 1 MiB 2.4-3.8/MiB); a fetch's fresh buffers therefore grow
/// to [`LARGEST_CHUNK`] while it runs, and free ones are reused (`driver/buffer_pool.rs`).
/// It starts at 256 KiB because a fresh buffer is zeroed: 1 MiB fresh buffers from a
/// fetch's start made a far seek + 4 KiB 285-380 µs, against 165-292 µs.
pub(crate) const CHUNK_SIZE: usize = 256 * 1024;

/// What a fetch's chunks grow to (for a look-ahead of at least 4 MiB). Measured against
/// 256 KiB chunks (two interleaved runs each, nginx, 256 MiB): context switches 2.5-3.1
/// per MiB against 5.6-6.8, far seeks unchanged (0.95-1.05x a plain Range GET), the RSS
/// of a 1 GiB read 6.8-6.9 MiB against 5.6-5.7 and as flat in file size (1.00-1.01x a
/// 64 MiB read) once the pool stopped freeing the buffers readers took pieces of.
pub(crate) const LARGEST_CHUNK: usize = 1024 * 1024;

/// Recently read bytes a reader keeps for short backward seeks (decoders re-read headers
/// and probe windows constantly); the buffer pool is sized for them too.
pub(crate) const HISTORY_BYTES: usize = 256 * 1024;

/// A target this close past what the running fetch has received is about to arrive:
/// waiting for it beats a new request (decoders probe a small file's end right after
/// opening; without this a 100 KB FLAC sometimes cost 3 requests instead of 1). A reader
/// farther ahead than this reads elsewhere, and the fetch waits rather than fill the gap.
pub(crate) const NEAR_AHEAD: u64 = 128 * 1024;

/// Bytes in a fetch's first chunk for a look-ahead: a quarter of it (16 KiB to 256 KiB),
/// so several chunks fit in the channel.
pub(crate) fn chunk_size(look_ahead: u64) -> usize {
    (look_ahead / 4).clamp(16 * 1024, CHUNK_SIZE as u64) as usize
}

/// Bytes a fetch's chunks grow to: a quarter of the look-ahead (16 KiB to 1 MiB).
pub(crate) fn largest_chunk(look_ahead: u64) -> usize {
    (look_ahead / 4).clamp(16 * 1024, LARGEST_CHUNK as u64) as usize
}

/// Channel slots for a look-ahead: every chunk the look-ahead can span (one more for
/// where the reader stands inside one), so the channel never holds the driver back before
/// the look-ahead gate does (`driver/look_ahead.rs` caps the bytes). With one slot fewer
/// than the look-ahead has chunks, a first window of 300,001 bytes (chunks of 75,000)
/// stopped one byte short: its body was not read to its end, and a seek after it paid a
/// new TCP connection.
pub(crate) fn channel_capacity(look_ahead: u64) -> usize {
    // At most 4,097 slots (the look-ahead is at most 1 GiB), allocated up front.
    look_ahead.div_ceil(chunk_size(look_ahead) as u64) as usize + 1
}

/// Called by the driver when the reader has just woken it (room in the look-ahead, or in
/// the channel): gives the CPU back once. The scheduler can place the woken driver on the
/// reader's CPU and run it first: it then held the reader off until its refill was done,
/// 1.7-3.0 ms in 2-4 of 32 seeks into the look-ahead (measured: two involuntary switches
/// of the reader in each). With the yield the slowest seek alone took 11-28 µs, and the
/// slowest seek + 4 KiB read (bench 5b') 23-35 µs over five runs. With a CPU to itself
/// the driver gets it straight back.
pub(crate) fn let_reader_run() {
    thread::yield_now();
}

/// How long dropping a session waits for a driver stuck where cancellation cannot reach
/// (DNS, TCP connect); a commit in progress is always waited for.
const JOIN_DEADLINE: Duration = Duration::from_secs(2);

/// What the session asks of the driver.
#[derive(Debug)]
pub(crate) enum Command {
    /// Download these bytes; chunks of older fetches are no longer wanted.
    Fetch(Fetch),
}

/// Download bytes `start..end` (`end` exclusive; `None` = to the end of the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fetch {
    pub epoch: u64,
    pub start: u64,
    pub end: Option<u64>,
}

/// Everything a remote session starts from.
pub(crate) struct DriverSpec {
    pub url: Url,
    pub options: FileSourceOptions,
    pub first: Fetch,
    /// Validators of bytes already held (a partial cache file), checked on first contact.
    pub pinned: Option<Validators>,
    pub partial: Option<Arc<PartialFile>>,
    /// The cache's size limit (a body of unknown length is cached only while it fits).
    pub cache_limit: Option<u64>,
    /// A prefetch: no reader, the bytes only go to the cache.
    pub prefetch: Option<PrefetchSpec>,
}

/// How a prefetch runs.
pub(crate) struct PrefetchSpec {
    /// Set by a session that takes the asset over: finish the request in flight (so no
    /// byte is asked for twice), then end.
    pub hand_over: Arc<AtomicBool>,
    /// Download only the first bytes (`with_max_bytes`).
    pub max_bytes: Option<u64>,
}

/// What the first response told about the resource.
pub(crate) struct Opened {
    pub content_type: Option<String>,
    /// The first fetch as it finally runs: a stale cache entry restarts it from byte 0.
    pub first: Fetch,
}

/// Asks the server whether a complete cached body (of `known` version) is still current:
/// one conditional request within the open timeout, counted in `status`.
pub(crate) fn revalidate(
    url: &Url,
    options: &FileSourceOptions,
    known: &Validators,
    status: &Status,
) -> Freshness {
    let deadline = std::time::Instant::now() + options.open_timeout;
    http::Http::new(url.clone(), options.clone(), None).is_current(known, deadline, status)
}

/// The session's end of a running driver: commands in, the chunks out, cancellation, and
/// the thread, joined on drop.
pub(crate) struct DriverHandle {
    pub commands: Sender<Command>,
    pub inlet: Inlet,
    pub cancel: Arc<Cancel>,
    thread: Option<thread::JoinHandle<()>>,
    /// Disconnects when the thread ends (its sender lives in the thread).
    ended: Receiver<()>,
    status: Arc<Status>,
}

impl DriverHandle {
    /// Disconnects when the driver thread has ended.
    pub(crate) fn ended(&self) -> Receiver<()> {
        self.ended.clone()
    }

    /// Waits for the thread after the session stopped it: at most [`JOIN_DEADLINE`] for a
    /// thread stuck in the network, as long as it takes for a cache commit in progress.
    fn join(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        if thread.thread().id() == thread::current().id() {
            // Dropped by a callback on the driver thread itself: it ends on its own.
            return;
        }
        // Nothing is ever sent on `ended`: an error means the thread is gone.
        let ended = match self.ended.recv_timeout(JOIN_DEADLINE) {
            Err(RecvTimeoutError::Timeout) if self.status.is_committing() => {
                self.ended.recv().is_err()
            }
            Err(RecvTimeoutError::Disconnected) => true,
            _ => false,
        };
        if ended {
            let _ = thread.join();
        }
    }
}

impl Drop for DriverHandle {
    fn drop(&mut self) {
        self.join();
    }
}

/// Opens a remote session's first request on the calling thread, with the same retries,
/// redirects and checks as any other, bounded by the open timeout; then starts the driver
/// thread, which takes the open body over.
///
/// The thread starts after the first bytes, not before the request: on loopback with 2
/// cores, a thread started before it slowed the request itself (open to first byte 306–363
/// µs per open against 209–221 µs, 1000 opens from nginx), and against a remote server
/// its ~10 µs start is nothing beside a round trip. A failed open starts no thread.
///
/// # Errors
///
/// What the first request ended with.
pub(crate) fn start(
    spec: DriverSpec,
    status: Arc<Status>,
    stop: &StopSignal,
) -> Result<(DriverHandle, Opened), FileError> {
    let look_ahead = spec.options.look_ahead;
    let (mut outlet, inlet) =
        handoff::handoff(channel_capacity(look_ahead), chunk_size(look_ahead));
    if spec.prefetch.is_some() {
        outlet.discard();
    }
    let (command_tx, command_rx) = unbounded();
    let (ended_tx, ended_rx) = bounded::<()>(0);
    let cancel = Arc::new(Cancel::default());
    let parts = run::Parts {
        outlet,
        commands: command_rx,
        stop: stop.watch(),
        status: Arc::clone(&status),
        cancel: Arc::clone(&cancel),
    };
    let opening = run::Opening::open(spec, parts)?;
    let opened = opening.opened();
    let thread = thread::Builder::new()
        .name("kithara-file-driver".into())
        .spawn(move || {
            let _ended = ended_tx;
            opening.run();
        })
        .map_err(|e| FileError::Network(format!("cannot start the driver thread: {e}")))?;
    let handle = DriverHandle {
        commands: command_tx,
        inlet,
        cancel,
        thread: Some(thread),
        ended: ended_rx,
        status,
    };
    Ok((handle, opened))
}
