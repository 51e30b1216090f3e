//! The driver thread's life: opened on the caller's thread, taken over by the thread,
//! then a loop over the session's fetches until the stop signal or the session is gone;
//! on the way out the cache is committed (if complete) or checkpointed.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{select, Receiver, TryRecvError};

use super::buffer_pool::BufferPool;
use super::cache_sink::CacheSink;
use super::cancel::Cancel;
use super::handoff::Outlet;
use super::http::Http;
use super::prefetching::Prefetching;
use super::pump::OpenBody;
use super::rate::{request_window, TokenBucket};
use super::report::Report;
use super::retry::Retries;
use super::status::Status;
use super::stop::StopWatch;
use super::{Command, DriverSpec, Fetch, Opened};
use crate::range_policy::ShortPartial;
use crate::range_set::RangeSet;
use crate::FileError;

/// What stops the driver's current work.
#[derive(Debug)]
pub(crate) enum Interrupt {
    /// The reader wants other bytes.
    Fetch(Fetch),
    /// Stopped, or the session is gone.
    Exit,
}

impl Interrupt {
    pub(crate) fn from_command(command: Option<Command>) -> Self {
        match command {
            Some(Command::Fetch(fetch)) => Interrupt::Fetch(fetch),
            None => Interrupt::Exit,
        }
    }
}

/// What the driver does after a fetch.
pub(crate) enum Flow {
    /// Wait for the next command.
    Idle,
    Next(Fetch),
    Exit,
}

impl From<Interrupt> for Flow {
    fn from(interrupt: Interrupt) -> Self {
        match interrupt {
            Interrupt::Fetch(fetch) => Flow::Next(fetch),
            Interrupt::Exit => Flow::Exit,
        }
    }
}

/// The ends of the session's channels the driver holds.
pub(crate) struct Parts {
    pub outlet: Outlet,
    pub commands: Receiver<Command>,
    pub stop: StopWatch,
    pub status: Arc<Status>,
    pub cancel: Arc<Cancel>,
}

pub(crate) struct Driver {
    pub(crate) http: Http,
    pub(crate) pool: BufferPool,
    pub(crate) sink: CacheSink,
    pub(crate) outlet: Outlet,
    pub(crate) commands: Receiver<Command>,
    pub(crate) stop: StopWatch,
    pub(crate) status: Arc<Status>,
    pub(crate) cancel: Arc<Cancel>,
    pub(crate) report: Report,
    pub(crate) retries: Retries,
    /// Every byte this session has received or found in the cache: complete means complete.
    pub(crate) coverage: RangeSet,
    pub(crate) content_type: Option<String>,
    pub(crate) look_ahead: u64,
    /// A metered link: without a cache the look-ahead caps what is asked for.
    pub(crate) look_ahead_capped: bool,
    pub(crate) rate: Option<TokenBucket>,
    /// A rate-limited session's largest request (see `rate::request_window`).
    pub(crate) rate_window: Option<u64>,
    /// The `206`s in a row that ended without a byte, since bytes last arrived.
    pub(crate) short_partials: Vec<ShortPartial>,
    /// The fetch (epoch) whose windows are paced, and the reader's read total when its
    /// first window was planned.
    pub(crate) read_mark: (u64, u64),
    /// Where a fetch gave up while the reader was playing: a read that asks again from
    /// there plays on (one open-ended request, as before the failure), not as after a seek.
    pub(crate) resume_playing_at: Option<u64>,
    /// Set for a prefetch (no reader).
    pub(crate) prefetch: Option<Prefetching>,
}

/// A driver whose first request has been answered, ready to move into its thread.
pub(crate) struct Opening {
    driver: Driver,
    first: Fetch,
    /// Where the first fetch stands, and its body if it is still open.
    offset: u64,
    body: Option<OpenBody>,
}

impl Opening {
    /// Sends the first request on the calling thread, until its headers and first bytes
    /// arrived, bounded by the open timeout (the driver thread, started meanwhile, takes
    /// the body over).
    pub(crate) fn open(mut spec: DriverSpec, parts: Parts) -> Result<Opening, FileError> {
        let mut driver = Driver::new(&mut spec, parts);
        let deadline = Instant::now() + spec.options.open_timeout;
        driver.retries.set_deadline(Some(deadline));
        let mut first = spec.first;
        driver.outlet.begin(first.epoch, first.start);
        let mut offset = first.start;
        let body = driver.open_first(&mut first, &mut offset)?;
        driver.retries.set_deadline(None);
        Ok(Opening {
            driver,
            first,
            offset,
            body,
        })
    }

