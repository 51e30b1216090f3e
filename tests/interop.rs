//! Interop with servers nobody here wrote, each started by its test on a free loopback
//! port in a temp dir: nginx (Range, sendfile; also over https with a CA made at test time),
//! Apache httpd, lighttpd, busybox httpd, node `http-server`, moto's S3 server (through
//! presigned URLs), Python's `http.server` (no Range), and squid as a forward proxy.
//!
//! The https server gets the checks every server family should get: a sequential read
//! (byte-exact, one request), 200 random seeks (every byte compared), a cache round trip
//! (the second open is served with zero requests), a small and an empty file. Each test
//! prints its request counts.
//!
//! Without a server on the machine the test prints `skipped: ...`; with
//! `KITHARA_REQUIRE_INTEROP` set (CI sets it) a missing server is a failure.

mod support;

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kithara_file::{
    AssetCache, FileError, FileEvent, FileSession, FileSource, FileSourceOptions, Url,
};
use support::model::{run_model, Rng};
use support::pattern;

const MIB: usize = 1024 * 1024;

/// A server process, killed and reaped on drop.
struct External {
    child: Child,
    port: u16,
    scheme: &'static str,
    /// Presigned URLs by file name (S3); other servers serve `/<name>`.
    presigned: HashMap<String, Url>,
    dir: tempfile::TempDir,
}

impl External {
    fn url(&self, name: &str) -> Url {
        if let Some(url) = self.presigned.get(name) {
            return url.clone();
        }
        format!("{}://127.0.0.1:{}/{name}", self.scheme, self.port)
            .parse()
            .unwrap()
    }

    fn url_on(&self, port: u16, name: &str) -> Url {
        format!("{}://127.0.0.1:{port}/{name}", self.scheme)
            .parse()
            .unwrap()
    }
}

impl Drop for External {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn required() -> bool {
    std::env::var_os("KITHARA_REQUIRE_INTEROP").is_some()
}

fn skip<T>(what: &str) -> Option<T> {
    assert!(
        !required(),
        "{what} is missing and KITHARA_REQUIRE_INTEROP is set"
    );
    // Straight to the process's stderr: libtest captures `println!`/`eprintln!` of a
    // passing test, and a skip must show in the normal test output.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "interop test skipped: {what} is not installed (KITHARA_REQUIRE_INTEROP=1 makes \
         this a failure)"
    );
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls until something accepts on `port` (bounded; moto's imports are slow on a busy
/// machine), failing at once if the server exits.
fn wait_listening(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the server exited early: {status}");
        }
        assert!(Instant::now() < deadline, "server never listened on {port}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn find(candidates: &[&str]) -> Option<PathBuf> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| {
            let name = Path::new(candidates[0]).file_name()?;
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
}

/// Writes `files` into a fresh web root, readable by servers that drop root (Apache,
/// squid run as their own users), last modified an hour ago like files a server has
/// had for a while: Apache marks the ETag of a file modified within the last second weak
/// and answers `If-Range` with its Last-Modified by a full 200.
fn web_root(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for (name, body) in files {
        let path = dir.path().join("www").join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
    }
    dir
}

/// nginx serving `www` on each `(port, tls)`: plain http, or https with the named
/// certificate and key files in the temp dir.
fn nginx_conf(d: &Path, servers: &[(u16, Option<&str>)]) -> String {
    let d = d.display();
    let mut conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {d}/error.log info;\n\
         pid {d}/nginx.pid;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log off;\n\
         sendfile on;\n  default_type application/octet-stream;\n  client_body_temp_path {d}/t1;\n\
         proxy_temp_path {d}/t2;\n  fastcgi_temp_path {d}/t3;\n  uwsgi_temp_path {d}/t4;\n\
         scgi_temp_path {d}/t5;\n"
    );
    for (port, tls) in servers {
        match tls {
            None => conf += &format!("  server {{ listen 127.0.0.1:{port}; root {d}/www; }}\n"),
            Some(cert) => {
                conf += &format!(
                    "  server {{ listen 127.0.0.1:{port} ssl; root {d}/www;\n    \
                     ssl_certificate {d}/{cert}.crt; ssl_certificate_key {d}/{cert}.key; }}\n"
                )
            }
        }
    }
    conf + "}\n"
}

fn nginx_binary() -> Option<PathBuf> {
    find(&["/usr/sbin/nginx", "/usr/local/sbin/nginx"]).or_else(|| skip("nginx"))
}

fn run_nginx(nginx: PathBuf, dir: tempfile::TempDir, servers: &[(u16, Option<&str>)]) -> External {
    std::fs::write(
        dir.path().join("nginx.conf"),
        nginx_conf(dir.path(), servers),
    )
    .unwrap();
    let mut command = Command::new(nginx);
    command
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"));
    let scheme = if servers[0].1.is_some() {
        "https"
    } else {
        "http"
    };
    let mut server = launch(command, servers[0].0, dir);
    server.scheme = scheme;
    for (port, _) in &servers[1..] {
        wait_listening(*port, &mut server.child);
    }
    server
}

fn start_nginx(files: &[(&str, &[u8])]) -> Option<External> {
    let nginx = nginx_binary()?;
    let dir = web_root(files);
    Some(run_nginx(nginx, dir, &[(free_port(), None)]))
}

/// Starts a server quietly and waits until it listens on `port`.
fn launch(mut command: Command, port: u16, dir: tempfile::TempDir) -> External {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port, &mut child);
    External {
        child,
        port,
        scheme: "http",
        presigned: HashMap::new(),
        dir,
    }
}

fn start_python(files: &[(&str, &[u8])]) -> Option<External> {
    let Some(python) = find(&["/usr/bin/python3", "/usr/local/bin/python3"]) else {
        return skip("python3");
    };
    let dir = web_root(files);
    let port = free_port();
    let mut command = Command::new(python);
    command
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--directory")
        .arg(dir.path().join("www"));
    Some(launch(command, port, dir))
}

