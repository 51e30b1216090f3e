//! `FileSession: Clone`: handles share one cursor and one download; a clone's drop changes
//! nothing, `stop()` on any handle stops them all, and the last handle's drop ends the
//! session (its connection closes).

mod support;

use std::io::{self, Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use kithara_file::{FileError, FileSession, FileSource, FileSourceOptions};
use support::{file_error, pattern, url, Fault, TestServer};

const MIB: usize = 1024 * 1024;

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

/// Reads until the end or an error: the bytes, and the error if there was one.
fn read_until_error(mut reader: impl Read) -> (Vec<u8>, Option<io::Error>) {
    let mut got = Vec::new();
    let mut buf = vec![0; 16 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Some(e)),
        }
    }
}

#[test]
fn clones_are_send_sync_static() {
    fn assert_clone_send_sync_static<T: Clone + Send + Sync + 'static>() {}
    assert_clone_send_sync_static::<FileSession>();
}

#[test]
fn clones_share_one_cursor_and_one_download() {
    let (server, body) = serve("/f", 2 * MIB + 3, 1);
    let mut a = FileSource::open(url(&server, "/f"), FileSourceOptions::new()).unwrap();
    let mut b = a.clone();
    let mut head = vec![0; 1000];
    a.read_exact(&mut head).unwrap();
    let mut next = vec![0; 1000];
    b.read_exact(&mut next).unwrap();
    assert!(head == body[..1000] && next == body[1000..2000]);
    assert_eq!((a.position(), b.position()), (2000, 2000));

    b.seek(SeekFrom::Start(MIB as u64)).unwrap();
    assert_eq!(
        a.position(),
        MIB as u64,
        "a seek through one handle moves both"
    );
    let mut rest = Vec::new();
    a.read_to_end(&mut rest).unwrap();
    assert!(rest == body[MIB..]);
    assert_eq!(a.request_count(), b.request_count());
    assert_eq!(a.bytes_fetched(), b.bytes_fetched());
    assert_eq!(a.asset_id(), b.asset_id());
    // One download for both handles: after the first request, only the seek's (windows
    // that grow, then one open-ended request), all from 1 MiB on; none at all when the
    // first request had already brought byte 1 MiB in.
    let starts: Vec<u64> = server.requests()[1..]
        .iter()
        .map(|r| {
            r.range.as_deref().unwrap()["bytes=".len()..]
                .split('-')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        starts.iter().all(|&start| start >= MIB as u64) && starts.windows(2).all(|w| w[0] < w[1]),
        "{starts:?}"
    );
}

#[test]
fn a_clone_reads_on_a_thread_while_the_original_keeps_stats_and_stops() {
    let server = TestServer::start();
    let body = pattern(MIB, 2);
    server.add_file("/stall", body.clone());
    server.push_faults(
        "/stall",
        [Fault::StallAfter(50_000, Duration::from_secs(30))],
    );
    let session = FileSource::open(
        url(&server, "/stall"),
        FileSourceOptions::new().with_read_timeout(Duration::from_secs(30)),
    )
    .unwrap();
    let reader = {
        let clone = session.clone();
        std::thread::spawn(move || read_until_error(clone))
    };
    wait_until(
        "the reader to take the served bytes",
        Duration::from_secs(10),
        || session.position() == 50_000,
    );
    let progress = session.progress();
    assert_eq!(progress.position, 50_000);
    assert_eq!(progress.total, Some(body.len() as u64));
    assert!(progress.downloaded >= 50_000);

    let stopped_at = Instant::now();
    session.stop();
    let (got, err) = reader.join().unwrap();
    assert!(
        stopped_at.elapsed() < Duration::from_secs(2),
        "{:?}",
        stopped_at.elapsed()
    );
    assert!(got == body[..50_000]);
    assert_eq!(
        file_error(&err.expect("stopped, not EOF")),
        &FileError::Stopped
    );
}

#[test]
fn stop_on_a_clone_stops_every_handle() {
    let (server, _) = serve("/f", MIB, 3);
    let session = FileSource::open(url(&server, "/f"), FileSourceOptions::new()).unwrap();
    let clone = session.clone();
    clone.stop();
    drop(clone);
    let mut buf = [0; 10];
    let err = (&session).read(&mut buf).unwrap_err();
    assert_eq!(file_error(&err), &FileError::Stopped);
    let err = (&session).seek(SeekFrom::Start(10)).unwrap_err();
    assert_eq!(file_error(&err), &FileError::Stopped);
}

#[test]
fn dropping_a_clone_leaves_the_session_running() {
    let (server, body) = serve("/f", 3 * MIB, 4);
    let mut session = FileSource::open(url(&server, "/f"), FileSourceOptions::new()).unwrap();
    for _ in 0..10 {
        let clone = session.clone();
        let mut byte = [0; 1];
        (&clone).read_exact(&mut byte).unwrap();
        drop(clone);
    }
    let mut rest = Vec::new();
    session.read_to_end(&mut rest).unwrap();
    assert!(rest == body[10..]);
    assert_eq!(
        server.request_count("/f"),
        1,
        "one download for all handles"
    );
}

#[test]
fn the_last_handle_dropped_ends_the_session() {
    // A large file and a small look-ahead: the driver is held back with the response
    // open, so the server sees the connection close only when the session ends.
    let (server, body) = serve("/big", 32 * MIB, 5);
    let session = FileSource::open(
        url(&server, "/big"),
        FileSourceOptions::new().with_look_ahead(256 * 1024),
    )
    .unwrap();
    let clones: Vec<FileSession> = (0..3).map(|_| session.clone()).collect();
    drop(session);
    let mut buf = vec![0; 100_000];
    (&clones[2]).read_exact(&mut buf).unwrap();
    assert!(buf == body[..100_000]);
    assert_eq!(
        server.active_connections(),
        1,
        "a clone's drop changes nothing"
    );

    let dropped_at = Instant::now();
    drop(clones);
    assert!(
        dropped_at.elapsed() < Duration::from_secs(2),
        "{:?}",
        dropped_at.elapsed()
    );
    // The driver was joined and its request cancelled: the server sees the connection go.
    wait_until("the connection to close", Duration::from_secs(10), || {
        server.active_connections() == 0
    });
    assert!(server.bytes_served("/big") < 8 * MIB as u64);
}
