//! The edges between the reader and the driver thread (issue "session edges"): a stall, a
//! trickle, a close, a stop, a drop right after the end, a second thread asking while a
//! read waits. Each contract point is a named test; where a point has a space (where the
//! stall falls, the look-ahead, read or stream) the test sweeps it.

mod support;

use std::hint::black_box;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kithara_file::{
    AssetCache, DownloadState, FileError, FileEvent, FileSession, FileSource, FileSourceOptions,
    Url,
};
use support::{file_error, pattern, url, Fault, FileOptions, TestServer};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// Where a stall falls: around the 64 KiB first-bytes window, chunk sizes and beyond.
const STALL_POINTS: [u64; 7] = [
    1,
    64 * KIB - 1,
    64 * KIB + 1,
    100 * KIB,
    256 * KIB,
    256 * KIB + 1,
    1000 * KIB,
];
const LOOK_AHEADS: [u64; 3] = [64 * KIB, 256 * KIB, 4 * MIB];

/// What the tests assert; 5 ms is the design target, measured and printed.
const PROMPT: Duration = Duration::from_millis(50);

/// Waits (bounded) until the server has gone quiet `count` times; the last instant.
fn quiet_at(server: &TestServer, count: usize) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let quiet = server.went_quiet();
        if quiet.len() >= count {
            return quiet[count - 1];
        }
        assert!(Instant::now() < deadline, "the server never went quiet");
        thread::yield_now();
    }
}

/// A server whose first response sends `n` bytes of a longer file, then stalls.
fn stalling(n: u64, seed: u64) -> (TestServer, Vec<u8>) {
    let server = TestServer::start();
    let body = pattern((n + 300 * KIB) as usize, seed);
    server.add_file("/s", body.clone());
    server.push_faults("/s", [Fault::StallAfter(n, Duration::from_secs(30))]);
    (server, body)
}

/// Reads until `n` bytes arrived; the instant the last of them did.
fn read_exactly(session: &FileSession, n: u64) -> (Vec<u8>, Instant) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while (got.len() as u64) < n {
        let k = (&*session).read(&mut buf).unwrap();
        assert!(k > 0, "end of file after {} bytes", got.len());
        got.extend_from_slice(&buf[..k]);
    }
    (got, Instant::now())
}

/// Streams until `n` bytes arrived; the instant the last of them did.
fn stream_exactly(session: &FileSession, n: u64) -> (Vec<u8>, Instant) {
    let mut stream = session.stream();
    futures::executor::block_on(async {
        let mut got = Vec::new();
        while (got.len() as u64) < n {
            let chunk = stream.next().await.expect("ended early").unwrap();
            got.extend_from_slice(&chunk);
        }
        (got, Instant::now())
    })
}

/// Runs the stall matrix for one way of reading; returns the worst lag seen.
fn stall_matrix(read: fn(&FileSession, u64) -> (Vec<u8>, Instant)) -> Duration {
    let mut worst = Duration::ZERO;
    let mut table = Vec::new();
    for (i, &n) in STALL_POINTS.iter().enumerate() {
        for &look_ahead in &LOOK_AHEADS {
            let (server, body) = stalling(n, i as u64);
            let options = FileSourceOptions::new().with_look_ahead(look_ahead);
            let session = FileSource::open(url(&server, "/s"), options).unwrap();
            let (got, done) = read(&session, n);
            let lag = done.saturating_duration_since(quiet_at(&server, 1));
            assert!(got == body[..n as usize], "wrong bytes, stall after {n}");
            assert!(
                lag < PROMPT,
                "stall after {n} bytes, look-ahead {look_ahead}: the last bytes came {lag:?} \
                 after the stall began"
            );
            worst = worst.max(lag);
            table.push(format!(
                "{n}/{}K:{:.1}ms",
                look_ahead / KIB,
                lag.as_secs_f64() * 1e3
            ));
            session.stop();
        }
    }
    println!(
        "stall matrix (bytes before the stall / look-ahead: lag): {}",
        table.join(" ")
    );
    worst
}

