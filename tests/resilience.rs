//! Network resilience and HTTP semantics, one named test per scenario: each checks the
//! bytes against the original and the error kind against the contract, in bounded time.

mod support;

use std::io::{self, Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use kithara_file::{FileError, FileSession, FileSource, FileSourceOptions};
use support::model::{run_model, Rng};
use support::{file_error, pattern, url, Fault, FileOptions, TestServer};

const MIB: usize = 1024 * 1024;

/// Fast retries so failing scenarios end quickly; the policy is the same.
fn quick() -> FileSourceOptions {
    FileSourceOptions::new().with_retry_delay(Duration::from_millis(10), Duration::from_millis(200))
}

fn serve(path: &str, len: usize, seed: u64) -> (TestServer, Vec<u8>) {
    let server = TestServer::start();
    let body = pattern(len, seed);
    server.add_file(path, body.clone());
    (server, body)
}

/// A session with a one-chunk look-ahead (so a far seek is a new request) that has read
/// the first 1000 bytes.
fn open_past_the_head(server: &TestServer, path: &str) -> FileSession {
    let mut session =
        FileSource::open(url(server, path), quick().with_look_ahead(64 * 1024)).unwrap();
    let mut head = vec![0; 1000];
    session.read_exact(&mut head).unwrap();
    session
}

fn read_all(session: &mut FileSession) -> io::Result<Vec<u8>> {
    let mut got = Vec::new();
    session.read_to_end(&mut got).map(|_| got)
}

/// Reads until an error, returning the bytes before it and the error.
fn read_until_error(session: &mut FileSession) -> (Vec<u8>, io::Error) {
    let mut got = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        match session.read(&mut buf) {
            Ok(0) => panic!("EOF after {} bytes where an error was due", got.len()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, e),
        }
    }
}

// ------------------------------------------------------------ drops and truncation

#[test]
fn a_server_that_drops_every_response_after_1_mib_still_delivers_64_mib() {
    let (server, body) = serve("/f", 64 * MIB, 1);
    server.set_default_fault("/f", Fault::CloseAfter(MIB as u64));
    let mut session = FileSource::open(url(&server, "/f"), quick()).unwrap();
    let got = read_all(&mut session).unwrap();
    assert!(got == body, "64 MiB through drops differ");
    let requests = server.requests();
    assert!(requests.len() >= 64, "{} requests", requests.len());
    for (i, request) in requests.iter().enumerate().skip(1) {
        let range = request.range.as_deref().unwrap();
        assert!(
            range.starts_with("bytes=") && range.ends_with('-'),
            "{range}"
        );
        assert_eq!(
            request.header("if-range"),
            server.etag("/f").as_deref(),
            "request {i}"
        );
    }
    println!(
        "drops: {} requests, {} retries for 64 MiB",
        requests.len(),
        session.retry_count()
    );
}

#[test]
fn a_body_that_ends_before_its_content_length_is_resumed() {
    let (server, body) = serve("/f", 3 * MIB, 2);
    server.push_faults("/f", [Fault::CloseAfter(12_345), Fault::CloseAfter(1)]);
    let mut session = FileSource::open(url(&server, "/f"), quick()).unwrap();
    assert!(read_all(&mut session).unwrap() == body);
    let ranges: Vec<_> = server.requests().into_iter().map(|r| r.range).collect();
    assert_eq!(ranges[1].as_deref(), Some("bytes=12345-"));
    assert_eq!(ranges[2].as_deref(), Some("bytes=12346-"));
}

#[test]
fn a_short_but_consistent_response_is_completed_by_another_request() {
    let (server, body) = serve("/f", 2 * MIB, 3);
    server.push_faults("/f", [Fault::LieContentLength(500_000)]);
    let mut session = FileSource::open(url(&server, "/f"), quick()).unwrap();
    assert!(read_all(&mut session).unwrap() == body);
}

