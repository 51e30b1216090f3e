//! Reference reader for kithara-file's benchmark harness (`benches/throughput.rs`).
//!
//! Reads a URL through `stream-download` with its default temp-file storage and default
//! settings, the way its documentation shows, and prints one line of `key=value` results
//! the harness parses. Built on demand:
//! `cargo build --release -p stream-download-ref`.
//!
//! Modes:
//! - `read URL [--hash]`: the whole body through `Read` with a 64 KiB buffer;
//!   prints `bytes=N secs=S [sha256=HEX]`. Timing covers `new_http` to the last byte.
//! - `seek URL OFFSET...`: opens once, then for every offset seeks there and reads
//!   4 KiB; prints `seek_us=A,B,...` (microseconds per seek + read).

use std::io::{Read, Seek, SeekFrom};
use std::process::ExitCode;
use std::time::Instant;

use sha2::{Digest, Sha256};
use stream_download::storage::temp::TempStorageProvider;
use stream_download::{Settings, StreamDownload};

const BUFFER: usize = 64 * 1024;
const SEEK_READ: usize = 4 * 1024;

type Reader = StreamDownload<TempStorageProvider>;

async fn open(url: &str) -> Result<Reader, String> {
    let url = url.parse().map_err(|e| format!("bad url {url}: {e}"))?;
    StreamDownload::new_http(url, TempStorageProvider::default(), Settings::default())
        .await
        .map_err(|e| format!("stream-download open: {e}"))
}

async fn read_mode(url: String, hash: bool) -> Result<String, String> {
    let start = Instant::now();
    let mut reader = open(&url).await?;
    // `Read` blocks: run it off the runtime's worker threads, as the crate documents.
    let (bytes, digest, elapsed) = tokio::task::spawn_blocking(move || {
        let mut buffer = vec![0u8; BUFFER];
        let mut hasher = hash.then(Sha256::new);
        let mut total: u64 = 0;
        loop {
            let n = reader
                .read(&mut buffer)
                .map_err(|e| format!("read at {total}: {e}"))?;
            if n == 0 {
                break;
            }
            if let Some(hasher) = hasher.as_mut() {
                hasher.update(&buffer[..n]);
            }
            total += n as u64;
        }
        let elapsed = start.elapsed();
        let digest = hasher.map(|h| {
            h.finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        });
        Ok::<_, String>((total, digest, elapsed))
    })
    .await
    .map_err(|e| format!("reader task: {e}"))??;
    let mut line = format!("bytes={bytes} secs={:.6}", elapsed.as_secs_f64());
    if let Some(digest) = digest {
        line.push_str(&format!(" sha256={digest}"));
    }
    Ok(line)
}

async fn seek_mode(url: String, offsets: Vec<u64>) -> Result<String, String> {
    let mut reader = open(&url).await?;
    let times = tokio::task::spawn_blocking(move || {
        let mut buffer = vec![0u8; SEEK_READ];
        let mut times = Vec::with_capacity(offsets.len());
        for offset in offsets {
            let start = Instant::now();
            reader
                .seek(SeekFrom::Start(offset))
                .map_err(|e| format!("seek to {offset}: {e}"))?;
            reader
                .read_exact(&mut buffer)
                .map_err(|e| format!("read at {offset}: {e}"))?;
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
        Ok::<_, String>(times)
    })
    .await
    .map_err(|e| format!("reader task: {e}"))??;
    let list: Vec<String> = times.iter().map(|t| format!("{t:.1}")).collect();
    Ok(format!("seek_us={}", list.join(",")))
}

fn usage() -> String {
    "usage: stream-download-ref read URL [--hash] | seek URL OFFSET...".into()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.first().map(String::as_str) {
        Some("read") if args.len() >= 2 => {
            let hash = args.iter().skip(2).any(|a| a == "--hash");
            runtime.block_on(read_mode(args[1].clone(), hash))
        }
        Some("seek") if args.len() >= 3 => {
            let offsets: Result<Vec<u64>, _> = args[2..].iter().map(|a| a.parse()).collect();
            match offsets {
                Ok(offsets) => runtime.block_on(seek_mode(args[1].clone(), offsets)),
                Err(e) => Err(format!("bad offset: {e}")),
            }
        }
        _ => Err(usage()),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
