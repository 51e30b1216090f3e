#![allow(dead_code)]
//! Test-support HTTP/1.1 file server for the integration tests.
//!
//! A small HTTP/1.1 server built on `std::net`. Each connection gets its own thread,
//! and each connection's requests are answered in order with keep-alive. It serves
//! byte-exact files with single-range support and can inject faults on purpose.
//!
//! Why not tiny_http: in tiny_http 0.12, dropping the writer from
//! `Request::into_writer()` does not close the TCP connection. The connection's
//! write half stays alive inside tiny_http's connection object, which goes on to
//! wait for the next request. A client that got a truncated body would then hang
//! instead of seeing EOF. This server owns every socket, so a "close" is an explicit
//! `shutdown(Both)` and the peer sees EOF at once.

pub mod model;

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The URL of `path` on `server`, parsed.
pub fn url(server: &TestServer, path: &str) -> kithara_file::Url {
    server.url(path).parse().unwrap()
}

/// The crate's error inside an `io::Error` a read or seek returned.
pub fn file_error(err: &io::Error) -> &kithara_file::FileError {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<kithara_file::FileError>())
        .unwrap_or_else(|| panic!("not a FileError: {err:?}"))
}

// ---------------------------------------------------------------------------
// Deterministic test data
// ---------------------------------------------------------------------------

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const PATTERN_BLOCK: usize = 4096;

/// One 4 KiB block of the pattern: xorshift64 words from a splitmix64 seed for
/// `(seed, block)`. This shape is quick even in unoptimized test builds: xorshift
/// uses only shifts and xors, and there is one splitmix per block.
fn pattern_block(base: u64, block: u64, buf: &mut [u8; PATTERN_BLOCK]) {
    let mut x = mix64(base.wrapping_add(block.wrapping_add(1).wrapping_mul(GOLDEN_GAMMA))) | 1;
    let mut i = 0;
    while i < PATTERN_BLOCK {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        buf[i] = b[0];
        buf[i + 1] = b[1];
        buf[i + 2] = b[2];
        buf[i + 3] = b[3];
        buf[i + 4] = b[4];
        buf[i + 5] = b[5];
        buf[i + 6] = b[6];
        buf[i + 7] = b[7];
        i += 8;
    }
}

/// Deterministic pseudo-random bytes. Each 4 KiB block is seeded from
/// `(seed, block index)`, so `pattern(n, s)[..m] == pattern(m, s)`, and [`pattern_at`]
/// can produce any window without generating the bytes before it.
/// 256 MiB takes under a second in a debug build.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    pattern_at(0, len, seed)
}

/// `pattern(offset + len, seed)[offset..]`, without generating the prefix.
pub fn pattern_at(offset: u64, len: usize, seed: u64) -> Vec<u8> {
    let base = mix64(seed ^ 0x6B69_7468_6172_6131);
    let mut out = Vec::with_capacity(len);
    let mut block = offset / PATTERN_BLOCK as u64;
    let mut skip = (offset % PATTERN_BLOCK as u64) as usize;
    let mut buf = [0u8; PATTERN_BLOCK];
    while out.len() < len {
        pattern_block(base, block, &mut buf);
        let n = (len - out.len()).min(PATTERN_BLOCK - skip);
        out.extend_from_slice(&buf[skip..skip + n]);
        skip = 0;
        block += 1;
    }
    out
}

// ---------------------------------------------------------------------------
// Public configuration types
// ---------------------------------------------------------------------------

/// One request as the server received it. It is recorded before any response byte is sent.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// The request target exactly as sent (it includes any query string).
    pub path: String,
    /// Every header in arrival order, with names as the client spelled them.
    pub headers: Vec<(String, String)>,
    /// The raw `Range` header value, if one was sent.
    pub range: Option<String>,
    /// Id of the TCP connection that carried the request. Ids start at 1 and go up
    /// in accept order, so equal ids mean the connection was reused (keep-alive).
    pub connection: u64,
}

