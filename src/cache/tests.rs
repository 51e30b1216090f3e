//! Unit tests of the cache's parts, on a temp directory.
#![allow(
    clippy::single_range_in_vec_init,
    reason = "expected coverage is written as a list of ranges"
)]

use super::*;
use super::{asset_id::*, handle::*, records::*};
use crate::{platform, FileError};
use std::fs::{self, OpenOptions};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;

fn url(s: &str) -> url::Url {
    url::Url::parse(s).unwrap()
}

fn meta(len: u64) -> CachedMeta {
    CachedMeta {
        len,
        etag: Some("\"v1\"".to_owned()),
        last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".to_owned()),
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ seed)
        .collect::<Vec<u8>>()
}

/// Downloads `data` into the cache as asset `key` in one go and commits it.
fn put(cache: &AssetCache, key: &str, data: &[u8]) -> AssetId {
    let id = AssetId::from_key(key);
    let lease = cache.lease(&id).unwrap();
    let part = lease.begin_write().unwrap().unwrap();
    part.reset(meta(data.len() as u64)).unwrap();
    for (i, chunk) in data.chunks(64 * 1024).enumerate() {
        part.write_at((i * 64 * 1024) as u64, chunk).unwrap();
    }
    part.commit().unwrap();
    id
}

fn new_cache() -> (TempDir, AssetCache) {
    let dir = TempDir::new().unwrap();
    let cache = AssetCache::open(dir.path().join("cache")).unwrap();
    (dir, cache)
}

#[test]
fn asset_id_is_stable() {
    // sha256("https://example.com/audio/track.mp3"), computed once with sha256sum.
    let id = AssetId::from_url(&url("https://example.com/audio/track.mp3"));
    assert_eq!(
        id.as_str(),
        "b77e51dcd164c202e648562c18ef4a539d07c32f74071d9f36da1d65f526cd23"
    );
    assert_eq!(id.to_string(), id.as_str());
}

#[test]
fn asset_id_normalizes_urls() {
    let plain = AssetId::from_url(&url("http://example.com/a"));
    assert_eq!(AssetId::from_url(&url("HTTP://Example.COM:80/a#x")), plain);
    assert_eq!(
        AssetId::from_url(&url("http://user:pw@example.com/a")),
        plain
    );
    assert_eq!(AssetId::from_url(&url("http://user@example.com/a")), plain);
    assert_ne!(AssetId::from_url(&url("http://example.com/a?q=1")), plain);
    assert_ne!(AssetId::from_url(&url("https://example.com/a")), plain);
    assert_ne!(AssetId::from_url(&url("http://example.com:8080/a")), plain);
}

#[test]
fn asset_id_is_lowercase_hex() {
    for key in ["", "a", "../../etc/passwd", "http://x/\u{e9}"] {
        let id = AssetId::from_key(key);
        assert_eq!(id.as_str().len(), 64);
        assert!(id
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(AssetId::parse(id.as_str()), Some(id));
    }
    assert_eq!(AssetId::parse("ABCD"), None);
}

#[test]
fn open_on_a_file_is_a_cache_error() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    assert!(matches!(AssetCache::open(&file), Err(FileError::Cache(_))));
    assert!(matches!(
        AssetCache::open(file.join("below")),
        Err(FileError::Cache(_))
    ));
}

#[test]
fn open_creates_nested_root() {
    let dir = TempDir::new().unwrap();
    let root = dir.path().join("a").join("b").join("c");
    let cache = AssetCache::open(&root).unwrap();
    assert!(root.is_dir());
    assert_eq!(cache.root(), root);
    let id = AssetId::from_key("k");
    assert_eq!(cache.asset_dir(&id), root.join(id.as_str()));
    assert_eq!(
        cache.body_path(&id),
        root.join(id.as_str()).join("file").join("body")
    );
    // Nothing but the (empty) root is left by the probe.
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
}

