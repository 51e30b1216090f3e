//! The user's handle: [`FileSource`] opens a [`FileSession`], which reads and seeks like
//! a local file while its driver thread downloads ahead.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use crossbeam_channel::{bounded, select, unbounded, Receiver, Sender, TryRecvError};
use url::Url;

use crate::cache::{AssetCache, AssetId, AssetLease, PartialFile};
use crate::driver::{
    self, Command, DriverChannels, DriverSpec, Fetch, Message, Shared, CHUNK_SIZE,
};
use crate::events::{DownloadState, EventSink, FileEvent, Progress};
use crate::options::validate_url;
use crate::range_policy::{resolve_seek, resolve_seek_bytes, SeekTargetError, Validators};
use crate::redact::redact;
use crate::{lock, FileError, FileSourceOptions};

/// Recently read bytes kept for short backward seeks (decoders re-read headers and
/// probe windows constantly).
const HISTORY_BYTES: usize = 256 * 1024;

/// A target this close past what the running fetch has sent is about to arrive: waiting
/// for it beats a new request (decoders probe a small file's end right after opening).
const NEAR_AHEAD: u64 = 128 * 1024;

/// How long a reader waits on a fetch the driver has not picked up before it cancels the
/// request in its way (a stalled body would otherwise hold the seek until the read timeout).
const STALL_CHECK: Duration = Duration::from_millis(100);

/// How long dropping a session waits for its driver thread to end.
const JOIN_DEADLINE: Duration = Duration::from_secs(2);

/// Opens remote files as [`FileSession`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileSource;

impl FileSource {
    /// Opens `url` for streaming.
    ///
    /// Starts the session's driver thread and returns once the first response's headers
    /// have arrived, so the length is known (when the server tells it) before the first
    /// read. Transient failures of that first request are retried like any other.
    ///
    /// # Errors
    ///
    /// - [`FileError::InvalidUrl`] for anything but an `http` or `https` URL with a host;
    /// - [`FileError::InvalidOptions`] for a bad option value;
    /// - [`FileError::HttpStatus`] when the server refuses (`404`, `403`, ...);
    /// - [`FileError::Network`] when the server cannot be reached within the retry budget;
    /// - [`FileError::Protocol`] for an answer that breaks the HTTP contract.
    pub fn open(url: Url, options: FileSourceOptions) -> Result<FileSession, FileError> {
        validate_url(&url)?;
        options.validate()?;
        let asset_id = asset_id_of(&url, &options);
        start_session(url, options, asset_id, None)
    }

    /// Opens `url` through an asset cache.
    ///
    /// - A complete body in the cache is served from disk (memory-mapped) with no
    ///   network request at all, so this works offline.
    /// - Otherwise the session streams from the network and writes what it downloads
    ///   into the cache; the body becomes visible only once complete and synced.
    ///   Bytes a stopped session left behind are reused: only the gaps are fetched,
    ///   after the server confirms the resource has not changed.
    ///
    /// A cache that fails (read-only, full, locked by another writer) only turns caching
    /// off for this session; playback goes on from the network.
    ///
    /// # Errors
    ///
    /// As [`FileSource::open`]; never a cache error.
    pub fn open_with_cache(
        url: Url,
        options: FileSourceOptions,
        cache: impl Into<AssetCache>,
    ) -> Result<FileSession, FileError> {
        validate_url(&url)?;
        options.validate()?;
        let cache: AssetCache = cache.into();
        let asset_id = asset_id_of(&url, &options);
        let Ok(lease) = cache.lease(&asset_id) else {
            return start_session(url, options, asset_id, None);
        };
        if let Some(session) = open_complete(&lease, &url, &options, &asset_id) {
            return Ok(session);
        }
        let partial = match lease.begin_write() {
            Ok(Some(partial)) => partial,
            _ => return start_session(url, options, asset_id, Some(CacheUse::reader(lease))),
        };
        if partial.is_complete() {
            // Everything was downloaded but never committed (a crash at the very end).
            let committed = partial.commit().is_ok();
            drop(partial);
            if committed {
                if let Some(session) = open_complete(&lease, &url, &options, &asset_id) {
                    return Ok(session);
                }
            }
            return start_session(url, options, asset_id, Some(CacheUse::reader(lease)));
        }
        let cache_use = CacheUse {
            lease,
            partial: Some(partial),
        };
        start_session(url, options, asset_id, Some(cache_use))
    }
}