impl RecordedRequest {
    /// Value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How one file is served. `Default` is all off. [`FileOptions::new`] is the normal setup.
#[derive(Clone, Debug, Default)]
pub struct FileOptions {
    /// Honour `Range` (and `If-Range`) and advertise `Accept-Ranges: bytes`.
    pub ranges: bool,
    /// The ETag value exactly as sent (`"x"` or `W/"x"`). `None` = no ETag header.
    /// `Some("")` (what [`FileOptions::new`] gives) = keep the file's own ETag
    /// (`"v<gen>-<len>"` by default).
    pub etag: Option<String>,
    /// Send `Last-Modified`: a fixed date that moves forward one hour with each content replacement.
    pub last_modified: bool,
    /// `false` = chunked transfer encoding (with a proper terminator) and no Content-Length.
    pub content_length: bool,
    /// `None` = `application/octet-stream`.
    pub content_type: Option<String>,
    /// The `Content-Type` of 206 answers only (busybox httpd labels every 206
    /// `text/html`). `None` = the same as `content_type`.
    pub partial_content_type: Option<String>,
}

impl FileOptions {
    /// Ranges on, ETag on, Last-Modified on, Content-Length on. `etag` is `Some("")`,
    /// which means "the file's own ETag", so
    /// `FileOptions { content_length: false, ..FileOptions::new() }` changes only the framing.
    pub fn new() -> FileOptions {
        FileOptions {
            ranges: true,
            etag: Some(String::new()),
            last_modified: true,
            content_length: true,
            content_type: None,
            partial_content_type: None,
        }
    }
}

/// Misbehaviour for one response. See [`TestServer::push_faults`].
#[derive(Clone, Debug)]
pub enum Fault {
    /// Serve normally.
    None,
    /// Send the correct headers for the full requested response, then only N body bytes,
    /// then close the TCP connection.
    CloseAfter(u64),
    /// Send the headers and N body bytes, then nothing for D (or until the server is dropped), then close.
    StallAfter(u64, Duration),
    /// Send nothing for D (or until the server is dropped), then close.
    StallHeaders(Duration),
    /// Send the headers (with the full Content-Length) and N body bytes, then the rest
    /// one byte per D. Every pause is logged in [`TestServer::went_quiet`].
    TrickleAfter(u64, Duration),
    /// A plain response with this status (Content-Length correct, keep-alive),
    /// an optional `Retry-After`, and this body (`text/html`).
    Status {
        code: u16,
        retry_after: Option<String>,
        body: Vec<u8>,
    },
    /// Answer 200 with the full body even if a Range was sent.
    IgnoreRange,
    /// The normal status and headers, but `Transfer-Encoding: chunked` replaces
    /// Content-Length. Sends the first N body bytes as chunks, then closes without the final `0` chunk.
    ChunkedNoTerminator(u64),
    /// Declares `Content-Length: N` and, on a 206, `Content-Range: bytes A-(A+N-1)/LEN`.
    /// Sends the real bytes of the response from its start, at most N of them, then
    /// closes. N larger than the real response means the client sees the body end early.
    LieContentLength(u64),
    /// 206 whose start is moved by delta: the start becomes `A+delta` (clamped into the file),
    /// the end stays the requested end (or keeps the requested length if the start
    /// passes it), and the bytes really come from the moved start. With no valid
    /// Range the request counts as `bytes=0-`.
    WrongContentRangeStart(i64),
    /// 206 with this literal Content-Range value. The body is the requested range (or the whole file).
    MalformedContentRange(String),
    /// Redirect with `Location` (sent as given), an empty body, and keep-alive.
    Redirect { status: u16, location: String },
    /// Replace the file from this request on (this request already gets the new
    /// content), then serve normally. `etag: None` makes a fresh `"v<gen>-<len>"`
    /// (unless ETags are switched off for the file).
    ChangeContent { body: Vec<u8>, etag: Option<String> },
    /// 416 with `Content-Range: bytes */<len>`.
    Respond416,
    /// Exactly this status, these headers and this body (plus `Content-Length`), whatever
    /// was asked: for servers that bend HTTP in ways the other faults do not cover.
    Raw {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
}

// ---------------------------------------------------------------------------
// Server state
// ---------------------------------------------------------------------------

/// Base for `Last-Modified`: Wed, 21 Oct 2015 07:28:00 GMT.
const LAST_MODIFIED_BASE: u64 = 1_445_412_480;
/// How long `Drop` waits for server threads before it detaches them.
const DROP_JOIN_BUDGET: Duration = Duration::from_millis(900);
const WRITE_CHUNK: usize = 64 * 1024;
const CHUNKED_CHUNK: usize = 16 * 1024;
const MAX_HEAD_BYTES: u64 = 64 * 1024;

#[derive(Clone)]
struct FileEntry {
    body: Arc<Vec<u8>>,
    opts: FileOptions,
    generation: u64,
}

impl FileEntry {
    fn last_modified(&self) -> Option<String> {
        self.opts
            .last_modified
            .then(|| http_date(LAST_MODIFIED_BASE + (self.generation.saturating_sub(1)) * 3600))
    }
}

#[derive(Default)]
struct FaultSlot {
    queue: VecDeque<Fault>,
    default: Option<Fault>,
}

#[derive(Default)]
struct State {
    files: HashMap<String, FileEntry>,
    faults: HashMap<String, FaultSlot>,
    requests: Vec<RecordedRequest>,
    counts: HashMap<String, usize>,
    served: HashMap<String, Arc<AtomicU64>>,
}

impl State {
    fn served_counter(&mut self, path: &str) -> Arc<AtomicU64> {
        self.served
            .entry(path.to_string())
            .or_insert_with(|| Arc::new(AtomicU64::new(0)))
            .clone()
    }

