//! No secret leaks (issue 10): a token planted in the URL (userinfo and a signed query), in
//! a secret header and in a credential header never shows in anything the crate produces
//! during a faulty session (redirect, 503, stall, a 500 that never recovers): errors'
//! `Display` and `Debug`, events, the session's and options' `Debug`, and its `log` lines at
//! `trace` level. Secrets never follow a redirect to another origin either.

mod support;

use std::io::{Read, Seek, SeekFrom};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use kithara_file::{FileError, FileEvent, FileSource, FileSourceOptions, Url};
use support::{pattern, Fault, TestServer};

const MIB: usize = 1024 * 1024;
const TOKEN: &str = "SECRET";

/// Every log line of this test binary: the crate's kept, others only counted.
struct Capture {
    ours: Mutex<Vec<String>>,
    /// Lines of other crates (ureq) that contain the token: reported, not asserted, since
    /// the crate cannot change what its dependencies log at `trace`.
    others_with_token: Mutex<Vec<String>>,
}

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        if record.target().starts_with("kithara_file") {
            self.ours.lock().unwrap().push(line);
        } else if line.contains(TOKEN) {
            let mut others = self.others_with_token.lock().unwrap();
            if others.len() < 5 {
                others.push(line);
            }
        }
    }

    fn flush(&self) {}
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture {
            ours: Mutex::new(Vec::new()),
            others_with_token: Mutex::new(Vec::new()),
        }));
        log::set_logger(capture).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Trace);
        capture
    })
}

#[test]
fn a_planted_token_never_shows_in_anything_the_crate_produces() {
    let capture = capture();
    let origin = TestServer::start();
    let cdn = TestServer::start();
    let body = pattern(4 * MIB, 1);
    cdn.add_file("/real.mp3", body.clone());
    // The origin redirects to a signed CDN URL; its Location carries the token too.
    let signed = format!(
        "{}?X-Amz-Signature={TOKEN}&X-Amz-Credential={TOKEN}",
        cdn.url("/real.mp3")
    );
    origin.set_default_fault(
        "/track",
        Fault::Redirect {
            status: 302,
            location: signed,
        },
    );
    // A 503 first, then a body that stalls after 20 000 bytes.
    cdn.push_faults(
        "/real.mp3",
        [
            Fault::Status {
                code: 503,
                retry_after: Some("0".into()),
                body: format!("<html>{TOKEN}</html>").into_bytes(),
            },
            Fault::StallAfter(20_000, Duration::from_secs(30)),
        ],
    );

    let (events_tx, events_rx) = crossbeam_channel::unbounded::<FileEvent>();
    let options = FileSourceOptions::new()
        .with_look_ahead(64 * 1024)
        .with_read_timeout(Duration::from_millis(300))
        .with_retry_delay(Duration::from_millis(5), Duration::from_millis(50))
        .with_max_retries(2)
        .with_secret_header("X-Token", format!("{TOKEN}2"))
        .with_header("Authorization", format!("Bearer {TOKEN}3"))
        .with_header("X-Api-Key", format!("{TOKEN}4"))
        .with_cache_key(format!("{TOKEN}5"))
        .with_events(move |event| {
            let _ = events_tx.send(event);
        });
    let address: Url = origin
        .url("/track")
        .replace("http://", &format!("http://alice:{TOKEN}@"))
        .replace("/track", &format!("/track?sig={TOKEN}"))
        .parse()
        .unwrap();

    let mut shown: Vec<String> = vec![format!("{options:?}")];
    let mut session = FileSource::open(address.clone(), options.clone()).unwrap();
    shown.push(format!("{session:?}"));
    shown.push(format!("{:?}", session.stream()));
    shown.extend(session.content_type());

    // Through the stall (resumed at the signed URL).
    let mut got = vec![0; 100_000];
    session.read_exact(&mut got).unwrap();
    assert!(got == body[..100_000]);
    assert!(
        session.retry_count() >= 2,
        "the 503 and the stall were retried"
    );

    // A 500 that never recovers.
    cdn.set_default_fault(
        "/real.mp3",
        Fault::Status {
            code: 500,
            retry_after: None,
            body: format!("<html>{TOKEN}</html>").into_bytes(),
        },
    );
    session.seek(SeekFrom::Start(3 * MIB as u64)).unwrap();
    let err = session.read(&mut [0; 10]).unwrap_err();
    let file_error = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<FileError>())
        .cloned()
        .unwrap();
    assert!(
        matches!(file_error, FileError::HttpStatus { status: 500, .. }),
        "{file_error:?}"
    );
    shown.extend([
        err.to_string(),
        format!("{err:?}"),
        file_error.to_string(),
        format!("{file_error:?}"),
        format!("{session:?}"),
    ]);
    // An open that fails outright.
    let missing: Url = address
        .as_str()
        .replace("/track", "/missing")
        .parse()
        .unwrap();
    let open_err = FileSource::open(missing, options.clone()).unwrap_err();
    shown.extend([open_err.to_string(), format!("{open_err:?}")]);
    drop(session);

    let events: Vec<FileEvent> = events_rx.try_iter().collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, FileEvent::Retrying { .. })),
        "{events:?}"
    );
    assert!(events.iter().any(|e| matches!(e, FileEvent::Error(_))));
    shown.extend(events.iter().map(|e| format!("{e:?}")));
    let logged = capture.ours.lock().unwrap().clone();
    // The bench's dev-dependency caps `log` at info in release builds (`cargo test
    // --release` compiles the debug lines out); the CI's debug build keeps them.
    if log::STATIC_MAX_LEVEL >= log::LevelFilter::Debug {
        assert!(
            logged.iter().any(|l| l.contains("retry")),
            "the crate logged its retries: {logged:?}"
        );
    }
    shown.extend(logged);

    for text in &shown {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
        assert!(!text.contains("alice"), "userinfo leaked: {text}");
    }
    // What was shown still says where: the redacted URLs.
    assert!(
        shown.iter().any(|t| t.contains("/real.mp3?…")),
        "the signed URL shows as redacted"
    );
    println!(
        "{} strings checked ({} events, {} log lines of the crate)",
        shown.len(),
        events.len(),
        capture.ours.lock().unwrap().len()
    );
    let others = capture.others_with_token.lock().unwrap();
    if !others.is_empty() {
        println!(
            "note: other crates' trace lines show the token (not the crate's to change), e.g. {:?}",
            others.first()
        );
    }

    // The credentials went to the origin only, never to the CDN it redirected to.
    assert!(origin
        .requests()
        .iter()
        .all(|r| r.header("x-token") == Some("SECRET2")
            && r.header("authorization") == Some("Bearer SECRET3")));
    let to_cdn = cdn.requests();
    assert!(to_cdn.len() >= 3);
    for request in &to_cdn {
        for name in ["x-token", "authorization", "x-api-key"] {
            assert_eq!(request.header(name), None, "{name} followed the redirect");
        }
    }
}
