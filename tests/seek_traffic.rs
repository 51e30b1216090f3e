//! What random seeks cost on the wire (issue "performance round 2", target 4): a reader
//! that seeks at random and reads a little at each place gets about what it reads, the
//! server sends about what the session receives, and most requests reuse a connection.
//! Seeds and read sizes form a matrix: the bound holds for each, not on average.

mod support;

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use kithara_file::{FileSource, FileSourceOptions};
use support::model::Rng;
use support::{pattern, url, TestServer};

const KIB: u64 = 1024;

/// The size of the MP3 the issue measured against nginx.
const FILE_SIZE: usize = 4_400_000;
const SEEKS: usize = 300;

struct Traffic {
    delivered: u64,
    received: u64,
    served: u64,
    requests: usize,
    connections: usize,
}

/// `SEEKS` seeded seeks, each followed by a read of `min..=max` bytes, checked byte for
/// byte.
fn random_seeks(seed: u64, min: u64, max: u64) -> Traffic {
    let server = TestServer::start();
    let body = pattern(FILE_SIZE, seed);
    server.add_file("/t.mp3", body.clone());
    let mut session = FileSource::open(url(&server, "/t.mp3"), FileSourceOptions::new()).unwrap();
    let mut rng = Rng(seed);
    let mut buf = vec![0u8; max as usize];
    let mut delivered = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..SEEKS {
        assert!(Instant::now() < deadline, "seed {seed}: seek {i} past 60 s");
        let len = (min + rng.below(max - min + 1)) as usize;
        let offset = rng.below((FILE_SIZE - len) as u64);
        session.seek(SeekFrom::Start(offset)).unwrap();
        session.read_exact(&mut buf[..len]).unwrap();
        let at = offset as usize;
        assert!(
            buf[..len] == body[at..at + len],
            "seed {seed} seek {i}: bytes at {offset}"
        );
        delivered += len as u64;
    }
    let received = session.bytes_fetched();
    drop(session);
    let requests = server.requests();
    Traffic {
        delivered,
        received,
        served: server.bytes_served("/t.mp3"),
        requests: requests.len(),
        connections: requests
            .iter()
            .map(|r| r.connection)
            .collect::<HashSet<_>>()
            .len(),
    }
}

#[test]
fn random_seeks_receive_at_most_1_3x_what_they_read_and_reuse_connections() {
    for (seed, min, max) in [
        (1, 16 * KIB, 64 * KIB),
        (2, 16 * KIB, 64 * KIB),
        (3, 32 * KIB, 128 * KIB),
        (4, 64 * KIB, 160 * KIB),
        // Reads smaller than the first window after a seek (16 KiB) cannot stay within
        // 1.3x; what the server sends still follows what the session receives.
        (5, 4 * KIB, 16 * KIB),
    ] {
        let t = random_seeks(seed, min, max);
        let received = t.received as f64 / t.delivered as f64;
        let fresh = t.connections as f64 / t.requests as f64;
        println!(
            "seed {seed}, reads {min}-{max}: {} requests on {} connections, received {received:.2}x, \
             server sent {:.2}x of {} delivered",
            t.requests,
            t.connections,
            t.served as f64 / t.delivered as f64,
            t.delivered
        );
        if min >= 16 * KIB {
            assert!(received <= 1.3, "seed {seed}: received {received:.2}x");
        }
        // The server sends about what the session receives: on top, what it pushed into
        // sockets for responses a seek abandoned (the first one is open-ended: whole-file
        // playback is one request). Requests that raced a seek's own made it 10.7x once.
        assert!(
            t.served <= 2 * t.received,
            "seed {seed}: the server sent {} for {} received",
            t.served,
            t.received
        );
        assert!(
            fresh <= 0.5,
            "seed {seed}: {} of {} requests opened a connection",
            t.connections,
            t.requests
        );
    }
}

/// A demuxer that reads 16 KiB and steps over 100 KiB (another track's data), again and
/// again after a seek, is playing: the bytes it steps over arrive anyway, and once it has
/// read 256 KiB one open-ended request takes the rest (102 requests when every step
/// counted as a new seek). Ideally 17: the seek's fetch, 15 growing windows, then the
/// open-ended one. A window the driver plans in the instant between the reader's read and
/// its next skip is one request more (the skipped bytes follow in the next): 17–22 measured
/// with two of these tests running at once, so the bound leaves room for a loaded machine.
#[test]
fn a_reader_that_steps_over_data_after_a_seek_soon_plays_with_one_request() {
    let server = TestServer::start();
    let body = pattern(16 << 20, 9);
    server.add_file("/v.mp4", body.clone());
    let mut session = FileSource::open(url(&server, "/v.mp4"), FileSourceOptions::new()).unwrap();
    let mut buf = vec![0u8; 16 * KIB as usize];
    session.read_exact(&mut buf).unwrap();
    let before = session.request_count();
    let mut at = 4 << 20;
    for step in 0..100 {
        session.seek(SeekFrom::Start(at)).unwrap();
        session.read_exact(&mut buf).unwrap();
        let i = at as usize;
        assert!(
            buf[..] == body[i..i + buf.len()],
            "step {step}: bytes at {at}"
        );
        at += 116 * KIB;
    }
    let requests = session.request_count() - before;
    println!("100 steps of 16 KiB read + 100 KiB skipped: {requests} requests");
    assert!(requests <= 30, "{requests} requests");
}
