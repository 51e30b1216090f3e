//! Self-test of the test-support server (`tests/support`), using a raw TcpStream HTTP client.

mod support;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use support::{http_date, pattern, pattern_at, Fault, FileOptions, TestServer};

const READ_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// A tiny raw HTTP/1.1 client
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The body arrived in full under its framing (Content-Length reached or final chunk seen).
    complete: bool,
    /// The server closed the connection (EOF seen) while the body was being read.
    eof: bool,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect_timeout(&addr, READ_TIMEOUT).expect("connect");
        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
        Client {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        self.writer.write_all(req.as_bytes()).expect("send request");
    }

    fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.send("GET", path, headers);
        self.read_response(false)
    }

    fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => {
                assert!(buf.ends_with(b"\r\n"), "line without CRLF: {buf:?}");
                buf.truncate(buf.len() - 2);
                Some(String::from_utf8(buf).expect("utf8 head"))
            }
            Err(e) => panic!("read error (timeout?) in response head: {e}"),
        }
    }

    /// Fills `buf` as far as it can. Returns how many bytes it read (fewer than `buf.len()` only at EOF).
    fn read_upto(&mut self, buf: &mut [u8]) -> usize {
        let mut got = 0;
        while got < buf.len() {
            match self.reader.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("read error (timeout?) in body after {got} bytes: {e}"),
            }
        }
        got
    }

    fn read_response(&mut self, head: bool) -> Resp {
        let status_line = self.line().expect("EOF before status line");
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(
            parts.next(),
            Some("HTTP/1.1"),
            "status line {status_line:?}"
        );
        let status: u16 = parts.next().unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let l = self.line().expect("EOF inside headers");
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':').expect("header colon");
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        let mut resp = Resp {
            status,
            headers,
            body: Vec::new(),
            complete: true,
            eof: false,
        };
        if head {
            return resp;
        }
        if resp
            .header("Transfer-Encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let Some(size_line) = self.line() else {
                    resp.complete = false;
                    resp.eof = true;
                    break;
                };
                let size = usize::from_str_radix(size_line.trim(), 16).expect("chunk size");
                if size == 0 {
                    assert_eq!(self.line().as_deref(), Some(""), "chunked trailer end");
                    break;
                }
                let mut chunk = vec![0u8; size];
                let got = self.read_upto(&mut chunk);
                resp.body.extend_from_slice(&chunk[..got]);
                if got < size {
                    resp.complete = false;
                    resp.eof = true;
                    break;
                }
                assert_eq!(self.line().as_deref(), Some(""), "CRLF after chunk");
            }
        } else if let Some(len) = resp.header("Content-Length") {
            let len: usize = len.parse().unwrap();
            let mut body = vec![0u8; len];
            let got = self.read_upto(&mut body);
            body.truncate(got);
            resp.body = body;
            if got < len {
                resp.complete = false;
                resp.eof = true;
            }
        } else {
            self.reader
                .read_to_end(&mut resp.body)
                .expect("read to EOF");
            resp.eof = true;
        }
        resp
    }

    /// Waits for EOF (at most READ_TIMEOUT) and returns the bytes that came before it.
    fn read_until_eof(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => rest,
            Err(e) => panic!("expected EOF, got error (timeout?): {e}"),
        }
    }
}

fn server_with(path: &str, len: usize, seed: u64) -> (TestServer, Vec<u8>) {
    let server = TestServer::start();
    let data = pattern(len, seed);
    server.add_file(path, data.clone());
    (server, data)
}

// ---------------------------------------------------------------------------
// pattern
// ---------------------------------------------------------------------------

#[test]
fn pattern_is_deterministic_and_windowable() {
    let a = pattern(100_003, 7);
    assert_eq!(a, pattern(100_003, 7));
    assert_ne!(a, pattern(100_003, 8));
    assert_eq!(&a[..1000], &pattern(1000, 7)[..]);
    for (off, len) in [
        (0usize, 5usize),
        (1, 7),
        (3, 64),
        (8, 8),
        (13, 1000),
        (99_990, 13),
    ] {
        assert_eq!(
            pattern_at(off as u64, len, 7),
            a[off..off + len],
            "off {off} len {len}"
        );
    }
    assert!(pattern(0, 1).is_empty());
    // Not trivially repetitive: many distinct byte values.
    let mut seen = [false; 256];
    for b in &a {
        seen[*b as usize] = true;
    }
    assert!(seen.iter().filter(|s| **s).count() > 250);
}

