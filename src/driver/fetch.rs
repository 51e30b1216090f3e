//! One fetch, from request to end: open the body (through `http`), apply what the answer
//! says (validators pinned, length, whether ranges work, where the cache starts), pump it,
//! and recover from failures by the rules of `retry`.

use std::time::Duration;

use crossbeam_channel::{after, never, select};

use super::http::Answer;
use super::pump::{OpenBody, Pumped};
use super::retry::{Failure, Transient};
use super::run::{Driver, Flow, Interrupt};
use super::window::{capped_request, next_request, Next, PLAYING_AFTER};
use super::{Fetch, NEAR_AHEAD};
use crate::error::at_url;
use crate::events::{DownloadState, FileEvent};
use crate::range_policy::{
    looks_like_portal, refuses_ranges, short_partials_verdict, trusted_content_type, validators_of,
    Plan, Requested, ResponseHead, ShortPartial,
};
use crate::range_set::RangeSet;
use crate::FileError;

/// How often a fetch whose reader reads beyond its reach looks whether it came back.
const BEYOND_REACH_LOOK: Duration = Duration::from_millis(20);

impl Driver {
    /// The first fetch, on the caller's thread: until its response's headers (and, when
    /// that stays within the open timeout, its first bytes) arrived. `None`: nothing more
    /// to read from this response.
    pub(crate) fn open_first(
        &mut self,
        fetch: &mut Fetch,
        offset: &mut u64,
    ) -> Result<Option<OpenBody>, FileError> {
        loop {
            if self.reached_end(*fetch, *offset) {
                return Ok(None);
            }
            let end = match self.prefetch_end(*fetch, *offset) {
                Some(end) => end,
                // A metered link bounds it even when a cache is in use: the first
                // response may turn caching off (no validators, a portal), and this
                // request would then run to the end of the file.
                None if self.look_ahead_capped => {
                    let end = self.first_capped_end(*fetch, *offset);
                    self.within_rate_window(*offset, end)
                }
                None => self.within_rate_window(*offset, fetch.end),
            };
            let failure = match self.open_body(*fetch, *offset, end) {
                Ok(None) => return Ok(None),
                // Headers are in. The first bytes are read here too when that read (bounded
                // by the read timeout) cannot outlast the open timeout; else by the thread.
                Ok(Some(open)) if self.first_read_fits() => {
                    return Ok(self.pump_first(*fetch, open, offset));
                }
                Ok(Some(open)) => return Ok(Some(open)),
                Err(failure) => failure,
            };
            match failure {
                Failure::Restart => self.restart(fetch, offset),
                Failure::Fatal(error) => return Err(self.gave_up(error)),
                Failure::Cancelled => return Err(FileError::Stopped),
                Failure::Transient(transient) => {
                    let url = self.http.shown_url();
                    let delay = self
                        .retries
                        .next_delay(&transient, &url)
                        .map_err(|error| self.gave_up(error))?;
                    self.note_retry(transient, delay);
                    std::thread::sleep(delay);
                }
            }
        }
    }

    /// Whether a read with the read timeout ends before the open timeout does.
    fn first_read_fits(&self) -> bool {
        self.retries.deadline().is_some_and(|deadline| {
            deadline.saturating_duration_since(std::time::Instant::now())
                >= self.http.read_timeout()
        })
    }

