//! Metered links and expiring URLs (issue "player features", sections 2 and 3): the rate
//! cap, the look-ahead as a hard cap, and signed URLs refreshed mid-track.

mod support;

use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kithara_file::{FileError, FileSource, FileSourceOptions, Url};
use support::{file_error, pattern, url, Fault, TestServer};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// Opens `path` with `look_ahead`, reads `stop` bytes, and lets the driver take all it
/// may: the session, what was read, and the bytes fetched past the reader.
fn stop_after(
    server: &TestServer,
    path: &str,
    look_ahead: u64,
    stop: u64,
) -> (kithara_file::FileSession, Vec<u8>, u64) {
    let mut session = FileSource::open(
        url(server, path),
        FileSourceOptions::new().with_look_ahead(look_ahead),
    )
    .unwrap();
    let mut read = vec![0u8; stop as usize];
    session.read_exact(&mut read).unwrap();
    settle(&session);
    let ahead = session.bytes_fetched() - stop;
    (session, read, ahead)
}

/// Waits until the driver stops fetching (nothing new for 100 ms), at most 5 s.
fn settle(session: &kithara_file::FileSession) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = session.bytes_fetched();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = session.bytes_fetched();
        if now == last {
            return;
        }
        last = now;
    }
}

#[test]
fn the_rate_limit_holds_the_download_to_the_cap() {
    let server = TestServer::start();
    let body = pattern(8 * MIB as usize, 1);
    server.add_file("/r", body.clone());
    let cap = 400_000u64;
    let session = FileSource::open(
        url(&server, "/r"),
        FileSourceOptions::new().with_rate_limit(cap),
    )
    .unwrap();
    // The reader reads as fast as it can: only the cap slows it. Measured at both ends
    // over 10 s: what the session received, and what the server sent (the server must
    // not run ahead of the cap into the socket buffers).
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while started.elapsed() < Duration::from_secs(10) {
        let n = (&session).read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = session.bytes_fetched() as f64 / elapsed;
    let sent = server.bytes_served("/r") as f64 / elapsed;
    println!(
        "rate cap {cap} B/s over {elapsed:.1} s: received {rate:.0} B/s, the server sent \
         {sent:.0} B/s in {} requests",
        server.requests().len()
    );
    assert!(got == body[..got.len()]);
    for measured in [rate, sent] {
        assert!(
            (measured - cap as f64).abs() < cap as f64 * 0.1,
            "{measured:.0} B/s against a cap of {cap}"
        );
    }
    // Bytes already held are not slowed: a seek back into the history reads at once.
    let back = Instant::now();
    (&session).seek(SeekFrom::Current(-100_000)).unwrap();
    let mut held = vec![0u8; 100_000];
    (&session).read_exact(&mut held).unwrap();
    assert!(back.elapsed() < Duration::from_millis(50));
}

#[test]
fn the_look_ahead_caps_what_is_fetched_ahead_of_a_reader_that_stops() {
    let server = TestServer::start();
    server.add_file("/big", pattern(64 * MIB as usize, 2));
    for look_ahead in [256 * KIB, MIB, 4 * MIB] {
        server.reset_counters();
        // The reader stops; the driver takes all it may.
        let (session, _, ahead) = stop_after(&server, "/big", look_ahead, MIB);
        println!(
            "look-ahead {look_ahead}: reader stopped after 1 MiB of 64 MiB, {} bytes fetched \
             ({ahead} ahead), {} served",
            session.bytes_fetched(),
            server.bytes_served("/big")
        );
        assert!(
            ahead <= look_ahead,
            "{ahead} bytes ahead with a look-ahead of {look_ahead}"
        );
        println!(
            "  one open-ended request: the server sent {} bytes (socket buffers)",
            server.bytes_served("/big")
        );
        assert_eq!(server.requests().len(), 1);
    }
}

/// The cap holds wherever the reader stops, not only on a chunk boundary: stops inside a
/// chunk and look-aheads that are no power of two let a chunk's worth more in when only
/// the channel (which counts whole chunks) holds the driver back. Each session then reads
/// on to the end, byte-exact, through the driver's wait for the reader. (Before the
/// driver counted bytes: 64 KiB look-ahead, reader stopped at 1,000,000, 81,344 ahead.)
#[test]
fn the_look_ahead_caps_what_is_fetched_wherever_the_reader_stops() {
    let server = TestServer::start();
    let body = pattern(8 * MIB as usize, 6);
    server.add_file("/f", body.clone());
    for look_ahead in [64 * KIB, 300_000, MIB + 1, 4 * MIB] {
        for stop in [MIB, 1_000_000, MIB + 12_345] {
            let (mut session, mut read, ahead) = stop_after(&server, "/f", look_ahead, stop);
            assert!(
                ahead <= look_ahead,
                "look-ahead {look_ahead}, reader stopped at {stop}: {ahead} bytes ahead"
            );
            // Not held back by much either: the driver refills to within a chunk.
            assert!(
                ahead + look_ahead.div_ceil(4).min(256 * KIB) >= look_ahead,
                "look-ahead {look_ahead}, reader stopped at {stop}: only {ahead} bytes ahead"
            );
            session.read_to_end(&mut read).unwrap();
            assert!(
                read == body,
                "look-ahead {look_ahead}, stop {stop}: bytes differ"
            );
        }
    }
}

/// The same wait for the reader on the `Stream` path: a 64 KiB look-ahead streamed to the
/// end, byte-exact.
#[test]
fn a_stream_with_a_small_look_ahead_runs_to_the_end() {
    use futures::StreamExt;
    let server = TestServer::start();
    let body = pattern(4 * MIB as usize + 777, 7);
    server.add_file("/s", body.clone());
    let session = FileSource::open(
        url(&server, "/s"),
        FileSourceOptions::new().with_look_ahead(64 * KIB),
    )
    .unwrap();
    let mut got = Vec::new();
    futures::executor::block_on(async {
        let mut stream = session.stream();
        while let Some(chunk) = stream.next().await {
            got.extend_from_slice(&chunk.unwrap());
        }
    });
    assert!(
        got == body,
        "{} of {} bytes, or bytes differ",
        got.len(),
        body.len()
    );
}

#[test]
fn on_a_metered_link_nothing_is_requested_past_the_look_ahead() {
    let server = TestServer::start();
    server.add_file("/big", pattern(64 * MIB as usize, 2));
    for look_ahead in [256 * KIB, MIB, 4 * MIB] {
        server.reset_counters();
        let options = FileSourceOptions::new()
            .with_look_ahead(look_ahead)
            .with_metered_link(true);
        let mut session = FileSource::open(url(&server, "/big"), options).unwrap();
        let mut head = vec![0u8; MIB as usize];
        session.read_exact(&mut head).unwrap();
        assert!(head == pattern(MIB as usize, 2));
        settle(&session);
        println!(
            "metered, look-ahead {look_ahead}: reader stopped after 1 MiB of 64 MiB, \
             {} bytes fetched, {} served",
            session.bytes_fetched(),
            server.bytes_served("/big")
        );
        // Requested, not only received: every Range ends within the cap, so the server
        // sent no more than that either (socket buffers would take megabytes).
        for request in server.requests() {
            let range = request.range.expect("a Range on every request");
            let (_, last) = range.trim_start_matches("bytes=").split_once('-').unwrap();
            let last: u64 = last
                .parse()
                .unwrap_or_else(|_| panic!("open-ended: {range}"));
            assert!(last < MIB + look_ahead, "{range} past 1 MiB + {look_ahead}");
        }
        assert!(server.bytes_served("/big") <= MIB + look_ahead);
        // The rest of the file still reads byte-exact, in bounded requests on one
        // kept-alive connection.
        let mut rest = Vec::new();
        session.read_to_end(&mut rest).unwrap();
        assert!(rest == pattern(64 * MIB as usize, 2)[MIB as usize..]);
        let requests = server.requests();
        let connections: std::collections::HashSet<u64> =
            requests.iter().map(|r| r.connection).collect();
        println!(
            "  read to the end: {} requests on {} connection(s)",
            requests.len(),
            connections.len()
        );
        assert!(requests.len() as u64 <= 2 * 64 * MIB / look_ahead + 2);
        assert!(connections.len() <= 2, "{} connections", connections.len());
    }
}

/// Waits until the driver has fetched all of its first (bounded) request, at most 5 s,
/// and returns that request's size.
fn await_first_window(server: &TestServer, session: &kithara_file::FileSession) -> u64 {
    let range = server.requests()[0].range.clone().expect("a Range");
    let (first, last) = range.trim_start_matches("bytes=").split_once('-').unwrap();
    let window = last.parse::<u64>().expect("a bounded window") + 1 - first.parse::<u64>().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while session.bytes_fetched() < window && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        session.bytes_fetched(),
        window,
        "the first window never filled"
    );
    window
}

