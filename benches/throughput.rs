//! Performance harness for kithara-file: every target of the performance issue, measured
//! side by side with its reference in one process run, repetitions interleaved (the order
//! alternates every repetition), medians compared as ratios.
//!
//! ```text
//! cargo bench --bench throughput                       # full run (256 MiB main file)
//! cargo bench --bench throughput -- --quick            # small files, fewer repetitions
//! cargo bench --bench throughput -- --markdown out.md  # also write the table as Markdown
//! ```
//!
//! Flags (after `--`): `--quick` (or `KITHARA_BENCH_QUICK=1`), `--reps N`,
//! `--size-mib N` (main file), `--only 1,4,5` (targets to run), `--server nginx|std`,
//! `--markdown PATH`, `--svg PATH` (a chart of throughput per peer and of seek latency),
//! `--profile ours|plain N` (only N sequential reads of the main file, no table: for
//! perf/callgrind).
//!
//! The server is nginx (`sendfile on`, one process, loopback, a free port) when installed,
//! else a small std-based server in this process; the table says which. The rows nginx
//! cannot play (an origin that trickles after the first 640 KiB of every response, a
//! 2 Mbit/s link) run against shaped std origins in this process (`throughput/origin.rs`).
//! The files are random bytes from a counter-based generator, so any range can be checked
//! without the file in memory; whole reads are checked by SHA-256 against the file.
//!
//! The stream-download comparison runs `stream-download-ref` (a workspace member) as a
//! child process when it has been built: `cargo build --release -p stream-download-ref`.

#[path = "throughput/chart.rs"]
mod chart;
#[path = "throughput/origin.rs"]
mod origin;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use kithara_file::{FileSession, FileSource, FileSourceOptions, Url};
use origin::{OriginLog, Shape};
use sha2::{Digest, Sha256};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
/// The read buffer of every sequential reader, ours and the references.
const BUFFER: usize = 64 * 1024;
/// The read after a seek.
const SEEK_READ: usize = 4 * 1024;
/// The trickling origin (5d): this many bytes of every response at full speed, then
/// `TRICKLE_RATE` bytes per second.
const TRICKLE_FAST: u64 = 640 * KIB;
const TRICKLE_RATE: f64 = 64.0 * KIB as f64;
/// The slow link (8): a phone's 2 Mbit/s.
const LINK_BITS_PER_S: f64 = 2_000_000.0;
/// Seek traffic (5e): random seeks over a file the size of a 4.4 MB MP3, each followed
/// by a decoder-sized read.
const TRAFFIC_SEEKS: usize = 300;
const TRAFFIC_SIZE: u64 = 4_400_000;
const TRAFFIC_FILE: &str = "traffic.bin";
/// Sessions of the flat-memory row (7b), against the 64 of the row before.
const MANY_MORE: usize = 256;

// ---------------------------------------------------------------------------------------
// Configuration

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ServerKind {
    Nginx,
    Std,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Ours,
    Plain,
}

#[derive(Debug)]
struct Config {
    quick: bool,
    reps: usize,
    main_size: u64,
    many_count: usize,
    many_size: u64,
    rss_small: u64,
    rss_large: u64,
    rss_reps: usize,
    ttfb_reps: usize,
    seek_reps: usize,
    /// Repetitions of the seek-traffic workload (5e) and of the slow-link reading (8a).
    traffic_reps: usize,
    slow_reps: usize,
    /// 4 KiB reads per slow-link repetition (8a).
    slow_reads: usize,
    markdown: Option<PathBuf>,
    svg: Option<PathBuf>,
    server: Option<ServerKind>,
    only: Option<Vec<u32>>,
    profile: Option<(Who, usize)>,
}

impl Config {
    fn parse(args: &[String]) -> Result<Config, String> {
        let quick = args.iter().any(|a| a == "--quick")
            || std::env::var("KITHARA_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let mut config = if quick {
            Config {
                quick,
                reps: 3,
                main_size: 32 * MIB,
                many_count: 64,
                many_size: MIB,
                rss_small: 16 * MIB,
                rss_large: 128 * MIB,
                rss_reps: 1,
                ttfb_reps: 11,
                seek_reps: 11,
                traffic_reps: 1,
                slow_reps: 1,
                slow_reads: 60,
                markdown: None,
                svg: None,
                server: None,
                only: None,
                profile: None,
            }
        } else {
            Config {
                quick,
                reps: 11,
                main_size: 256 * MIB,
                many_count: 64,
                many_size: 4 * MIB,
                rss_small: 64 * MIB,
                rss_large: GIB,
                rss_reps: 3,
                ttfb_reps: 51,
                seek_reps: 31,
                traffic_reps: 3,
                slow_reps: 3,
                slow_reads: 180,
                markdown: None,
                svg: None,
                server: None,
                only: None,
                profile: None,
            }
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match arg.as_str() {
                // `cargo bench` passes --bench to harness = false targets.
                "--bench" | "--quick" => {}
                "--reps" => {
                    config.reps = parse_num(&value("--reps")?)?.max(1) as usize;
                    config.rss_reps = config.rss_reps.min(config.reps);
                }
                "--size-mib" => config.main_size = parse_num(&value("--size-mib")?)?.max(1) * MIB,
                "--markdown" => config.markdown = Some(PathBuf::from(value("--markdown")?)),
                "--svg" => config.svg = Some(PathBuf::from(value("--svg")?)),
                "--server" => {
                    config.server = Some(match value("--server")?.as_str() {
                        "nginx" => ServerKind::Nginx,
                        "std" => ServerKind::Std,
                        other => return Err(format!("unknown server {other}")),
                    })
                }
                "--only" => {
                    let list = value("--only")?
                        .split(',')
                        .map(|s| parse_num(s.trim()).map(|n| n as u32))
                        .collect::<Result<Vec<_>, _>>()?;
                    config.only = Some(list);
                }
                "--profile" => {
                    let who = match value("--profile")?.as_str() {
                        "ours" => Who::Ours,
                        "plain" => Who::Plain,
                        other => return Err(format!("--profile ours|plain, not {other}")),
                    };
                    let n = parse_num(&value("--profile")?)?.max(1) as usize;
                    config.profile = Some((who, n));
                }
                other => return Err(format!("unknown argument {other}")),
            }
        }
        Ok(config)
    }

    fn runs(&self, target: u32) -> bool {
        self.profile.is_none() && self.only.as_ref().is_none_or(|o| o.contains(&target))
    }
}

fn parse_num(s: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("not a number: {s}"))
}

// ---------------------------------------------------------------------------------------
// Test data: a counter-based generator, so any byte range can be recomputed.

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `buf` with the bytes at `offset` of the file generated from `seed`.
fn expected(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut rest = buf;
    while !rest.is_empty() {
        let word = mix(seed ^ (pos / 8).wrapping_mul(0xd6e8_feb8_6659_fd93)).to_le_bytes();
        let from = (pos % 8) as usize;
        let n = (8 - from).min(rest.len());
        rest[..n].copy_from_slice(&word[from..from + n]);
        rest = &mut rest[n..];
        pos += n as u64;
    }
}

/// Checks `got` against the generated bytes at `offset`.
fn check_bytes(seed: u64, offset: u64, got: &[u8], scratch: &mut Vec<u8>) -> Result<(), String> {
    scratch.resize(got.len(), 0);
    expected(seed, offset, scratch);
    if scratch.as_slice() == got {
        return Ok(());
    }
    let at = got.iter().zip(scratch.iter()).position(|(a, b)| a != b);
    Err(format!(
        "bytes differ from the file at offset {}",
        offset + at.unwrap_or(0) as u64
    ))
}

struct TestFile {
    name: String,
    size: u64,
    seed: u64,
    sha: [u8; 32],
}

fn make_file(dir: &Path, name: &str, size: u64, seed: u64) -> io::Result<TestFile> {
    let path = dir.join(name);
    let mut out = std::fs::File::create(&path)?;
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; MIB as usize];
    let mut offset = 0;
    while offset < size {
        let n = (size - offset).min(MIB) as usize;
        expected(seed, offset, &mut block[..n]);
        hasher.update(&block[..n]);
        out.write_all(&block[..n])?;
        offset += n as u64;
    }
    out.sync_all()?;
    Ok(TestFile {
        name: name.to_string(),
        size,
        seed,
        sha: hasher.finalize().into(),
    })
}

// ---------------------------------------------------------------------------------------
// Process measurements

/// User + system CPU seconds of this process, all threads (finished ones included), and
/// its context switches (voluntary + involuntary).
fn usage() -> (f64, u64) {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `rusage` into the pointer we own; RUSAGE_SELF is valid.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return (f64::NAN, 0);
    }
    // SAFETY: getrusage returned 0, so it filled the struct (and it was zeroed before).
    let usage = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    let switches = usage.ru_nvcsw.max(0) as u64 + usage.ru_nivcsw.max(0) as u64;
    (tv(usage.ru_utime) + tv(usage.ru_stime), switches)
}

/// The 1-minute load average: other work on the machine is the main source of noise.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// `RssAnon` of this process in KiB.
fn rss_anon_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------------------
// Servers

struct Server {
    origin: String,
    kind: ServerKind,
    nginx: Option<Child>,
    /// nginx: the access log of `TRAFFIC_FILE` (connection, its request count, status,
    /// body bytes, URI); std: the origin's own log of every request.
    traffic_log: Option<PathBuf>,
    std_log: Option<Arc<OriginLog>>,
}

/// A request as the server saw it.
struct Seen {
    connection: u64,
    nth_on_connection: u64,
    /// Body bytes the server sent (nginx's `$body_bytes_sent`; unknown for std).
    bytes: Option<u64>,
}

impl Server {
    fn start(kind: Option<ServerKind>, base: &Path, www: &Path) -> Result<Server, String> {
        let nginx = Path::new("/usr/sbin/nginx");
        let want_nginx = match kind {
            Some(ServerKind::Nginx) => true,
            Some(ServerKind::Std) => false,
            None => nginx.exists(),
        };
        if want_nginx {
            let mut last = String::new();
            for _attempt in 0..3 {
                match start_nginx(nginx, base, www) {
                    Ok(server) => return Ok(server),
                    Err(e) => last = e,
                }
            }
            return Err(format!("nginx did not start: {last}"));
        }
        let std = origin::start(www, Shape::FULL_SPEED)?;
        Ok(Server {
            origin: std.origin,
            kind: ServerKind::Std,
            nginx: None,
            traffic_log: None,
            std_log: Some(std.log),
        })
    }

    fn url(&self, name: &str) -> Url {
        Url::parse(&format!("{}/{name}", self.origin)).expect("a valid loopback URL")
    }