    /// Downloads one fetch to its end, retrying transient failures. `body` continues one
    /// opened on the caller's thread.
    pub(crate) fn fetch(
        &mut self,
        mut fetch: Fetch,
        mut offset: u64,
        mut body: Option<OpenBody>,
    ) -> Flow {
        self.retries.reset();
        self.short_partials.clear();
        if self.resume_playing_at != Some(fetch.start) {
            self.resume_playing_at = None;
        }
        loop {
            let interrupt = match self.poll_interrupt() {
                None if self.handing_over() => Some(Interrupt::Exit),
                other => other,
            };
            if let Some(interrupt) = interrupt {
                if let Some(open) = body.take() {
                    self.abandon_staged();
                    self.end_request();
                    self.http.retire(open.body);
                }
                return interrupt.into();
            }
            if self.reached_end(fetch, offset) {
                if let Some(open) = body.take() {
                    self.end_request();
                    self.http.retire(open.body);
                }
                return self.finish(fetch, offset);
            }
            let opened = match body.take() {
                Some(open) => Ok(Some(open)),
                None => match self.window_end(fetch, offset) {
                    Ok(end) => {
                        let end = self.within_rate_window(offset, end);
                        self.open_body(fetch, offset, end)
                    }
                    Err(flow) => return flow,
                },
            };
            let failure = match opened {
                Ok(None) => return self.finish(fetch, offset),
                Ok(Some(mut open)) => match self.pump_body(fetch, &mut open, &mut offset) {
                    Ok(()) => continue,
                    Err(Pumped::Interrupted(interrupt)) => {
                        // Closing a body with megabytes unread takes a while: after the next request.
                        self.http.retire(open.body);
                        return interrupt.into();
                    }
                    Err(Pumped::Failed(failure)) => failure,
                    Err(Pumped::Complete) => unreachable!("a complete pump is Ok"),
                },
                Err(failure) => failure,
            };
            if let Err(flow) = self.recover(&mut fetch, &mut offset, failure) {
                return flow;
            }
        }
    }

    fn reached_end(&self, fetch: Fetch, offset: u64) -> bool {
        fetch
            .end
            .or(self.status.size())
            .is_some_and(|end| offset >= end)
    }

    /// Pumps an open body; `Ok` when it delivered what it could and the fetch goes on.
    fn pump_body(
        &mut self,
        fetch: Fetch,
        open: &mut OpenBody,
        offset: &mut u64,
    ) -> Result<(), Pumped> {
        let before = *offset;
        let pumped = self.pump(fetch, open, offset);
        let cancelled = self.end_request();
        if *offset > before {
            self.retries.reset();
            self.short_partials.clear();
        } else if let (false, Some(validators)) = (
            matches!(pumped, Pumped::Interrupted(_)),
            open.partial_validators.take(),
        ) {
            // A 206 that ended without a byte (nginx `slice` over a changed origin).
            self.short_partials.push(ShortPartial {
                delivered: 0,
                validators,
            });
        }
        match pumped {
            // A server may send less than asked; the loop asks again for the rest.
            Pumped::Complete if *offset > before || self.reached_end(fetch, *offset) => Ok(()),
            Pumped::Complete => Err(Pumped::Failed(Failure::Transient(Transient::new(format!(
                "a response ended at byte {offset} without progress"
            ))))),
            Pumped::Failed(_) if cancelled => Err(Pumped::Failed(Failure::Cancelled)),
            other => Err(other),
        }
    }

    /// Where the next request of `fetch` from `offset` ends: the fetch's own end for the
    /// first fetch (whole-file playback is one request) and when ranges do not work;
    /// after a seek, a window paced by the reader (see `window`), waiting for the reader
    /// when it has enough ahead. `Err` when a command or the stop comes first.
    fn window_end(&mut self, fetch: Fetch, offset: u64) -> Result<Option<u64>, Flow> {
        if let Some(end) = self.prefetch_end(fetch, offset) {
            return Ok(end);
        }
        let capped = self.capped();
        let plays_on = self.plays_on(fetch);
        if (plays_on && !capped) || !self.status.ranges() {
            return Ok(fetch.end);
        }
        if self.read_mark.0 != fetch.epoch {
            self.read_mark = (fetch.epoch, self.status.read_total());
        }
        loop {
            let limit = fetch.end.or(self.status.size());
            let reader = self.status.position();
            let start = self.run_start(fetch, reader);
            let next = if capped {
                capped_request(start, offset, reader, self.look_ahead, limit, plays_on)
            } else {
                next_request(start, offset, reader, self.look_ahead, limit)
            };
            let beyond_reach = reader > offset.saturating_add(NEAR_AHEAD);
            // What ends the wait for the reader: it reaches a position, or (beyond reach)
            // a look now and then.
            let (demand, look) = match next {
                // A reader past the fetch's reach reads elsewhere (held bytes ahead, or a
                // seek whose fetch is on its way): the gap is not asked for. It looks
                // again now and then, for a reader that comes back within reach.
                Next::Request { .. } if beyond_reach => (never(), after(BEYOND_REACH_LOOK)),
                // A seek's fetch sent meanwhile goes first.
                Next::Request { end } => match self.poll_interrupt() {
                    Some(interrupt) => return Err(interrupt.into()),
                    None => return Ok(end),
                },
                Next::WaitFor { position } => match self.status.demand(position) {
                    Some(demand) => (demand.clone(), never()),
                    None => continue,
                },
            };
            // Idle until the reader gets there: nothing follows an abandoned body now.
            self.http.close_retired();
            select! {
                recv(self.commands) -> command => return Err(Interrupt::from_command(command.ok()).into()),
                recv(self.stop.receiver()) -> _ => return Err(Flow::Exit),
                recv(demand) -> _ => {}
                recv(look) -> _ => {}
            }
        }
    }

