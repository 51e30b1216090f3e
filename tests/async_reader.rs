//! `AsyncFileReader`: byte-exact async reads and seeks under futures' executor and under a
//! current-thread tokio runtime; a stalled server blocks no executor thread (a timer on
//! the same thread fires on time); `stop()` wakes a pending read with `Stopped`.
//!
//! Needs `--features futures-io,tokio` (each half runs with its own feature).
#![cfg(any(feature = "futures-io", feature = "tokio"))]

mod support;

use std::io::{self, Read, SeekFrom};
use std::time::{Duration, Instant};

use kithara_file::{
    AssetCache, AsyncFileReader, DownloadState, FileError, FileSession, FileSource,
    FileSourceOptions, Url,
};
use support::{file_error, pattern, url, Fault, TestServer};

const MIB: usize = 1024 * 1024;

fn serve(path: &str, len: usize, seed: u64) -> (TestServer, Vec<u8>) {
    let server = TestServer::start();
    let body = pattern(len, seed);
    server.add_file(path, body.clone());
    (server, body)
}

fn open(server: &TestServer, path: &str) -> FileSession {
    FileSource::open(url(server, path), FileSourceOptions::new()).unwrap()
}

/// A server that sends `served` bytes of a 1 MiB file, then nothing for a minute.
fn stalling(served: u64, seed: u64) -> (TestServer, Vec<u8>) {
    let (server, body) = serve("/stall", MIB, seed);
    server.push_faults(
        "/stall",
        [Fault::StallAfter(served, Duration::from_secs(60))],
    );
    (server, body)
}

/// Whether the session's reader is parked waiting for bytes at `position`.
fn waits_at(session: &FileSession, position: u64) -> bool {
    let progress = session.progress();
    progress.position == position && progress.state == DownloadState::Buffering
}

/// The seeks every flavour checks: all three kinds, backward and forward, far and near.
const SEEKS: [SeekFrom; 6] = [
    SeekFrom::End(-1000),
    SeekFrom::Start(12_345),
    SeekFrom::Current(-345),
    SeekFrom::Current(2 * MIB as i64),
    SeekFrom::Start(7),
    SeekFrom::End(0),
];

/// Where `seek` from `position` lands in a file of `len` bytes.
fn target(seek: SeekFrom, position: u64, len: u64) -> u64 {
    let (base, delta) = match seek {
        SeekFrom::Start(n) => return n,
        SeekFrom::End(d) => (len, d),
        SeekFrom::Current(d) => (position, d),
    };
    base.checked_add_signed(delta).unwrap()
}

#[test]
fn the_reader_is_an_owned_send_unpin_handle() {
    fn assert_owned<T: Send + Sync + Unpin + 'static + std::fmt::Debug>() {}
    assert_owned::<AsyncFileReader>();
    #[cfg(feature = "futures-io")]
    {
        fn assert_futures<T: futures::io::AsyncRead + futures::io::AsyncSeek>() {}
        assert_futures::<AsyncFileReader>();
    }
    #[cfg(feature = "tokio")]
    {
        fn assert_tokio<T: tokio::io::AsyncRead + tokio::io::AsyncSeek>() {}
        assert_tokio::<AsyncFileReader>();
    }
}

#[cfg(feature = "futures-io")]
mod with_futures {
    use super::*;
    use futures::executor::block_on;
    use futures::io::{AsyncReadExt, AsyncSeekExt};