fn asset_id_of(url: &Url, options: &FileSourceOptions) -> AssetId {
    match &options.cache_key {
        Some(key) => AssetId::from_key(key),
        None => AssetId::from_url(url),
    }
}

/// A session's hold on its cache entry.
struct CacheUse {
    /// Pins the asset against eviction for the session's life.
    lease: AssetLease,
    /// The partial file this session writes (and reads back), when it is the writer.
    partial: Option<Arc<PartialFile>>,
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
fn open_complete(
    lease: &AssetLease,
    url: &Url,
    options: &FileSourceOptions,
    asset_id: &AssetId,
) -> Option<FileSession> {
    let (body, _meta) = lease.complete_body()?;
    let len = body.len() as u64;
    let (command_tx, _) = unbounded();
    let (_, done_rx) = bounded::<()>(0);
    let (stop_tx, stop_rx) = bounded::<()>(0);
    let shared = Arc::new(Shared::new(Some(len), options.range_seek));
    shared.state.set(DownloadState::Complete);
    if let Some(events) = &options.events {
        events.emit(FileEvent::Opened {
            length: Some(len),
            content_type: None,
            from_cache: true,
        });
    }
    let mut reader = Reader::new(None, None, None);
    reader.current = Some(Chunk {
        offset: 0,
        bytes: body,
    });
    let inner = Inner {
        reader: Mutex::new(reader),
        shared,
        commands: command_tx,
        stop_tx: Mutex::new(Some(stop_tx)),
        stop_rx,
        driver: Mutex::new(None),
        driver_done: done_rx,
        asset_id: asset_id.clone(),
        position: AtomicU64::new(0),
        url: redact(url),
        content_type: Mutex::new(None),
        cache: Some(CacheUse::reader(lease.clone())),
        served_from_cache: true,
        events: options.events.clone(),
    };
    Some(FileSession {
        inner: Arc::new(inner),
    })
}

fn start_session(
    url: Url,
    options: FileSourceOptions,
    asset_id: AssetId,
    cache: Option<CacheUse>,
) -> Result<FileSession, FileError> {
    let partial = cache.as_ref().and_then(|c| c.partial.clone());
    // Bytes a previous run left are pinned to its validators; fetch the first gap only.
    let pinned = partial
        .as_ref()
        .and_then(|p| p.meta())
        .map(|meta| Validators {
            etag: meta.etag,
            last_modified: meta.last_modified,
            size: Some(meta.len),
        });
    let first = match &partial {
        Some(p) if pinned.is_some() => {
            let start = p.covered_end(0).unwrap_or(0);
            Fetch {
                epoch: 0,
                start,
                end: p.next_covered_start(start),
            }
        }
        _ => Fetch {
            epoch: 0,
            start: 0,
            end: None,
        },
    };
    let capacity = driver::channel_capacity(options.look_ahead);
    let (data_tx, data_rx) = bounded(capacity);
    let (command_tx, command_rx) = unbounded();
    let (opened_tx, opened_rx) = bounded(1);
    let (done_tx, done_rx) = bounded::<()>(0);
    let (stop_tx, stop_rx) = bounded::<()>(0);
    let shared = Arc::new(Shared::new(
        pinned.as_ref().and_then(|p| p.size),
        options.range_seek,
    ));
    let events = options.events.clone();
    let url_text = redact(&url);
    let spec = DriverSpec {
        url,
        options,
        first,
        pinned,
        partial: partial.clone(),
    };
    let channels = DriverChannels {
        commands: command_rx,
        data: data_tx,
        opened: opened_tx,
        done: done_tx,
    };
    let (handoff_tx, handoff_rx) = bounded(1);
    let thread = driver::spawn(handoff_rx)
        .map_err(|e| FileError::Network(format!("cannot start the driver thread: {e}")))?;
    let opening = driver::open(spec, Arc::clone(&shared), channels);
    // The first request ran on this thread: its outcome is waiting.
    let opened = opened_rx.try_recv().unwrap_or(Err(FileError::Network(
        "the first request got no answer".into(),
    )));
    let opened = match opened {
        Ok(opened) if handoff_tx.send(opening).is_ok() => opened,
        failed => {
            // The thread sees the handoff close and ends at once: no thread left behind.
            drop(handoff_tx);
            let _ = thread.join();
            return Err(failed.err().unwrap_or(FileError::Stopped));
        }
    };
    let inner = Arc::new(Inner {
        reader: Mutex::new(Reader::new(Some(data_rx), Some(opened.first), partial)),
        shared,
        commands: command_tx,
        stop_tx: Mutex::new(Some(stop_tx)),
        stop_rx,
        driver: Mutex::new(Some(thread)),
        driver_done: done_rx,
        asset_id,
        position: AtomicU64::new(0),
        url: url_text,
        content_type: Mutex::new(opened.content_type),
        cache,
        served_from_cache: false,
        events,
    });
    Ok(FileSession { inner })
}

/// A remote file opened for streaming: `Read + Seek` like a local file, with a
/// background thread downloading ahead of the reader.
///
/// `&FileSession` implements `Read` and `Seek` too (like `&std::fs::File`), so one thread
/// can read while another calls [`stop`](FileSession::stop) or asks for the
/// [`position`](FileSession::position). Reads from several threads are serialized.
///
/// # Reading
///
/// `read` blocks until bytes arrive. `Ok(0)` means the end of the file and nothing else:
/// a network failure that retries could not mend is an error (kind `ConnectionAborted`,
/// wrapping [`FileError::Network`]), never a short file.
///
/// # Seeking
///
/// `seek` never blocks on the network. A seek into bytes the session holds (downloaded
/// ahead, or among the last 256 KiB read), or at most 128 KiB past what the running
/// request has delivered, costs no request; any other seek starts a `Range` request for
/// the new position and bytes of the old request never reach the reader afterwards.
/// Seeking to the length is allowed and the next read returns 0.
///
/// # Dropping
///
/// Dropping the session and every [`FileStream`] of it stops the driver, cancels any
/// request in flight, and joins the thread.
pub struct FileSession {
    inner: Arc<Inner>,
}

struct Inner {
    reader: Mutex<Reader>,
    shared: Arc<Shared>,
    commands: Sender<Command>,
    /// Dropped by `stop()`, which wakes every reader blocked in `select!`.
    stop_tx: Mutex<Option<Sender<()>>>,
    stop_rx: Receiver<()>,
    driver: Mutex<Option<JoinHandle<()>>>,
    driver_done: Receiver<()>,
    asset_id: AssetId,
    /// Mirrors the reader's position, readable while a read blocks.
    position: AtomicU64,
    url: String,
    content_type: Mutex<Option<String>>,
    cache: Option<CacheUse>,
    served_from_cache: bool,
    events: Option<EventSink>,
}

impl Inner {
    fn stop(&self) {
        // The command first: a cancelled driver waits for it.
        let _ = self.commands.send(Command::Stop);
        self.shared.stop();
        lock(&self.stop_tx).take();
    }