    /// `end`, or sooner for a rate-limited session (not a prefetch: its windows already
    /// follow its rate), so the server never runs ahead of the cap.
    fn within_rate_window(&self, offset: u64, end: Option<u64>) -> Option<u64> {
        let Some(window) = self.rate_window.filter(|_| self.prefetch.is_none()) else {
            return end;
        };
        if !self.status.ranges() {
            return end;
        }
        let bounded = offset.saturating_add(window);
        Some(end.map_or(bounded, |end| end.min(bounded)))
    }

    /// Whether the look-ahead caps what is asked for: a metered link, and nothing is
    /// written to a cache (see `with_metered_link`).
    fn capped(&self) -> bool {
        self.look_ahead_capped && !self.sink.is_active() && self.prefetch.is_none()
    }

    /// The end of a capped session's first request: a look-ahead past the reader.
    fn first_capped_end(&self, fetch: Fetch, offset: u64) -> Option<u64> {
        match capped_request(
            fetch.start,
            offset,
            offset,
            self.look_ahead,
            fetch.end,
            true,
        ) {
            Next::Request { end } => end,
            Next::WaitFor { .. } => fetch.end,
        }
    }

    /// Sends the request for `offset..end` and applies its answer. `Ok(None)`: the file
    /// ends at or before `offset`.
    fn open_body(
        &mut self,
        fetch: Fetch,
        offset: u64,
        end: Option<u64>,
    ) -> Result<Option<OpenBody>, Failure> {
        if !self.cancel.begin(fetch.epoch, self.http.agent()) {
            return Err(Failure::Cancelled);
        }
        self.status.set_state(DownloadState::Connecting);
        let ranged = self.status.ranges();
        let requested = Requested {
            start: offset,
            end: end.filter(|_| ranged),
            ranged,
        };
        let deadline = self.retries.deadline();
        match self.http.request(requested, deadline, &self.status) {
            Ok(answer) => Ok(self.apply(answer, requested)),
            Err(failure) if self.end_request() => {
                drop(failure);
                Err(Failure::Cancelled)
            }
            Err(failure) => Err(failure),
        }
    }

    /// Ends the in-flight registration; a cancelled (shut down) agent is replaced.
    /// Returns whether the session cancelled the request.
    pub(crate) fn end_request(&mut self) -> bool {
        let cancelled = self.cancel.end();
        if cancelled {
            self.http.rebuild_agent();
        }
        cancelled
    }

