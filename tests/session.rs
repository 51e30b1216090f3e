//! The core session contract: byte-exact reads, the seek contract, request counts,
//! backpressure, stop and drop. Every test runs against a real HTTP server on loopback.

mod support;

use std::io::{self, Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use kithara_file::{FileError, FileSession, FileSource, FileSourceOptions, FileStream};
use support::model::run_model;
use support::{file_error, pattern, url, Fault, FileOptions, TestServer};

const MIB: usize = 1024 * 1024;

fn serve(len: usize, seed: u64) -> (TestServer, Vec<u8>) {
    let server = TestServer::start();
    let body = pattern(len, seed);
    server.add_file("/file.bin", body.clone());
    (server, body)
}

fn open(server: &TestServer) -> FileSession {
    FileSource::open(url(server, "/file.bin"), FileSourceOptions::new()).unwrap()
}

/// A session whose look-ahead is one chunk, so a far seek cannot be served by draining.
fn open_small(server: &TestServer) -> FileSession {
    FileSource::open(
        url(server, "/file.bin"),
        FileSourceOptions::new().with_look_ahead(64 * 1024),
    )
    .unwrap()
}

fn read_n(session: &mut FileSession, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    session.read_exact(&mut buf).unwrap();
    buf
}

fn ranges_sent(server: &TestServer) -> Vec<Option<String>> {
    server.requests().into_iter().map(|r| r.range).collect()
}

/// Waits for a condition that another thread makes true; the deadline is only a bound.
fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

#[test]
fn handles_are_send_sync_static() {
    fn assert_send_sync_static<T: Send + Sync + 'static>() {}
    fn assert_stream<T: futures_core::Stream + Send + Unpin + 'static>() {}
    assert_send_sync_static::<FileSession>();
    assert_stream::<FileStream>();
}

#[test]
fn sequential_reads_are_byte_exact_for_every_size() {
    let server = TestServer::start();
    let sizes = [
        0,
        1,
        1000,
        64 * 1024 - 1,
        64 * 1024,
        64 * 1024 + 1,
        MIB + 7,
        5 * MIB + 3,
    ];
    for (i, &size) in sizes.iter().enumerate() {
        let path = format!("/f{i}.bin");
        let body = pattern(size, i as u64);
        server.add_file(&path, body.clone());
        let mut session = FileSource::open(url(&server, &path), FileSourceOptions::new()).unwrap();
        assert_eq!(session.byte_len(), Some(size as u64), "size {size}");
        let mut got = Vec::new();
        session.read_to_end(&mut got).unwrap();
        assert!(got == body, "size {size}: bytes differ");
        assert_eq!(session.read(&mut [0; 16]).unwrap(), 0, "EOF is sticky");
    }
}

#[test]
fn a_64_mib_file_is_read_whole_in_one_request() {
    let (server, body) = serve(64 * MIB, 64);
    let mut session = open(&server);
    let mut got = Vec::with_capacity(body.len());
    session.read_to_end(&mut got).unwrap();
    assert!(got == body, "64 MiB differ");
    assert_eq!(server.request_count("/file.bin"), 1);
    assert_eq!(session.request_count(), 1);
    println!(
        "64 MiB sequential read: {} request(s)",
        session.request_count()
    );
}

#[test]
fn open_returns_after_headers_with_the_length_known() {
    let (server, _) = serve(123_457, 1);
    let session = open(&server);
    assert_eq!(session.byte_len(), Some(123_457));
    assert!(session.is_seekable());
    assert_eq!(session.position(), 0);
    let first = &server.requests()[0];
    assert_eq!(first.header("accept-encoding"), Some("identity"));
    assert_eq!(first.range.as_deref(), Some("bytes=0-"));
}

#[test]
fn open_reports_http_status_bad_urls_and_bad_options() {
    let server = TestServer::start();
    let err = FileSource::open(url(&server, "/missing"), FileSourceOptions::new()).unwrap_err();
    assert!(
        matches!(err, FileError::HttpStatus { status: 404, .. }),
        "{err:?}"
    );
    for bad in [
        "ftp://127.0.0.1/x",
        "file:///etc/passwd",
        "data:text/plain,hi",
    ] {
        let err = FileSource::open(bad.parse().unwrap(), FileSourceOptions::new()).unwrap_err();
        assert!(matches!(err, FileError::InvalidUrl(_)), "{bad}: {err:?}");
    }
    let err = FileSource::open(
        url(&server, "/missing"),
        FileSourceOptions::new().with_look_ahead(1),
    )
    .unwrap_err();
    assert!(matches!(err, FileError::InvalidOptions(_)), "{err:?}");
    assert_eq!(
        server.request_count("/missing"),
        1,
        "bad options send nothing"
    );
}

#[test]
fn user_headers_and_user_agent_are_sent() {
    let (server, _) = serve(1000, 2);
    let _session = FileSource::open(
        url(&server, "/file.bin"),
        FileSourceOptions::new()
            .with_header("X-Token", "abc")
            .with_user_agent("my-player/1.0"),
    )
    .unwrap();
    let request = &server.requests()[0];
    assert_eq!(request.header("x-token"), Some("abc"));
    assert_eq!(request.header("user-agent"), Some("my-player/1.0"));
}

// ---------------------------------------------------------------- seek contract

#[test]
fn seek_bytes_clamps_negative_and_refuses_past_the_end() {
    let (server, body) = serve(10_000, 3);
    let mut session = open(&server);
    read_n(&mut session, 100);
    assert_eq!(session.seek_bytes(-5).unwrap(), 0);
    assert_eq!(read_n(&mut session, 10), body[..10]);

    let requests = server.request_count("/file.bin");
    let err = session.seek_bytes(10_001).unwrap_err();
    assert_eq!(
        err,
        FileError::InvalidSeekPosition {
            position: 10_001,
            size: 10_000
        }
    );
    assert_eq!(session.position(), 10, "a refused seek leaves the position");
    assert_eq!(
        server.request_count("/file.bin"),
        requests,
        "and sends nothing"
    );

    assert_eq!(session.seek_bytes(10_000).unwrap(), 10_000);
    assert_eq!(session.read(&mut [0; 10]).unwrap(), 0);
}

#[test]
fn io_seek_follows_std() {
    let (server, body) = serve(100_000, 4);
    let mut session = open(&server);
    assert_eq!(session.seek(SeekFrom::Start(10)).unwrap(), 10);
    assert_eq!(session.seek(SeekFrom::Current(5)).unwrap(), 15);
    assert_eq!(read_n(&mut session, 5), body[15..20]);
    assert_eq!(session.seek(SeekFrom::End(-128)).unwrap(), 99_872);
    assert_eq!(read_n(&mut session, 128), body[99_872..]);
    assert_eq!(session.read(&mut [0; 1]).unwrap(), 0);

    let err = session.seek(SeekFrom::Current(-200_000)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let err = session.seek(SeekFrom::End(1)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(
        file_error(&err),
        &FileError::InvalidSeekPosition {
            position: 100_001,
            size: 100_000
        }
    );
    assert_eq!(session.position(), 100_000, "failed seeks moved nothing");
    assert_eq!(session.seek(SeekFrom::End(0)).unwrap(), 100_000);
    assert_eq!(session.stream_position().unwrap(), 100_000);
}

#[test]
#[allow(
    clippy::seek_from_current,
    reason = "SeekFrom::Current(0) itself is under test: users call it"
)]
fn current_zero_and_repeated_seeks_send_nothing() {
    let (server, body) = serve(16 * MIB, 5);
    let mut session = open(&server);
    read_n(&mut session, 1000);
    let before = server.request_count("/file.bin");
    for _ in 0..10 {
        assert_eq!(session.seek(SeekFrom::Current(0)).unwrap(), 1000);
    }
    assert_eq!(server.request_count("/file.bin"), before);

    for _ in 0..5 {
        session.seek(SeekFrom::Start(12 * MIB as u64)).unwrap();
        session.seek_bytes(12 * MIB as i64).unwrap();
    }
    assert_eq!(read_n(&mut session, 1000), body[12 * MIB..12 * MIB + 1000]);
    assert_eq!(
        server.request_count("/file.bin"),
        before + 1,
        "one request for five identical seeks: {:?}",
        ranges_sent(&server)
    );
}

#[test]
fn seeks_into_held_bytes_send_no_request() {
    let (server, body) = serve(8 * MIB, 6);
    let mut session = open(&server);
    read_n(&mut session, 300 * 1024);
    // The driver runs ahead; wait until it has sent well past the reader.
    wait_until(
        "the look-ahead to hold the target",
        Duration::from_secs(10),
        || {
            session
                .buffered_ranges()
                .iter()
                .any(|r| r.start <= 900 * 1024 && r.end >= 904 * 1024)
        },
    );
    let before = server.request_count("/file.bin");

    // Backward, within the last 256 KiB read.
    session.seek(SeekFrom::Current(-200 * 1024)).unwrap();
    let at = 100 * 1024;
    assert_eq!(read_n(&mut session, 4096), body[at..at + 4096]);
    // Forward, into bytes downloaded ahead but unread.
    session.seek_bytes(900 * 1024).unwrap();
    assert_eq!(
        read_n(&mut session, 4096),
        body[900 * 1024..900 * 1024 + 4096]
    );
    assert_eq!(server.request_count("/file.bin"), before, "no request");
}

#[test]
fn other_seeks_send_a_range_request_and_old_bytes_never_leak() {
    let (server, body) = serve(16 * MIB, 7);
    let mut session = open(&server);
    read_n(&mut session, 10);
    session.seek_bytes(12 * MIB as i64).unwrap();
    let got = read_n(&mut session, 2 * MIB);
    assert!(
        got == body[12 * MIB..14 * MIB],
        "bytes after a far seek differ"
    );
    // The requests after the seek start where the reader went (growing windows, then
    // open-ended), each exactly where the previous one ended.
    let after_seek = |ranges: Vec<Option<String>>, from: usize| {
        let starts: Vec<u64> = ranges
            .into_iter()
            .flatten()
            .map(|r| {
                r["bytes=".len()..]
                    .split('-')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .skip_while(|&start| start != from as u64)
            .collect();
        assert_eq!(
            starts.first(),
            Some(&(from as u64)),
            "no request from {from}"
        );
        assert!(starts.windows(2).all(|w| w[0] < w[1]), "{starts:?}");
    };
    after_seek(ranges_sent(&server), 12 * MIB);
    // Back to the start: far outside the history; a new request again.
    session.seek(SeekFrom::Start(1)).unwrap();
    assert_eq!(read_n(&mut session, 100_000), body[1..100_001]);
    after_seek(ranges_sent(&server), 1);
}

#[test]
fn without_range_seek_no_range_header_is_ever_sent() {
    let (server, body) = serve(3 * MIB, 8);
    let mut session = FileSource::open(
        url(&server, "/file.bin"),
        FileSourceOptions::new().with_range_seek(false),
    )
    .unwrap();
    assert!(!session.is_seekable());
    read_n(&mut session, 1000);
    // Forward: read and discard.
    session.seek_bytes(2 * MIB as i64).unwrap();
    assert_eq!(read_n(&mut session, 1000), body[2 * MIB..2 * MIB + 1000]);
    // Backward within history works; beyond it cannot be served.
    session.seek(SeekFrom::Current(-500)).unwrap();
    assert_eq!(
        read_n(&mut session, 500),
        body[2 * MIB + 500..2 * MIB + 1000]
    );
    // Byte 1 MiB was skipped, never read: not held (the first chunk may be).
    let err = session.seek(SeekFrom::Start(MIB as u64)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    assert_eq!(file_error(&err), &FileError::SeekNotSupported);
    assert_eq!(
        session.seek_bytes(MIB as i64).unwrap_err(),
        FileError::SeekNotSupported
    );
    let mut rest = Vec::new();
    session.read_to_end(&mut rest).unwrap();
    assert!(rest == body[2 * MIB + 1000..]);
    assert!(
        server.requests().iter().all(|r| r.range.is_none()),
        "{:?}",
        ranges_sent(&server)
    );
}

#[test]
fn unknown_length_reads_to_the_end_and_accepts_any_seek() {
    let server = TestServer::start();
    let body = pattern(4 * MIB, 9);
    server.add_file("/chunked", body.clone());
    let mut options = FileOptions::new();
    options.content_length = false;
    options.ranges = false;
    server.set_file_options("/chunked", options);
    // A one-chunk look-ahead: the driver cannot reach the end before the asserts below.
    let mut session = FileSource::open(
        url(&server, "/chunked"),
        FileSourceOptions::new().with_look_ahead(64 * 1024),
    )
    .unwrap();
    assert_eq!(session.byte_len(), None);
    assert!(!session.is_seekable());
    let err = session.seek(SeekFrom::End(-10)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    assert_eq!(session.seek_bytes(1 << 40).unwrap(), 1 << 40);
    assert_eq!(session.read(&mut [0; 10]).unwrap(), 0, "past the real end");
    assert_eq!(session.byte_len(), Some(4 * MIB as u64), "known at the end");
}

#[test]
fn unknown_length_sequential_read_is_exact() {
    let server = TestServer::start();
    let body = pattern(2 * MIB + 5, 10);
    server.add_file("/chunked", body.clone());
    let mut options = FileOptions::new();
    options.content_length = false;
    server.set_file_options("/chunked", options);
    let mut session = FileSource::open(url(&server, "/chunked"), FileSourceOptions::new()).unwrap();
    let mut got = Vec::new();
    session.read_to_end(&mut got).unwrap();
    assert!(got == body);
    assert_eq!(session.byte_len(), Some(body.len() as u64));
}

#[test]
fn a_206_with_the_wrong_start_is_a_protocol_error() {
    let (server, body) = serve(2 * MIB, 11);
    let mut session = open_small(&server);
    read_n(&mut session, 10);
    server.push_faults("/file.bin", [Fault::WrongContentRangeStart(-100)]);
    session.seek_bytes(MIB as i64 + 500_000).unwrap();
    let err = session.read(&mut [0; 100]).unwrap_err();
    assert!(
        matches!(file_error(&err), FileError::Protocol(_)),
        "{err:?}"
    );
    // The misplaced bytes were never handed out; a new read asks again.
    assert_eq!(
        read_n(&mut session, 100),
        body[MIB + 500_000..MIB + 500_100]
    );
}

#[test]
fn a_200_answer_to_a_range_request_is_never_spliced() {
    let (server, body) = serve(2 * MIB, 12);
    let mut session = open_small(&server);
    read_n(&mut session, 10);
    server.push_faults("/file.bin", [Fault::IgnoreRange]);
    let at = MIB + 12_345;
    session.seek_bytes(at as i64).unwrap();
    assert_eq!(read_n(&mut session, 70_000), body[at..at + 70_000]);
}

// ---------------------------------------------------------------- model test

#[test]
fn model_random_reads_and_seeks_match_the_file() {
    let (server, body) = serve(6 * MIB + 4321, 13);
    let mut total = 0;
    for seed in 1..=6 {
        let mut session = open(&server);
        total += run_model(&mut session, &body, seed, 1000);
    }
    println!("model test: {total} operations over 6 seeds");
    assert!(total >= 5000);
}

#[test]
fn model_with_a_small_look_ahead() {
    let (server, body) = serve(3 * MIB + 17, 14);
    let mut session = FileSource::open(
        url(&server, "/file.bin"),
        FileSourceOptions::new().with_look_ahead(64 * 1024),
    )
    .unwrap();
    run_model(&mut session, &body, 99, 1000);
}

// ---------------------------------------------------------------- backpressure

#[test]
fn a_look_ahead_past_1_gib_is_1_gib() {
    // `u64::MAX` ("as much as it can") used to ask the channel for 2^46 slots up front:
    // the process aborted. Metered, the windows end at most 1 GiB past the reader.
    let (server, body) = serve(3 * MIB, 7);
    for look_ahead in [u64::MAX, u64::MAX / 2, 1 << 40, (1 << 30) + 1] {
        for metered in [false, true] {
            server.reset_counters();
            let options = FileSourceOptions::new()
                .with_look_ahead(look_ahead)
                .with_metered_link(metered);
            let mut session = FileSource::open(url(&server, "/file.bin"), options).unwrap();
            let mut got = Vec::new();
            session.read_to_end(&mut got).unwrap();
            assert!(got == body, "look-ahead {look_ahead}, metered {metered}");
            for request in server.requests() {
                let range = request.range.expect("a Range");
                let (first, last) = range.trim_start_matches("bytes=").split_once('-').unwrap();
                if let Ok(last) = last.parse::<u64>() {
                    let first: u64 = first.parse().unwrap();
                    assert!(last - first < 1 << 30, "{range}");
                }
            }
        }
    }
}

#[test]
fn memory_ahead_of_the_reader_is_bounded_by_the_look_ahead() {
    let (server, body) = serve(32 * MIB, 15);
    let look_ahead = 512 * 1024;
    let mut session = FileSource::open(
        url(&server, "/file.bin"),
        FileSourceOptions::new().with_look_ahead(look_ahead),
    )
    .unwrap();
    let mut buf = vec![0; 64 * 1024];
    let mut position = 0;
    let mut max_ahead = 0;
    while position < body.len() {
        let n = session.read(&mut buf).unwrap();
        assert!(buf[..n] == body[position..position + n]);
        position += n;
        let ahead = session.bytes_fetched().saturating_sub(position as u64);
        max_ahead = max_ahead.max(ahead);
    }
    // Channel slots, the driver's chunk in hand, and the socket read in progress.
    let bound = look_ahead + 3 * 64 * 1024;
    assert!(
        max_ahead <= bound,
        "driver ran {max_ahead} bytes ahead; bound {bound}"
    );
    assert_eq!(server.request_count("/file.bin"), 1);
}

// ---------------------------------------------------------------- stop and drop

#[test]
fn stop_releases_a_read_blocked_on_a_stalled_server() {
    let server = TestServer::start();
    server.add_file("/stall", pattern(MIB, 16));
    server.push_faults("/stall", [Fault::StallAfter(1000, Duration::from_secs(30))]);
    let session = std::sync::Arc::new(
        FileSource::open(
            url(&server, "/stall"),
            FileSourceOptions::new().with_read_timeout(Duration::from_secs(30)),
        )
        .unwrap(),
    );
    let reader = {
        let session = std::sync::Arc::clone(&session);
        std::thread::spawn(move || {
            let mut buf = vec![0; 4096];
            let mut handle = &*session;
            let mut got = 0;
            loop {
                match handle.read(&mut buf) {
                    Ok(0) => return (got, None),
                    Ok(n) => got += n,
                    Err(e) => return (got, Some(e)),
                }
            }
        })
    };
    wait_until(
        "the reader to consume the served bytes",
        Duration::from_secs(10),
        || session.position() == 1000,
    );
    let stopped_at = Instant::now();
    session.stop();
    let (got, err) = reader.join().unwrap();
    assert!(
        stopped_at.elapsed() < Duration::from_secs(1),
        "{:?}",
        stopped_at.elapsed()
    );
    assert_eq!(got, 1000);
    let err = err.expect("a stopped read is an error, not EOF");
    assert_eq!(file_error(&err), &FileError::Stopped);
    assert_ne!(err.kind(), io::ErrorKind::Interrupted);
    assert_ne!(err.kind(), io::ErrorKind::UnexpectedEof);
}

/// Threads of this process named like a session driver (Linux cuts names to 15 bytes).
fn driver_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "kithara-file-dr")
        .count()
}

#[test]
fn dropping_sessions_leaves_no_thread_behind() {
    let server = TestServer::start();
    server.add_file("/big", pattern(8 * MIB, 17));
    server.add_file("/stall", pattern(MIB, 18));
    server.set_default_fault("/stall", Fault::StallAfter(100, Duration::from_secs(30)));
    let baseline = driver_threads();
    let started = Instant::now();
    for i in 0..30 {
        let path = if i % 3 == 0 { "/stall" } else { "/big" };
        let mut session = FileSource::open(url(&server, path), FileSourceOptions::new()).unwrap();
        let mut buf = [0; 50];
        session.read_exact(&mut buf).unwrap();
        drop(session);
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "drops waited on the network: {:?}",
        started.elapsed()
    );
    // Drop joined every driver; the kernel may list a joined thread for a moment longer.
    wait_until(
        "driver threads back to the baseline",
        Duration::from_secs(2),
        || driver_threads() <= baseline,
    );
}

#[test]
fn the_driver_thread_is_named() {
    let (server, _) = serve(1000, 19);
    let session = open(&server);
    let names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .collect();
    // Linux truncates names to 15 bytes.
    assert!(
        names.iter().any(|n| n.trim() == "kithara-file-dr"),
        "{names:?}"
    );
    drop(session);
}

// ---------------------------------------------------------------- async stream

#[test]
fn stream_collects_the_whole_file_under_a_plain_executor() {
    use futures::StreamExt;
    let (server, body) = serve(3 * MIB + 11, 20);
    let session = open(&server);
    let chunks: Vec<_> = futures::executor::block_on(session.stream().collect::<Vec<_>>());
    let got: Vec<u8> = chunks
        .into_iter()
        .flat_map(|c| c.unwrap().to_vec())
        .collect();
    assert!(got == body);
    assert_eq!(session.position(), body.len() as u64);
}

#[test]
fn stream_continues_from_a_seek_under_tokio() {
    use futures::StreamExt;
    let (server, body) = serve(5 * MIB, 21);
    let session = open(&server);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let got = runtime.block_on(async {
        session.seek_bytes(4 * MIB as i64).unwrap();
        let mut stream = session.stream();
        let mut got = Vec::new();
        while let Some(chunk) = stream.next().await {
            got.extend_from_slice(&chunk.unwrap());
        }
        got
    });
    assert!(got == body[4 * MIB..]);
}

#[test]
fn a_stopped_session_ends_its_stream_with_one_stopped_error() {
    use futures::StreamExt;
    let server = TestServer::start();
    server.add_file("/stall", pattern(MIB, 22));
    server.push_faults("/stall", [Fault::StallAfter(10, Duration::from_secs(30))]);
    let session = FileSource::open(url(&server, "/stall"), FileSourceOptions::new()).unwrap();
    let mut stream = session.stream();
    let stopper = {
        let started = Instant::now();
        futures::executor::block_on(async {
            let first = stream.next().await.unwrap().unwrap();
            assert_eq!(first.len(), 10);
            session.stop();
            // One `Stopped`, then the end: a stopped download is not a finished one.
            assert_eq!(stream.next().await, Some(Err(FileError::Stopped)));
            assert!(stream.next().await.is_none());
            assert!(stream.next().await.is_none());
        });
        started.elapsed()
    };
    assert!(stopper < Duration::from_secs(5));
}

#[test]
fn io_errors_keep_their_kind_and_the_file_error() {
    let cases = [
        (FileError::SeekNotSupported, io::ErrorKind::Unsupported),
        (
            FileError::InvalidSeekPosition {
                position: 2,
                size: 1,
            },
            io::ErrorKind::InvalidInput,
        ),
        (
            FileError::Network("x".into()),
            io::ErrorKind::ConnectionAborted,
        ),
        (FileError::Stopped, io::ErrorKind::Other),
    ];
    for (error, kind) in cases {
        let io_err: io::Error = error.clone().into();
        assert_eq!(io_err.kind(), kind);
        assert_eq!(file_error(&io_err), &error);
    }
}

#[test]
fn the_last_256_kib_read_are_always_held() {
    let (server, body) = serve(8 * MIB, 23);
    for look_ahead in [64 * 1024, 4 * MIB as u64] {
        let mut session = FileSource::open(
            url(&server, "/file.bin"),
            FileSourceOptions::new().with_look_ahead(look_ahead),
        )
        .unwrap();
        let mut position = 0usize;
        for step in [300_000usize, 777_777, 1_000_003, 2_500_000] {
            read_n(&mut session, step);
            position += step;
            let requests = session.request_count();
            let back = 256 * 1024;
            session.seek(SeekFrom::Current(-(back as i64))).unwrap();
            let got = read_n(&mut session, back);
            assert!(got == body[position - back..position]);
            assert_eq!(
                session.request_count(),
                requests,
                "look-ahead {look_ahead}: seeking back 256 KiB from {position} sent a request"
            );
        }
    }
}

#[test]
fn a_stream_seeking_away_from_a_stalled_request_does_not_wait_for_the_read_timeout() {
    use futures::StreamExt;
    let server = TestServer::start();
    let body = pattern(8 * MIB, 24);
    server.add_file("/s.bin", body.clone());
    server.push_faults(
        "/s.bin",
        [Fault::StallAfter(100_000, Duration::from_secs(60))],
    );
    let session = FileSource::open(
        url(&server, "/s.bin"),
        FileSourceOptions::new().with_read_timeout(Duration::from_secs(30)),
    )
    .unwrap();
    let mut stream = session.stream();
    let started = Instant::now();
    let got = futures::executor::block_on(async {
        let mut got = 0;
        while got < 100_000 {
            got += stream.next().await.unwrap().unwrap().len();
        }
        // The server now says nothing; give the silence time to count as a stall.
        while server.bytes_served("/s.bin") < 100_000 {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(150)); // the stall being injected
        session.seek_bytes(6 * MIB as i64).unwrap();
        stream.next().await.unwrap().unwrap()
    });
    assert!(got[..] == body[6 * MIB..6 * MIB + got.len()]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "waited {:?} on a stalled request",
        started.elapsed()
    );
}

#[test]
fn after_a_burst_of_reads_the_look_ahead_fills_to_its_size_in_bytes() {
    // Pieces handed to a waiting reader used to queue behind each other, one channel
    // slot each: after a 512 KiB read_exact the 4 MiB look-ahead sometimes filled only
    // 1.75 MiB, and a seek 2 MiB ahead into it sent a request.
    let (server, body) = serve(32 * MIB, 41);
    for round in 0..10 {
        let mut session =
            FileSource::open(url(&server, "/file.bin"), FileSourceOptions::new()).unwrap();
        let mut head = vec![0u8; 512 * 1024];
        session.read_exact(&mut head).unwrap();
        assert!(head == body[..head.len()]);
        // Wait until the driver stops: full look-ahead (bounded: 2 s).
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut last = session.bytes_fetched();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            let now = session.bytes_fetched();
            if now == last {
                break;
            }
            last = now;
        }
        let ahead = session.bytes_fetched() - head.len() as u64;
        assert!(
            ahead >= 4 * MIB as u64 - 256 * 1024,
            "round {round}: only {ahead} bytes ahead with a 4 MiB look-ahead"
        );
        let requests = session.request_count();
        session.seek(SeekFrom::Start(2560 * 1024)).unwrap();
        let mut some = vec![0u8; 4096];
        session.read_exact(&mut some).unwrap();
        assert!(some[..] == body[2560 * 1024..2560 * 1024 + 4096]);
        assert_eq!(session.request_count(), requests, "round {round}");
    }
}
