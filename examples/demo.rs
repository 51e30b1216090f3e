//! The main job, end to end.
//!
//! ```text
//! cargo run --release --example demo              # local server, generated file, verified
//! cargo run --release --example demo -- URL       # stream URL and report what came back
//! ```
//!
//! With no arguments it starts a loopback server on a generated file, streams it with a
//! live progress line, seeks around, verifies every byte against the original and prints
//! a summary; then it serves a generated tone (FLAC), decodes it through symphonia over
//! HTTP, seeks to the middle and reports format, duration, frames, requests and bytes.
//! With a URL it streams that URL and reports length, type, speed, requests and a
//! SHA-256 of the bytes, then decodes it the same way if it is audio.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kithara_file::{FileSession, FileSource, FileSourceOptions, Url};
use sha2::{Digest, Sha256};

const MIB: f64 = 1024.0 * 1024.0;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::args().nth(1) {
        Some(url) => {
            let url: Url = url.parse()?;
            remote(url.clone())?;
            audio(url)
        }
        None => {
            local()?;
            let server = support::TestServer::start();
            server.add_file(
                "/tone.flac",
                include_bytes!("../tests/fixtures/tone.flac").to_vec(),
            );
            audio(server.url("/tone.flac").parse()?)
        }
    }
}

/// The session as a symphonia 0.6 source. With the crate's `symphonia` feature a
/// `FileSession` is one itself; this demo builds without features, so it wraps one,
/// shared so the demo can still read the session's counters while symphonia owns this.
struct Source(Arc<FileSession>);

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Seek for Source {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        (&*self.0).seek(pos)
    }
}

impl symphonia::core::io::MediaSource for Source {
    fn is_seekable(&self) -> bool {
        self.0.is_seekable()
    }

    fn byte_len(&self) -> Option<u64> {
        self.0.byte_len()
    }
}

/// Decodes `url` through symphonia over HTTP, then seeks to the middle and decodes on.
fn audio(url: Url) -> Result<(), Box<dyn std::error::Error>> {
    use symphonia::core::codecs::audio::AudioDecoderOptions;
    use symphonia::core::formats::probe::Hint;
    use symphonia::core::formats::{FormatOptions, SeekMode, SeekTo, TrackType};
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;
    use symphonia::core::units::Time;

    println!("\naudio: decoding {url} through symphonia over HTTP");
    let session = Arc::new(FileSource::open(url.clone(), FileSourceOptions::new())?);
    let stream = MediaSourceStream::new(Box::new(Source(Arc::clone(&session))), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = url.path().rsplit_once('.').map(|(_, ext)| ext) {
        hint.with_extension(ext);
    }
    let mut format = match symphonia::default::get_probe().probe(
        &hint,
        stream,
        FormatOptions::default(),
        MetadataOptions::default(),
    ) {
        Ok(format) => format,
        Err(e) => {
            println!("not audio symphonia can read: {e}");
            return Ok(());
        }
    };
    let track = format
        .default_track(TrackType::Audio)
        .ok_or("no audio track")?;
    let track_id = track.id;
    let num_frames = track.num_frames;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or("no audio parameters")?;
    let rate = params.sample_rate.ok_or("no sample rate")?;
    let channels = params.channels.as_ref().map_or(0, |c| c.count());
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())?;
    let duration = num_frames.map(|n| n as f64 / f64::from(rate));
    println!(
        "format {}, {rate} Hz, {channels} channel(s), duration {}",
        format.format_info().long_name,
        duration.map_or("unknown".into(), |d| format!("{d:.2} s"))
    );

    let mut frames = 0u64;
    while let Some(packet) = format.next_packet()? {
        if packet.track_id == track_id {
            frames += decoder.decode(&packet)?.frames() as u64;
        }
    }
    println!(
        "decoded {frames} frames ({:.2} s); {} request(s), {} bytes fetched so far",
        frames as f64 / f64::from(rate),
        session.request_count(),
        session.bytes_fetched()
    );

    let middle = duration.unwrap_or(frames as f64 / f64::from(rate)) / 2.0;
    let seeked = format.seek(
        SeekMode::Accurate,
        SeekTo::Time {
            time: Time::try_from_secs_f64(middle).ok_or("bad time")?,
            track_id: Some(track_id),
        },
    )?;
    decoder.reset();
    let mut after = 0u64;
    while let Some(packet) = format.next_packet()? {
        if packet.track_id == track_id {
            after += decoder.decode(&packet)?.frames() as u64;
        }
    }
    println!(
        "seek to {middle:.2} s landed at frame {}, then decoded {after} more frames; \
         in all {} request(s), {} bytes fetched",
        seeked.actual_ts.get(),
        session.request_count(),
        session.bytes_fetched()
    );
    Ok(())
}

