//! The README's audio snippets, compiled and run against the loopback test server.
//!
//! Each `snippet_*` function is the README text verbatim (between the `README` markers);
//! the tests around them only provide a URL and check the result. Keep the two in sync.

mod support;

use std::error::Error;

use support::TestServer;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn serve(name: &str) -> (TestServer, String) {
    let server = TestServer::start();
    server.add_file(&format!("/{name}"), fixture(name));
    let url = server.url(&format!("/{name}"));
    (server, url)
}

// README symphonia begin
use kithara_file::{FileSource, FileSourceOptions};

/// Decodes a remote track with symphonia 0.6 (feature `symphonia`); returns its frames.
#[cfg(feature = "symphonia")]
fn snippet_symphonia(url: &str) -> Result<u64, Box<dyn Error>> {
    use symphonia::core::codecs::audio::AudioDecoderOptions;
    use symphonia::core::formats::probe::Hint;
    use symphonia::core::formats::{FormatOptions, TrackType};
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;

    let session = FileSource::open(url.parse()?, FileSourceOptions::new())?;
    // `FileSession` is a symphonia `MediaSource`: seekable when the server takes Range
    // requests and the length is known.
    let stream = MediaSourceStream::new(Box::new(session), Default::default());
    let mut hint = Hint::new();
    hint.with_extension("flac");
    let mut format = symphonia::default::get_probe().probe(
        &hint,
        stream,
        FormatOptions::default(),
        MetadataOptions::default(),
    )?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or("no audio track")?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or("no audio parameters")?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())?;

    let mut frames = 0;
    // `Ok(None)` is the end of the track. A network failure that retries could not mend
    // is an `Err(IoError(..))`, never a short track.
    while let Some(packet) = format.next_packet()? {
        if packet.track_id == track_id {
            frames += decoder.decode(&packet)?.frames() as u64;
        }
    }
    Ok(frames)
}
// README symphonia end

// README rodio begin
/// A rodio 0.23 decoder over a remote file. Play it with
/// `player.append(decoder)` (see `examples/play.rs`); here it is only decoded.
fn snippet_rodio(url: &str) -> Result<rodio::Decoder<kithara_file::FileSession>, Box<dyn Error>> {
    let session = FileSource::open(url.parse()?, FileSourceOptions::new())?;
    let mut builder = rodio::Decoder::builder().with_hint("mp3");
    // rodio seeks only with a length. Give one only when Range requests work: told
    // "seekable" without a length, rodio panics on OGG and M4A.
    if let (true, Some(len)) = (session.is_seekable(), session.byte_len()) {
        builder = builder.with_byte_len(len).with_seekable(true);
    }
    Ok(builder.with_data(session).build()?)
}
// README rodio end

// README async begin
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

/// Downloads a remote file to `path` through the async `Stream` (any runtime; tokio here).
async fn snippet_async(
    url: kithara_file::Url,
    path: &std::path::Path,
) -> Result<u64, Box<dyn Error + Send + Sync>> {
    // `open` waits for the first response's headers: keep it off the async workers.
    let session =
        tokio::task::spawn_blocking(move || FileSource::open(url, FileSourceOptions::new()))
            .await??;
    let mut stream = session.stream();
    let mut file = tokio::fs::File::create(path).await?;
    let mut written = 0;
    // `Ok(bytes)` items until the end of the file; a failure is an `Err` item.
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        file.write_all(&chunk).await?;
        written += chunk.len() as u64;
    }
    file.flush().await?;
    Ok(written)
}
// README async end

#[cfg(feature = "symphonia")]
#[test]
fn symphonia_snippet_decodes_the_whole_track() {
    let (_server, url) = serve("tone.flac");
    // 3 s at 44.1 kHz.
    assert_eq!(snippet_symphonia(&url).unwrap(), 3 * 44_100);
}

#[test]
fn rodio_snippet_decodes_and_seeks() {
    use rodio::Source;
    let (_server, url) = serve("tone.mp3");
    let decoder = snippet_rodio(&url).unwrap();
    assert_eq!(
        decoder.total_duration(),
        Some(std::time::Duration::from_secs(3))
    );
    let channels = u64::from(decoder.channels().get());
    assert_eq!(decoder.count() as u64 / channels, 3 * 44_100);

    let mut decoder = snippet_rodio(&url).unwrap();
    decoder.try_seek(std::time::Duration::from_secs(2)).unwrap();
    assert_eq!(decoder.count() as u64 / channels, 44_100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_snippet_downloads_byte_exact() {
    let body = support::pattern(3 * 1024 * 1024 + 7, 11);
    let server = TestServer::start();
    server.add_file("/file.bin", body.clone());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.bin");
    let url = server.url("/file.bin").parse().unwrap();
    let written = snippet_async(url, &path).await.unwrap();
    assert_eq!(written, body.len() as u64);
    assert!(std::fs::read(&path).unwrap() == body, "the copy differs");
}
