//! Audio decoders on top of a [`FileSession`]: symphonia 0.6 (through the crate's
//! `MediaSource` impl) and rodio 0.23 (symphonia 0.5 inside, decoding only, no device).
//!
//! For every fixture format the decoded samples through the loopback HTTP server must be
//! the samples decoded from the local file, bit for bit: after a full decode, after a seek
//! to the middle, with the connection dropped every 256 KiB, and in rodio. A read failure
//! must reach the decoder as an I/O error, never as a short track. Request counts per
//! access pattern are printed (`cargo test --all-features --test audio -- --nocapture`).
#![cfg(all(feature = "symphonia", feature = "symphonia-05"))]

mod support;

use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use kithara_file::{FileError, FileSession, FileSource, FileSourceOptions};
use rodio::Source as _;
use support::{pattern, url, Fault, TestServer};
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::{Error as SymError, SeekErrorKind};
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, SeekMode, SeekTo, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::units::Time;

/// Every committed fixture and the extension given to the decoders as a hint.
const FIXTURES: &[(&str, &str)] = &[
    ("tone.wav", "wav"),
    ("tone.flac", "flac"),
    ("tone.mp3", "mp3"),
    ("tone.ogg", "ogg"),
    ("tone.m4a", "m4a"),
    ("tone-moov-end.m4a", "m4a"),
];

/// The fixtures are 3 s long; this is their middle.
const MIDDLE_SECS: f64 = 1.5;

/// Upper bound on packets in one decode (the fixtures have a few hundred): a decoder that
/// never reaches the end fails the test instead of hanging it.
const MAX_PACKETS: usize = 1_000_000;

const KIB: u64 = 1024;
/// Where the faulty server cuts every response.
const DROP_EVERY: u64 = 256 * KIB;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("read fixture {name}: {e}"))
}

fn local_file(name: &str) -> std::fs::File {
    std::fs::File::open(fixture_path(name)).unwrap_or_else(|e| panic!("open fixture {name}: {e}"))
}

/// A server that serves every fixture at `/<name>`.
fn fixture_server() -> TestServer {
    let server = TestServer::start();
    for (name, _) in FIXTURES {
        server.add_file(&format!("/{name}"), fixture_bytes(name));
    }
    server
}

fn open(server: &TestServer, path: &str, options: FileSourceOptions) -> FileSession {
    FileSource::open(url(server, path), options).unwrap_or_else(|e| panic!("open {path}: {e}"))
}

/// Fast retries: the faulty server drops connections on purpose, waiting helps nothing.
fn quick_retries() -> FileSourceOptions {
    FileSourceOptions::new().with_retry_delay(Duration::from_millis(1), Duration::from_millis(10))
}

