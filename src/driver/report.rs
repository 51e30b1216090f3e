//! What the driver tells the user as it happens: [`FileEvent`]s (progress at most every
//! 100 ms, stalls, completion) and the [`DownloadState`] in [`Status`].

use std::time::{Duration, Instant};

use super::status::Status;
use crate::events::{DownloadState, EventSink, FileEvent};

/// How often progress events go out at most.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

pub(crate) struct Report {
    events: Option<EventSink>,
    last_progress: Instant,
    stalled: bool,
    opened: bool,
    /// Every byte of the file has been downloaded (or was in the cache).
    complete: bool,
}

impl Report {
    pub(crate) fn new(events: Option<EventSink>) -> Self {
        Report {
            events,
            last_progress: Instant::now(),
            stalled: false,
            opened: false,
            complete: false,
        }
    }

    pub(crate) fn emit(&self, event: FileEvent) {
        if let Some(events) = &self.events {
            events.emit(event);
        }
    }

    /// `true` the first time: the session's first response is announced once.
    pub(crate) fn open(&mut self) -> bool {
        !std::mem::replace(&mut self.opened, true)
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.complete
    }

    /// Bytes went out: stall recovery and rate-limited progress.
    pub(crate) fn delivered(&mut self, status: &Status) {
        if self.stalled {
            self.stalled = false;
            self.emit(FileEvent::Resumed);
        }
        if self.events.is_some() && self.last_progress.elapsed() >= PROGRESS_INTERVAL {
            self.last_progress = Instant::now();
            self.emit(FileEvent::Progress {
                downloaded: status.bytes_fetched(),
                total: status.size(),
            });
        }
    }

    /// The response went silent past the read timeout (said once per stall).
    pub(crate) fn stalled(&mut self) {
        if !self.stalled {
            self.stalled = true;
            self.emit(FileEvent::Stalled);
        }
    }

    /// The whole file is here: said once.
    pub(crate) fn complete(&mut self, status: &Status) {
        status.set_state(DownloadState::Complete);
        if !self.complete {
            self.complete = true;
            self.emit(FileEvent::Complete);
        }
    }

    /// A fetch is done; the driver waits for the reader's next request.
    pub(crate) fn idle(&self, status: &Status) {
        status.set_state(if self.complete {
            DownloadState::Complete
        } else {
            DownloadState::Streaming
        });
    }
}
