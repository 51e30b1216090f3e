//! How much a fetch after a seek asks for at a time.
//!
//! A reader that seeks at random reads a little at each place (decoders: ~100 KB per seek
//! in a 300-seek session measured against nginx) and moves on; filling the whole 4 MiB
//! look-ahead after every seek received 3.5x the bytes delivered and abandoned a
//! connection per seek. So after a seek the driver asks for bounded ranges
//! (`bytes=P-Q`) that it reads to their end (the connection goes back to ureq's pool for
//! the next seek), and reads ahead only as far as the reader's own progress since the
//! seek justifies: 16 KiB at first, then a quarter of what was read. Read-ahead is what a
//! seek away throws: 300 random seeks reading 16–64 KiB each received 1.18x the bytes
//! delivered this way against nginx (1.37x with 32 KiB at first; a model with read-ahead
//! equal to what was read gave 2x). "Read" counts from the reader's last seek (see
//! `Status::reader_seeks`). Once the reader has read 256 KiB on, it is playing, not
//! probing: one open-ended request takes the rest, paced by the look-ahead (a sequential
//! read after a seek is a dozen or so small requests on one kept-alive connection, then
//! one). The first fetch of a session is open-ended from the start: whole-file playback
//! is one request; so is a read that asks again where a playing fetch gave up.
//!
//! On a metered link without a cache, the look-ahead is a hard cap on what is asked
//! for: every request, the first too, ends at most a look-ahead
//! past the reader, and a playing reader asks for half a look-ahead at a time.
//!
//! Pure functions, tested by tables.

/// Read-ahead right after a seek: what a decoder needs to find its first frame.
pub(crate) const FIRST_AHEAD: u64 = 16 * 1024;

/// The smallest request worth a round trip; also the hysteresis: a new request waits until
/// at least this much (or half the read-ahead) may be asked for. With 16 KiB ahead the next
/// request goes out while 4 KiB are still unread.
pub(crate) const MIN_REQUEST: u64 = 12 * 1024;

/// Read on this far after a seek, the reader is playing: the rest is one open-ended request.
pub(crate) const PLAYING_AFTER: u64 = 256 * 1024;

/// What the driver does next for a windowed fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Ask for bytes up to `end` (exclusive; `None`: to the end of the file).
    Request { end: Option<u64> },
    /// Nothing to ask for until the reader reaches `position`.
    WaitFor { position: u64 },
}

/// How far ahead of the reader the driver may have asked, after `consumed` bytes read
/// since the seek: all of the look-ahead once the reader is playing.
pub(crate) fn read_ahead(consumed: u64, look_ahead: u64) -> u64 {
    if consumed >= PLAYING_AFTER {
        return look_ahead;
    }
    (consumed / 4).max(FIRST_AHEAD).min(look_ahead)
}

/// The next step of a fetch that started at `start`, has received everything before
/// `received`, and ends at `limit` (its own end, or the file's); `reader` is the reader's
/// position.
pub(crate) fn next_request(
    start: u64,
    received: u64,
    reader: u64,
    look_ahead: u64,
    limit: Option<u64>,
) -> Next {
    let ahead = read_ahead(reader.saturating_sub(start), look_ahead);
    if ahead >= look_ahead {
        // The reader reads on: the channel's backpressure paces one open-ended request.
        return Next::Request { end: limit };
    }
    bounded_request(received, reader, ahead, limit)
}

/// The next step when the look-ahead is a hard cap on what is asked for (see
/// `with_metered_link`): like [`next_request`], but a reader that plays gets bounded
/// requests ending `look_ahead` past it, half a look-ahead at a time, never one
/// open-ended request. The first fetch (`playing`) starts at the whole look-ahead.
pub(crate) fn capped_request(
    start: u64,
    received: u64,
    reader: u64,
    look_ahead: u64,
    limit: Option<u64>,
    playing: bool,
) -> Next {
    let ahead = if playing {
        look_ahead
    } else {
        read_ahead(reader.saturating_sub(start), look_ahead)
    };
    bounded_request(received, reader, ahead, limit)
}

