//! The main job, end to end.
//!
//! ```text
//! cargo run --release --example demo              # local server, generated files, verified
//! cargo run --release --example demo -- URL       # stream URL, verify, seek if it can
//! ```
//!
//! With no arguments it starts a loopback server (the tests' server, which can cut a
//! connection on purpose) and shows, each step verified byte for byte against the original:
//!
//! 1. streaming through an asset cache with a progress bar of the buffered ranges, then
//!    seeks around the file;
//! 2. a retry: the server cuts the connection mid-body, the session resumes at the exact
//!    byte with a `Range` request;
//! 3. a prefetch of the "next track", which a session opened on it takes over: no byte is
//!    downloaded twice;
//! 4. decoding a FLAC tone through symphonia over HTTP, with a seek by time;
//! 5. the cache: a second play served from disk with 0 requests, then, with the server
//!    stopped, offline playback.
//!
//! With a URL it streams it, checks the length against `Content-Length`, prints a SHA-256,
//! then seeks around verifying every read against what was streamed (or says why it skips
//! the seeks: a server without Range support, an unknown length), and decodes it if it
//! is audio.

#[path = "../tests/support/mod.rs"]
mod support;

use std::error::Error;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use kithara_file::{
    AssetCache, AssetId, FileEvent, FileSession, FileSource, FileSourceOptions, Url,
};
use sha2::{Digest, Sha256};
use support::{Fault, TestServer};

type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

/// Seek checks compare whole blocks of this size against digests taken while streaming.
const BLOCK: u64 = 64 * 1024;

fn main() -> Result<()> {
    match std::env::args().nth(1) {
        Some(url) => remote(url.parse()?),
        None => local(),
    }
}

// ---------------------------------------------------------------------------------------
// Human units
// ---------------------------------------------------------------------------------------

/// `1.5 MiB`, `12.0 KiB`, `512 B`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `48 µs`, `4.20 ms`, `12 ms`, `1.20 s`.
fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    match ms {
        m if m < 1.0 => format!("{:.0} µs", m * 1e3),
        m if m < 10.0 => format!("{m:.2} ms"),
        m if m < 1000.0 => format!("{m:.0} ms"),
        m => format!("{:.2} s", m / 1e3),
    }
}

/// `850 MiB/s`.
fn rate(bytes: u64, d: Duration) -> String {
    let per_sec = bytes as f64 / d.as_secs_f64().max(1e-6);
    format!("{}/s", size(per_sec as u64))
}

/// `1 retry`, `2 retries`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn length(len: Option<u64>) -> String {
    len.map_or_else(|| "unknown".to_string(), size)
}

/// `0 B..4.0 MiB, 10.0 MiB..12.0 MiB`.
fn ranges(ranges: &[Range<u64>]) -> String {
    if ranges.is_empty() {
        return "none".to_string();
    }
    let shown: Vec<String> = ranges
        .iter()
        .map(|r| format!("{}..{}", size(r.start), size(r.end)))
        .collect();
    shown.join(", ")
}

// ---------------------------------------------------------------------------------------
// Progress: an indicatif bar of the buffered ranges, and a final line in any case
// ---------------------------------------------------------------------------------------

/// A strip of `width` cells over the file: `█` read, `▓` held ahead of the reader (memory
/// or cache), `░` read and no longer held, blank not downloaded.
fn buffered_strip(session: &FileSession, width: usize) -> String {
    let Some(len) = session.byte_len().filter(|&len| len > 0) else {
        return String::new();
    };
    let held = session.buffered_ranges();
    let position = session.position();
    (0..width as u64)
        .map(|cell| {
            let middle = (cell * 2 + 1) * len / (width as u64 * 2);
            let is_held = held.iter().any(|r| r.contains(&middle));
            match (middle < position, is_held) {
                (true, true) => '█',
                (false, true) => '▓',
                (true, false) => '░',
                (false, false) => ' ',
            }
        })
        .collect()
}