    /// The requests for exactly `target` (path and query) the server has logged. nginx
    /// logs a request when it ends, an abandoned one when it notices the client left:
    /// waits (bounded) until `expected` are there.
    fn seen(&self, target: &str, expected: u64) -> Result<Vec<Seen>, String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let seen = self.seen_now(target)?;
            if seen.len() as u64 >= expected || Instant::now() >= deadline {
                return Ok(seen);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn seen_now(&self, target: &str) -> Result<Vec<Seen>, String> {
        if let Some(log) = &self.std_log {
            return Ok(log
                .for_target(target)
                .into_iter()
                .map(|s| Seen {
                    connection: s.connection,
                    nth_on_connection: s.nth_on_connection,
                    bytes: None,
                })
                .collect());
        }
        let path = self.traffic_log.as_ref().ok_or("no access log")?;
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut seen = Vec::new();
        for line in text.lines() {
            // `$connection $connection_requests $status $body_bytes_sent $request_uri`
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [connection, nth, _status, bytes, uri] = fields[..] else {
                return Err(format!("access log line: {line}"));
            };
            if uri != target {
                continue;
            }
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| format!("access log line: {line}"))
            };
            seen.push(Seen {
                connection: num(connection)?,
                nth_on_connection: num(nth)?,
                bytes: Some(num(bytes)?),
            });
        }
        Ok(seen)
    }

    fn label(&self) -> String {
        match self.kind {
            ServerKind::Nginx => "nginx (sendfile, 1 process)".into(),
            ServerKind::Std => "built-in std server (thread per connection)".into(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.nginx.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

fn wait_listening(port: u16, child: &mut Child) -> Result<(), String> {
    for _ in 0..500 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status}"));
        }
        thread::sleep(Duration::from_millis(10));
    }
    Err("not listening after 5 s".into())
}

fn start_nginx(binary: &Path, base: &Path, www: &Path) -> Result<Server, String> {
    let port = free_port()?;
    let temp = base.join("nginx-temp");
    std::fs::create_dir_all(&temp).map_err(|e| e.to_string())?;
    let b = base.display();
    let t = temp.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {b}/nginx.pid;\n\
         error_log {b}/error.log warn;\nevents {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  tcp_nodelay on;\n\
         \x20 log_format traffic '$connection $connection_requests $status $body_bytes_sent \
         $request_uri';\n\
         \x20 keepalive_requests 1000000;\n  keepalive_timeout 120s;\n\
         \x20 default_type application/octet-stream;\n  types {{ }}\n\
         \x20 client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n\
         \x20 fastcgi_temp_path {t}/fastcgi;\n  uwsgi_temp_path {t}/uwsgi;\n\
         \x20 scgi_temp_path {t}/scgi;\n\
         \x20 server {{\n    listen 127.0.0.1:{port};\n    root {www};\n\
         \x20   location = /{TRAFFIC_FILE} {{ access_log {b}/traffic.log traffic; }}\n  }}\n}}\n",
        www = www.display()
    );
    let conf_path = base.join("nginx.conf");
    std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
    let mut child = Command::new(binary)
        .arg("-p")
        .arg(base)
        .arg("-e")
        .arg(base.join("error.log"))
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    if let Err(e) = wait_listening(port, &mut child) {
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(base.join("error.log")).unwrap_or_default();
        return Err(format!("{e}: {}", log.trim()));
    }
    Ok(Server {
        origin: format!("http://127.0.0.1:{port}"),
        kind: ServerKind::Nginx,
        nginx: Some(child),
        traffic_log: Some(base.join("traffic.log")),
        std_log: None,
    })
}

// ---------------------------------------------------------------------------------------
// Readers

/// The input buffer kithara-file's agent uses over `http` with the default look-ahead
/// (`input_buffer_size` in `src/agent.rs`): row 1f gives plain ureq the same.
const OURS_INPUT_BUFFER: usize = 512 * 1024;

/// A plain ureq agent: ureq's defaults, or `input_buffer` bytes of input buffer.
fn plain_agent(input_buffer: Option<usize>) -> ureq::Agent {
    let config = ureq::Agent::config_builder().http_status_as_error(false);
    match input_buffer {
        Some(bytes) => config.input_buffer_size(bytes).build().into(),
        None => config.build().into(),
    }
}

/// A plain ureq GET (optionally ranged) on a fresh agent: the body as a reader.
fn plain_get(url: &Url, range: Option<(u64, u64)>) -> Result<ureq::BodyReader<'static>, String> {
    plain_get_with_input_buffer(url, range, None)
}

/// [`plain_get`] on an agent with `input_buffer` bytes of input buffer, if given.
fn plain_get_with_input_buffer(
    url: &Url,
    range: Option<(u64, u64)>,
    input_buffer: Option<usize>,
) -> Result<ureq::BodyReader<'static>, String> {
    let agent = plain_agent(input_buffer);
    let mut request = agent
        .get(url.as_str())
        .header("Accept-Encoding", "identity");
    if let Some((start, last)) = range {
        request = request.header("Range", format!("bytes={start}-{last}"));
    }
    let response = request.call().map_err(|e| format!("ureq: {e}"))?;
    let status = response.status().as_u16();
    let want = if range.is_some() { 206 } else { 200 };
    if status != want {
        return Err(format!("ureq: HTTP {status}, expected {want}"));
    }
    Ok(response.into_body().into_reader())
}

fn ours_open(url: &Url) -> Result<FileSession, String> {
    FileSource::open(url.clone(), FileSourceOptions::new()).map_err(|e| format!("open: {e}"))
}

fn open_reader(who: Who, url: &Url) -> Result<Box<dyn Read + Send>, String> {
    Ok(match who {
        Who::Ours => Box::new(ours_open(url)?),
        Who::Plain => Box::new(plain_get(url, None)?),
    })
}

/// Reads to the end through a 64 KiB buffer; hashes when asked. Fails past `limit` bytes.
fn drain(reader: &mut dyn Read, limit: u64, hash: bool) -> Result<(u64, Option<[u8; 32]>), String> {
    let mut buffer = vec![0u8; BUFFER];
    let mut hasher = hash.then(Sha256::new);
    let mut total = 0u64;
    loop {
        let n = reader
            .read(&mut buffer)
            .map_err(|e| format!("read at {total}: {e}"))?;
        if n == 0 {
            break;
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&buffer[..n]);
        }
        total += n as u64;
        if total > limit {
            return Err(format!("read {total} bytes from a {limit}-byte file"));
        }
    }
    Ok((total, hasher.map(|h| h.finalize().into())))
}

/// One timed run: wall seconds, CPU seconds, context switches, bytes.
#[derive(Clone, Copy, Debug)]
struct Sample {
    secs: f64,
    cpu: f64,
    switches: u64,
    bytes: u64,
}

impl Sample {
    fn mib_per_s(&self) -> f64 {
        self.bytes as f64 / MIB as f64 / self.secs
    }
    fn cpu_per_gib(&self) -> f64 {
        self.cpu / (self.bytes as f64 / GIB as f64)
    }
    fn switches_per_mib(&self) -> f64 {
        self.switches as f64 / (self.bytes as f64 / MIB as f64)
    }
}

/// Opens, reads to the end, drops; all inside the timing. `verify` checks the SHA-256.
fn timed_read(
    file: &TestFile,
    verify: bool,
    open: impl FnOnce() -> Result<Box<dyn Read + Send>, String>,
) -> Result<Sample, String> {
    let (cpu0, switches0) = usage();
    let t0 = Instant::now();
    let mut reader = open()?;
    let (bytes, digest) = drain(&mut *reader, file.size, verify)?;
    drop(reader);
    let secs = t0.elapsed().as_secs_f64();
    let (cpu1, switches1) = usage();
    check_whole(file, bytes, digest)?;
    Ok(Sample {
        secs,
        cpu: cpu1 - cpu0,
        switches: switches1.saturating_sub(switches0),
        bytes,
    })
}

fn check_whole(file: &TestFile, bytes: u64, digest: Option<[u8; 32]>) -> Result<(), String> {
    if bytes != file.size {
        return Err(format!("{}: {bytes} of {} bytes", file.name, file.size));
    }
    if digest.is_some_and(|d| d != file.sha) {
        return Err(format!("{}: SHA-256 differs from the file", file.name));
    }
    Ok(())
}

/// The stream-download reference binary, if built.
fn sd_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KITHARA_BENCH_SD_REF") {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    // target/<profile>/deps/throughput-<hash> -> target/<profile>/stream-download-ref
    let path = exe.parent()?.parent()?.join("stream-download-ref");
    path.exists().then_some(path)
}

