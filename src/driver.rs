//! The downloader: one background thread per session that runs HTTP requests and pushes
//! the body, chunk by chunk, into a bounded channel the reader drains.
//!
//! Every chunk carries the epoch of the fetch that produced it and its byte offset, so the
//! reader can drop chunks of a fetch it has abandoned and check that every chunk lands
//! where it belongs. The driver never blocks on the channel without also watching its
//! commands, so a seek or stop is seen while the look-ahead is full.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use crossbeam_channel::{select, Receiver, RecvTimeoutError, Sender, TryRecvError};
use ureq::Agent;
use url::Url;

use crate::agent::{build_agent, tls_failure_message};
use crate::cache::{CachedMeta, PartialFile};
use crate::events::{DownloadState, EventSink, FileEvent, StateCell};
use crate::options::{is_secret_header, FileSourceOptions};
use crate::range_policy::{
    follow_redirect, plan_response, range_header, validators_of, Plan, Refusal, Requested,
    ResponseHead, Validators,
};
use crate::{lock, FileError};

/// The largest chunk: one thread handoff per 256 KiB keeps handoff costs near zero at
/// loopback speed (64 KiB chunks cost ~12 context switches per MiB, 256 KiB ~5).
pub(crate) const CHUNK_SIZE: usize = 256 * 1024;

/// Bytes per chunk for a look-ahead: a quarter of it (16 KiB to 256 KiB), so several
/// chunks fit and the first bytes of a small look-ahead are not held back.
pub(crate) fn chunk_size(look_ahead: u64) -> usize {
    (look_ahead / 4).clamp(16 * 1024, CHUNK_SIZE as u64) as usize
}

/// Channel slots for a look-ahead: with the chunk the driver fills, never more than the
/// look-ahead in flight.
pub(crate) fn channel_capacity(look_ahead: u64) -> usize {
    ((look_ahead / chunk_size(look_ahead) as u64) as usize)
        .saturating_sub(1)
        .max(1)
}

/// What the session asks of the driver.
#[derive(Debug)]
pub(crate) enum Command {
    Fetch(Fetch),
    Stop,
}

/// Download bytes `start..end` (`end` exclusive; `None` = to the end of the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fetch {
    pub epoch: u64,
    pub start: u64,
    pub end: Option<u64>,
}

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

/// What the first response told about the resource.
#[derive(Debug, Clone)]
pub(crate) struct Opened {
    pub content_type: Option<String>,
    /// The first fetch as it finally runs: a stale cache entry restarts it from byte 0.
    pub first: Fetch,
}

/// How often progress events go out at most.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// How often the partial cache file's index is made durable while downloading. A
/// checkpoint fsyncs the data written so far, which at network speed is expensive; a
/// crash only loses coverage since the last one, and stop/drop always checkpoint.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);

/// The first bytes of every response go out read by read (whatever each socket read
/// returns): a decoder's first read after an open or a seek must not wait for a full chunk.
const EAGER_BYTES: u64 = 64 * 1024;

/// How long a partly filled chunk may wait for more bytes while the reader is starving:
/// full chunks mean one thread handoff per 64 KiB, this bounds the latency on slow links.
const FILL_PATIENCE: Duration = Duration::from_millis(2);

const UNKNOWN_SIZE: u64 = u64::MAX;

/// State shared by the driver thread and every handle of its session.
pub(crate) struct Shared {
    size: AtomicU64,
    ranges: AtomicBool,
    stopped: AtomicBool,
    /// The fetch the driver works on and how far it has sent bytes into the channel.
    front: Mutex<Front>,
    in_flight: Mutex<InFlight>,
    waker: Mutex<Option<Waker>>,
    /// Whether `waker` holds one: the driver checks this per chunk instead of locking.
    has_waker: AtomicBool,
    pub(crate) state: StateCell,
    /// A reader is blocked waiting for bytes (the UI calls that buffering).
    pub(crate) reader_waiting: AtomicBool,
    pub(crate) requests: AtomicU64,
    pub(crate) bytes_fetched: AtomicU64,
    pub(crate) retries: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Front {
    pub epoch: u64,
    pub sent_to: u64,
    /// When the fetch last started or sent bytes: a long silence means a stall.
    pub moved_at: Option<Instant>,
}

/// The agent of the request in flight, so another thread can cancel it.
#[derive(Default)]
struct InFlight {
    epoch: u64,
    agent: Option<Agent>,
    cancel_below: u64,
}

impl Shared {
    pub(crate) fn new(size: Option<u64>, ranges: bool) -> Self {
        Shared {
            size: AtomicU64::new(size.unwrap_or(UNKNOWN_SIZE)),
            ranges: AtomicBool::new(ranges),
            stopped: AtomicBool::new(false),
            front: Mutex::new(Front::default()),
            in_flight: Mutex::new(InFlight::default()),
            waker: Mutex::new(None),
            has_waker: AtomicBool::new(false),
            state: StateCell::new(DownloadState::Connecting),
            reader_waiting: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            bytes_fetched: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        }
    }