    /// Whether a seek may start a Range request (the options allow it and the server
    /// honours it: `Shared` starts from the option and only ever turns it off).
    fn ranges(&self) -> bool {
        self.shared.ranges()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop();
        if let Some(thread) = lock(&self.driver).take() {
            // The driver drops `done` as it exits; waiting on it bounds the join even if
            // the thread were stuck somewhere the cancellation cannot reach.
            if let Err(crossbeam_channel::RecvTimeoutError::Disconnected) =
                self.driver_done.recv_timeout(JOIN_DEADLINE)
            {
                let _ = thread.join();
            }
        }
    }
}

/// A piece of the file: `bytes` start at `offset`.
#[derive(Clone)]
struct Chunk {
    offset: u64,
    bytes: Bytes,
}

impl Chunk {
    fn end(&self) -> u64 {
        self.offset.saturating_add(self.bytes.len() as u64)
    }

    fn covers(&self, position: u64) -> bool {
        self.offset <= position && position < self.end()
    }
}

/// The fetch whose chunks the reader accepts.
struct Live {
    epoch: u64,
    /// Offset of the next chunk the channel will deliver.
    next: u64,
    end: Option<u64>,
    done: bool,
}

/// How a reader waits for the channel.
enum Wait<'a> {
    Block,
    Poll(&'a Waker),
}

/// What the reader found at its position.
enum Next {
    Bytes(Bytes),
    End,
    Pending,
}

struct Reader {
    position: u64,
    epoch: u64,
    live: Option<Live>,
    current: Option<Chunk>,
    history: VecDeque<Chunk>,
    history_bytes: usize,
    /// An error every later read repeats (the resource changed).
    sticky: Option<FileError>,
    data: Option<Receiver<Message>>,
    /// Bytes already in the cache's partial file, read back from disk.
    partial: Option<Arc<PartialFile>>,
}

impl Reader {
    fn new(
        data: Option<Receiver<Message>>,
        first: Option<Fetch>,
        partial: Option<Arc<PartialFile>>,
    ) -> Self {
        let mut reader = Reader {
            position: 0,
            epoch: 0,
            live: None,
            current: None,
            history: VecDeque::new(),
            history_bytes: 0,
            sticky: None,
            data,
            partial,
        };
        if let Some(first) = first {
            reader.begin(first);
        }
        reader
    }

