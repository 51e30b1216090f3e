//! From a URL (and maybe a cache) to a session: a complete cached body is served from
//! disk with no request; otherwise a remote session starts, resuming a partial download
//! when this session can be the asset's writer.

use std::sync::Arc;

use url::Url;

use super::cached::Cached;
use super::remote::Remote;
use super::{CacheUse, FileSession, Inner, SessionState, Source};
use crate::cache::{AssetCache, AssetId, AssetLease, PartialFile};
use crate::driver::{self, DriverSpec, Fetch, Freshness, Status, StopSignal};
use crate::events::{DownloadState, FileEvent};
use crate::options::validate_url;
use crate::range_policy::Validators;
use crate::redact::redact;
use crate::{FileError, FileSourceOptions};

/// Opens a session, through `cache` when given.
pub(super) fn open(
    url: Url,
    options: FileSourceOptions,
    cache: Option<AssetCache>,
) -> Result<FileSession, FileError> {
    validate_url(&url)?;
    options.validate()?;
    let asset_id = asset_id_for(&url, &options);
    let cache_use = match cache.map(|cache| (cache.lease(&asset_id), cache)) {
        Some((Ok(lease), cache)) => {
            if let Some(session) =
                open_complete(&lease, &url, &options, &asset_id, options.revalidate)
            {
                return Ok(session);
            }
            // A prefetch of this asset in this process hands its bytes over first.
            crate::prefetch::take_over(&cache.asset_dir(&asset_id));
            match claim_writer(lease, &url, &options, &asset_id) {
                Ok(session) => return Ok(session),
                Err(cache_use) => Some(cache_use),
            }
        }
        // A broken cache only turns caching off.
        Some((Err(_), _)) | None => None,
    };
    start_remote(url, options, asset_id, cache_use)
}

/// The asset id sessions (and prefetches) of `url` use.
pub(crate) fn asset_id_for(url: &Url, options: &FileSourceOptions) -> AssetId {
    match &options.cache_key {
        Some(key) => AssetId::from_key(key),
        None => AssetId::from_url(url),
    }
}

/// Becomes the asset's writer when no one else is. `Ok` is a session served from a
/// partial download that turned out complete; `Err` is how the remote session uses the
/// cache.
fn claim_writer(
    lease: AssetLease,
    url: &Url,
    options: &FileSourceOptions,
    asset_id: &AssetId,
) -> Result<FileSession, CacheUse> {
    let partial = match lease.begin_write() {
        Ok(Some(partial)) => partial,
        // Another session or process writes it (or the entry is broken): read only.
        _ => return Err(CacheUse::reader(lease)),
    };
    if !partial.is_complete() {
        return Err(CacheUse {
            lease,
            partial: Some(partial),
        });
    }
    // Everything was downloaded but never committed (a crash at the very end).
    let committed = partial.commit().is_ok();
    drop(partial);
    if committed {
        // Just downloaded: nothing to revalidate.
        if let Some(session) = open_complete(&lease, url, options, asset_id, false) {
            return Ok(session);
        }
    }
    Err(CacheUse::reader(lease))
}

impl CacheUse {
    fn reader(lease: AssetLease) -> Self {
        CacheUse {
            lease,
            partial: None,
        }
    }
}

/// A session over a complete cached body: the whole file is one chunk, no driver thread.
/// With `revalidate`, only if the server does not say it has another version now (one
/// conditional request; no answer serves the cache too).
fn open_complete(
    lease: &AssetLease,
    url: &Url,
    options: &FileSourceOptions,
    asset_id: &AssetId,
    revalidate: bool,
) -> Option<FileSession> {
    let (body, meta) = lease.complete_body()?;
    let len = body.len() as u64;
    let status = Status::new(Some(len), options.range_seek, DownloadState::Complete);
    if revalidate {
        let known = Validators {
            etag: meta.etag,
            last_modified: meta.last_modified,
            size: Some(meta.len),
        };
        if driver::revalidate(url, options, &known, &status) == Freshness::Changed {
            // The new version streams in and replaces the body once complete.
            return None;
        }
    }
    if let Some(events) = &options.events {
        events.emit(FileEvent::Opened {
            length: Some(len),
            content_type: None,
            from_cache: true,
        });
    }
    let inner = Inner {
        state: SessionState {
            status: Arc::new(status),
            stop: StopSignal::new(),
        },
        source: Source::Cached(Cached::new(body)),
        asset_id: asset_id.clone(),
        url: redact(url),
        content_type: None,
        cache: Some(CacheUse::reader(lease.clone())),
        events: options.events.clone(),
    };
    Some(FileSession {
        inner: Arc::new(inner),
    })
}

/// Bytes a previous run left are pinned to its validators: the first fetch is the first
/// gap only. Without them, everything from byte 0.
pub(crate) fn resume_point(partial: Option<&PartialFile>) -> (Option<Validators>, Fetch) {
    let whole = Fetch {
        epoch: 0,
        start: 0,
        end: None,
    };
    let Some((partial, meta)) = partial.and_then(|p| Some((p, p.meta()?))) else {
        return (None, whole);
    };
    let pinned = Validators {
        etag: meta.etag,
        last_modified: meta.last_modified,
        size: Some(meta.len),
    };
    let start = partial.covered_end(0).unwrap_or(0);
    let first = Fetch {
        epoch: 0,
        start,
        end: partial.next_covered_start(start),
    };
    (Some(pinned), first)
}

/// A session over the network; with a partial file it first fetches the first gap.
fn start_remote(
    url: Url,
    options: FileSourceOptions,
    asset_id: AssetId,
    cache: Option<CacheUse>,
) -> Result<FileSession, FileError> {
    let partial = cache.as_ref().and_then(|c| c.partial.clone());
    let (pinned, first) = resume_point(partial.as_deref());
    let status = Arc::new(Status::new(
        pinned.as_ref().and_then(|p| p.size),
        options.range_seek,
        DownloadState::Connecting,
    ));
    let stop = StopSignal::new();
    let events = options.events.clone();
    let url_text = redact(&url);
    let spec = DriverSpec {
        url,
        options,
        first,
        pinned,
        partial: partial.clone(),
        cache_limit: cache.as_ref().and_then(|c| c.lease.cache_limit()),
        prefetch: None,
    };
    let (driver, opened) = driver::start(spec, Arc::clone(&status), &stop)?;
    let inner = Inner {
        state: SessionState { status, stop },
        source: Source::Remote(Remote::new(driver, opened.first, partial)),
        asset_id,
        url: url_text,
        content_type: opened.content_type,
        cache,
        events,
    };
    Ok(FileSession {
        inner: Arc::new(inner),
    })
}