    pub(crate) fn size(&self) -> Option<u64> {
        match self.size.load(Ordering::Acquire) {
            UNKNOWN_SIZE => None,
            size => Some(size),
        }
    }

    pub(crate) fn set_size(&self, size: u64) {
        self.size.store(size, Ordering::Release);
    }

    fn forget_size(&self) {
        self.size.store(UNKNOWN_SIZE, Ordering::Release);
    }

    /// Whether the server answers Range requests (and the options allow them).
    pub(crate) fn ranges(&self) -> bool {
        self.ranges.load(Ordering::Acquire)
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    pub(crate) fn front(&self) -> Front {
        *lock(&self.front)
    }

    /// Marks the session stopped and cancels whatever request is in flight.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.cancel_below(u64::MAX);
        self.wake();
    }

    /// Aborts the request in flight if it serves a fetch older than `epoch`: the reader
    /// has moved on and must not wait for a stalled body to time out.
    pub(crate) fn cancel_below(&self, epoch: u64) {
        let agent = {
            let mut in_flight = lock(&self.in_flight);
            in_flight.cancel_below = in_flight.cancel_below.max(epoch);
            if in_flight.epoch < epoch {
                in_flight.agent.take()
            } else {
                None
            }
        };
        if let Some(agent) = agent {
            agent.shutdown();
        }
    }