/// A live bar on stderr (hidden when stderr is not a terminal).
fn progress_bar(label: &str, session: &FileSession) -> ProgressBar {
    let strip_of = session.clone();
    let template = match session.byte_len() {
        Some(_) => "   {prefix} [{strip}] {bytes}/{total_bytes} {bytes_per_sec}",
        None => "   {prefix} {spinner} {bytes} {bytes_per_sec}",
    };
    let style = ProgressStyle::with_template(template)
        .expect("a valid template")
        .with_key(
            "strip",
            move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&buffered_strip(&strip_of, 40));
            },
        );
    let bar =
        ProgressBar::with_draw_target(session.byte_len(), ProgressDrawTarget::stderr_with_hz(15));
    bar.set_style(style);
    bar.set_prefix(label.to_string());
    bar
}

/// What one read to the end did.
struct Transfer {
    bytes: u64,
    took: Duration,
}

/// Reads the session to the end with a progress bar, feeding every chunk to `check`
/// with its offset; prints one final line (the bar is too fast to see on loopback).
fn read_all(
    label: &str,
    session: &mut FileSession,
    mut check: impl FnMut(u64, &[u8]),
) -> Result<Transfer> {
    let bar = progress_bar(label, session);
    let started = Instant::now();
    let mut buf = vec![0u8; 256 * 1024];
    let mut done = 0u64;
    loop {
        let n = session.read(&mut buf)?;
        if n == 0 {
            break;
        }
        check(done, &buf[..n]);
        done += n as u64;
        bar.set_position(done);
    }
    let took = started.elapsed();
    bar.finish_and_clear();
    println!(
        "   {label}: {} in {} ({}); session so far: {}, {}; buffered: {}",
        size(done),
        ms(took),
        rate(done, took),
        count(session.request_count(), "request", "requests"),
        count(session.retry_count(), "retry", "retries"),
        ranges(&session.buffered_ranges())
    );
    Ok(Transfer { bytes: done, took })
}

// ---------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------

/// SHA-256 of the whole body, and of every `BLOCK` of it (for checking seeks later).
#[derive(Default)]
struct Digests {
    whole: Sha256,
    block: Sha256,
    in_block: u64,
    blocks: Vec<[u8; 32]>,
}

impl Digests {
    /// Adds the next bytes of the body, in order.
    fn update(&mut self, mut bytes: &[u8]) {
        self.whole.update(bytes);
        while !bytes.is_empty() {
            let take = bytes.len().min((BLOCK - self.in_block) as usize);
            self.block.update(&bytes[..take]);
            self.in_block += take as u64;
            bytes = &bytes[take..];
            if self.in_block == BLOCK {
                self.end_block();
            }
        }
    }

    fn end_block(&mut self) {
        let block = std::mem::take(&mut self.block);
        self.blocks.push(block.finalize().into());
        self.in_block = 0;
    }