/// A 16-bit stereo PCM WAV (44-byte header) whose samples are the deterministic test
/// pattern: white noise, so any misplaced byte changes the decoded samples.
fn noise_wav(seconds: u32, rate: u32, seed: u64) -> Vec<u8> {
    let channels: u16 = 2;
    let bits: u16 = 16;
    let block_align = channels * bits / 8;
    let data_len = seconds * rate * u32::from(block_align);
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVE");
    wav.extend_from_slice(b"fmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&channels.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    wav.extend_from_slice(&block_align.to_le_bytes());
    wav.extend_from_slice(&bits.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    wav.extend_from_slice(&pattern(data_len as usize, seed));
    assert_eq!(wav.len(), 44 + data_len as usize);
    wav
}

/// 10 s of 44.1 kHz stereo 16-bit: 1.68 MiB, so a drop every 256 KiB cuts it 6 times.
fn long_wav() -> Vec<u8> {
    noise_wav(10, 44_100, 7)
}

// ---------------------------------------------------------------------------
// Decoded-sample digests
// ---------------------------------------------------------------------------

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x100_0000_01b3;

/// Frames decoded and an FNV-1a hash over the bit patterns of the interleaved samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Digest {
    frames: u64,
    hash: u64,
}

impl Digest {
    fn new() -> Self {
        Digest {
            frames: 0,
            hash: FNV_OFFSET,
        }
    }

    fn add(&mut self, interleaved: &[f32], channels: usize) {
        assert!(channels > 0 && interleaved.len().is_multiple_of(channels));
        self.frames += (interleaved.len() / channels) as u64;
        for sample in interleaved {
            for byte in sample.to_bits().to_le_bytes() {
                self.hash ^= u64::from(byte);
                self.hash = self.hash.wrapping_mul(FNV_PRIME);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// symphonia 0.6
// ---------------------------------------------------------------------------

/// A probed container with its default audio track's decoder.
struct Track<'s> {
    format: Box<dyn FormatReader + 's>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    sample_rate: u32,
}

/// What a decode after a seek produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AfterSeek {
    required_ts: i64,
    actual_ts: i64,
    /// Every frame decoded after the seek, from `actual_ts` on.
    from_actual: Digest,
    /// The frames from `required_ts` on (what an accurate seek is meant to play).
    from_required: Digest,
}

impl<'s> Track<'s> {
    fn probe(source: Box<dyn MediaSource + 's>, ext: &str) -> Result<Self, SymError> {
        let stream = MediaSourceStream::new(source, Default::default());
        let mut hint = Hint::new();
        hint.with_extension(ext);
        let format = symphonia::default::get_probe().probe(
            &hint,
            stream,
            FormatOptions::default(),
            MetadataOptions::default(),
        )?;
        let track = format
            .default_track(TrackType::Audio)
            .ok_or(SymError::Unsupported("no audio track"))?;
        let track_id = track.id;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or(SymError::Unsupported("no audio codec parameters"))?;
        let sample_rate = params
            .sample_rate
            .ok_or(SymError::Unsupported("no sample rate"))?;
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(params, &AudioDecoderOptions::default())?;
        Ok(Track {
            format,
            decoder,
            track_id,
            sample_rate,
        })
    }

    /// Decodes up to `max_packets` packets of the track (to the end with `None`). The
    /// second digest leaves out frames before `skip_until_ts`. A packet the codec rejects
    /// fails the decode: the fixtures have none, so one means corrupted bytes.
    fn decode(
        &mut self,
        max_packets: Option<usize>,
        skip_until_ts: i64,
    ) -> Result<(Digest, Digest), SymError> {
        let mut all = Digest::new();
        let mut kept = Digest::new();
        let mut samples: Vec<f32> = Vec::new();
        let limit = max_packets.unwrap_or(MAX_PACKETS);
        for _ in 0..limit {
            let Some(packet) = self.format.next_packet()? else {
                return Ok((all, kept));
            };
            if packet.track_id != self.track_id {
                continue;
            }
            let buffer = self.decoder.decode(&packet)?;
            let channels = buffer.spec().channels().count();
            let frames = buffer.frames();
            samples.clear();
            buffer.copy_to_vec_interleaved::<f32>(&mut samples);
            all.add(&samples, channels);
            let skip = skip_until_ts
                .saturating_sub(packet.pts.get())
                .clamp(0, frames as i64) as usize;
            kept.add(&samples[skip * channels..], channels);
        }
        assert!(
            max_packets.is_some(),
            "no end of track after {MAX_PACKETS} packets"
        );
        Ok((all, kept))
    }

    fn decode_to_end(&mut self) -> Result<Digest, SymError> {
        Ok(self.decode(None, i64::MIN)?.0)
    }

    /// An accurate seek, then a decode of `max_packets` packets (or to the end).
    fn seek_and_decode(
        &mut self,
        seconds: f64,
        max_packets: Option<usize>,
    ) -> Result<AfterSeek, SymError> {
        let time = Time::try_from_secs_f64(seconds)
            .ok_or(SymError::SeekError(SeekErrorKind::OutOfRange))?;
        let seeked = self.format.seek(
            SeekMode::Accurate,
            SeekTo::Time {
                time,
                track_id: Some(self.track_id),
            },
        )?;
        self.decoder.reset();
        let required_ts = seeked.required_ts.get();
        let (from_actual, from_required) = self.decode(max_packets, required_ts)?;
        Ok(AfterSeek {
            required_ts,
            actual_ts: seeked.actual_ts.get(),
            from_actual,
            from_required,
        })
    }
}

fn sym_decode_all(source: Box<dyn MediaSource + '_>, ext: &str) -> Result<Digest, SymError> {
    Track::probe(source, ext)?.decode_to_end()
}

fn sym_seek_middle(
    source: Box<dyn MediaSource + '_>,
    ext: &str,
    seconds: f64,
) -> Result<AfterSeek, SymError> {
    Track::probe(source, ext)?.seek_and_decode(seconds, None)
}

/// Borrows a session as a `MediaSource` (through the crate's impl), so the test can read
/// the session's counters while symphonia owns the box.
struct Borrowed<'a>(&'a FileSession);

impl Read for Borrowed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut session = self.0;
        session.read(buf)
    }
}