    pub(crate) fn register_waker(&self, waker: &Waker) {
        let mut slot = lock(&self.waker);
        match slot.as_ref() {
            Some(current) if current.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
        self.has_waker.store(true, Ordering::Release);
    }

    pub(crate) fn wake(&self) {
        if !self.has_waker.load(Ordering::Acquire) {
            return;
        }
        let waker = lock(&self.waker).take();
        self.has_waker.store(false, Ordering::Release);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Everything the driver thread needs to start.
pub(crate) struct DriverSpec {
    pub url: Url,
    pub options: FileSourceOptions,
    pub first: Fetch,
    /// Validators of bytes already held (a partial cache file), checked on first contact.
    pub pinned: Option<Validators>,
    pub partial: Option<Arc<PartialFile>>,
}

/// Channels between the driver and its session.
pub(crate) struct DriverChannels {
    pub commands: Receiver<Command>,
    pub data: Sender<Message>,
    pub opened: Sender<Result<Opened, FileError>>,
    /// Dropped when the thread ends, so the session can wait for it with a deadline.
    pub done: Sender<()>,
}

/// Starts the driver thread.
/// A driver whose first request has been answered, ready to move into its thread.
pub(crate) struct Opening {
    driver: Driver,
    flow: Flow,
    done: Sender<()>,
}

/// Sends the first request on the calling thread, with the same retries, redirects and
/// checks as any other, and stops once its body is open (or it failed: the `opened`
/// channel then holds the error). The time to the first byte then carries no thread
/// start and no handoff of the headers.
pub(crate) fn open(spec: DriverSpec, shared: Arc<Shared>, channels: DriverChannels) -> Opening {
    let DriverChannels {
        commands,
        data,
        opened,
        done,
    } = channels;
    let first = spec.first;
    let mut driver = Driver::new(spec, shared, commands, data, opened);
    driver.open_only = true;
    let flow = driver.fetch(first, None);
    driver.open_only = false;
    Opening { driver, flow, done }
}

/// Starts the driver thread before the first request, so its start overlaps the request:
/// it waits for the [`Opening`] and pumps the open body the moment it arrives, then
/// serves the session's commands. Dropping the sender instead ends it at once.
pub(crate) fn spawn(handoff: Receiver<Opening>) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("kithara-file-driver".into())
        .spawn(move || {
            if let Ok(Opening {
                mut driver,
                flow,
                done,
            }) = handoff.recv()
            {
                driver.run(flow);
                drop(done);
            }
        })
}

/// What the driver does next.
enum Flow {
    /// Wait for the next command.
    Idle,
    /// Handle this command now.
    Next(Command),
    /// The session is gone.
    Exit,
}

/// Why a request attempt failed.
enum Failure {
    Transient {
        cause: String,
        status: Option<u16>,
        retry_after: Option<Duration>,
        /// The response went silent past the read timeout.
        stalled: bool,
    },
    Fatal(FileError),
    /// The request was cancelled by the session; a command is waiting.
    Cancelled,
    /// The cached partial data belongs to an older version: start over from byte 0.
    Restart,
}

/// How pumping a body ended.
enum Pumped {
    /// The body ended where it said it would.
    Complete,
    Interrupted(Flow),
    Failed(Failure),
    /// Opening on the caller's thread: the first chunk went out; the driver thread
    /// continues with this body.
    Paused(Box<OpenBody>),
}

/// An open response: its body and where its bytes go.
struct OpenBody {
    body: ureq::BodyReader<'static>,
    start: u64,
    skip: u64,
    end: Option<u64>,
}

struct Driver {
    url: Url,
    /// Credentials go only to the origin they were given for, whatever redirects did.
    origin: url::Origin,
    /// A body abandoned for a new fetch: closed after the new request went out, so the
    /// close (with megabytes unread) is off the seek's critical path.
    retired: Option<ureq::BodyReader<'static>>,
    /// Chunk buffers recently handed out, reused once the reader dropped them: no
    /// zeroing of a fresh 64 KiB per chunk.
    recycled: VecDeque<Bytes>,
    recycle_limit: usize,
    chunk_size: usize,
    /// While opening on the caller's thread: stop once a body is open and keep it here.
    open_only: bool,
    first_open: Option<(Fetch, u64, OpenBody)>,
    options: FileSourceOptions,
    agent: Agent,
    pinned: Option<Validators>,
    /// The pinned validators came from a partial cache file and await the server's word.
    pinned_from_cache: bool,
    partial: Option<Arc<PartialFile>>,
    last_checkpoint: Instant,
    shared: Arc<Shared>,
    commands: Receiver<Command>,
    data: Sender<Message>,
    opened: Option<Sender<Result<Opened, FileError>>>,
    jitter: u64,
    events: Option<EventSink>,
    last_progress: Instant,
    stalled: bool,
}

impl Driver {
    fn new(
        spec: DriverSpec,
        shared: Arc<Shared>,
        commands: Receiver<Command>,
        data: Sender<Message>,
        opened: Sender<Result<Opened, FileError>>,
    ) -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Driver {
            origin: spec.url.origin(),
            retired: None,
            recycled: VecDeque::new(),
            recycle_limit: channel_capacity(spec.options.look_ahead) + 8,
            chunk_size: chunk_size(spec.options.look_ahead),
            open_only: false,
            first_open: None,
            agent: build_agent(&spec.options),
            events: spec.options.events.clone(),
            last_progress: Instant::now(),
            stalled: false,
            url: spec.url,
            options: spec.options,
            pinned_from_cache: spec.pinned.is_some(),
            pinned: spec.pinned,
            partial: spec.partial,
            last_checkpoint: Instant::now(),
            shared,
            commands,
            data,
            opened: Some(opened),
            jitter: seed | 1,
        }
    }

    fn run(&mut self, mut flow: Flow) {
        if let Some((fetch, offset, open)) = self.first_open.take() {
            flow = self.fetch(fetch, Some((offset, open)));
        }
        let mut next = match flow {
            Flow::Idle => None,
            Flow::Next(command) => Some(command),
            Flow::Exit => Some(Command::Stop),
        };
        loop {
            let command = match next.take() {
                Some(command) => command,
                None => {
                    // Idle: nothing will follow an abandoned body now, close it.
                    self.retired = None;
                    match self.commands.recv() {
                        Ok(command) => command,
                        Err(_) => break,
                    }
                }
            };
            match command {
                Command::Stop => break,
                Command::Fetch(fetch) => match self.fetch(fetch, None) {
                    Flow::Idle => {}
                    Flow::Next(command) => next = Some(command),
                    Flow::Exit => break,
                },
            }
        }
        self.checkpoint_cache();
        if let Some(opened) = self.opened.take() {
            let _ = opened.send(Err(FileError::Stopped));
        }
    }

    /// Downloads one fetch to its end, retrying transient failures. `resume` continues
    /// a fetch whose body was opened on the caller's thread.
    fn fetch(&mut self, mut fetch: Fetch, resume: Option<(u64, OpenBody)>) -> Flow {
        let (mut offset, mut pending) = match resume {
            Some((offset, open)) => (offset, Some(open)),
            None => {
                let mut front = lock(&self.shared.front);
                front.epoch = fetch.epoch;
                front.sent_to = fetch.start;
                front.moved_at = Some(Instant::now());
                (fetch.start, None)
            }
        };
        let mut failures: u32 = 0;
        loop {
            if let Some(flow) = self.poll_command() {
                return flow;
            }
            let wanted_end = fetch.end.or(self.shared.size());
            if wanted_end.is_some_and(|end| offset >= end) {
                return self.finish(fetch, offset);
            }
            let opened = match pending.take() {
                Some(open) => Ok(Some(open)),
                None => self.open_body(fetch, offset),
            };
            let failure = match opened {
                Ok(None) => return self.finish(fetch, offset),
                Ok(Some(open)) => {
                    let before = offset;
                    let pumped = self.pump(fetch, open, &mut offset);
                    if offset > before {
                        failures = 0;
                    }
                    let at_end = self.shared.size().is_some_and(|size| offset >= size)
                        || fetch.end.is_some_and(|end| offset >= end);
                    match pumped {
                        // A server may send less than asked; ask again for the rest.
                        Pumped::Complete if offset > before || at_end => continue,
                        Pumped::Complete => Failure::Transient {
                            cause: format!("a response ended at byte {offset} without progress"),
                            status: None,
                            retry_after: None,
                            stalled: false,
                        },
                        Pumped::Interrupted(flow) => return flow,
                        Pumped::Paused(open) => {
                            self.first_open = Some((fetch, offset, *open));
                            return Flow::Idle;
                        }
                        Pumped::Failed(failure) => failure,
                    }
                }
                Err(failure) => failure,
            };
            let (cause, status, retry_after, stalled) = match failure {
                // The session sends its command before it cancels: wait for it.
                Failure::Cancelled => match self.commands.recv() {
                    Ok(command) => return Flow::Next(command),
                    Err(_) => return Flow::Exit,
                },
                Failure::Restart => {
                    self.shared.forget_size();
                    fetch.start = 0;
                    fetch.end = None;
                    offset = 0;
                    lock(&self.shared.front).sent_to = 0;
                    continue;
                }
                Failure::Fatal(error) => return self.fail(fetch.epoch, error),
                Failure::Transient {
                    cause,
                    status,
                    retry_after,
                    stalled,
                } => (cause, status, retry_after, stalled),
            };
            failures += 1;
            if stalled && !self.stalled {
                self.stalled = true;
                self.emit(FileEvent::Stalled);
            }
            if failures > self.options.max_retries {
                let error = FileError::Network(format!(
                    "{cause} (gave up after {} retries)",
                    self.options.max_retries
                ));
                return self.fail(fetch.epoch, error);
            }
            let delay = match retry_after {
                Some(wait) if wait > self.options.retry_max_delay => {
                    let error = match status {
                        Some(status) => FileError::HttpStatus {
                            status,
                            url: redact(&self.url),
                        },
                        None => FileError::Network(cause),
                    };
                    return self.fail(fetch.epoch, error);
                }
                Some(wait) => wait.max(self.backoff(failures)),
                None => self.backoff(failures),
            };
            self.shared.retries.fetch_add(1, Ordering::Relaxed);
            self.shared.state.set(DownloadState::Retrying);
            log::debug!(
                "kithara-file: retry {failures} of {} in {delay:?}: {cause}",
                self.options.max_retries
            );
            self.emit(FileEvent::Retrying {
                attempt: failures,
                delay,
                cause,
            });
            match self.commands.recv_timeout(delay) {
                Ok(command) => return Flow::Next(command),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Flow::Exit,
            }
        }
    }

    /// Exponential backoff with jitter: a random delay in the upper half of
    /// `base * 2^(attempt-1)`, capped at the max.
    fn backoff(&mut self, attempt: u32) -> Duration {
        let base = self.options.retry_base_delay;
        let max = self.options.retry_max_delay;
        let full = base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(max);
        // xorshift64: jitter only needs to decorrelate clients, not be unpredictable.
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let fraction = 0.5 + (self.jitter % 1000) as f64 / 2000.0;
        full.mul_f64(fraction)
    }

    fn poll_command(&self) -> Option<Flow> {
        match self.commands.try_recv() {
            Ok(command) => Some(Flow::Next(command)),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Flow::Exit),
        }
    }