    pub(crate) fn opened(&self) -> Opened {
        Opened {
            content_type: self.driver.content_type.clone(),
            first: self.first,
        }
    }

    /// The thread's loop.
    pub(crate) fn run(self) {
        let Opening {
            mut driver,
            first,
            offset,
            body,
        } = self;
        let mut flow = driver.fetch(first, offset, body);
        let mut epoch = first.epoch;
        loop {
            let fetch = match flow {
                // A prefetch has no reader to ask: it moves on to the next gap itself.
                Flow::Idle if driver.prefetch.is_some() => match driver.next_gap(epoch) {
                    Some(fetch) => fetch,
                    None => break,
                },
                Flow::Idle => match driver.wait_command() {
                    Some(fetch) => fetch,
                    None => break,
                },
                Flow::Next(fetch) => fetch,
                Flow::Exit => break,
            };
            epoch = fetch.epoch;
            driver.outlet.begin(fetch.epoch, fetch.start);
            driver.pool.fresh();
            flow = driver.fetch(fetch, fetch.start, None);
        }
        driver.abandon_staged();
        driver.sink.finish();
    }
}

impl Driver {
    fn new(spec: &mut DriverSpec, parts: Parts) -> Self {
        let look_ahead = spec.options.look_ahead;
        let sink = CacheSink::new(
            spec.partial.clone(),
            spec.cache_limit,
            spec.options.events.clone(),
            Arc::clone(&parts.status),
        );
        parts.outlet.keep_taken(sink.is_active());
        let mut coverage = RangeSet::default();
        for range in sink.covered() {
            coverage.insert(range);
        }
        Driver {
            http: Http::new(spec.url.clone(), spec.options.clone(), spec.pinned.clone()),
            pool: BufferPool::for_look_ahead(look_ahead),
            sink,
            outlet: parts.outlet,
            commands: parts.commands,
            stop: parts.stop,
            status: parts.status,
            cancel: parts.cancel,
            report: Report::new(spec.options.events.clone()),
            retries: Retries::new(&spec.options),
            coverage,
            content_type: None,
            look_ahead,
            look_ahead_capped: spec.options.look_ahead_capped,
            rate: spec.options.rate_limit.map(TokenBucket::new),
            rate_window: spec.options.rate_limit.map(request_window),
            short_partials: Vec::new(),
            read_mark: (u64::MAX, 0),
            resume_playing_at: None,
            prefetch: spec.prefetch.take().map(Prefetching::new),
        }
    }

    /// A command that arrived meanwhile, or the stop.
    pub(crate) fn poll_interrupt(&self) -> Option<Interrupt> {
        if self.stop.is_stopped() {
            return Some(Interrupt::Exit);
        }
        match self.commands.try_recv() {
            Ok(command) => Some(Interrupt::from_command(Some(command))),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Interrupt::Exit),
        }
    }

    /// Idle: waits for the next fetch; `None` once stopped or the session is gone.
    fn wait_command(&mut self) -> Option<Fetch> {
        // Nothing will follow an abandoned body now: close it.
        self.http.close_retired();
        match self.wait_interrupt() {
            Interrupt::Fetch(fetch) => Some(fetch),
            Interrupt::Exit => None,
        }
    }

    /// Blocks until a command or the stop.
    pub(crate) fn wait_interrupt(&self) -> Interrupt {
        select! {
            recv(self.commands) -> command => Interrupt::from_command(command.ok()),
            recv(self.stop.receiver()) -> _ => Interrupt::Exit,
        }
    }

    /// Bookkeeping after bytes went out: events, and the moment the file is complete.
    pub(crate) fn after_delivery(&mut self) {
        self.report.delivered(&self.status);
        if self.report.is_complete() {
            return;
        }
        if let Some(size) = self.status.size() {
            if self.coverage.covers_all(size) {
                self.report.complete(&self.status);
            }
        }
    }
}
