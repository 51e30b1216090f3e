//! Interop with servers nobody here wrote: nginx (Range, sendfile) and Python's
//! `http.server` (no Range). Each test starts its own server on a free loopback port.
//!
//! Without nginx or python3 on the machine the tests print that they were skipped; with
//! `KITHARA_REQUIRE_INTEROP` set (CI sets it) a missing server is a failure.

mod support;

use std::io::{Read, Seek, SeekFrom};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kithara_file::{FileError, FileSource, FileSourceOptions, Url};
use support::model::{run_model, Rng};
use support::pattern;

const MIB: usize = 1024 * 1024;

/// A server process, killed and reaped on drop.
struct External {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl External {
    fn url(&self, name: &str) -> Url {
        format!("http://127.0.0.1:{}/{name}", self.port)
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

fn skip(what: &str) -> Option<External> {
    assert!(
        !required(),
        "{what} is missing and KITHARA_REQUIRE_INTEROP is set"
    );
    println!("skipped: {what} is not installed");
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(10);
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

/// Writes `files` into a fresh web root.
fn web_root(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    for (name, body) in files {
        std::fs::write(dir.path().join("www").join(name), body).unwrap();
    }
    dir
}

fn start_nginx(files: &[(&str, &[u8])]) -> Option<External> {
    let Some(nginx) = find(&["/usr/sbin/nginx", "/usr/local/sbin/nginx"]) else {
        return skip("nginx");
    };
    let dir = web_root(files);
    let port = free_port();
    let d = dir.path().display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {d}/error.log;\n\
         pid {d}/nginx.pid;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log off;\n\
         sendfile on;\n  default_type application/octet-stream;\n  client_body_temp_path {d}/t1;\n\
         proxy_temp_path {d}/t2;\n  fastcgi_temp_path {d}/t3;\n  uwsgi_temp_path {d}/t4;\n\
         scgi_temp_path {d}/t5;\n  server {{ listen 127.0.0.1:{port}; root {d}/www; }}\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let mut command = Command::new(nginx);
    command
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"));
    Some(launch(command, port, dir))
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
        _dir: dir,
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