    #[test]
    fn reads_and_seeks_are_byte_exact() {
        let (server, body) = serve("/f", 3 * MIB + 7, 11);
        let len = body.len() as u64;
        let session = open(&server, "/f");
        let mut reader = session.async_reader();
        block_on(async {
            // An odd buffer size: chunk boundaries never line up with reads.
            let mut got = Vec::new();
            let mut buf = vec![0; 7919];
            while got.len() < MIB {
                let n = reader.read(&mut buf).await.unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
                assert_eq!(session.position(), got.len() as u64, "positions stay exact");
            }
            assert!(got == body[..got.len()]);

            for seek in SEEKS {
                let expected = target(seek, session.position(), len);
                let at = reader.seek(seek).await.unwrap();
                assert_eq!(at, expected, "{seek:?}");
                assert_eq!(session.position(), expected);
                let want = 4096.min(len - at) as usize;
                let mut piece = vec![0; want];
                reader.read_exact(&mut piece).await.unwrap();
                assert!(piece == body[at as usize..at as usize + want], "{seek:?}");
            }
            assert_eq!(reader.read(&mut buf).await.unwrap(), 0, "Ok(0) at the end");

            // The sync seek's contract: a negative target and one past the end fail and
            // leave the position as it was.
            let err = reader.seek(SeekFrom::Current(-(2 * len as i64))).await;
            assert_eq!(err.unwrap_err().kind(), io::ErrorKind::InvalidInput);
            let err = reader.seek(SeekFrom::Start(len + 1)).await.unwrap_err();
            assert!(matches!(
                file_error(&err),
                FileError::InvalidSeekPosition { .. }
            ));
            assert_eq!(session.position(), len);

            reader.seek(SeekFrom::Start(MIB as u64)).await.unwrap();
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest).await.unwrap();
            assert!(rest == body[MIB..]);
        });
    }

    #[test]
    fn the_unread_rest_of_a_chunk_stays_for_the_next_read_through_any_handle() {
        let (server, body) = serve("/f", MIB, 12);
        let session = open(&server, "/f");
        let mut reader = session.async_reader();
        let mut got = Vec::new();
        block_on(async {
            for _ in 0..1000 {
                let mut one = [0u8; 1];
                reader.read_exact(&mut one).await.unwrap();
                got.push(one[0]);
                (&session).read_exact(&mut one).unwrap();
                got.push(one[0]);
            }
        });
        assert!(got == body[..2000]);
        assert_eq!(session.position(), 2000);
        assert_eq!(server.request_count("/f"), 1);
    }

    #[test]
    fn a_cached_body_reads_and_seeks_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let cache = AssetCache::open(dir.path()).unwrap();
        let (server, body) = serve("/c", MIB + 99, 13);
        let options = || FileSourceOptions::new().with_cache_key("c");
        let mut first = FileSource::open_with_cache(url(&server, "/c"), options(), &cache).unwrap();
        let mut all = Vec::new();
        first.read_to_end(&mut all).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !first.is_cached() {
            assert!(Instant::now() < deadline, "never committed");
            std::thread::yield_now();
        }
        drop(first);
        drop(server);

        let dead: Url = "http://127.0.0.1:9/gone".parse().unwrap();
        let session =
            FileSource::open_with_cache(dead, options().with_max_retries(0), &cache).unwrap();
        assert!(session.is_cached());
        let mut reader = session.async_reader();
        block_on(async {
            let mut head = vec![0; 5000];
            reader.read_exact(&mut head).await.unwrap();
            assert!(head == body[..5000]);
            let len = body.len() as u64;
            // Each read runs to the end, so no far forward seek here.
            for seek in SEEKS
                .into_iter()
                .filter(|s| *s != SeekFrom::Current(2 * MIB as i64))
            {
                let expected = target(seek, session.position(), len);
                assert_eq!(reader.seek(seek).await.unwrap(), expected);
                let mut rest = Vec::new();
                reader.read_to_end(&mut rest).await.unwrap();
                assert!(rest == body[expected as usize..], "{seek:?}");
            }
        });
    }

    #[test]
    fn stop_wakes_a_pending_read_with_stopped() {
        let (server, body) = stalling(10_000, 14);
        let session = FileSource::open(
            url(&server, "/stall"),
            FileSourceOptions::new().with_read_timeout(Duration::from_secs(30)),
        )
        .unwrap();
        let mut reader = session.async_reader();
        let stopper = {
            let session = session.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(10);
                while !waits_at(&session, 10_000) {
                    assert!(Instant::now() < deadline, "the read never went pending");
                    std::thread::yield_now();
                }
                session.stop();
                Instant::now()
            })
        };
        let (head, err) = block_on(async {
            let mut head = vec![0; 10_000];
            reader.read_exact(&mut head).await.unwrap();
            let mut buf = vec![0; 4096];
            (head, reader.read(&mut buf).await.unwrap_err())
        });
        let stopped_at = stopper.join().unwrap();
        assert!(stopped_at.elapsed() < Duration::from_secs(2));
        assert!(head == body[..10_000]);
        assert_eq!(file_error(&err), &FileError::Stopped);
        block_on(async {
            let mut buf = [0; 1];
            let again = reader.read(&mut buf).await.unwrap_err();
            assert_eq!(file_error(&again), &FileError::Stopped);
            let seek = reader.seek(SeekFrom::Start(0)).await.unwrap_err();
            assert_eq!(file_error(&seek), &FileError::Stopped);
        });
    }
}