#[test]
fn bytes_before_a_stall_are_readable_at_once_wherever_it_falls() {
    let worst = stall_matrix(read_exactly);
    println!(
        "read: worst lag {worst:?} over {} cases",
        STALL_POINTS.len() * 3
    );
}

#[test]
fn bytes_before_a_stall_reach_a_stream_at_once_wherever_it_falls() {
    let worst = stall_matrix(stream_exactly);
    println!(
        "stream: worst lag {worst:?} over {} cases",
        STALL_POINTS.len() * 3
    );
}

#[test]
fn trickled_bytes_are_readable_one_by_one() {
    for n in [1, 100 * KIB, 256 * KIB + 1] {
        for stream in [false, true] {
            let server = TestServer::start();
            let body = pattern((n + 6) as usize, 7);
            server.add_file("/t", body.clone());
            server.push_faults("/t", [Fault::TrickleAfter(n, Duration::from_millis(30))]);
            let session = FileSource::open(url(&server, "/t"), FileSourceOptions::new()).unwrap();
            let read = if stream { stream_exactly } else { read_exactly };
            let (got, _) = read(&session, n);
            assert!(got == body[..n as usize]);
            // The streams restart reading at the cursor: take each trickled byte as it comes.
            for k in 1..=5u64 {
                let (byte, at) = read(&session, 1);
                assert_eq!(byte, body[(n + k - 1) as usize..(n + k) as usize]);
                let lag = at.saturating_duration_since(quiet_at(&server, k as usize + 1));
                assert!(lag < PROMPT, "trickled byte {k} after {n}: {lag:?} late");
            }
        }
    }
}

#[test]
fn bytes_before_a_close_are_readable_at_once() {
    for n in [1, 64 * KIB + 1, 256 * KIB + 1] {
        let server = TestServer::start();
        let body = pattern((n + 300 * KIB) as usize, 8);
        server.add_file("/c", body.clone());
        // The retry after the close waits on a silent server: the bytes before the close
        // must not wait for it.
        server.push_faults(
            "/c",
            [
                Fault::CloseAfter(n),
                Fault::StallHeaders(Duration::from_secs(30)),
            ],
        );
        let options = FileSourceOptions::new()
            .with_retry_delay(Duration::from_millis(1), Duration::from_millis(1));
        let session = FileSource::open(url(&server, "/c"), options).unwrap();
        let (got, done) = read_exactly(&session, n);
        assert!(got == body[..n as usize]);
        let lag = done.saturating_duration_since(quiet_at(&server, 1));
        assert!(lag < PROMPT, "close after {n}: {lag:?}");
        session.stop();
    }
}

/// A session whose reader is blocked on a stalled server, in another thread.
fn blocked_reader() -> (TestServer, Arc<FileSession>, thread::JoinHandle<()>) {
    let (server, _) = stalling(10, 3);
    let session = Arc::new(FileSource::open(url(&server, "/s"), FileSourceOptions::new()).unwrap());
    read_exactly(&session, 10);
    let reader = {
        let session = Arc::clone(&session);
        thread::spawn(move || {
            let err = (&*session).read(&mut [0u8; 100]).unwrap_err();
            assert_eq!(*file_error(&err), FileError::Stopped);
        })
    };
    // Bounded wait until the reader is really blocked.
    let deadline = Instant::now() + Duration::from_secs(5);
    while session.progress().state != DownloadState::Buffering {
        assert!(Instant::now() < deadline, "the reader never blocked");
        thread::yield_now();
    }
    (server, session, reader)
}

