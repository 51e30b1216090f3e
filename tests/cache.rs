//! The persistent asset cache: cache-first, cache-through, offline replay, partial resume,
//! eviction, integrity after crashes and corruption, sharing, and hostile cache keys.

mod support;

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kithara_file::{AssetCache, FileSession, FileSource, FileSourceOptions};
use support::{pattern, url, TestServer};

const MIB: usize = 1024 * 1024;

/// Nothing listens here: a session that touches the network fails at once.
const DEAD_URL: &str = "http://127.0.0.1:9/gone.bin";

fn keyed(key: &str) -> FileSourceOptions {
    FileSourceOptions::new().with_cache_key(key)
}

/// For opens that must be served by the cache: a network attempt fails at once.
fn offline(key: &str) -> FileSourceOptions {
    keyed(key).with_max_retries(0)
}

fn read_all(session: &mut FileSession) -> Vec<u8> {
    let mut got = Vec::new();
    session.read_to_end(&mut got).unwrap();
    got
}

/// The driver commits after it hands out the last chunk; wait for that, bounded.
fn wait_cached(session: &FileSession) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !session.is_cached() {
        assert!(Instant::now() < deadline, "body never committed");
        std::thread::yield_now();
    }
}

/// Streams `path` whole through the cache and checks the bytes.
fn cache_whole(cache: &AssetCache, server: &TestServer, path: &str, key: &str, body: &[u8]) {
    let mut session = FileSource::open_with_cache(url(server, path), keyed(key), cache).unwrap();
    assert!(read_all(&mut session) == body);
    wait_cached(&session);
}

#[test]
fn a_streamed_file_is_cached_then_served_with_zero_requests_even_offline() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path().join("nested/cache")).unwrap();
    let server = TestServer::start();
    let body = pattern(3 * MIB + 5, 1);
    server.add_file("/a.bin", body.clone());

    let mut first =
        FileSource::open_with_cache(url(&server, "/a.bin"), keyed("a"), &cache).unwrap();
    assert!(!first.is_cached());
    assert!(read_all(&mut first) == body);
    wait_cached(&first);
    let path = cache.body_path(first.asset_id());
    assert_eq!(std::fs::read(&path).unwrap(), body, "file/body is the file");
    assert!(path.ends_with(format!("{}/file/body", first.asset_id())));
    drop(first);

    drop(server); // offline from here on
    let mut second =
        FileSource::open_with_cache(DEAD_URL.parse().unwrap(), offline("a"), cache.clone())
            .unwrap();
    assert!(second.is_cached());
    assert!(second.is_seekable());
    assert_eq!(second.byte_len(), Some(body.len() as u64));
    assert_eq!(second.buffered_ranges(), vec![0..body.len() as u64]);
    assert!(read_all(&mut second) == body);
    second.seek(SeekFrom::Start(1234)).unwrap();
    let mut buf = vec![0; 100_000];
    second.read_exact(&mut buf).unwrap();
    assert!(buf == body[1234..101_234]);
    second.seek(SeekFrom::End(-10)).unwrap();
    assert_eq!(read_all(&mut second), body[body.len() - 10..]);
    assert_eq!(second.request_count(), 0, "a cache hit sends nothing");
}

#[test]
fn a_cached_file_streams_through_the_async_stream() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let server = TestServer::start();
    let body = pattern(MIB + 3, 2);
    server.add_file("/s.bin", body.clone());
    cache_whole(&cache, &server, "/s.bin", "s", &body);
    let session =
        FileSource::open_with_cache(DEAD_URL.parse().unwrap(), offline("s"), &cache).unwrap();
    let chunks = futures::executor::block_on(session.stream().collect::<Vec<_>>());
    let got: Vec<u8> = chunks
        .into_iter()
        .flat_map(|c| c.unwrap().to_vec())
        .collect();
    assert!(got == body);
}

