//! The player-facing surface: progress snapshots and events, without polling.

mod support;

use std::io::Read;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver};
use kithara_file::{AssetCache, DownloadState, FileEvent, FileSource, FileSourceOptions};
use support::{pattern, url, Fault, FileOptions, TestServer};

const MIB: usize = 1024 * 1024;

fn with_events() -> (FileSourceOptions, Receiver<FileEvent>) {
    let (tx, rx) = unbounded();
    let options = FileSourceOptions::new().with_events(move |event| {
        let _ = tx.send(event);
    });
    (options, rx)
}

fn drain(rx: &Receiver<FileEvent>) -> Vec<FileEvent> {
    rx.try_iter().collect()
}

/// Waits (bounded) for an event matching `want`, returning everything seen.
fn wait_for(rx: &Receiver<FileEvent>, want: impl Fn(&FileEvent) -> bool) -> Vec<FileEvent> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(event) => {
                let done = want(&event);
                seen.push(event);
                if done {
                    return seen;
                }
            }
            Err(_) => panic!("event never came; saw {seen:?}"),
        }
    }
}

#[test]
fn a_sequential_read_reports_opened_progress_and_complete() {
    let server = TestServer::start();
    let body = pattern(16 * MIB, 1);
    server.add_file("/a.flac", body.clone());
    server.set_file_options(
        "/a.flac",
        FileOptions {
            content_type: Some("audio/flac".into()),
            ..FileOptions::new()
        },
    );
    let (options, rx) = with_events();
    let started = Instant::now();
    let mut session = FileSource::open(url(&server, "/a.flac"), options).unwrap();
    let opened = drain(&rx);
    assert_eq!(
        opened.first(),
        Some(&FileEvent::Opened {
            length: Some(body.len() as u64),
            content_type: Some("audio/flac".into()),
            from_cache: false
        })
    );
    // A slow reader, so the download spans several progress intervals.
    let mut buf = vec![0; 256 * 1024];
    let mut got = Vec::new();
    loop {
        let n = session.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got == body);
    let events = wait_for(&rx, |e| *e == FileEvent::Complete);
    let elapsed = started.elapsed();
    let progress: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            FileEvent::Progress { downloaded, total } => Some((*downloaded, *total)),
            _ => None,
        })
        .collect();
    let bound = elapsed.as_millis() as usize / 100 + 2;
    assert!(
        progress.len() <= bound,
        "{} progress events in {elapsed:?}: rate-limited, never per chunk",
        progress.len()
    );
    assert!(progress.windows(2).all(|w| w[0].0 <= w[1].0), "monotonic");
    assert!(progress.iter().all(|p| p.1 == Some(body.len() as u64)));
    let snapshot = session.progress();
    assert_eq!(snapshot.state, DownloadState::Complete);
    assert_eq!(snapshot.total, Some(body.len() as u64));
    assert_eq!(snapshot.position, body.len() as u64);
    assert!(snapshot.downloaded >= body.len() as u64);
}

#[test]
fn seeks_are_reported() {
    let server = TestServer::start();
    server.add_file("/a", pattern(MIB, 2));
    let (options, rx) = with_events();
    let session = FileSource::open(url(&server, "/a"), options).unwrap();
    drain(&rx);
    session.seek_bytes(1000).unwrap();
    session.seek_bytes(1000).unwrap(); // no move, no event
    session.seek_bytes(10).unwrap();
    let seeks: Vec<_> = drain(&rx)
        .into_iter()
        .filter(|e| matches!(e, FileEvent::Seek { .. }))
        .collect();
    assert_eq!(
        seeks,
        vec![
            FileEvent::Seek { from: 0, to: 1000 },
            FileEvent::Seek { from: 1000, to: 10 }
        ]
    );
}

#[test]
fn a_stall_reports_stalled_retrying_and_resumed() {
    let server = TestServer::start();
    let body = pattern(2 * MIB, 3);
    server.add_file("/a", body.clone());
    server.push_faults("/a", [Fault::StallAfter(100_000, Duration::from_secs(30))]);
    let (options, rx) = with_events();
    let mut session = FileSource::open(
        url(&server, "/a"),
        options
            .with_read_timeout(Duration::from_millis(200))
            .with_retry_delay(Duration::from_millis(10), Duration::from_millis(50)),
    )
    .unwrap();
    let mut got = Vec::new();
    session.read_to_end(&mut got).unwrap();
    assert!(got == body);
    let events = wait_for(&rx, |e| *e == FileEvent::Complete);
    let stalled = events.iter().position(|e| *e == FileEvent::Stalled);
    let retrying = events.iter().position(
        |e| matches!(e, FileEvent::Retrying { attempt: 1, cause, .. } if !cause.is_empty()),
    );
    let resumed = events.iter().position(|e| *e == FileEvent::Resumed);
    assert!(
        matches!((stalled, retrying, resumed), (Some(s), Some(r), Some(u)) if s < r && r < u),
        "{events:?}"
    );
}

#[test]
fn a_fetch_that_gives_up_reports_the_error_and_the_failed_state() {
    let server = TestServer::start();
    server.add_file("/a", pattern(4 * MIB, 4));
    let (options, rx) = with_events();
    let mut session = FileSource::open(
        url(&server, "/a"),
        options
            .with_look_ahead(64 * 1024)
            .with_max_retries(1)
            .with_retry_delay(Duration::from_millis(1), Duration::from_millis(5)),
    )
    .unwrap();
    server.set_default_fault(
        "/a",
        Fault::Status {
            code: 500,
            retry_after: None,
            body: Vec::new(),
        },
    );
    session.seek_bytes(3 * MIB as i64).unwrap();
    assert!(session.read(&mut [0; 10]).is_err());
    let events = drain(&rx);
    assert!(
        events
            .iter()
            // A retried-out status is reported as the last status.
            .any(|e| matches!(
                e,
                FileEvent::Error(kithara_file::FileError::HttpStatus { status: 500, .. })
            )),
        "{events:?}"
    );
    assert_eq!(session.progress().state, DownloadState::Failed);
}

#[test]
fn a_cache_hit_reports_opened_from_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    let server = TestServer::start();
    let body = pattern(300_000, 5);
    server.add_file("/a", body.clone());
    let mut first =
        FileSource::open_with_cache(url(&server, "/a"), FileSourceOptions::new(), &cache).unwrap();
    let mut got = Vec::new();
    first.read_to_end(&mut got).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !first.is_cached() {
        assert!(Instant::now() < deadline);
        std::thread::yield_now();
    }
    let (options, rx) = with_events();
    let second = FileSource::open_with_cache(url(&server, "/a"), options, &cache).unwrap();
    assert_eq!(
        drain(&rx),
        vec![FileEvent::Opened {
            length: Some(300_000),
            content_type: None,
            from_cache: true
        }]
    );
    let progress = second.progress();
    assert_eq!(progress.state, DownloadState::Complete);
    assert_eq!(progress.downloaded, 0);
}