    fn replace(&mut self, path: &str, body: Vec<u8>, etag: Option<&str>) {
        let len = body.len();
        match self.files.get_mut(path) {
            Some(entry) => {
                entry.generation += 1;
                entry.body = Arc::new(body);
                match etag {
                    Some(e) => entry.opts.etag = Some(e.to_string()),
                    None => {
                        if entry.opts.etag.is_some() {
                            entry.opts.etag = Some(format!("\"v{}-{}\"", entry.generation, len));
                        }
                    }
                }
            }
            None => {
                let mut opts = FileOptions::new();
                opts.etag = Some(match etag {
                    Some(e) => e.to_string(),
                    None => format!("\"v1-{len}\""),
                });
                self.files.insert(
                    path.to_string(),
                    FileEntry {
                        body: Arc::new(body),
                        opts,
                        generation: 1,
                    },
                );
            }
        }
    }
}

#[derive(Default)]
struct Conns {
    next_id: u64,
    live: HashMap<u64, TcpStream>,
    threads: Vec<JoinHandle<()>>,
}

struct Inner {
    addr: SocketAddr,
    state: Mutex<State>,
    stopping: AtomicBool,
    stop_flag: Mutex<bool>,
    stop_cv: Condvar,
    conns: Mutex<Conns>,
    accepted: AtomicUsize,
    /// When the server went quiet on a response: each stall, trickle pause and
    /// unannounced close began.
    stalls: Mutex<Vec<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking handler thread must not take the whole test server down with it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    /// Sleeps for `d`, or less if the server is being dropped.
    fn stall(&self, d: Duration) {
        lock(&self.stalls).push(Instant::now());
        let deadline = Instant::now().checked_add(d);
        let mut stopped = lock(&self.stop_flag);
        while !*stopped {
            match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    stopped = self
                        .stop_cv
                        .wait_timeout(stopped, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                None => {
                    stopped = self
                        .stop_cv
                        .wait(stopped)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// TestServer
// ---------------------------------------------------------------------------

/// HTTP/1.1 test server on 127.0.0.1 (random port). Dropping it stops accepting,
/// wakes stalled handlers, closes every connection, and joins its threads.
/// Drop returns within about 1 s even if threads are stuck.
pub struct TestServer {
    inner: Arc<Inner>,
    accept_thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Binds 127.0.0.1:0 and starts the accept thread.
    pub fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind test server");
        let addr = listener.local_addr().expect("test server local_addr");
        let inner = Arc::new(Inner {
            addr,
            state: Mutex::new(State::default()),
            stopping: AtomicBool::new(false),
            stop_flag: Mutex::new(false),
            stop_cv: Condvar::new(),
            conns: Mutex::new(Conns::default()),
            accepted: AtomicUsize::new(0),
            stalls: Mutex::new(Vec::new()),
        });
        let accept_inner = inner.clone();
        let accept_thread = thread::Builder::new()
            .name("test-server-accept".into())
            .spawn(move || accept_loop(accept_inner, listener))
            .expect("spawn accept thread");
        TestServer {
            inner,
            accept_thread: Some(accept_thread),
        }
    }

    /// When the server went quiet, in order: each stall, trickle pause and fault close
    /// began (the instant it had written everything it sends before).
    pub fn went_quiet(&self) -> Vec<Instant> {
        lock(&self.inner.stalls).clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT/path` (a missing leading `/` is added).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with('/') {
            format!("http://{}{}", self.inner.addr, path)
        } else {
            format!("http://{}/{}", self.inner.addr, path)
        }
    }

    /// Serves `body` at `path` with the default [`FileOptions::new`] and ETag
    /// `"v1-<len>"`. Anything already at `path` is replaced, options included.
    pub fn add_file(&self, path: &str, body: Vec<u8>) -> &Self {
        let mut st = lock(&self.inner.state);
        st.files.remove(path);
        st.replace(path, body, None);
        self
    }

    /// Replaces the options of an existing file wholesale, ETag included: set
    /// `opts.etag` to the exact value to send. If `opts.etag` is `Some("")` (as from
    /// [`FileOptions::new`]), the file's current ETag is kept.
    pub fn set_file_options(&self, path: &str, mut opts: FileOptions) {
        let mut st = lock(&self.inner.state);
        let entry = st
            .files
            .get_mut(path)
            .unwrap_or_else(|| panic!("set_file_options: no file at {path:?}; add_file first"));
        if opts.etag.as_deref() == Some("") {
            opts.etag = entry
                .opts
                .etag
                .clone()
                .or_else(|| Some(format!("\"v{}-{}\"", entry.generation, entry.body.len())));
        }
        entry.opts = opts;
    }

    /// New content for `path`. The ETag becomes `etag`, or a fresh `"v<gen>-<len>"` if `None`
    /// (no ETag stays no ETag). Last-Modified moves forward one hour. Responses
    /// already being sent keep the old bytes. If there is no file at `path`, one is added.
    pub fn replace_file(&self, path: &str, body: Vec<u8>, etag: Option<&str>) {
        lock(&self.inner.state).replace(path, body, etag);
    }

    /// Queues faults: each of the next requests to `path` takes one, in order. `path`
    /// need not be a file (a redirect source, say).
    pub fn push_faults(&self, path: &str, faults: impl IntoIterator<Item = Fault>) {
        let mut st = lock(&self.inner.state);
        st.faults
            .entry(path.to_string())
            .or_default()
            .queue
            .extend(faults);
    }

    /// Fault used when the queue for `path` is empty (Fault::None = back to normal).
    pub fn set_default_fault(&self, path: &str, fault: Fault) {
        let mut st = lock(&self.inner.state);
        st.faults.entry(path.to_string()).or_default().default = Some(fault);
    }

    /// Every request so far (since the last `reset_counters`), in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.inner.state).requests.clone()
    }

    /// Requests so far whose path (without the query) is `path`.
    pub fn request_count(&self, path: &str) -> usize {
        let st = lock(&self.inner.state);
        st.counts.get(path_only(path)).copied().unwrap_or(0)
    }

    /// Body bytes written to sockets for `path`, including partial writes before a
    /// close. Chunk framing and headers are not counted.
    pub fn bytes_served(&self, path: &str) -> u64 {
        let st = lock(&self.inner.state);
        st.served
            .get(path_only(path))
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }

    /// Clears the request log, the per-path request counts and bytes_served.
    /// Files, options and faults stay as they are.
    pub fn reset_counters(&self) {
        let mut st = lock(&self.inner.state);
        st.requests.clear();
        st.counts.clear();
        for c in st.served.values() {
            c.store(0, Ordering::SeqCst);
        }
    }

    /// TCP connections open right now.
    pub fn active_connections(&self) -> usize {
        lock(&self.inner.conns).live.len()
    }

    /// TCP connections accepted since start (not reset by `reset_counters`).
    pub fn connections_accepted(&self) -> usize {
        self.inner.accepted.load(Ordering::SeqCst)
    }

    /// The ETag `path` is served with right now.
    pub fn etag(&self, path: &str) -> Option<String> {
        let st = lock(&self.inner.state);
        st.files.get(path).and_then(|f| f.opts.etag.clone())
    }

    /// The Last-Modified `path` is served with right now.
    pub fn last_modified(&self, path: &str) -> Option<String> {
        let st = lock(&self.inner.state);
        st.files.get(path).and_then(FileEntry::last_modified)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let inner = &self.inner;
        inner.stopping.store(true, Ordering::SeqCst);
        {
            let mut stopped = lock(&inner.stop_flag);
            *stopped = true;
            inner.stop_cv.notify_all();
        }
        // Shut down every open connection. This unblocks handlers stuck in a
        // read (idle keep-alive) or a write (a client that stopped reading).
        {
            let conns = lock(&inner.conns);
            for s in conns.live.values() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        // Wake the blocking accept().
        let _ = TcpStream::connect_timeout(&inner.addr, Duration::from_millis(200));

        let deadline = Instant::now() + DROP_JOIN_BUDGET;
        let mut handles = Vec::new();
        if let Some(h) = self.accept_thread.take() {
            handles.push(h);
        }
        join_until(&mut handles, deadline);
        handles.append(&mut lock(&inner.conns).threads);
        join_until(&mut handles, deadline);
        // Anything still running is detached; its sockets are already shut down.
    }
}

fn join_until(handles: &mut Vec<JoinHandle<()>>, deadline: Instant) {
    loop {
        let mut i = 0;
        while i < handles.len() {
            if handles[i].is_finished() {
                let _ = handles.swap_remove(i).join();
            } else {
                i += 1;
            }
        }
        if handles.is_empty() || Instant::now() >= deadline {
            return;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

// ---------------------------------------------------------------------------
// Connection handling
// ---------------------------------------------------------------------------

fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(_) => {
                if inner.stopping.load(Ordering::SeqCst) {
                    return;
                }
                thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        let mut conns = lock(&inner.conns);
        if inner.stopping.load(Ordering::SeqCst) {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        let _ = stream.set_nodelay(true);
        let registered = match stream.try_clone() {
            Ok(s) => s,
            Err(_) => continue,
        };
        conns.next_id += 1;
        let id = conns.next_id;
        conns.live.insert(id, registered);
        conns.threads.retain(|h| !h.is_finished());
        inner.accepted.fetch_add(1, Ordering::SeqCst);
        let conn_inner = inner.clone();
        let spawned = thread::Builder::new()
            .name(format!("test-server-conn-{id}"))
            .spawn(move || {
                connection_loop(&conn_inner, stream, id);
                lock(&conn_inner.conns).live.remove(&id);
            });
        match spawned {
            Ok(h) => conns.threads.push(h),
            Err(_) => {
                if let Some(s) = conns.live.remove(&id) {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

struct ParsedRequest {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
}

impl ParsedRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    fn wants_close(&self) -> bool {
        let conn = self
            .header("Connection")
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        if conn.split(',').any(|t| t.trim() == "close") {
            return true;
        }
        self.version == "HTTP/1.0" && !conn.split(',').any(|t| t.trim() == "keep-alive")
    }
}

/// Reads one line (without the CRLF). `Ok(None)` = EOF before any byte.
fn read_line(reader: &mut BufReader<TcpStream>, budget: &mut u64) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = reader.by_ref().take(*budget).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    *budget = budget.saturating_sub(n as u64);
    if buf.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "request head too long or truncated",
        ));
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "non-UTF-8 request head"))
}

/// `Ok(None)` = the client closed the connection cleanly between requests.
fn read_request(reader: &mut BufReader<TcpStream>) -> io::Result<Option<ParsedRequest>> {
    let mut budget = MAX_HEAD_BYTES;
    let request_line = loop {
        match read_line(reader, &mut budget)? {
            None => return Ok(None),
            Some(l) if l.is_empty() => continue, // stray CRLF between requests is allowed
            Some(l) => break l,
        }
    };
    let mut parts = request_line.split_whitespace();
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) if v.starts_with("HTTP/1.") => {
            (m.to_string(), t.to_string(), v.to_string())
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad request line",
            ))
        }
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader, &mut budget)?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "EOF inside request head")
        })?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad header line"))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(Some(ParsedRequest {
        method,
        target,
        version,
        headers,
    }))
}

fn connection_loop(inner: &Inner, stream: TcpStream, conn_id: u64) {
    let mut writer = stream;
    let read_half = match writer.try_clone() {
        Ok(s) => s,
        Err(_) => {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    };
    let mut reader = BufReader::new(read_half);
    loop {
        if inner.stopping.load(Ordering::SeqCst) {
            break;
        }
        let req = match read_request(&mut reader) {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                if e.kind() == io::ErrorKind::InvalidData {
                    let _ = writer.write_all(
                        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
                break;
            }
        };
        // Discard a request body (none is expected from the client under test).
        let mut keep_alive = !req.wants_close();
        if req.header("Transfer-Encoding").is_some() {
            keep_alive = false; // chunked request bodies are not supported; just close after
        } else if let Some(n) = req.header("Content-Length") {
            match n.trim().parse::<u64>() {
                Ok(n) => {
                    if io::copy(&mut reader.by_ref().take(n), &mut io::sink()).ok() != Some(n) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        if inner.stopping.load(Ordering::SeqCst) {
            break;
        }
        match handle_request(inner, &mut writer, req, conn_id, keep_alive) {
            Ok(true) => {}
            Ok(false) | Err(_) => break,
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

// ---------------------------------------------------------------------------
// Response planning
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RangeSpec {
    From(u64),
    FromTo(u64, u64),
    Suffix(u64),
}

fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A single byte-range spec. `None` = malformed, multi-range or another unit; such a header is ignored.
fn parse_range(value: &str) -> Option<RangeSpec> {
    let (unit, set) = value.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let set = set.trim();
    if set.contains(',') {
        return None;
    }
    let (a, b) = set.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        return Some(RangeSpec::Suffix(parse_digits(b)?));
    }
    let a = parse_digits(a)?;
    if b.is_empty() {
        return Some(RangeSpec::From(a));
    }
    let b = parse_digits(b)?;
    (b >= a).then_some(RangeSpec::FromTo(a, b))
}

enum Resolved {
    /// Inclusive byte positions.
    Partial(u64, u64),
    Unsatisfiable,
}

fn resolve_range(spec: RangeSpec, len: u64) -> Resolved {
    if len == 0 {
        return Resolved::Unsatisfiable;
    }
    match spec {
        RangeSpec::From(a) if a < len => Resolved::Partial(a, len - 1),
        RangeSpec::FromTo(a, b) if a < len => Resolved::Partial(a, b.min(len - 1)),
        RangeSpec::Suffix(n) if n > 0 => Resolved::Partial(len - n.min(len), len - 1),
        _ => Resolved::Unsatisfiable,
    }
}

/// RFC 7233 §3.2: a strong comparison. Weak ETags never match, and a date
/// matches only the exact Last-Modified string.
fn if_range_matches(value: &str, etag: Option<&str>, last_modified: Option<&str>) -> bool {
    let value = value.trim();
    if value.starts_with("W/") {
        return false;
    }
    if value.starts_with('"') {
        return etag.is_some_and(|e| !e.starts_with("W/") && e == value);
    }
    last_modified.is_some_and(|lm| lm == value)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked { terminate: bool },
}

enum After {
    KeepAlive,
    /// Close after the response. `announce` = send `Connection: close`. It is set only
    /// for an orderly close the client asked for; a fault's close comes unannounced.
    Close {
        announce: bool,
    },
    StallThenClose(Duration),
    /// The rest of the body, one byte per pause (then keep-alive).
    Trickle(Duration),
}

struct Plan {
    status: u16,
    headers: Vec<(String, String)>,
    body: Arc<Vec<u8>>,
    /// Half-open byte window of `body` that makes up the response body.
    start: usize,
    end: usize,
    chunked: bool,
}

impl Plan {
    fn simple(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Plan {
        let end = body.len();
        Plan {
            status,
            headers,
            body: Arc::new(body),
            start: 0,
            end,
            chunked: false,
        }
    }

    fn body_len(&self) -> u64 {
        (self.end - self.start) as u64
    }

    fn set_header(&mut self, name: &str, value: String) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value));
    }
}

fn not_found_plan() -> Plan {
    Plan::simple(
        404,
        vec![(
            "Content-Type".into(),
            "text/html; charset=utf-8".into(),
        )],
        b"<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1></body></html>\n"
            .to_vec(),
    )
}

fn entity_headers(file: &FileEntry) -> Vec<(String, String)> {
    let mut h = Vec::new();
    if file.opts.ranges {
        h.push(("Accept-Ranges".to_string(), "bytes".to_string()));
    }
    if let Some(e) = &file.opts.etag {
        h.push(("ETag".to_string(), e.clone()));
    }
    if let Some(lm) = file.last_modified() {
        h.push(("Last-Modified".to_string(), lm));
    }
    h
}

fn unsatisfiable_plan(file: &FileEntry) -> Plan {
    let mut headers = entity_headers(file);
    headers.push((
        "Content-Range".to_string(),
        format!("bytes */{}", file.body.len()),
    ));
    Plan::simple(416, headers, Vec::new())
}

/// The requested byte window. `Ok(None)` = the whole file as a 200.
/// `Err(())` = unsatisfiable (416).
fn requested_window(
    req: &ParsedRequest,
    file: &FileEntry,
    ignore_range: bool,
) -> Result<Option<(u64, u64)>, ()> {
    if ignore_range || !file.opts.ranges || req.method != "GET" || req.header_count("Range") != 1 {
        return Ok(None);
    }
    let Some(spec) = req.header("Range").and_then(parse_range) else {
        return Ok(None);
    };
    if let Some(v) = req.header("If-Range") {
        let lm = file.last_modified();
        if !if_range_matches(v, file.opts.etag.as_deref(), lm.as_deref()) {
            return Ok(None);
        }
    }
    match resolve_range(spec, file.body.len() as u64) {
        Resolved::Partial(a, b) => Ok(Some((a, b))),
        Resolved::Unsatisfiable => Err(()),
    }
}

fn file_plan(file: &FileEntry, window: Option<(u64, u64)>) -> Plan {
    let len = file.body.len() as u64;
    let mut headers = entity_headers(file);
    headers.push((
        "Content-Type".to_string(),
        file.opts
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".to_string()),
    ));
    let (status, start, end) = match window {
        Some((a, b)) => {
            if let Some(partial) = &file.opts.partial_content_type {
                headers.retain(|(n, _)| !n.eq_ignore_ascii_case("Content-Type"));
                headers.push(("Content-Type".to_string(), partial.clone()));
            }
            headers.push(("Content-Range".to_string(), format!("bytes {a}-{b}/{len}")));
            (206, a as usize, b as usize + 1)
        }
        None => (200, 0, len as usize),
    };
    Plan {
        status,
        headers,
        body: file.body.clone(),
        start,
        end,
        chunked: !file.opts.content_length,
    }
}

/// `If-None-Match` (weak comparison, `*` too), else `If-Modified-Since` (the same date).
fn not_modified(req: &ParsedRequest, file: &FileEntry) -> bool {
    let weak = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
    if let Some(tags) = req.header("If-None-Match") {
        return tags.split(',').any(|tag| {
            tag.trim() == "*"
                || file
                    .opts
                    .etag
                    .as_deref()
                    .is_some_and(|e| weak(e) == weak(tag))
        });
    }
    req.header("If-Modified-Since")
        .is_some_and(|since| file.last_modified().as_deref() == Some(since.trim()))
}

fn normal_plan(req: &ParsedRequest, file: Option<&FileEntry>, ignore_range: bool) -> Plan {
    let Some(file) = file else {
        return not_found_plan();
    };
    if not_modified(req, file) {
        return Plan::simple(304, entity_headers(file), Vec::new());
    }
    match requested_window(req, file, ignore_range) {
        Ok(window) => file_plan(file, window),
        Err(()) => unsatisfiable_plan(file),
    }
}

// ---------------------------------------------------------------------------
// Request handling and transmission
// ---------------------------------------------------------------------------

fn path_only(target: &str) -> &str {
    let mut p = target;
    if let Some(rest) = p
        .strip_prefix("http://")
        .or_else(|| p.strip_prefix("https://"))
    {
        p = rest.find('/').map_or("/", |i| &rest[i..]);
    }
    let end = p.find(['?', '#']).unwrap_or(p.len());
    &p[..end]
}

/// Returns `Ok(true)` to keep the connection open for the next request.
fn handle_request(
    inner: &Inner,
    w: &mut TcpStream,
    req: ParsedRequest,
    conn_id: u64,
    keep_alive: bool,
) -> io::Result<bool> {
    let path = path_only(&req.target).to_string();

    // Record the request, pick its fault and take a snapshot of the file, all under one lock.
    let (fault, file, counter) = {
        let mut st = lock(&inner.state);
        st.requests.push(RecordedRequest {
            method: req.method.clone(),
            path: req.target.clone(),
            headers: req.headers.clone(),
            range: req.header("Range").map(str::to_string),
            connection: conn_id,
        });
        *st.counts.entry(path.clone()).or_insert(0) += 1;
        let fault = st
            .faults
            .get_mut(&path)
            .and_then(|slot| slot.queue.pop_front().or_else(|| slot.default.clone()))
            .unwrap_or(Fault::None);
        if let Fault::ChangeContent { body, etag } = &fault {
            st.replace(&path, body.clone(), etag.as_deref());
        }
        let file = st.files.get(&path).cloned();
        (fault, file, st.served_counter(&path))
    };

    let head = req.method == "HEAD";
    let normal_after = if keep_alive {
        After::KeepAlive
    } else {
        After::Close { announce: true }
    };

    let (plan, framing, limit, after) = match fault {
        Fault::None | Fault::ChangeContent { .. } => {
            let plan = normal_plan(&req, file.as_ref(), false);
            let framing = natural_framing(&plan);
            let n = plan.body_len();
            (plan, framing, n, normal_after)
        }
        Fault::IgnoreRange => {
            let plan = normal_plan(&req, file.as_ref(), true);
            let framing = natural_framing(&plan);
            let n = plan.body_len();
            (plan, framing, n, normal_after)
        }
        Fault::CloseAfter(n) => {
            let plan = normal_plan(&req, file.as_ref(), false);
            let framing = match natural_framing(&plan) {
                Framing::Chunked { .. } => Framing::Chunked { terminate: false },
                f => f,
            };
            let n = n.min(plan.body_len());
            (plan, framing, n, After::Close { announce: false })
        }
        Fault::StallAfter(n, d) => {
            let plan = normal_plan(&req, file.as_ref(), false);
            let framing = match natural_framing(&plan) {
                Framing::Chunked { .. } => Framing::Chunked { terminate: false },
                f => f,
            };
            let n = n.min(plan.body_len());
            (plan, framing, n, After::StallThenClose(d))
        }
        Fault::TrickleAfter(n, d) => {
            let plan = normal_plan(&req, file.as_ref(), false);
            let len = plan.body_len();
            (plan, Framing::Length(len), n.min(len), After::Trickle(d))
        }
        Fault::StallHeaders(d) => {
            inner.stall(d);
            let _ = w.shutdown(Shutdown::Both);
            return Ok(false);
        }
        Fault::Status {
            code,
            retry_after,
            body,
        } => {
            let mut headers = Vec::new();
            if let Some(r) = retry_after {
                headers.push(("Retry-After".to_string(), r));
            }
            headers.push((
                "Content-Type".to_string(),
                "text/html; charset=utf-8".to_string(),
            ));
            let plan = Plan::simple(code, headers, body);
            let n = plan.body_len();
            (plan, Framing::Length(n), n, normal_after)
        }
        Fault::ChunkedNoTerminator(n) => {
            let plan = normal_plan(&req, file.as_ref(), false);
            let n = n.min(plan.body_len());
            (
                plan,
                Framing::Chunked { terminate: false },
                n,
                After::Close { announce: false },
            )
        }
        Fault::LieContentLength(n) => {
            let mut plan = normal_plan(&req, file.as_ref(), false);
            if plan.status == 206 {
                let total = file.as_ref().map_or(0, |f| f.body.len());
                let a = plan.start as u64;
                let last = (a + n).saturating_sub(1);
                plan.set_header("Content-Range", format!("bytes {a}-{last}/{total}"));
            }
            let send = n.min(plan.body_len());
            (
                plan,
                Framing::Length(n),
                send,
                After::Close { announce: false },
            )
        }
        Fault::WrongContentRangeStart(delta) => match &file {
            Some(f) if !f.body.is_empty() => {
                let len = f.body.len() as u64;
                let (a, b) = match requested_window(&req, f, false) {
                    Ok(Some(w)) => w,
                    _ => (0, len - 1),
                };
                let start = (a as i128 + delta as i128).clamp(0, len as i128 - 1) as u64;
                let end = if start <= b {
                    b
                } else {
                    (start + (b - a)).min(len - 1)
                };
                let mut plan = file_plan(f, Some((start, end)));
                plan.chunked = false;
                let n = plan.body_len();
                (plan, Framing::Length(n), n, normal_after)
            }
            _ => {
                let plan = normal_plan(&req, file.as_ref(), false);
                let framing = natural_framing(&plan);
                let n = plan.body_len();
                (plan, framing, n, normal_after)
            }
        },
        Fault::MalformedContentRange(value) => match &file {
            Some(f) => {
                let window = requested_window(&req, f, false).ok().flatten();
                let mut plan = file_plan(f, window);
                plan.status = 206;
                plan.chunked = false;
                plan.set_header("Content-Range", value);
                let n = plan.body_len();
                (plan, Framing::Length(n), n, normal_after)
            }
            None => {
                let plan = not_found_plan();
                let n = plan.body_len();
                (plan, Framing::Length(n), n, normal_after)
            }
        },
        Fault::Redirect { status, location } => {
            let plan = Plan::simple(status, vec![("Location".to_string(), location)], Vec::new());
            (plan, Framing::Length(0), 0, normal_after)
        }
        Fault::Raw {
            status,
            headers,
            body,
        } => {
            let plan = Plan::simple(status, headers, body);
            let n = plan.body_len();
            (plan, Framing::Length(n), n, normal_after)
        }
        Fault::Respond416 => {
            let plan = match &file {
                Some(f) => unsatisfiable_plan(f),
                None => Plan::simple(
                    416,
                    vec![("Content-Range".into(), "bytes */0".into())],
                    Vec::new(),
                ),
            };
            (plan, Framing::Length(0), 0, normal_after)
        }
    };

    let result = transmit(w, &plan, framing, limit, head, &after, &counter);
    match (result, after) {
        (Err(e), _) => Err(e),
        (Ok(()), After::KeepAlive) => Ok(true),
        (Ok(()), After::Close { announce }) => {
            if !announce {
                lock(&inner.stalls).push(Instant::now());
            }
            let _ = w.shutdown(Shutdown::Both);
            Ok(false)
        }
        (Ok(()), After::StallThenClose(d)) => {
            inner.stall(d);
            let _ = w.shutdown(Shutdown::Both);
            Ok(false)
        }
        (Ok(()), After::Trickle(d)) => {
            let rest = &plan.body[plan.start + limit as usize..plan.end];
            for byte in rest.chunks(1) {
                inner.stall(d);
                if inner.stopping.load(Ordering::SeqCst) {
                    return Ok(false);
                }
                write_counted(w, byte, &counter)?;
                w.flush()?;
            }
            Ok(true)
        }
    }
}

fn natural_framing(plan: &Plan) -> Framing {
    if plan.chunked {
        Framing::Chunked { terminate: true }
    } else {
        Framing::Length(plan.body_len())
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        410 => "Gone",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Writes `buf` and adds to `counter` exactly the bytes the socket accepted.
///
/// Each chunk is counted *before* its `write` and whatever did not go out is taken
/// back afterwards. So by the time a client can see bytes, they are already counted
/// (a test can assert `bytes_served` right after reading a response), and a write
/// that fails or is cut short leaves only what was really written.
/// Subtracts without wrapping (a `reset_counters` may have run after the add).
fn take_back(counter: &AtomicU64, n: u64) {
    if n > 0 {
        let _ = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
            Some(v.saturating_sub(n))
        });
    }
}

fn write_counted(w: &mut TcpStream, buf: &[u8], counter: &AtomicU64) -> io::Result<()> {
    let mut off = 0;
    while off < buf.len() {
        let end = (off + WRITE_CHUNK).min(buf.len());
        let want = (end - off) as u64;
        counter.fetch_add(want, Ordering::SeqCst);
        match w.write(&buf[off..end]) {
            Ok(0) => {
                take_back(counter, want);
                return Err(io::ErrorKind::WriteZero.into());
            }
            Ok(n) => {
                take_back(counter, want - n as u64);
                off += n;
            }
            Err(e) => {
                take_back(counter, want);
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

fn transmit(
    w: &mut TcpStream,
    plan: &Plan,
    framing: Framing,
    limit: u64,
    head: bool,
    after: &After,
    counter: &AtomicU64,
) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", plan.status, reason(plan.status));
    for (n, v) in &plan.headers {
        out.push_str(n);
        out.push_str(": ");
        out.push_str(v);
        out.push_str("\r\n");
    }
    match framing {
        Framing::Length(n) => out.push_str(&format!("Content-Length: {n}\r\n")),
        Framing::Chunked { .. } => out.push_str("Transfer-Encoding: chunked\r\n"),
    }
    if matches!(after, After::Close { announce: true }) {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    w.write_all(out.as_bytes())?;
    if head {
        return w.flush();
    }
    let body = &plan.body[plan.start..plan.start + limit as usize];
    match framing {
        Framing::Length(_) => write_counted(w, body, counter)?,
        Framing::Chunked { terminate } => {
            for chunk in body.chunks(CHUNKED_CHUNK) {
                w.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
                write_counted(w, chunk, counter)?;
                w.write_all(b"\r\n")?;
            }
            if terminate {
                w.write_all(b"0\r\n\r\n")?;
            }
        }
    }
    w.flush()
}

// ---------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------

/// RFC 1123 date (`Wed, 21 Oct 2015 07:28:00 GMT`) for a Unix time.
pub fn http_date(secs: u64) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Convert a day count to a civil (year, month, day) date.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        hh,
        mm,
        ss
    )
}