fn sd_run(binary: &Path, args: &[String]) -> Result<String, String> {
    let out = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("stream-download-ref: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "stream-download-ref failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn sd_read(binary: &Path, url: &Url, file: &TestFile, verify: bool) -> Result<Sample, String> {
    let mut args = vec!["read".to_string(), url.to_string()];
    if verify {
        args.push("--hash".into());
    }
    let line = sd_run(binary, &args)?;
    let bytes: u64 = field(&line, "bytes")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("stream-download-ref output: {line}"))?;
    let secs: f64 = field(&line, "secs")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("stream-download-ref output: {line}"))?;
    if bytes != file.size {
        return Err(format!("stream-download: {bytes} of {} bytes", file.size));
    }
    if verify && field(&line, "sha256") != Some(hex(&file.sha).as_str()) {
        return Err("stream-download: SHA-256 differs from the file".into());
    }
    Ok(Sample {
        secs,
        cpu: f64::NAN,
        switches: 0,
        bytes,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

// ---------------------------------------------------------------------------------------
// Results

#[derive(Clone, Copy)]
enum Unit {
    MibPerSec,
    CpuPerGib,
    PerMib,
    Micros,
    Millis,
    Mib,
    Kib,
    /// A plain factor (bytes received per byte delivered).
    Times,
    Percent,
}

impl Unit {
    fn show(self, v: f64) -> String {
        if v.is_nan() {
            return "-".into();
        }
        match self {
            Unit::MibPerSec => format!("{v:.0} MiB/s"),
            Unit::CpuPerGib => format!("{v:.3} s/GiB"),
            Unit::PerMib => format!("{v:.1}/MiB"),
            Unit::Micros if v < 10.0 => format!("{v:.2} µs"),
            Unit::Micros => format!("{v:.0} µs"),
            Unit::Millis => format!("{v:.2} ms"),
            Unit::Mib => format!("{v:.1} MiB"),
            Unit::Kib => format!("{v:.0} KiB"),
            Unit::Times => format!("{v:.2}x"),
            Unit::Percent => format!("{v:.1} %"),
        }
    }
}

#[derive(Clone, Copy)]
enum Goal {
    /// ours / reference >= x
    RatioAtLeast(f64),
    /// ours / reference <= x
    RatioAtMost(f64),
    /// ours <= an absolute limit (shown as the reference)
    AtMost(f64),
    /// |ours / reference - 1| <= x
    Within(f64),
    /// No target: context only.
    Info,
}

struct Row {
    id: &'static str,
    what: String,
    unit: Unit,
    ours: Vec<f64>,
    reference: Vec<f64>,
    ref_label: String,
    goal: Goal,
    error: Option<String>,
    skipped: Option<String>,
    /// Shown after the result.
    note: String,
    /// Compare the largest value of the repetitions instead of the median: for memory
    /// peaks, where a repetition whose look-ahead never filled says nothing about the bound.
    peak: bool,
}

fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

fn span(values: &[f64], unit: Unit) -> String {
    let v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return "-".into();
    }
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{}–{}", unit.show(lo), unit.show(hi))
}

impl Row {
    fn new(id: &'static str, what: impl Into<String>, unit: Unit, goal: Goal) -> Row {
        Row {
            id,
            what: what.into(),
            unit,
            ours: Vec::new(),
            reference: Vec::new(),
            ref_label: String::new(),
            goal,
            error: None,
            skipped: None,
            note: String::new(),
            peak: false,
        }
    }

    fn fail(&mut self, error: String) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }

    fn goal_text(&self) -> String {
        let of = if self.ref_label.is_empty() {
            String::new()
        } else {
            format!(" {}", self.ref_label)
        };
        match self.goal {
            Goal::RatioAtLeast(x) => format!(">= {x}x{of}"),
            Goal::RatioAtMost(x) => format!("<= {x}x{of}"),
            Goal::AtMost(x) => format!("<= {}", self.unit.show(x)),
            Goal::Within(x) => format!("within {:.0} % of{of}", x * 100.0),
            Goal::Info => "info".into(),
        }
    }

    fn center(&self, values: &[f64]) -> f64 {
        if self.peak {
            values.iter().copied().fold(f64::NAN, f64::max)
        } else {
            median(values)
        }
    }

    fn ratio(&self) -> f64 {
        let ours = self.center(&self.ours);
        match self.goal {
            Goal::AtMost(limit) => ours / limit,
            _ => ours / self.center(&self.reference),
        }
    }

    fn cells(&self) -> [String; 8] {
        let unit = self.unit;
        let reference = match self.goal {
            Goal::AtMost(limit) if self.reference.is_empty() => {
                format!("limit {}", unit.show(limit))
            }
            _ if self.skipped.is_some() => "-".into(),
            _ if self.peak && !self.reference.is_empty() => {
                format!("{} (max)", unit.show(self.center(&self.reference)))
            }
            _ => unit.show(self.center(&self.reference)),
        };
        let ratio = self.ratio();
        let result = if let Some(error) = &self.error {
            format!("ERROR: {error}")
        } else if let Some(why) = &self.skipped {
            format!("skipped: {why}")
        } else {
            let met = match self.goal {
                Goal::RatioAtLeast(x) => ratio >= x,
                Goal::RatioAtMost(x) => ratio <= x,
                // The ratio is already ours / limit.
                Goal::AtMost(_) => ratio <= 1.0,
                Goal::Within(x) => (ratio - 1.0).abs() <= x,
                Goal::Info => true,
            };
            match (self.goal, met) {
                (Goal::Info, _) => "info".into(),
                (_, true) => "met".into(),
                (_, false) => "MISSED".into(),
            }
        };
        let result = if self.note.is_empty() {
            result
        } else {
            format!("{result} ({})", self.note)
        };
        [
            format!("{} {}", self.id, self.what),
            self.goal_text(),
            if self.peak {
                format!("{} (max)", unit.show(self.center(&self.ours)))
            } else {
                unit.show(self.center(&self.ours))
            },
            reference,
            format!(
                "{} / {}",
                span(&self.ours, unit),
                if self.reference.is_empty() {
                    "-".into()
                } else {
                    span(&self.reference, unit)
                }
            ),
            if ratio.is_nan() || self.skipped.is_some() {
                "-".into()
            } else {
                format!("{ratio:.2}x")
            },
            format!("{}/{}", self.ours.len(), self.reference.len()),
            result,
        ]
    }
}

const HEADERS: [&str; 8] = [
    "Target",
    "Goal",
    "Ours (median)",
    "Reference (median)",
    "min–max ours / ref",
    "Ratio",
    "n",
    "Result",
];

fn text_table(rows: &[Row]) -> String {
    let cells: Vec<[String; 8]> = rows.iter().map(Row::cells).collect();
    let mut widths = HEADERS.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[String]| {
        for (i, (c, w)) in row.iter().zip(widths.iter()).enumerate() {
            let pad = w - c.chars().count();
            let sep = if i + 1 == row.len() { "\n" } else { "  " };
            let _ = write!(out, "{c}{}{sep}", " ".repeat(pad));
        }
    };
    line(&mut out, &HEADERS.map(String::from));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&mut out, &rule);
    for row in &cells {
        line(&mut out, row);
    }
    out
}

fn markdown_table(rows: &[Row], header: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{header}\n");
    let _ = writeln!(out, "| {} |", HEADERS.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(HEADERS.len()));
    for row in rows {
        let cells = row.cells().map(|c| c.replace('|', "\\|"));
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

/// Runs `steps` once each, in an order rotated by `rep`, so drift hits all alike.
fn rotate(rep: usize, steps: &mut [&mut dyn FnMut()]) {
    let n = steps.len();
    for k in 0..n {
        (steps[(k + rep) % n])();
    }
}

// ---------------------------------------------------------------------------------------
// Targets

struct Bench<'a> {
    config: &'a Config,
    server: &'a Server,
    /// Scratch space for cache directories (targets 2 and 3).
    work: &'a Path,
    /// The files every server serves (the shaped origins of 5d and 8 start on it).
    www: &'a Path,
    sd: Option<PathBuf>,
}

/// 1: sequential read, no cache, vs plain ureq and stream-download; CPU per GiB.
fn target_sequential(b: &Bench, main: &TestFile) -> Vec<Row> {
    let url = b.server.url(&main.name);
    let mut vs_plain = Row::new(
        "1a",
        "seq read, no cache",
        Unit::MibPerSec,
        Goal::RatioAtLeast(0.95),
    );
    vs_plain.ref_label = "plain ureq".into();
    let mut vs_sd = Row::new(
        "1b",
        "seq read, no cache",
        Unit::MibPerSec,
        Goal::RatioAtLeast(2.5),
    );
    vs_sd.ref_label = "stream-download (temp storage)".into();
    let mut cpu = Row::new(
        "1c",
        "CPU per GiB, seq read",
        Unit::CpuPerGib,
        Goal::RatioAtMost(1.1),
    );
    cpu.ref_label = "plain ureq".into();
    let mut switches = Row::new(
        "1d",
        "context switches, seq read",
        Unit::PerMib,
        Goal::RatioAtMost(2.0),
    );
    switches.ref_label = "plain ureq".into();
    let mut curl_row = Row::new(
        "1e",
        "curl -o /dev/null (info)",
        Unit::MibPerSec,
        Goal::Info,
    );
    curl_row.ref_label = "kithara-file".into();
    let mut vs_same_buffer = Row::new(
        "1f",
        "seq read vs plain ureq, same input buffer (info)",
        Unit::MibPerSec,
        Goal::Info,
    );
    vs_same_buffer.ref_label = format!("plain ureq, {} KiB input buffer", OURS_INPUT_BUFFER / 1024);
    let curl = ["/usr/bin/curl", "/usr/local/bin/curl"]
        .iter()
        .map(std::path::Path::new)
        .find(|p| p.is_file());
    if curl.is_none() {
        curl_row.skipped = Some("curl is not installed".into());
    }
    let mut curl_speeds = Vec::new();
    if b.sd.is_none() {
        vs_sd.skipped = Some("not built (cargo build --release -p stream-download-ref)".into());
    }
    let mut ours = Vec::new();
    let mut plain = Vec::new();
    let mut same_buffer = Vec::new();
    let mut sd = Vec::new();
    let open_same_buffer = || -> Result<Box<dyn Read + Send>, String> {
        let body = plain_get_with_input_buffer(&url, None, Some(OURS_INPUT_BUFFER))?;
        Ok(Box::new(body))
    };
    // Repetition 0 warms up and checks the bytes; it is not recorded.
    for rep in 0..=b.config.reps {
        let verify = rep == 0;
        let (mut r_ours, mut r_plain, mut r_same, mut r_sd) = (None, None, None, None);
        rotate(
            rep,
            &mut [
                &mut || r_ours = Some(timed_read(main, verify, || open_reader(Who::Ours, &url))),
                &mut || r_plain = Some(timed_read(main, verify, || open_reader(Who::Plain, &url))),
                &mut || r_same = Some(timed_read(main, verify, open_same_buffer)),
                &mut || r_sd = b.sd.as_ref().map(|bin| sd_read(bin, &url, main, verify)),
                &mut || {
                    if let (Some(curl), false) = (curl, verify) {
                        if let Some(speed) = curl_read(curl, url.as_str()) {
                            curl_speeds.push(speed);
                        }
                    }
                },
            ],
        );
        if let Some(Err(e)) = &r_ours {
            vs_same_buffer.fail(e.clone());
        }
        for (result, into) in [(r_ours, &mut ours), (r_plain, &mut plain)] {
            match result {
                Some(Ok(s)) if !verify => into.push(s),
                Some(Err(e)) => {
                    vs_plain.fail(e.clone());
                    vs_sd.fail(e.clone());
                    cpu.fail(e);
                }
                _ => {}
            }
        }
        match r_sd {
            Some(Ok(s)) if !verify => sd.push(s),
            Some(Err(e)) => vs_sd.fail(e),
            _ => {}
        }
        match r_same {
            Some(Ok(s)) if !verify => same_buffer.push(s),
            Some(Err(e)) => vs_same_buffer.fail(e),
            _ => {}
        }
    }
    let tput = |v: &[Sample]| v.iter().map(Sample::mib_per_s).collect::<Vec<_>>();
    vs_plain.ours = tput(&ours);
    vs_plain.reference = tput(&plain);
    vs_sd.ours = tput(&ours);
    vs_sd.reference = tput(&sd);
    cpu.ours = ours.iter().map(Sample::cpu_per_gib).collect();
    cpu.reference = plain.iter().map(Sample::cpu_per_gib).collect();
    switches.ours = ours.iter().map(Sample::switches_per_mib).collect();
    switches.reference = plain.iter().map(Sample::switches_per_mib).collect();
    switches.error.clone_from(&cpu.error);
    curl_row.ours = curl_speeds;
    curl_row.reference = tput(&ours);
    vs_same_buffer.ours = tput(&ours);
    vs_same_buffer.reference = tput(&same_buffer);
    if !ours.is_empty() && !same_buffer.is_empty() {
        let per =
            |v: &[Sample], f: fn(&Sample) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
        vs_same_buffer.note = format!(
            "CPU {:.3} against {:.3} s/GiB, context switches {:.1} against {:.1} per MiB",
            per(&ours, Sample::cpu_per_gib),
            per(&same_buffer, Sample::cpu_per_gib),
            per(&ours, Sample::switches_per_mib),
            per(&same_buffer, Sample::switches_per_mib),
        );
    }
    vec![vs_plain, vs_sd, cpu, switches, curl_row, vs_same_buffer]
}

/// curl's own measure of a whole download to /dev/null, in MiB/s.
fn curl_read(curl: &Path, url: &str) -> Option<f64> {
    let out = Command::new(curl)
        .args(["-s", "-o", "/dev/null", "-w", "%{speed_download}", url])
        .output()
        .ok()?;
    let bytes_per_s: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(bytes_per_s / MIB as f64)
}

/// 4: open to first byte vs a plain ureq GET (both on a new connection).
fn target_first_byte(b: &Bench, main: &TestFile) -> Vec<Row> {
    let url = b.server.url(&main.name);
    let mut row = Row::new(
        "4",
        "open -> first byte",
        Unit::Micros,
        Goal::RatioAtMost(1.2),
    );
    row.ref_label = "plain ureq GET".into();
    for rep in 0..=b.config.ttfb_reps {
        let (mut r_ours, mut r_plain) = (None, None);
        rotate(
            rep,
            &mut [
                &mut || r_ours = Some(first_byte(main, || open_reader(Who::Ours, &url))),
                &mut || r_plain = Some(first_byte(main, || open_reader(Who::Plain, &url))),
            ],
        );
        record(&mut row, rep > 0, r_ours, r_plain);
    }
    vec![row]
}

/// Microseconds from before `open` to the first bytes (checked), dropping untimed.
fn first_byte(
    file: &TestFile,
    open: impl FnOnce() -> Result<Box<dyn Read + Send>, String>,
) -> Result<f64, String> {
    let mut buffer = vec![0u8; BUFFER];
    let mut scratch = Vec::new();
    let t0 = Instant::now();
    let mut reader = open()?;
    let n = reader.read(&mut buffer).map_err(|e| e.to_string())?;
    let us = t0.elapsed().as_secs_f64() * 1e6;
    if n == 0 {
        return Err("no first byte".into());
    }
    check_bytes(file.seed, 0, &buffer[..n], &mut scratch)?;
    Ok(us)
}

/// Files a pair of results of one repetition into `row` (ours, reference).
fn record(
    row: &mut Row,
    keep: bool,
    ours: Option<Result<f64, String>>,
    reference: Option<Result<f64, String>>,
) {
    match ours {
        Some(Ok(v)) if keep => row.ours.push(v),
        Some(Err(e)) => row.fail(format!("ours: {e}")),
        _ => {}
    }
    match reference {
        Some(Ok(v)) if keep => row.reference.push(v),
        Some(Err(e)) => row.fail(format!("reference: {e}")),
        _ => {}
    }
}

/// Offsets of far seeks: 8 MiB slots visited with a stride, so no target is near the
/// bytes the previous one made the driver download.
fn far_offsets(size: u64, count: usize, salt: u64) -> Vec<u64> {
    let slot = 8 * MIB;
    let slots = (size / slot).max(2);
    let stride = [7u64, 5, 3]
        .into_iter()
        .find(|s| !slots.is_multiple_of(*s) && slots > *s)
        .unwrap_or(1);
    (0..count as u64)
        .map(|i| {
            let k = (1 + i * stride) % slots;
            let jitter = mix(salt ^ i) % (slot - 2 * MIB);
            (k * slot + MIB + jitter).min(size - SEEK_READ as u64)
        })
        .collect()
}

/// Waits (bounded) until the session has fetched `bytes` or stops growing.
fn settle(session: &FileSession, bytes: u64) {
    let mut last = session.bytes_fetched();
    for i in 0..400 {
        if session.bytes_fetched() >= bytes {
            return;
        }
        thread::sleep(Duration::from_millis(5));
        if i % 20 == 19 {
            let now = session.bytes_fetched();
            if now == last {
                return;
            }
            last = now;
        }
    }
}

fn seek_read(
    session: &mut FileSession,
    file: &TestFile,
    offset: u64,
    scratch: &mut Vec<u8>,
) -> Result<f64, String> {
    let mut buffer = [0u8; SEEK_READ];
    let t0 = Instant::now();
    session
        .seek(SeekFrom::Start(offset))
        .map_err(|e| format!("seek to {offset}: {e}"))?;
    session
        .read_exact(&mut buffer)
        .map_err(|e| format!("read at {offset}: {e}"))?;
    let us = t0.elapsed().as_secs_f64() * 1e6;
    check_bytes(file.seed, offset, &buffer, scratch)?;
    Ok(us)
}

/// The reference of a far seek: a plain ureq `Range` GET of 4 KiB on a new agent (so a
/// new connection), read to its end: microseconds, bytes checked.
fn plain_range_read(url: &Url, file: &TestFile, offset: u64) -> Result<f64, String> {
    let mut buffer = [0u8; SEEK_READ];
    let last = offset + SEEK_READ as u64 - 1;
    let t0 = Instant::now();
    let mut reader = plain_get(url, Some((offset, last)))?;
    reader.read_exact(&mut buffer).map_err(|e| e.to_string())?;
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).map_err(|e| e.to_string())?;
    let us = t0.elapsed().as_secs_f64() * 1e6;
    check_bytes(file.seed, offset, &buffer, &mut Vec::new())?;
    Ok(us)
}