#[test]
fn an_empty_file_is_cached_too() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let server = TestServer::start();
    server.add_file("/empty", Vec::new());
    cache_whole(&cache, &server, "/empty", "empty", &[]);
    drop(server);
    let mut session =
        FileSource::open_with_cache(DEAD_URL.parse().unwrap(), offline("empty"), &cache).unwrap();
    assert_eq!(session.byte_len(), Some(0));
    assert!(read_all(&mut session).is_empty());
}

#[test]
fn reads_of_bytes_already_written_come_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let server = TestServer::start();
    let body = pattern(6 * MIB, 3);
    server.add_file("/b.bin", body.clone());
    let mut session = FileSource::open_with_cache(
        url(&server, "/b.bin"),
        keyed("b").with_look_ahead(64 * 1024),
        &cache,
    )
    .unwrap();
    let mut buf = vec![0; 3 * MIB];
    session.read_exact(&mut buf).unwrap();
    let requests = session.request_count();
    // Far behind the 256 KiB history, but in the partial file.
    session.seek(SeekFrom::Start(10)).unwrap();
    let mut again = vec![0; MIB];
    session.read_exact(&mut again).unwrap();
    assert!(again == body[10..10 + MIB]);
    assert_eq!(
        session.request_count(),
        requests,
        "a backward seek costs no request"
    );
    let ranges = session.buffered_ranges();
    assert_eq!(ranges[0].start, 0);
    assert!(ranges[0].end >= 3 * MIB as u64, "{ranges:?}");
}

#[test]
fn a_stopped_download_resumes_from_its_partial_file_fetching_only_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let server = TestServer::start();
    let size = 10 * MIB;
    let body = pattern(size, 4);
    server.add_file("/c.bin", body.clone());

    let mut first = FileSource::open_with_cache(
        url(&server, "/c.bin"),
        keyed("c").with_look_ahead(64 * 1024),
        &cache,
    )
    .unwrap();
    let mut buf = vec![0; size * 4 / 10];
    first.read_exact(&mut buf).unwrap();
    assert!(buf == body[..buf.len()]);
    first.stop();
    drop(first);
    let first_served = server.bytes_served("/c.bin");
    server.reset_counters();

    let mut second =
        FileSource::open_with_cache(url(&server, "/c.bin"), keyed("c"), &cache).unwrap();
    let cached_before = second.buffered_ranges();
    assert_eq!(
        cached_before.first().map(|r| r.start),
        Some(0),
        "{cached_before:?}"
    );
    assert!(read_all(&mut second) == body, "resumed bytes differ");
    // The server's own count can include the tail of the first connection draining into
    // a closed socket; what the second session received is exact.
    let second_fetched = second.bytes_fetched();
    let resume_range = server.requests()[0].range.clone().unwrap();
    let cached: u64 = resume_range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("resume request {resume_range:?}"));
    println!(
        "partial resume: first session fetched {first_served} bytes, cache held {cached}, \
         second session fetched {second_fetched} of {size}"
    );
    assert!(cached >= (size * 4 / 10) as u64, "the first 40 % is reused");
    assert_eq!(
        second_fetched,
        size as u64 - cached,
        "only the gap is fetched"
    );
    let resume = &server.requests()[0];
    assert!(resume.range.as_deref().unwrap().starts_with("bytes="));
    assert_ne!(
        resume.range.as_deref(),
        Some("bytes=0-"),
        "starts at the gap"
    );
    assert!(
        resume.header("if-range").is_some(),
        "validated with If-Range"
    );
    wait_cached(&second);
}

#[test]
fn a_partial_file_of_an_older_version_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let server = TestServer::start();
    let old = pattern(4 * MIB, 5);
    server.add_file("/d.bin", old.clone());
    let mut first = FileSource::open_with_cache(
        url(&server, "/d.bin"),
        keyed("d").with_look_ahead(64 * 1024),
        &cache,
    )
    .unwrap();
    let mut buf = vec![0; MIB];
    first.read_exact(&mut buf).unwrap();
    drop(first);

    let new = pattern(4 * MIB + 100, 6);
    server.replace_file("/d.bin", new.clone(), Some("\"v2\""));
    let mut second =
        FileSource::open_with_cache(url(&server, "/d.bin"), keyed("d"), &cache).unwrap();
    assert!(read_all(&mut second) == new, "no byte of the old version");
    wait_cached(&second);
    assert_eq!(
        std::fs::read(cache.body_path(second.asset_id())).unwrap(),
        new
    );
}