    /// Sends a message, watching commands while the channel is full.
    fn send(&self, message: Message) -> Result<(), Flow> {
        select! {
            send(self.data, message) -> sent => {
                if sent.is_err() {
                    return Err(Flow::Exit);
                }
                self.shared.wake();
                Ok(())
            },
            recv(self.commands) -> command => Err(match command {
                Ok(command) => Flow::Next(command),
                Err(_) => Flow::Exit,
            }),
        }
    }

    fn finish(&mut self, fetch: Fetch, offset: u64) -> Flow {
        if let Some(opened) = self.opened.take() {
            // Nothing needed fetching (the cache holds it all): the session still opens.
            let _ = opened.send(Ok(Opened {
                content_type: None,
                first: fetch,
            }));
        }
        if self.shared.size().is_none() {
            // Only a body of unknown length that ended cleanly gets here.
            self.shared.set_size(offset);
        }
        if self.shared.size().is_some_and(|size| offset >= size) {
            self.shared.state.set(DownloadState::Complete);
            self.emit(FileEvent::Complete);
        } else {
            self.shared.state.set(DownloadState::Streaming);
        }
        let sent = self.send(Message::End { epoch: fetch.epoch });
        // After the End: the reader is not kept waiting for the fsyncs of a commit.
        self.commit_cache_if_complete();
        match sent {
            Ok(()) => Flow::Idle,
            Err(flow) => flow,
        }
    }