#[test]
fn on_a_metered_link_a_seek_after_a_full_window_reuses_its_connection() {
    // A player that opens and then seeks to where the user left off. Once the first
    // window is all in, its body is read to its end at once (before its bytes wait for
    // the reader), so the connection is back in the pool for the seek's request.
    let body = pattern(64 * MIB as usize, 3);
    for look_ahead in [256 * KIB, 300_001, MIB] {
        for at in [32 * MIB, look_ahead + 5, 64 * MIB - 4 * KIB] {
            let server = TestServer::start();
            server.add_file("/m", body.clone());
            let options = FileSourceOptions::new()
                .with_look_ahead(look_ahead)
                .with_metered_link(true);
            let mut session = FileSource::open(url(&server, "/m"), options).unwrap();
            let window = await_first_window(&server, &session);
            assert!(window <= look_ahead, "{window} > {look_ahead}");
            session.seek(SeekFrom::Start(at)).unwrap();
            let mut buf = vec![0u8; 4 * KIB as usize];
            session.read_exact(&mut buf).unwrap();
            assert!(buf[..] == body[at as usize..at as usize + buf.len()]);
            let requests = server.requests();
            let connections: std::collections::HashSet<u64> =
                requests.iter().map(|r| r.connection).collect();
            assert_eq!(
                connections.len(),
                1,
                "look-ahead {look_ahead}, seek to {at}: {} requests on {} connections",
                requests.len(),
                connections.len()
            );
        }
    }
}