/// 5: seeks. (a) into bytes not downloaded vs a plain ureq Range request on a new
/// connection; (b) into bytes held in memory (backward into the history, forward into the
/// look-ahead) against 3 µs.
fn target_seek(b: &Bench, main: &TestFile) -> Vec<Row> {
    let url = b.server.url(&main.name);
    let reps = b.config.seek_reps;
    let mut far = Row::new(
        "5a",
        "far seek + 4 KiB read",
        Unit::Micros,
        Goal::RatioAtMost(1.5),
    );
    far.ref_label = "plain ureq Range GET (new conn)".into();
    let offsets = far_offsets(main.size, reps + 1, 0x5eed);
    let mut scratch = Vec::new();
    match ours_open(&url) {
        Err(e) => far.fail(e),
        Ok(mut session) => {
            let mut head = vec![0u8; BUFFER];
            if let Err(e) = session.read_exact(&mut head) {
                far.fail(format!("ours: first read: {e}"));
            }
            settle(&session, 4 * MIB);
            let requests_before = session.request_count();
            for (rep, &offset) in offsets.iter().enumerate() {
                let record = rep > 0;
                let mut ours_result = None;
                let mut plain_result = None;
                let mut run_ours = || {
                    ours_result = Some(seek_read(&mut session, main, offset, &mut scratch));
                };
                let mut run_plain = || plain_result = Some(plain_range_read(&url, main, offset));
                rotate(rep, &mut [&mut run_ours, &mut run_plain]);
                match ours_result {
                    Some(Ok(us)) if record => far.ours.push(us),
                    Some(Err(e)) => far.fail(format!("ours: {e}")),
                    _ => {}
                }
                match plain_result {
                    Some(Ok(us)) if record => far.reference.push(us),
                    Some(Err(e)) => far.fail(format!("plain: {e}")),
                    _ => {}
                }
                // A reader that seeks lets the look-ahead refill before the next seek.
                settle(&session, session.bytes_fetched() + 4 * MIB);
            }
            let requests = session.request_count() - requests_before;
            far.note = format!("{requests} requests for {} seeks", offsets.len());
        }
    }

    let mut rows = vec![far];
    if let Some(binary) = &b.sd {
        let mut sd = Row::new(
            "5a'",
            "stream-download far seek + 4 KiB (descending)",
            Unit::Micros,
            Goal::Info,
        );
        // Descending: stream-download 0.24.5 sends `Range: bytes=25000000-19999999` (416,
        // then "stream failed to download") when a seek lands past a downloaded range
        // after seeks in mixed directions; monotonic orders work.
        let mut descending = offsets.clone();
        descending.sort_unstable_by(|a, b| b.cmp(a));
        let mut args = vec!["seek".to_string(), url.to_string()];
        args.extend(descending.iter().map(u64::to_string));
        match sd_run(binary, &args) {
            Ok(line) => {
                sd.ours = field(&line, "seek_us")
                    .unwrap_or("")
                    .split(',')
                    .skip(1)
                    .filter_map(|v| v.parse().ok())
                    .collect();
            }
            Err(e) => sd.fail(e),
        }
        rows.push(sd);
    }

    let mut back = Row::new(
        "5b",
        "seek back into history + 4 KiB",
        Unit::Micros,
        Goal::AtMost(3.0),
    );
    let mut fwd = Row::new(
        "5b'",
        "seek fwd into look-ahead + 4 KiB",
        Unit::Micros,
        Goal::AtMost(3.0),
    );
    for rep in 0..=reps {
        let record = rep > 0;
        let mut session = match ours_open(&url) {
            Ok(s) => s,
            Err(e) => {
                back.fail(e);
                break;
            }
        };
        let mut head = vec![0u8; 512 * KIB as usize];
        if let Err(e) = session.read_exact(&mut head) {
            back.fail(format!("first read: {e}"));
            break;
        }
        settle(&session, 4 * MIB + 512 * KIB);
        let requests = session.request_count();
        match seek_read(&mut session, main, 384 * KIB + rep as u64 * 8, &mut scratch) {
            Ok(us) if record => back.ours.push(us),
            Ok(_) => {}
            Err(e) => back.fail(e),
        }
        match seek_read(
            &mut session,
            main,
            2560 * KIB + rep as u64 * 8,
            &mut scratch,
        ) {
            Ok(us) if record => fwd.ours.push(us),
            Ok(_) => {}
            Err(e) => fwd.fail(e),
        }
        if session.request_count() != requests {
            fwd.fail("a seek into held bytes sent a request".into());
        }
    }
    rows.push(back);
    rows.push(fwd);
    rows.push(wake_alone(reps));
    rows
}

/// 5b'': the wake in 5b', alone. A forward seek that frees room in a full look-ahead
/// wakes the driver, parked in `select!` on three channels; this is a `try_send` to a
/// thread parked the same way, timed on the sender (who pays the futex wake), after the
/// thread sat parked for 2 ms as a driver with a full look-ahead does. Not a lower bound
/// of 5b': it varies from run to run as much as 5b' does.
fn wake_alone(reps: usize) -> Row {
    let mut row = Row::new("5b''", "the wake in 5b', alone", Unit::Micros, Goal::Info);
    let (demand_tx, demand_rx) = crossbeam_channel::bounded::<()>(1);
    let (_commands_tx, commands_rx) = crossbeam_channel::unbounded::<()>();
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
    let (ack_tx, ack_rx) = crossbeam_channel::bounded::<()>(1);
    let parked = thread::spawn(move || loop {
        crossbeam_channel::select! {
            recv(demand_rx) -> _ => {
                if ack_tx.send(()).is_err() {
                    return;
                }
            }
            recv(commands_rx) -> _ => return,
            recv(stop_rx) -> _ => return,
        }
    });
    for rep in 0..=reps {
        // Idle time, not synchronisation: the thread is parked and its CPU idle.
        thread::sleep(Duration::from_millis(2));
        let t0 = Instant::now();
        let sent = demand_tx.try_send(());
        let us = t0.elapsed().as_secs_f64() * 1e6;
        if sent.is_err() || ack_rx.recv_timeout(Duration::from_secs(5)).is_err() {
            row.fail("the parked thread did not answer".into());
            break;
        }
        if rep > 0 {
            row.ours.push(us);
        }
    }
    drop(stop_tx);
    if parked.join().is_err() {
        row.fail("the parked thread panicked".into());
    }
    row.note = "crossbeam try_send waking a thread parked in select!, sender's time".into();
    row
}

/// Waits (bounded by `limit`) until the session has received `bytes`.
fn wait_fetched(session: &FileSession, bytes: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    while session.bytes_fetched() < bytes && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(2));
    }
}

/// A URL on an origin of this process (`origin` is `http://127.0.0.1:PORT`).
fn origin_url(origin: &str, target: &str) -> Result<Url, String> {
    let target = target.trim_start_matches('/');
    Url::parse(&format!("{origin}/{target}")).map_err(|e| format!("{origin}/{target}: {e}"))
}