    /// The hex SHA-256 of the body; the block digests stay for `matches`.
    fn finish(&mut self) -> String {
        if self.in_block > 0 {
            self.end_block();
        }
        let whole = std::mem::take(&mut self.whole).finalize();
        whole.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `bytes`, read at block `index`, are that block as streamed.
    fn matches(&self, index: usize, bytes: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        self.blocks.get(index) == Some(&digest)
    }
}

/// Counts chunks that differ from the original.
fn compare<'a>(original: &'a [u8], mismatches: &'a mut u64) -> impl FnMut(u64, &[u8]) + 'a {
    move |at, chunk| {
        let at = at as usize;
        if original.get(at..at + chunk.len()) != Some(chunk) {
            *mismatches += 1;
        }
    }
}

/// Reads the session to the end and checks it against `original`.
fn read_verified(label: &str, session: &mut FileSession, original: &[u8]) -> Result<()> {
    let mut mismatches = 0;
    let transfer = read_all(label, session, compare(original, &mut mismatches))?;
    if mismatches > 0 || transfer.bytes != original.len() as u64 {
        return Err(format!("{label}: {mismatches} chunk(s) differ from the original").into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Seeks
// ---------------------------------------------------------------------------------------

/// Why seeking is not possible on this session, if it is not.
fn why_not_seekable(session: &FileSession) -> Option<&'static str> {
    match (session.is_seekable(), session.byte_len()) {
        (true, _) => None,
        (false, None) => Some("the length is unknown (no Content-Length)"),
        (false, Some(_)) => Some(
            "the server does not honour Range requests (it answered 200, not 206), \
             so a seek would mean downloading from the start again",
        ),
    }
}

/// 40 seeks (far jumps, the tail, short hops back into held bytes), each followed by a
/// read of one block that is checked against the digests of the streamed body.
fn seek_around(session: &mut FileSession, digests: &Digests) -> Result<()> {
    if let Some(why) = why_not_seekable(session) {
        println!("   seeks: skipped: {why}");
        return Ok(());
    }
    let blocks = digests.blocks.len() as u64;
    let len = session.byte_len().unwrap_or(0);
    let requests_before = session.request_count();
    let (mut seed, mut times, mut bad) = (0x5eed_u64, Vec::new(), 0);
    let mut buf = vec![0u8; BLOCK as usize];
    for i in 0..40 {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let current = session.position() / BLOCK;
        let block = match i % 4 {
            0 => blocks - 1 - (seed >> 33) % blocks.min(4), // the tail
            1 => current.saturating_sub(2 + (seed >> 40) % 2), // a hop back
            _ => (seed >> 20) % blocks,                     // far away
        };
        let started = Instant::now();
        session.seek(SeekFrom::Start(block * BLOCK))?;
        let want = (len - block * BLOCK).min(BLOCK) as usize;
        session.read_exact(&mut buf[..want])?;
        times.push(started.elapsed());
        if !digests.matches(block as usize, &buf[..want]) {
            bad += 1;
        }
    }
    times.sort();
    println!(
        "   seeks: 40 seeks + 64 KiB reads: median {}, max {}, {} new request(s) \
         (bytes held in memory or the cache cost none), {}",
        ms(times[20]),
        ms(times[39]),
        session.request_count() - requests_before,
        if bad == 0 {
            "every read verified"
        } else {
            "MISMATCH"
        }
    );
    if bad > 0 {
        return Err(format!("{bad} seek read(s) differ from the streamed bytes").into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The local tour
// ---------------------------------------------------------------------------------------

/// The files the local server serves, and the cache the tour uses.
struct Tour {
    server: TestServer,
    cache: AssetCache,
    /// `/demo.bin`: streamed, seeked, cached, played again and offline.
    demo: Vec<u8>,
    /// `/flaky.bin`: its first response is cut mid-body.
    flaky: Vec<u8>,
    /// `/next.bin`: prefetched, then taken over.
    next: Vec<u8>,
}

fn local() -> Result<()> {
    let started = Instant::now();
    let cache_dir = tempfile::tempdir()?;
    let tour = Tour {
        server: TestServer::start(),
        cache: AssetCache::open(cache_dir.path())?,
        demo: support::pattern(32 << 20, 2026),
        flaky: support::pattern(8 << 20, 7),
        next: support::pattern(16 << 20, 9),
    };
    tour.server.add_file("/demo.bin", tour.demo.clone());
    tour.server.add_file("/flaky.bin", tour.flaky.clone());
    tour.server.add_file("/next.bin", tour.next.clone());
    let tone = include_bytes!("../tests/fixtures/tone.flac").to_vec();
    tour.server.add_file("/tone.flac", tone);
    println!(
        "kithara-file demo: a loopback server at {}, a cache in {}",
        tour.server.url("/"),
        cache_dir.path().display()
    );

    let url: Url = tour.server.url("/demo.bin").parse()?;
    first_play(&tour, url.clone())?;
    retry(&tour)?;
    prefetch(&tour)?;
    heading("4. decode audio through symphonia over HTTP");
    audio(tour.server.url("/tone.flac").parse()?)?;
    second_play(&tour, url.clone())?;
    let Tour {
        server,
        cache,
        demo,
        ..
    } = tour;
    drop(server);
    offline(&cache, url, &demo)?;
    println!(
        "\nall done in {}: every byte of every step verified",
        ms(started.elapsed())
    );
    Ok(())
}

fn heading(title: &str) {
    println!("\n== {title}");
}

/// Streams `/demo.bin` through the cache, verifying, then seeks around.
fn first_play(tour: &Tour, url: Url) -> Result<()> {
    heading("1. stream through the cache, then seek");
    let opened = Instant::now();
    let mut session = FileSource::open_with_cache(url, FileSourceOptions::new(), &tour.cache)?;
    println!(
        "   opened: {} in {}, seekable: {}",
        length(session.byte_len()),
        ms(opened.elapsed()),
        if session.is_seekable() { "yes" } else { "no" }
    );
    let mut digests = Digests::default();
    let mut mismatches = 0;
    let mut same = compare(&tour.demo, &mut mismatches);
    read_all("stream", &mut session, |at, chunk| {
        same(at, chunk);
        digests.update(chunk);
    })?;
    drop(same);
    if mismatches > 0 {
        return Err(format!("{mismatches} chunk(s) differ from the original").into());
    }
    println!(
        "   verified: every byte matches; sha256 {}",
        digests.finish()
    );
    seek_around(&mut session, &digests)?;
    // The driver commits the body (synced, then renamed into place) on its own thread.
    let waited = Instant::now();
    while !session.is_cached() && waited.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "   cached: {}",
        if session.is_cached() {
            "yes, the body is committed"
        } else {
            "not yet"
        }
    );
    Ok(())
}

/// The first response of `/flaky.bin` is cut after 3 MiB; the session resumes there.
fn retry(tour: &Tour) -> Result<()> {
    heading("2. a connection cut mid-body, resumed at the exact byte");
    let cut_at = 3 << 20;
    tour.server
        .push_faults("/flaky.bin", [Fault::CloseAfter(cut_at)]);
    let causes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&causes);
    let options = FileSourceOptions::new().with_events(move |event| {
        if let FileEvent::Retrying {
            attempt,
            delay,
            cause,
        } = event
        {
            let line = format!("retry {attempt} after {}: {cause}", ms(delay));
            seen.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    });
    let url = tour.server.url("/flaky.bin").parse()?;
    let mut session = FileSource::open(url, options)?;
    println!(
        "   the server will close the connection after {}",
        size(cut_at)
    );
    read_verified("stream", &mut session, &tour.flaky)?;
    for line in causes.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        println!("   event: {line}");
    }
    for request in tour
        .server
        .requests()
        .iter()
        .filter(|r| r.path == "/flaky.bin")
    {
        let if_range = request.header("if-range").unwrap_or("-");
        let range = request.range.as_deref().unwrap_or("none");
        println!("   request: Range {range}, If-Range {if_range}");
    }
    println!(
        "   verified: {} byte-exact across the cut",
        size(tour.flaky.len() as u64)
    );
    Ok(())
}

/// Prefetches `/next.bin` at a capped rate, then opens it: the session takes over.
fn prefetch(tour: &Tour) -> Result<()> {
    heading("3. prefetch the next track, then play it");
    let url: Url = tour.server.url("/next.bin").parse()?;
    let capped = FileSourceOptions::new().with_rate_limit(8 << 20);
    let prefetch = tour.cache.prefetch(url.clone(), capped)?;
    std::thread::sleep(Duration::from_millis(300));
    let progress = prefetch.progress();
    println!(
        "   prefetch (capped at {}/s): {} of {} after 300 ms",
        size(8 << 20),
        size(progress.downloaded),
        length(progress.total)
    );
    let opened = Instant::now();
    let mut session = FileSource::open_with_cache(url, FileSourceOptions::new(), &tour.cache)?;
    println!(
        "   opened in {}: the session took over; the prefetch ended after {}",
        ms(opened.elapsed()),
        size(prefetch.progress().downloaded)
    );
    println!(
        "   held at open (from disk): {}",
        ranges(&session.buffered_ranges())
    );
    drop(prefetch);
    read_verified("play", &mut session, &tour.next)?;
    println!(
        "   the session fetched only the rest: {}",
        size(session.bytes_fetched())
    );
    let served = tour.server.bytes_served("/next.bin");
    let twice = served.saturating_sub(tour.next.len() as u64);
    println!(
        "   the server sent {} in {} for a {} file: {} downloaded twice",
        size(served),
        count(
            tour.server.request_count("/next.bin") as u64,
            "request",
            "requests"
        ),
        size(tour.next.len() as u64),
        size(twice)
    );
    Ok(())
}

/// Opens `/demo.bin` again: served from disk, the server sees no request.
fn second_play(tour: &Tour, url: Url) -> Result<()> {
    heading("5. play again: from the cache");
    let before = tour.server.request_count("/demo.bin");
    let mut session =
        FileSource::open_with_cache(url.clone(), FileSourceOptions::new(), &tour.cache)?;
    read_verified("replay", &mut session, &tour.demo)?;
    println!(
        "   from disk: cached {}, {} request(s) by the session, {} seen by the server",
        if session.is_cached() { "yes" } else { "no" },
        session.request_count(),
        tour.server.request_count("/demo.bin") - before
    );
    for entry in tour.cache.entries() {
        let state = if entry.complete {
            "complete"
        } else {
            "partial"
        };
        println!(
            "   cache entry {}…: {}, {state}",
            &entry.id.as_str()[..12],
            size(entry.len)
        );
    }
    println!("   cache uses {}", size(tour.cache.used_bytes()));
    Ok(())
}

/// With the server gone: the cache still plays; without it, the error says why.
fn offline(cache: &AssetCache, url: Url, original: &[u8]) -> Result<()> {
    heading("6. offline: the server is stopped");
    let no_retries = FileSourceOptions::new().with_max_retries(0);
    match FileSource::open(url.clone(), no_retries) {
        Ok(_) => println!("   without the cache: unexpectedly opened"),
        Err(e) => println!("   without the cache: {e}"),
    }
    let mut session = FileSource::open_with_cache(url.clone(), FileSourceOptions::new(), cache)?;
    read_verified("offline", &mut session, original)?;
    println!(
        "   with the cache: played offline, {} request(s)",
        session.request_count()
    );
    drop(session);
    let removed = cache.remove(&AssetId::from_url(&url))?;
    println!(
        "   removed from the cache: {}; the cache now uses {}",
        if removed { "yes" } else { "no" },
        size(cache.used_bytes())
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// A URL given on the command line
// ---------------------------------------------------------------------------------------

fn remote(url: Url) -> Result<()> {
    println!("kithara-file demo: streaming {url}");
    let mut session = FileSource::open(url.clone(), FileSourceOptions::new())?;
    let announced = session.byte_len();
    println!(
        "   length {}, type {}, Range requests: {}",
        length(announced),
        session.content_type().as_deref().unwrap_or("unknown"),
        if session.is_seekable() { "yes" } else { "no" }
    );
    let mut digests = Digests::default();
    let transfer = read_all("stream", &mut session, |_, chunk| digests.update(chunk))?;
    let digest = digests.finish();
    match announced {
        Some(len) if len != transfer.bytes => {
            return Err(format!("got {} bytes, the server announced {len}", transfer.bytes).into())
        }
        Some(_) => println!("   verified: length matches Content-Length; sha256 {digest}"),
        None => println!("   no Content-Length to check against; sha256 {digest}"),
    }
    let _ = transfer.took;
    seek_around(&mut session, &digests)?;
    drop(session);
    heading("audio: decode through symphonia over HTTP");
    audio(url)
}

// ---------------------------------------------------------------------------------------
// Audio through symphonia
// ---------------------------------------------------------------------------------------

/// The session as a symphonia 0.6 source. With the crate's `symphonia` feature a
/// `FileSession` is one itself; this demo builds without features, so it wraps a clone
/// (clones share one cursor, so the demo keeps its handle for the counters).
struct Source(FileSession);

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Seek for Source {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.0.seek(pos)
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

type Format = Box<dyn symphonia::core::formats::FormatReader>;
type Decoder = Box<dyn symphonia::core::codecs::audio::AudioDecoder>;

/// What probing found: the format reader and its audio track.
struct Track {
    format: Format,
    id: u32,
    rate: u32,
    /// In seconds, when the container says.
    duration: Option<f64>,
}

/// Probes `session` as audio; `None` (saying why) when symphonia cannot read it.
fn probe(session: &FileSession, url: &Url) -> Result<Option<Track>> {
    use symphonia::core::formats::probe::Hint;
    use symphonia::core::formats::{FormatOptions, TrackType};
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;

    let stream = MediaSourceStream::new(Box::new(Source(session.clone())), Default::default());
    let mut hint = Hint::new();
    if let Some((_, ext)) = url.path().rsplit_once('.') {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe().probe(
        &hint,
        stream,
        FormatOptions::default(),
        MetadataOptions::default(),
    );
    let format = match probed {
        Ok(format) => format,
        Err(e) => {
            println!("   not audio symphonia can read ({e})");
            return Ok(None);
        }
    };
    let track = format
        .default_track(TrackType::Audio)
        .ok_or("no audio track")?;
    let (id, frames) = (track.id, track.num_frames);
    let params = track.codec_params.as_ref().and_then(|p| p.audio());
    let rate = params.and_then(|p| p.sample_rate).ok_or("no sample rate")?;
    let duration = frames.map(|n| n as f64 / f64::from(rate));
    Ok(Some(Track {
        format,
        id,
        rate,
        duration,
    }))
}

fn decoder(format: &Format, track_id: u32) -> Result<Decoder> {
    use symphonia::core::codecs::audio::AudioDecoderOptions;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.id == track_id)
        .ok_or("no track")?;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or("no audio")?;
    Ok(symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())?)
}

/// Decodes packets of `track_id` to the end; the frames.
fn decode_rest(format: &mut Format, decoder: &mut Decoder, track_id: u32) -> Result<u64> {
    let mut frames = 0;
    while let Some(packet) = format.next_packet()? {
        if packet.track_id == track_id {
            frames += decoder.decode(&packet)?.frames() as u64;
        }
    }
    Ok(frames)
}

/// Decodes `url` through symphonia over HTTP, then seeks to the middle and decodes on.
fn audio(url: Url) -> Result<()> {
    use symphonia::core::formats::{SeekMode, SeekTo};
    use symphonia::core::units::Time;

    let session = FileSource::open(url.clone(), FileSourceOptions::new())?;
    let Some(Track {
        mut format,
        id: track_id,
        rate,
        duration,
    }) = probe(&session, &url)?
    else {
        return Ok(());
    };
    let mut decoder = decoder(&format, track_id)?;
    let started = Instant::now();
    let frames = decode_rest(&mut format, &mut decoder, track_id)?;
    println!(
        "   {}, {rate} Hz, {}: decoded {frames} frames in {}; {} request(s), {} fetched",
        format.format_info().long_name,
        duration.map_or_else(|| "duration unknown".to_string(), |d| format!("{d:.2} s")),
        ms(started.elapsed()),
        session.request_count(),
        size(session.bytes_fetched())
    );
    if let Some(why) = why_not_seekable(&session) {
        println!("   seek by time: skipped: {why}");
        return Ok(());
    }
    let middle = duration.unwrap_or(frames as f64 / f64::from(rate)) / 2.0;
    let time = Time::try_from_secs_f64(middle).ok_or("bad time")?;
    let seeked = format.seek(
        SeekMode::Accurate,
        SeekTo::Time {
            time,
            track_id: Some(track_id),
        },
    )?;
    decoder.reset();
    let after = decode_rest(&mut format, &mut decoder, track_id)?;
    println!(
        "   seek to {middle:.2} s: landed at frame {}, decoded {after} more frames; \
         in all {} request(s), {} fetched",
        seeked.actual_ts.get(),
        session.request_count(),
        size(session.bytes_fetched())
    );
    Ok(())
}
