//! Fault injection of the real sink binary: scripted failures and hangs through
//! `POST /control`, rates and latency from the command line, and how they show in `/stats`.

mod common;

use std::time::{Duration, Instant};

use common::{Sink, post, records};
use pyrogate_testdata::pprof::{Kind, Spec};
use pyrogate_testdata::sdk;

const PUSH: &str = "/push.v1.PusherService/Push";

fn push_request() -> Vec<u8> {
    post(
        PUSH,
        &[
            ("Content-Type", "application/proto"),
            ("Content-Encoding", "gzip"),
        ],
        &sdk::python_push(1).body,
    )
}

fn ingest_request() -> Vec<u8> {
    post(
        "/ingest?format=pprof&name=app",
        &[("Content-Type", "application/octet-stream")],
        &Spec::new(1, Kind::Cpu).gzip(),
    )
}

#[test]
fn fail_next_gives_503_then_200() {
    let sink = Sink::start(&[]);
    let r = sink.control("fail_next=2&status=503&retry_after=1");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["fail_next"], 2);
    let mut c = sink.connect();
    let r = c.request(&push_request());
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    assert_eq!(r.json()["code"], "unavailable");
    let r = c.request(&ingest_request());
    assert_eq!(r.status, 503);
    assert_eq!(
        r.body,
        b"{\"code\":\"unavailable\",\"message\":\"injected fault\"}\n"
    );
    let r = c.request(&push_request());
    assert_eq!(r.status, 200);
    let r = c.request(&ingest_request());
    assert_eq!(r.status, 200);

    let stats = sink.stats(true);
    assert_eq!(stats["injected"]["errors"], 2);
    assert_eq!(stats["routes"]["push"]["rejected"], 1);
    assert_eq!(stats["routes"]["push"]["accepted"], 1);
    let recs = records(&stats);
    assert_eq!(recs[0]["fault"], "error");
    assert_eq!(recs[0]["status"], 503);
    assert!(recs[2]["fault"].is_null());
    // The failed request was still read and checksummed.
    assert_eq!(recs[0]["body_fnv"], recs[2]["body_fnv"]);
}

#[test]
fn always_429_until_reset() {
    let sink = Sink::start(&[]);
    assert_eq!(sink.control("error_rate=1&error_status=429").status, 200);
    let mut c = sink.connect();
    for _ in 0..3 {
        let r = c.request(&push_request());
        assert_eq!(r.status, 429);
        assert_eq!(r.json()["code"], "resource_exhausted");
    }
    // A Connect code alone sets the status from the Connect table.
    assert_eq!(
        sink.control("fail_next=1&connect_code=unauthenticated")
            .status,
        200
    );
    let r = c.request(&push_request());
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["code"], "unauthenticated");
    assert_eq!(sink.control("reset=1").status, 200);
    assert_eq!(c.request(&push_request()).status, 200);
    assert_eq!(sink.stats(false)["status"]["429"], 3);
}

#[test]
fn hang_never_answers_and_others_are_unaffected() {
    let sink = Sink::start(&["--hang-for", "2s", "--workers", "2"]);
    assert_eq!(sink.control("hang_next=1").status, 200);
    let mut hung = sink.connect();
    hung.set_read_timeout(Duration::from_millis(700));
    let started = Instant::now();
    let err = hung.try_request(&push_request()).expect_err("no answer");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    assert!(started.elapsed() >= Duration::from_millis(600));
    // The next request (another connection) is answered at once.
    let started = Instant::now();
    assert_eq!(sink.connect().request(&push_request()).status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    let stats = sink.stats(true);
    assert_eq!(stats["injected"]["hangs"], 1);
    let recs = records(&stats);
    assert_eq!(recs[0]["fault"], "hang");
    assert!(recs[0]["status"].is_null());
    // After --hang-for, the hung request gets a 503 and its connection closes.
    hung.set_read_timeout(Duration::from_secs(5));
    let r = hung.read_response().expect("late answer");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
}

#[test]
fn latency_from_control_and_command_line() {
    let sink = Sink::start(&["--latency", "150ms"]);
    let mut c = sink.connect();
    let t = Instant::now();
    assert_eq!(c.request(&ingest_request()).status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(sink.control("latency_ms=0").status, 200);
    let t = Instant::now();
    assert_eq!(c.request(&ingest_request()).status, 200);
    assert!(
        t.elapsed() < Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    // reset=1 returns to the command-line settings.
    assert_eq!(sink.control("reset=1").json()["latency_ms"], 150);
    let recs = records(&sink.stats(true));
    assert_eq!(recs[0]["delay_ms"], 150);
    assert_eq!(recs[1]["delay_ms"], 0);
    // Stats and control are never delayed.
    let t = Instant::now();
    let _ = sink.stats(false);
    assert!(t.elapsed() < Duration::from_millis(150));
}

#[test]
fn command_line_error_rate() {
    let sink = Sink::start(&["--error-rate", "1", "--error-status", "500"]);
    let r = sink.connect().request(&push_request());
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["code"], "unknown");
    let r = sink.connect().request(&ingest_request());
    assert_eq!(r.status, 500);
}

#[test]
fn bad_control_requests_change_nothing() {
    let sink = Sink::start(&[]);
    for q in [
        "fail_next=1&bogus=1",
        "error_rate=7",
        "status=503",
        "hang_next=x",
        "connect_code=nah&fail_next=1",
    ] {
        let r = sink.control(q);
        assert_eq!(r.status, 400, "{q}");
    }
    let r = sink
        .connect()
        .request(b"GET /control HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    let state = r.json();
    assert_eq!(state["fail_next"], 0);
    assert_eq!(state["hang_next"], 0);
    assert_eq!(state["error_rate"], 0.0);
    assert_eq!(sink.connect().request(&push_request()).status, 200);
}

#[test]
fn invalid_command_line_fails_at_start() {
    let out = std::process::Command::new(common::BIN)
        .args(["sink", "--listen", "127.0.0.1:0", "--hang-rate", "2"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("hang-rate"));
}