    /// Accepts the chunks of `fetch` from now on.
    fn begin(&mut self, fetch: Fetch) {
        self.epoch = fetch.epoch;
        self.live = Some(Live {
            epoch: fetch.epoch,
            next: fetch.start,
            end: fetch.end,
            done: false,
        });
    }

    /// Whether the bytes at `position` are in memory or in the partial cache file.
    fn holds(&self, position: u64) -> bool {
        self.current.as_ref().is_some_and(|c| c.covers(position))
            || self.history.iter().any(|c| c.covers(position))
            || self.on_disk(position).is_some()
    }

    /// The end of the cached run of bytes that contains `position`, if any.
    fn on_disk(&self, position: u64) -> Option<u64> {
        self.partial.as_ref()?.covered_end(position)
    }

    /// Reads the cached bytes at the position into `current`; `false` if there are none
    /// (or the disk failed, which turns disk reads off for this session).
    fn load_from_disk(&mut self) -> bool {
        let (Some(partial), Some(end)) = (&self.partial, self.on_disk(self.position)) else {
            return false;
        };
        let len = (end - self.position).min(CHUNK_SIZE as u64) as usize;
        let mut buffer = BytesMut::zeroed(len);
        match partial.read_at(self.position, &mut buffer) {
            Ok(n) if n > 0 => {
                buffer.truncate(n);
                self.current = Some(Chunk {
                    offset: self.position,
                    bytes: buffer.freeze(),
                });
                true
            }
            _ => {
                self.partial = None;
                false
            }
        }
    }

    /// Whether the live fetch will deliver `position` without a new request: it is next,
    /// already sent into the channel or about to be (`NEAR_AHEAD`), or (without ranges)
    /// anywhere ahead.
    fn live_reaches(&self, inner: &Inner, position: u64) -> bool {
        let Some(live) = &self.live else {
            return false;
        };
        if live.done || position < live.next || live.end.is_some_and(|end| position >= end) {
            return false;
        }
        if position == live.next || !inner.ranges() {
            return true;
        }
        let front = inner.shared.front();
        front.epoch == live.epoch && position <= front.sent_to.saturating_add(NEAR_AHEAD)
    }

