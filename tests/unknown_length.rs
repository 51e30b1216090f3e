//! Bodies of unknown length (an endless chunked stream, internet radio) and the cache
//! (issue "player features", section 4): cached only while they fit the cache's limit,
//! otherwise caching turns off with `FileEvent::CacheDisabled`, playback goes on.

mod support;

use std::io::Read;

use crossbeam_channel::Receiver;
use kithara_file::{AssetCache, FileEvent, FileSession, FileSource, FileSourceOptions, Url};
use support::{pattern, FileOptions, TestServer};

const MIB: usize = 1024 * 1024;

fn chunked(server: &TestServer, path: &str, body: Vec<u8>) -> Url {
    server.add_file(path, body);
    server.set_file_options(
        path,
        FileOptions {
            content_length: false,
            ranges: false,
            ..FileOptions::new()
        },
    );
    server.url(path).parse().unwrap()
}

fn with_events() -> (FileSourceOptions, Receiver<FileEvent>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let options = FileSourceOptions::new().with_events(move |event| {
        let _ = tx.send(event);
    });
    (options, rx)
}

fn read_all(session: &mut FileSession) -> Vec<u8> {
    let mut got = Vec::new();
    session.read_to_end(&mut got).unwrap();
    got
}

fn disabled(events: &Receiver<FileEvent>) -> Vec<String> {
    events
        .try_iter()
        .filter_map(|e| match e {
            FileEvent::CacheDisabled { reason } => Some(reason),
            _ => None,
        })
        .collect()
}

#[test]
fn a_body_of_unknown_length_that_fits_the_limit_is_cached() {
    let server = TestServer::start();
    // Larger than the look-ahead, so its end (and length) cannot be in before the first
    // look at byte_len.
    let body = pattern(6 * MIB + 11, 1);
    let address = chunked(&server, "/c", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path())
        .unwrap()
        .with_max_bytes(10 * MIB as u64);
    let (options, events) = with_events();
    let mut session = FileSource::open_with_cache(address.clone(), options, &cache).unwrap();
    assert_eq!(session.byte_len(), None);
    assert!(read_all(&mut session) == body);
    assert_eq!(session.byte_len(), Some(body.len() as u64));
    let id = session.asset_id().clone();
    drop(session);
    assert!(disabled(&events).is_empty());
    assert_eq!(std::fs::read(cache.body_path(&id)).unwrap(), body);
    let again = FileSource::open_with_cache(address, FileSourceOptions::new(), &cache).unwrap();
    assert!(again.is_cached());
    assert_eq!(again.request_count(), 0);
}

#[test]
fn a_body_of_unknown_length_that_outgrows_the_limit_turns_caching_off() {
    let server = TestServer::start();
    let body = pattern(4 * MIB, 2);
    let address = chunked(&server, "/radio", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path())
        .unwrap()
        .with_max_bytes(MIB as u64);
    let (options, events) = with_events();
    let mut session = FileSource::open_with_cache(address, options, &cache).unwrap();
    assert!(read_all(&mut session) == body, "playback goes on");
    let id = session.asset_id().clone();
    drop(session);
    let reasons = disabled(&events);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("limit"), "{}", reasons[0]);
    assert!(!cache.body_path(&id).exists());
    assert!(
        cache.total_bytes() <= MIB as u64,
        "{} bytes on disk",
        cache.total_bytes()
    );
}

#[test]
fn without_a_cache_limit_a_body_of_unknown_length_is_not_cached() {
    let server = TestServer::start();
    let body = pattern(MIB, 3);
    let address = chunked(&server, "/u", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let (options, events) = with_events();
    let mut session = FileSource::open_with_cache(address, options, &cache).unwrap();
    assert!(read_all(&mut session) == body);
    assert!(!session.is_cached());
    let reasons = disabled(&events);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
}