/// squid as a forward proxy on loopback: own config, no caching, every request allowed,
/// an access log in its temp dir.
fn start_squid() -> Option<External> {
    let Some(squid) = find(&["/usr/sbin/squid", "/usr/local/sbin/squid"]) else {
        return skip("squid");
    };
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // squid drops root for its own user, which writes the logs here.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let port = free_port();
    let d = dir.path().display();
    let conf = format!(
        "http_port 127.0.0.1:{port}\npid_filename {d}/squid.pid\n\
         access_log stdio:{d}/access.log\ncache_log {d}/cache.log\ncache_store_log none\n\
         cache deny all\ncoredump_dir {d}\nhttp_access allow all\n\
         shutdown_lifetime 0 seconds\npinger_enable off\nnetdb_filename none\n\
         visible_hostname kithara-test\n"
    );
    std::fs::write(dir.path().join("squid.conf"), conf).unwrap();
    let mut command = Command::new(squid);
    command
        .arg("-N")
        .arg("-f")
        .arg(dir.path().join("squid.conf"));
    Some(launch(command, port, dir))
}

/// A test CA and leaf certificates (EC P-256) made with the `openssl` CLI in `dir`:
/// `good` for 127.0.0.1, `wrong-name` for another host, `expired` for 127.0.0.1 but past
/// its end date. Returns the CA's PEM.
fn make_certificates(dir: &Path) -> Option<Vec<u8>> {
    let Some(openssl) = find(&["/usr/bin/openssl", "/usr/local/bin/openssl"]) else {
        return skip("openssl");
    };
    let run = |args: &[&str]| {
        let out = Command::new(&openssl)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &key,
        &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"],
        &["-subj", "/CN=kithara-file test CA"],
        &["-addext", "basicConstraints=critical,CA:TRUE"],
        &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    ]
    .concat());
    for (serial, (name, san, days)) in [
        ("good", "IP:127.0.0.1,DNS:localhost", "2"),
        ("wrong-name", "DNS:wrong-name.example", "2"),
        ("expired", "IP:127.0.0.1,DNS:localhost", "-1"),
    ]
    .into_iter()
    .enumerate()
    {
        let ext = format!(
            "subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        );
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        let (key_file, csr, crt, ext_file) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        run(&[
            &["req", "-new"][..],
            &key,
            &["-keyout", &key_file, "-out", &csr],
            &["-subj", "/CN=kithara-file test server"],
        ]
        .concat());
        let serial = (serial + 2).to_string();
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            &serial,
            "-out",
            &crt,
            "-days",
            days,
            "-extfile",
            &ext_file,
        ]);
    }
    Some(std::fs::read(dir.join("ca.crt")).unwrap())
}

/// nginx over https with certificates made now: the first port serves `good`, then
/// `wrong-name` and `expired`. Returns the server, the CA's PEM and the two other ports.
fn start_nginx_https(files: &[(&str, &[u8])]) -> Option<(External, Vec<u8>, u16, u16)> {
    let nginx = nginx_binary()?;
    let dir = web_root(files);
    let ca = make_certificates(dir.path())?;
    let (good, wrong, expired) = (free_port(), free_port(), free_port());
    let server = run_nginx(
        nginx,
        dir,
        &[
            (good, Some("good")),
            (wrong, Some("wrong-name")),
            (expired, Some("expired")),
        ],
    );
    Some((server, ca, wrong, expired))
}

// ---------------------------------------------------------------------------
// The checks every server family gets
// ---------------------------------------------------------------------------

/// The files every server serves: a big one for reads and seeks, a small and an empty one.
struct Files {
    big: Vec<u8>,
    small: Vec<u8>,
}

impl Files {
    fn new(seed: u64) -> Files {
        Files {
            big: pattern(6 * MIB + 17, seed),
            small: pattern(1000, seed + 1),
        }
    }

    fn list(&self) -> Vec<(&str, &[u8])> {
        vec![
            ("big.mp3", &self.big),
            ("small.mp3", &self.small),
            ("empty.mp3", &[]),
        ]
    }
}

fn read_all(session: &mut FileSession) -> Vec<u8> {
    let mut got = Vec::new();
    session.read_to_end(&mut got).unwrap();
    got
}

/// Reads `url` whole: the length is known up front, the bytes are the file's, Range is
/// honoured, and it took one request. Returns the request count.
fn sequential(url: Url, body: &[u8], options: &FileSourceOptions) -> u64 {
    let shown = url.path().to_string();
    let retries = Arc::new(std::sync::Mutex::new(Vec::new()));
    let causes = retries.clone();
    let options = options.clone().with_events(move |event| {
        if let FileEvent::Retrying { cause, .. } = event {
            causes.lock().unwrap().push(cause);
        }
    });
    let mut session = FileSource::open(url, options).unwrap();
    assert_eq!(session.byte_len(), Some(body.len() as u64), "{shown}");
    assert!(read_all(&mut session) == body, "{shown}: bytes differ");
    assert!(session.is_seekable(), "{shown}: the server honours Range");
    assert_eq!(
        session.request_count(),
        1,
        "{shown}: a sequential read; retries: {:?}",
        retries.lock().unwrap()
    );
    session.request_count()
}

