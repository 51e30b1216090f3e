//! A cache the app can manage: the ids sessions use, `is_cached`, `entries`, `used_bytes`,
//! and `remove`, which never removes an asset under a session using it (in this process
//! or another) and finishes once the last one ends.

mod support;

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use kithara_file::{AssetCache, AssetId, CacheEntry, FileSession, FileSource, FileSourceOptions};
use support::{pattern, url, TestServer};

const MIB: usize = 1024 * 1024;

/// Nothing listens here: a session that touches the network fails at once.
const DEAD_URL: &str = "http://127.0.0.1:9/gone.bin";

fn keyed(key: &str) -> FileSourceOptions {
    FileSourceOptions::new().with_cache_key(key)
}

fn serve(path: &str, len: usize, seed: u64) -> (TestServer, Vec<u8>) {
    let server = TestServer::start();
    let body = pattern(len, seed);
    server.add_file(path, body.clone());
    (server, body)
}

fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

fn read_all(session: &mut FileSession) -> Vec<u8> {
    let mut got = Vec::new();
    session.read_to_end(&mut got).unwrap();
    got
}

/// Streams `path` whole through the cache and waits for the commit.
fn cache_whole(cache: &AssetCache, server: &TestServer, path: &str, key: &str, body: &[u8]) {
    let mut session = FileSource::open_with_cache(url(server, path), keyed(key), cache).unwrap();
    assert!(read_all(&mut session) == body);
    wait_until("the commit", Duration::from_secs(10), || {
        session.is_cached()
    });
}

/// A session served from the cache alone (the URL is dead).
fn offline(cache: &AssetCache, key: &str) -> FileSession {
    let options = keyed(key).with_max_retries(0);
    let session = FileSource::open_with_cache(DEAD_URL.parse().unwrap(), options, cache).unwrap();
    assert!(session.is_cached(), "served from the cache");
    session
}

#[test]
fn ids_are_the_ones_sessions_use() {
    let (server, _) = serve("/a.bin", 1000, 1);
    let address = url(&server, "/a.bin");
    let plain = FileSource::open(address.clone(), FileSourceOptions::new()).unwrap();
    assert_eq!(plain.asset_id(), &AssetId::from_url(&address));
    let keyed_session = FileSource::open(address.clone(), keyed("album/1")).unwrap();
    assert_eq!(keyed_session.asset_id(), &AssetId::from_key("album/1"));
    assert_ne!(AssetId::from_key("album/1"), AssetId::from_url(&address));
}

#[test]
fn an_empty_cache_has_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let id = AssetId::from_key("nothing");
    assert!(!cache.is_cached(&id));
    assert!(cache.entries().is_empty());
    assert_eq!(cache.used_bytes(), 0);
    assert!(!cache.remove(&id).unwrap(), "nothing to remove");
    assert!(!cache.asset_dir(&id).exists(), "queries create nothing");
}

#[test]
fn a_complete_download_is_cached_listed_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let (server, body) = serve("/a.bin", 2 * MIB + 3, 2);
    let before = SystemTime::now() - Duration::from_secs(2);
    cache_whole(&cache, &server, "/a.bin", "a", &body);
    let id = AssetId::from_key("a");
    assert!(cache.is_cached(&id));
    let entries = cache.entries();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let CacheEntry {
        id: listed,
        len,
        complete,
        last_used,
    } = entries[0].clone();
    assert_eq!((listed, len, complete), (id, body.len() as u64, true));
    assert!(last_used >= before && last_used <= SystemTime::now() + Duration::from_secs(2));
    let used = cache.used_bytes();
    assert!(
        used >= body.len() as u64 && used < body.len() as u64 + 64 * 1024,
        "{used}"
    );
}

#[test]
fn a_partial_download_is_listed_with_the_file_length_and_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let (server, body) = serve("/p.bin", 4 * MIB, 3);
    // A look-ahead smaller than the rest of the file: the drop comes before it is all in.
    let options = keyed("p").with_look_ahead(MIB as u64);
    let mut session = FileSource::open_with_cache(url(&server, "/p.bin"), options, &cache).unwrap();
    let mut head = vec![0; MIB];
    session.read_exact(&mut head).unwrap();
    drop(session); // checkpoints what it has
    let id = AssetId::from_key("p");
    assert!(!cache.is_cached(&id));
    let entries = cache.entries();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].id, id);
    assert!(!entries[0].complete);
    assert_eq!(
        entries[0].len,
        body.len() as u64,
        "the file's length, from the index"
    );
}