#[test]
fn the_default_look_ahead_keeps_whole_file_playback_one_request() {
    let server = TestServer::start();
    let body = pattern(8 * MIB as usize, 5);
    server.add_file("/whole", body.clone());
    let mut session = FileSource::open(url(&server, "/whole"), FileSourceOptions::new()).unwrap();
    let mut got = Vec::new();
    session.read_to_end(&mut got).unwrap();
    assert!(got == body);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].range.as_deref(), Some("bytes=0-"));
}

#[test]
fn a_small_file_under_a_capped_look_ahead_is_one_request_and_stays_seekable() {
    let server = TestServer::start();
    let body = pattern(100 * KIB as usize, 6);
    server.add_file("/small", body.clone());
    let mut session = FileSource::open(
        url(&server, "/small"),
        FileSourceOptions::new().with_look_ahead(MIB),
    )
    .unwrap();
    let mut got = Vec::new();
    session.read_to_end(&mut got).unwrap();
    assert!(got == body);
    assert_eq!(server.requests().len(), 1);
    assert!(session.is_seekable());
    session.seek(SeekFrom::Start(1000)).unwrap();
    let mut some = [0u8; 100];
    session.read_exact(&mut some).unwrap();
    assert!(some[..] == body[1000..1100]);
}

/// A signed URL: `/track?sig=N` of one file.
fn signed(server: &TestServer, sig: u32) -> Url {
    url(server, &format!("/track?sig={sig}"))
}