/// 5d: far seek + 4 KiB on an origin that serves every response fast for its first
/// 640 KiB and then trickles at 64 KiB/s, so the download running when the seek comes is
/// slow but not silent (the seek must not wait on it); vs a plain ureq Range GET on a new
/// connection to the same origin.
fn target_trickle(b: &Bench, main: &TestFile) -> Vec<Row> {
    let mut row = Row::new(
        "5d",
        "far seek + 4 KiB, trickling origin",
        Unit::Micros,
        Goal::RatioAtMost(1.5),
    );
    row.ref_label = "plain ureq Range GET (new conn)".into();
    let setup = origin::start(b.www, Shape::trickle(TRICKLE_FAST, TRICKLE_RATE))
        .and_then(|o| origin_url(&o.origin, &main.name));
    let url = match setup {
        Ok(url) => url,
        Err(e) => {
            row.fail(e);
            return vec![row];
        }
    };
    let mut session = match ours_open(&url) {
        Ok(s) => s,
        Err(e) => {
            row.fail(e);
            return vec![row];
        }
    };
    // Into the trickle: the fast part of the response received, then a segment's time.
    let trickling = |session: &FileSession, from: u64| {
        wait_fetched(session, from + TRICKLE_FAST, Duration::from_secs(3));
        thread::sleep(Duration::from_millis(30));
    };
    let mut head = vec![0u8; BUFFER];
    if let Err(e) = session.read_exact(&mut head) {
        row.fail(format!("ours: first read: {e}"));
        return vec![row];
    }
    trickling(&session, 0);
    let offsets = far_offsets(main.size, b.config.seek_reps + 1, 0x7c1e);
    let mut scratch = Vec::new();
    let requests_before = session.request_count();
    for (rep, &offset) in offsets.iter().enumerate() {
        let fetched = session.bytes_fetched();
        let (mut r_ours, mut r_plain) = (None, None);
        rotate(
            rep,
            &mut [
                &mut || r_ours = Some(seek_read(&mut session, main, offset, &mut scratch)),
                &mut || r_plain = Some(plain_range_read(&url, main, offset)),
            ],
        );
        record(&mut row, rep > 0, r_ours, r_plain);
        trickling(&session, fetched);
    }
    let requests = session.request_count() - requests_before;
    row.note = format!("{requests} requests for {} seeks", offsets.len());
    vec![row]
}

/// The seek-traffic workload: `TRAFFIC_SEEKS` (offset, length) pairs, each read 16–64 KiB.
fn traffic_plan(size: u64, seed: u64) -> Vec<(u64, usize)> {
    (0..TRAFFIC_SEEKS as u64)
        .map(|i| {
            let len = (16 + mix(seed ^ (2 * i)) % 49) * KIB;
            let offset = mix(seed ^ (2 * i + 1)) % (size - len);
            (offset, len as usize)
        })
        .collect()
}

/// One run of the seek-traffic workload, counted by the reader and by the server.
struct Traffic {
    requests: u64,
    delivered: u64,
    received: u64,
    seen: Vec<Seen>,
}

impl Traffic {
    fn ratio(&self) -> f64 {
        self.received as f64 / self.delivered as f64
    }
    /// Requests that were the first on their TCP connection (the server's count).
    fn opened(&self) -> usize {
        self.seen
            .iter()
            .filter(|s| s.nth_on_connection == 1)
            .count()
    }
    fn opened_percent(&self) -> f64 {
        100.0 * self.opened() as f64 / self.seen.len().max(1) as f64
    }
    fn connections(&self) -> usize {
        self.seen
            .iter()
            .map(|s| s.connection)
            .collect::<HashSet<_>>()
            .len()
    }
    fn server_bytes(&self) -> Option<u64> {
        self.seen.iter().map(|s| s.bytes).sum()
    }
}

fn traffic_ours(
    b: &Bench,
    file: &TestFile,
    target: &str,
    plan: &[(u64, usize)],
) -> Result<Traffic, String> {
    let url = origin_url(&b.server.origin, target)?;
    let mut session = ours_open(&url)?;
    let mut buffer = vec![0u8; 64 * KIB as usize];
    let mut scratch = Vec::new();
    let mut delivered = 0;
    for &(offset, len) in plan {
        session
            .seek(SeekFrom::Start(offset))
            .map_err(|e| format!("seek to {offset}: {e}"))?;
        session
            .read_exact(&mut buffer[..len])
            .map_err(|e| format!("read {len} at {offset}: {e}"))?;
        check_bytes(file.seed, offset, &buffer[..len], &mut scratch)?;
        delivered += len as u64;
    }
    // Counted when the last read returns: what the workload cost so far.
    let received = session.bytes_fetched();
    let requests = session.request_count();
    drop(session);
    Ok(Traffic {
        requests,
        delivered,
        received,
        seen: b.server.seen(target, requests)?,
    })
}

/// The reference: one plain ureq agent (its connection pool), a bounded Range GET per
/// seek for exactly the bytes read.
fn traffic_plain(
    b: &Bench,
    file: &TestFile,
    target: &str,
    plan: &[(u64, usize)],
) -> Result<Traffic, String> {
    let url = origin_url(&b.server.origin, target)?;
    let agent = plain_agent(None);
    let mut scratch = Vec::new();
    let mut body = Vec::new();
    let mut delivered = 0;
    for &(offset, len) in plan {
        let last = offset + len as u64 - 1;
        let response = agent
            .get(url.as_str())
            .header("Accept-Encoding", "identity")
            .header("Range", format!("bytes={offset}-{last}"))
            .call()
            .map_err(|e| format!("ureq: {e}"))?;
        if response.status().as_u16() != 206 {
            return Err(format!("ureq: HTTP {}, expected 206", response.status()));
        }
        body.clear();
        response
            .into_body()
            .into_reader()
            .read_to_end(&mut body)
            .map_err(|e| e.to_string())?;
        if body.len() != len {
            return Err(format!("ureq: {} of {len} bytes at {offset}", body.len()));
        }
        check_bytes(file.seed, offset, &body, &mut scratch)?;
        delivered += len as u64;
    }
    drop(agent);
    let requests = plan.len() as u64;
    Ok(Traffic {
        requests,
        delivered,
        received: delivered,
        seen: b.server.seen(target, requests)?,
    })
}

/// 5e: what random seeks cost on the wire. `TRAFFIC_SEEKS` seeded seeks over a 4.4 MB
/// file, each followed by a 16–64 KiB read: bytes the session received per byte handed
/// to the reader, and how many requests the server saw open a new connection (nginx's
/// `$connection_requests`, or the std origin's own count).
fn target_traffic(b: &Bench, file: &TestFile) -> Vec<Row> {
    let mut ratio = Row::new(
        "5e",
        format!("{TRAFFIC_SEEKS} random seeks + 16–64 KiB reads: received / delivered"),
        Unit::Times,
        Goal::AtMost(1.3),
    );
    let mut opened = Row::new(
        "5e'",
        format!("{TRAFFIC_SEEKS} random seeks: requests opening a connection"),
        Unit::Percent,
        Goal::AtMost(50.0),
    );
    let mut last = (None, None);
    let mut plain = (Vec::new(), Vec::new());
    for rep in 0..b.config.traffic_reps {
        let plan = traffic_plan(file.size, 0x7ea1 + rep as u64);
        let (mut r_ours, mut r_plain) = (None, None);
        rotate(
            rep,
            &mut [
                &mut || {
                    let target = format!("/{TRAFFIC_FILE}?run=ours-{rep}");
                    r_ours = Some(traffic_ours(b, file, &target, &plan));
                },
                &mut || {
                    let target = format!("/{TRAFFIC_FILE}?run=plain-{rep}");
                    r_plain = Some(traffic_plain(b, file, &target, &plan));
                },
            ],
        );
        match r_ours {
            Some(Ok(t)) => {
                ratio.ours.push(t.ratio());
                opened.ours.push(t.opened_percent());
                last.0 = Some(t);
            }
            Some(Err(e)) => {
                ratio.fail(format!("ours: {e}"));
                opened.fail(format!("ours: {e}"));
            }
            None => {}
        }
        match r_plain {
            Some(Ok(t)) => {
                plain.0.push(t.ratio());
                plain.1.push(t.opened_percent());
                last.1 = Some(t);
            }
            Some(Err(e)) => {
                ratio.fail(format!("plain: {e}"));
                opened.fail(format!("plain: {e}"));
            }
            None => {}
        }
    }
    let mb = |bytes: u64| bytes as f64 / 1e6;
    let source = match b.server.kind {
        ServerKind::Nginx => "nginx access log",
        ServerKind::Std => "std origin's log",
    };
    if let Some(t) = &last.0 {
        let server = t
            .server_bytes()
            .map_or(String::new(), |n| format!(", server sent {:.1} MB", mb(n)));
        ratio.note = format!(
            "last run: {} requests, {:.1} MB delivered, {:.1} MB received{server}",
            t.requests,
            mb(t.delivered),
            mb(t.received)
        );
        opened.note = format!(
            "last run, {source}: {} of {} requests first on their connection, {} connections",
            t.opened(),
            t.seen.len(),
            t.connections()
        );
        if t.seen.len() as u64 != t.requests {
            opened.fail(format!(
                "the server logged {} requests, the session counted {}",
                t.seen.len(),
                t.requests
            ));
        }
    }
    if let Some(t) = &last.1 {
        // The reference sits in the note: the goal is an absolute limit.
        let _ = write!(
            ratio.note,
            "; plain ureq (a bounded Range GET per seek, one agent): {:.2}x",
            median(&plain.0)
        );
        let _ = write!(
            opened.note,
            "; plain ureq: {:.1} % ({} of {})",
            median(&plain.1),
            t.opened(),
            t.seen.len()
        );
    }
    vec![ratio, opened]
}

/// Per-read waits (ms) of `reads` consecutive 4 KiB `read_exact`s from the start of
/// `file`, checked, without the first `LINK_WARMUP_READS` (the steady state only).
fn link_waits(reader: &mut dyn Read, file: &TestFile, reads: usize) -> Result<Vec<f64>, String> {
    let mut buffer = [0u8; SEEK_READ];
    let mut scratch = Vec::new();
    let mut waits = Vec::with_capacity(reads);
    for i in 0..reads {
        let t0 = Instant::now();
        reader
            .read_exact(&mut buffer)
            .map_err(|e| format!("read {i}: {e}"))?;
        waits.push(t0.elapsed().as_secs_f64() * 1e3);
        check_bytes(file.seed, (i * SEEK_READ) as u64, &buffer, &mut scratch)?;
    }
    Ok(waits.split_off(LINK_WARMUP_READS.min(reads)))
}

/// Reads skipped before the slow link's steady state (the bytes that arrived during open).
const LINK_WARMUP_READS: usize = 8;