    fn fail(&mut self, epoch: u64, error: FileError) -> Flow {
        log::debug!("kithara-file: giving up: {error}");
        self.shared.state.set(DownloadState::Failed);
        self.emit(FileEvent::Error(error.clone()));
        if let Some(opened) = self.opened.take() {
            let _ = opened.send(Err(error));
            return Flow::Exit;
        }
        match self.send(Message::Failed { epoch, error }) {
            Ok(()) => Flow::Idle,
            Err(flow) => flow,
        }
    }

    /// Registers the agent as in flight for `epoch`; `false` if the session already
    /// cancelled that epoch.
    fn begin_request(&self, epoch: u64) -> bool {
        let mut in_flight = lock(&self.shared.in_flight);
        if epoch < in_flight.cancel_below {
            return false;
        }
        in_flight.epoch = epoch;
        in_flight.agent = Some(self.agent.clone());
        true
    }

    /// Ends the in-flight registration; a cancelled (shut down) agent is replaced.
    /// Returns whether the session cancelled the request (its errors are no failures).
    fn end_request(&mut self) -> bool {
        let cancelled = lock(&self.shared.in_flight).agent.take().is_none();
        if cancelled {
            self.agent = build_agent(&self.options);
        }
        cancelled
    }

    /// Sends the request for `offset..` (following redirects) and checks the answer.
    /// `Ok(None)`: the file ends at or before `offset`.
    fn open_body(&mut self, fetch: Fetch, offset: u64) -> Result<Option<OpenBody>, Failure> {
        if !self.begin_request(fetch.epoch) {
            return Err(Failure::Cancelled);
        }
        let result = self.request(fetch, offset);
        if !matches!(result, Ok(Some(_))) && self.end_request() && result.is_err() {
            return Err(Failure::Cancelled);
        }
        result
    }

