//! `with_revalidate` (issue "player features", section 4): a complete cached body checked
//! with the server before it is served.

mod support;

use std::io::Read;
use std::time::{Duration, Instant};

use kithara_file::{AssetCache, FileSession, FileSource, FileSourceOptions};
use support::{pattern, url, TestServer};

fn read_all(session: &mut FileSession) -> Vec<u8> {
    let mut got = Vec::new();
    session.read_to_end(&mut got).unwrap();
    got
}

fn cached(server: &TestServer, cache: &AssetCache, path: &str, body: &[u8]) {
    let mut session =
        FileSource::open_with_cache(url(server, path), FileSourceOptions::new(), cache).unwrap();
    assert!(read_all(&mut session) == body);
    drop(session);
}

fn revalidating() -> FileSourceOptions {
    FileSourceOptions::new().with_revalidate(true)
}

#[test]
fn an_unchanged_body_is_confirmed_by_one_304_with_no_body_bytes() {
    let server = TestServer::start();
    let body = pattern(2 << 20, 1);
    server.add_file("/a", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    cached(&server, &cache, "/a", &body);
    server.reset_counters();
    let mut session =
        FileSource::open_with_cache(url(&server, "/a"), revalidating(), &cache).unwrap();
    assert!(session.is_cached());
    assert_eq!(session.request_count(), 1);
    assert_eq!(server.request_count("/a"), 1);
    let asked = &server.requests()[0];
    assert!(
        asked.header("If-None-Match").is_some(),
        "{:?}",
        asked.headers
    );
    assert_eq!(server.bytes_served("/a"), 0, "a 304 has no body");
    assert!(read_all(&mut session) == body);
    // Offline-first by default: no request at all.
    server.reset_counters();
    let plain =
        FileSource::open_with_cache(url(&server, "/a"), FileSourceOptions::new(), &cache).unwrap();
    assert!(plain.is_cached());
    assert_eq!(server.request_count("/a"), 0);
}

#[test]
fn a_changed_body_is_streamed_and_replaces_the_cached_one_once_complete() {
    let server = TestServer::start();
    let old = pattern(1 << 20, 2);
    server.add_file("/b", old.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    cached(&server, &cache, "/b", &old);
    // A session already serving the old body keeps it.
    let mut playing =
        FileSource::open_with_cache(url(&server, "/b"), FileSourceOptions::new(), &cache).unwrap();
    let new = pattern(3 << 20, 3);
    server.replace_file("/b", new.clone(), Some("\"v2\""));
    let mut session =
        FileSource::open_with_cache(url(&server, "/b"), revalidating(), &cache).unwrap();
    assert!(!session.is_cached(), "the new version streams");
    assert!(read_all(&mut session) == new);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !session.is_cached() {
        assert!(
            Instant::now() < deadline,
            "the new body was never committed"
        );
        std::thread::yield_now();
    }
    assert!(
        read_all(&mut playing) == old,
        "the old body stays readable under its session"
    );
    drop((session, playing));
    assert_eq!(
        std::fs::read(cache.body_path(&kithara_file_id(&server, "/b", &cache))).unwrap(),
        new
    );
}

/// The asset id of `path` (as a session reports it).
fn kithara_file_id(server: &TestServer, path: &str, cache: &AssetCache) -> kithara_file::AssetId {
    FileSource::open_with_cache(url(server, path), FileSourceOptions::new(), cache)
        .unwrap()
        .asset_id()
        .clone()
}

#[test]
fn without_a_network_the_cache_is_served() {
    let server = TestServer::start();
    let body = pattern(1 << 20, 4);
    server.add_file("/c", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    cached(&server, &cache, "/c", &body);
    let address = url(&server, "/c");
    drop(server);
    let started = Instant::now();
    let mut session = FileSource::open_with_cache(address, revalidating(), &cache).unwrap();
    assert!(session.is_cached());
    assert!(read_all(&mut session) == body);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