#[test]
fn queries_never_wait_for_a_blocked_read() {
    let (_server, session, reader) = blocked_reader();
    type Query = (&'static str, fn(&FileSession));
    let queries: [Query; 8] = [
        ("position", |s| {
            black_box(s.position());
        }),
        ("byte_len", |s| {
            black_box(s.byte_len());
        }),
        ("is_seekable", |s| {
            black_box(s.is_seekable());
        }),
        ("buffered_ranges", |s| {
            black_box(s.buffered_ranges());
        }),
        ("progress", |s| {
            black_box(s.progress());
        }),
        ("bytes_fetched", |s| {
            black_box(s.bytes_fetched());
        }),
        ("is_cached", |s| {
            black_box(s.is_cached());
        }),
        ("asset_id", |s| {
            black_box(s.asset_id().as_str().len());
        }),
    ];
    let mut report = Vec::new();
    for (name, query) in queries {
        let mut worst = Duration::ZERO;
        for _ in 0..1000 {
            let started = Instant::now();
            query(&session);
            worst = worst.max(started.elapsed());
        }
        assert!(
            worst < PROMPT,
            "{name} took {worst:?} while a read was blocked"
        );
        report.push(format!("{name} {:.1}µs", worst.as_secs_f64() * 1e6));
    }
    // A stream polled meanwhile is pending at once: it never blocks behind the read.
    let waker = futures::task::noop_waker();
    let mut context = std::task::Context::from_waker(&waker);
    let mut stream = session.stream();
    let started = Instant::now();
    assert!(stream.poll_next_unpin(&mut context).is_pending());
    assert!(started.elapsed() < PROMPT);
    let started = Instant::now();
    session.stop();
    let stop = started.elapsed();
    assert!(stop < PROMPT, "stop took {stop:?}");
    println!(
        "worst of 1000 calls each while a read blocks: {}, stop {stop:?}",
        report.join(", ")
    );
    reader.join().unwrap();
}

#[test]
fn stop_releases_a_blocked_read_within_50_ms() {
    let (_server, session, reader) = blocked_reader();
    let stopped = Instant::now();
    session.stop();
    reader.join().unwrap();
    let released = stopped.elapsed();
    assert!(
        released < PROMPT,
        "the blocked read returned {released:?} after stop"
    );
}

#[test]
fn an_events_callback_may_call_every_query_and_stop() {
    let server = TestServer::start();
    let body = pattern(3 * MIB as usize, 4);
    server.add_file("/e", body.clone());
    let handle: Arc<OnceLock<Weak<FileSession>>> = Arc::new(OnceLock::new());
    let calls = Arc::new(Mutex::new(0u32));
    let options = {
        let (handle, calls) = (Arc::clone(&handle), Arc::clone(&calls));
        FileSourceOptions::new().with_events(move |event| {
            let Some(session) = handle.get().and_then(Weak::upgrade) else {
                return;
            };
            // What a seek bar does on every event, on the driver thread.
            let _ = (
                session.position(),
                session.byte_len(),
                session.is_seekable(),
            );
            let _ = (
                session.buffered_ranges(),
                session.progress(),
                session.bytes_fetched(),
            );
            let _ = (session.is_cached(), session.asset_id().as_str().len());
            *calls.lock().unwrap() += 1;
            if matches!(event, FileEvent::Complete) {
                session.stop();
            }
        })
    };
    let session = Arc::new(FileSource::open(url(&server, "/e"), options).unwrap());
    handle.set(Arc::downgrade(&session)).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match (&*session).read(&mut buf) {
            Ok(0) => break,
            Ok(k) => got.extend_from_slice(&buf[..k]),
            // The callback stops the session when the download completes.
            Err(err) => {
                assert_eq!(*file_error(&err), FileError::Stopped);
                break;
            }
        }
    }
    assert!(got == body[..got.len()]);
    assert!(*calls.lock().unwrap() > 0);
}

/// Reads `session` to the end.
fn read_all(session: &mut FileSession) -> Vec<u8> {
    let mut got = Vec::new();
    session.read_to_end(&mut got).unwrap();
    got
}