    fn apply(&mut self, answer: Answer, requested: Requested) -> Option<OpenBody> {
        match answer.plan {
            Plan::EndOfFile { size } => {
                self.pin(
                    &answer.head,
                    Some(size),
                    !refuses_ranges(requested, &answer.head),
                );
                self.status.set_size(size);
                self.announce(&answer.head);
                self.end_request();
                None
            }
            Plan::Body {
                start,
                skip,
                end,
                total,
                ranged: _,
            } => {
                let refused = refuses_ranges(requested, &answer.head);
                self.pin(&answer.head, total, !refused);
                if let Some(total) = total {
                    self.status.set_size(total);
                }
                // A bounded request answered short by a 206 of unknown total (`/*`): the
                // file ends there (asking past it would get a 416 that says nothing).
                if let (206, None, Some(body_end), Some(asked)) =
                    (answer.head.status, total, end, requested.end)
                {
                    if body_end < asked {
                        self.status.set_size(body_end);
                    }
                }
                if refused {
                    // The server ignores Range: from now on read whole bodies and skip.
                    self.status.disable_ranges();
                }
                self.announce(&answer.head);
                let first = start.saturating_add(skip);
                let mut open = OpenBody::new(answer.body, first, skip, end);
                // ureq's own framing, not the header: a chunked body with a Content-Length
                // beside it ends at its last chunk, which a probe would wait for.
                open.framed =
                    end.is_some_and(|end| answer.framed_length == Some(end.saturating_sub(start)));
                if answer.head.status == 206 {
                    open.partial_validators = Some(validators_of(&answer.head, total));
                }
                Some(open)
            }
        }
    }

    /// Pins the first response's validators and starts the cache; later responses were
    /// checked against them by the plan.
    fn pin(&mut self, head: &ResponseHead, total: Option<u64>, ranged: bool) {
        if !ranged {
            self.status.disable_ranges();
        }
        if self.http.pinned_from_cache {
            // The server confirmed the cached partial data: keep it.
            self.http.pinned_from_cache = false;
            return;
        }
        if self.http.pinned.is_some() {
            return;
        }
        let pinned = validators_of(head, total);
        // A captive portal answers 200 with a login page: stream it (the caller decides),
        // but never keep an HTML page as the asset.
        if looks_like_portal(head) {
            self.sink
                .disable("the server answered with an HTML page (a captive portal?)".into());
        }
        self.sink.start(&pinned);
        self.http.pinned = Some(pinned);
    }

    /// The first response of the session: said once.
    fn announce(&mut self, head: &ResponseHead) {
        self.status.set_state(DownloadState::Streaming);
        if self.report.open() {
            self.content_type = trusted_content_type(head);
            self.report.emit(FileEvent::Opened {
                length: self.status.size(),
                content_type: self.content_type.clone(),
                from_cache: false,
            });
        }
    }

    /// Handles a failed attempt: `Ok` to try again, `Err` with what the driver does instead.
    fn recover(
        &mut self,
        fetch: &mut Fetch,
        offset: &mut u64,
        failure: Failure,
    ) -> Result<(), Flow> {
        if self.handing_over() {
            // A session takes over; it retries on its own.
            return Err(Flow::Exit);
        }
        match failure {
            // The session cancels only after it sent its command (or the stop): wait for it.
            Failure::Cancelled => Err(self.wait_interrupt().into()),
            Failure::Restart => {
                self.restart(fetch, offset);
                Ok(())
            }
            // An expired signed URL: with a fresh one the same bytes are asked for again.
            Failure::Fatal(FileError::HttpStatus { status, .. })
                if self.retries.deadline().is_none() && self.http.refresh(status) =>
            {
                Ok(())
            }
            Failure::Fatal(error) => Err(self.give_up(*fetch, *offset, error)),
            Failure::Transient(transient) => {
                let url = self.http.shown_url();
                match self.retries.next_delay(&transient, &url) {
                    Ok(delay) => {
                        self.note_retry(transient, delay);
                        self.backoff(delay)
                    }
                    Err(error) => {
                        let pinned = self.http.pinned.as_ref();
                        let error =
                            short_partials_verdict(pinned, &self.short_partials).unwrap_or(error);
                        Err(self.give_up(*fetch, *offset, error))
                    }
                }
            }
        }
    }

    /// Ends `fetch` with `error` at `offset`, remembering whether the reader was playing.
    fn give_up(&mut self, fetch: Fetch, offset: u64, error: FileError) -> Flow {
        let reader = self.status.position();
        let read_on = reader.saturating_sub(self.run_start(fetch, reader));
        let playing = self.plays_on(fetch) || read_on >= PLAYING_AFTER;
        self.resume_playing_at = playing.then_some(offset);
        self.fail(fetch.epoch, error)
    }