/// `seeks` seeded random seeks (from the start, the end and the current position), each
/// followed by a read of up to 64 KiB whose every byte is compared; a read at the end must
/// be `Ok(0)`. Returns the session's request count.
fn random_seeks(
    url: Url,
    body: &[u8],
    options: &FileSourceOptions,
    seed: u64,
    seeks: usize,
) -> u64 {
    let size = body.len() as u64;
    let mut session = FileSource::open(url, options.clone()).unwrap();
    let mut rng = Rng(seed);
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(90);
    for i in 0..seeks {
        assert!(
            Instant::now() < deadline,
            "seed {seed}: seek {i} past the deadline"
        );
        let target = rng.below(size + 1);
        let from = match rng.below(3) {
            0 => SeekFrom::Start(target),
            1 => SeekFrom::End(target as i64 - size as i64),
            _ => SeekFrom::Current(target as i64 - session.position() as i64),
        };
        let position = session.seek(from).unwrap();
        assert_eq!(position, target, "seed {seed} seek {i}: {from:?}");
        let want = rng.below(buf.len() as u64) as usize + 1;
        let expect = want.min((size - position) as usize);
        let mut got = 0;
        // Each read returns at least one byte until `expect`, so this ends.
        while got < expect {
            let n = session.read(&mut buf[got..expect]).unwrap();
            assert!(
                n > 0,
                "seed {seed} seek {i}: Ok(0) at {}",
                position + got as u64
            );
            got += n;
        }
        let at = position as usize;
        assert!(
            buf[..expect] == body[at..at + expect],
            "seed {seed} seek {i}: bytes at {position} differ"
        );
        if expect < want {
            assert_eq!(
                session.read(&mut buf).unwrap(),
                0,
                "seed {seed}: Ok(0) at the end"
            );
        }
    }
    session.request_count()
}

/// The driver commits after it hands out the last chunk; wait for that, bounded.
fn wait_cached(session: &FileSession) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !session.is_cached() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// Streams `url` through a fresh cache, then opens it again: served from the cache with
/// zero requests, byte-exact. Returns the request counts of both opens.
fn cache_round_trip(url: Url, body: &[u8], options: &FileSourceOptions) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let cache = AssetCache::open(dir.path()).unwrap();
    // A key, so presigned URLs (a new query each time) find their entry.
    let options = options.clone().with_cache_key(url.path());
    let mut first = FileSource::open_with_cache(url.clone(), options.clone(), &cache).unwrap();
    assert!(read_all(&mut first) == body, "first read through the cache");
    assert!(
        wait_cached(&first),
        "the body was never committed to the cache"
    );
    let first_requests = first.request_count();
    drop(first);
    let mut second = FileSource::open_with_cache(url, options.with_max_retries(0), &cache).unwrap();
    assert!(second.is_cached(), "the second open is served by the cache");
    assert!(read_all(&mut second) == body, "cached bytes");
    assert_eq!(second.request_count(), 0, "a cached body needs no request");
    (first_requests, second.request_count())
}

/// A 0-byte file opens with a known length of 0 and reads `Ok(0)` at once.
fn empty_file(url: Url, options: &FileSourceOptions) -> u64 {
    let shown = url.path().to_string();
    let mut session = FileSource::open(url, options.clone())
        .unwrap_or_else(|e| panic!("{shown}: an empty file must open: {e}"));
    assert_eq!(session.byte_len(), Some(0), "{shown}");
    assert_eq!(session.read(&mut [0u8; 16]).unwrap(), 0, "{shown}: Ok(0)");
    session.request_count()
}

/// Sequential read, 200 random seeks and the small file on `server`; prints the counts.
/// Returns the report line so far for the caller to extend.
fn common_checks(
    label: &str,
    server: &External,
    files: &Files,
    options: &FileSourceOptions,
) -> String {
    let started = Instant::now();
    let seq = sequential(server.url("big.mp3"), &files.big, options);
    let seeks = random_seeks(server.url("big.mp3"), &files.big, options, 0x5eed, 200);
    let small = sequential(server.url("small.mp3"), &files.small, options);
    format!(
        "interop {label}: sequential {seq} request, 200 seeks {seeks} requests, \
         small file {small} request ({:.1} s)",
        started.elapsed().as_secs_f64()
    )
}

fn cache_report(requests: (u64, u64)) -> String {
    format!(", cache {} + {} requests", requests.0, requests.1)
}

#[test]
fn nginx_sequential_reads_are_byte_exact() {
    let big = pattern(24 * MIB + 17, 1);
    let small = pattern(1000, 2);
    let Some(server) = start_nginx(&[("big.bin", &big), ("small.bin", &small), ("empty", &[])])
    else {
        return;
    };
    for (name, body) in [
        ("big.bin", &big[..]),
        ("small.bin", &small[..]),
        ("empty", &[][..]),
    ] {
        let mut session = FileSource::open(server.url(name), FileSourceOptions::new()).unwrap();
        assert_eq!(session.byte_len(), Some(body.len() as u64), "{name}");
        let mut got = Vec::new();
        session.read_to_end(&mut got).unwrap();
        assert!(got == body, "{name}: bytes differ");
        if !body.is_empty() {
            assert!(session.is_seekable(), "nginx honours Range");
            assert_eq!(session.request_count(), 1, "{name}");
        }
    }
}

#[test]
fn nginx_random_seeks_match_the_file() {
    let body = pattern(8 * MIB + 3, 3);
    let Some(server) = start_nginx(&[("f.bin", &body)]) else {
        return;
    };
    for seed in [11, 12] {
        let mut session = FileSource::open(server.url("f.bin"), FileSourceOptions::new()).unwrap();
        run_model(&mut session, &body, seed, 700);
    }
    let err = FileSource::open(server.url("missing"), FileSourceOptions::new()).unwrap_err();
    assert!(
        matches!(err, FileError::HttpStatus { status: 404, .. }),
        "{err:?}"
    );
}

#[test]
fn python_http_server_without_range_is_read_byte_exact() {
    let body = pattern(12 * MIB + 5, 4);
    let Some(server) = start_python(&[("f.bin", &body)]) else {
        return;
    };
    let mut session = FileSource::open(server.url("f.bin"), FileSourceOptions::new()).unwrap();
    assert!(!session.is_seekable(), "http.server ignores Range");
    let mut got = Vec::new();
    session.read_to_end(&mut got).unwrap();
    assert!(got == body);
}

