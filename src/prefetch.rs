//! Getting the next track ready before the user presses next: [`AssetCache::prefetch`]
//! downloads an asset into the cache in the background, and a session opened on it later
//! takes over without asking for a byte twice.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use url::Url;

use crate::cache::{AssetCache, AssetLease};
use crate::driver::{self, Cancel, DriverHandle, DriverSpec, PrefetchSpec, Status, StopSignal};
use crate::events::{DownloadState, Progress};
use crate::options::validate_url;
use crate::session::open::{asset_id_for, resume_point};
use crate::{lock, FileError, FileSourceOptions};

/// How long a session that takes an asset over waits for the prefetch's request in flight
/// to finish (they are sized to take ~100 ms) before it cancels it.
const HAND_OVER_WAIT: Duration = Duration::from_secs(1);

/// Prefetches running in this process, by asset directory: a session opened on one of
/// them (through any `AssetCache` handle on the same root) takes it over.
static RUNNING: Mutex<Option<HashMap<PathBuf, Weak<Running>>>> = Mutex::new(None);

/// What a session needs to take a running prefetch over.
struct Running {
    hand_over: Arc<AtomicBool>,
    stop: StopSignal,
    cancel: Arc<Cancel>,
    ended: Receiver<()>,
}

impl Running {
    fn stop(&self) {
        self.stop.stop();
        self.cancel.cancel_all();
    }
}

/// A running prefetch of `asset_dir` (if any) finishes its request in flight, writes down
/// what it has and ends; bounded by [`HAND_OVER_WAIT`], then cancelled.
pub(crate) fn take_over(asset_dir: &std::path::Path) {
    let running = lock(&RUNNING)
        .as_ref()
        .and_then(|map| map.get(asset_dir))
        .and_then(Weak::upgrade);
    let Some(running) = running else {
        return;
    };
    running.hand_over.store(true, Ordering::Release);
    if let Err(RecvTimeoutError::Timeout) = running.ended.recv_timeout(HAND_OVER_WAIT) {
        running.stop();
        let _ = running.ended.recv_timeout(HAND_OVER_WAIT);
    }
}

/// A background download of one asset into the cache, started by
/// [`AssetCache::prefetch`].
///
/// Dropping it stops the download and keeps what it fetched: the next session (or
/// prefetch) of the asset resumes from there. A session opened with
/// [`FileSource::open_with_cache`](crate::FileSource::open_with_cache) on the asset while
/// the prefetch runs takes over: the prefetch finishes the request in flight and ends,
/// the session reads its bytes from disk and fetches only the rest.
///
/// ```no_run
/// use std::time::Duration;
/// use kithara_file::{AssetCache, FileSourceOptions};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cache = AssetCache::open("/var/cache/my-player")?;
/// let next = cache.prefetch("https://cdn.example/next.flac".parse()?, FileSourceOptions::new())?;
/// println!("{:?}", next.progress());
/// // ... while the current track plays ...
/// let ready = next.wait(Duration::from_secs(30))?;
/// println!("next track fully cached: {ready}");
/// # Ok(())
/// # }
/// ```
pub struct Prefetch {
    status: Arc<Status>,
    lease: Option<AssetLease>,
    running: Option<Arc<Running>>,
    /// Dropped (joined) after the stop.
    driver: Option<DriverHandle>,
    key: PathBuf,
}

impl AssetCache {
    /// Starts downloading `url` into this cache in the background (one driver thread, no
    /// reader) and returns once the first response's headers arrived.
    ///
    /// An asset whose complete body is already cached makes no request at all. An asset
    /// another session or process is writing right now is left to it (the prefetch then
    /// has nothing to do). [`FileSourceOptions::with_max_bytes`] limits the download to the
    /// first bytes; [`FileSourceOptions::with_rate_limit`] caps its rate. The asset id is
    /// the one a session of the same URL and options uses.
    ///
    /// ```no_run
    /// use kithara_file::{AssetCache, FileSourceOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = AssetCache::open("/var/cache/my-player")?;
    /// // Enough of the next track for an instant start: its first 512 KiB.
    /// let options = FileSourceOptions::new().with_max_bytes(512 * 1024);
    /// let prefetch = cache.prefetch("https://cdn.example/next.mp3".parse()?, options)?;
    /// # drop(prefetch);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`FileSource::open`](crate::FileSource::open), and [`FileError::Cache`] when the
    /// asset cannot be leased.
    pub fn prefetch(&self, url: Url, options: FileSourceOptions) -> Result<Prefetch, FileError> {
        validate_url(&url)?;
        options.validate()?;
        let id = asset_id_for(&url, &options);
        let key = self.asset_dir(&id);
        let lease = self.lease(&id)?;
        let idle = |status: DownloadState| Prefetch::idle(lease.clone(), key.clone(), status);
        if lease.complete_body().is_some() {
            return Ok(idle(DownloadState::Complete));
        }
        let Ok(Some(partial)) = lease.begin_write() else {
            // Someone else writes it (or the entry is broken): nothing for us to do.
            return Ok(idle(DownloadState::Streaming));
        };
        if partial.is_complete() {
            let committed = partial.commit().is_ok();
            drop(partial);
            let state = if committed {
                DownloadState::Complete
            } else {
                DownloadState::Failed
            };
            return Ok(idle(state));
        }
        let (pinned, mut first) = resume_point(Some(&partial));
        let max_bytes = options.max_bytes;
        if let Some(max) = max_bytes {
            if first.start >= max {
                return Ok(idle(DownloadState::Streaming));
            }
            first.end = Some(first.end.map_or(max, |end| end.min(max)));
        }
        let status = Arc::new(Status::new(
            pinned.as_ref().and_then(|p| p.size),
            options.range_seek,
            DownloadState::Connecting,
        ));
        let hand_over = Arc::new(AtomicBool::new(false));
        let spec = DriverSpec {
            url,
            options,
            first,
            pinned,
            partial: Some(partial),
            cache_limit: self.limit(),
            prefetch: Some(PrefetchSpec {
                hand_over: Arc::clone(&hand_over),
                max_bytes,
            }),
        };
        let stop = StopSignal::new();
        let (driver, _opened) = driver::start(spec, Arc::clone(&status), &stop)?;
        let running = Arc::new(Running {
            hand_over,
            stop,
            cancel: Arc::clone(&driver.cancel),
            ended: driver.ended(),
        });
        lock(&RUNNING)
            .get_or_insert_with(HashMap::new)
            .insert(key.clone(), Arc::downgrade(&running));
        Ok(Prefetch {
            status,
            lease: Some(lease),
            running: Some(running),
            driver: Some(driver),
            key,
        })
    }
}