#[test]
fn a_server_that_always_overstates_its_length_ends_in_an_error_never_eof() {
    let (server, body) = serve("/f", MIB, 4);
    server.set_default_fault("/f", Fault::LieContentLength(MIB as u64 + 1000));
    let result = FileSource::open(url(&server, "/f"), quick().with_range_seek(false));
    let err = match result {
        Ok(mut session) => {
            let (got, err) = read_until_error(&mut session);
            assert!(got == body[..got.len()], "a prefix of the file");
            err
        }
        Err(e) => e.into(),
    };
    assert!(
        matches!(
            file_error(&err),
            FileError::Network(_) | FileError::Protocol(_) | FileError::ResourceChanged(_)
        ),
        "{err:?}"
    );
    assert_ne!(err.kind(), io::ErrorKind::UnexpectedEof);
}

#[test]
fn chunked_without_terminator_is_resumed_and_never_taken_for_eof() {
    let server = TestServer::start();
    let body = pattern(2 * MIB + 3, 5);
    server.add_file("/c", body.clone());
    server.set_file_options(
        "/c",
        FileOptions {
            content_length: false,
            ranges: false,
            ..FileOptions::new()
        },
    );
    server.push_faults("/c", [Fault::ChunkedNoTerminator(700_000)]);
    let mut session = FileSource::open(url(&server, "/c"), quick()).unwrap();
    assert_eq!(session.byte_len(), None);
    assert!(read_all(&mut session).unwrap() == body);
    assert_eq!(session.byte_len(), Some(body.len() as u64));

    // With no retries allowed, the cut is an error, not a short file.
    server.push_faults("/c", [Fault::ChunkedNoTerminator(700_000)]);
    let mut session = FileSource::open(url(&server, "/c"), quick().with_max_retries(0)).unwrap();
    let (got, err) = read_until_error(&mut session);
    assert!(got.len() <= 700_000 && got == body[..got.len()]);
    assert!(matches!(file_error(&err), FileError::Network(_)), "{err:?}");
}

// ------------------------------------------------------------ stalls

#[test]
fn a_stalled_body_is_aborted_and_resumed() {
    let (server, body) = serve("/f", 2 * MIB, 6);
    server.push_faults("/f", [Fault::StallAfter(100_000, Duration::from_secs(60))]);
    let started = Instant::now();
    let mut session = FileSource::open(
        url(&server, "/f"),
        quick().with_read_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    assert!(read_all(&mut session).unwrap() == body);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.requests()[1].range.as_deref(), Some("bytes=100000-"));
}