    fn remember(&mut self, chunk: Chunk) {
        // What lies ahead of the reader in the newest chunk is not read yet: it does not
        // count towards the window of recently read bytes.
        let unread = chunk.end().saturating_sub(chunk.offset.max(self.position)) as usize;
        self.history_bytes += chunk.bytes.len();
        self.history.push_back(chunk);
        while let Some(oldest) = self.history.front() {
            if self.history_bytes - oldest.bytes.len() < HISTORY_BYTES + unread {
                break;
            }
            self.history_bytes -= oldest.bytes.len();
            self.history.pop_front();
        }
    }

    /// Starts a new fetch at the reader's position, up to the next cached bytes; chunks
    /// of older fetches are dropped.
    fn request(&mut self, inner: &Inner) -> Result<(), FileError> {
        let fetch = Fetch {
            epoch: self.epoch + 1,
            start: self.position,
            end: self
                .partial
                .as_ref()
                .and_then(|p| p.next_covered_start(self.position)),
        };
        inner
            .commands
            .send(Command::Fetch(fetch))
            .map_err(|_| FileError::Stopped)?;
        // A driver silent for a while is stuck in a stalled body: cancel it now rather
        // than make this fetch (a stream cannot run the blocking reader's check) wait out
        // the read timeout.
        // (A full channel is backpressure, not a stall.)
        let front = inner.shared.front();
        let backpressure = self.data.as_ref().is_some_and(Receiver::is_full);
        if !backpressure && front.moved_at.is_some_and(|at| at.elapsed() >= STALL_CHECK) {
            inner.shared.cancel_below(fetch.epoch);
        }
        self.begin(fetch);
        Ok(())
    }

    /// The bytes at the reader's position (not consumed), the end of the file, or
    /// (with `Wait::Poll`) nothing yet.
    fn next(&mut self, inner: &Inner, wait: &Wait<'_>) -> Result<Next, FileError> {
        loop {
            if let Some(error) = &self.sticky {
                return Err(error.clone());
            }
            if inner.shared.is_stopped() {
                return Err(FileError::Stopped);
            }
            let position = self.position;
            if let Some(chunk) = &self.current {
                if chunk.covers(position) {
                    let from = (position - chunk.offset) as usize;
                    return Ok(Next::Bytes(chunk.bytes.slice(from..)));
                }
            }
            if inner.shared.size().is_some_and(|size| position >= size) {
                return Ok(Next::End);
            }
            if let Some(chunk) = self.history.iter().find(|c| c.covers(position)) {
                self.current = Some(chunk.clone());
                continue;
            }
            // The live fetch first, so the reader keeps draining it; then the disk.
            if !self.live_reaches(inner, position) {
                if !self.load_from_disk() {
                    self.request(inner)?;
                }
                continue;
            }
            let message = match self.receive(inner, wait)? {
                Some(message) => message,
                None => return Ok(Next::Pending),
            };
            self.accept(message)?;
        }
    }

    /// Takes one message for the live fetch, dropping those of older fetches.
    fn accept(&mut self, message: Message) -> Result<(), FileError> {
        let Some(live) = self.live.as_mut() else {
            return Ok(());
        };
        match message {
            Message::Data {
                epoch,
                offset,
                bytes,
            } if epoch == live.epoch => {
                if offset != live.next {
                    let error = FileError::Protocol(format!(
                        "internal: a chunk for byte {offset} arrived where byte {} was due",
                        live.next
                    ));
                    self.sticky = Some(error.clone());
                    return Err(error);
                }
                let chunk = Chunk { offset, bytes };
                live.next = chunk.end();
                if chunk.end() > self.position {
                    self.current = Some(chunk.clone());
                    self.remember(chunk);
                }
                Ok(())
            }
            Message::End { epoch, .. } if epoch == live.epoch => {
                live.done = true;
                Ok(())
            }
            Message::Failed { epoch, error } if epoch == live.epoch => {
                self.live = None;
                if matches!(error, FileError::ResourceChanged(_)) {
                    self.sticky = Some(error.clone());
                }
                Err(error)
            }
            _ => Ok(()),
        }
    }