#[test]
fn entries_list_the_most_recently_used_first() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let (server, body) = serve("/a.bin", 10_000, 4);
    for key in ["one", "two", "three"] {
        cache_whole(&cache, &server, "/a.bin", key, &body);
    }
    // Opening "one" again marks it used now.
    let mtime = |key: &str| {
        std::fs::metadata(cache.asset_dir(&AssetId::from_key(key)).join("used"))
            .and_then(|m| m.modified())
            .unwrap()
    };
    let newest = mtime("three");
    wait_until("the clock to move", Duration::from_secs(5), || {
        SystemTime::now() > newest + Duration::from_millis(20)
    });
    drop(offline(&cache, "one"));
    let ids: Vec<AssetId> = cache.entries().into_iter().map(|e| e.id).collect();
    assert_eq!(ids[0], AssetId::from_key("one"));
    assert_eq!(ids.len(), 3);
}

#[test]
fn removing_an_unused_asset_removes_it_at_once_and_a_new_session_caches_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let (server, body) = serve("/a.bin", MIB, 5);
    cache_whole(&cache, &server, "/a.bin", "a", &body);
    cache_whole(&cache, &server, "/a.bin", "b", &body);
    let (a, b) = (AssetId::from_key("a"), AssetId::from_key("b"));
    let used = cache.used_bytes();

    assert!(cache.remove(&a).unwrap());
    assert!(!cache.asset_dir(&a).exists(), "gone at once");
    assert!(!cache.is_cached(&a) && cache.is_cached(&b));
    assert_eq!(cache.entries().len(), 1);
    assert!(
        cache.used_bytes() <= used - body.len() as u64,
        "{}",
        cache.used_bytes()
    );
    assert!(!cache.remove(&a).unwrap(), "already gone");

    server.reset_counters();
    cache_whole(&cache, &server, "/a.bin", "a", &body);
    assert_eq!(server.request_count("/a.bin"), 1, "fetched again");
    assert!(cache.is_cached(&a));

    assert!(cache.remove(&a).unwrap() && cache.remove(&b).unwrap());
    assert_eq!(cache.used_bytes(), 0);
    assert!(cache.entries().is_empty());
}

#[test]
fn removing_a_partial_download_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let (server, body) = serve("/p.bin", 2 * MIB, 6);
    let mut session =
        FileSource::open_with_cache(url(&server, "/p.bin"), keyed("p"), &cache).unwrap();
    let mut head = vec![0; 300_000];
    session.read_exact(&mut head).unwrap();
    drop(session);
    let id = AssetId::from_key("p");
    assert!(cache.remove(&id).unwrap());
    assert!(cache.entries().is_empty());
    // Nothing of the old partial download is resumed.
    server.reset_counters();
    cache_whole(&cache, &server, "/p.bin", "p", &body);
    let first = server.requests()[0].range.clone();
    assert!(
        matches!(first.as_deref(), None | Some("bytes=0-")),
        "{first:?}"
    );
}

#[test]
fn a_mapped_body_stays_readable_and_is_removed_when_its_last_session_ends() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let (server, body) = serve("/a.bin", 3 * MIB, 7);
    cache_whole(&cache, &server, "/a.bin", "a", &body);
    let id = AssetId::from_key("a");
    let mut first = offline(&cache, "a");
    let mut second = offline(&cache, "a");
    let mut head = vec![0; 1000];
    first.read_exact(&mut head).unwrap();

    assert!(cache.remove(&id).unwrap());
    // Gone for everything new, never under the sessions that use it.
    assert!(!cache.is_cached(&id));
    assert!(cache.entries().is_empty());
    assert!(cache.body_path(&id).exists(), "removed under its sessions");
    assert!(
        !cache.remove(&id).unwrap(),
        "already removed as far as anyone sees"
    );

    // A new session streams from the network and neither reads nor writes the cache.
    server.reset_counters();
    let mut fresh =
        FileSource::open_with_cache(url(&server, "/a.bin"), keyed("a"), &cache).unwrap();
    assert!(!fresh.is_cached());
    assert!(read_all(&mut fresh) == body);
    assert_eq!(server.request_count("/a.bin"), 1);
    drop(fresh);
    assert!(cache.body_path(&id).exists());

    let mut rest = Vec::new();
    first.read_to_end(&mut rest).unwrap();
    assert!(rest == body[1000..]);
    drop(first);
    assert!(
        cache.asset_dir(&id).exists(),
        "the second session still uses it"
    );
    second.seek(SeekFrom::End(-10)).unwrap();
    assert!(read_all(&mut second) == body[body.len() - 10..]);
    drop(second);
    assert!(
        !cache.asset_dir(&id).exists(),
        "the last session's end removed it"
    );
    assert_eq!(cache.used_bytes(), 0);

    // The asset caches afresh from now on.
    cache_whole(&cache, &server, "/a.bin", "a", &body);
    assert!(cache.is_cached(&id));
}