#[test]
fn python_http_server_random_forward_seeks_and_held_backward_seeks() {
    let body = pattern(10 * MIB + 7, 5);
    let Some(server) = start_python(&[("f.bin", &body)]) else {
        return;
    };
    let size = body.len() as u64;
    let mut session = FileSource::open(server.url("f.bin"), FileSourceOptions::new()).unwrap();
    let mut rng = Rng(77);
    let mut position = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let mut refused = 0;
    for op in 0..600 {
        match rng.below(4) {
            0 | 1 => {
                let len = rng.below(buf.len() as u64) as usize + 1;
                let n = session.read(&mut buf[..len]).unwrap();
                let at = position as usize;
                assert!(buf[..n] == body[at..at + n], "op {op}: bytes at {position}");
                assert!(n > 0 || position == size, "op {op}: early EOF");
                position += n as u64;
            }
            2 => {
                let target = (position + rng.below(300_000)).min(size);
                position = session.seek(SeekFrom::Start(target)).unwrap();
            }
            _ => {
                let back = rng.below(400_000).min(position);
                match session.seek(SeekFrom::Current(-(back as i64))) {
                    Ok(p) => position = p,
                    Err(e) => {
                        let err = e.get_ref().unwrap().downcast_ref::<FileError>().unwrap();
                        assert_eq!(err, &FileError::SeekNotSupported, "op {op}");
                        assert_eq!(session.position(), position, "a refused seek moved");
                        refused += 1;
                    }
                }
            }
        }
    }
    // Reading past the held bytes after the body ended takes a fresh full response,
    // skipped to the position: a few requests, each checked against the validators.
    println!(
        "python http.server: {refused} backward seeks outside the held bytes refused, {} requests",
        session.request_count()
    );
    assert!(
        refused > 0,
        "the run never tried a seek that cannot be served"
    );
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

#[test]
fn nginx_https_with_a_trusted_private_ca() {
    let files = Files::new(31);
    let Some((server, ca, _, _)) = start_nginx_https(&files.list()) else {
        return;
    };
    let err = FileSource::open(
        server.url("small.mp3"),
        FileSourceOptions::new().with_root_certificate("not a certificate"),
    )
    .unwrap_err();
    assert!(matches!(err, FileError::InvalidOptions(_)), "{err:?}");

    // Repeatable: the same CA twice is harmless.
    let options = FileSourceOptions::new()
        .with_root_certificate(&ca)
        .with_root_certificate(&ca);
    let mut line = common_checks("nginx https", &server, &files, &options);
    line += &cache_report(cache_round_trip(
        server.url("big.mp3"),
        &files.big,
        &options,
    ));
    line += &format!(
        ", empty file {} request",
        empty_file(server.url("empty.mp3"), &options)
    );
    println!("{line}");
}

/// Handshakes nginx saw fail (its error log at `info` has one line per failed handshake),
/// once at least `expected` are logged (bounded wait).
fn failed_handshakes(server: &External, expected: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = std::fs::read_to_string(server.dir.path().join("error.log")).unwrap();
        let count = log
            .lines()
            .filter(|l| l.contains("SSL_do_handshake() failed"))
            .count();
        if count >= expected || Instant::now() > deadline {
            return count;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn nginx_https_certificate_failures_are_fatal_at_once_and_say_why() {
    let files = Files::new(32);
    let Some((server, ca, wrong, expired)) = start_nginx_https(&files.list()) else {
        return;
    };
    let trusted = FileSourceOptions::new().with_root_certificate(&ca);
    let cases = [
        (
            "untrusted CA",
            server.url("small.mp3"),
            FileSourceOptions::new(),
            "unknown issuer",
        ),
        (
            "name mismatch",
            server.url_on(wrong, "small.mp3"),
            trusted.clone(),
            "name mismatch",
        ),
        (
            "expired",
            server.url_on(expired, "small.mp3"),
            trusted,
            "expired",
        ),
    ];
    for (n, (label, url, options, words)) in cases.into_iter().enumerate() {
        let retries = Arc::new(AtomicU32::new(0));
        let counter = retries.clone();
        // A retry would first wait a whole second.
        let options = options
            .with_max_retries(5)
            .with_retry_delay(Duration::from_secs(1), Duration::from_secs(2))
            .with_events(move |event| {
                if matches!(event, FileEvent::Retrying { .. }) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
        let started = Instant::now();
        let err = FileSource::open(url, options).unwrap_err();
        let elapsed = started.elapsed();
        let message = err.to_string();
        assert!(matches!(err, FileError::Network(_)), "{label}: {err:?}");
        assert!(message.contains("certificate"), "{label}: {message}");
        assert!(message.contains(words), "{label}: {message}");
        assert!(message.contains("rustls"), "{label}: {message}");
        assert_eq!(retries.load(Ordering::Relaxed), 0, "{label}: retried");
        assert!(
            elapsed < Duration::from_millis(800),
            "{label}: took {elapsed:?}"
        );
        assert_eq!(
            failed_handshakes(&server, n + 1),
            n + 1,
            "{label}: one attempt"
        );
        println!(
            "interop nginx https {label}: failed in {:.1} ms after 1 handshake, 0 retries: {message}",
            elapsed.as_secs_f64() * 1000.0
        );
    }
}

// ---------------------------------------------------------------------------
// Proxy
// ---------------------------------------------------------------------------

/// squid's access log: `(tunnels, bytes)` of the `CONNECT` tunnels to `port`, once their
/// bytes reach `min_bytes` (squid logs a tunnel when it closes; bounded wait).
fn squid_tunnels(squid: &External, port: u16, min_bytes: u64) -> (usize, u64) {
    let target = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(squid.dir.path().join("access.log")).unwrap_or_default();
        let tunnels: Vec<u64> = log
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .filter(|f| {
                f.len() > 6 && f[3] == "TCP_TUNNEL/200" && f[5] == "CONNECT" && f[6] == target
            })
            .map(|f| f[4].parse::<u64>().unwrap())
            .collect();
        let bytes = tunnels.iter().sum();
        if bytes >= min_bytes || Instant::now() > deadline {
            return (tunnels.len(), bytes);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A whole read, a seek into the middle and one near the end, every byte compared.
fn read_and_seek(session: &mut FileSession, body: &[u8]) {
    assert_eq!(session.byte_len(), Some(body.len() as u64));
    assert!(read_all(session) == body);
    let middle = body.len() / 3;
    session.seek(SeekFrom::Start(middle as u64)).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    session.read_exact(&mut buf).unwrap();
    assert!(buf[..] == body[middle..middle + buf.len()]);
    session.seek(SeekFrom::End(-1000)).unwrap();
    assert!(read_all(session)[..] == body[body.len() - 1000..]);
}

#[test]
fn squid_forward_proxy_carries_whole_sessions_http_and_https() {
    let files = Files::new(41);
    let Some(origin) = start_nginx(&files.list()) else {
        return;
    };
    let Some((tls_origin, ca, _, _)) = start_nginx_https(&files.list()) else {
        return;
    };
    let Some(squid) = start_squid() else {
        return;
    };
    let proxy: Url = format!("http://127.0.0.1:{}", squid.port).parse().unwrap();
    let options = FileSourceOptions::new().with_proxy(proxy);

    let mut session = FileSource::open(origin.url("big.mp3"), options.clone()).unwrap();
    read_and_seek(&mut session, &files.big);
    let http_requests = session.request_count();
    drop(session);

    let mut session = FileSource::open(
        tls_origin.url("big.mp3"),
        options.clone().with_root_certificate(&ca),
    )
    .unwrap();
    read_and_seek(&mut session, &files.big);
    let https_requests = session.request_count();
    drop(session);

    // Credentials in the proxy URL (squid here asks for none and ignores them) are never shown.
    let with_credentials: Url = format!("http://kithara-user:hunter2@127.0.0.1:{}", squid.port)
        .parse()
        .unwrap();
    let options = FileSourceOptions::new().with_proxy(with_credentials);
    assert!(!format!("{options:?}").contains("hunter2"));
    let mut session = FileSource::open(origin.url("small.mp3"), options).unwrap();
    assert!(read_all(&mut session) == files.small);
    assert!(!format!("{session:?}").contains("hunter2"));
    drop(session);

    // ureq tunnels every origin through CONNECT; squid logs each tunnel when it closes.
    let min = (files.big.len() + files.small.len()) as u64;
    let (http_tunnels, http_bytes) = squid_tunnels(&squid, origin.port, min);
    assert!(http_bytes >= min, "squid carried {http_bytes} bytes");
    assert!(
        (1..=http_requests as usize + 1).contains(&http_tunnels),
        "{http_tunnels} tunnels for {http_requests} + 1 requests"
    );
    let (https_tunnels, https_bytes) =
        squid_tunnels(&squid, tls_origin.port, files.big.len() as u64);
    assert!(
        https_bytes >= files.big.len() as u64,
        "squid carried {https_bytes} bytes"
    );
    assert!((1..=https_requests as usize).contains(&https_tunnels));
    println!(
        "interop squid proxy: http origin {http_requests} + 1 requests in {http_tunnels} CONNECT \
         tunnels ({http_bytes} bytes), https origin {https_requests} requests in \
         {https_tunnels} tunnels ({https_bytes} bytes)"
    );

    // A proxy that is not there: the error says so without its credentials.
    let dead: Url = format!("http://kithara-user:hunter2@127.0.0.1:{}", free_port())
        .parse()
        .unwrap();
    let err = FileSource::open(
        origin.url("small.mp3"),
        FileSourceOptions::new()
            .with_proxy(dead)
            .with_max_retries(0),
    )
    .unwrap_err();
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(
            !shown.contains("hunter2") && !shown.contains("kithara-user"),
            "{shown}"
        );
    }
}

/// Set in the child process of `proxy_from_the_environment`: the URL to read.
const ENV_CHILD_URL: &str = "KITHARA_TEST_ENV_PROXY_URL";
const ENV_CHILD_LEN: &str = "KITHARA_TEST_ENV_PROXY_LEN";

#[test]
fn proxy_from_the_environment() {
    // The child: no `with_proxy`; the environment decides.
    if let Ok(url) = std::env::var(ENV_CHILD_URL) {
        let expected: usize = std::env::var(ENV_CHILD_LEN).unwrap().parse().unwrap();
        let options = FileSourceOptions::new().with_max_retries(0);
        let mut session = FileSource::open(url.parse().unwrap(), options).unwrap();
        assert_eq!(read_all(&mut session).len(), expected);
        return;
    }
    let files = Files::new(42);
    let Some(origin) = start_nginx(&files.list()) else {
        return;
    };
    let Some(squid) = start_squid() else {
        return;
    };
    // Each case runs this test again in a child process with its own environment, so no
    // other test of this process sees the variables.
    let child = |env: &[(&str, String)]| {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["proxy_from_the_environment", "--exact", "--nocapture"])
            .env(ENV_CHILD_URL, origin.url("small.mp3").as_str())
            .env(ENV_CHILD_LEN, files.small.len().to_string());
        for name in [
            "ALL_PROXY",
            "all_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "NO_PROXY",
            "no_proxy",
        ] {
            command.env_remove(name);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let out = command.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let squid_url = format!("http://127.0.0.1:{}", squid.port);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (ok, out) = child(&[("HTTP_PROXY", squid_url.clone())]);
    assert!(ok, "through HTTP_PROXY: {out}");
    let (tunnels, _) = squid_tunnels(&squid, origin.port, files.small.len() as u64);
    assert_eq!(tunnels, 1, "the child's request went through squid");
    let (ok, out) = child(&[("ALL_PROXY", squid_url)]);
    assert!(ok, "through ALL_PROXY: {out}");
    let (ok, out) = child(&[("HTTP_PROXY", dead.clone())]);
    assert!(
        !ok && out.contains("Network"),
        "a dead HTTP_PROXY is used: {out}"
    );
    let (ok, out) = child(&[("HTTP_PROXY", dead), ("NO_PROXY", "127.0.0.1".into())]);
    assert!(ok, "NO_PROXY exempts the host: {out}");
    let (tunnels, _) = squid_tunnels(&squid, origin.port, 2 * files.small.len() as u64);
    assert_eq!(
        tunnels, 2,
        "only the HTTP_PROXY and ALL_PROXY children used squid"
    );
    println!(
        "interop squid from the environment: HTTP_PROXY and ALL_PROXY used, NO_PROXY honoured"
    );
}

// ---------------------------------------------------------------------------
// More server families: Apache httpd, lighttpd, busybox httpd, node http-server and an
// S3-compatible store (moto) through presigned URLs. Each gets the same checks (a
// sequential read, 200 seeded seeks, a small file, a cache round trip, an empty file),
// byte-exact against the file, with the requests each check took as the session counted
// them and as the server logged them.
// ---------------------------------------------------------------------------

/// Where `.ci/run` installs what Debian does not package: `.ci/node` (npm) and `.ci/venv`
/// (pip).
fn ci_dir(rest: &str) -> String {
    format!("{}/.ci/{rest}", env!("CARGO_MANIFEST_DIR"))
}

/// Starts a server whose stdout and stderr go to `server.log` in its temp dir (node and
/// moto log each request there) and waits until it listens on `port`.
fn launch_logged(mut command: Command, port: u16, dir: tempfile::TempDir) -> External {
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    let mut child = command.spawn().unwrap();
    wait_listening(port, &mut child);
    External {
        child,
        port,
        scheme: "http",
        presigned: HashMap::new(),
        dir,
    }
}

/// How a server logs one request for `path`: the log file in its temp dir and the text a
/// line has for it.
struct RequestLog {
    file: &'static str,
    line: fn(&str) -> String,
}

/// Requests for `path` in the server's log, once at least `expected` are there (servers
/// write their log after the response; bounded wait).
fn logged(server: &External, log: &RequestLog, path: &str, expected: usize) -> usize {
    let needle = (log.line)(path);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(server.dir.path().join(log.file)).unwrap_or_default();
        let count = text.lines().filter(|l| l.contains(&needle)).count();
        if count >= expected || Instant::now() > deadline {
            return count;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One row of the interop table.
struct Row {
    check: &'static str,
    session: u64,
    server_log: Option<usize>,
}

/// Runs `check` and counts what the server logged for `url` meanwhile; the log must show
/// exactly the requests the session counted.
fn counted(
    server: &External,
    log: Option<&RequestLog>,
    url: &Url,
    check: &'static str,
    run: impl FnOnce() -> u64,
) -> Row {
    let path = url.path().to_string();
    let before = log.map(|log| logged(server, log, &path, 0));
    let session = run();
    let server_log = log
        .zip(before)
        .map(|(log, before)| logged(server, log, &path, before + session as usize) - before);
    if let Some(n) = server_log {
        assert_eq!(
            n as u64, session,
            "{check}: the server logged {n} requests for {path}, the session counted {session}"
        );
    }
    Row {
        check,
        session,
        server_log,
    }
}

/// The checks of this section on `server`; prints one table row per check.
fn family_checks(
    label: &str,
    server: &External,
    log: Option<&RequestLog>,
    files: &Files,
    options: &FileSourceOptions,
) -> Vec<Row> {
    let started = Instant::now();
    let (big, small, empty) = (
        server.url("big.mp3"),
        server.url("small.mp3"),
        server.url("empty.mp3"),
    );
    let rows = vec![
        counted(server, log, &big, "sequential read", || {
            sequential(big.clone(), &files.big, options)
        }),
        counted(server, log, &big, "200 random seeks", || {
            random_seeks(big.clone(), &files.big, options, 0x5eed, 200)
        }),
        counted(server, log, &small, "small file", || {
            sequential(small.clone(), &files.small, options)
        }),
        counted(server, log, &big, "cache round trip (reopen: 0)", || {
            let (first, second) = cache_round_trip(big.clone(), &files.big, options);
            first + second
        }),
        counted(server, log, &empty, "empty file", || {
            empty_file(empty.clone(), options)
        }),
    ];
    for row in &rows {
        let logged = row
            .server_log
            .map_or("not logged".to_string(), |n| n.to_string());
        println!(
            "interop | {label} | {} | session {} requests | server log {logged} | byte-exact yes",
            row.check, row.session
        );
    }
    println!(
        "interop | {label} | all checks in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    rows
}

/// One raw `GET` of `url` with `Range: range`: the status and the response headers
/// (names lowercased). Only the head is read.
fn raw_get(url: &Url, range: &str) -> (u16, Vec<(String, String)>) {
    let port = url.port().unwrap();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    };
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nRange: {range}\r\n\
         Accept-Encoding: identity\r\nConnection: close\r\n\r\n"
    );
    std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 64 * 1024, "a response head of 64 KiB");
        match stream.read(&mut byte).unwrap() {
            0 => break,
            _ => head.push(byte[0]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Pins the issue's finding on `server`: `bytes=0-` on its empty file is a `416` without
/// `Content-Range`, and the library still opens it as a 0-byte file.
fn pin_empty_416(label: &str, server: &External, options: &FileSourceOptions) {
    let url = server.url("empty.mp3");
    let (status, headers) = raw_get(&url, "bytes=0-");
    assert_eq!(
        status, 416,
        "{label}: bytes=0- on an empty file: {headers:?}"
    );
    assert_eq!(
        header(&headers, "content-range"),
        None,
        "{label}: the finding is a 416 without Content-Range"
    );
    assert_eq!(empty_file(url, options), 1, "{label}: one request");
    println!(
        "interop | {label} | pin: bytes=0- on the empty file is 416 without Content-Range; \
         opened as 0 bytes"
    );
}

// ----- Apache httpd ---------------------------------------------------------

const APACHE_LOG: RequestLog = RequestLog {
    file: "access.log",
    line: |path| format!("GET {path} HTTP/1.1"),
};

/// Apache in one process (`-X`), event MPM, its own config: the web root, an access log
/// of request lines, `.mp3` as `audio/mpeg`.
fn start_apache(files: &[(&str, &[u8])]) -> Option<External> {
    let Some(apache) = find(&[
        "/usr/sbin/apache2",
        "/usr/sbin/httpd",
        "/usr/local/sbin/httpd",
    ]) else {
        return skip("apache2");
    };
    let modules = ["/usr/lib/apache2/modules", "/usr/lib64/httpd/modules"]
        .into_iter()
        .find(|d| Path::new(d).join("mod_mpm_event.so").is_file())
        .expect("apache's modules (mod_mpm_event.so)");
    let dir = web_root(files);
    let port = free_port();
    let d = dir.path().display();
    let conf = format!(
        "ServerRoot {d}\nListen 127.0.0.1:{port}\nServerName 127.0.0.1\n\
         LoadModule mpm_event_module {modules}/mod_mpm_event.so\n\
         LoadModule authz_core_module {modules}/mod_authz_core.so\n\
         LoadModule mime_module {modules}/mod_mime.so\n\
         PidFile {d}/apache.pid\nDefaultRuntimeDir {d}\nMutex file:{d} default\n\
         ErrorLog {d}/error.log\nLogFormat \"%r %>s %b\" kithara\nCustomLog {d}/access.log kithara\n\
         TypesConfig /dev/null\nAddType audio/mpeg .mp3\nUser #65534\nGroup #65534\nDocumentRoot {d}/www\n\
         <Directory {d}/www>\n  Require all granted\n</Directory>\n"
    );
    std::fs::write(dir.path().join("apache.conf"), conf).unwrap();
    let mut command = Command::new(apache);
    command
        .arg("-X")
        .arg("-f")
        .arg(dir.path().join("apache.conf"));
    Some(launch(command, port, dir))
}

#[test]
fn apache_httpd_reads_seeks_and_caches_byte_exact() {
    let files = Files::new(51);
    let Some(server) = start_apache(&files.list()) else {
        return;
    };
    family_checks(
        "apache httpd",
        &server,
        Some(&APACHE_LOG),
        &files,
        &FileSourceOptions::new(),
    );
}

// ----- lighttpd -------------------------------------------------------------

const LIGHTTPD_LOG: RequestLog = RequestLog {
    file: "access.log",
    line: |path| format!("\"GET {path} HTTP/1.1\""),
};

/// lighttpd buffers a log file's lines (up to 8 KiB, flushed every 4 s, so 25 lines were
/// still unwritten after a 5 s wait on a busy CI machine), but writes every line at once to a
/// piped logger: the log goes through `cat`.
fn start_lighttpd(files: &[(&str, &[u8])]) -> Option<External> {
    let Some(lighttpd) = find(&["/usr/sbin/lighttpd", "/usr/local/sbin/lighttpd"]) else {
        return skip("lighttpd");
    };
    let dir = web_root(files);
    let port = free_port();
    let d = dir.path().display();
    let conf = format!(
        "server.document-root = \"{d}/www\"\nserver.bind = \"127.0.0.1\"\nserver.port = {port}\n\
         server.errorlog = \"{d}/error.log\"\nserver.modules = ( \"mod_accesslog\" )\n\
         accesslog.filename = \"|/bin/cat >> {d}/access.log\"\n\
         mimetype.assign = ( \".mp3\" => \"audio/mpeg\" )\n"
    );
    std::fs::write(dir.path().join("lighttpd.conf"), conf).unwrap();
    let mut command = Command::new(lighttpd);
    command
        .arg("-D")
        .arg("-f")
        .arg(dir.path().join("lighttpd.conf"));
    Some(launch(command, port, dir))
}

#[test]
fn lighttpd_reads_seeks_and_caches_byte_exact() {
    let files = Files::new(52);
    let Some(server) = start_lighttpd(&files.list()) else {
        return;
    };
    family_checks(
        "lighttpd",
        &server,
        Some(&LIGHTTPD_LOG),
        &files,
        &FileSourceOptions::new(),
    );
}

// ----- busybox httpd --------------------------------------------------------

const BUSYBOX_LOG: RequestLog = RequestLog {
    file: "server.log",
    line: |path| format!("url:{path}"),
};

/// busybox httpd in the foreground with an empty config (no `/etc/httpd.conf`); `-vv`
/// logs a `url:` and a `response:` line a request on stderr (`-v` alone logs none).
fn start_busybox(files: &[(&str, &[u8])]) -> Option<External> {
    let Some(busybox) = find(&["/usr/bin/busybox", "/bin/busybox", "/usr/local/bin/busybox"])
    else {
        return skip("busybox");
    };
    let dir = web_root(files);
    std::fs::write(dir.path().join("httpd.conf"), "").unwrap();
    let port = free_port();
    let mut command = Command::new(busybox);
    command
        .args([
            "httpd",
            "-f",
            "-vv",
            "-p",
            &format!("127.0.0.1:{port}"),
            "-h",
        ])
        .arg(dir.path().join("www"))
        .arg("-c")
        .arg(dir.path().join("httpd.conf"));
    Some(launch_logged(command, port, dir))
}

#[test]
fn busybox_httpd_reads_seeks_and_caches_its_text_html_206() {
    let files = Files::new(53);
    let Some(server) = start_busybox(&files.list()) else {
        return;
    };
    // The finding: every 206 says text/html, a plain GET of the same file says audio/mpeg.
    let small = server.url("small.mp3");
    let (status, headers) = raw_get(&small, "bytes=0-");
    assert_eq!(status, 206, "{headers:?}");
    assert_eq!(header(&headers, "content-range"), Some("bytes 0-999/1000"));
    let label = header(&headers, "content-type")
        .unwrap_or_default()
        .to_string();
    assert!(label.starts_with("text/html"), "{headers:?}");
    let (status, headers) = raw_get(&small, "none=0-");
    println!(
        "interop | busybox httpd | pin: a 206 says Content-Type: {label}, a {status} says {}",
        header(&headers, "content-type").unwrap_or("nothing")
    );

    // The session does not report the 206's label as the file's type.
    let session = FileSource::open(small, FileSourceOptions::new()).unwrap();
    assert_eq!(
        session.content_type(),
        None,
        "text/html on a 206 is not trusted"
    );
    drop(session);
    // The cache round trip in the checks is the pin that a 206 labelled text/html is cached.
    family_checks(
        "busybox httpd",
        &server,
        Some(&BUSYBOX_LOG),
        &files,
        &FileSourceOptions::new(),
    );
    // Every answer for the big file was such a 206 (the log pairs `url:` and `response:`
    // lines by client address): the cached body came from them.
    let log = std::fs::read_to_string(server.dir.path().join("server.log")).unwrap();
    let mut urls = HashMap::new();
    let mut big = 0;
    for line in log.lines() {
        let Some((client, what)) = line.rsplit_once(": ") else {
            continue;
        };
        if let Some(url) = what.strip_prefix("url:") {
            urls.insert(client.to_string(), url.to_string());
        } else if let Some(status) = what.strip_prefix("response:") {
            if urls.get(client).map(String::as_str) == Some("/big.mp3") {
                assert_eq!(status, "206", "{client}: a whole-file answer");
                big += 1;
            }
        }
    }
    assert!(big > 200, "{big} answers for the big file");
}

// ----- node http-server -----------------------------------------------------

const NODE_LOG: RequestLog = RequestLog {
    file: "server.log",
    line: |path| format!("\"GET {path}\" \""),
};

/// node `http-server` (npm, installed by `.ci/run` into `.ci/node`): no cache headers,
/// no directory listings, a log line a request on stdout.
fn start_node_http_server(files: &[(&str, &[u8])]) -> Option<External> {
    let local = ci_dir("node/node_modules/.bin/http-server");
    let Some(http_server) = find(&[local.as_str()]) else {
        return skip("node http-server (npm install --prefix .ci/node http-server)");
    };
    if find(&["/usr/bin/node", "/usr/local/bin/node"]).is_none() {
        return skip("node");
    }
    let dir = web_root(files);
    let port = free_port();
    let mut command = Command::new(http_server);
    command.arg(dir.path().join("www")).args([
        "-a",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-c-1",
        "-d",
        "false",
    ]);
    Some(launch_logged(command, port, dir))
}

#[test]
fn node_http_server_reads_seeks_caches_and_opens_an_empty_file() {
    let files = Files::new(54);
    let Some(server) = start_node_http_server(&files.list()) else {
        return;
    };
    pin_empty_416("node http-server", &server, &FileSourceOptions::new());
    family_checks(
        "node http-server",
        &server,
        Some(&NODE_LOG),
        &files,
        &FileSourceOptions::new(),
    );
}

// ----- S3 (moto) ------------------------------------------------------------

const MOTO_LOG: RequestLog = RequestLog {
    file: "server.log",
    line: |path| format!("GET {path}?"),
};

/// Uploads every file of the web root to a bucket with boto3 and prints one
/// `name presigned-GET-URL` line per file (path-style, SigV4, an hour).
const MOTO_UPLOAD: &str = r#"
import os, sys, boto3
from botocore.config import Config
endpoint, root = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing",
                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
s3.create_bucket(Bucket="kithara")
for name in sorted(os.listdir(root)):
    with open(os.path.join(root, name), "rb") as f:
        s3.put_object(Bucket="kithara", Key=name, Body=f.read(), ContentType="audio/mpeg")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "kithara", "Key": name},
                                    ExpiresIn=3600)
    print(name, url)
"#;

/// moto's S3 server (pip, installed by `.ci/run` into `.ci/venv`) with the files
/// uploaded; `url(name)` is the file's presigned GET URL.
fn start_moto(files: &[(&str, &[u8])]) -> Option<External> {
    let (local_server, local_python) = (ci_dir("venv/bin/moto_server"), ci_dir("venv/bin/python"));
    let Some(moto) = find(&[local_server.as_str()]) else {
        return skip("moto (pip install 'moto[server]' boto3 into .ci/venv)");
    };
    // boto3 lives beside moto_server.
    let python = moto.with_file_name("python");
    let python = if python.is_file() {
        python
    } else {
        PathBuf::from(local_python)
    };
    let dir = web_root(files);
    let port = free_port();
    let mut command = Command::new(moto);
    command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    let mut server = launch_logged(command, port, dir);
    let out = Command::new(python)
        .arg("-c")
        .arg(MOTO_UPLOAD)
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(server.dir.path().join("www"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the boto3 upload: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (name, url) = line.split_once(' ').unwrap();
        server
            .presigned
            .insert(name.to_string(), url.parse().unwrap());
    }
    assert_eq!(server.presigned.len(), files.len(), "presigned URLs");
    Some(server)
}

#[test]
fn s3_moto_presigned_urls_read_seek_cache_and_open_an_empty_object() {
    let files = Files::new(55);
    let Some(server) = start_moto(&files.list()) else {
        return;
    };
    let url = server.url("big.mp3");
    assert!(
        url.query().is_some_and(|q| q.contains("X-Amz-Signature=")),
        "a presigned URL: {url}"
    );
    // The signature never shows in what the session prints.
    let session = FileSource::open(url.clone(), FileSourceOptions::new()).unwrap();
    let signature = url
        .query_pairs()
        .find(|(k, _)| k == "X-Amz-Signature")
        .unwrap()
        .1
        .into_owned();
    assert!(!format!("{session:?}").contains(&signature));
    drop(session);
    pin_empty_416("s3 moto", &server, &FileSourceOptions::new());
    family_checks(
        "s3 moto (presigned)",
        &server,
        Some(&MOTO_LOG),
        &files,
        &FileSourceOptions::new(),
    );
}