/// Reads the session to the end, showing progress, and feeds every chunk to `check`.
fn stream_all(
    session: &mut FileSession,
    mut check: impl FnMut(u64, &[u8]),
) -> std::io::Result<(u64, Duration)> {
    let started = Instant::now();
    let total = session.byte_len();
    let live = std::io::stderr().is_terminal();
    let mut buf = vec![0u8; 256 * 1024];
    let mut done = 0u64;
    let mut last_shown = Instant::now();
    loop {
        let n = session.read(&mut buf)?;
        if n == 0 {
            break;
        }
        check(done, &buf[..n]);
        done += n as u64;
        if live && last_shown.elapsed() > Duration::from_millis(100) {
            last_shown = Instant::now();
            let rate = done as f64 / MIB / started.elapsed().as_secs_f64();
            let of = total.map_or(String::new(), |t| {
                format!(
                    " of {:.1} MiB ({:.0}%)",
                    t as f64 / MIB,
                    100.0 * done as f64 / t as f64
                )
            });
            eprint!("\r  {:.1} MiB{of} at {rate:.0} MiB/s   ", done as f64 / MIB);
            std::io::stderr().flush()?;
        }
    }
    if live {
        eprintln!();
    }
    Ok((done, started.elapsed()))
}

fn local() -> Result<(), Box<dyn std::error::Error>> {
    let size = 48 * 1024 * 1024;
    let original = support::pattern(size, 2026);
    let server = support::TestServer::start();
    server.add_file("/demo.bin", original.clone());
    let url: Url = server.url("/demo.bin").parse()?;
    println!("kithara-file demo: {size} bytes served at {url}");

    let opened = Instant::now();
    let mut session = FileSource::open(url, FileSourceOptions::new())?;
    println!(
        "opened in {:.2} ms: length {:?}, seekable {}",
        opened.elapsed().as_secs_f64() * 1e3,
        session.byte_len(),
        session.is_seekable()
    );

    let mut mismatches = 0u64;
    let (bytes, took) = stream_all(&mut session, |at, chunk| {
        let at = at as usize;
        if original[at..at + chunk.len()] != *chunk {
            mismatches += 1;
        }
    })?;
    println!(
        "streamed {bytes} bytes in {:.0} ms ({:.0} MiB/s), {} request(s)",
        took.as_secs_f64() * 1e3,
        bytes as f64 / MIB / took.as_secs_f64(),
        session.request_count()
    );

    // Seek around: far jumps (Range requests), short hops back (held bytes), the tail.
    let requests_before = session.request_count();
    let mut seed = 0x5eed_u64;
    let mut seek_times = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..40 {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let target = match i % 4 {
            0 => SeekFrom::End(-(((seed >> 33) % 100_000) as i64) - 1),
            1 => SeekFrom::Current(-((seed >> 40) as i64 % 100_000).min(session.position() as i64)),
            _ => SeekFrom::Start((seed >> 20) % (size as u64 - buf.len() as u64)),
        };
        let started = Instant::now();
        let position = session.seek(target)? as usize;
        let n = session.read(&mut buf)?;
        seek_times.push(started.elapsed());
        if original[position..position + n] != buf[..n] {
            mismatches += 1;
        }
    }
    seek_times.sort();
    println!(
        "40 seeks + 64 KiB reads: median {:.0} µs, max {:.0} µs, {} new request(s)",
        seek_times[20].as_secs_f64() * 1e6,
        seek_times[39].as_secs_f64() * 1e6,
        session.request_count() - requests_before
    );
    println!(
        "summary: {} bytes fetched, {} requests, {} retries, verification {}",
        session.bytes_fetched(),
        session.request_count(),
        session.retry_count(),
        if mismatches == 0 {
            "OK: every byte matches"
        } else {
            "FAILED"
        }
    );
    if mismatches > 0 {
        return Err(format!("{mismatches} mismatching reads").into());
    }
    Ok(())
}

fn remote(url: Url) -> Result<(), Box<dyn std::error::Error>> {
    println!("kithara-file demo: streaming {url}");
    let mut session = FileSource::open(url, FileSourceOptions::new())?;
    println!(
        "length {:?}, type {:?}, seekable {}",
        session.byte_len(),
        session.content_type(),
        session.is_seekable()
    );
    let mut hasher = Sha256::new();
    let (bytes, took) = stream_all(&mut session, |_, chunk| hasher.update(chunk))?;
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!(
        "got {bytes} bytes in {:.2} s ({:.1} MiB/s), {} request(s), {} retries",
        took.as_secs_f64(),
        bytes as f64 / MIB / took.as_secs_f64(),
        session.request_count(),
        session.retry_count()
    );
    println!("sha256 {digest}");
    Ok(())
}