/// Nearest-rank percentile.
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = (p * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

/// Milliseconds from the instant the origin wrote the first body byte of the response
/// that serves `offset` (received after `since`) to `got`, when the reader had it.
fn first_byte_lag(
    log: &OriginLog,
    since: Instant,
    offset: u64,
    got: Instant,
) -> Result<f64, String> {
    let served = log.since(since);
    let first = served
        .iter()
        .rev()
        .filter(|s| s.start <= offset)
        .find_map(|s| s.first_body_byte)
        .ok_or_else(|| format!("the origin sent no body for the seek to {offset}"))?;
    Ok(got.saturating_duration_since(first).as_secs_f64() * 1e3)
}

/// 8: a slow link. An origin throttled to 2 Mbit/s (token bucket, 1460-byte writes).
/// (a) the reader's wait per 4 KiB `read_exact` in the steady state (p99 of a run)
/// against the link's own pace; (b) after a seek, the time from the origin's first body
/// byte to the reader's first byte.
fn target_slow_link(b: &Bench, main: &TestFile) -> Vec<Row> {
    let pace_ms = SEEK_READ as f64 * 8.0 / LINK_BITS_PER_S * 1e3;
    let mbit = LINK_BITS_PER_S / 1e6;
    let mut wait = Row::new(
        "8a",
        format!("{mbit} Mbit/s link: wait per 4 KiB read (p99)"),
        Unit::Millis,
        Goal::RatioAtMost(1.2),
    );
    wait.ref_label = format!("link pace ({pace_ms:.1} ms per 4 KiB)");
    wait.reference.push(pace_ms);
    let mut wait_plain = Row::new(
        "8a'",
        format!("{mbit} Mbit/s link: plain ureq wait per 4 KiB read (p99)"),
        Unit::Millis,
        Goal::Info,
    );
    wait_plain.ref_label = "link pace".into();
    wait_plain.reference.push(pace_ms);
    let mut lag = Row::new(
        "8b",
        format!("{mbit} Mbit/s link: seek, server's first body byte -> reader"),
        Unit::Millis,
        Goal::AtMost(5.0),
    );
    let mut lag_plain = Row::new(
        "8b'",
        format!("{mbit} Mbit/s link: same, plain ureq Range GET"),
        Unit::Millis,
        Goal::Info,
    );
    let origin = match origin::start(b.www, Shape::link(LINK_BITS_PER_S)) {
        Ok(o) => o,
        Err(e) => {
            wait.fail(e.clone());
            lag.fail(e);
            return vec![wait, wait_plain, lag, lag_plain];
        }
    };
    let url = match origin_url(&origin.origin, &main.name) {
        Ok(u) => u,
        Err(e) => {
            wait.fail(e.clone());
            lag.fail(e);
            return vec![wait, wait_plain, lag, lag_plain];
        }
    };
    let reads = b.config.slow_reads.max(LINK_WARMUP_READS + 1);
    let mut medians = (Vec::new(), Vec::new());
    for rep in 0..b.config.slow_reps {
        let (mut r_ours, mut r_plain) = (None, None);
        rotate(
            rep,
            &mut [
                &mut || {
                    r_ours = Some(
                        open_reader(Who::Ours, &url)
                            .and_then(|mut r| link_waits(&mut *r, main, reads)),
                    )
                },
                &mut || {
                    r_plain = Some(
                        open_reader(Who::Plain, &url)
                            .and_then(|mut r| link_waits(&mut *r, main, reads)),
                    )
                },
            ],
        );
        for (result, row, into) in [
            (r_ours, &mut wait, &mut medians.0),
            (r_plain, &mut wait_plain, &mut medians.1),
        ] {
            match result {
                Some(Ok(waits)) => {
                    row.ours.push(percentile(&waits, 0.99));
                    into.push(median(&waits));
                }
                Some(Err(e)) => row.fail(e),
                None => {}
            }
        }
    }
    wait.note = format!(
        "median wait {:.1} ms, {} reads a run",
        median(&medians.0),
        reads - LINK_WARMUP_READS
    );
    wait_plain.note = format!("median wait {:.1} ms", median(&medians.1));

    let offsets = far_offsets(main.size, b.config.seek_reps + 1, 0x51e0);
    let mut session = match ours_open(&url) {
        Ok(s) => s,
        Err(e) => {
            lag.fail(e);
            return vec![wait, wait_plain, lag, lag_plain];
        }
    };
    let mut head = [0u8; SEEK_READ];
    if let Err(e) = session.read_exact(&mut head) {
        lag.fail(format!("first read: {e}"));
        return vec![wait, wait_plain, lag, lag_plain];
    }
    let log = &origin.log;
    for (rep, &offset) in offsets.iter().enumerate() {
        let (mut r_ours, mut r_plain) = (None, None);
        rotate(
            rep,
            &mut [
                &mut || r_ours = Some(ours_link_lag(&mut session, log, main, offset)),
                &mut || r_plain = Some(plain_link_lag(&url, log, main, offset)),
            ],
        );
        record(&mut lag, rep > 0, r_ours, None);
        record(&mut lag_plain, rep > 0, r_plain, None);
    }
    vec![wait, wait_plain, lag, lag_plain]
}

fn ours_link_lag(
    session: &mut FileSession,
    log: &OriginLog,
    file: &TestFile,
    offset: u64,
) -> Result<f64, String> {
    let mut buffer = [0u8; SEEK_READ];
    let since = Instant::now();
    session
        .seek(SeekFrom::Start(offset))
        .map_err(|e| format!("seek to {offset}: {e}"))?;
    let n = session
        .read(&mut buffer)
        .map_err(|e| format!("read at {offset}: {e}"))?;
    let got = Instant::now();
    if n == 0 {
        return Err(format!("no byte at {offset}"));
    }
    check_bytes(file.seed, offset, &buffer[..n], &mut Vec::new())?;
    first_byte_lag(log, since, offset, got)
}

fn plain_link_lag(url: &Url, log: &OriginLog, file: &TestFile, offset: u64) -> Result<f64, String> {
    let mut buffer = [0u8; SEEK_READ];
    let since = Instant::now();
    let last = offset + SEEK_READ as u64 - 1;
    let mut reader = plain_get(url, Some((offset, last)))?;
    let n = reader.read(&mut buffer).map_err(|e| e.to_string())?;
    let got = Instant::now();
    if n == 0 {
        return Err(format!("no byte at {offset}"));
    }
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).map_err(|e| e.to_string())?;
    check_bytes(file.seed, offset, &buffer[..n], &mut Vec::new())?;
    first_byte_lag(log, since, offset, got)
}

/// 6: anonymous RSS while streaming, measured in a child process.
fn target_memory(b: &Bench, small: &TestFile, large: &TestFile) -> Vec<Row> {
    let mut peak = Row::new(
        "6a",
        format!("RssAnon peak, {} MiB", large.size / MIB),
        Unit::Mib,
        Goal::AtMost(16.0),
    );
    let mut flat = Row::new(
        "6b",
        format!("RssAnon peak, {} MiB", large.size / MIB),
        Unit::Mib,
        Goal::Within(0.10),
    );
    flat.ref_label = format!("{} MiB run", small.size / MIB);
    peak.peak = true;
    flat.peak = true;
    let mut plain = Row::new(
        "6c",
        format!("plain ureq RssAnon peak, {} MiB", large.size / MIB),
        Unit::Mib,
        Goal::Info,
    );
    plain.peak = true;
    for rep in 0..b.config.rss_reps {
        let (mut r_small, mut r_large, mut r_plain) = (None, None, None);
        rotate(
            rep,
            &mut [
                &mut || r_small = Some(rss_child(b, Who::Ours, small)),
                &mut || r_large = Some(rss_child(b, Who::Ours, large)),
                &mut || r_plain = Some(rss_child(b, Who::Plain, large)),
            ],
        );
        record(&mut peak, true, r_large.clone(), None);
        record(&mut flat, true, r_large, r_small);
        record(&mut plain, true, r_plain, None);
    }
    vec![peak, flat, plain]
}

