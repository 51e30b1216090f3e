//! A driver without a reader (`AssetCache::prefetch`): the bytes only go to the cache.
//!
//! It asks for bounded windows sized to take about 100 ms at the rate it last measured,
//! so a session that takes the asset over waits at most about that long for the request
//! in flight to finish, and no byte is ever asked for twice. After each fetch it moves on
//! to the next gap of the partial file, until the file (or `with_max_bytes`) is covered.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::run::Driver;
use super::{Fetch, PrefetchSpec};

/// Smallest and largest prefetch request.
const MIN_WINDOW: u64 = 64 * 1024;
const MAX_WINDOW: u64 = 4 * 1024 * 1024;

/// How long one prefetch request should take.
const WINDOW_TIME: Duration = Duration::from_millis(100);

/// The size of the next request after `bytes` took `elapsed`.
pub(crate) fn window_for(bytes: u64, elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64().max(1e-6);
    let rate = bytes as f64 / secs;
    ((rate * WINDOW_TIME.as_secs_f64()) as u64).clamp(MIN_WINDOW, MAX_WINDOW)
}

pub(crate) struct Prefetching {
    spec: PrefetchSpec,
    window: u64,
    /// When the last request went out, and from where.
    asked: Option<(Instant, u64)>,
}

impl Prefetching {
    pub(crate) fn new(spec: PrefetchSpec) -> Self {
        Prefetching {
            spec,
            window: MIN_WINDOW,
            asked: None,
        }
    }

    /// A session is taking the asset over.
    pub(crate) fn handing_over(&self) -> bool {
        self.spec.hand_over.load(Ordering::Acquire)
    }

    /// Where the prefetch stops: `with_max_bytes`, else the end of the file.
    pub(crate) fn limit(&self, size: Option<u64>) -> Option<u64> {
        match (self.spec.max_bytes, size) {
            (Some(max), Some(size)) => Some(max.min(size)),
            (max, size) => max.or(size),
        }
    }

    /// The end of the next request from `offset`, no further than `limit`.
    pub(crate) fn next_end(&mut self, offset: u64, limit: Option<u64>) -> Option<u64> {
        if let Some((at, from)) = self.asked {
            if offset > from {
                self.window = window_for(offset - from, at.elapsed());
            }
        }
        self.asked = Some((Instant::now(), offset));
        let end = offset.saturating_add(self.window);
        Some(limit.map_or(end, |limit| limit.min(end)))
    }
}

impl Driver {
    pub(crate) fn handing_over(&self) -> bool {
        self.prefetch
            .as_ref()
            .is_some_and(Prefetching::handing_over)
    }

    /// For a prefetch, where its next request from `offset` ends (`Some(None)`: to the
    /// end of the file); `None` for a session.
    pub(crate) fn prefetch_end(&mut self, fetch: Fetch, offset: u64) -> Option<Option<u64>> {
        let size = self.status.size();
        let prefetch = self.prefetch.as_mut()?;
        let limit = match (fetch.end, prefetch.limit(size)) {
            (Some(end), Some(limit)) => Some(end.min(limit)),
            (end, limit) => end.or(limit),
        };
        Some(prefetch.next_end(offset, limit))
    }

    /// A prefetch's next fetch: the first gap of the partial file before its limit.
    pub(crate) fn next_gap(&self, epoch: u64) -> Option<Fetch> {
        let prefetch = self.prefetch.as_ref()?;
        let limit = prefetch.limit(self.status.size());
        let (start, end) = self.sink.first_gap(limit)?;
        Some(Fetch {
            epoch: epoch + 1,
            start,
            end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_take_about_a_tenth_of_a_second() {
        const MIB: u64 = 1024 * 1024;
        for (bytes, millis, window) in [
            (MIB, 100, MIB),
            (MIB, 1000, 104_857),
            (1000, 1000, MIN_WINDOW),
            (100 * MIB, 10, MAX_WINDOW),
            (MIB, 0, MAX_WINDOW),
        ] {
            assert_eq!(
                window_for(bytes, Duration::from_millis(millis)),
                window,
                "{bytes} in {millis} ms"
            );
        }
    }
}