    fn receive(&mut self, inner: &Inner, wait: &Wait<'_>) -> Result<Option<Message>, FileError> {
        let Some(data) = &self.data else {
            return Err(FileError::Stopped);
        };
        let gone = || {
            if inner.shared.is_stopped() {
                FileError::Stopped
            } else {
                FileError::Network("the downloader thread ended".into())
            }
        };
        match wait {
            Wait::Poll(waker) => match data.try_recv() {
                Ok(message) => Ok(Some(message)),
                Err(TryRecvError::Disconnected) => Err(gone()),
                Err(TryRecvError::Empty) => {
                    inner.shared.register_waker(waker);
                    // The driver may have sent between the first look and the waker.
                    match data.try_recv() {
                        Ok(message) => Ok(Some(message)),
                        Err(TryRecvError::Disconnected) => Err(gone()),
                        Err(TryRecvError::Empty) => Ok(None),
                    }
                }
            },
            Wait::Block => loop {
                // The common case, without the cost of a select.
                if let Ok(message) = data.try_recv() {
                    return Ok(Some(message));
                }
                inner.shared.reader_waiting.store(true, Ordering::Relaxed);
                let _waiting = WaitingFlag(&inner.shared);
                select! {
                    recv(data) -> message => return message.map(Some).map_err(|_| gone()),
                    recv(inner.stop_rx) -> _ => return Err(FileError::Stopped),
                    default(STALL_CHECK) => {
                        if inner.shared.front().epoch < self.epoch {
                            inner.shared.cancel_below(self.epoch);
                        }
                    }
                }
            },
        }
    }

    fn advance(&mut self, inner: &Inner, by: usize) {
        self.position = self.position.saturating_add(by as u64);
        inner.position.store(self.position, Ordering::Release);
    }

    fn read(&mut self, inner: &Inner, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.next(inner, &Wait::Block)? {
            Next::Bytes(bytes) => {
                let n = bytes.len().min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                self.advance(inner, n);
                Ok(n)
            }
            Next::End | Next::Pending => Ok(0),
        }
    }

    /// Moves to `target`, which the caller validated against the known size.
    fn seek_to(&mut self, inner: &Inner, target: u64) -> Result<u64, FileError> {
        if target == self.position {
            return Ok(target);
        }
        if let Some(error) = &self.sticky {
            return Err(error.clone());
        }
        let held = self.holds(target);
        if !inner.ranges() && target < self.position && !held {
            return Err(FileError::SeekNotSupported);
        }
        let from = self.position;
        self.position = target;
        inner.position.store(target, Ordering::Release);
        if let Some(events) = &inner.events {
            events.emit(FileEvent::Seek { from, to: target });
        }
        let at_end = inner.shared.size().is_some_and(|size| target >= size);
        if !held && !at_end && !self.live_reaches(inner, target) && inner.ranges() {
            // Start the request now: the bytes are on their way before the next read.
            self.request(inner)?;
        }
        Ok(target)
    }
}

impl FileSession {
    /// The stable id of this session's asset, derived from the URL (or the
    /// [`with_cache_key`](FileSourceOptions::with_cache_key) key).
    pub fn asset_id(&self) -> &AssetId {
        &self.inner.asset_id
    }

    /// The length of the file, when the server told it (or the download reached the end).
    pub fn byte_len(&self) -> Option<u64> {
        self.inner.shared.size()
    }

    /// The position of the next byte `read` returns.
    pub fn position(&self) -> u64 {
        self.inner.position.load(Ordering::Acquire)
    }