#[test]
fn a_truncated_body_is_detected_and_refetched() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let server = TestServer::start();
    let body = pattern(2 * MIB, 7);
    server.add_file("/e.bin", body.clone());
    cache_whole(&cache, &server, "/e.bin", "e", &body);
    let id_path = {
        let s = FileSource::open_with_cache(url(&server, "/e.bin"), keyed("e"), &cache).unwrap();
        cache.body_path(s.asset_id())
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&id_path)
        .unwrap();
    file.set_len(MIB as u64).unwrap();
    drop(file);
    server.reset_counters();
    let mut session =
        FileSource::open_with_cache(url(&server, "/e.bin"), keyed("e"), &cache).unwrap();
    assert!(
        !session.is_cached(),
        "a short body is never served as complete"
    );
    assert!(read_all(&mut session) == body);
    assert!(server.request_count("/e.bin") >= 1);
    wait_cached(&session);
    assert_eq!(std::fs::read(&id_path).unwrap(), body);
}

#[test]
fn a_corrupt_index_is_discarded_and_the_file_refetched() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let server = TestServer::start();
    let body = pattern(4 * MIB, 8);
    server.add_file("/f.bin", body.clone());
    let mut first = FileSource::open_with_cache(
        url(&server, "/f.bin"),
        keyed("f").with_look_ahead(64 * 1024),
        &cache,
    )
    .unwrap();
    let mut buf = vec![0; MIB];
    first.read_exact(&mut buf).unwrap();
    let asset_dir = cache.asset_dir(first.asset_id());
    drop(first);
    let mut corrupted = 0;
    for entry in walk(&asset_dir) {
        let name = entry.file_name().unwrap().to_string_lossy().to_string();
        if name.contains("index") {
            std::fs::write(&entry, b"garbage that is not an index").unwrap();
            corrupted += 1;
        }
    }
    assert!(corrupted > 0, "the stopped session left an index");
    let mut second =
        FileSource::open_with_cache(url(&server, "/f.bin"), keyed("f"), &cache).unwrap();
    assert!(read_all(&mut second) == body);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn eviction_removes_the_least_recently_used_and_never_a_live_asset() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start();
    let size = MIB;
    for name in ["one", "two", "three", "four"] {
        server.add_file(&format!("/{name}"), pattern(size, name.len() as u64));
    }
    let cache = AssetCache::open(dir.path())
        .unwrap()
        .with_max_bytes(3 * size as u64 + size as u64 / 2);
    let cache_one = |name: &str| {
        let mut s =
            FileSource::open_with_cache(url(&server, &format!("/{name}")), keyed(name), &cache)
                .unwrap();
        read_all(&mut s);
        wait_cached(&s);
        s
    };
    drop(cache_one("one"));
    drop(cache_one("two"));
    let live_three = cache_one("three");
    // Touch "one" again so "two" is the least recently used.
    drop(FileSource::open_with_cache(DEAD_URL.parse().unwrap(), offline("one"), &cache).unwrap());
    drop(cache_one("four"));
    let cached = |name: &str| {
        FileSource::open_with_cache(DEAD_URL.parse().unwrap(), offline(name), &cache)
            .map(|s| s.is_cached())
            .unwrap_or(false)
    };
    assert!(cached("three"), "a live session's asset is never evicted");
    assert!(cached("four"));
    assert!(!cached("two"), "least recently used goes first");
    drop(live_three);
    assert!(cache.total_bytes() <= 3 * size as u64 + size as u64 / 2 + 64 * 1024);
}