    fn request(&mut self, fetch: Fetch, offset: u64) -> Result<Option<OpenBody>, Failure> {
        let ranged = self.options.range_seek && self.shared.ranges();
        let requested = Requested {
            start: offset,
            end: fetch.end.filter(|_| ranged),
            ranged,
        };
        let mut url = self.url.clone();
        let mut hops = 0;
        let response = loop {
            let response = self.call(&url, requested);
            // The new request is out: now the abandoned body may be closed.
            self.retired = None;
            let response = response?;
            let status = response.status().as_u16();
            let location = header(&response, "location");
            match (status, location) {
                (301 | 302 | 303 | 307 | 308, Some(location)) => {
                    hops += 1;
                    if hops > self.options.max_redirects {
                        return Err(Failure::Fatal(FileError::Protocol(format!(
                            "more than {} redirects",
                            self.options.max_redirects
                        ))));
                    }
                    url = follow_redirect(&url, &location).map_err(Failure::Fatal)?;
                }
                _ => break response,
            }
        };
        let head = response_head(&response);
        let plan = match plan_response(
            requested,
            &head,
            self.pinned.as_ref(),
            redact(&url).as_str(),
        ) {
            Ok(plan) => plan,
            Err(Refusal::Transient {
                status,
                retry_after,
            }) => {
                return Err(Failure::Transient {
                    cause: format!("HTTP {status} from {}", redact(&url)),
                    status: Some(status),
                    retry_after,
                    stalled: false,
                })
            }
            Err(Refusal::Fatal(FileError::ResourceChanged(_))) if self.pinned_from_cache => {
                // Nothing has been handed out yet: drop the stale bytes and start afresh.
                self.pinned = None;
                self.pinned_from_cache = false;
                if let Some(partial) = self.partial.take() {
                    // On failure the reader's handle may still claim old coverage: only
                    // a clean discard lets this session keep caching.
                    if partial.discard().is_ok() {
                        self.partial = Some(partial);
                    }
                }
                return Err(Failure::Restart);
            }
            Err(Refusal::Fatal(error)) => return Err(Failure::Fatal(error)),
        };
        // Later requests go straight to where the redirects led.
        self.url = url;
        match plan {
            Plan::EndOfFile { size } => {
                self.pin(&head, Some(size), true);
                self.shared.set_size(size);
                self.announce_open(&head, fetch);
                Ok(None)
            }
            Plan::Body {
                start,
                skip,
                end,
                total,
                ranged,
            } => {
                self.pin(&head, total, ranged);
                if let Some(total) = total {
                    self.shared.set_size(total);
                }
                if !ranged && requested.ranged {
                    // The server ignores Range: from now on read whole bodies and skip.
                    self.shared.ranges.store(false, Ordering::Release);
                }
                self.announce_open(&head, fetch);
                Ok(Some(OpenBody {
                    body: response.into_body().into_reader(),
                    start,
                    skip,
                    end,
                }))
            }
        }
    }

    fn call(
        &self,
        url: &Url,
        requested: Requested,
    ) -> Result<ureq::http::Response<ureq::Body>, Failure> {
        self.shared.requests.fetch_add(1, Ordering::Relaxed);
        self.shared.state.set(DownloadState::Connecting);
        log::debug!(
            "kithara-file: GET {} ({})",
            redact(url),
            if requested.ranged {
                range_header(requested.start, requested.end)
            } else {
                "whole body".to_string()
            }
        );
        let mut request = self
            .agent
            .get(url.as_str())
            .header("Accept-Encoding", "identity");
        if requested.ranged {
            request = request.header("Range", range_header(requested.start, requested.end));
            if requested.start > 0 || requested.end.is_some() {
                if let Some(validator) = self.pinned.as_ref().and_then(Validators::if_range) {
                    request = request.header("If-Range", validator);
                }
            }
        }
        let same_origin = url.origin() == self.origin;
        for (name, value) in &self.options.headers {
            // Credentials stay with the origin they were given for.
            if same_origin || !is_secret_header(name) {
                request = request.header(name.as_str(), value.as_str());
            }
        }
        request.call().map_err(classify_error)
    }

    /// Pins the first response's validators; later ones were checked by the plan.
    fn pin(&mut self, head: &ResponseHead, total: Option<u64>, ranged: bool) {
        if self.pinned_from_cache {
            // The server confirmed the cached partial data: keep it.
            self.pinned_from_cache = false;
            if !ranged {
                self.shared.ranges.store(false, Ordering::Release);
            }
            return;
        }
        if self.pinned.is_none() {
            let pinned = validators_of(head, total);
            if !ranged {
                self.shared.ranges.store(false, Ordering::Release);
            }
            // A captive portal answers 200 with a login page: stream it (the caller
            // decides), but never keep an HTML page as the asset.
            let html = head
                .content_type
                .as_deref()
                .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"));
            if html {
                self.partial = None;
            }
            self.start_cache(&pinned);
            self.pinned = Some(pinned);
        }
    }

    fn emit(&self, event: FileEvent) {
        if let Some(events) = &self.events {
            events.emit(event);
        }
    }

    fn announce_open(&mut self, head: &ResponseHead, first: Fetch) {
        self.shared.state.set(DownloadState::Streaming);
        if self.opened.is_some() {
            self.emit(FileEvent::Opened {
                length: self.shared.size(),
                content_type: head.content_type.clone(),
                from_cache: false,
            });
        }
        if let Some(opened) = self.opened.take() {
            let _ = opened.send(Ok(Opened {
                content_type: head.content_type.clone(),
                first,
            }));
        }
    }