#[test]
fn pattern_256_mib_is_fast_enough() {
    let t = Instant::now();
    let big = pattern(256 << 20, 99);
    let took = t.elapsed();
    assert_eq!(big.len(), 256 << 20);
    assert_eq!(
        &big[(200 << 20)..(200 << 20) + 64],
        &pattern_at(200 << 20, 64, 99)[..]
    );
    eprintln!("pattern(256 MiB) took {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn http_date_format() {
    assert_eq!(http_date(1_445_412_480), "Wed, 21 Oct 2015 07:28:00 GMT");
    assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
}

// ---------------------------------------------------------------------------
// Normal serving
// ---------------------------------------------------------------------------

#[test]
fn full_get_is_byte_exact_with_headers() {
    let (server, data) = server_with("/a.bin", 300_001, 1);
    let mut c = Client::connect(server.addr());
    let r = c.get("/a.bin", &[]);
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert_eq!(r.header("Content-Length"), Some("300001"));
    assert_eq!(r.header("Transfer-Encoding"), None);
    assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
    assert_eq!(r.header("ETag"), Some("\"v1-300001\""));
    assert_eq!(
        r.header("Last-Modified"),
        Some("Wed, 21 Oct 2015 07:28:00 GMT")
    );
    assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
    assert_eq!(r.header("Content-Range"), None);
    assert!(r.body == data, "body differs from pattern");
    assert_eq!(server.bytes_served("/a.bin"), 300_001);
    assert_eq!(
        server.url("/a.bin"),
        format!("http://{}/a.bin", server.addr())
    );
    assert_eq!(server.etag("/a.bin").as_deref(), Some("\"v1-300001\""));
}

#[test]
fn range_forms_on_one_keepalive_connection() {
    let (server, data) = server_with("/r.bin", 10_000, 2);
    let mut c = Client::connect(server.addr());

    let r = c.get("/r.bin", &[("Range", "bytes=9000-")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("Content-Range"), Some("bytes 9000-9999/10000"));
    assert_eq!(r.header("Content-Length"), Some("1000"));
    assert_eq!(r.body, &data[9000..]);

    let r = c.get("/r.bin", &[("Range", "bytes=100-199")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("Content-Range"), Some("bytes 100-199/10000"));
    assert_eq!(r.header("Content-Length"), Some("100"));
    assert_eq!(r.body, &data[100..200]);

    // End past the last byte is clamped.
    let r = c.get("/r.bin", &[("Range", "bytes=9990-20000")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("Content-Range"), Some("bytes 9990-9999/10000"));
    assert_eq!(r.body, &data[9990..]);

    // Suffix.
    let r = c.get("/r.bin", &[("Range", "bytes=-160")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("Content-Range"), Some("bytes 9840-9999/10000"));
    assert_eq!(r.body, &data[9840..]);

    // Suffix longer than the file = whole file as 206.
    let r = c.get("/r.bin", &[("Range", "bytes=-50000")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("Content-Range"), Some("bytes 0-9999/10000"));
    assert_eq!(r.body, data);

    // Single byte.
    let r = c.get("/r.bin", &[("Range", "bytes=0-0")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("Content-Range"), Some("bytes 0-0/10000"));
    assert_eq!(r.body, &data[..1]);

    assert_eq!(server.connections_accepted(), 1, "keep-alive reused");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 6);
    assert!(reqs.iter().all(|r| r.connection == reqs[0].connection));
    assert_eq!(
        server.bytes_served("/r.bin"),
        1000 + 100 + 10 + 160 + 10_000 + 1
    );
}

#[test]
fn unsatisfiable_ranges_get_416() {
    let server = TestServer::start();
    server.add_file("/f", pattern(1000, 3));
    server.add_file("/empty", Vec::new());
    let mut c = Client::connect(server.addr());
    for (path, range, len) in [
        ("/f", "bytes=1000-", 1000),
        ("/f", "bytes=5000-6000", 1000),
        ("/f", "bytes=-0", 1000),
        ("/empty", "bytes=0-", 0),
        ("/empty", "bytes=-5", 0),
    ] {
        let r = c.get(path, &[("Range", range)]);
        assert_eq!(r.status, 416, "{path} {range}");
        let want = format!("bytes */{len}");
        assert_eq!(r.header("Content-Range"), Some(want.as_str()));
        assert_eq!(r.header("Content-Length"), Some("0"));
        assert!(r.body.is_empty());
    }
    // The empty file without a Range: 200, zero length.
    let r = c.get("/empty", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("0"));
    assert_eq!(server.connections_accepted(), 1);
}

#[test]
fn malformed_or_multi_range_is_ignored() {
    let (server, data) = server_with("/m", 5000, 4);
    let mut c = Client::connect(server.addr());
    for range in [
        "bytes=0-10,20-30",
        "bytes=abc-",
        "bytes=50-10",
        "items=0-10",
        "bytes=",
        "bytes=-",
        "0-10",
    ] {
        let r = c.get("/m", &[("Range", range)]);
        assert_eq!(r.status, 200, "{range}");
        assert_eq!(r.header("Content-Range"), None);
        assert_eq!(r.body, data, "{range}");
    }
}

#[test]
fn if_range_semantics() {
    let (server, data) = server_with("/i", 4096, 5);
    let etag = server.etag("/i").unwrap();
    let lm = server.last_modified("/i").unwrap();
    let mut c = Client::connect(server.addr());

    let r = c.get("/i", &[("Range", "bytes=10-19"), ("If-Range", "\"other\"")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data);

    let r = c.get("/i", &[("Range", "bytes=10-19"), ("If-Range", &etag)]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[10..20]);

    let weak = format!("W/{etag}");
    let r = c.get("/i", &[("Range", "bytes=10-19"), ("If-Range", &weak)]);
    assert_eq!(r.status, 200, "weak validators never match");

    let r = c.get("/i", &[("Range", "bytes=10-19"), ("If-Range", &lm)]);
    assert_eq!(r.status, 206, "Last-Modified date matches");
    let r = c.get(
        "/i",
        &[
            ("Range", "bytes=10-19"),
            ("If-Range", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ],
    );
    assert_eq!(r.status, 200);

    // A weak ETag on the server side never matches either.
    server.set_file_options(
        "/i",
        FileOptions {
            etag: Some("W/\"weak\"".into()),
            ..FileOptions::new()
        },
    );
    let r = c.get("/i", &[("Range", "bytes=10-19"), ("If-Range", "\"weak\"")]);
    assert_eq!(r.header("ETag"), Some("W/\"weak\""));
    assert_eq!(r.status, 200);

    // The recorded request keeps both headers.
    let last = server.requests().pop().unwrap();
    assert_eq!(last.range.as_deref(), Some("bytes=10-19"));
    assert_eq!(last.header("if-range"), Some("\"weak\""));
}

#[test]
fn head_and_not_found() {
    let (server, _) = server_with("/h", 70_000, 6);
    let mut c = Client::connect(server.addr());
    c.send("HEAD", "/h", &[]);
    let r = c.read_response(true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("70000"));
    assert_eq!(r.header("ETag"), Some("\"v1-70000\""));

    let r = c.get("/nope", &[]);
    assert_eq!(r.status, 404);
    assert!(r.header("Content-Type").unwrap().starts_with("text/html"));
    assert!(String::from_utf8_lossy(&r.body).contains("404"));

    // The connection still works after HEAD and 404.
    let r = c.get("/h", &[("Range", "bytes=0-9")]);
    assert_eq!(r.status, 206);
    assert_eq!(server.connections_accepted(), 1);
    assert_eq!(server.bytes_served("/h"), 10);
    assert_eq!(server.request_count("/nope"), 1);
}

#[test]
fn options_no_ranges_no_length_no_validators() {
    let (server, data) = server_with("/o", 100_000, 7);
    server.set_file_options(
        "/o",
        FileOptions {
            content_type: Some("audio/mpeg".into()),
            ..FileOptions::default()
        },
    );
    let mut c = Client::connect(server.addr());
    let r = c.get("/o", &[("Range", "bytes=10-19")]);
    assert_eq!(r.status, 200, "ranges off: Range ignored");
    assert_eq!(r.header("Accept-Ranges"), None);
    assert_eq!(r.header("ETag"), None);
    assert_eq!(r.header("Last-Modified"), None);
    assert_eq!(r.header("Content-Length"), None);
    assert_eq!(r.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(r.header("Content-Type"), Some("audio/mpeg"));
    assert!(r.complete, "chunked with a proper terminator");
    assert!(r.body == data);

    // The connection stays usable after the chunked body.
    let r = c.get("/o", &[]);
    assert!(r.complete && r.body == data);
    assert_eq!(server.connections_accepted(), 1);

    // Chunked plus ranges.
    server.set_file_options(
        "/o",
        FileOptions {
            content_length: false,
            ..FileOptions::new()
        },
    );
    let r = c.get("/o", &[("Range", "bytes=50000-")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("Content-Range"), Some("bytes 50000-99999/100000"));
    assert_eq!(r.header("ETag"), Some("\"v1-100000\""), "etag kept");
    assert!(r.complete && r.body == data[50000..]);
}

#[test]
fn client_connection_close_is_honoured() {
    let (server, data) = server_with("/c", 1000, 8);
    let mut c = Client::connect(server.addr());
    let r = c.get("/c", &[("Connection", "close")]);
    assert_eq!(r.body, data);
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.read_until_eof().is_empty());
}

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------

#[test]
fn close_after_truncates_and_really_closes() {
    let (server, data) = server_with("/x", 200_000, 9);
    server.push_faults("/x", [Fault::CloseAfter(12_345)]);
    let mut c = Client::connect(server.addr());
    let t = Instant::now();
    let r = c.get("/x", &[("Range", "bytes=1000-")]);
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("Content-Length"),
        Some("199000"),
        "full length declared"
    );
    assert_eq!(r.header("Content-Range"), Some("bytes 1000-199999/200000"));
    assert_eq!(r.header("Connection"), None, "unannounced close");
    assert!(!r.complete && r.eof);
    assert_eq!(r.body, &data[1000..1000 + 12_345]);
    assert!(t.elapsed() < Duration::from_secs(2), "EOF came promptly");
    assert_eq!(server.bytes_served("/x"), 12_345);

    // Next request (new connection) is served normally.
    let mut c = Client::connect(server.addr());
    let r = c.get("/x", &[]);
    assert!(r.complete && r.body == data);
    assert_eq!(server.connections_accepted(), 2);
}

#[test]
fn stall_after_releases_on_drop() {
    let (server, data) = server_with("/s", 100_000, 10);
    server.push_faults("/s", [Fault::StallAfter(100, Duration::from_secs(600))]);
    let addr = server.addr();
    let (tx, rx) = std::sync::mpsc::channel();
    let client = thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.send("GET", "/s", &[]);
        // Read the head plus the 100 bytes, tell the main thread, then wait for EOF.
        let status = c.line().unwrap();
        assert!(status.contains("200"));
        while !c.line().unwrap().is_empty() {}
        let mut first = vec![0u8; 100];
        assert_eq!(c.read_upto(&mut first), 100);
        tx.send(()).unwrap();
        let t = Instant::now();
        let rest = c.read_until_eof();
        (first, rest, t.elapsed())
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("client got the first bytes");
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.active_connections() != 1 {
        assert!(
            Instant::now() < deadline,
            "the stalled connection never showed"
        );
        thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    drop(server);
    let drop_time = t.elapsed();
    let (first, rest, waited) = client.join().unwrap();
    assert!(
        drop_time < Duration::from_secs(1),
        "drop took {drop_time:?}"
    );
    assert_eq!(first, &data[..100]);
    assert!(rest.is_empty());
    assert!(waited < Duration::from_secs(2), "client waited {waited:?}");
}

#[test]
fn stall_after_with_short_duration_then_closes() {
    let (server, data) = server_with("/s2", 10_000, 11);
    server.push_faults("/s2", [Fault::StallAfter(500, Duration::from_millis(300))]);
    let mut c = Client::connect(server.addr());
    let t = Instant::now();
    let r = c.get("/s2", &[]);
    let e = t.elapsed();
    assert!(!r.complete && r.eof);
    assert_eq!(r.body, &data[..500]);
    assert!(
        e >= Duration::from_millis(250) && e < Duration::from_secs(3),
        "{e:?}"
    );
    assert_eq!(server.bytes_served("/s2"), 500);
}

#[test]
fn stall_headers_sends_nothing_and_drop_is_prompt() {
    let (server, _) = server_with("/sh", 1000, 12);
    server.push_faults(
        "/sh",
        [
            Fault::StallHeaders(Duration::from_millis(200)),
            Fault::StallHeaders(Duration::from_secs(600)),
        ],
    );
    let mut c = Client::connect(server.addr());
    c.send("GET", "/sh", &[]);
    let t = Instant::now();
    assert!(c.read_until_eof().is_empty());
    assert!(t.elapsed() >= Duration::from_millis(150));

    // The second stall is cut short by drop, even with an idle keep-alive connection open as well.
    let mut idle = Client::connect(server.addr());
    let r = idle.get("/sh2-missing", &[]);
    assert_eq!(r.status, 404);
    let mut c = Client::connect(server.addr());
    c.send("GET", "/sh", &[]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.request_count("/sh") < 2 {
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    drop(server);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(c.read_until_eof().is_empty());
    assert!(
        idle.read_until_eof().is_empty(),
        "idle connection closed too"
    );
}

#[test]
fn status_503_with_retry_after_then_normal() {
    let (server, data) = server_with("/u", 1000, 13);
    server.push_faults(
        "/u",
        [Fault::Status {
            code: 503,
            retry_after: Some("1".into()),
            body: b"<html>busy</html>".to_vec(),
        }],
    );
    let mut c = Client::connect(server.addr());
    let r = c.get("/u", &[("Range", "bytes=0-9")]);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("Retry-After"), Some("1"));
    assert_eq!(r.header("Content-Length"), Some("17"));
    assert_eq!(r.body, b"<html>busy</html>");
    let r = c.get("/u", &[("Range", "bytes=0-9")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[..10]);
    assert_eq!(server.connections_accepted(), 1);
}

#[test]
fn ignore_range_gives_200_full() {
    let (server, data) = server_with("/ir", 50_000, 14);
    server.push_faults("/ir", [Fault::IgnoreRange]);
    let mut c = Client::connect(server.addr());
    let r = c.get("/ir", &[("Range", "bytes=100-")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Range"), None);
    assert_eq!(r.header("Content-Length"), Some("50000"));
    assert!(r.body == data);
    let r = c.get("/ir", &[("Range", "bytes=100-")]);
    assert_eq!(r.status, 206, "fault used once");
}

#[test]
fn chunked_without_terminator() {
    let (server, data) = server_with("/ch", 100_000, 15);
    server.push_faults("/ch", [Fault::ChunkedNoTerminator(40_000)]);
    let mut c = Client::connect(server.addr());
    let r = c.get("/ch", &[("Range", "bytes=1000-")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(r.header("Content-Length"), None);
    assert!(!r.complete && r.eof);
    assert_eq!(r.body, &data[1000..41_000]);
    assert_eq!(server.bytes_served("/ch"), 40_000);
}

#[test]
fn lie_content_length() {
    let (server, data) = server_with("/l", 1000, 16);
    server.push_faults(
        "/l",
        [Fault::LieContentLength(5000), Fault::LieContentLength(50)],
    );
    let mut c = Client::connect(server.addr());
    let r = c.get("/l", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("5000"));
    assert!(!r.complete && r.eof);
    assert_eq!(r.body, data);

    let mut c = Client::connect(server.addr());
    let r = c.get("/l", &[("Range", "bytes=900-")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("Content-Length"), Some("50"));
    assert_eq!(r.header("Content-Range"), Some("bytes 900-949/1000"));
    assert_eq!(r.body, &data[900..950]);
    assert!(c.read_until_eof().is_empty(), "closed after the lie");
}

#[test]
fn wrong_and_malformed_content_range() {
    let (server, data) = server_with("/w", 10_000, 17);
    server.push_faults(
        "/w",
        [
            Fault::WrongContentRangeStart(-100),
            Fault::WrongContentRangeStart(50),
            Fault::MalformedContentRange("bytes garbage".into()),
        ],
    );
    let mut c = Client::connect(server.addr());
    let r = c.get("/w", &[("Range", "bytes=5000-")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("Content-Range"), Some("bytes 4900-9999/10000"));
    assert_eq!(r.body, &data[4900..]);

    let r = c.get("/w", &[("Range", "bytes=5000-5099")]);
    assert_eq!(r.header("Content-Range"), Some("bytes 5050-5099/10000"));
    assert_eq!(r.body, &data[5050..5100]);

    let r = c.get("/w", &[("Range", "bytes=10-19")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("Content-Range"), Some("bytes garbage"));
    assert_eq!(r.body, &data[10..20]);
    assert_eq!(server.connections_accepted(), 1);
}

#[test]
fn redirect_respond416_and_default_fault() {
    let (server, data) = server_with("/real", 2000, 18);
    server.set_default_fault(
        "/old",
        Fault::Redirect {
            status: 302,
            location: "/real".into(),
        },
    );
    server.push_faults("/real", [Fault::Respond416]);
    let mut c = Client::connect(server.addr());
    for _ in 0..2 {
        let r = c.get("/old", &[("Range", "bytes=0-")]);
        assert_eq!(r.status, 302);
        assert_eq!(r.header("Location"), Some("/real"));
        assert_eq!(r.header("Content-Length"), Some("0"));
    }
    let r = c.get("/real", &[("Range", "bytes=0-")]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("Content-Range"), Some("bytes */2000"));
    let r = c.get("/real", &[("Range", "bytes=0-")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, data);

    server.set_default_fault("/real", Fault::IgnoreRange);
    let r = c.get("/real", &[("Range", "bytes=0-1")]);
    assert_eq!(r.status, 200);
    server.set_default_fault("/real", Fault::None);
    let r = c.get("/real", &[("Range", "bytes=0-1")]);
    assert_eq!(r.status, 206);
    assert_eq!(server.request_count("/old"), 2);
}

#[test]
fn change_content_and_replace_file() {
    let (server, old) = server_with("/cc", 3000, 19);
    let old_etag = server.etag("/cc").unwrap();
    let new = pattern(4000, 20);
    server.push_faults(
        "/cc",
        [Fault::ChangeContent {
            body: new.clone(),
            etag: None,
        }],
    );
    let mut c = Client::connect(server.addr());
    // Resume with the old validator: the content changed, so it gets a 200 with the new full body.
    let r = c.get("/cc", &[("Range", "bytes=1000-"), ("If-Range", &old_etag)]);
    assert_eq!(r.status, 200);
    assert!(r.body == new);
    let new_etag = r.header("ETag").unwrap().to_string();
    assert_ne!(new_etag, old_etag);
    assert_eq!(new_etag, "\"v2-4000\"");
    assert_ne!(
        r.header("Last-Modified"),
        Some("Wed, 21 Oct 2015 07:28:00 GMT")
    );

    server.replace_file("/cc", old.clone(), Some("\"custom\""));
    let r = c.get("/cc", &[("Range", "bytes=0-9"), ("If-Range", "\"custom\"")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("ETag"), Some("\"custom\""));
    assert_eq!(r.body, &old[..10]);
}

#[test]
fn in_flight_response_keeps_old_bytes() {
    let (server, old) = server_with("/big", 8 << 20, 21);
    let mut c = Client::connect(server.addr());
    c.send("GET", "/big", &[]);
    // Read the head and a little body, then replace the file mid-flight.
    assert!(c.line().unwrap().contains("200"));
    while !c.line().unwrap().is_empty() {}
    let mut first = vec![0u8; 1000];
    assert_eq!(c.read_upto(&mut first), 1000);
    server.replace_file("/big", pattern(8 << 20, 22), None);
    let mut rest = vec![0u8; (8 << 20) - 1000];
    assert_eq!(c.read_upto(&mut rest), rest.len());
    assert!(first == old[..1000] && rest == old[1000..]);
    // The next request gets the new content.
    let r = c.get("/big", &[("Range", "bytes=0-99")]);
    assert_eq!(r.body, pattern(100, 22));
}

#[test]
fn recording_counting_and_reset() {
    let (server, _) = server_with("/rec", 500, 23);
    let mut c = Client::connect(server.addr());
    c.get("/rec", &[("Range", "bytes=0-9"), ("X-Custom", "abc")]);
    c.get("/rec?q=1", &[]);
    c.get("/other", &[]);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].path, "/rec");
    assert_eq!(reqs[0].range.as_deref(), Some("bytes=0-9"));
    assert_eq!(reqs[0].header("x-custom"), Some("abc"));
    assert_eq!(reqs[0].header("HOST"), Some("127.0.0.1"));
    assert_eq!(reqs[1].path, "/rec?q=1");
    assert_eq!(reqs[1].range, None);
    assert_eq!(reqs[2].path, "/other");
    assert_eq!(server.request_count("/rec"), 2);
    assert_eq!(server.request_count("/other"), 1);
    assert_eq!(server.request_count("/never"), 0);
    assert_eq!(server.bytes_served("/rec"), 10 + 500);

    server.reset_counters();
    assert!(server.requests().is_empty());
    assert_eq!(server.request_count("/rec"), 0);
    assert_eq!(server.bytes_served("/rec"), 0);
    c.get("/rec", &[("Range", "bytes=-5")]);
    assert_eq!(server.request_count("/rec"), 1);
    assert_eq!(server.bytes_served("/rec"), 5);
}

#[test]
fn request_is_recorded_before_the_response() {
    let (server, _) = server_with("/early", 100, 24);
    server.push_faults("/early", [Fault::StallHeaders(Duration::from_secs(600))]);
    let mut c = Client::connect(server.addr());
    c.send("GET", "/early", &[("Range", "bytes=5-")]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.request_count("/early") == 0 {
        assert!(Instant::now() < deadline, "request not recorded");
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(server.requests()[0].range.as_deref(), Some("bytes=5-"));
}

#[test]
fn a_stalled_connection_does_not_block_others() {
    let (server, data) = server_with("/p", 1000, 25);
    server.push_faults("/p", [Fault::StallAfter(10, Duration::from_secs(600))]);
    let mut stalled = Client::connect(server.addr());
    stalled.send("GET", "/p", &[]);
    // Wait until the stalled request has taken its fault, so the next request cannot take it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.request_count("/p") == 0 {
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(5));
    }
    let mut c = Client::connect(server.addr());
    let t = Instant::now();
    let r = c.get("/p", &[]);
    assert_eq!(r.body, data);
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(server.active_connections(), 2);
}

#[test]
fn bytes_served_counts_partial_writes_to_a_client_that_stops_reading() {
    // The client reads nothing and closes. The count is whatever the socket accepted before the write failed:
    // more than zero, less than the whole file.
    let (server, _) = server_with("/part", 32 << 20, 26);
    let c = Client::connect(server.addr());
    let mut w = c.writer.try_clone().unwrap();
    w.write_all(b"GET /part HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.bytes_served("/part") == 0 {
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(100));
    drop(c);
    drop(w);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.active_connections() > 0 {
        assert!(Instant::now() < deadline, "server noticed the close");
        thread::sleep(Duration::from_millis(5));
    }
    let served = server.bytes_served("/part");
    assert!(served > 0 && served < 32 << 20, "served {served}");
}

// ---------------------------------------------------------------------------
// Interop with the crate's real HTTP client (ureq)
// ---------------------------------------------------------------------------

#[test]
fn ureq_reuses_connections_and_sees_truncation() {
    let (server, data) = server_with("/u.bin", 200_000, 27);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_per_read(Some(Duration::from_secs(5)))
        .build()
        .into();
    let url = server.url("/u.bin");
    for (range, want) in [
        ("bytes=0-9", &data[..10]),
        ("bytes=199990-", &data[199_990..]),
        ("bytes=-100", &data[199_900..]),
    ] {
        let mut resp = agent
            .get(&url)
            .header("Range", range)
            .header("Accept-Encoding", "identity")
            .call()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 206);
        let body = resp.body_mut().read_to_vec().unwrap();
        assert_eq!(body, want);
    }
    assert_eq!(
        server.connections_accepted(),
        1,
        "ureq reused the connection"
    );

    server.push_faults("/u.bin", [Fault::CloseAfter(1000)]);
    let t = Instant::now();
    let mut resp = agent.get(&url).call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut reader = resp.body_mut().as_reader();
    let mut got = Vec::new();
    let err = reader
        .read_to_end(&mut got)
        .expect_err("truncated body is an error");
    assert_eq!(got, &data[..1000]);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "{:?}: {err}",
        t.elapsed()
    );
}