fn rss_child(b: &Bench, who: Who, file: &TestFile) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let url = b.server.url(&file.name);
    let out = Command::new(exe)
        .args([
            "--child-rss",
            match who {
                Who::Ours => "ours",
                Who::Plain => "plain",
            },
            url.as_str(),
            &file.size.to_string(),
            &file.seed.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("child: {e}"))?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        return Err(format!(
            "child failed: {} {}",
            line,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    field(&line, "peak_kib")
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .ok_or_else(|| format!("child output: {line}"))
}

/// The peak of this process's `RssAnon`: a thread samples it every millisecond, and
/// readers call `sample` now and then (the sampler may not get the CPU while they run
/// flat out).
struct PeakSampler {
    base: u64,
    peak: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl PeakSampler {
    fn start() -> PeakSampler {
        let base = rss_anon_kib().unwrap_or(0);
        let peak = Arc::new(AtomicU64::new(base));
        let done = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
            thread::spawn(move || {
                // Bounded: at most ten minutes of 1 ms samples.
                for _ in 0..600_000 {
                    if done.load(Ordering::Acquire) {
                        break;
                    }
                    if let Some(kib) = rss_anon_kib() {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    thread::sleep(Duration::from_millis(1));
                }
            })
        };
        PeakSampler {
            base,
            peak,
            done,
            thread: Some(thread),
        }
    }

    fn sample(peak: &AtomicU64) {
        if let Some(kib) = rss_anon_kib() {
            peak.fetch_max(kib, Ordering::Relaxed);
        }
    }

    /// Stops the sampler: (base, peak) in KiB.
    fn finish(mut self) -> (u64, u64) {
        PeakSampler::sample(&self.peak);
        self.done.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (self.base, self.peak.load(Ordering::Relaxed))
    }
}

/// Reads `reader` (at offset `from`) to the end, checking every byte against the
/// generator from `seed`, sampling the RSS peak every 16 reads. Fails past `size` bytes or
/// short of it.
fn checked_drain(
    reader: &mut dyn Read,
    seed: u64,
    from: u64,
    size: u64,
    peak: &AtomicU64,
) -> Result<(), String> {
    let mut buffer = vec![0u8; BUFFER];
    let mut scratch = vec![0u8; BUFFER];
    let mut total = from;
    let mut reads = 0u64;
    loop {
        let n = reader
            .read(&mut buffer)
            .map_err(|e| format!("read at {total}: {e}"))?;
        if n == 0 {
            break;
        }
        check_bytes(seed, total, &buffer[..n], &mut scratch)?;
        total += n as u64;
        reads += 1;
        if reads.is_multiple_of(16) {
            PeakSampler::sample(peak);
        }
        if total > size {
            return Err("longer than the file".into());
        }
    }
    PeakSampler::sample(peak);
    if total != size {
        return Err(format!("read {total} of {size} bytes"));
    }
    Ok(())
}

/// Prints a child's one-line result, or its error on stderr.
fn child_exit(result: Result<String, String>) -> ExitCode {
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

/// The child side of target 6: stream `url`, check every byte against the generator, and
/// print the RssAnon peak sampled every millisecond during the read.
fn child_rss(args: &[String]) -> ExitCode {
    let run = || -> Result<String, String> {
        let [who, url, size, seed] = args else {
            return Err("--child-rss ours|plain URL SIZE SEED".into());
        };
        let who = if who == "ours" { Who::Ours } else { Who::Plain };
        let url = Url::parse(url).map_err(|e| e.to_string())?;
        let size: u64 = parse_num(size)?;
        let seed: u64 = parse_num(seed)?;
        let sampler = PeakSampler::start();
        // Every run holds a full look-ahead at least once (the issue: "compare runs whose
        // look-ahead was actually full"); a reader that outran the network from the start
        // left the 64 MiB run's peak below it, and 6b compared unlike runs.
        let mut head = vec![0u8; BUFFER];
        let mut reader = open_full(who, &url, &mut head)?;
        check_bytes(seed, 0, &head, &mut Vec::new())?;
        let result = checked_drain(&mut *reader, seed, BUFFER as u64, size, &sampler.peak);
        drop(reader);
        let (base, peak) = sampler.finish();
        result?;
        Ok(format!("peak_kib={peak} base_kib={base} bytes={size}"))
    };
    child_exit(run())
}

/// Opens `url`, reads `head` from its start and, for a session, waits (bounded) until its
/// look-ahead holds the rest of the file or stops growing: every session then holds what
/// its look-ahead allows, whatever the scheduling.
fn open_full(who: Who, url: &Url, head: &mut [u8]) -> Result<Box<dyn Read + Send>, String> {
    let first = |e: io::Error| format!("first read: {e}");
    match who {
        Who::Ours => {
            let mut session = ours_open(url)?;
            session.read_exact(head).map_err(first)?;
            settle(&session, session.byte_len().unwrap_or(0));
            Ok(Box::new(session))
        }
        Who::Plain => {
            let mut reader = plain_get(url, None)?;
            reader.read_exact(head).map_err(first)?;
            Ok(Box::new(reader))
        }
    }
}

/// The child side of 7b/7c: `COUNT` concurrent readers, reader `i` on
/// `ORIGIN/many-{i % NFILES}.bin`. They start together, each opens, reads its first
/// 64 KiB and lets its look-ahead fill, all wait until every one has (so all `COUNT` are
/// open at once, each holding what it may), then read to the end, every byte checked.
/// Prints the RssAnon peak, and what is left above the start once all are closed.
fn child_many(args: &[String]) -> ExitCode {
    let run = || -> Result<String, String> {
        let [who, count, origin, nfiles, size] = args else {
            return Err("--child-many ours|plain COUNT ORIGIN NFILES SIZE".into());
        };
        let who = if who == "ours" { Who::Ours } else { Who::Plain };
        let count = parse_num(count)? as usize;
        let nfiles = parse_num(nfiles)?.max(1) as usize;
        let size = parse_num(size)?;
        let sampler = PeakSampler::start();
        let start = Arc::new(Barrier::new(count + 1));
        let all_open = Arc::new(Barrier::new(count + 1));
        let mut handles = Vec::with_capacity(count);
        for i in 0..count {
            let k = i % nfiles;
            let url = origin_url(origin, &many_name(k))?;
            let (start, all_open) = (Arc::clone(&start), Arc::clone(&all_open));
            let peak = Arc::clone(&sampler.peak);
            let handle = thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || -> Result<(), String> {
                    start.wait();
                    let mut head = vec![0u8; BUFFER.min(size as usize)];
                    let opened = open_full(who, &url, &mut head).and_then(|r| {
                        check_bytes(many_seed(k), 0, &head, &mut Vec::new())?;
                        Ok(r)
                    });
                    // Every reader reaches the barrier, failed or not.
                    all_open.wait();
                    let mut reader = opened.map_err(|e| format!("{url}: {e}"))?;
                    checked_drain(&mut *reader, many_seed(k), head.len() as u64, size, &peak)
                        .map_err(|e| format!("{url}: {e}"))
                })
                .map_err(|e| format!("thread {i}: {e}"))?;
            handles.push(handle);
        }
        start.wait();
        all_open.wait();
        PeakSampler::sample(&sampler.peak);
        let mut first_error = None;
        for handle in handles {
            let result = handle
                .join()
                .unwrap_or_else(|_| Err("reader thread panicked".into()));
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        let (base, peak) = sampler.finish();
        let after = rss_anon_kib().unwrap_or(0);
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(format!(
            "peak_kib={peak} base_kib={base} after_kib={after} sessions={count}"
        ))
    };
    child_exit(run())
}

/// The files of target 7 (and 7b): names and generator seeds.
fn many_name(i: usize) -> String {
    format!("many-{i:02}.bin")
}

fn many_seed(i: usize) -> u64 {
    100 + i as u64
}

/// Runs `--child-many` for `count` readers over `files`: RssAnon KiB per reader at the
/// peak, and KiB left above the start after all closed.
fn many_child(b: &Bench, who: Who, count: usize, files: &[TestFile]) -> Result<(f64, f64), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let size = files.first().map_or(0, |f| f.size);
    let out = Command::new(exe)
        .args([
            "--child-many".to_string(),
            match who {
                Who::Ours => "ours".into(),
                Who::Plain => "plain".into(),
            },
            count.to_string(),
            b.server.origin.clone(),
            files.len().to_string(),
            size.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("child: {e}"))?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        return Err(format!(
            "child failed: {} {}",
            line,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let kib = |key: &str| field(&line, key).and_then(|v| v.parse::<f64>().ok());
    match (kib("peak_kib"), kib("base_kib"), kib("after_kib")) {
        (Some(peak), Some(base), Some(after)) => Ok((
            (peak - base).max(0.0) / count.max(1) as f64,
            (after - base).max(0.0),
        )),
        _ => Err(format!("child output: {line}")),
    }
}

/// 7b/7c: `MANY_MORE` concurrent sessions complete, byte-exact, with memory flat in the
/// number of sessions: RssAnon peak per session, all open at once, against the same at
/// 64 sessions (child processes, like target 6).
fn target_many_memory(b: &Bench, files: &[TestFile]) -> Vec<Row> {
    let few = files.len();
    let mut ours = Row::new(
        "7b",
        format!("{MANY_MORE} sessions: RssAnon peak per session"),
        Unit::Kib,
        Goal::RatioAtMost(1.1),
    );
    ours.ref_label = format!("per session at {few} sessions");
    ours.peak = true;
    let mut plain = Row::new(
        "7c",
        format!("{MANY_MORE} plain ureq readers: RssAnon peak per reader"),
        Unit::Kib,
        Goal::Info,
    );
    plain.ref_label = format!("per reader at {few}");
    plain.peak = true;
    let mut retained = 0.0f64;
    for rep in 0..b.config.rss_reps {
        let (mut r_many, mut r_few, mut p_many, mut p_few) = (None, None, None, None);
        rotate(
            rep,
            &mut [
                &mut || r_many = Some(many_child(b, Who::Ours, MANY_MORE, files)),
                &mut || r_few = Some(many_child(b, Who::Ours, few, files)),
                &mut || p_many = Some(many_child(b, Who::Plain, MANY_MORE, files)),
                &mut || p_few = Some(many_child(b, Who::Plain, few, files)),
            ],
        );
        if let Some(Ok((_, after))) = &r_many {
            retained = retained.max(*after);
        }
        let per = |r: Option<Result<(f64, f64), String>>| r.map(|r| r.map(|(per, _)| per));
        record(&mut ours, true, per(r_many), per(r_few));
        record(&mut plain, true, per(p_many), per(p_few));
    }
    ours.note = format!(
        "{MANY_MORE} x {} MiB, all open at once with full look-aheads, every byte checked; \
         after all closed {:.1} MiB above the start",
        files.first().map_or(0, |f| f.size / MIB),
        retained / 1024.0
    );
    vec![ours, plain]
}

/// 7: many concurrent sessions on different files vs as many plain ureq readers.
fn target_many(b: &Bench, files: &[TestFile]) -> Vec<Row> {
    let mut row = Row::new(
        "7",
        format!(
            "{} sessions x {} MiB, aggregate",
            files.len(),
            files.first().map_or(0, |f| f.size / MIB)
        ),
        Unit::MibPerSec,
        Goal::RatioAtLeast(0.8),
    );
    row.ref_label = format!("{} plain ureq readers", files.len());
    let urls: Vec<Url> = files.iter().map(|f| b.server.url(&f.name)).collect();
    for rep in 0..=b.config.reps {
        let verify = rep == 0;
        let (mut r_ours, mut r_plain) = (None, None);
        rotate(
            rep,
            &mut [
                &mut || r_ours = Some(many(Who::Ours, files, &urls, verify)),
                &mut || r_plain = Some(many(Who::Plain, files, &urls, verify)),
            ],
        );
        record(&mut row, !verify, r_ours, r_plain);
    }
    vec![row]
}

fn many(who: Who, files: &[TestFile], urls: &[Url], verify: bool) -> Result<f64, String> {
    let barrier = Arc::new(Barrier::new(files.len() + 1));
    let handles: Vec<_> = files
        .iter()
        .zip(urls)
        .map(|(file, url)| {
            let (url, barrier) = (url.clone(), Arc::clone(&barrier));
            let (name, size, sha) = (file.name.clone(), file.size, file.sha);
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || -> Result<u64, String> {
                    barrier.wait();
                    let mut reader = open_reader(who, &url)?;
                    let (bytes, digest) = drain(&mut *reader, size, verify)?;
                    if bytes != size || digest.is_some_and(|d| d != sha) {
                        return Err(format!("{name}: bytes differ from the file"));
                    }
                    Ok(bytes)
                })
        })
        .collect();
    barrier.wait();
    let t0 = Instant::now();
    let mut total = 0u64;
    let mut first_error = None;
    for handle in handles {
        match handle.map_err(|e| e.to_string()).and_then(|h| {
            h.join()
                .unwrap_or_else(|_| Err("reader thread panicked".into()))
        }) {
            Ok(bytes) => total += bytes,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    match first_error {
        Some(e) => Err(e),
        None => Ok(total as f64 / MIB as f64 / secs),
    }
}

mod cache_targets {
    //! Targets 2, 3 and 5c: `FileSource::open_with_cache`.
    use super::*;
    use kithara_file::AssetCache;

    fn open_cached(url: &Url, cache: &AssetCache) -> Result<FileSession, String> {
        FileSource::open_with_cache(url.clone(), FileSourceOptions::new(), cache)
            .map_err(|e| format!("open_with_cache: {e}"))
    }

    fn file_sha(path: &Path) -> Result<[u8; 32], String> {
        let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (_, digest) = drain(&mut file, u64::MAX, true)?;
        digest.ok_or_else(|| "no digest".into())
    }

    /// 2: cache-through (a fresh cache each repetition) vs plain ureq.
    pub fn target_cache_through(b: &Bench, main: &TestFile) -> Vec<Row> {
        let url = b.server.url(&main.name);
        let mut row = Row::new(
            "2",
            "seq read, cache-through",
            Unit::MibPerSec,
            Goal::RatioAtLeast(0.85),
        );
        row.ref_label = "plain ureq".into();
        for rep in 0..=b.config.reps {
            let verify = rep == 0;
            let dir = b.work.join(format!("cache-through-{rep}"));
            let mut run_ours = || {
                let result = AssetCache::open(&dir)
                    .map_err(|e| e.to_string())
                    .and_then(|cache| {
                        let mut id = None;
                        let sample = timed_read(main, verify, || {
                            let s = open_cached(&url, &cache)?;
                            id = Some(s.asset_id().clone());
                            Ok(Box::new(s))
                        })?;
                        if verify {
                            let id = id.ok_or("no asset id")?;
                            if file_sha(&cache.body_path(&id))? != main.sha {
                                return Err("the cached body differs from the file".into());
                            }
                        }
                        Ok(sample)
                    });
                let _ = std::fs::remove_dir_all(&dir);
                match result {
                    Ok(s) if !verify => row.ours.push(s.mib_per_s()),
                    Ok(_) => {}
                    Err(e) => row.fail(format!("ours: {e}")),
                }
            };
            let mut plain = None;
            let mut run_plain = || {
                plain = Some(timed_read(main, verify, || open_reader(Who::Plain, &url)));
            };
            rotate(rep, &mut [&mut run_ours, &mut run_plain]);
            match plain {
                Some(Ok(s)) if !verify => row.reference.push(s.mib_per_s()),
                Some(Err(e)) => row.fail(format!("plain: {e}")),
                _ => {}
            }
        }
        vec![row]
    }

    /// Open with the cache, read to the end, check no request went out, drop: MiB/s.
    fn cache_hit_read(
        file: &TestFile,
        verify: bool,
        url: &Url,
        cache: &AssetCache,
    ) -> Result<f64, String> {
        let t0 = Instant::now();
        let mut session = open_cached(url, cache)?;
        let (bytes, digest) = drain(&mut session, file.size, verify)?;
        let requests = session.request_count();
        drop(session);
        let secs = t0.elapsed().as_secs_f64();
        check_whole(file, bytes, digest)?;
        if requests != 0 {
            return Err(format!("a cache hit sent {requests} requests"));
        }
        Ok(bytes as f64 / MIB as f64 / secs)
    }

    /// 3: a complete cached body through `Read` vs a read(2) loop over the same file;
    /// 5c: seeks in a cached session.
    pub fn target_cache_hit(b: &Bench, main: &TestFile) -> Vec<Row> {
        let url = b.server.url(&main.name);
        let mut row = Row::new(
            "3",
            "cache hit (mmap) read",
            Unit::MibPerSec,
            Goal::RatioAtLeast(0.7),
        );
        row.ref_label = "read(2) loop".into();
        let mut seek = Row::new(
            "5c",
            "seek in cached body + 4 KiB",
            Unit::Micros,
            Goal::AtMost(3.0),
        );
        let mut first_touch = Row::new(
            "5c'",
            "the first touch in 5c, alone",
            Unit::Micros,
            Goal::Info,
        );
        let dir = b.work.join("cache-hit");
        let setup = AssetCache::open(&dir)
            .map_err(|e| e.to_string())
            .and_then(|cache| {
                let mut s = open_cached(&url, &cache)?;
                let (bytes, digest) = drain(&mut s, main.size, true)?;
                check_whole(main, bytes, digest)?;
                let id = s.asset_id().clone();
                drop(s);
                let body = cache.body_path(&id);
                if !body.exists() {
                    return Err(format!("no complete body at {}", body.display()));
                }
                Ok((cache, body))
            });
        let (cache, body) = match setup {
            Ok(v) => v,
            Err(e) => {
                row.fail(e.clone());
                seek.fail(e.clone());
                first_touch.fail(e);
                return vec![row, seek, first_touch];
            }
        };
        for rep in 0..=b.config.reps {
            let verify = rep == 0;
            let (mut r_ours, mut r_file) = (None, None);
            rotate(
                rep,
                &mut [
                    &mut || r_ours = Some(cache_hit_read(main, verify, &url, &cache)),
                    &mut || {
                        r_file = Some(
                            timed_read(main, verify, || {
                                let f = std::fs::File::open(&body).map_err(|e| e.to_string())?;
                                Ok(Box::new(f))
                            })
                            .map(|s| s.mib_per_s()),
                        )
                    },
                ],
            );
            record(&mut row, !verify, r_ours, r_file);
        }
        let mut scratch = Vec::new();
        match open_cached(&url, &cache) {
            Ok(mut s) => {
                let offsets = far_offsets(main.size, b.config.seek_reps + 1, 0xcace);
                for (rep, &offset) in offsets.iter().enumerate() {
                    match seek_read(&mut s, main, offset, &mut scratch) {
                        Ok(us) if rep > 0 => seek.ours.push(us),
                        Ok(_) => {}
                        Err(e) => seek.fail(e),
                    }
                }
                if s.request_count() != 0 {
                    seek.fail(format!("{} requests", s.request_count()));
                }
            }
            Err(e) => seek.fail(e),
        }
        fresh_map_reads(&mut first_touch, main, &body, b.config.seek_reps);
        let _ = std::fs::remove_dir_all(&dir);
        vec![row, seek, first_touch]
    }

    /// 5c': the first touch in 5c, alone. A cached session maps its body afresh, so a read
    /// at a new place first faults the page in (the body is in the page cache); this is a
    /// fresh `memmap2` map of the same body, 4 KiB copied from each of 5c's offsets, bytes
    /// checked.
    fn fresh_map_reads(row: &mut Row, main: &TestFile, body: &Path, reps: usize) {
        let map = std::fs::File::open(body).and_then(|file| {
            // SAFETY: the body is a committed cache file that nothing writes or truncates
            // while this run holds the map (the cache dir is the bench's own).
            unsafe { memmap2::Mmap::map(&file) }
        });
        let map = match map {
            Ok(map) => map,
            Err(e) => {
                row.fail(format!("{}: {e}", body.display()));
                return;
            }
        };
        let mut buffer = [0u8; SEEK_READ];
        let mut scratch = Vec::new();
        let offsets = far_offsets(main.size, reps + 1, 0xcace);
        for (rep, &offset) in offsets.iter().enumerate() {
            let at = offset as usize;
            let t0 = Instant::now();
            buffer.copy_from_slice(&map[at..at + SEEK_READ]);
            let us = t0.elapsed().as_secs_f64() * 1e6;
            if let Err(e) = check_bytes(main.seed, offset, &buffer, &mut scratch) {
                row.fail(e);
                break;
            }
            if rep > 0 {
                row.ours.push(us);
            }
        }
        row.note = "no session: memmap2 map of the body, first touch of each offset".into();
    }
}

// ---------------------------------------------------------------------------------------

fn profile(b: &Bench, main: &TestFile, who: Who, n: usize) -> Result<(), String> {
    let url = b.server.url(&main.name);
    // Lengths only: a hash would dominate the profile (the table's runs check it).
    for i in 0..n {
        let s = timed_read(main, false, || open_reader(who, &url))?;
        println!(
            "{who:?} run {i}: {:.0} MiB/s, {:.3} CPU s/GiB, {:.1} context switches/MiB",
            s.mib_per_s(),
            s.cpu_per_gib(),
            s.switches_per_mib()
        );
    }
    Ok(())
}

fn run(config: &Config) -> Result<(), String> {
    let work = tempfile::Builder::new()
        .prefix("kithara-bench-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let www = work.path().join("www");
    std::fs::create_dir_all(&www).map_err(|e| e.to_string())?;

    let t0 = Instant::now();
    let io_err = |e: io::Error| format!("creating test files: {e}");
    let main = make_file(&www, "main.bin", config.main_size, 1).map_err(io_err)?;
    let rss = if config.runs(6) {
        Some((
            make_file(&www, "rss-small.bin", config.rss_small, 2).map_err(io_err)?,
            make_file(&www, "rss-large.bin", config.rss_large, 3).map_err(io_err)?,
        ))
    } else {
        None
    };
    let traffic = if config.runs(5) {
        Some(make_file(&www, TRAFFIC_FILE, TRAFFIC_SIZE, 4).map_err(io_err)?)
    } else {
        None
    };
    let many_files = if config.runs(7) {
        (0..config.many_count)
            .map(|i| make_file(&www, &many_name(i), config.many_size, many_seed(i)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(io_err)?
    } else {
        Vec::new()
    };
    let server = Server::start(config.server, work.path(), &www)?;
    let bench = Bench {
        config,
        server: &server,
        work: work.path(),
        www: &www,
        sd: sd_binary(),
    };
    let header = format!(
        "kithara-file benchmark ({} mode): main file {} MiB, {} repetitions (+1 warm-up \
         that checks bytes), server: {}, stream-download reference: {}; files made in {:.1} s; \
         load average {} on {} CPUs at start",
        if config.quick { "quick" } else { "full" },
        main.size / MIB,
        config.reps,
        server.label(),
        bench
            .sd
            .as_ref()
            .map_or("not built".to_string(), |p| p.display().to_string()),
        t0.elapsed().as_secs_f64(),
        load_average(),
        thread::available_parallelism().map_or(0, |n| n.get()),
    );
    eprintln!("{header}");

    if let Some((who, n)) = config.profile {
        return profile(&bench, &main, who, n);
    }

    let mut rows = Vec::new();
    let mut step = |name: &str, f: &mut dyn FnMut() -> Vec<Row>| {
        let t = Instant::now();
        let new = f();
        eprintln!("  {name}: {:.1} s", t.elapsed().as_secs_f64());
        rows.extend(new);
    };
    if config.runs(1) {
        step("1 sequential", &mut || target_sequential(&bench, &main));
    }
    if config.runs(2) {
        step("2 cache-through", &mut || {
            cache_targets::target_cache_through(&bench, &main)
        });
    }
    if config.runs(3) {
        step("3 cache hit", &mut || {
            cache_targets::target_cache_hit(&bench, &main)
        });
    }
    if config.runs(4) {
        step("4 first byte", &mut || target_first_byte(&bench, &main));
    }
    if config.runs(5) {
        step("5 seeks", &mut || target_seek(&bench, &main));
        step("5d trickling origin", &mut || target_trickle(&bench, &main));
    }
    if let Some(traffic) = &traffic {
        step("5e seek traffic", &mut || target_traffic(&bench, traffic));
    }
    if let Some((small, large)) = &rss {
        step("6 memory", &mut || target_memory(&bench, small, large));
    }
    if !many_files.is_empty() {
        step("7 many sessions", &mut || target_many(&bench, &many_files));
        step("7b flat memory", &mut || {
            target_many_memory(&bench, &many_files)
        });
    }
    if config.runs(8) {
        step("8 slow link", &mut || target_slow_link(&bench, &main));
    }
    // Ids sort into the issue's order (5c, measured with target 3, joins the seeks).
    rows.sort_by(|a, b| a.id.cmp(b.id));
    let total = t0.elapsed().as_secs_f64();
    println!("\n{header}\n");
    print!("{}", text_table(&rows));
    let footer = format!(
        "total {total:.0} s, load average {} at the end",
        load_average()
    );
    println!("\n{footer}");
    if let Some(path) = &config.markdown {
        let md = markdown_table(&rows, &format!("{header}; {footer}"));
        std::fs::write(path, md).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &config.svg {
        let title = format!(
            "kithara-file vs peers: {} run, {} MiB file, {} (one run's samples)",
            if config.quick { "quick" } else { "full" },
            main.size / MIB,
            server.label()
        );
        let (throughput, seeks) = chart_series(&rows);
        chart::write_svg(path, &title, &throughput, &seeks)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The chart's data from the table's rows (a row that failed is left out).
fn chart_series(rows: &[Row]) -> (Vec<chart::Series>, Vec<chart::Series>) {
    let find = |id: &str| rows.iter().find(|r| r.id == id && r.error.is_none());
    let pick = |id: &str, label: &str, reference: bool| {
        find(id).map(|r| {
            let v = if reference { &r.reference } else { &r.ours };
            chart::Series::new(label, v)
        })
    };
    let throughput = [
        pick("1a", "kithara-file", false),
        pick("1a", "plain ureq", true),
        pick("1e", "curl", false),
        pick("1b", "stream-download", true),
    ];
    let seeks = [
        pick("5a", "far seek\nkithara-file", false),
        pick("5a", "far seek\nplain ureq", true),
        pick("5a'", "far seek\nstream-download", false),
        pick("5d", "trickling origin\nkithara-file", false),
        pick("5d", "trickling origin\nplain ureq", true),
        pick("5b", "into history\nkithara-file", false),
        pick("5b'", "into look-ahead\nkithara-file", false),
        pick("5b''", "the wake in 5b'\nalone", false),
        pick("5c", "cached body\nkithara-file", false),
        pick("5c'", "first touch of a\nfresh map, alone", false),
    ];
    (
        throughput.into_iter().flatten().collect(),
        seeks.into_iter().flatten().collect(),
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--child-rss") => return child_rss(&args[1..]),
        Some("--child-many") => return child_many(&args[1..]),
        _ => {}
    }
    let config = match Config::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}