    /// Moves a body into the channel until it ends, fails, or a command interrupts.
    fn pump(&mut self, fetch: Fetch, mut open: OpenBody, offset: &mut u64) -> Pumped {
        let mut position = open.start;
        let eager_until = open.start + open.skip + EAGER_BYTES;
        let mut paused = false;
        let result = loop {
            if let Some(flow) = self.poll_command() {
                break Pumped::Interrupted(flow);
            }
            let mut buffer = self.take_buffer();
            let eager = position + open.skip < eager_until;
            let (filled, ended, error) = self.fill(&mut open.body, &mut buffer, eager);
            if filled > 0 {
                self.shared
                    .bytes_fetched
                    .fetch_add(filled as u64, Ordering::Relaxed);
                let full = buffer.freeze();
                let skip = open.skip.min(filled as u64) as usize;
                open.skip -= skip as u64;
                position += skip as u64;
                // Never past the end the response promised (a lying Content-Length).
                let usable = open.end.map_or(filled - skip, |end| {
                    (end.saturating_sub(position) as usize).min(filled - skip)
                });
                // A small chunk gets a buffer of its own size, so a slow link cannot
                // pin a whole chunk allocation per few bytes in the reader's history.
                let bytes = if usable < self.chunk_size / 4 {
                    Bytes::copy_from_slice(&full[skip..skip + usable])
                } else {
                    full.slice(skip..skip + usable)
                };
                self.recycle(full);
                if !bytes.is_empty() {
                    let len = bytes.len() as u64;
                    self.write_cache(position, &bytes);
                    if let Err(flow) = self.send(Message::Data {
                        epoch: fetch.epoch,
                        offset: position,
                        bytes,
                    }) {
                        break Pumped::Interrupted(flow);
                    }
                    position += len;
                    *offset = position;
                    {
                        let mut front = lock(&self.shared.front);
                        front.sent_to = position;
                        front.moved_at = Some(Instant::now());
                    }
                    self.after_progress();
                    if self.open_only {
                        paused = true;
                        break Pumped::Complete;
                    }
                }
                if usable < filled - skip {
                    // The server sent more than its Content-Range: drop the rest.
                    break Pumped::Complete;
                }
            }
            if let Some(error) = error {
                break Pumped::Failed(classify_error(ureq::Error::from(error)));
            }
            if ended {
                break match open.end {
                    Some(end) if position < end => Pumped::Failed(Failure::Transient {
                        cause: format!("the body ended at byte {position} of {end}"),
                        status: None,
                        retry_after: None,
                        stalled: false,
                    }),
                    _ => Pumped::Complete,
                };
            }
            if fetch.end.is_some_and(|end| position >= end) {
                break Pumped::Complete;
            }
        };
        if paused {
            // Still in flight: the driver thread goes on with it.
            open.start = position;
            return Pumped::Paused(Box::new(open));
        }
        let cancelled = self.end_request();
        let result = match result {
            Pumped::Failed(_) if cancelled => Pumped::Failed(Failure::Cancelled),
            Pumped::Interrupted(flow) => {
                // Closing a body with megabytes unread takes a while: after the next request.
                self.retired = Some(open.body);
                Pumped::Interrupted(flow)
            }
            other => other,
        };
        if let Pumped::Complete = result {
            if open.end.is_none() && self.shared.size().is_none() {
                self.shared.set_size(position);
            }
        }
        result
    }

    /// A chunk buffer: a recycled one the reader is done with, else a fresh one.
    fn take_buffer(&mut self) -> BytesMut {
        if let Some(oldest) = self.recycled.pop_front() {
            match oldest.try_into_mut() {
                Ok(buffer) if buffer.len() == self.chunk_size => return buffer,
                Ok(_) => {}
                Err(still_shared) => self.recycled.push_front(still_shared),
            }
        }
        BytesMut::zeroed(self.chunk_size)
    }

    fn recycle(&mut self, full: Bytes) {
        if full.len() != self.chunk_size {
            return;
        }
        if self.recycled.len() >= self.recycle_limit {
            self.recycled.pop_front();
        }
        self.recycled.push_back(full);
    }

    /// Bookkeeping after bytes went out: stall recovery and rate-limited progress.
    fn after_progress(&mut self) {
        if self.stalled {
            self.stalled = false;
            self.emit(FileEvent::Resumed);
        }
        if self.events.is_some() && self.last_progress.elapsed() >= PROGRESS_INTERVAL {
            self.last_progress = Instant::now();
            self.emit(FileEvent::Progress {
                downloaded: self.shared.bytes_fetched.load(Ordering::Relaxed),
                total: self.shared.size(),
            });
        }
    }