#[test]
fn a_track_read_to_the_end_and_dropped_is_cached_every_time() {
    let server = TestServer::start();
    let body = pattern(300 * KIB as usize + 7, 5);
    server.add_file("/d", body.clone());
    // Without a length the reader learns the end when the body ends, and may drop the
    // session before the driver has told the cache: 3 of 40 runs left no body once.
    server.add_file("/chunked", body.clone());
    server.set_file_options(
        "/chunked",
        FileOptions {
            content_length: false,
            ranges: false,
            ..FileOptions::new()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    for path in ["/d", "/chunked"] {
        let mut misses = 0;
        for round in 0..50 {
            let cache = AssetCache::open(dir.path().join(format!("{}-{round}", &path[1..])))
                .unwrap()
                // A body of unknown length is cached only under a size limit.
                .with_max_bytes(16 * MIB);
            let mut session =
                FileSource::open_with_cache(url(&server, path), FileSourceOptions::new(), &cache)
                    .unwrap();
            assert!(read_all(&mut session) == body);
            let id = session.asset_id().clone();
            drop(session);
            // No waiting: the body is there when the drop returns.
            if !cache.body_path(&id).is_file() {
                misses += 1;
                continue;
            }
            let again =
                FileSource::open_with_cache(url(&server, path), FileSourceOptions::new(), &cache)
                    .unwrap();
            assert!(again.is_cached());
            assert_eq!(again.request_count(), 0);
        }
        println!("{path}: drop after EOF: {} of 50 committed", 50 - misses);
        assert_eq!(
            misses, 0,
            "{path}: {misses} of 50 drops after EOF left no body"
        );
    }
}

#[test]
fn a_track_received_whole_is_cached_when_dropped_or_stopped_unread() {
    let server = TestServer::start();
    let body = pattern(MIB as usize, 6);
    server.add_file("/u", body.clone());
    let dir = tempfile::tempdir().unwrap();
    for (round, stop) in [false, true, false, true].into_iter().enumerate() {
        let cache = AssetCache::open(dir.path().join(round.to_string())).unwrap();
        let session =
            FileSource::open_with_cache(url(&server, "/u"), FileSourceOptions::new(), &cache)
                .unwrap();
        // The 4 MiB look-ahead takes the whole file without a single read.
        let deadline = Instant::now() + Duration::from_secs(10);
        while session.bytes_fetched() < body.len() as u64 {
            assert!(Instant::now() < deadline, "never downloaded");
            thread::yield_now();
        }
        let id = session.asset_id().clone();
        if stop {
            session.stop();
        }
        drop(session);
        assert_eq!(
            std::fs::read(cache.body_path(&id)).unwrap(),
            body,
            "round {round}"
        );
    }
}

#[test]
fn is_cached_turns_true_on_the_live_session_with_a_cached_event() {
    let server = TestServer::start();
    let body = pattern(MIB as usize, 9);
    server.add_file("/l", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let (events, received) = crossbeam_channel::unbounded();
    let options = FileSourceOptions::new().with_events(move |event| {
        let _ = events.send(event);
    });
    let mut session = FileSource::open_with_cache(url(&server, "/l"), options, &cache).unwrap();
    assert!(!session.is_cached());
    assert!(read_all(&mut session) == body);
    let event = received
        .iter()
        .find(|e| matches!(e, FileEvent::Cached))
        .expect("a Cached event");
    assert_eq!(event, FileEvent::Cached);
    assert!(
        session.is_cached(),
        "is_cached once the Cached event is out"
    );
    assert!(cache.body_path(session.asset_id()).is_file());
}

#[test]
fn open_is_bounded_by_the_open_timeout() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = thread::spawn(move || {
        let mut held = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until && held.len() < 32 {
            match listener.accept() {
                Ok((conn, _)) => held.push(conn),
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    let never: Url = format!("http://{addr}/never").parse().unwrap();
    for limit in [Duration::from_millis(300), Duration::from_millis(900)] {
        let started = Instant::now();
        let err = FileSource::open(
            never.clone(),
            FileSourceOptions::new().with_open_timeout(limit),
        )
        .unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, FileError::Network(_)), "{err}");
        assert!(
            took >= limit.mul_f64(0.9) && took < limit + Duration::from_millis(300),
            "open took {took:?} with a {limit:?} timeout"
        );
    }
    drop(silent);

    // A server that answers 503 forever: the retries are bounded by it too.
    let server = TestServer::start();
    server.add_file("/busy", pattern(1000, 1));
    server.set_default_fault(
        "/busy",
        Fault::Status {
            code: 503,
            retry_after: Some("1".into()),
            body: Vec::new(),
        },
    );
    let started = Instant::now();
    let options = FileSourceOptions::new()
        .with_max_retries(100)
        .with_open_timeout(Duration::from_millis(1500));
    let err = FileSource::open(url(&server, "/busy"), options).unwrap_err();
    assert!(matches!(err, FileError::Network(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn after_stop_reads_and_seeks_are_stopped() {
    let server = TestServer::start();
    server.add_file("/f", pattern(MIB as usize, 2));
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let mut warm =
        FileSource::open_with_cache(url(&server, "/f"), FileSourceOptions::new(), &cache).unwrap();
    read_all(&mut warm);
    drop(warm);
    let remote = FileSource::open(url(&server, "/f"), FileSourceOptions::new()).unwrap();
    let cached =
        FileSource::open_with_cache(url(&server, "/f"), FileSourceOptions::new(), &cache).unwrap();
    assert!(cached.is_cached());
    for mut session in [remote, cached] {
        session.read_exact(&mut [0u8; 100]).unwrap();
        session.stop();
        let stopped = |err: std::io::Error| assert_eq!(*file_error(&err), FileError::Stopped);
        stopped(session.read(&mut [0u8; 10]).unwrap_err());
        for target in [
            SeekFrom::Start(0),
            SeekFrom::Start(500),
            SeekFrom::Current(0),
            SeekFrom::End(-1),
        ] {
            stopped(session.seek(target).unwrap_err());
        }
        assert_eq!(session.seek_bytes(10), Err(FileError::Stopped));
        // Queries still answer.
        assert_eq!(session.position(), 100);
        assert_eq!(session.byte_len(), Some(MIB));
    }
}

#[test]
fn a_stopped_stream_yields_one_stopped_error_then_ends() {
    let (server, _) = stalling(10, 11);
    let session = Arc::new(FileSource::open(url(&server, "/s"), FileSourceOptions::new()).unwrap());
    let mut stream = session.stream();
    assert_eq!(
        futures::executor::block_on(stream.next())
            .unwrap()
            .unwrap()
            .len(),
        10
    );
    // The task is pending on the stall when another thread stops the session.
    let stopper = {
        let session = Arc::clone(&session);
        thread::spawn(move || {
            while session.progress().state != DownloadState::Buffering {
                thread::yield_now();
            }
            let stopped = Instant::now();
            session.stop();
            stopped
        })
    };
    let item = futures::executor::block_on(stream.next());
    let lag = stopper.join().unwrap().elapsed();
    assert_eq!(item, Some(Err(FileError::Stopped)));
    assert!(lag < PROMPT, "the pending stream woke {lag:?} after stop");
    assert!(futures::executor::block_on(stream.next()).is_none());
    assert!(futures::executor::block_on(stream.next()).is_none());
}

#[test]
fn complete_only_when_every_byte_is_downloaded() {
    let server = TestServer::start();
    let body = pattern(8 * MIB as usize, 12);
    server.add_file("/p", body.clone());
    let (events, received) = crossbeam_channel::unbounded();
    let options = FileSourceOptions::new()
        .with_look_ahead(256 * KIB)
        .with_events(move |event| {
            let _ = events.send(event);
        });
    let mut session = FileSource::open(url(&server, "/p"), options).unwrap();
    // A decoder's probe of the end: that fetch reaches the end of the file.
    session.seek(SeekFrom::End(-128)).unwrap();
    let mut tail = Vec::new();
    session.read_to_end(&mut tail).unwrap();
    assert!(tail == body[body.len() - 128..]);
    assert_ne!(session.progress().state, DownloadState::Complete);
    assert!(!received
        .try_iter()
        .any(|e| matches!(e, FileEvent::Complete)));
    session.seek(SeekFrom::Start(0)).unwrap();
    assert!(read_all(&mut session) == body);
    // The tail was fetched before: every byte is now here.
    let deadline = Instant::now() + Duration::from_secs(10);
    while session.progress().state != DownloadState::Complete {
        assert!(Instant::now() < deadline, "{:?}", session.progress());
        thread::yield_now();
    }
    let completes = received
        .try_iter()
        .filter(|e| matches!(e, FileEvent::Complete))
        .count();
    assert_eq!(completes, 1);
}

/// Keeps the panic hook quiet for this test's deliberate panics: with `RUST_BACKTRACE=1`
/// the default hook symbolizes a backtrace (~190 ms in a debug build) before unwinding
/// even starts, and that is not the library's time. Every other panic prints as usual.
fn quiet_deliberate_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let deliberate = info
                .payload()
                .downcast_ref::<&str>()
                .is_some_and(|m| m.contains("on purpose"));
            if !deliberate {
                default(info);
            }
        }));
    });
}

#[test]
fn a_driver_that_dies_fails_blocked_reads_and_pending_streams() {
    quiet_deliberate_panics();
    for stream in [false, true] {
        let (server, _) = stalling(10, 13);
        let died = Arc::new(Mutex::new(None));
        let options = {
            let died = Arc::clone(&died);
            FileSourceOptions::new()
                .with_read_timeout(Duration::from_millis(200))
                .with_events(move |event| {
                    if matches!(event, FileEvent::Stalled) {
                        *died.lock().unwrap() = Some(Instant::now());
                        panic!("a user callback panics (on purpose, in a test)");
                    }
                })
        };
        let session = FileSource::open(url(&server, "/s"), options).unwrap();
        let failed_at = if stream {
            let mut stream = session.stream();
            futures::executor::block_on(async {
                assert_eq!(stream.next().await.unwrap().unwrap().len(), 10);
                let item = stream.next().await;
                assert!(matches!(item, Some(Err(FileError::Network(_)))), "{item:?}");
            });
            Instant::now()
        } else {
            read_exactly(&session, 10);
            let err = (&session).read(&mut [0u8; 10]).unwrap_err();
            assert!(matches!(file_error(&err), FileError::Network(_)), "{err:?}");
            Instant::now()
        };
        let died = died.lock().unwrap().expect("the callback ran");
        let lag = failed_at.saturating_duration_since(died);
        assert!(
            lag < PROMPT,
            "the waiter learned of the dead driver {lag:?} late"
        );
        drop(server);
    }
}

#[test]
fn open_returns_with_the_headers_even_when_the_body_stalls_at_once() {
    let (server, _) = stalling(0, 14);
    let started = Instant::now();
    let session = FileSource::open(
        url(&server, "/s"),
        FileSourceOptions::new()
            .with_read_timeout(Duration::from_secs(3))
            .with_open_timeout(Duration::from_millis(400)),
    )
    .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(300), "open took {took:?}");
    assert!(session.byte_len().is_some());
    session.stop();
}

#[test]
fn the_first_body_keeps_the_read_timeout_not_the_time_left_to_open() {
    // A pause of 600 ms mid-body: a stall only for a 300 ms timeout, which is the open
    // timeout here, not the read timeout.
    let server = TestServer::start();
    let body = pattern(100 * KIB as usize + 3, 15);
    server.add_file("/p", body.clone());
    server.push_faults(
        "/p",
        [Fault::TrickleAfter(100 * KIB, Duration::from_millis(600))],
    );
    let session = FileSource::open(
        url(&server, "/p"),
        FileSourceOptions::new()
            .with_read_timeout(Duration::from_secs(5))
            .with_open_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let (got, _) = read_exactly(&session, 100 * KIB + 1);
    assert!(got == body[..got.len()]);
    assert_eq!(
        session.retry_count(),
        0,
        "a 600 ms pause is no stall with a 5 s read timeout"
    );
    assert_eq!(session.request_count(), 1);
}

#[test]
fn a_dying_driver_fails_a_blocked_read_and_a_stream_waiting_for_the_turn() {
    quiet_deliberate_panics();
    for _ in 0..10 {
        let (server, _) = stalling(10, 16);
        let options = FileSourceOptions::new()
            .with_read_timeout(Duration::from_millis(150))
            .with_events(|event| {
                if matches!(event, FileEvent::Stalled) {
                    panic!("a user callback panics (on purpose, in a test)");
                }
            });
        let session = Arc::new(FileSource::open(url(&server, "/s"), options).unwrap());
        read_exactly(&session, 10);
        let reader = {
            let session = Arc::clone(&session);
            thread::spawn(move || (&*session).read(&mut [0u8; 10]).is_err())
        };
        // The reader holds the reading turn; the stream waits for it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while session.progress().state != DownloadState::Buffering {
            assert!(Instant::now() < deadline);
            thread::yield_now();
        }
        let mut stream = session.stream();
        let item = futures::executor::block_on(stream.next());
        assert!(matches!(item, Some(Err(_))), "{item:?}");
        assert!(reader.join().unwrap(), "the blocked read got an error");
        drop(server);
    }
}

/// A body sent chunked with a Content-Length beside it (ureq, like RFC 9112, frames it by
/// its chunks) whose last chunk comes late: every byte it promised is readable at once,
/// not after the terminating chunk. (The driver reads a framed body to its end once its
/// last byte is in; it must not take the Content-Length for the framing and wait there.)
/// Swept over where the last byte is read (by `open` on the caller's thread for a small
/// file, by the driver thread for a larger one) and over `read` and `stream`.
#[test]
fn a_chunked_body_with_a_content_length_is_readable_before_its_last_chunk() {
    for size in [1000, 300_000, 5 * MIB as usize + 3] {
        for streamed in [false, true] {
            let (took, got, body) = read_before_the_last_chunk(size, streamed);
            assert!(got == body, "size {size}, stream {streamed}: bytes differ");
            assert!(
                took < Duration::from_secs(1),
                "size {size}, stream {streamed}: the bytes took {took:?}: they waited for \
                 the terminating chunk"
            );
        }
    }
}

/// Serves one such body (its terminating chunk held until the client has every byte, at
/// most 3 s) and reads it; how long the bytes took, what was read, the body.
fn read_before_the_last_chunk(size: usize, streamed: bool) -> (Duration, Vec<u8>, Vec<u8>) {
    use std::io::Write as _;
    let body = pattern(size, 9);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (done, held) = std::sync::mpsc::channel::<()>();
    let sent = body.clone();
    let server = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
            if conn.read(&mut byte).unwrap() == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let len = sent.len();
        let mut response = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-{}/{len}\r\n\
             Content-Length: {len}\r\nTransfer-Encoding: chunked\r\n\r\n{len:x}\r\n",
            len - 1
        )
        .into_bytes();
        response.extend_from_slice(&sent);
        response.extend_from_slice(b"\r\n");
        let _ = conn.write_all(&response);
        let _ = held.recv_timeout(Duration::from_secs(3));
        let _ = conn.write_all(b"0\r\n\r\n");
    });
    let started = Instant::now();
    let session = FileSource::open(
        format!("http://{addr}/late").parse().unwrap(),
        FileSourceOptions::new(),
    )
    .unwrap();
    let mut got = Vec::with_capacity(size);
    if streamed {
        futures::executor::block_on(async {
            let mut stream = session.stream();
            while got.len() < size {
                match stream.next().await {
                    Some(chunk) => got.extend_from_slice(&chunk.unwrap()),
                    None => break,
                }
            }
        });
    } else {
        got.resize(size, 0);
        (&session).read_exact(&mut got).unwrap();
    }
    let took = started.elapsed();
    let _ = done.send(());
    drop(session);
    server.join().unwrap();
    (took, got, body)
}