#[test]
fn hostile_cache_keys_never_leave_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let cache = AssetCache::open(&root).unwrap();
    let server = TestServer::start();
    let body = pattern(100_000, 9);
    server.add_file("/k.bin", body.clone());
    let long = "x".repeat(100_000);
    for key in [
        "../escape",
        "/etc/passwd",
        "..",
        "a/../../b",
        "nul\0byte",
        long.as_str(),
    ] {
        let mut session = FileSource::open_with_cache(
            url(&server, "/k.bin"),
            FileSourceOptions::new().with_cache_key(key),
            &cache,
        )
        .unwrap();
        assert!(read_all(&mut session) == body);
        let id = session.asset_id().as_str().to_string();
        assert_eq!(id.len(), 64);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        wait_cached(&session);
    }
    let outside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        outside,
        vec![std::ffi::OsString::from("root")],
        "nothing outside the root"
    );
    for entry in std::fs::read_dir(&root).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        assert!(
            name.starts_with('.') || name.len() == 64,
            "unexpected entry {name:?} in the root"
        );
    }
}

#[test]
fn an_unusable_root_is_a_cache_error_but_a_broken_entry_only_disables_caching() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        AssetCache::open(&file),
        Err(kithara_file::FileError::Cache(_))
    ));

    let cache = AssetCache::open(dir.path().join("c")).unwrap();
    let server = TestServer::start();
    let body = pattern(MIB, 10);
    server.add_file("/g.bin", body.clone());
    // Make the asset's directory a plain file: the cache cannot use this entry.
    let probe = FileSource::open(url(&server, "/g.bin"), keyed("g")).unwrap();
    let asset_dir = cache.asset_dir(probe.asset_id());
    drop(probe);
    std::fs::write(&asset_dir, b"in the way").unwrap();
    let mut session =
        FileSource::open_with_cache(url(&server, "/g.bin"), keyed("g"), &cache).unwrap();
    assert!(
        read_all(&mut session) == body,
        "playback goes on from the network"
    );
    assert!(!session.is_cached());
}

