//! Hostile and bent servers (issue 10): no input panics or hangs, real-server families
//! that bend HTTP still play, errors keep their type. Every test runs against the
//! in-process server on 127.0.0.1 in bounded time.

mod support;

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kithara_file::{AssetCache, FileError, FileSession, FileSource, FileSourceOptions};
use support::{file_error, pattern, url, Fault, FileOptions, TestServer};

const MIB: usize = 1024 * 1024;
const DEAD_URL: &str = "http://127.0.0.1:9/never";

fn quick() -> FileSourceOptions {
    FileSourceOptions::new()
        .with_retry_delay(Duration::from_millis(5), Duration::from_millis(100))
        .with_read_timeout(Duration::from_millis(300))
}

fn read_all(session: &mut FileSession) -> io::Result<Vec<u8>> {
    let mut got = Vec::new();
    session.read_to_end(&mut got).map(|_| got)
}

/// Runs `f` on its own thread and waits at most `limit` for it: a hang is a failure, not
/// a stuck test run.
fn bounded<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("did not finish within {limit:?}"))
}

fn raw(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Fault {
    Fault::Raw {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.to_vec(),
    }
}

// ------------------------------------------------------------ arithmetic at the edges

#[test]
fn a_seek_to_u64_max_minus_1_with_an_unknown_length_reads_eof_or_an_error() {
    // Three ways to not know the length: a chunked 200 from a server without Range, a
    // chunked 206 whose Content-Range says `/*`, and a chunked 200 from a server that
    // advertises ranges but ignores them (so the far seek is a request whose 200 body
    // must be skipped to u64::MAX - 1).
    const SIZE: u64 = 6_000_000;
    for (honours_range, ignores_later) in [(false, false), (true, false), (true, true)] {
        let server = TestServer::start();
        // Larger than the look-ahead: the length cannot be learned before the seek.
        let body = pattern(SIZE as usize, 1);
        server.add_file("/chunked", body.clone());
        server.set_file_options(
            "/chunked",
            FileOptions {
                content_length: false,
                ranges: honours_range,
                ..FileOptions::new()
            },
        );
        if ignores_later {
            server.set_default_fault("/chunked", Fault::IgnoreRange);
        } else if honours_range {
            server.push_faults(
                "/chunked",
                [Fault::MalformedContentRange(format!(
                    "bytes 0-{}/*",
                    SIZE - 1
                ))],
            );
        }
        let address = url(&server, "/chunked");
        let (known, first, again, session) = bounded(Duration::from_secs(20), move || {
            let mut session = FileSource::open(address, quick()).unwrap();
            let known = session.byte_len();
            let mut head = [0; 10];
            session.read_exact(&mut head).unwrap();
            // Were the body all in (its length learned) before the seek, the seek would be
            // refused as past the end: a typed outcome too.
            match session.seek(SeekFrom::Start(u64::MAX - 1)) {
                Ok(landed) => assert_eq!(landed, u64::MAX - 1),
                Err(e) => {
                    assert!(
                        matches!(file_error(&e), FileError::InvalidSeekPosition { .. }),
                        "{e:?}"
                    );
                    assert_eq!(session.byte_len(), Some(SIZE), "refused only once known");
                    let _ = session.seek(SeekFrom::Current(i64::MAX));
                    return (known, Ok(0), Ok(0), session);
                }
            }
            let first = session
                .read(&mut [0; 100])
                .map_err(|e| file_error(&e).clone());
            let again = session
                .read(&mut [0; 100])
                .map_err(|e| file_error(&e).clone());
            // A relative seek from there must not overflow either (any outcome is fine).
            let _ = session.seek(SeekFrom::Current(i64::MAX));
            (known, first, again, session)
        });
        assert_eq!(
            known, None,
            "honours_range {honours_range}: no length at open"
        );
        for read in [&first, &again] {
            match read {
                Ok(0) => {}
                Ok(n) => panic!("{n} bytes past the end (honours_range {honours_range})"),
                Err(e) => assert!(
                    matches!(
                        e,
                        FileError::Protocol(_) | FileError::InvalidSeekPosition { .. }
                    ),
                    "{e:?}"
                ),
            }
        }
        if honours_range && !ignores_later {
            // The length is known now (from the 416) and the session still works.
            assert_eq!(session.byte_len(), Some(SIZE));
            let mut session = session;
            session.seek(SeekFrom::Start(0)).unwrap();
            assert!(read_all(&mut session).unwrap() == body);
        }
    }
}

#[test]
fn a_content_range_at_the_edge_of_u64_is_a_protocol_error() {
    for value in [
        "bytes 0-18446744073709551615/*",
        "bytes 0-99/18446744073709551615",
        "bytes 0-9223372036854775807/*",
    ] {
        let server = TestServer::start();
        server.add_file("/f", pattern(1000, 2));
        server.set_default_fault("/f", Fault::MalformedContentRange(value.into()));
        let address = url(&server, "/f");
        let err = bounded(Duration::from_secs(10), move || {
            FileSource::open(address, quick()).unwrap_err()
        });
        assert!(matches!(err, FileError::Protocol(_)), "{value}: {err:?}");
        assert_eq!(server.request_count("/f"), 1, "{value}: never retried");
    }
}

#[test]
fn a_retry_after_date_in_the_year_400000000000_surfaces_the_status_at_once() {
    let hostile = "Sun, 06 Nov 400000000000 08:49:37 GMT";
    // At open, on the caller's thread.
    let server = TestServer::start();
    server.add_file("/f", pattern(3 * MIB, 3));
    server.push_faults(
        "/f",
        [Fault::Status {
            code: 503,
            retry_after: Some(hostile.into()),
            body: Vec::new(),
        }],
    );
    let started = Instant::now();
    let err = FileSource::open(url(&server, "/f"), quick()).unwrap_err();
    assert!(
        matches!(err, FileError::HttpStatus { status: 503, .. }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(server.request_count("/f"), 1);
    // Later, on the driver thread: the reader gets the status, the session survives.
    let mut session =
        FileSource::open(url(&server, "/f"), quick().with_look_ahead(64 * 1024)).unwrap();
    session.read_exact(&mut [0; 10]).unwrap();
    server.push_faults(
        "/f",
        [Fault::Status {
            code: 429,
            retry_after: Some(hostile.into()),
            body: Vec::new(),
        }],
    );
    session.seek_bytes(2 * MIB as i64).unwrap();
    let err = session.read(&mut [0; 10]).unwrap_err();
    assert!(
        matches!(file_error(&err), FileError::HttpStatus { status: 429, .. }),
        "{err:?}"
    );
    let mut buf = [0; 10];
    session.read_exact(&mut buf).unwrap();
    assert_eq!(buf, pattern(3 * MIB, 3)[2 * MIB..2 * MIB + 10]);
}

// ------------------------------------------------------------ typed errors

#[test]
fn a_500_that_never_recovers_is_http_status_500_and_a_stall_stays_network() {
    let server = TestServer::start();
    server.add_file("/f", pattern(4 * MIB, 4));
    let mut session = FileSource::open(
        url(&server, "/f"),
        quick().with_max_retries(2).with_look_ahead(64 * 1024),
    )
    .unwrap();
    session.read_exact(&mut [0; 10]).unwrap();
    server.push_faults(
        "/f",
        [Fault::Status {
            code: 503,
            retry_after: None,
            body: Vec::new(),
        }],
    );
    server.set_default_fault(
        "/f",
        Fault::Status {
            code: 500,
            retry_after: None,
            body: b"<html>oops</html>".to_vec(),
        },
    );
    session.seek_bytes(3 * MIB as i64).unwrap();
    let err = session.read(&mut [0; 10]).unwrap_err();
    assert!(
        matches!(file_error(&err), FileError::HttpStatus { status: 500, .. }),
        "the last status: {err:?}"
    );
    assert_eq!(session.retry_count(), 2);

    server.set_default_fault("/f", Fault::StallHeaders(Duration::from_secs(30)));
    session.seek_bytes(MIB as i64).unwrap();
    let started = Instant::now();
    let err = session.read(&mut [0; 10]).unwrap_err();
    assert!(matches!(file_error(&err), FileError::Network(_)), "{err:?}");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    assert!(err.to_string().ends_with(&server.url("/f")), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn every_reserved_header_is_refused_at_open_and_nothing_is_sent() {
    let server = TestServer::start();
    server.add_file("/f", pattern(1000, 5));
    for name in [
        "Range",
        "If-Range",
        "If-None-Match",
        "If-Modified-Since",
        "If-Match",
        "If-Unmodified-Since",
        "Accept-Encoding",
        "Host",
        "Content-Length",
        "Transfer-Encoding",
        "Connection",
    ] {
        for options in [
            FileSourceOptions::new().with_header(name, "x"),
            FileSourceOptions::new().with_secret_header(name.to_lowercase(), "x"),
        ] {
            let err = FileSource::open(url(&server, "/f"), options).unwrap_err();
            assert!(
                matches!(err, FileError::InvalidOptions(_)),
                "{name}: {err:?}"
            );
        }
    }
    assert_eq!(server.request_count("/f"), 0);
}

// ------------------------------------------------------------ validators

#[test]
fn a_resume_that_drops_last_modified_is_a_changed_resource_never_spliced() {
    let server = TestServer::start();
    let body = pattern(4 * MIB, 6);
    server.add_file("/f", body.clone());
    // Last-Modified is the only validator.
    server.set_file_options(
        "/f",
        FileOptions {
            etag: None,
            ..FileOptions::new()
        },
    );
    let mut session =
        FileSource::open(url(&server, "/f"), quick().with_look_ahead(64 * 1024)).unwrap();
    let mut head = vec![0; 1000];
    session.read_exact(&mut head).unwrap();
    // The file changes and the server stops sending Last-Modified (and ignores If-Range
    // since it has nothing to compare it with).
    server.replace_file("/f", pattern(4 * MIB, 7), None);
    server.set_file_options(
        "/f",
        FileOptions {
            etag: None,
            last_modified: false,
            ..FileOptions::new()
        },
    );
    session.seek_bytes(3 * MIB as i64).unwrap();
    let err = session.read(&mut [0; 10]).unwrap_err();
    assert!(
        matches!(file_error(&err), FileError::ResourceChanged(_)),
        "{err:?}"
    );
}

// ------------------------------------------------------------ real-server families

#[test]
fn an_empty_file_opens_as_0_bytes_whether_its_416_has_a_content_range_or_not() {
    // node http-server, Python RangeHTTPServer, S3, MinIO: 416 without Content-Range.
    // Caddy, twisted (and this server by default): `bytes */0`.
    for bare in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let cache = AssetCache::open(dir.path()).unwrap();
        let server = TestServer::start();
        server.add_file("/empty", Vec::new());
        if bare {
            server.push_faults(
                "/empty",
                [raw(
                    416,
                    &[("ETag", "\"e0\""), ("Accept-Ranges", "bytes")],
                    b"",
                )],
            );
        }
        let options = FileSourceOptions::new().with_cache_key("empty");
        let mut session =
            FileSource::open_with_cache(url(&server, "/empty"), options.clone(), &cache).unwrap();
        assert_eq!(session.byte_len(), Some(0), "bare {bare}");
        assert!(read_all(&mut session).unwrap().is_empty());
        assert_eq!(session.seek(SeekFrom::End(0)).unwrap(), 0);
        assert_eq!(server.request_count("/empty"), 1);
    }
}

#[test]
fn busybox_206_labelled_text_html_is_cached_and_not_reported_as_html() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let server = TestServer::start();
    let body = pattern(300_000, 8);
    server.add_file("/track.mp3", body.clone());
    server.set_file_options(
        "/track.mp3",
        FileOptions {
            content_type: Some("audio/mpeg".into()),
            partial_content_type: Some("text/html".into()),
            ..FileOptions::new()
        },
    );
    let options = FileSourceOptions::new().with_cache_key("busybox");
    let mut session =
        FileSource::open_with_cache(url(&server, "/track.mp3"), options.clone(), &cache).unwrap();
    assert_eq!(
        session.content_type(),
        None,
        "a 206's text/html is not trusted"
    );
    assert!(read_all(&mut session).unwrap() == body);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !session.is_cached() {
        assert!(Instant::now() < deadline, "the 206 body was never cached");
        std::thread::yield_now();
    }
    drop(session);
    drop(server);
    let mut offline =
        FileSource::open_with_cache(DEAD_URL.parse().unwrap(), options, &cache).unwrap();
    assert!(read_all(&mut offline).unwrap() == body);
}

#[test]
fn httpbin_200_to_bytes_0_keeps_seeking_by_range() {
    let server = TestServer::start();
    let body = pattern(4 * MIB, 9);
    server.add_file("/range", body.clone());
    // The first answer (to `bytes=0-`) is a 200 with `Accept-Ranges: bytes`; later
    // ranges are honoured.
    server.push_faults("/range", [Fault::IgnoreRange]);
    let mut session =
        FileSource::open(url(&server, "/range"), quick().with_look_ahead(64 * 1024)).unwrap();
    assert!(session.is_seekable(), "a 200 to bytes=0- proves nothing");
    session.seek(SeekFrom::Start(3 * MIB as u64)).unwrap();
    let mut buf = vec![0; 1000];
    session.read_exact(&mut buf).unwrap();
    assert!(buf == body[3 * MIB..3 * MIB + 1000]);
    let last = server.requests().pop().unwrap();
    let asked = last.range.unwrap();
    assert!(asked.starts_with(&format!("bytes={}-", 3 * MIB)), "{asked}");
    assert!(session.is_seekable());
}

#[test]
fn a_200_to_a_later_range_still_turns_seeking_off() {
    let server = TestServer::start();
    let body = pattern(4 * MIB, 10);
    server.add_file("/f", body.clone());
    let mut session =
        FileSource::open(url(&server, "/f"), quick().with_look_ahead(64 * 1024)).unwrap();
    session.read_exact(&mut [0; 10]).unwrap();
    server.set_default_fault("/f", Fault::IgnoreRange);
    session.seek(SeekFrom::Start(3 * MIB as u64)).unwrap();
    let mut buf = vec![0; 1000];
    session.read_exact(&mut buf).unwrap();
    assert!(
        buf == body[3 * MIB..3 * MIB + 1000],
        "skipped, never spliced"
    );
    assert!(!session.is_seekable());
}

#[test]
fn forced_gzip_is_a_protocol_error_that_says_so() {
    let server = TestServer::start();
    server.add_file("/f", pattern(1000, 11));
    server.set_default_fault(
        "/f",
        raw(
            200,
            &[("Content-Encoding", "gzip"), ("Content-Type", "audio/mpeg")],
            b"\x1f\x8b\x08\x00compressed",
        ),
    );
    let err = FileSource::open(url(&server, "/f"), quick()).unwrap_err();
    let FileError::Protocol(message) = &err else {
        panic!("{err:?}")
    };
    assert!(message.contains("Content-Encoding \"gzip\""), "{message}");
    assert!(message.contains("identity"), "{message}");
    assert_eq!(server.request_count("/f"), 1, "never retried");
    let sent = server.requests().pop().unwrap();
    assert_eq!(sent.header("accept-encoding"), Some("identity"));
}

#[test]
fn duplicate_or_negative_content_lengths_and_binary_headers_never_panic() {
    for headers in [
        vec![("Content-Length", "-1")],
        vec![("Content-Length", "99999999999999999999999999")],
        vec![
            ("Content-Range", "bytes 0-9/10"),
            ("Content-Range", "bytes 0-9/11"),
        ],
        vec![("ETag", "\"a\""), ("ETag", "\"b\"")],
        vec![("Retry-After", "-5")],
        vec![("Content-Encoding", "identity"), ("Content-Encoding", "br")],
    ] {
        let server = TestServer::start();
        server.add_file("/f", pattern(10, 12));
        let mut all: Vec<(&str, &str)> = vec![("Content-Range", "bytes 0-9/10")];
        all.extend(headers.iter().copied());
        server.set_default_fault("/f", raw(206, &all, &pattern(10, 12)));
        let address = url(&server, "/f");
        let outcome = bounded(Duration::from_secs(10), move || {
            FileSource::open(address, quick().with_max_retries(1)).map(|mut s| read_all(&mut s))
        });
        match outcome {
            Ok(Ok(bytes)) => assert_eq!(bytes, pattern(10, 12), "{headers:?}"),
            Ok(Err(e)) => panic!("{headers:?}: {e}"),
            Err(e) => assert!(
                matches!(e, FileError::Protocol(_) | FileError::Network(_)),
                "{headers:?}: {e:?}"
            ),
        }
    }
}

#[test]
fn nginx_slice_short_206s_with_changing_validators_are_a_changed_resource() {
    // nginx `slice` over an origin that changed: every ranged answer is a 206 whose
    // headers promise the bytes and whose body carries none, each with another ETag. The
    // session was pinned with Last-Modified only, so no single answer contradicts the
    // pin: only the run does.
    let server = TestServer::start();
    let size = 4 * MIB;
    let body = pattern(size, 21);
    server.add_file("/sliced", body.clone());
    server.set_file_options(
        "/sliced",
        FileOptions {
            etag: None,
            ..FileOptions::new()
        },
    );
    let mut session =
        FileSource::open(url(&server, "/sliced"), quick().with_look_ahead(64 * 1024)).unwrap();
    let mut head = vec![0; 1000];
    session.read_exact(&mut head).unwrap();
    assert!(head == body[..1000]);
    let start = 3 * MIB as u64;
    let short = |etag: &str, last_modified: &str| {
        raw(
            206,
            &[
                (
                    "Content-Range",
                    &format!("bytes {start}-{}/{size}", size - 1),
                ),
                ("ETag", etag),
                ("Last-Modified", last_modified),
            ],
            b"",
        )
    };
    let pinned_date = server_last_modified(&server, "/sliced");
    server.push_faults(
        "/sliced",
        (0..10).map(|i| short(&format!("\"slice-{i}\""), &pinned_date)),
    );
    session.seek(SeekFrom::Start(start)).unwrap();
    let err = bounded(Duration::from_secs(20), move || {
        session.read(&mut [0; 100]).unwrap_err()
    });
    match file_error(&err) {
        FileError::ResourceChanged(why) => assert!(why.contains("carried no bytes"), "{why}"),
        other => panic!("{other:?}"),
    }
    // The verdict comes when the retries give up, not before.
    assert!(
        server.requests().len() >= 1 + 1 + 2,
        "{}",
        server.requests().len()
    );
}

/// The `Last-Modified` the test server sends for `path` (from a plain request).
fn server_last_modified(server: &TestServer, path: &str) -> String {
    let response = ureq::get(&server.url(path))
        .header("Range", "bytes=0-0")
        .call()
        .unwrap();
    response
        .headers()
        .get("last-modified")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}
