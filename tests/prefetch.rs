//! `AssetCache::prefetch` (issue "player features", section 1): the next track downloaded
//! into the cache in the background, a limited prefetch, and a session that takes over
//! without any byte asked for twice.

mod support;

use std::io::Read;
use std::time::{Duration, Instant};

use kithara_file::{AssetCache, DownloadState, FileSource, FileSourceOptions};
use support::{pattern, url, RecordedRequest, TestServer};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

fn read_all(session: &mut kithara_file::FileSession) -> Vec<u8> {
    let mut got = Vec::new();
    session.read_to_end(&mut got).unwrap();
    got
}

/// The byte ranges the server was asked for (a request without Range is the whole file).
fn asked(requests: &[RecordedRequest], len: usize) -> Vec<(usize, usize)> {
    requests
        .iter()
        .map(|r| match r.range.as_deref() {
            None => (0, len),
            Some(range) => {
                let (first, last) = range["bytes=".len()..].split_once('-').unwrap();
                let first: usize = first.parse().unwrap();
                let end = if last.is_empty() {
                    len
                } else {
                    last.parse::<usize>().unwrap() + 1
                };
                (first, end.min(len))
            }
        })
        .collect()
}

/// Asserts that no byte was asked for twice, and returns how many were asked for.
fn no_byte_twice(requests: &[RecordedRequest], len: usize) -> usize {
    let mut ranges = asked(requests, len);
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "asked twice: {ranges:?}");
    }
    ranges.iter().map(|(a, b)| b - a).sum()
}

#[test]
fn a_prefetch_downloads_the_asset_and_a_session_then_plays_it_offline() {
    let server = TestServer::start();
    let body = pattern(3 * MIB + 17, 1);
    server.add_file("/next.flac", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let prefetch = cache
        .prefetch(url(&server, "/next.flac"), FileSourceOptions::new())
        .unwrap();
    assert!(
        prefetch.wait(Duration::from_secs(20)).unwrap(),
        "{:?}",
        prefetch.progress()
    );
    assert!(prefetch.is_complete());
    assert_eq!(prefetch.progress().state, DownloadState::Complete);
    assert_eq!(prefetch.progress().downloaded, body.len() as u64);
    assert_eq!(no_byte_twice(&server.requests(), body.len()), body.len());
    drop(prefetch);

    // The same URL plays from disk with the server gone.
    let address = url(&server, "/next.flac");
    drop(server);
    let mut session =
        FileSource::open_with_cache(address, FileSourceOptions::new(), &cache).unwrap();
    assert!(session.is_cached());
    assert_eq!(session.request_count(), 0);
    assert!(read_all(&mut session) == body);
}

#[test]
fn a_prefetch_of_a_complete_asset_makes_no_request_and_sessions_play_from_disk() {
    let server = TestServer::start();
    let body = pattern(2 * MIB, 2);
    server.add_file("/a", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let first = cache
        .prefetch(url(&server, "/a"), FileSourceOptions::new())
        .unwrap();
    assert!(first.wait(Duration::from_secs(20)).unwrap());
    drop(first);
    server.reset_counters();
    let again = cache
        .prefetch(url(&server, "/a"), FileSourceOptions::new())
        .unwrap();
    assert!(again.is_complete());
    assert!(again.wait(Duration::ZERO).unwrap());
    assert_eq!(
        server.request_count("/a"),
        0,
        "a complete asset is not fetched again"
    );
    let mut session =
        FileSource::open_with_cache(url(&server, "/a"), FileSourceOptions::new(), &cache).unwrap();
    assert!(session.is_cached());
    assert!(read_all(&mut session) == body);
    assert_eq!(server.request_count("/a"), 0);
}

#[test]
fn a_limited_prefetch_fetches_only_the_first_bytes_and_a_session_the_rest() {
    let server = TestServer::start();
    let body = pattern(4 * MIB, 3);
    server.add_file("/l", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let limit = 512 * KIB;
    let options = FileSourceOptions::new().with_max_bytes(limit as u64);
    let prefetch = cache.prefetch(url(&server, "/l"), options).unwrap();
    assert!(
        !prefetch.wait(Duration::from_secs(20)).unwrap(),
        "not the whole file"
    );
    assert!(!prefetch.is_complete());
    let fetched = prefetch.progress().downloaded;
    assert_eq!(fetched, limit as u64, "exactly the first {limit} bytes");
    assert_eq!(no_byte_twice(&server.requests(), body.len()), limit);
    drop(prefetch);

    let prefetch_requests = server.requests().len();
    let mut session =
        FileSource::open_with_cache(url(&server, "/l"), FileSourceOptions::new(), &cache).unwrap();
    assert!(read_all(&mut session) == body);
    assert_eq!(no_byte_twice(&server.requests(), body.len()), body.len());
    let first_of_session = asked(&server.requests(), body.len())[prefetch_requests];
    assert_eq!(
        first_of_session.0, limit,
        "the session starts where the prefetch stopped"
    );
}

#[test]
fn a_session_takes_a_running_prefetch_over_and_no_byte_is_asked_twice() {
    let server = TestServer::start();
    let body = pattern(3 * MIB, 4);
    server.add_file("/t", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    // A slow prefetch, so the session comes while it runs.
    let options = FileSourceOptions::new().with_rate_limit(400 * 1000);
    let prefetch = cache.prefetch(url(&server, "/t"), options).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while prefetch.progress().downloaded < 300 * KIB as u64 {
        assert!(Instant::now() < deadline, "the prefetch never got going");
        std::thread::yield_now();
    }
    let started = Instant::now();
    let mut session =
        FileSource::open_with_cache(url(&server, "/t"), FileSourceOptions::new(), &cache).unwrap();
    let took_over = started.elapsed();
    assert!(read_all(&mut session) == body);
    // The prefetch ended, without the whole file.
    assert!(prefetch.wait(Duration::from_secs(5)).is_ok());
    let served = server.bytes_served("/t");
    assert_eq!(no_byte_twice(&server.requests(), body.len()), body.len());
    assert_eq!(served, body.len() as u64, "the server sent every byte once");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !session.is_cached() {
        assert!(Instant::now() < deadline, "never committed");
        std::thread::yield_now();
    }
    println!(
        "takeover: open waited {took_over:?}; prefetch had {} bytes; {served} bytes served for {} bytes",
        prefetch.progress().downloaded,
        body.len()
    );
    assert!(took_over < Duration::from_secs(2), "{took_over:?}");
}

#[test]
fn a_dropped_prefetch_keeps_what_it_fetched_for_the_next_session() {
    let server = TestServer::start();
    let body = pattern(3 * MIB, 5);
    server.add_file("/d", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let options = FileSourceOptions::new().with_rate_limit(1000 * 1000);
    let prefetch = cache.prefetch(url(&server, "/d"), options).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while prefetch.progress().downloaded < 500 * KIB as u64 {
        assert!(Instant::now() < deadline);
        std::thread::yield_now();
    }
    prefetch.stop();
    drop(prefetch);
    server.reset_counters();
    let mut session =
        FileSource::open_with_cache(url(&server, "/d"), FileSourceOptions::new(), &cache).unwrap();
    assert!(read_all(&mut session) == body);
    let first = server.requests()[0].range.clone().unwrap();
    let start: usize = first["bytes=".len()..]
        .split('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(start >= 400 * KIB, "resumed at {start}, not from 0");
}