#[test]
fn an_expired_signed_url_is_refreshed_and_the_track_goes_on_at_the_exact_byte() {
    let server = TestServer::start();
    let body = pattern(4 * MIB as usize, 3);
    server.add_file("/track", body.clone());
    let calls = Arc::new(Mutex::new(Vec::new()));
    let options = {
        let calls = Arc::clone(&calls);
        let fresh = signed(&server, 2);
        FileSourceOptions::new()
            .with_look_ahead(256 * KIB)
            .with_url_refresh(move |expired: &Url, status| {
                calls.lock().unwrap().push((expired.clone(), status));
                Some(fresh.clone())
            })
    };
    let mut session = FileSource::open(signed(&server, 1), options).unwrap();
    let mut got = vec![0u8; MIB as usize];
    session.read_exact(&mut got).unwrap();
    // The signature expires: the next request (a seek) is refused.
    server.push_faults(
        "/track",
        [Fault::Status {
            code: 403,
            retry_after: None,
            body: b"expired".to_vec(),
        }],
    );
    session.seek(SeekFrom::Start(3 * MIB)).unwrap();
    let mut rest = Vec::new();
    session.read_to_end(&mut rest).unwrap();
    assert!(rest == body[3 * MIB as usize..]);
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].1, 403);
    assert_eq!(calls[0].0.query(), Some("sig=1"));
    // After the refusal the same bytes were asked for at the fresh URL, and only there.
    let requests = server.requests();
    let from_seek = format!("bytes={}-", 3 * MIB);
    let refused = requests
        .iter()
        .position(|r| {
            r.range
                .as_deref()
                .is_some_and(|r| r.starts_with(&from_seek))
        })
        .unwrap();
    assert!(requests[refused].path.ends_with("sig=1"));
    let retry = &requests[refused + 1];
    assert!(retry.path.ends_with("sig=2"), "{}", retry.path);
    assert!(retry.range.as_deref().unwrap().starts_with(&from_seek));
    assert!(requests[refused + 1..]
        .iter()
        .all(|r| r.path.ends_with("sig=2")));
    // The cache key is the original URL's.
    let plain = FileSource::open(signed(&server, 1), FileSourceOptions::new()).unwrap();
    assert_eq!(session.asset_id(), plain.asset_id());
}

#[test]
fn a_refresh_that_fails_again_or_gives_nothing_is_the_error() {
    for give in [false, true] {
        let server = TestServer::start();
        server.add_file("/track", pattern(4 * MIB as usize, 4));
        let options = {
            let fresh = signed(&server, 9);
            FileSourceOptions::new()
                .with_look_ahead(256 * KIB)
                .with_url_refresh(move |_: &Url, _| give.then(|| fresh.clone()))
        };
        let mut session = FileSource::open(signed(&server, 1), options).unwrap();
        session.read_exact(&mut [0u8; 1000]).unwrap();
        let refused = Fault::Status {
            code: 410,
            retry_after: None,
            body: Vec::new(),
        };
        server.push_faults("/track", [refused.clone(), refused]);
        session.seek(SeekFrom::Start(3 * MIB)).unwrap();
        let err = session.read(&mut [0u8; 10]).unwrap_err();
        assert!(
            matches!(file_error(&err), FileError::HttpStatus { status: 410, .. }),
            "{err:?}"
        );
    }
}

#[test]
fn a_refreshed_url_to_another_resource_is_a_changed_resource() {
    let server = TestServer::start();
    server.add_file("/track", pattern(4 * MIB as usize, 5));
    // Another file, with validators of its own.
    server.add_file("/other", Vec::new());
    server.replace_file("/other", pattern(4 * MIB as usize, 6), Some("\"other\""));
    let other = url(&server, "/other");
    let options = FileSourceOptions::new()
        .with_look_ahead(256 * KIB)
        .with_url_refresh(move |_: &Url, _| Some(other.clone()));
    let mut session = FileSource::open(signed(&server, 1), options).unwrap();
    session.read_exact(&mut [0u8; 1000]).unwrap();
    server.push_faults(
        "/track",
        [Fault::Status {
            code: 401,
            retry_after: None,
            body: Vec::new(),
        }],
    );
    session.seek(SeekFrom::Start(3 * MIB)).unwrap();
    let err = session.read(&mut [0u8; 10]).unwrap_err();
    assert!(
        matches!(file_error(&err), FileError::ResourceChanged(_)),
        "{err:?}"
    );
}