#[cfg(feature = "tokio")]
mod with_tokio {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncSeekExt};

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    /// Sleeps until `condition` holds, on the runtime's timer; bounded.
    async fn until(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[test]
    fn reads_and_seeks_are_byte_exact_in_a_spawned_task() {
        let (server, body) = serve("/f", 3 * MIB + 5, 21);
        let len = body.len() as u64;
        let session = open(&server, "/f");
        let mut reader = session.async_reader();
        let expected = body.clone();
        current_thread().block_on(async move {
            tokio::spawn(async move {
                // `read_buf` hands the reader uninitialised spare capacity.
                let mut got = Vec::with_capacity(MIB);
                while got.len() < MIB {
                    got.reserve(6007);
                    assert!(reader.read_buf(&mut got).await.unwrap() > 0);
                }
                assert!(got == expected[..got.len()]);
                assert_eq!(
                    reader.seek(SeekFrom::Current(0)).await.unwrap(),
                    got.len() as u64
                );

                for seek in SEEKS {
                    let at = target(seek, reader.session().position(), len);
                    assert_eq!(reader.seek(seek).await.unwrap(), at, "{seek:?}");
                    assert_eq!(reader.session().position(), at);
                    let want = 4096.min(len - at) as usize;
                    let mut piece = vec![0; want];
                    reader.read_exact(&mut piece).await.unwrap();
                    assert!(
                        piece == expected[at as usize..at as usize + want],
                        "{seek:?}"
                    );
                }
                let mut buf = [0; 16];
                assert_eq!(reader.read(&mut buf).await.unwrap(), 0, "Ok(0) at the end");
                let err = reader.seek(SeekFrom::Start(len + 1)).await.unwrap_err();
                assert!(matches!(
                    file_error(&err),
                    FileError::InvalidSeekPosition { .. }
                ));
                // A failed seek leaves the position, and `poll_complete` reports it.
                assert_eq!(reader.stream_position().await.unwrap(), len);

                reader.seek(SeekFrom::Start(123)).await.unwrap();
                let mut rest = Vec::new();
                reader.read_to_end(&mut rest).await.unwrap();
                assert!(rest == expected[123..]);
            })
            .await
            .unwrap();
        });
    }

    #[test]
    fn a_stalled_server_blocks_no_executor_thread() {
        // The driver gives the stalled request up after 3 s and resumes at the exact byte.
        let (server, body) = stalling(100_000, 22);
        let session = FileSource::open(
            url(&server, "/stall"),
            FileSourceOptions::new().with_read_timeout(Duration::from_secs(3)),
        )
        .unwrap();
        let mut reader = session.async_reader();
        let runtime = current_thread();
        let got = runtime.block_on(async {
            let task = tokio::spawn(async move {
                let mut got = Vec::new();
                reader.read_to_end(&mut got).await.map(|_| got)
            });
            until("the read to wait at the stall", || {
                waits_at(&session, 100_000)
            })
            .await;

            // The read is pending on this very thread: the timer must still fire on time.
            let stalled = Instant::now();
            for _ in 0..5 {
                let asked = Instant::now();
                tokio::time::sleep(Duration::from_millis(100)).await;
                let late = asked.elapsed().saturating_sub(Duration::from_millis(100));
                assert!(late < Duration::from_millis(250), "timer {late:?} late");
            }
            assert!(stalled.elapsed() < Duration::from_millis(1500));
            assert!(!task.is_finished());
            assert!(waits_at(&session, 100_000), "{:?}", session.progress());
            task.await.unwrap().unwrap()
        });
        assert!(got == body, "resumed byte-exact after the stall");
        assert_eq!(server.requests()[1].range.as_deref(), Some("bytes=100000-"));
    }

    #[test]
    fn stop_wakes_a_pending_read_with_stopped() {
        let (server, body) = stalling(20_000, 23);
        let session = FileSource::open(
            url(&server, "/stall"),
            FileSourceOptions::new().with_read_timeout(Duration::from_secs(30)),
        )
        .unwrap();
        let mut reader = session.async_reader();
        current_thread().block_on(async {
            let task = tokio::spawn(async move {
                let mut head = vec![0; 20_000];
                reader.read_exact(&mut head).await.unwrap();
                let mut buf = vec![0; 4096];
                let err = reader.read(&mut buf).await.unwrap_err();
                (head, err, Instant::now(), reader)
            });
            until("the read to wait at the stall", || {
                waits_at(&session, 20_000)
            })
            .await;
            let stopped_at = Instant::now();
            session.stop();
            let (head, err, woken_at, mut reader) = task.await.unwrap();
            assert!(woken_at.duration_since(stopped_at) < Duration::from_secs(1));
            assert!(head == body[..20_000]);
            assert_eq!(file_error(&err), &FileError::Stopped);
            let mut buf = [0; 1];
            assert_eq!(
                file_error(&reader.read(&mut buf).await.unwrap_err()),
                &FileError::Stopped
            );
            let seek = reader.seek(SeekFrom::End(-1)).await.unwrap_err();
            assert_eq!(file_error(&seek), &FileError::Stopped);
        });
    }
}