#[test]
fn open_on_read_only_root_is_a_cache_error() {
    let dir = TempDir::new().unwrap();
    let root = dir.path().join("ro");
    fs::create_dir(&root).unwrap();
    platform::set_dir_writable(&root, false).unwrap();
    let probe = root.join("probe");
    if fs::write(&probe, b"x").is_ok() {
        fs::remove_file(&probe).unwrap();
        eprintln!(
            "note: skipping read-only root assertions: permissions do not stop writes here \
             (running as root?)"
        );
        return;
    }
    assert!(matches!(AssetCache::open(&root), Err(FileError::Cache(_))));
    assert!(matches!(
        AssetCache::open(root.join("nested")),
        Err(FileError::Cache(_))
    ));
    platform::set_dir_writable(&root, true).unwrap();
}

#[test]
fn partial_write_read_and_coverage() {
    let (_dir, cache) = new_cache();
    let lease = cache.lease(&AssetId::from_key("partial")).unwrap();
    let part = lease.begin_write().unwrap().unwrap();
    assert_eq!(part.meta(), None);
    assert!(part.covered().is_empty());
    part.reset(meta(1000)).unwrap();
    assert_eq!(part.meta(), Some(meta(1000)));

    let data = pattern(1000, 7);
    part.write_at(100, &data[100..200]).unwrap();
    part.write_at(200, &data[200..300]).unwrap();
    part.write_at(500, &data[500..600]).unwrap();
    assert_eq!(part.covered(), [100..300, 500..600]);

    assert_eq!(part.covered_end(0), None);
    assert_eq!(part.covered_end(100), Some(300));
    assert_eq!(part.covered_end(299), Some(300));
    assert_eq!(part.covered_end(300), None);
    assert_eq!(part.covered_end(550), Some(600));
    assert_eq!(part.next_covered_start(0), Some(100));
    assert_eq!(part.next_covered_start(100), Some(500));
    assert_eq!(part.next_covered_start(300), Some(500));
    assert_eq!(part.next_covered_start(500), None);

    let mut buf = [0u8; 64];
    assert_eq!(part.read_at(0, &mut buf).unwrap(), 0);
    assert_eq!(part.read_at(300, &mut buf).unwrap(), 0);
    assert_eq!(part.read_at(100, &mut buf).unwrap(), 64);
    assert_eq!(buf[..], data[100..164]);
    assert_eq!(part.read_at(280, &mut buf).unwrap(), 20);
    assert_eq!(buf[..20], data[280..300]);

    // Past the recorded length is refused and marks nothing.
    let err = part.write_at(990, &[0; 20]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(part.covered(), [100..300, 500..600]);
    assert!(!part.is_complete());
    assert_eq!(
        part.commit().unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );

    part.reset(meta(10)).unwrap();
    assert!(part.covered().is_empty());
    assert_eq!(part.meta(), Some(meta(10)));
    assert_eq!(part.read_at(100, &mut buf).unwrap(), 0);
}

#[test]
fn checkpoint_survives_to_the_next_run() {
    let (_dir, cache) = new_cache();
    let id = AssetId::from_key("resume");
    let data = pattern(300_000, 3);
    {
        let lease = cache.lease(&id).unwrap();
        let part = lease.begin_write().unwrap().unwrap();
        part.reset(meta(300_000)).unwrap();
        part.write_at(0, &data[..100_000]).unwrap();
        part.write_at(200_000, &data[200_000..250_000]).unwrap();
        part.checkpoint().unwrap();
        // Written after the last checkpoint: lost by the next run, never claimed.
        part.write_at(100_000, &data[100_000..150_000]).unwrap();
        drop(part);
        drop(lease);
    }
    let lease = cache.lease(&id).unwrap();
    let part = lease.begin_write().unwrap().unwrap();
    assert_eq!(part.meta(), Some(meta(300_000)));
    assert_eq!(part.covered(), [0..100_000, 200_000..250_000]);
    let mut buf = vec![0u8; 50_000];
    assert_eq!(part.read_at(200_000, &mut buf).unwrap(), 50_000);
    assert_eq!(buf, data[200_000..250_000]);

    part.write_at(100_000, &data[100_000..200_000]).unwrap();
    part.write_at(250_000, &data[250_000..]).unwrap();
    assert!(part.is_complete());
    part.commit().unwrap();
    let (body, m) = lease.complete_body().unwrap();
    assert_eq!(m, meta(300_000));
    assert_eq!(body[..], data[..]);
}

/// Writes a checkpointed partial download of `key` and returns its file dir.
fn checkpointed(cache: &AssetCache, key: &str) -> PathBuf {
    let id = AssetId::from_key(key);
    let lease = cache.lease(&id).unwrap();
    let part = lease.begin_write().unwrap().unwrap();
    part.reset(meta(1000)).unwrap();
    part.write_at(0, &pattern(500, 1)).unwrap();
    part.checkpoint().unwrap();
    cache.asset_dir(&id).join(FILE_DIR)
}

fn assert_fresh(cache: &AssetCache, key: &str) {
    let lease = cache.lease(&AssetId::from_key(key)).unwrap();
    let part = lease.begin_write().unwrap().unwrap();
    assert_eq!(part.meta(), None);
    assert!(part.covered().is_empty());
    let file_dir = cache.asset_dir(lease.id()).join(FILE_DIR);
    assert_eq!(fs::metadata(file_dir.join(PART)).unwrap().len(), 0);
    assert!(!file_dir.join(INDEX).exists());
}

#[test]
fn index_claiming_more_than_the_data_is_discarded() {
    let (_dir, cache) = new_cache();
    let file_dir = checkpointed(&cache, "short");
    // As if the data never reached the disk (a crash after an index rename of a buggy
    // writer, or someone truncated it).
    OpenOptions::new()
        .write(true)
        .open(file_dir.join(PART))
        .unwrap()
        .set_len(499)
        .unwrap();
    assert_fresh(&cache, "short");
}

#[test]
fn index_beyond_meta_len_is_discarded() {
    let (_dir, cache) = new_cache();
    let file_dir = checkpointed(&cache, "beyond");
    let index = encode_index(Some(&meta(100)), &[0..500]);
    fs::write(file_dir.join(INDEX), index).unwrap();
    assert_fresh(&cache, "beyond");
}

#[test]
fn corrupt_index_is_discarded() {
    let (_dir, cache) = new_cache();
    let file_dir = checkpointed(&cache, "corrupt");
    let mut index = fs::read(file_dir.join(INDEX)).unwrap();
    let mid = index.len() / 2;
    index[mid] ^= 0xff;
    fs::write(file_dir.join(INDEX), &index).unwrap();
    assert_fresh(&cache, "corrupt");

    let file_dir = checkpointed(&cache, "garbage");
    fs::write(file_dir.join(INDEX), b"not an index").unwrap();
    assert_fresh(&cache, "garbage");
}

#[test]
fn stale_temp_files_are_repaired() {
    let (_dir, cache) = new_cache();
    let file_dir = checkpointed(&cache, "tmp");
    fs::write(file_dir.join(INDEX_TMP), b"half").unwrap();
    fs::write(file_dir.join(META_TMP), b"half").unwrap();
    let lease = cache.lease(&AssetId::from_key("tmp")).unwrap();
    let part = lease.begin_write().unwrap().unwrap();
    assert_eq!(part.covered(), [0..500]);
    assert!(!file_dir.join(INDEX_TMP).exists());
    assert!(!file_dir.join(META_TMP).exists());
}

#[test]
fn commit_makes_a_complete_body() {
    let (_dir, cache) = new_cache();
    let data = pattern(200_000, 9);
    let id = AssetId::from_key("commit");
    let lease = cache.lease(&id).unwrap();
    assert!(lease.complete_body().is_none());
    let part = lease.begin_write().unwrap().unwrap();
    part.reset(meta(200_000)).unwrap();
    // Out of order, to exercise merging.
    part.write_at(100_000, &data[100_000..]).unwrap();
    part.write_at(0, &data[..100_000]).unwrap();
    part.checkpoint().unwrap();
    assert!(part.is_complete());
    assert!(!part.is_committed());
    part.commit().unwrap();
    assert!(part.is_committed());

    let (body, m) = lease.complete_body().unwrap();
    assert_eq!(m, meta(200_000));
    assert_eq!(body[..], data[..]);
    assert!(cache.body_path(&id).is_file());
    let file_dir = cache.asset_dir(&id).join(FILE_DIR);
    for leftover in [PART, INDEX, INDEX_TMP, META_TMP] {
        assert!(!file_dir.join(leftover).exists(), "{leftover} left behind");
    }

    // The writer is done: writes and resets cannot touch the body any more.
    part.write_at(0, &[0xff; 10]).unwrap();
    part.reset(meta(5)).unwrap();
    part.checkpoint().unwrap();
    part.commit().unwrap();
    let mut buf = [0u8; 10];
    assert_eq!(part.read_at(0, &mut buf).unwrap(), 10);
    assert_eq!(buf[..], data[..10]);
    assert_eq!(fs::read(cache.body_path(&id)).unwrap(), data);
    drop(part);

    // The next run finds it through a fresh lease.
    drop(lease);
    let lease = cache.lease(&id).unwrap();
    let (again, _) = lease.complete_body().unwrap();
    assert_eq!(again[..], data[..]);
    // A mapped body stays readable after it is evicted (unlinked).
    drop(lease);
    let small = cache.clone().with_max_bytes(0);
    assert!(!cache.asset_dir(&id).exists());
    assert_eq!(again[..], data[..]);
    drop(small);
}

#[test]
fn empty_body_commits() {
    let (_dir, cache) = new_cache();
    let id = put(&cache, "empty", &[]);
    let lease = cache.lease(&id).unwrap();
    let (body, m) = lease.complete_body().unwrap();
    assert!(body.is_empty());
    assert_eq!(m.len, 0);
}

#[test]
fn recommit_replaces_the_body() {
    let (_dir, cache) = new_cache();
    let id = put(&cache, "twice", &pattern(1000, 1));
    let lease = cache.lease(&id).unwrap();
    let (old, _) = lease.complete_body().unwrap();
    let part = lease.begin_write().unwrap().unwrap();
    let new_meta = CachedMeta {
        len: 2000,
        etag: Some("\"v2\"".to_owned()),
        last_modified: None,
    };
    part.reset(new_meta.clone()).unwrap();
    part.write_at(0, &pattern(2000, 2)).unwrap();
    part.commit().unwrap();
    let (new, m) = lease.complete_body().unwrap();
    assert_eq!(m, new_meta);
    assert_eq!(new[..], pattern(2000, 2)[..]);
    // The earlier mapping still sees the old version, untouched.
    assert_eq!(old[..], pattern(1000, 1)[..]);
}

#[test]
fn body_length_mismatch_removes_body() {
    let (_dir, cache) = new_cache();
    let id = put(&cache, "mismatch", &pattern(1000, 4));
    // Replace the body (by rename, as anything touching a body must) with a shorter one.
    let body = cache.body_path(&id);
    let tmp = body.with_file_name("other");
    fs::write(&tmp, pattern(999, 4)).unwrap();
    fs::rename(&tmp, &body).unwrap();
    let lease = cache.lease(&id).unwrap();
    assert!(lease.complete_body().is_none());
    assert!(!body.exists());
}

#[test]
fn body_without_valid_meta_is_removed() {
    let (_dir, cache) = new_cache();
    let id = put(&cache, "nometa", &pattern(100, 5));
    let meta_path = cache.asset_dir(&id).join(FILE_DIR).join(META);
    fs::write(&meta_path, b"garbage").unwrap();
    let lease = cache.lease(&id).unwrap();
    assert!(lease.complete_body().is_none());
    assert!(!cache.body_path(&id).exists());

    let id = put(&cache, "nometa2", &pattern(100, 5));
    fs::remove_file(cache.asset_dir(&id).join(FILE_DIR).join(META)).unwrap();
    let lease = cache.lease(&id).unwrap();
    assert!(lease.complete_body().is_none());
    assert!(!cache.body_path(&id).exists());
}

#[test]
fn only_one_writer_at_a_time() {
    let (_dir, cache) = new_cache();
    let id = AssetId::from_key("writer");
    let first_lease = cache.lease(&id).unwrap();
    let second_lease = cache.lease(&id).unwrap();
    let first = first_lease.begin_write().unwrap().unwrap();
    assert!(second_lease.begin_write().unwrap().is_none());
    assert!(first_lease.begin_write().unwrap().is_none());
    // Another handle on the same root is another "process" as far as locks go.
    let other = AssetCache::open(cache.root()).unwrap();
    assert!(other.lease(&id).unwrap().begin_write().unwrap().is_none());
    drop(first);
    assert!(second_lease.begin_write().unwrap().is_some());
}

#[test]
fn eviction_removes_least_recently_used() {
    let (_dir, cache) = new_cache();
    let cache = cache.with_max_bytes(2500);
    let pause = || std::thread::sleep(Duration::from_millis(20));
    let a = put(&cache, "a", &pattern(1000, 1));
    pause();
    let b = put(&cache, "b", &pattern(1000, 2));
    pause();
    assert!(cache.total_bytes() <= 2500, "{}", cache.total_bytes());
    // Using `a` again makes `b` the least recently used.
    drop(cache.lease(&a).unwrap());
    pause();
    let c = put(&cache, "c", &pattern(1000, 3));
    assert!(cache.asset_dir(&a).exists());
    assert!(!cache.asset_dir(&b).exists());
    assert!(cache.asset_dir(&c).exists());
    assert!(cache.total_bytes() <= 2500);

    // A leased asset survives even the smallest limit, whatever its age; an asset
    // leased through another handle (another registry) too, by its file lock.
    let lease_a = cache.lease(&a).unwrap();
    let other = AssetCache::open(cache.root()).unwrap();
    let lease_c = other.lease(&c).unwrap();
    let tight = cache.clone().with_max_bytes(1);
    assert!(cache.asset_dir(&a).exists());
    assert!(cache.asset_dir(&c).exists());
    assert!(lease_a.complete_body().is_some());
    drop(lease_a);
    drop(tight.with_max_bytes(1));
    assert!(!cache.asset_dir(&a).exists());
    assert!(cache.asset_dir(&c).exists());
    drop(lease_c);
    drop(cache.clone().with_max_bytes(1));
    assert!(!cache.asset_dir(&c).exists());
    assert_eq!(cache.total_bytes(), 0);
}

#[test]
fn committed_asset_is_kept_even_above_the_limit() {
    let (_dir, cache) = new_cache();
    let cache = cache.with_max_bytes(10);
    let old = put(&cache, "old", &pattern(100, 1));
    let id = AssetId::from_key("big");
    let lease = cache.lease(&id).unwrap();
    let part = lease.begin_write().unwrap().unwrap();
    part.reset(meta(5000)).unwrap();
    part.write_at(0, &pattern(5000, 2)).unwrap();
    part.commit().unwrap();
    assert!(!cache.asset_dir(&old).exists());
    assert_eq!(lease.complete_body().unwrap().0.len(), 5000);
}

#[test]
fn lease_after_eviction_recreates_the_directory() {
    let (_dir, cache) = new_cache();
    let id = put(&cache, "again", &pattern(10, 1));
    drop(cache.clone().with_max_bytes(0));
    assert!(!cache.asset_dir(&id).exists());
    let lease = cache.lease(&id).unwrap();
    assert!(lease.complete_body().is_none());
    assert!(lease.begin_write().unwrap().is_some());
    // No trash left behind under the root.
    let names: Vec<_> = fs::read_dir(cache.root())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from(id.as_str())]);
}

#[test]
fn concurrent_reader_and_writer() {
    let (_dir, cache) = new_cache();
    let lease = cache.lease(&AssetId::from_key("threads")).unwrap();
    let part = lease.begin_write().unwrap().unwrap();
    let data = pattern(4 << 20, 6);
    part.reset(meta(data.len() as u64)).unwrap();
    let reader = {
        let part = Arc::clone(&part);
        let data = data.clone();
        std::thread::spawn(move || {
            let mut pos = 0;
            let mut buf = vec![0u8; 10_000];
            while pos < data.len() {
                let n = part.read_at(pos as u64, &mut buf).unwrap();
                assert_eq!(buf[..n], data[pos..pos + n]);
                pos += n;
                if n == 0 {
                    std::thread::yield_now();
                }
            }
        })
    };
    for (i, chunk) in data.chunks(64 * 1024).enumerate() {
        part.write_at((i * 64 * 1024) as u64, chunk).unwrap();
    }
    part.commit().unwrap();
    reader.join().unwrap();
}
