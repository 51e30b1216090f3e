//! The download rate cap of `with_rate_limit`: a token bucket the pump asks before each
//! socket read. Bytes already held are never slowed: only reads from the network spend.

use std::time::{Duration, Instant};

/// The smallest read worth waking up for (a few TCP segments).
const MIN_GRANT: u64 = 4 * 1024;

pub(crate) struct TokenBucket {
    bytes_per_second: u64,
    /// What may be read in one go after an idle spell: a tenth of a second's worth, so
    /// the rate over a few seconds stays within 1 % of the cap.
    burst: u64,
    tokens: f64,
    refilled: Instant,
}

/// The most one request of a rate-limited session asks for: half a second at the cap
/// (at least 64 KiB). The server cannot run ahead of the cap into the socket buffers:
/// with one open-ended request it pushed several MB into them at once, so it sent at
/// several times the cap for the first seconds.
pub(crate) fn request_window(bytes_per_second: u64) -> u64 {
    (bytes_per_second / 2).max(64 * 1024)
}

impl TokenBucket {
    pub(crate) fn new(bytes_per_second: u64) -> Self {
        let burst = (bytes_per_second / 10).max(MIN_GRANT);
        TokenBucket {
            bytes_per_second,
            burst,
            tokens: burst as f64,
            refilled: Instant::now(),
        }
    }

    /// How many bytes the next read may take, or how long to wait for enough of them.
    pub(crate) fn grant(&mut self) -> Result<usize, Duration> {
        let now = Instant::now();
        let earned = now.duration_since(self.refilled).as_secs_f64() * self.bytes_per_second as f64;
        self.tokens = (self.tokens + earned).min(self.burst as f64);
        self.refilled = now;
        let want = MIN_GRANT.min(self.burst) as f64;
        if self.tokens >= want {
            return Ok(self.tokens as usize);
        }
        let missing = want - self.tokens;
        Err(Duration::from_secs_f64(
            missing / self.bytes_per_second as f64,
        ))
    }

    /// Bytes a read took.
    pub(crate) fn spend(&mut self, bytes: usize) {
        self.tokens -= bytes as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_follow_the_rate() {
        let mut bucket = TokenBucket::new(100_000);
        // A burst of a tenth of a second first.
        assert_eq!(bucket.grant(), Ok(10_000));
        bucket.spend(10_000);
        let wait = bucket.grant().unwrap_err();
        // 4 KiB at 100 kB/s: about 41 ms.
        assert!(
            wait > Duration::from_millis(35) && wait <= Duration::from_millis(42),
            "{wait:?}"
        );
        // A tiny cap still grants whole reads, never zero.
        let mut tiny = TokenBucket::new(10);
        assert!(tiny.grant().unwrap() > 0);
    }
}
