//! Plays a remote audio file on the default output device through rodio.
//!
//! ```sh
//! cargo run --example play --features play -- http://127.0.0.1:8000/track.mp3 [START_SECONDS]
//! ```
//!
//! Needs the `play` feature (rodio with its `playback` feature: cpal, which links ALSA on
//! Linux; Debian: `apt-get install libasound2-dev pkg-config`) and a sound device.

use std::error::Error;
use std::time::Duration;

use kithara_file::{FileSource, FileSourceOptions, Url};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let Some(url) = args.next() else {
        eprintln!("usage: play URL [START_SECONDS]");
        std::process::exit(2);
    };
    let url: Url = url.parse()?;
    let start: Option<f64> = args.next().map(|s| s.parse()).transpose()?;

    let session = FileSource::open(url.clone(), FileSourceOptions::new())?;
    let len = session.byte_len();
    let seekable = session.is_seekable();
    println!(
        "{url}: {} bytes, {}, content type {:?}",
        len.map_or_else(|| "unknown".to_string(), |n| n.to_string()),
        if seekable { "seekable" } else { "not seekable" },
        session.content_type(),
    );

    // The extension helps the probe; the decoder still checks the content.
    let ext = url
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase());

    // rodio treats the data as seekable only with a length. Give it one only when Range
    // requests work: told "seekable" without a length, rodio panics on OGG and M4A.
    let mut builder = rodio::Decoder::builder().with_data(session);
    if let (true, Some(len)) = (seekable, len) {
        builder = builder.with_byte_len(len).with_seekable(true);
    }
    if let Some(ext) = &ext {
        builder = builder.with_hint(ext);
    }
    let decoder = builder.build()?;

    // Playback stops when `sink` is dropped: keep it alive until the end.
    let mut sink = rodio::DeviceSinkBuilder::open_default_sink()?;
    let player = rodio::Player::connect_new(sink.mixer());
    player.append(decoder);
    if let Some(seconds) = start {
        player.try_seek(Duration::from_secs_f64(seconds))?;
    }
    player.sleep_until_end();
    println!("played to {:.1} s", player.get_pos().as_secs_f64());
    sink.log_on_drop(false); // the track ended: dropping the sink now cuts nothing
    Ok(())
}
