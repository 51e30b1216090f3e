//! Which failures are retried, and how long to wait: exponential backoff with jitter,
//! `Retry-After` honoured up to the max delay, a budget that resets on progress, and (while
//! opening) a deadline for the whole thing.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    pub retry_after: Option<Duration>,
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
        let status_error = |status| FileError::HttpStatus {
            status,
            url: url.to_string(),
        };
        if self.failures > self.max_retries {
            return Err(match failure.status {
                Some(status) => status_error(status),
                None => FileError::Network(format!(
                    "{} (gave up after {} retries)",
                    failure.cause, self.max_retries
                )),
            });
        }
        let delay = match failure.retry_after {
            Some(wait) if wait > self.max_delay => {
                return Err(match failure.status {
                    Some(status) => status_error(status),
                    None => FileError::Network(failure.cause.clone()),
                });
            }
            Some(wait) => wait.max(self.backoff()),
            None => self.backoff(),
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

/// Sorts a ureq failure into retry or give up.
pub(crate) fn classify(error: ureq::Error) -> Failure {
    match error {
        ureq::Error::Timeout(_) | ureq::Error::BodyStalled => Failure::Transient(Transient {
            stalled: true,
            ..Transient::new(format!("stalled: {error}"))
        }),
        // rustls reports a failed handshake or a corrupt record as InvalidData: never
        // retried, never downgraded.
        ureq::Error::Io(ref io) if io.kind() == std::io::ErrorKind::InvalidData => {
            Failure::Fatal(FileError::Network(format!("TLS failure: {error}")))
        }
        ureq::Error::Io(_) | ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => {
            Failure::Transient(Transient::new(error.to_string()))
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
