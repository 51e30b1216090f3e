//! Which failures are retried, and how long to wait: exponential backoff with jitter,
//! `Retry-After` honoured up to the max delay, a budget that resets on progress, and (while
//! opening) a deadline for the whole thing.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::agent::tls_failure_message;
use crate::error::{classify_transport, gave_up, LastFailure, Transport};
use crate::range_policy::{retry_delay, RetryAfter};
use crate::{FileError, FileSourceOptions};

/// Why a request attempt failed.
#[derive(Debug)]
pub(crate) enum Failure {
    Transient(Transient),
    Fatal(FileError),
    /// The session cancelled the request; a command (or the stop) is on its way.
    Cancelled,
    /// The cached partial data belongs to an older version: start over from byte 0.
    Restart,
}

/// A failure worth another try.
#[derive(Debug)]
pub(crate) struct Transient {
    pub cause: String,
    /// The HTTP status, when the server answered with one.
    pub status: Option<u16>,
    pub retry_after: Option<RetryAfter>,
    /// The response went silent past the read timeout.
    pub stalled: bool,
}

impl Transient {
    pub(crate) fn new(cause: String) -> Self {
        Transient {
            cause,
            status: None,
            retry_after: None,
            stalled: false,
        }
    }
}

/// The retry budget of one fetch.
pub(crate) struct Retries {
    max_retries: u32,
    base: Duration,
    max_delay: Duration,
    /// xorshift64 state: jitter only needs to decorrelate clients, not be unpredictable.
    jitter: u64,
    failures: u32,
    /// While opening: `open` as a whole must end by then.
    deadline: Option<Instant>,
}

impl Retries {
    pub(crate) fn new(options: &FileSourceOptions) -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Retries {
            max_retries: options.max_retries,
            base: options.retry_base_delay,
            max_delay: options.retry_max_delay,
            jitter: seed | 1,
            failures: 0,
            deadline: None,
        }
    }

    /// A fresh budget (a new fetch, or a retry that delivered bytes).
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    pub(crate) fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The attempt count of the retry about to happen (1 for the first).
    pub(crate) fn attempt(&self) -> u32 {
        self.failures
    }

    /// Counts a failure: how long to wait before the next attempt, or the error to give
    /// up with. `url` is the redacted URL for an [`FileError::HttpStatus`].
    pub(crate) fn next_delay(
        &mut self,
        failure: &Transient,
        url: &str,
    ) -> Result<Duration, FileError> {
        self.failures += 1;
        let last = match failure.status {
            Some(status) => LastFailure::Status(status),
            None => LastFailure::Transport(failure.cause.clone()),
        };
        if self.failures > self.max_retries {
            return Err(gave_up(&last, self.max_retries, url));
        }
        let backoff = self.backoff();
        let Some(delay) = retry_delay(failure.retry_after, backoff, self.max_delay) else {
            // The server asks for longer than the longest delay: surface it now.
            return Err(gave_up(&last, self.failures - 1, url));
        };
        if let Some(deadline) = self.deadline {
            if Instant::now() + delay >= deadline {
                return Err(open_timed_out(&failure.cause));
            }
        }
        Ok(delay)
    }

    /// A random delay in the upper half of `base * 2^(failures-1)`, capped at the max.
    fn backoff(&mut self) -> Duration {
        let full = self
            .base
            .saturating_mul(1u32 << self.failures.saturating_sub(1).min(20))
            .min(self.max_delay);
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let fraction = 0.5 + (self.jitter % 1000) as f64 / 2000.0;
        full.mul_f64(fraction)
    }
}

/// The error of an `open` whose timeout ran out.
pub(crate) fn open_timed_out(cause: &str) -> FileError {
    FileError::Network(format!(
        "no usable answer within the open timeout ({cause})"
    ))
}

/// Sorts a ureq failure into retry or give up (the rule is `error::classify_transport`).
pub(crate) fn classify(error: ureq::Error) -> Failure {
    // A certificate that fails verification is fatal at once, and says which check failed.
    if let Some(message) = tls_failure_message(&error) {
        return Failure::Fatal(FileError::Network(message));
    }
    match classify_transport(&error) {
        Transport::Retry { cause, stalled } => Failure::Transient(Transient {
            stalled,
            ..Transient::new(cause)
        }),
        Transport::Fatal(error) => Failure::Fatal(error),
    }
}
