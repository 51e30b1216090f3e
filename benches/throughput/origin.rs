//! The harness's own HTTP origin (std only): the fallback when nginx is missing, and the
//! shaped origins of the rows nginx cannot play: one that trickles after the first
//! ~640 KiB of every response (5d) and a 2 Mbit/s link (8). It logs every request it
//! serves (connection, the request's number on it, where the body starts, and the instant
//! the first body byte went to the kernel), so rows can count what the server saw.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// How the origin paces every response body.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Body bytes of each response written at full speed before the pace starts.
    pub fast: u64,
    /// The pace after that in bytes per second; `None`: full speed throughout.
    pub rate: Option<f64>,
    /// Size of each paced write (one TCP segment's payload on a 1500-byte MTU).
    pub segment: usize,
}

impl Shape {
    /// Full speed: the fallback server of every fast row.
    pub const FULL_SPEED: Shape = Shape {
        fast: u64::MAX,
        rate: None,
        segment: 256 * 1024,
    };

    /// Fast for the first `fast` bytes of every response, then `rate` bytes per second.
    pub fn trickle(fast: u64, rate: f64) -> Shape {
        Shape {
            fast,
            rate: Some(rate),
            segment: 1460,
        }
    }

    /// Every body byte at `bits_per_s`.
    pub fn link(bits_per_s: f64) -> Shape {
        Shape::trickle(0, bits_per_s / 8.0)
    }
}

/// One request the origin answered.
#[derive(Clone, Debug)]
pub struct Served {
    /// The request target, query included.
    pub target: String,
    /// Connection number (in accept order) and the request's number on it, from 1.
    pub connection: u64,
    pub nth_on_connection: u64,
    /// The offset of the first body byte (0 for a 200).
    pub start: u64,
    /// When the request line was read.
    pub received: Instant,
    /// Just before the first body byte was written to the socket.
    pub first_body_byte: Option<Instant>,
}

/// What the origin served, in order.
#[derive(Default)]
pub struct OriginLog {
    served: Mutex<Vec<Served>>,
}

impl OriginLog {
    fn lock(&self) -> MutexGuard<'_, Vec<Served>> {
        self.served.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, served: Served) -> usize {
        let mut log = self.lock();
        log.push(served);
        log.len() - 1
    }

    fn mark_first_byte(&self, index: usize, at: Instant) {
        if let Some(s) = self.lock().get_mut(index) {
            s.first_body_byte = Some(at);
        }
    }

    /// The requests whose target is exactly `target`.
    pub fn for_target(&self, target: &str) -> Vec<Served> {
        self.lock()
            .iter()
            .filter(|s| s.target == target)
            .cloned()
            .collect()
    }

    /// The requests received at or after `since`.
    pub fn since(&self, since: Instant) -> Vec<Served> {
        self.lock()
            .iter()
            .filter(|s| s.received >= since)
            .cloned()
            .collect()
    }
}

/// A running origin. Lives until the process exits (a thread per connection; each ends
/// when its client closes or stops reading for good).
pub struct StdOrigin {
    pub origin: String,
    pub log: Arc<OriginLog>,
}

/// HTTP/1.1 GET with keep-alive, Content-Length, single `bytes=` ranges and a strong ETag,
/// paced by `shape`; files from `www` (no subdirectories; a query string is ignored).
pub fn start(www: &Path, shape: Shape) -> Result<StdOrigin, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let root = www.to_path_buf();
    let log = Arc::new(OriginLog::default());
    let connections = Arc::new(AtomicU64::new(0));
    let server_log = Arc::clone(&log);
    thread::Builder::new()
        .name("bench-http".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let root = root.clone();
                let log = Arc::clone(&server_log);
                let connection = connections.fetch_add(1, Ordering::Relaxed) + 1;
                let _ = thread::Builder::new()
                    .name("bench-http-conn".into())
                    .spawn(move || {
                        let _ = serve_connection(stream, &root, shape, &log, connection);
                    });
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(StdOrigin {
        origin: format!("http://127.0.0.1:{port}"),
        log,
    })
}

/// A token bucket over wall time: `rate` bytes per second, at most `burst` ahead after
/// the writer fell behind (so a late wake-up does not turn into a long burst).
struct Pacer {
    rate: f64,
    burst: Duration,
    next: Instant,
}

impl Pacer {
    fn new(rate: f64, segment: usize) -> Pacer {
        Pacer {
            rate,
            burst: Duration::from_secs_f64(2.0 * segment as f64 / rate),
            next: Instant::now(),
        }
    }

    /// Sleeps until `n` more bytes may go out.
    fn wait(&mut self, n: usize) {
        let now = Instant::now();
        if let Some(floor) = now.checked_sub(self.burst) {
            self.next = self.next.max(floor);
        }
        if self.next > now {
            thread::sleep(self.next - now);
        }
        self.next += Duration::from_secs_f64(n as f64 / self.rate);
    }
}

fn serve_connection(
    stream: TcpStream,
    root: &Path,
    shape: Shape,
    log: &OriginLog,
    connection: u64,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let mut chunk = vec![0u8; 256 * 1024];
    let mut nth = 0;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let received = Instant::now();
        nth += 1;
        let mut range = None;
        for _ in 0..100 {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.trim().eq_ignore_ascii_case("range") {
                    range = Some(value.trim().to_string());
                }
            }
        }
        let mut parts = request_line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
        let name = target
            .split('?')
            .next()
            .unwrap_or("")
            .trim_start_matches('/');
        let file = if method != "GET" || name.contains("..") || name.contains('/') {
            None
        } else {
            std::fs::File::open(root.join(name)).ok()
        };
        let Some(mut file) = file else {
            out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
            continue;
        };
        let size = file.metadata()?.len();
        let etag = format!("\"{size:x}-{}\"", name.len());
        let span = range.as_deref().and_then(|r| parse_range(r, size));
        let (status, start, end) = match span {
            Some((start, end)) => ("206 Partial Content", start, end),
            None => ("200 OK", 0, size),
        };
        let index = log.push(Served {
            target: target.to_string(),
            connection,
            nth_on_connection: nth,
            start,
            received,
            first_body_byte: None,
        });
        let mut head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nETag: {etag}\r\n\
             Content-Type: application/octet-stream\r\n",
            end - start
        );
        if span.is_some() {
            let _ = write!(head, "Content-Range: bytes {start}-{}/{size}\r\n", end - 1);
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        file.seek(SeekFrom::Start(start))?;
        let mut pacer = None;
        let mut sent = 0u64;
        while sent < end - start {
            let left = end - start - sent;
            let n = if sent < shape.fast {
                left.min(chunk.len() as u64).min(shape.fast - sent)
            } else {
                left.min(shape.segment as u64)
            } as usize;
            file.read_exact(&mut chunk[..n])?;
            if sent >= shape.fast {
                if let Some(rate) = shape.rate {
                    pacer
                        .get_or_insert_with(|| Pacer::new(rate, shape.segment))
                        .wait(n);
                }
            }
            if sent == 0 {
                log.mark_first_byte(index, Instant::now());
            }
            out.write_all(&chunk[..n])?;
            sent += n as u64;
        }
    }
}

/// `bytes=a-b` or `bytes=a-` within `size`, as `start..end`.
fn parse_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    let end = match b.trim() {
        "" => size,
        b => b.parse::<u64>().ok()?.saturating_add(1).min(size),
    };
    (start < end).then_some((start, end))
}