#[test]
fn a_download_in_progress_finishes_and_is_then_removed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let (server, body) = serve("/w.bin", 4 * MIB, 8);
    let mut session = FileSource::open_with_cache(
        url(&server, "/w.bin"),
        keyed("w").with_look_ahead(256 * 1024),
        &cache,
    )
    .unwrap();
    let mut head = vec![0; MIB];
    session.read_exact(&mut head).unwrap();
    let id = AssetId::from_key("w");
    assert!(cache.remove(&id).unwrap());
    assert!(cache.entries().is_empty());
    let mut rest = Vec::new();
    session.read_to_end(&mut rest).unwrap();
    assert!(head == body[..MIB] && rest == body[MIB..]);
    assert!(cache.asset_dir(&id).exists());
    drop(session);
    assert!(!cache.asset_dir(&id).exists());
    assert!(!cache.is_cached(&id));
}

#[test]
fn eviction_and_removal_together_never_touch_a_leased_asset() {
    let dir = tempfile::tempdir().unwrap();
    let (server, body) = serve("/a.bin", MIB, 9);
    let cache = AssetCache::open(dir.path()).unwrap();
    cache_whole(&cache, &server, "/a.bin", "a", &body);
    let id = AssetId::from_key("a");
    let mut session = offline(&cache, "a");
    assert!(cache.remove(&id).unwrap());
    // An eviction pass with room for nothing skips the leased, marked asset.
    let tight = cache.clone().with_max_bytes(0);
    assert!(cache.body_path(&id).exists());
    assert!(read_all(&mut session) == body);
    drop(session);
    drop(tight);
    assert!(!cache.asset_dir(&id).exists());
}

// ---------------------------------------------------------------- another process

const CHILD_ENV: &str = "KITHARA_MANAGE_CHILD";

/// Runs only when re-executed as a child: holds a cached session of asset `key` until its
/// stdin closes, then reads the whole body and says how many bytes it got.
#[test]
fn child_process_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (root, key) = spec.split_once('|').unwrap();
    let cache = AssetCache::open(root).unwrap();
    let mut session = offline(&cache, key);
    println!("leased");
    std::io::stdout().flush().unwrap();
    let mut rest = Vec::new();
    std::io::stdin().read_to_end(&mut rest).unwrap();
    println!("read {}", read_all(&mut session).len());
}

fn spawn_child(root: &Path, key: &str) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{}|{key}", root.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    // The test harness prints its own lines first (and may start ours); "leased" ends
    // the line that says the lease is held.
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !line.trim_end().ends_with("leased") {
        assert!(Instant::now() < deadline, "the child never leased");
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child ended early"
        );
    }
    (child, out)
}

#[test]
fn an_asset_leased_by_another_process_is_removed_when_that_process_lets_go() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    let cache = AssetCache::open(&root).unwrap();
    let (server, body) = serve("/x.bin", 2 * MIB, 10);
    cache_whole(&cache, &server, "/x.bin", "x", &body);
    let id = AssetId::from_key("x");

    let (mut child, mut out) = spawn_child(&root, "x");
    assert!(cache.remove(&id).unwrap());
    assert!(!cache.is_cached(&id));
    assert!(
        cache.body_path(&id).exists(),
        "never removed under the other process"
    );
    drop(child.stdin.take()); // let the child read and finish
    let mut said = String::new();
    out.read_to_string(&mut said).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(said.contains(&format!("read {}", body.len())), "{said}");
    assert!(
        !cache.asset_dir(&id).exists(),
        "the other process's last session removed it"
    );
}

#[test]
fn a_removal_left_by_a_killed_process_is_finished_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    let cache = AssetCache::open(&root).unwrap();
    let (server, body) = serve("/y.bin", MIB, 11);
    cache_whole(&cache, &server, "/y.bin", "y", &body);
    let id = AssetId::from_key("y");

    let (mut child, _out) = spawn_child(&root, "y");
    assert!(cache.remove(&id).unwrap());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        cache.asset_dir(&id).exists(),
        "nobody was left to finish it"
    );
    assert!(!cache.is_cached(&id) && cache.entries().is_empty());
    let reopened = AssetCache::open(&root).unwrap();
    assert!(!reopened.asset_dir(&id).exists());
    assert_eq!(reopened.used_bytes(), 0);
}
