//! A model-based check: seeded random reads and seeks against a session, every byte
//! and position compared with the file in memory.

use std::io::{self, Read, Seek, SeekFrom};

use kithara_file::FileSession;

/// A tiny deterministic generator, so every failure replays from its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Runs `operations` random reads and seeks against `session`, checking every byte
/// and every position against the file in memory. Returns the operations run.
pub fn run_model(session: &mut FileSession, body: &[u8], seed: u64, operations: usize) -> usize {
    let size = body.len() as u64;
    let mut rng = Rng(seed);
    let mut position: u64 = 0;
    let mut buf = vec![0u8; 256 * 1024];
    for op in 0..operations {
        match rng.below(10) {
            0..=3 => {
                let len = match rng.below(4) {
                    0 => rng.below(16) as usize + 1,
                    1 => rng.below(4096) as usize + 1,
                    2 => rng.below(65_536) as usize + 1,
                    _ => rng.below(buf.len() as u64) as usize + 1,
                };
                let n = session
                    .read(&mut buf[..len])
                    .unwrap_or_else(|e| panic!("seed {seed} op {op}: read failed: {e}"));
                let expected = (size - position).min(len as u64) as usize;
                assert!(
                    n > 0 || expected == 0,
                    "seed {seed} op {op}: Ok(0) at {position} of {size}"
                );
                let at = position as usize;
                assert!(
                    buf[..n] == body[at..at + n],
                    "seed {seed} op {op}: bytes at {position} differ"
                );
                position += n as u64;
            }
            4 => {
                let target = rng.below(size + 1);
                position = session.seek(SeekFrom::Start(target)).unwrap();
                assert_eq!(position, target);
            }
            5 => {
                let delta = rng.below(600_000) as i64 - 300_000;
                let target = position as i64 + delta;
                match session.seek(SeekFrom::Current(delta)) {
                    Ok(p) => {
                        assert!(target >= 0 && target as u64 <= size, "seed {seed} op {op}");
                        position = p;
                        assert_eq!(p, target as u64);
                    }
                    Err(e) => {
                        assert!(
                            target < 0 || target as u64 > size,
                            "seed {seed} op {op}: {e}"
                        );
                        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
                    }
                }
            }
            6 => {
                let back = rng.below(size.min(1 << 20) + 1) as i64;
                position = session.seek(SeekFrom::End(-back)).unwrap();
                assert_eq!(position, size - back as u64);
            }
            7 => {
                let target = rng.below(size + 1) as i64 - rng.below(2) as i64 * 1000;
                position = session.seek_bytes(target).unwrap();
                assert_eq!(position, target.max(0) as u64);
            }
            8 => {
                // Scrub: a run of small forward hops past the download and back.
                let step = rng.below(512 * 1024) + 1;
                for _ in 0..4 {
                    let target = (position + step).min(size);
                    position = session.seek(SeekFrom::Start(target)).unwrap();
                    let n = session.read(&mut buf[..1024]).unwrap();
                    let at = position as usize;
                    assert!(buf[..n] == body[at..at + n], "seed {seed} op {op}: scrub");
                    position += n as u64;
                }
                let back = rng.below(position + 1);
                position = session.seek(SeekFrom::Start(back)).unwrap();
            }
            _ => {
                assert_eq!(session.position(), position, "seed {seed} op {op}");
            }
        }
        assert_eq!(session.position(), position, "seed {seed} op {op}");
    }
    operations
}