#[test]
fn two_sessions_of_one_asset_share_the_cache_safely() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let server = TestServer::start();
    let body = pattern(5 * MIB, 11);
    server.add_file("/h.bin", body.clone());
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let cache = cache.clone();
            let address = url(&server, "/h.bin");
            let body = body.clone();
            std::thread::spawn(move || {
                let mut s = FileSource::open_with_cache(address, keyed("h"), cache).unwrap();
                assert!(read_all(&mut s) == body);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let session = FileSource::open_with_cache(url(&server, "/h.bin"), keyed("h"), &cache).unwrap();
    let body_file = cache.body_path(session.asset_id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !body_file.exists() {
        assert!(Instant::now() < deadline);
        std::thread::yield_now();
    }
    assert_eq!(std::fs::read(body_file).unwrap(), body, "one body results");
}

// ---------------------------------------------------------------- child processes

const CHILD_ENV: &str = "KITHARA_CACHE_CHILD";

/// Runs only when re-executed as a child: streams a URL through a cache to the end.
#[test]
fn child_process_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(3, '|');
    let (root, address, key) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let cache = AssetCache::open(root).unwrap();
    let mut session = FileSource::open_with_cache(
        address.parse().unwrap(),
        keyed(key).with_look_ahead(64 * 1024),
        &cache,
    )
    .unwrap();
    let mut buf = vec![0; 16 * 1024];
    let mut total = 0usize;
    loop {
        let n = session.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    wait_cached(&session);
    println!("child read {total} bytes");
}

fn spawn_child(root: &Path, address: &str, key: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{}|{address}|{key}", root.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

#[test]
fn killing_a_caching_process_never_leaves_an_incomplete_body() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    let cache = AssetCache::open(&root).unwrap();
    let server = TestServer::start();
    let body = pattern(12 * MIB, 12);
    server.add_file("/k.bin", body.clone());
    // Slow the transfer so kills land mid-download: every response stops after 1 MiB.
    server.set_default_fault("/k.bin", support::Fault::CloseAfter(MIB as u64));
    let address = server.url("/k.bin");
    let body_file = {
        let probe = FileSource::open(address.parse().unwrap(), keyed("k")).unwrap();
        cache.body_path(probe.asset_id())
    };
    let mut rng = 0x1234_5678_u64;
    let mut kills = 0;
    let mut complete_seen = 0;
    let mut finished_alone = 0;
    for _ in 0..24 {
        let mut child = spawn_child(&root, &address, "k");
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let after = Duration::from_millis(20 + rng % 400);
        let started = Instant::now();
        // The kill time is the fault we inject; polling try_wait keeps it bounded.
        while started.elapsed() < after {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        } else {
            finished_alone += 1;
        }
        let status = child.wait().unwrap();
        assert!(
            status.success() || status.code().is_none(),
            "a child failed on its own: {status:?}"
        );
        if body_file.exists() {
            assert!(
                std::fs::read(&body_file).unwrap() == body,
                "after kill {kills}: file/body exists but is not the file"
            );
            complete_seen += 1;
            // Start over so later kills hit a download in progress again.
            std::fs::remove_dir_all(cache.asset_dir(&asset_id(&cache, &address))).unwrap();
        }
    }
    println!(
        "crash test: {kills} kills, {finished_alone} finished first, \
         {complete_seen} complete bodies, 0 incomplete"
    );
    assert!(kills >= 20, "only {kills} kills landed");
    // A last session completes whatever the kills left behind.
    let mut session =
        FileSource::open_with_cache(address.parse().unwrap(), keyed("k"), &cache).unwrap();
    assert!(read_all(&mut session) == body);
    wait_cached(&session);
    assert!(std::fs::read(&body_file).unwrap() == body);
}

fn asset_id(_cache: &AssetCache, address: &str) -> kithara_file::AssetId {
    FileSource::open(address.parse().unwrap(), keyed("k"))
        .unwrap()
        .asset_id()
        .clone()
}

#[test]
fn two_processes_on_one_asset_both_read_correct_bytes_and_one_body_results() {
    let server = TestServer::start();
    let body = pattern(6 * MIB, 13);
    server.add_file("/p.bin", body.clone());
    let address = server.url("/p.bin");
    // Whichever of the three is the writer, the body is there the moment all are done.
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cache");
        let cache = AssetCache::open(&root).unwrap();
        let children: Vec<_> = (0..2).map(|_| spawn_child(&root, &address, "p")).collect();
        let mut session =
            FileSource::open_with_cache(address.parse().unwrap(), keyed("p"), &cache).unwrap();
        assert!(read_all(&mut session) == body);
        let body_file = cache.body_path(session.asset_id());
        drop(session);
        for mut child in children {
            assert!(child.wait().unwrap().success(), "a child read wrong bytes");
        }
        assert!(
            body_file.exists(),
            "round {round}: no body after three readers"
        );
        assert!(std::fs::read(&body_file).unwrap() == body);
        let file_dir = body_file.parent().unwrap();
        let names: Vec<_> = std::fs::read_dir(file_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.iter().all(|n| n == "body" || n == "meta"),
            "round {round}: {names:?}"
        );
    }
}

#[test]
fn a_stale_partial_whose_refetch_fails_never_becomes_a_complete_body() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let server = TestServer::start();
    server.add_file("/s.bin", pattern(4 * MIB, 14));
    let mut first = FileSource::open_with_cache(
        url(&server, "/s.bin"),
        keyed("stale").with_look_ahead(64 * 1024),
        &cache,
    )
    .unwrap();
    let mut buf = vec![0; MIB];
    first.read_exact(&mut buf).unwrap();
    drop(first);

    // The file changes, and the restarted request after the new ETag is refused.
    let new = pattern(3 * MIB, 15);
    server.replace_file("/s.bin", new.clone(), Some("\"v2\""));
    server.push_faults(
        "/s.bin",
        [
            support::Fault::None,
            support::Fault::Status {
                code: 404,
                retry_after: None,
                body: Vec::new(),
            },
        ],
    );
    assert!(FileSource::open_with_cache(url(&server, "/s.bin"), keyed("stale"), &cache).is_err());

    let mut third =
        FileSource::open_with_cache(url(&server, "/s.bin"), keyed("stale"), &cache).unwrap();
    assert!(!third.is_cached(), "no empty or stale body was committed");
    assert!(read_all(&mut third) == new);
}

