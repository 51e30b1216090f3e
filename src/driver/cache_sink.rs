//! Write-through into the asset cache: optional, and any failure only turns it off for
//! this session (with a [`FileEvent::CacheDisabled`] saying why).
//!
//! The body is committed the moment the partial file covers the whole file, whatever the
//! reader does next (reads to the end, drops the session, stops it): the commit does not
//! depend on which of the driver's exits comes first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::status::Status;
use crate::cache::{CachedMeta, PartialFile, UNKNOWN_LEN};
use crate::events::{EventSink, FileEvent};
use crate::range_policy::Validators;

/// How often the partial file's index is made durable while downloading. A checkpoint
/// fsyncs the data written so far, which at network speed is expensive; a crash only
/// loses coverage since the last one, and every exit checkpoints.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);

pub(crate) struct CacheSink {
    partial: Option<Arc<PartialFile>>,
    last_checkpoint: Instant,
    events: Option<EventSink>,
    status: Arc<Status>,
    /// The cache's size limit: a body of unknown length is cached only while it fits.
    limit: Option<u64>,
    /// Bytes written of a body of unknown length (`None`: the length is known).
    unknown_len_written: Option<u64>,
}

impl CacheSink {
    pub(crate) fn new(
        partial: Option<Arc<PartialFile>>,
        limit: Option<u64>,
        events: Option<EventSink>,
        status: Arc<Status>,
    ) -> Self {
        CacheSink {
            partial,
            last_checkpoint: Instant::now(),
            events,
            status,
            limit,
            unknown_len_written: None,
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        self.partial.is_some()
    }

    /// The byte ranges the partial file held when the session started.
    pub(crate) fn covered(&self) -> Vec<std::ops::Range<u64>> {
        self.partial
            .as_ref()
            .map(|p| p.covered())
            .unwrap_or_default()
    }

    /// The first byte range before `limit` the partial file does not hold: its start,
    /// and where the next held bytes begin (if before the limit).
    pub(crate) fn first_gap(&self, limit: Option<u64>) -> Option<(u64, Option<u64>)> {
        let partial = self.partial.as_ref()?;
        let mut start = 0;
        while let Some(end) = partial.covered_end(start) {
            start = end;
        }
        if limit.is_some_and(|limit| start >= limit) {
            return None;
        }
        let end = match (partial.next_covered_start(start), limit) {
            (Some(next), Some(limit)) => Some(next.min(limit)),
            (next, limit) => next.or(limit),
        };
        Some((start, end))
    }

    /// Starts a fresh partial file for the version the first response pinned.
    pub(crate) fn start(&mut self, pinned: &Validators) {
        let Some(partial) = &self.partial else {
            return;
        };
        let len = match (pinned.size, self.limit) {
            // One without a validator could not be told from a newer version next run.
            (Some(_), _) if pinned.if_range().is_none() => {
                return self.disable("the response has no validator".into());
            }
            (Some(len), _) => len,
            // An endless stream (internet radio) must never fill the disk.
            (None, None) => {
                return self.disable(
                    "a body of unknown length is cached only under a size limit (with_max_bytes)"
                        .into(),
                );
            }
            (None, Some(_)) => {
                self.unknown_len_written = Some(0);
                UNKNOWN_LEN
            }
        };
        let started = partial.reset(CachedMeta {
            len,
            etag: pinned.etag.clone(),
            last_modified: pinned.last_modified.clone(),
        });
        if let Err(e) = started {
            self.disable(format!("cannot start the partial file: {e}"));
        }
    }

    /// The cached partial data belongs to an older version: forget it and keep caching
    /// only if that worked (else the reader's handle could still claim old coverage).
    pub(crate) fn discard_stale(&mut self) {
        if let Some(partial) = &self.partial {
            if let Err(e) = partial.discard() {
                self.disable(format!("cannot discard stale partial data: {e}"));
            }
        }
    }

    pub(crate) fn write(&mut self, offset: u64, bytes: &[u8]) {
        let Some(partial) = &self.partial else {
            return;
        };
        if let Err(e) = partial.write_at(offset, bytes) {
            return self.disable(format!("cannot write to the cache: {e}"));
        }
        if let (Some(written), Some(limit)) = (&mut self.unknown_len_written, self.limit) {
            *written += bytes.len() as u64;
            if *written > limit {
                let reason =
                    format!("the body of unknown length outgrew the cache limit of {limit} bytes");
                self.disable(reason);
            }
        }
    }

    /// A body of unknown length ended at `len`: it can be committed now.
    pub(crate) fn length_known(&mut self, len: u64) {
        if self.unknown_len_written.is_none() {
            return;
        }
        if let Some(partial) = &self.partial {
            if partial.set_len(len) {
                self.unknown_len_written = None;
            }
        }
        self.commit_if_complete();
    }

    /// The fsync work that follows writes, done after the bytes went out to the reader:
    /// a checkpoint every [`CHECKPOINT_INTERVAL`], and the commit once complete.
    pub(crate) fn settle(&mut self) {
        let Some(partial) = &self.partial else {
            return;
        };
        // A partial of unknown length is never resumed: nothing to checkpoint.
        if self.unknown_len_written.is_none()
            && self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL
        {
            self.last_checkpoint = Instant::now();
            if let Err(e) = partial.checkpoint() {
                return self.disable(format!("cannot checkpoint the partial file: {e}"));
            }
        }
        self.commit_if_complete();
    }

    /// Commits the body if the partial file now covers the whole file.
    pub(crate) fn commit_if_complete(&mut self) {
        let Some(partial) = &self.partial else {
            return;
        };
        if partial.is_committed() || !partial.is_complete() {
            return;
        }
        self.status.set_committing(true);
        let committed = partial.commit();
        self.status.set_committing(false);
        match committed {
            Ok(()) => {
                self.status.set_committed();
                if let Some(events) = &self.events {
                    events.emit(FileEvent::Cached);
                }
            }
            Err(e) => self.disable(format!("cannot commit the body: {e}")),
        }
    }

    /// The driver ends: commit a complete body, else keep what was written for next time.
    /// A body of unknown length whose end is known (it ended cleanly) counts as complete
    /// even when the stop came before the fetch's own end told the sink: the reader saw
    /// the end and dropped the session at once.
    pub(crate) fn finish(&mut self) {
        if let Some(size) = self.status.size() {
            self.length_known(size);
        }
        self.commit_if_complete();
        if let Some(partial) = &self.partial {
            if partial.is_committed() {
                return;
            }
            let _ = if self.unknown_len_written.is_some() {
                // It could never be told complete next time.
                partial.discard()
            } else {
                partial.checkpoint()
            };
        }
    }

    /// Turns caching off for this session.
    pub(crate) fn disable(&mut self, reason: String) {
        let Some(partial) = self.partial.take() else {
            return;
        };
        if self.unknown_len_written.take().is_some() {
            // Never resumed: what it wrote is of no use, give the disk back.
            let _ = partial.discard();
        }
        log::debug!("kithara-file: caching off for this session: {reason}");
        if let Some(events) = &self.events {
            events.emit(FileEvent::CacheDisabled { reason });
        }
    }
}