#[test]
fn stalled_headers_are_retried() {
    let (server, body) = serve("/f", MIB, 7);
    server.push_faults("/f", [Fault::StallHeaders(Duration::from_secs(60))]);
    let mut session = FileSource::open(
        url(&server, "/f"),
        quick().with_read_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    assert!(read_all(&mut session).unwrap() == body);
}

#[test]
fn a_read_never_blocks_past_the_retry_budget() {
    let (server, body) = serve("/f", MIB, 8);
    server.set_default_fault("/f", Fault::None);
    server.push_faults("/f", [Fault::StallAfter(50_000, Duration::from_secs(60))]);
    let mut session = FileSource::open(
        url(&server, "/f"),
        quick()
            .with_read_timeout(Duration::from_millis(200))
            .with_max_retries(2),
    )
    .unwrap();
    server.set_default_fault("/f", Fault::StallHeaders(Duration::from_secs(60)));
    let started = Instant::now();
    let (got, err) = read_until_error(&mut session);
    assert!(got == body[..got.len()]);
    assert!(matches!(file_error(&err), FileError::Network(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

// ------------------------------------------------------------ statuses

#[test]
fn a_503_with_retry_after_is_honoured() {
    let (server, body) = serve("/f", MIB, 9);
    server.push_faults(
        "/f",
        [Fault::Status {
            code: 503,
            retry_after: Some("1".into()),
            body: b"<html>busy</html>".to_vec(),
        }],
    );
    let started = Instant::now();
    let mut session = FileSource::open(url(&server, "/f"), FileSourceOptions::new()).unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );
    assert!(waited < Duration::from_secs(5));
    assert!(
        read_all(&mut session).unwrap() == body,
        "the error page never shows"
    );
}

#[test]
fn retry_after_as_an_http_date_is_honoured() {
    let (server, body) = serve("/f", 100_000, 10);
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    server.push_faults(
        "/f",
        [Fault::Status {
            code: 429,
            retry_after: Some(support::http_date(soon)),
            body: Vec::new(),
        }],
    );
    let started = Instant::now();
    let mut session = FileSource::open(url(&server, "/f"), FileSourceOptions::new()).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(read_all(&mut session).unwrap() == body);
}

#[test]
fn retry_after_past_the_max_delay_surfaces_the_error() {
    let (server, _) = serve("/f", 100_000, 11);
    server.push_faults(
        "/f",
        [Fault::Status {
            code: 503,
            retry_after: Some("3600".into()),
            body: Vec::new(),
        }],
    );
    let started = Instant::now();
    let err = FileSource::open(url(&server, "/f"), FileSourceOptions::new()).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(err, FileError::HttpStatus { status: 503, .. }),
        "{err:?}"
    );
    assert_eq!(server.request_count("/f"), 1);
}

#[test]
fn every_transient_status_is_retried() {
    for code in [408, 429, 500, 502, 503, 504] {
        let (server, body) = serve("/f", 300_000, 12);
        server.push_faults(
            "/f",
            [Fault::Status {
                code,
                retry_after: None,
                body: b"<html>error page</html>".to_vec(),
            }],
        );
        let mut session = FileSource::open(url(&server, "/f"), quick()).unwrap();
        assert!(read_all(&mut session).unwrap() == body, "status {code}");
        assert_eq!(server.request_count("/f"), 2, "status {code}");
    }
}

#[test]
fn other_client_errors_are_fatal_and_never_read_as_audio() {
    for code in [400, 401, 403, 404, 410] {
        let (server, _) = serve("/f", 300_000, 13);
        server.push_faults(
            "/f",
            [Fault::Status {
                code,
                retry_after: None,
                body: b"<html>error page</html>".to_vec(),
            }],
        );
        let err = FileSource::open(url(&server, "/f"), quick()).unwrap_err();
        assert!(
            matches!(err, FileError::HttpStatus { status, .. } if status == code),
            "{code}: {err:?}"
        );
        assert_eq!(server.request_count("/f"), 1, "{code} was retried");
    }
    // Mid-stream: a seek request refused with 403 is an error, not bytes.
    let (server, body) = serve("/f", 8 * MIB, 14);
    let mut session = open_past_the_head(&server, "/f");
    server.push_faults(
        "/f",
        [Fault::Status {
            code: 403,
            retry_after: None,
            body: b"<html>denied</html>".to_vec(),
        }],
    );
    session.seek_bytes(6 * MIB as i64).unwrap();
    let err = session.read(&mut [0; 100]).unwrap_err();
    assert!(
        matches!(file_error(&err), FileError::HttpStatus { status: 403, .. }),
        "{err:?}"
    );
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    let mut buf = vec![0; 100];
    session.read_exact(&mut buf).unwrap();
    assert!(
        buf == body[6 * MIB..6 * MIB + 100],
        "a later read asks again"
    );
}

#[test]
fn a_spent_retry_budget_is_the_last_http_status_not_eof() {
    let (server, body) = serve("/f", 4 * MIB, 15);
    let mut session = FileSource::open(
        url(&server, "/f"),
        quick().with_max_retries(3).with_look_ahead(64 * 1024),
    )
    .unwrap();
    server.set_default_fault(
        "/f",
        Fault::Status {
            code: 503,
            retry_after: None,
            body: Vec::new(),
        },
    );
    session.seek_bytes(3 * MIB as i64).unwrap();
    let err = session.read(&mut [0; 10]).unwrap_err();
    // The last status the server gave, never an EOF nor a vague network error.
    assert!(
        matches!(file_error(&err), FileError::HttpStatus { status: 503, .. }),
        "{err:?}"
    );
    assert_ne!(err.kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(session.retry_count(), 3);
    drop(body);
}

/// A read that asks again after playback gave up plays on from there: one open-ended
/// request, as playback was before the failure, not the small windows that follow a seek
/// (a decoder that swallowed the first error then meets the next one at once, instead of
/// reading on from a place it no longer knows).
#[test]
fn a_read_after_playback_gave_up_plays_on_with_one_open_ended_request() {
    let cut = 300_000u64;
    let (server, body) = serve("/f", 4 * MIB, 16);
    server.set_default_fault("/f", Fault::CloseAfter(cut));
    let mut session = FileSource::open(url(&server, "/f"), quick().with_max_retries(0)).unwrap();
    let (got, err) = read_until_error(&mut session);
    assert!(got == body[..got.len()], "bytes before the error");
    assert!(matches!(file_error(&err), FileError::Network(_)), "{err:?}");
    let failed_at = got.len() as u64;
    assert_eq!(failed_at, cut, "the first response was cut at {cut}");
    let mut next = vec![0; 100];
    session.read_exact(&mut next).unwrap();
    assert!(
        next == body[cut as usize..cut as usize + 100],
        "bytes after the error"
    );
    let ranges: Vec<Option<String>> = server.requests().into_iter().map(|r| r.range).collect();
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert_eq!(ranges[1].as_deref(), Some(format!("bytes={cut}-").as_str()));

    // After a seek, by contrast, the first request is a bounded window.
    let far = 3 * MIB as u64;
    session.seek(SeekFrom::Start(far)).unwrap();
    session.read_exact(&mut next).unwrap();
    assert!(
        next == body[far as usize..far as usize + 100],
        "bytes after the seek"
    );
    let last = server.requests().last().and_then(|r| r.range.clone());
    let range = last.expect("a range request after the seek");
    assert!(
        range.starts_with(&format!("bytes={far}-")) && !range.ends_with('-'),
        "{range}"
    );
}

#[test]
fn a_refused_connection_is_retried_then_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}/x", listener.local_addr().unwrap());
    drop(listener);
    let started = Instant::now();
    let err = FileSource::open(address.parse().unwrap(), quick().with_max_retries(3)).unwrap_err();
    assert!(matches!(err, FileError::Network(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

// ------------------------------------------------------------ servers without Range

#[test]
fn a_server_that_ignores_range_is_read_sequentially_and_resumed_by_skipping() {
    let (server, body) = serve("/f", 4 * MIB, 16);
    server.set_default_fault("/f", Fault::IgnoreRange);
    server.push_faults("/f", [Fault::CloseAfter(MIB as u64 + 7)]);
    let mut session = FileSource::open(url(&server, "/f"), quick()).unwrap();
    assert!(
        read_all(&mut session).unwrap() == body,
        "resumed by skipping"
    );

    let mut session =
        FileSource::open(url(&server, "/f"), quick().with_look_ahead(64 * 1024)).unwrap();
    // This server advertises `Accept-Ranges: bytes`: its 200 to `bytes=0-` proves nothing
    // (httpbin does the same and honours later ranges). The 200 to the seek's range does.
    let mut head = vec![0; 1000];
    session.read_exact(&mut head).unwrap();
    session.seek_bytes(3 * MIB as i64).unwrap();
    let mut buf = vec![0; 1000];
    session.read_exact(&mut buf).unwrap();
    assert!(
        buf == body[3 * MIB..3 * MIB + 1000],
        "forward seek served by skipping"
    );
    assert!(!session.is_seekable(), "Range is not honoured");
    let err = session.seek(SeekFrom::Start(500_000)).unwrap_err();
    assert_eq!(file_error(&err), &FileError::SeekNotSupported);
}

#[test]
fn a_range_ignored_mid_stream_is_skipped_never_spliced() {
    let (server, body) = serve("/f", 4 * MIB, 17);
    server.push_faults("/f", [Fault::CloseAfter(MIB as u64), Fault::IgnoreRange]);
    let mut session = FileSource::open(url(&server, "/f"), quick()).unwrap();
    assert!(read_all(&mut session).unwrap() == body);
}

// ------------------------------------------------------------ a changed resource

#[test]
fn content_changed_after_request_k_fails_with_resource_changed() {
    let (server, body) = serve("/f", 4 * MIB, 18);
    let new_body = pattern(4 * MIB, 99);
    server.push_faults(
        "/f",
        [
            Fault::CloseAfter(MIB as u64),
            Fault::ChangeContent {
                body: new_body.clone(),
                etag: None,
            },
        ],
    );
    let mut session = FileSource::open(url(&server, "/f"), quick()).unwrap();
    let (got, err) = read_until_error(&mut session);
    assert!(
        matches!(file_error(&err), FileError::ResourceChanged(_)),
        "{err:?}"
    );
    assert_eq!(got.len(), MIB, "exactly the bytes of the first version");
    assert!(got == body[..MIB]);
    // Sticky: nothing of the new version ever follows.
    let again = session.read(&mut [0; 10]).unwrap_err();
    assert!(matches!(file_error(&again), FileError::ResourceChanged(_)));
    let resume = &server.requests()[1];
    assert_eq!(
        resume.header("if-range"),
        Some(format!("\"v1-{}\"", 4 * MIB).as_str())
    );
}

#[test]
fn a_different_total_length_in_content_range_is_a_changed_resource() {
    let (server, body) = serve("/f", 4 * MIB, 19);
    let mut options = FileOptions::new();
    options.etag = None; // only the length can tell
    options.last_modified = false;
    server.set_file_options("/f", options);
    server.push_faults(
        "/f",
        [
            Fault::CloseAfter(MIB as u64),
            Fault::ChangeContent {
                body: pattern(5 * MIB, 20),
                etag: None,
            },
        ],
    );
    let mut session = FileSource::open(url(&server, "/f"), quick()).unwrap();
    let (got, err) = read_until_error(&mut session);
    assert!(
        matches!(file_error(&err), FileError::ResourceChanged(_)),
        "{err:?}"
    );
    assert!(got == body[..got.len()]);
}

#[test]
fn last_modified_is_the_validator_without_a_strong_etag() {
    let (server, body) = serve("/f", 2 * MIB, 21);
    let mut options = FileOptions::new();
    options.etag = Some("W/\"weak\"".into());
    server.set_file_options("/f", options);
    server.push_faults("/f", [Fault::CloseAfter(MIB as u64)]);
    let mut session = FileSource::open(url(&server, "/f"), quick()).unwrap();
    assert!(read_all(&mut session).unwrap() == body);
    let resume = &server.requests()[1];
    assert_eq!(
        resume.header("if-range"),
        server.last_modified("/f").as_deref(),
        "weak ETags never go in If-Range"
    );
}

#[test]
fn a_416_past_a_shrunken_file_is_a_changed_resource() {
    let (server, _) = serve("/f", 8 * MIB, 22);
    let mut session = open_past_the_head(&server, "/f");
    server.replace_file("/f", pattern(MIB, 23), None);
    session.seek_bytes(6 * MIB as i64).unwrap();
    let err = session.read(&mut [0; 10]).unwrap_err();
    assert!(
        matches!(file_error(&err), FileError::ResourceChanged(_)),
        "{err:?}"
    );
}

#[test]
fn a_416_for_a_start_inside_an_unchanged_file_is_no_eof() {
    let (server, _) = serve("/f", 8 * MIB, 24);
    let mut session = open_past_the_head(&server, "/f");
    server.push_faults("/f", [Fault::Respond416]);
    session.seek_bytes(6 * MIB as i64).unwrap();
    let err = session.read(&mut [0; 10]).unwrap_err();
    assert!(
        matches!(file_error(&err), FileError::Protocol(_)),
        "{err:?}"
    );
}

#[test]
fn a_malformed_content_range_is_a_protocol_error_and_its_bytes_are_discarded() {
    let (server, body) = serve("/f", 8 * MIB, 25);
    let mut session = open_past_the_head(&server, "/f");
    for bad in ["bytes 0-99", "bytes x-y/z", "lines 6291456-8388607/8388608"] {
        server.push_faults("/f", [Fault::MalformedContentRange(bad.into())]);
        session.seek_bytes(6 * MIB as i64).unwrap();
        let err = session.read(&mut [0; 10]).unwrap_err();
        assert!(
            matches!(file_error(&err), FileError::Protocol(_)),
            "{bad}: {err:?}"
        );
        session.seek_bytes(1000).unwrap();
    }
    session.seek_bytes(6 * MIB as i64).unwrap();
    let mut buf = vec![0; 1000];
    session.read_exact(&mut buf).unwrap();
    assert!(buf == body[6 * MIB..6 * MIB + 1000]);
}

#[test]
fn a_206_with_a_wrong_start_is_a_protocol_error() {
    let (server, body) = serve("/f", 8 * MIB, 26);
    let mut session = open_past_the_head(&server, "/f");
    server.push_faults("/f", [Fault::WrongContentRangeStart(4096)]);
    session.seek_bytes(6 * MIB as i64).unwrap();
    let err = session.read(&mut [0; 10]).unwrap_err();
    assert!(
        matches!(file_error(&err), FileError::Protocol(_)),
        "{err:?}"
    );
    let mut buf = vec![0; 1000];
    session.read_exact(&mut buf).unwrap();
    assert!(buf == body[6 * MIB..6 * MIB + 1000]);
}

// ------------------------------------------------------------ redirects

#[test]
fn redirects_are_followed_and_later_ranges_go_to_the_final_url() {
    let (server, body) = serve("/real.bin", 8 * MIB, 27);
    server.set_default_fault(
        "/old.bin",
        Fault::Redirect {
            status: 302,
            location: "/real.bin".into(),
        },
    );
    let mut session = open_past_the_head(&server, "/old.bin");
    session.seek_bytes(5 * MIB as i64).unwrap();
    let mut buf = vec![0; 1000];
    session.read_exact(&mut buf).unwrap();
    assert!(buf == body[5 * MIB..5 * MIB + 1000]);
    let requests = server.requests();
    assert_eq!(requests[0].path, "/old.bin");
    assert_eq!(
        requests[1].range.as_deref(),
        Some("bytes=0-"),
        "Range survives the 302"
    );
    assert_eq!(requests.last().unwrap().path, "/real.bin");
    assert_eq!(
        server.request_count("/old.bin"),
        1,
        "the redirect is not repeated"
    );
    let direct = FileSource::open(url(&server, "/old.bin"), quick()).unwrap();
    assert_eq!(
        session.asset_id(),
        direct.asset_id(),
        "the id is the original URL's"
    );
    let real = FileSource::open(url(&server, "/real.bin"), quick()).unwrap();
    assert_ne!(session.asset_id(), real.asset_id());
}

#[test]
fn credentials_never_follow_a_redirect_to_another_origin() {
    let origin = TestServer::start();
    let cdn = TestServer::start();
    let body = pattern(8 * MIB, 31);
    cdn.add_file("/real.bin", body.clone());
    origin.set_default_fault(
        "/track",
        Fault::Redirect {
            status: 302,
            location: cdn.url("/real.bin"),
        },
    );
    let mut session = FileSource::open(
        url(&origin, "/track"),
        quick()
            .with_look_ahead(64 * 1024)
            .with_header("Authorization", "Bearer secret"),
    )
    .unwrap();
    let mut head = vec![0; 1000];
    session.read_exact(&mut head).unwrap();
    session.seek_bytes(5 * MIB as i64).unwrap();
    session.read_exact(&mut head).unwrap();
    assert!(head == body[5 * MIB..5 * MIB + 1000]);
    assert_eq!(
        origin.requests()[0].header("authorization"),
        Some("Bearer secret")
    );
    let to_cdn = cdn.requests();
    assert!(to_cdn.len() >= 2, "the seek went to the final URL");
    assert!(
        to_cdn.iter().all(|r| r.header("authorization").is_none()),
        "the credential leaked to another origin"
    );
}

#[test]
fn a_redirect_loop_is_a_protocol_error() {
    let server = TestServer::start();
    server.set_default_fault(
        "/loop",
        Fault::Redirect {
            status: 302,
            location: "/loop".into(),
        },
    );
    let started = Instant::now();
    let err = FileSource::open(url(&server, "/loop"), quick().with_max_redirects(5)).unwrap_err();
    assert!(matches!(err, FileError::Protocol(_)), "{err:?}");
    assert_eq!(server.request_count("/loop"), 6);
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// (The https-to-http redirect rule is unit-tested in `range_policy`: it is checked on
/// the redirect target before any request goes there.)
#[test]
fn a_tls_failure_is_fatal_never_retried_nor_downgraded() {
    // A plain HTTP server answering on an https URL fails the TLS handshake.
    let server = TestServer::start();
    server.add_file("/f", pattern(1000, 28));
    let address = server.url("/f").replace("http://", "https://");
    let started = Instant::now();
    let err = FileSource::open(address.parse().unwrap(), FileSourceOptions::new()).unwrap_err();
    assert!(matches!(err, FileError::Network(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a TLS failure was retried: {err:?}"
    );
    assert_eq!(
        server.request_count("/f"),
        0,
        "nothing was sent in the clear"
    );
}

// ------------------------------------------------------------ credentials

#[test]
fn credentials_never_show_in_debug_or_errors() {
    let (server, _) = serve("/f", 1000, 29);
    let address = server.url("/f").replace("http://", "http://alice:hunter2@");
    let options = FileSourceOptions::new()
        .with_header("Authorization", "Bearer hunter2")
        .with_header("Cookie", "sid=hunter2");
    let session = FileSource::open(address.parse().unwrap(), options.clone()).unwrap();
    for shown in [format!("{options:?}"), format!("{session:?}")] {
        assert!(!shown.contains("hunter2"), "{shown}");
    }
    let missing = server
        .url("/missing")
        .replace("http://", "http://alice:hunter2@");
    let err = FileSource::open(missing.parse().unwrap(), options).unwrap_err();
    for shown in [format!("{err:?}"), err.to_string()] {
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}

// ------------------------------------------------------------ fault matrix

#[test]
fn fault_matrix_model_runs_under_random_drops_stalls_and_503s() {
    let server = TestServer::start();
    let body = pattern(6 * MIB + 999, 30);
    let (mut faults_total, mut retries_total, mut ops_total) = (0, 0, 0);
    let (mut served_total, mut read_total) = (0, 0);
    for seed in 1..=4u64 {
        // A path per seed: faults a run leaves unconsumed cannot leak into the next.
        let path = format!("/f{seed}");
        server.add_file(&path, body.clone());
        let mut rng = Rng(seed * 7919);
        let faults: Vec<Fault> = (0..400)
            .map(|_| match rng.below(10) {
                0 | 1 => Fault::CloseAfter(rng.below(2 * MIB as u64)),
                2 => Fault::StallAfter(rng.below(MIB as u64), Duration::from_secs(30)),
                3 => Fault::Status {
                    code: 503,
                    retry_after: Some("0".into()),
                    body: b"<html>busy</html>".to_vec(),
                },
                _ => Fault::None,
            })
            .collect();
        server.push_faults(&path, faults.clone());
        let mut session = FileSource::open(
            url(&server, &path),
            FileSourceOptions::new()
                .with_read_timeout(Duration::from_millis(200))
                .with_retry_delay(Duration::from_millis(1), Duration::from_millis(20))
                .with_max_retries(20),
        )
        .unwrap();
        let ops = run_model(&mut session, &body, seed, 600);
        let requests = server.request_count(&path);
        let injected = faults
            .iter()
            .take(requests)
            .filter(|f| !matches!(f, Fault::None))
            .count();
        let served = server.bytes_served(&path);
        println!(
            "fault matrix seed {seed}: {ops} ops, {requests} requests, {injected} faults \
             injected, {} retries, {served} bytes served for {} bytes fetched",
            session.retry_count(),
            session.bytes_fetched()
        );
        faults_total += injected;
        retries_total += session.retry_count();
        ops_total += ops;
        served_total += served;
        read_total += session.bytes_fetched();
    }
    println!(
        "fault matrix total: {ops_total} ops, {faults_total} faults injected, \
         {retries_total} retries, {served_total} bytes served ({read_total} received), \
         0 mismatches (every byte compared)"
    );
    assert!(
        faults_total > 0 && retries_total > 0,
        "no fault was ever hit"
    );
}