impl Seek for Borrowed<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let mut session = self.0;
        session.seek(pos)
    }
}

impl MediaSource for Borrowed<'_> {
    fn is_seekable(&self) -> bool {
        <FileSession as MediaSource>::is_seekable(self.0)
    }

    fn byte_len(&self) -> Option<u64> {
        <FileSession as MediaSource>::byte_len(self.0)
    }
}

// ---------------------------------------------------------------------------
// rodio 0.23 (decoding only)
// ---------------------------------------------------------------------------

/// What rodio produced for one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RodioRun {
    total_duration: Option<Duration>,
    full: Digest,
    after_seek: Digest,
}

/// Upper bound on samples in one rodio decode (the fixtures have under a million).
const MAX_SAMPLES: usize = 100_000_000;

fn rodio_decoder<R>(data: R, len: u64, ext: &str) -> rodio::Decoder<R>
where
    R: Read + Seek + Send + Sync + 'static,
{
    rodio::Decoder::builder()
        .with_data(data)
        .with_byte_len(len)
        .with_seekable(true)
        .with_hint(ext)
        .build()
        .unwrap_or_else(|e| panic!("rodio build ({ext}): {e}"))
}

fn rodio_drain<R>(decoder: rodio::Decoder<R>) -> Digest
where
    R: Read + Seek + Send + Sync + 'static,
{
    let channels = usize::from(decoder.channels().get());
    let samples: Vec<f32> = decoder.take(MAX_SAMPLES + 1).collect();
    assert!(samples.len() <= MAX_SAMPLES, "rodio decoder never ended");
    let mut digest = Digest::new();
    digest.add(&samples, channels);
    digest
}