    /// Whether `fetch` is playback from its first byte: the first fetch, or a read asking
    /// again where a playing fetch gave up. Such a fetch is one open-ended request.
    fn plays_on(&self, fetch: Fetch) -> bool {
        fetch.epoch == 0 || self.resume_playing_at == Some(fetch.start)
    }

    /// Where the reader at `reader` began reading on within `fetch`: the latest of the
    /// fetch's start, the reader's last seek, and the bytes it really read (short seeks
    /// forward within the fetch's reach are not reading). 300 random seeks made the server
    /// send 78 MB for 17 MB received when skipped bytes counted, and 4 MiB requests to the
    /// end of the file when reads after several seeks into one fetch did.
    fn run_start(&self, fetch: Fetch, reader: u64) -> u64 {
        let read = if self.read_mark.0 == fetch.epoch {
            self.status.read_total().saturating_sub(self.read_mark.1)
        } else {
            0
        };
        fetch
            .start
            .max(self.status.run_start())
            .max(reader.saturating_sub(read))
    }

    /// The cached partial data was of an older version: the fetch starts over at byte 0.
    fn restart(&mut self, fetch: &mut Fetch, offset: &mut u64) {
        self.status.forget_size();
        self.sink.discard_stale();
        self.coverage = RangeSet::default();
        fetch.start = 0;
        fetch.end = None;
        *offset = 0;
        self.outlet.begin(fetch.epoch, 0);
    }

    fn note_retry(&mut self, transient: Transient, delay: Duration) {
        if transient.stalled {
            self.report.stalled();
        }
        self.status.count_retry();
        self.status.set_state(DownloadState::Retrying);
        log::debug!(
            "kithara-file: retry {} in {delay:?}: {}",
            self.retries.attempt(),
            transient.cause
        );
        self.report.emit(FileEvent::Retrying {
            attempt: self.retries.attempt(),
            delay,
            cause: transient.cause,
        });
    }

    /// Waits `delay` before a retry, unless a command or the stop comes first.
    fn backoff(&self, delay: Duration) -> Result<(), Flow> {
        select! {
            recv(self.commands) -> command => Err(Interrupt::from_command(command.ok()).into()),
            recv(self.stop.receiver()) -> _ => Err(Flow::Exit),
            default(delay) => Ok(()),
        }
    }

    /// The fetch delivered everything it was asked for.
    fn finish(&mut self, fetch: Fetch, offset: u64) -> Flow {
        // Staged bytes go out before the End, or the reader would ask for them again.
        if let Err(interrupt) = self.flush(fetch.epoch) {
            return interrupt.into();
        }
        if self.status.size().is_none() {
            // Only a body of unknown length that ended cleanly gets here.
            self.status.set_size(offset);
        }
        if let Some(size) = self.status.size() {
            // A body of unknown length that ended can be committed now.
            self.sink.length_known(size);
        }
        self.after_delivery();
        self.report.idle(&self.status);
        let sent = self.outlet.send(
            super::Message::End { epoch: fetch.epoch },
            &self.commands,
            &self.stop,
        );
        // After the End: the reader is not kept waiting for the fsyncs of a commit.
        self.sink.commit_if_complete();
        match sent {
            Ok(()) => Flow::Idle,
            Err(interrupt) => interrupt.into(),
        }
    }

    /// The fetch gives up: the reader gets the error.
    fn fail(&mut self, epoch: u64, error: FileError) -> Flow {
        let error = self.gave_up(error);
        match self.outlet.send(
            super::Message::Failed { epoch, error },
            &self.commands,
            &self.stop,
        ) {
            Ok(()) => Flow::Idle,
            Err(interrupt) => interrupt.into(),
        }
    }

    fn gave_up(&mut self, error: FileError) -> FileError {
        let error = at_url(error, &self.http.shown_url());
        log::debug!("kithara-file: giving up: {error}");
        self.status.set_state(DownloadState::Failed);
        self.status.set_failure(error.clone());
        self.report.emit(FileEvent::Error(error.clone()));
        error
    }
}