    /// Reads into `buffer` until it is full or the body ends. While `eager` (the first
    /// bytes of a response) every read goes out at once (time to first byte, seek
    /// latency); later chunks early only when the reader is starving and the chunk has
    /// waited `FILL_PATIENCE`.
    fn fill(
        &self,
        body: &mut ureq::BodyReader<'static>,
        buffer: &mut [u8],
        eager: bool,
    ) -> (usize, bool, Option<std::io::Error>) {
        let mut filled = 0;
        let started = Instant::now();
        while filled < buffer.len() {
            match body.read(&mut buffer[filled..]) {
                Ok(0) => return (filled, true, None),
                Ok(n) => {
                    filled += n;
                    if eager || (self.data.is_empty() && started.elapsed() >= FILL_PATIENCE) {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return (filled, false, Some(e)),
            }
        }
        (filled, false, None)
    }

    // --- cache-through: optional, and any failure only turns it off for this session ---

    /// Starts a fresh partial file for the version the first response pinned.
    fn start_cache(&mut self, pinned: &Validators) {
        let Some(partial) = &self.partial else {
            return;
        };
        // A body of unknown length could never be checked complete, and one without a
        // validator could not be told from a newer version in the next run.
        let validated = pinned.if_range().is_some();
        let started = pinned.size.filter(|_| validated).map(|len| {
            partial.reset(CachedMeta {
                len,
                etag: pinned.etag.clone(),
                last_modified: pinned.last_modified.clone(),
            })
        });
        if !matches!(started, Some(Ok(()))) {
            self.partial = None;
        }
    }

    fn write_cache(&mut self, offset: u64, bytes: &[u8]) {
        let Some(partial) = &self.partial else {
            return;
        };
        if partial.write_at(offset, bytes).is_err() {
            self.partial = None;
            return;
        }
        if self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL {
            self.last_checkpoint = Instant::now();
            if partial.checkpoint().is_err() {
                self.partial = None;
            }
        }
    }

    fn commit_cache_if_complete(&mut self) {
        if let Some(partial) = &self.partial {
            if partial.is_complete() && !partial.is_committed() && partial.commit().is_err() {
                self.partial = None;
            }
        }
    }

    fn checkpoint_cache(&mut self) {
        if let Some(partial) = &self.partial {
            if !partial.is_committed() {
                let _ = partial.checkpoint();
            }
        }
    }
}

fn header(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.trim().to_string())
}

fn response_head(response: &ureq::http::Response<ureq::Body>) -> ResponseHead {
    ResponseHead {
        status: response.status().as_u16(),
        content_range: header(response, "content-range"),
        content_length: header(response, "content-length").and_then(|v| v.parse().ok()),
        content_encoding: header(response, "content-encoding"),
        content_type: header(response, "content-type"),
        etag: header(response, "etag"),
        last_modified: header(response, "last-modified"),
        retry_after: header(response, "retry-after"),
    }
}

/// Sorts a ureq failure into retry or give up.
fn classify_error(error: ureq::Error) -> Failure {
    let transient = |cause: String, stalled: bool| Failure::Transient {
        cause,
        status: None,
        retry_after: None,
        stalled,
    };
    if let Some(message) = tls_failure_message(&error) {
        return Failure::Fatal(FileError::Network(message));
    }
    match error {
        ureq::Error::Timeout(_) | ureq::Error::BodyStalled => {
            transient(format!("stalled: {error}"), true)
        }
        // rustls reports a failed handshake or a corrupt record as InvalidData: never retried,
        // never downgraded.
        ureq::Error::Io(ref io) if io.kind() == std::io::ErrorKind::InvalidData => {
            Failure::Fatal(FileError::Network(format!("TLS failure: {error}")))
        }
        ureq::Error::Io(_) | ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => {
            transient(error.to_string(), false)
        }
        ureq::Error::BadUri(_) => Failure::Fatal(FileError::InvalidUrl(error.to_string())),
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => {
            Failure::Fatal(FileError::Network(format!("TLS failure: {error}")))
        }
        ureq::Error::Protocol(_) | ureq::Error::TooManyRedirects | ureq::Error::RedirectFailed => {
            Failure::Fatal(FileError::Protocol(error.to_string()))
        }
        other => Failure::Fatal(FileError::Network(other.to_string())),
    }
}

/// The URL without credentials, for errors and logs.
pub(crate) fn redact(url: &Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.to_string();
    }
    let mut clean = url.clone();
    let _ = clean.set_username("");
    let _ = clean.set_password(None);
    clean.to_string()
}