/// A full decode with one source, then a decode after `try_seek(seconds)` with another.
fn rodio_run<R>(mut make: impl FnMut() -> R, len: u64, ext: &str, seconds: f64) -> RodioRun
where
    R: Read + Seek + Send + Sync + 'static,
{
    let decoder = rodio_decoder(make(), len, ext);
    let total_duration = decoder.total_duration();
    let full = rodio_drain(decoder);
    let mut decoder = rodio_decoder(make(), len, ext);
    decoder
        .try_seek(Duration::from_secs_f64(seconds))
        .unwrap_or_else(|e| panic!("rodio try_seek ({ext}): {e}"));
    let after_seek = rodio_drain(decoder);
    RodioRun {
        total_duration,
        full,
        after_seek,
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn symphonia_full_decode_matches_the_local_file() {
    let server = fixture_server();
    for &(name, ext) in FIXTURES {
        let mut local_track = Track::probe(Box::new(local_file(name)), ext).unwrap();
        let rate = u64::from(local_track.sample_rate);
        let local = local_track.decode_to_end().unwrap();
        // The fixtures are 3 s long: an empty or cut decode on both sides cannot pass.
        assert!(
            local.frames >= 3 * rate,
            "{name}: only {} frames locally",
            local.frames
        );

        let session = open(&server, &format!("/{name}"), FileSourceOptions::new());
        assert!(session.is_seekable(), "{name}: session not seekable");
        let remote = sym_decode_all(Box::new(session), ext).unwrap();
        println!(
            "{name}: {} frames, hash {:016x}",
            remote.frames, remote.hash
        );
        assert_eq!(
            remote, local,
            "{name}: full decode differs from the local file"
        );
    }
}

#[test]
fn symphonia_seek_to_the_middle_matches_the_local_file() {
    let server = fixture_server();
    for &(name, ext) in FIXTURES {
        let local = sym_seek_middle(Box::new(local_file(name)), ext, MIDDLE_SECS).unwrap();
        assert!(
            local.actual_ts > 0 && local.actual_ts <= local.required_ts,
            "{name}: {local:?}"
        );
        assert!(local.from_required.frames > 0, "{name}: {local:?}");

        let session = open(&server, &format!("/{name}"), FileSourceOptions::new());
        let remote = sym_seek_middle(Box::new(session), ext, MIDDLE_SECS).unwrap();
        println!(
            "{name}: seek {MIDDLE_SECS} s -> required_ts {} actual_ts {}, {} frames after",
            remote.required_ts, remote.actual_ts, remote.from_required.frames
        );
        assert_eq!(remote, local, "{name}: decode after the seek differs");
    }
}

/// Forward and backward seeks on one session, a few packets after each, then the rest.
///
/// No packet run reaches the end of the track: symphonia 0.6.1's isomp4 reader fails any
/// seek after `next_packet` returned the end (`DecodeError("isomp4: no atom pending
/// read")`), on a local file too.
#[test]
fn symphonia_seek_sequence_matches_the_local_file() {
    const SEEKS: [f64; 5] = [2.5, 0.5, 2.0, 0.0, 1.0];
    fn run(source: Box<dyn MediaSource + '_>, ext: &str) -> Vec<AfterSeek> {
        let mut track = Track::probe(source, ext).unwrap();
        let mut out: Vec<AfterSeek> = SEEKS
            .iter()
            .map(|&s| {
                track
                    .seek_and_decode(s, Some(8))
                    .unwrap_or_else(|e| panic!("{ext}: seek to {s} s: {e}"))
            })
            .collect();
        let (from_actual, from_required) = track.decode(None, i64::MIN).unwrap();
        out.push(AfterSeek {
            required_ts: -1,
            actual_ts: -1,
            from_actual,
            from_required,
        });
        out
    }
    let server = fixture_server();
    for &(name, ext) in FIXTURES {
        let local = run(Box::new(local_file(name)), ext);
        assert!(local.iter().all(|r| r.from_actual.frames > 0), "{name}");
        let session = open(&server, &format!("/{name}"), FileSourceOptions::new());
        let remote = run(Box::new(session), ext);
        assert_eq!(remote, local, "{name}: seek sequence differs");
    }
}

#[test]
fn rodio_matches_the_local_file() {
    let server = fixture_server();
    for &(name, ext) in FIXTURES {
        let len = fixture_bytes(name).len() as u64;
        let local = rodio_run(|| local_file(name), len, ext, MIDDLE_SECS);
        assert!(
            local.full.frames > 0 && local.after_seek.frames > 0,
            "{name}: {local:?}"
        );
        assert!(
            local.after_seek.frames < local.full.frames,
            "{name}: the seek did not move: {local:?}"
        );

        let path = format!("/{name}");
        let remote = rodio_run(
            || open(&server, &path, FileSourceOptions::new()),
            len,
            ext,
            MIDDLE_SECS,
        );
        println!(
            "{name}: rodio {} frames, {} after try_seek({MIDDLE_SECS} s), duration {:?}",
            remote.full.frames, remote.after_seek.frames, remote.total_duration
        );
        assert_eq!(remote, local, "{name}: rodio differs from the local file");
    }
}

/// The session's own length is what rodio needs: `byte_len()` is known right after open.
#[test]
fn rodio_with_the_sessions_own_length() {
    let server = fixture_server();
    for &(name, ext) in FIXTURES {
        let session = open(&server, &format!("/{name}"), FileSourceOptions::new());
        let len = session.byte_len().expect("length known after open");
        assert_eq!(len, fixture_bytes(name).len() as u64);
        let remote = rodio_drain(rodio_decoder(session, len, ext));
        let local = rodio_drain(rodio_decoder(local_file(name), len, ext));
        assert_eq!(remote, local, "{name}");
    }
}

#[test]
fn symphonia_decode_survives_a_connection_drop_every_256_kib() {
    let server = TestServer::start();
    let long = long_wav();
    let mut cases: Vec<(String, Vec<u8>, &str, f64)> = vec![("/long.wav".into(), long, "wav", 5.0)];
    for &(name, ext) in FIXTURES {
        cases.push((format!("/{name}"), fixture_bytes(name), ext, MIDDLE_SECS));
    }
    for (path, bytes, ext, seek_secs) in &cases {
        server.add_file(path, bytes.clone());
        server.set_default_fault(path, Fault::CloseAfter(DROP_EVERY));
        let len = bytes.len() as u64;

        let expected = sym_decode_all(Box::new(Cursor::new(bytes.clone())), ext).unwrap();
        let before = server.request_count(path);
        let session = open(&server, path, quick_retries());
        let remote = sym_decode_all(Box::new(session), ext).unwrap();
        let requests = server.request_count(path) - before;
        println!(
            "{path}: {len} bytes, full decode with drops: {} frames, {requests} requests",
            remote.frames
        );
        assert_eq!(remote, expected, "{path}: full decode with drops");
        // Each response stops after 256 KiB, so reading the whole file takes this many
        // requests: the drops really happened, and each resume starts at the exact byte
        // where the last one stopped (nothing fetched twice).
        assert_eq!(
            requests as u64,
            len.div_ceil(DROP_EVERY),
            "{path}: requests for a sequential decode"
        );

        let expected =
            sym_seek_middle(Box::new(Cursor::new(bytes.clone())), ext, *seek_secs).unwrap();
        let session = open(&server, path, quick_retries());
        let remote = sym_seek_middle(Box::new(session), ext, *seek_secs).unwrap();
        assert_eq!(remote, expected, "{path}: decode after a seek with drops");
    }
}

#[test]
fn rodio_decode_survives_a_connection_drop_every_256_kib() {
    let server = TestServer::start();
    let long = long_wav();
    let len = long.len() as u64;
    server.add_file("/long.wav", long.clone());
    server.set_default_fault("/long.wav", Fault::CloseAfter(DROP_EVERY));
    let local = rodio_run(|| Cursor::new(long.clone()), len, "wav", 5.0);
    assert_eq!(local.full.frames, 10 * 44_100);
    let remote = rodio_run(
        || open(&server, "/long.wav", quick_retries()),
        len,
        "wav",
        5.0,
    );
    assert_eq!(remote, local);
    assert!(server.request_count("/long.wav") as u64 >= len.div_ceil(DROP_EVERY));
}

/// Requests per access pattern, counted by the session itself. Every file here fits in
/// the 4 MiB look-ahead and the 256 KiB history covers every backward jump the decoders
/// make in the fixtures, so the whole decode should cost one request.
#[test]
fn request_counts_per_access_pattern() {
    let server = fixture_server();
    server.add_file("/long.wav", long_wav());
    let mut cases: Vec<(String, &str, f64)> = FIXTURES
        .iter()
        .map(|&(name, ext)| (format!("/{name}"), ext, MIDDLE_SECS))
        .collect();
    cases.push(("/long.wav".into(), "wav", 5.0));
    let mut counted = 0;
    for (path, ext, seek_secs) in &cases {
        // Open + probe, then a full decode.
        let session = open(&server, path, FileSourceOptions::new());
        let at_open = session.request_count();
        let mut track = Track::probe(Box::new(Borrowed(&session)), ext).unwrap();
        let after_probe = session.request_count();
        track.decode_to_end().unwrap();
        drop(track);
        let after_decode = session.request_count();
        drop(session);

        // Open + probe, then a seek to the middle and a decode to the end.
        let session = open(&server, path, FileSourceOptions::new());
        let mut track = Track::probe(Box::new(Borrowed(&session)), ext).unwrap();
        let before_seek = session.request_count();
        track.seek_and_decode(*seek_secs, None).unwrap();
        drop(track);
        let after_seek = session.request_count();
        drop(session);

        println!(
            "{path}: open {at_open}, probe +{}, full decode +{} (total {after_decode}); \
             seek {seek_secs} s + decode +{} (total {after_seek})",
            after_probe - at_open,
            after_decode - after_probe,
            after_seek - before_seek,
        );
        assert_eq!(at_open, 1, "{path}: open");
        assert_eq!(after_decode, 1, "{path}: open + probe + full decode");
        if *path == "/long.wav" {
            // 5 s is 882 KB in: unless the driver already received that far when the seek
            // comes (right after the probe), the seek starts a fetch that reads ahead only
            // as the decoder proves it plays on: ~12 small windows, then one open-ended
            // request (see driver/window.rs).
            assert!(after_seek <= 16, "{path}: open + probe + seek + decode");
        } else {
            assert_eq!(after_seek, 1, "{path}: open + probe + seek + decode");
        }
        counted += after_decode + after_seek;
    }
    // The server saw exactly what the sessions counted.
    let served: usize = cases.iter().map(|(p, _, _)| server.request_count(p)).sum();
    assert_eq!(served as u64, counted);
}

/// Requests through rodio, counted on the server (rodio owns the session).
#[test]
fn rodio_request_counts() {
    let server = fixture_server();
    for &(name, ext) in FIXTURES {
        let path = format!("/{name}");
        let len = fixture_bytes(name).len() as u64;
        server.reset_counters();
        let decoder = rodio_decoder(open(&server, &path, FileSourceOptions::new()), len, ext);
        let build = server.request_count(&path);
        rodio_drain(decoder);
        let full = server.request_count(&path);
        server.reset_counters();
        let mut decoder = rodio_decoder(open(&server, &path, FileSourceOptions::new()), len, ext);
        decoder
            .try_seek(Duration::from_secs_f64(MIDDLE_SECS))
            .unwrap();
        rodio_drain(decoder);
        let seek = server.request_count(&path);
        println!("{name}: rodio build {build}, full decode {full}, build + seek + decode {seek}");
        assert_eq!((build, full, seek), (1, 1, 1), "{name}");
    }
}

/// Downcasts the I/O error symphonia returned to the crate's error.
fn network_error(err: &SymError) -> &FileError {
    let SymError::IoError(io_err) = err else {
        panic!("not an I/O error: {err:?}");
    };
    assert_eq!(
        io_err.kind(),
        io::ErrorKind::ConnectionAborted,
        "{io_err:?}"
    );
    let file_error = io_err
        .get_ref()
        .and_then(|e| e.downcast_ref::<FileError>())
        .unwrap_or_else(|| panic!("not a FileError: {io_err:?}"));
    assert!(
        matches!(file_error, FileError::Network(_)),
        "{file_error:?}"
    );
    file_error
}

/// With no retries, every response cut short: the decoder gets an I/O error (from the
/// probe or from `next_packet`), never a clean end with fewer frames.
#[test]
fn a_read_error_mid_stream_reaches_symphonia_as_an_io_error() {
    let server = TestServer::start();
    let mut cases: Vec<(String, Vec<u8>, &str)> = vec![("/long.wav".into(), long_wav(), "wav")];
    for &(name, ext) in FIXTURES {
        cases.push((format!("/{name}"), fixture_bytes(name), ext));
    }
    for (path, bytes, ext) in &cases {
        let cut = (bytes.len() as u64 / 2).min(DROP_EVERY);
        server.add_file(path, bytes.clone());
        server.set_default_fault(path, Fault::CloseAfter(cut));
        let options = FileSourceOptions::new().with_max_retries(0);

        let session = open(&server, path, options.clone());
        let result = sym_decode_all(Box::new(session), ext);
        let err = match result {
            Ok(digest) => panic!("{path}: decode ended Ok after a cut at {cut}: {digest:?}"),
            Err(err) => err,
        };
        let file_error = network_error(&err);
        println!("{path}: cut at {cut}: full decode -> {file_error}");

        // After a seek to the middle the reads may all fall in Range requests shorter
        // than the cut. Then the decode must be complete; otherwise an I/O error.
        let seek_secs = if *path == "/long.wav" {
            5.0
        } else {
            MIDDLE_SECS
        };
        let local = sym_seek_middle(Box::new(Cursor::new(bytes.clone())), ext, seek_secs).unwrap();
        let session = open(&server, path, options);
        match sym_seek_middle(Box::new(session), ext, seek_secs) {
            Ok(after) => {
                println!("{path}: cut at {cut}: seek + decode -> complete");
                assert_eq!(after, local, "{path}: seek + decode ended Ok but differs");
            }
            Err(err) => {
                let file_error = network_error(&err);
                println!("{path}: cut at {cut}: seek + decode -> {file_error}");
            }
        }
    }
}