/// Ask for bytes up to `ahead` past the reader once at least half of that (or
/// [`MIN_REQUEST`]) may be asked for, or the fetch's end is in reach, or the reader has
/// caught up; else wait for the reader.
fn bounded_request(received: u64, reader: u64, ahead: u64, limit: Option<u64>) -> Next {
    let allowed = reader.saturating_add(ahead);
    let end = limit.map_or(allowed, |limit| limit.min(allowed));
    let worth = MIN_REQUEST.max(ahead / 2);
    let to_limit = limit.is_some_and(|limit| end == limit && end > received);
    if end >= received.saturating_add(worth) || to_limit || reader >= received {
        return Next::Request {
            end: Some(end.max(received.saturating_add(1))),
        };
    }
    Next::WaitFor {
        position: received.saturating_add(worth).saturating_sub(ahead),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const LOOK_AHEAD: u64 = 4 * MIB;

    #[test]
    fn read_ahead_is_a_quarter_of_what_was_read_until_the_reader_plays() {
        for (consumed, ahead) in [
            (0, 16 * KIB),
            (60 * KIB, 16 * KIB),
            (100 * KIB, 25 * KIB),
            (200 * KIB, 50 * KIB),
            (256 * KIB - 1, 64 * KIB - 1),
            (256 * KIB, 4 * MIB),
            (u64::MAX, 4 * MIB),
        ] {
            assert_eq!(read_ahead(consumed, LOOK_AHEAD), ahead, "after {consumed}");
        }
        assert_eq!(
            read_ahead(0, 16 * KIB),
            16 * KIB,
            "never past the look-ahead"
        );
    }

    #[test]
    fn the_next_request_follows_the_reader() {
        let start = 10 * MIB;
        for (received, reader, limit, next) in [
            // Right after the seek: the first 16 KiB.
            (
                start,
                start,
                None,
                Next::Request {
                    end: Some(start + 16 * KIB),
                },
            ),
            // Received 16 KiB, read 4: wait until a request is worth it.
            (
                start + 16 * KIB,
                start + 4 * KIB,
                None,
                Next::WaitFor {
                    position: start + 12 * KIB,
                },
            ),
            // Read 12: the next 12 KiB go out while 4 are still unread.
            (
                start + 16 * KIB,
                start + 12 * KIB,
                None,
                Next::Request {
                    end: Some(start + 28 * KIB),
                },
            ),
            // The reader has reached what was received: ask at once.
            (
                start + 16 * KIB,
                start + 16 * KIB,
                None,
                Next::Request {
                    end: Some(start + 32 * KIB),
                },
            ),
            // The reader is ahead of what was received (a seek forward): ask at once.
            (
                start + 16 * KIB,
                start + 40 * KIB,
                None,
                Next::Request {
                    end: Some(start + 56 * KIB),
                },
            ),
            // Near the end of the fetch: the rest, however small.
            (
                start + 16 * KIB,
                start + 10 * KIB,
                Some(start + 20 * KIB),
                Next::Request {
                    end: Some(start + 20 * KIB),
                },
            ),
            // Playing: one open-ended request.
            (
                start + 3 * MIB,
                start + 2 * MIB,
                None,
                Next::Request { end: None },
            ),
            (
                start + 3 * MIB,
                start + 2 * MIB,
                Some(start + 5 * MIB),
                Next::Request {
                    end: Some(start + 5 * MIB),
                },
            ),
        ] {
            assert_eq!(
                next_request(start, received, reader, LOOK_AHEAD, limit),
                next,
                "received {received}, reader {reader}, limit {limit:?}"
            );
        }
    }

    #[test]
    fn a_capped_look_ahead_never_asks_past_the_reader_plus_the_look_ahead() {
        // (received, reader, limit, playing, next)
        for (received, reader, limit, playing, next) in [
            // The first request of a session: the whole look-ahead, not the file.
            (
                0,
                0,
                Some(64 * MIB),
                true,
                Next::Request {
                    end: Some(LOOK_AHEAD),
                },
            ),
            // Everything allowed was asked for: wait until half of it is read.
            (
                LOOK_AHEAD,
                MIB,
                Some(64 * MIB),
                true,
                Next::WaitFor { position: 2 * MIB },
            ),
            // Half read: the next half.
            (
                LOOK_AHEAD,
                2 * MIB,
                Some(64 * MIB),
                true,
                Next::Request { end: Some(6 * MIB) },
            ),
            // Near the end of the file: the rest.
            (
                62 * MIB,
                60 * MIB,
                Some(64 * MIB),
                true,
                Next::Request {
                    end: Some(64 * MIB),
                },
            ),
            (
                63 * MIB,
                61 * MIB + 1,
                Some(64 * MIB),
                true,
                Next::Request {
                    end: Some(64 * MIB),
                },
            ),
            // Length unknown: still bounded.
            (
                0,
                0,
                None,
                true,
                Next::Request {
                    end: Some(LOOK_AHEAD),
                },
            ),
            // After a seek, a playing reader gets bounded requests, never an open one.
            (
                10 * MIB + 3 * MIB,
                10 * MIB + 2 * MIB,
                None,
                false,
                Next::Request {
                    end: Some(16 * MIB),
                },
            ),
        ] {
            let start = if playing { 0 } else { 10 * MIB };
            let got = capped_request(start, received, reader, LOOK_AHEAD, limit, playing);
            assert_eq!(got, next, "received {received}, reader {reader}");
            if let Next::Request { end: Some(end) } = got {
                assert!(
                    end <= reader + LOOK_AHEAD,
                    "{end} past {reader} + look-ahead"
                );
            }
        }
        // Wherever they stand, no request ends past the cap, and none is open-ended.
        for reader in (0..8 * MIB).step_by(99_991) {
            for gap in (0..=LOOK_AHEAD).step_by(65_537) {
                for playing in [true, false] {
                    let got = capped_request(0, reader + gap, reader, LOOK_AHEAD, None, playing);
                    if let Next::Request { end } = got {
                        let end = end.expect("never open-ended");
                        assert!(end <= (reader + LOOK_AHEAD).max(reader + gap + 1));
                    }
                }
            }
        }
    }

    #[test]
    fn a_waiting_driver_is_woken_before_the_reader_runs_dry() {
        // Wherever the reader and the driver stand, the position to wait for is at most
        // what was received: the reader reaching the end of its bytes always wakes it.
        for consumed in (0..2 * MIB).step_by(7919) {
            for gap in (0..4 * MIB).step_by(65_537) {
                let reader = MIB + consumed;
                let received = reader + gap;
                if let Next::WaitFor { position } =
                    next_request(MIB, received, reader, LOOK_AHEAD, None)
                {
                    assert!(
                        position <= received && position > reader,
                        "{consumed} {gap}"
                    );
                }
            }
        }
    }

    #[test]
    fn huge_offsets_never_overflow() {
        let near = u64::MAX - 10;
        for (start, received, reader) in [
            (near, near, near),
            (0, u64::MAX, u64::MAX),
            (near, u64::MAX, 0),
        ] {
            let _ = next_request(start, received, reader, LOOK_AHEAD, None);
            let _ = next_request(start, received, reader, LOOK_AHEAD, Some(u64::MAX));
            let _ = capped_request(start, received, reader, LOOK_AHEAD, None, true);
            let _ = capped_request(start, received, reader, LOOK_AHEAD, Some(u64::MAX), false);
        }
    }
}