    /// Whether any position can be reached by seeking: true only when the server honours
    /// Range requests, the options allow them, and the length is known.
    pub fn is_seekable(&self) -> bool {
        self.inner.ranges() && self.byte_len().is_some()
    }

    /// The `Content-Type` of the first response, if it had one; `None` for a session
    /// served from the cache.
    ///
    /// A `text/html` label on a `206 Partial Content` answer is not trusted (busybox httpd
    /// labels every 206 so, while a plain GET of the same file says `audio/mpeg`): then
    /// the type is `None`. A `200` labelled `text/html` is reported as it is (and never
    /// cached: it may be a captive portal's login page).
    pub fn content_type(&self) -> Option<String> {
        lock(&self.inner.content_type).clone()
    }

    /// Moves the read position to `position` bytes from the start. A negative position
    /// clamps to 0. Returns the new position.
    ///
    /// Seeking to the same place twice sends nothing. With an unknown length any
    /// position is accepted and reads past the real end return 0.
    ///
    /// # Errors
    ///
    /// - [`FileError::InvalidSeekPosition`] past the known length; the position does not
    ///   change and nothing is sent;
    /// - [`FileError::SeekNotSupported`] for a backward seek outside the held bytes when
    ///   Range requests are off or unsupported by the server;
    /// - [`FileError::Stopped`] after [`stop`](FileSession::stop).
    pub fn seek_bytes(&self, position: i64) -> Result<u64, FileError> {
        let mut reader = lock(&self.inner.reader);
        let target = resolve_seek_bytes(position, self.byte_len())?;
        reader.seek_to(&self.inner, target)
    }

    /// Stops the session: a blocked `read` returns promptly with an error wrapping
    /// [`FileError::Stopped`], streams end, and the request in flight is cancelled.
    /// The driver thread is joined when the last handle is dropped.
    pub fn stop(&self) {
        self.inner.stop();
    }

    /// An async [`Stream`](futures_core::Stream) of the bytes from the current position,
    /// sharing this session's cursor and channel.
    pub fn stream(&self) -> FileStream {
        FileStream {
            inner: Arc::clone(&self.inner),
            finished: false,
        }
    }

    /// The byte ranges available without the network: the cache's bytes, what the
    /// session holds in memory, and what the driver has downloaded ahead. Sorted and
    /// merged, for a player's seek bar.
    pub fn buffered_ranges(&self) -> Vec<Range<u64>> {
        let reader = lock(&self.inner.reader);
        let mut ranges: Vec<Range<u64>> = Vec::new();
        if let Some(partial) = &reader.partial {
            ranges.extend(partial.covered());
        }
        ranges.extend(reader.current.iter().map(|c| c.offset..c.end()));
        ranges.extend(reader.history.iter().map(|c| c.offset..c.end()));
        if let Some(live) = &reader.live {
            let front = self.inner.shared.front();
            if front.epoch == live.epoch && front.sent_to > live.next {
                ranges.push(live.next..front.sent_to);
            }
        }
        drop(reader);
        merge_ranges(ranges)
    }

    /// Whether the complete body of this asset is in the cache: served from it, or
    /// committed since (by this session, another session, or another process).
    /// Always `false` for a session opened without a cache.
    pub fn is_cached(&self) -> bool {
        if self.inner.served_from_cache {
            return true;
        }
        self.inner.cache.as_ref().is_some_and(|cache| {
            cache.partial.as_ref().is_some_and(|p| p.is_committed())
                || cache.lease.has_complete_body()
        })
    }

    /// A snapshot for a progress bar: bytes downloaded, the length if known, the read
    /// position, and what the session is doing.
    pub fn progress(&self) -> Progress {
        let mut state = self.inner.shared.state.get();
        if self.inner.shared.reader_waiting.load(Ordering::Relaxed)
            && matches!(state, DownloadState::Streaming | DownloadState::Connecting)
        {
            state = DownloadState::Buffering;
        }
        Progress {
            downloaded: self.inner.shared.bytes_fetched.load(Ordering::Relaxed),
            total: self.byte_len(),
            position: self.position(),
            state,
        }
    }