impl Prefetch {
    /// A prefetch with nothing to download.
    fn idle(lease: AssetLease, key: PathBuf, state: DownloadState) -> Self {
        Prefetch {
            status: Arc::new(Status::new(None, true, state)),
            lease: Some(lease),
            running: None,
            driver: None,
            key,
        }
    }

    /// Where the download stands: bytes fetched, the length once known, and the state
    /// (`Complete` once the body is committed). `position` is always 0.
    ///
    /// ```no_run
    /// # use kithara_file::{AssetCache, FileSourceOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let cache = AssetCache::open("/tmp/cache")?;
    /// let next = cache.prefetch("https://cdn.example/next.flac".parse()?, FileSourceOptions::new())?;
    /// let progress = next.progress();
    /// println!("{} of {:?} bytes", progress.downloaded, progress.total);
    /// # Ok(())
    /// # }
    /// ```
    pub fn progress(&self) -> Progress {
        let state = if self.is_complete() {
            DownloadState::Complete
        } else {
            self.status.state()
        };
        Progress {
            downloaded: self.status.bytes_fetched(),
            total: self.status.size(),
            position: 0,
            state,
        }
    }

    /// Whether the asset's complete body is in the cache (committed by this prefetch or
    /// found there).
    ///
    /// ```no_run
    /// # use kithara_file::{AssetCache, FileSourceOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let cache = AssetCache::open("/tmp/cache")?;
    /// let next = cache.prefetch("https://cdn.example/next.flac".parse()?, FileSourceOptions::new())?;
    /// if next.is_complete() {
    ///     println!("already cached: plays offline");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_complete(&self) -> bool {
        self.status.is_committed()
            || self
                .lease
                .as_ref()
                .is_some_and(AssetLease::has_complete_body)
    }

    /// Waits up to `timeout` for the download to end. `Ok(true)` when the body is
    /// committed; `Ok(false)` when the time ran out first, or the download ended without
    /// the whole file (it was stopped, limited by `with_max_bytes`, or handed over to a
    /// session).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use kithara_file::{AssetCache, FileSourceOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let cache = AssetCache::open("/tmp/cache")?;
    /// let next = cache.prefetch("https://cdn.example/next.flac".parse()?, FileSourceOptions::new())?;
    /// while !next.wait(Duration::from_millis(500))? {
    ///     println!("{:?}", next.progress());
    /// #   break;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// The error the download gave up with (as a session's read would get it).
    pub fn wait(&self, timeout: Duration) -> Result<bool, FileError> {
        if let Some(running) = &self.running {
            if let Err(RecvTimeoutError::Timeout) = running.ended.recv_timeout(timeout) {
                return Ok(self.is_complete());
            }
        }
        match self.status.failure() {
            Some(error) if !self.is_complete() => Err(error),
            _ => Ok(self.is_complete()),
        }
    }

    /// Stops the download (the request in flight is cancelled); what was fetched stays in
    /// the cache for the next session. Never blocks.
    ///
    /// ```no_run
    /// # use kithara_file::{AssetCache, FileSourceOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let cache = AssetCache::open("/tmp/cache")?;
    /// let next = cache.prefetch("https://cdn.example/next.flac".parse()?, FileSourceOptions::new())?;
    /// // The user skipped ahead two tracks: this one is not needed now.
    /// next.stop();
    /// # Ok(())
    /// # }
    /// ```
    pub fn stop(&self) {
        if let Some(running) = &self.running {
            running.stop();
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.stop();
        // Joins the thread (it checkpoints the partial file on its way out).
        self.driver.take();
        if let Some(running) = self.running.take() {
            let mut registry = lock(&RUNNING);
            if let Some(map) = registry.as_mut() {
                let ours = map
                    .get(&self.key)
                    .is_some_and(|weak| std::ptr::eq(weak.as_ptr(), Arc::as_ptr(&running)));
                if ours {
                    map.remove(&self.key);
                }
            }
        }
    }
}

impl fmt::Debug for Prefetch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prefetch")
            .field("progress", &self.progress())
            .field("complete", &self.is_complete())
            .finish()
    }
}