#[test]
fn a_partial_file_without_validators_is_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let server = TestServer::start();
    let body = pattern(4 * MIB, 16);
    server.add_file("/n.bin", body.clone());
    server.set_file_options(
        "/n.bin",
        support::FileOptions {
            etag: None,
            last_modified: false,
            ..support::FileOptions::new()
        },
    );
    let mut first = FileSource::open_with_cache(
        url(&server, "/n.bin"),
        keyed("n").with_look_ahead(64 * 1024),
        &cache,
    )
    .unwrap();
    let mut buf = vec![0; 2 * MIB];
    first.read_exact(&mut buf).unwrap();
    drop(first);
    server.reset_counters();
    let mut second =
        FileSource::open_with_cache(url(&server, "/n.bin"), keyed("n"), &cache).unwrap();
    assert!(read_all(&mut second) == body);
    assert_eq!(
        server.requests()[0].range.as_deref(),
        Some("bytes=0-"),
        "without a validator two versions could not be told apart"
    );
}

#[test]
fn an_html_page_answered_with_200_is_never_cached() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let server = TestServer::start();
    let page = b"<html><body>Please log in to the hotel wifi</body></html>".to_vec();
    server.add_file("/track.mp3", page.clone());
    // A portal answers its own page with 200 whatever Range asked (a 206 with a valid
    // Content-Range is the file, whatever its label: see tests/hostile.rs).
    server.set_file_options(
        "/track.mp3",
        support::FileOptions {
            content_type: Some("text/html; charset=utf-8".into()),
            ranges: false,
            ..support::FileOptions::new()
        },
    );
    let mut session =
        FileSource::open_with_cache(url(&server, "/track.mp3"), keyed("portal"), &cache).unwrap();
    assert_eq!(read_all(&mut session), page);
    drop(session);
    drop(server);
    assert!(
        FileSource::open_with_cache(DEAD_URL.parse().unwrap(), offline("portal"), &cache).is_err(),
        "the login page was kept as the track"
    );
}

/// Makes a path immutable (`chattr +i`: even root cannot write) until dropped.
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Option<Immutable> {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(path)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Immutable(path.to_path_buf()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_cache_root_only_turns_caching_off() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let cache = AssetCache::open(&root).unwrap();
    let Some(_frozen) = Immutable::set(&root) else {
        println!("skipped: chattr +i is not available here");
        return;
    };
    let server = TestServer::start();
    let body = pattern(2 * MIB, 17);
    server.add_file("/ro.bin", body.clone());
    let mut session =
        FileSource::open_with_cache(url(&server, "/ro.bin"), keyed("ro"), &cache).unwrap();
    assert!(
        read_all(&mut session) == body,
        "playback goes on from the network"
    );
    assert!(!session.is_cached());
}

#[test]
fn a_write_error_mid_stream_only_turns_caching_off() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let server = TestServer::start();
    let body = pattern(6 * MIB, 18);
    server.add_file("/w.bin", body.clone());
    let mut session = FileSource::open_with_cache(
        url(&server, "/w.bin"),
        keyed("w").with_look_ahead(64 * 1024),
        &cache,
    )
    .unwrap();
    let mut got = vec![0; MIB];
    session.read_exact(&mut got).unwrap();
    // Freeze the partial data file the driver is writing: its next write fails.
    let parts: Vec<PathBuf> = walk(&cache.asset_dir(session.asset_id()))
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "part"))
        .collect();
    assert_eq!(parts.len(), 1, "one partial data file: {parts:?}");
    let Some(_frozen) = Immutable::set(&parts[0]) else {
        println!("skipped: chattr +i is not available here");
        return;
    };
    let mut rest = Vec::new();
    session.read_to_end(&mut rest).unwrap();
    got.extend_from_slice(&rest);
    assert!(got == body, "playback went on byte for byte");
    assert!(!session.is_cached(), "nothing incomplete was committed");
    assert!(!cache.body_path(session.asset_id()).exists());
}