    /// How many times the driver backed off and retried after a transient failure.
    pub fn retry_count(&self) -> u64 {
        self.inner.shared.retries.load(Ordering::Relaxed)
    }

    /// How many HTTP requests the session has sent (retries and redirects included).
    pub fn request_count(&self) -> u64 {
        self.inner.shared.requests.load(Ordering::Relaxed)
    }

    /// Body bytes received from the network (including bytes skipped or discarded).
    pub fn bytes_fetched(&self) -> u64 {
        self.inner.shared.bytes_fetched.load(Ordering::Relaxed)
    }

    fn read_impl(&self, buf: &mut [u8]) -> io::Result<usize> {
        lock(&self.inner.reader).read(&self.inner, buf)
    }

    fn seek_impl(&self, from: SeekFrom) -> io::Result<u64> {
        let mut reader = lock(&self.inner.reader);
        if from == SeekFrom::Current(0) {
            return Ok(reader.position);
        }
        match resolve_seek(from, reader.position, self.byte_len()) {
            Ok(target) => Ok(reader.seek_to(&self.inner, target)?),
            Err(SeekTargetError::BeforeStart) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "invalid seek to a negative position",
            )),
            Err(SeekTargetError::File(error)) => Err(error.into()),
        }
    }
}

/// Clears `reader_waiting` however the wait ends.
struct WaitingFlag<'a>(&'a Shared);

impl Drop for WaitingFlag<'_> {
    fn drop(&mut self) {
        self.0.reader_waiting.store(false, Ordering::Relaxed);
    }
}

fn merge_ranges(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.retain(|r| r.start < r.end);
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}

impl Read for FileSession {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_impl(buf)
    }
}

impl Read for &FileSession {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_impl(buf)
    }
}

impl Seek for FileSession {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.seek_impl(pos)
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.position())
    }
}

impl Seek for &FileSession {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.seek_impl(pos)
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.position())
    }
}

impl fmt::Debug for FileSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSession")
            .field("url", &self.inner.url)
            .field("asset_id", &self.inner.asset_id.as_str())
            .field("byte_len", &self.byte_len())
            .field("position", &self.position())
            .field("seekable", &self.is_seekable())
            .finish()
    }
}

/// The bytes of a [`FileSession`] as a [`futures_core::Stream`], from the session's
/// position on. It shares the session's cursor: each item advances it.
///
/// Items are `Ok(bytes)` until the end of the file, then the stream ends. After an
/// error item, or once the session is stopped, the stream ends. It needs no particular
/// async runtime: the driver thread wakes the task when bytes arrive.
///
/// A session wakes one task: poll one stream of a session at a time (several streams
/// polled by different tasks would share the cursor anyway).
pub struct FileStream {
    inner: Arc<Inner>,
    finished: bool,
}

impl futures_core::Stream for FileStream {
    type Item = Result<Bytes, FileError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let inner = Arc::clone(&self.inner);
        let mut reader = lock(&inner.reader);
        let item = match reader.next(&inner, &Wait::Poll(cx.waker())) {
            Ok(Next::Pending) => return Poll::Pending,
            Ok(Next::Bytes(bytes)) => {
                reader.advance(&inner, bytes.len());
                Some(Ok(bytes))
            }
            Ok(Next::End) | Err(FileError::Stopped) => None,
            Err(error) => Some(Err(error)),
        };
        drop(reader);
        if !matches!(item, Some(Ok(_))) {
            self.finished = true;
        }
        Poll::Ready(item)
    }
}

impl futures_core::FusedStream for FileStream {
    fn is_terminated(&self) -> bool {
        self.finished
    }
}

impl fmt::Debug for FileStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStream")
            .field("url", &self.inner.url)
            .field("finished", &self.finished)
            .finish()
    }
}
