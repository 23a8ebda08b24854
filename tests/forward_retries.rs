//! Forwarding, when destinations misbehave: Alloy's retry matrix (docs/alloy-compat.md §9–§11, §15),
//! `Retry-After`, ack policies with a failing or slow destination, the timeout chain
//! (pyrogate → pyrogate → a destination that hangs), answering before the caller's deadline,
//! and bounded memory while a destination is down under load.

mod common;
mod sinks;

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Conn, Gateway};
use sinks::Sink;

const WAIT: Duration = Duration::from_secs(10);
const PUSH: &str = "/push.v1.PusherService/Push";
const INGEST: &str = "/ingest?name=retry.app.cpu&format=pprof";

fn pprof() -> Vec<u8> {
    common::cpu_pprof_gz()
}

fn push_body() -> Vec<u8> {
    common::push_gzip()
}

const PUSH_HEADERS: [(&str, &str); 2] = [
    ("Content-Type", "application/proto"),
    ("Content-Encoding", "gzip"),
];

/// A config file with one `[[endpoint]]` per URL; `endpoint_extra` is added to each block.
fn config(urls: &[String], top: &str, endpoint_extra: &str) -> PathBuf {
    let mut s = format!("{top}\n");
    for u in urls {
        s.push_str(&format!("[[endpoint]]\nurl = \"{u}\"\n{endpoint_extra}\n"));
    }
    common::write_temp("forward.toml", &s)
}

const FAST_BACKOFF: &str = "min_backoff_period = \"10ms\"\nmax_backoff_period = \"50ms\"";

fn start(urls: &[String], top: &str, endpoint_extra: &str) -> Gateway {
    let path = config(urls, top, endpoint_extra);
    Gateway::start(&[
        "--workers",
        "2",
        "--config",
        path.to_str().unwrap_or_default(),
    ])
}

fn requests_at(s: &Sink) -> usize {
    s.records().len()
}

/// Waits a moment for stray retries, then returns the settled request count.
fn settled(s: &Sink) -> usize {
    std::thread::sleep(Duration::from_millis(300));
    requests_at(s)
}

fn ep(s: &Sink) -> (&'static str, String) {
    ("endpoint", s.url())
}

#[test]
fn ingest_400_is_not_retried_and_is_relayed() {
    let s = Sink::start(&[]);
    let gw = start(&[s.url()], "", FAST_BACKOFF);
    s.control("fail_next=1&status=400&message=I+don%27t+like+your+profile");
    let r = gw.request("POST", INGEST, &[], &pprof());
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert_eq!(
        r.body_str(),
        "Bad Request\n",
        "Alloy relays the status with Go's text"
    );
    assert_eq!(settled(&s), 1, "a 400 is not retried");
    let m = gw.metrics();
    let (k, v) = ep(&s);
    assert_eq!(m.value("pyroscope_write_retries_total", &[(k, &v)]), 0.0);
    assert_eq!(
        m.value("pyroscope_write_dropped_profiles_total", &[(k, &v)]),
        1.0
    );
    assert!(gw.stderr().contains("status=400 msg="), "failure logged");
}

#[test]
fn ingest_503_then_200_is_retried_once() {
    let s = Sink::start(&[]);
    let gw = start(&[s.url()], "", FAST_BACKOFF);
    s.control("fail_next=1&status=503");
    let body = pprof();
    let r = gw.request("POST", INGEST, &[], &body);
    assert_eq!(r.status, 200, "{}", r.body_str());
    let recs = s.records();
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(recs[0]["status"], 503);
    assert_eq!(recs[1]["status"], 200);
    assert_eq!(
        recs[0]["body_fnv"], recs[1]["body_fnv"],
        "the same bytes re-sent"
    );
    let m = gw.metrics();
    let (k, v) = ep(&s);
    assert_eq!(m.value("pyroscope_write_retries_total", &[(k, &v)]), 1.0);
    assert_eq!(
        m.value("pyroscope_write_sent_profiles_total", &[(k, &v)]),
        1.0
    );
    assert_eq!(
        m.value("pyroscope_write_sent_bytes_total", &[(k, &v)]),
        body.len() as f64
    );
}

#[test]
fn retry_exhaustion_counts_attempts() {
    let s = Sink::start(&[]);
    let gw = start(
        &[s.url()],
        "",
        &format!("{FAST_BACKOFF}\nmax_backoff_retries = 3"),
    );
    s.control("error_rate=1&error_status=503");
    let r = gw.request("POST", INGEST, &[], &pprof());
    assert_eq!(r.status, 503, "the last downstream status is relayed");
    assert_eq!(settled(&s), 3, "max_backoff_retries = total attempts");
    s.reset();
    s.control("error_rate=1&error_status=503");
    let r = gw.request("POST", PUSH, &PUSH_HEADERS, &push_body());
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["code"], "unavailable", "{}", r.body_str());
    assert!(r.body_str().contains("(3 retries)"), "{}", r.body_str());
    assert_eq!(settled(&s), 3);
    let m = gw.metrics();
    let (k, v) = ep(&s);
    assert_eq!(m.value("pyroscope_write_retries_total", &[(k, &v)]), 4.0);
    assert_eq!(
        m.value("pyroscope_write_dropped_profiles_total", &[(k, &v)]),
        2.0
    );
}

#[test]
fn http_429_follows_the_flag() {
    for (flag, attempts) in [("false", 1), ("true", 3)] {
        let s = Sink::start(&[]);
        let gw = start(
            &[s.url()],
            "",
            &format!("{FAST_BACKOFF}\nmax_backoff_retries = 3\nretry_on_http_429 = {flag}"),
        );
        s.control("error_rate=1&error_status=429");
        let r = gw.request("POST", INGEST, &[], &pprof());
        assert_eq!(r.status, 429, "flag {flag}");
        assert_eq!(settled(&s), attempts, "/ingest, retry_on_http_429 = {flag}");
        // Push: a Connect resource_exhausted follows the same flag.
        s.reset();
        s.control("error_rate=1&error_status=429");
        let r = gw.request("POST", PUSH, &PUSH_HEADERS, &push_body());
        assert_eq!(settled(&s), attempts, "Push, retry_on_http_429 = {flag}");
        if flag == "false" {
            assert_eq!(r.status, 429);
            assert_eq!(r.json()["code"], "resource_exhausted", "{}", r.body_str());
        } else {
            assert_eq!(r.json()["code"], "unavailable", "{}", r.body_str());
        }
    }
}

#[test]
fn push_permanent_error_keeps_its_connect_code() {
    let s = Sink::start(&[]);
    let gw = start(&[s.url()], "", FAST_BACKOFF);
    s.control("fail_next=1&connect_code=invalid_argument&message=bad+profile");
    let r = gw.request("POST", PUSH, &PUSH_HEADERS, &push_body());
    assert_eq!(r.status, 400, "{}", r.body_str());
    let j = r.json();
    assert_eq!(
        j["code"], "invalid_argument",
        "not Alloy's blanket internal"
    );
    assert!(
        j["message"]
            .as_str()
            .unwrap_or_default()
            .contains("bad profile"),
        "{j}"
    );
    assert_eq!(settled(&s), 1);
}

#[test]
fn retry_after_is_honoured() {
    let s = Sink::start(&[]);
    let gw = start(
        &[s.url()],
        "",
        "min_backoff_period = \"10ms\"\nmax_backoff_period = \"5s\"",
    );
    s.control("fail_next=1&status=503&retry_after=1");
    let t0 = Instant::now();
    let r = gw.request("POST", INGEST, &[], &pprof());
    assert_eq!(r.status, 200);
    let recs = s.records();
    assert_eq!(recs.len(), 2);
    let gap = recs[1]["at_ms"].as_u64().unwrap_or(0) - recs[0]["at_ms"].as_u64().unwrap_or(0);
    assert!(gap >= 900, "waited {gap} ms, Retry-After said 1 s");
    assert!(t0.elapsed() < Duration::from_secs(4));
}

#[test]
fn one_failing_destination_fails_the_request() {
    let ok = Sink::start(&[]);
    let bad = Sink::start(&[]);
    let gw = start(&[ok.url(), bad.url()], "", FAST_BACKOFF);
    bad.control("error_rate=1&error_status=400");
    let r = gw.request("POST", INGEST, &[], &pprof());
    assert_eq!(
        r.status, 400,
        "ack = all: a failed destination fails the request"
    );
    assert_eq!(
        ok.wait_records(1, WAIT)[0]["status"],
        200,
        "the healthy one still got it"
    );
    assert_eq!(settled(&bad), 1);
}

fn timed_ingest(gw: &Gateway) -> (u16, Duration) {
    let t0 = Instant::now();
    let r = gw.request("POST", INGEST, &[], &pprof());
    (r.status, t0.elapsed())
}

#[test]
fn slow_destination_holds_the_caller_only_as_the_ack_policy_says() {
    let fast1 = Sink::start(&[]);
    let fast2 = Sink::start(&[]);
    let slow = Sink::start(&["--latency", "2s"]);
    let urls = [fast1.url(), fast2.url(), slow.url()];
    // quorum: 2 of 3 suffice, the slow one finishes in the background.
    let gw = start(&urls, "[forward]\nack = \"quorum\"", "");
    let (st, took) = timed_ingest(&gw);
    assert_eq!(st, 200);
    assert!(
        took < Duration::from_millis(1500),
        "quorum answered after {took:?}"
    );
    assert_eq!(
        slow.wait_records(1, WAIT)[0]["status"],
        200,
        "slow one delivered too"
    );
    drop(gw);
    // enqueue: answered as soon as queued.
    let gw = start(&urls, "[forward]\nack = \"enqueue\"", "");
    let (st, took) = timed_ingest(&gw);
    assert_eq!(st, 200);
    assert!(
        took < Duration::from_millis(1000),
        "enqueue answered after {took:?}"
    );
    assert_eq!(
        sinks::Sink::wait_records(&slow, 2, WAIT).len(),
        2,
        "enqueued profile delivered"
    );
    drop(gw);
    // all (Alloy): waits for the slow destination.
    let gw = start(&urls, "", "");
    let (st, took) = timed_ingest(&gw);
    assert_eq!(st, 200);
    assert!(
        took >= Duration::from_millis(1900),
        "all answered after {took:?}"
    );
}

/// Sends a Push with the caller's own deadline; returns the response and the time taken.
fn push_with_timeout(gw: &Gateway, ms: u64) -> (common::Response, Duration) {
    let mut c = Conn::connect(gw.addr).expect("connect");
    let t0 = Instant::now();
    let timeout = ms.to_string();
    c.send_request(
        "POST",
        PUSH,
        &[
            ("Content-Type", "application/proto"),
            ("Content-Encoding", "gzip"),
            ("Connect-Timeout-Ms", &timeout),
        ],
        &push_body(),
    )
    .expect("send");
    let r = c
        .read_final_response(Duration::from_millis(ms + 5000))
        .expect("response");
    (r, t0.elapsed())
}

#[test]
fn timeout_chain_retries_inside_the_first_callers_budget() {
    // client --6s--> pyrogate A --> pyrogate B --> sink whose first request hangs.
    // Alloy here: B's attempt inherits the whole budget, so B and the client time out
    // together. pyrogate: B's first attempt gets part of the budget, B retries, A and the
    // client succeed.
    let sink = Sink::start(&["--hang-for", "20s"]);
    let b = start(
        &[sink.url()],
        "",
        "min_backoff_period = \"100ms\"\nmax_backoff_period = \"200ms\"",
    );
    let a = start(&[format!("http://{}", b.addr)], "", "");
    sink.control("hang_next=1");
    let (r, took) = push_with_timeout(&a, 6000);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert!(
        took < Duration::from_millis(6000),
        "answered after {took:?}"
    );
    let recs = sink.records();
    assert_eq!(
        recs.len(),
        2,
        "one hung attempt, one successful retry: {recs:?}"
    );
    assert_eq!(recs[1]["status"], 200);
    // Each hop passed a shrinking budget downstream.
    let budget = |r: &serde_json::Value| -> u64 {
        sinks::header(r, "connect-timeout-ms")
            .first()
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    };
    assert!(budget(&recs[0]) < 6000, "{}", recs[0]);
    assert!(budget(&recs[1]) < budget(&recs[0]));
}

#[test]
fn caller_is_answered_before_its_deadline_with_a_retryable_code() {
    let sink = Sink::start(&["--hang-rate", "1", "--hang-for", "20s"]);
    let gw = start(&[sink.url()], "", FAST_BACKOFF);
    let (r, took) = push_with_timeout(&gw, 1500);
    assert!(
        took < Duration::from_millis(1500),
        "answered after {took:?}"
    );
    assert_eq!(r.status, 503, "{}", r.body_str());
    assert_eq!(r.json()["code"], "unavailable");
}

#[test]
fn memory_stays_bounded_while_a_destination_is_down() {
    // Nothing listens at the destination: every delivery fails and is retried for minutes,
    // holding its bytes. The per-destination budget (4 MiB) must shed the excess with 429.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let gw = start(
        &[format!("http://{dead}")],
        "[forward]\nack = \"enqueue\"\nqueue_max_bytes = \"4MiB\"",
        "min_backoff_period = \"1s\"\nmax_backoff_period = \"2s\"\nmax_backoff_retries = 0",
    );
    let body = vec![0x5au8; 64 * 1024];
    let rss_before = gw.rss_kib();
    let mut shed = 0;
    let mut accepted = 0;
    let mut conn = gw.connect();
    for _ in 0..600 {
        let r = conn
            .request("POST", INGEST, &[], &body)
            .expect("request answered");
        match r.status {
            200 => accepted += 1,
            429 => {
                assert_eq!(r.header("Retry-After"), Some("1"));
                shed += 1;
            }
            s => panic!("unexpected status {s}: {}", r.body_str()),
        }
    }
    let m = gw.metrics();
    let queued = m.sum("pyrogate_forward_queue_bytes");
    let rss_after = gw.rss_kib();
    assert!(shed > 500, "excess shed: accepted {accepted}, shed {shed}");
    assert!(
        accepted >= 60,
        "the budget holds ~64 profiles: accepted {accepted}"
    );
    assert!(queued <= (4 << 20) as f64 + 65536.0, "queued {queued}");
    assert!(
        rss_after < rss_before + 24 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB after 37 MiB of uploads"
    );
    assert!(m.sum("pyrogate_forward_shed_total") >= shed as f64);
}

#[test]
fn gzip_sniffing_pprof_is_untouched_downstream() {
    // The body is never inflated on /ingest, even with Content-Encoding: gzip.
    let s = Sink::start(&[]);
    let gw = start(&[s.url()], "", "");
    let gz = pprof();
    let r = gw.request("POST", INGEST, &[("Content-Encoding", "gzip")], &gz);
    assert_eq!(r.status, 200);
    let rec = &s.wait_records(1, WAIT)[0];
    assert_eq!(rec["body_fnv"], sinks::fnv(&gz));
    let mut plain = Vec::new();
    let _ = flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut plain);
    assert_ne!(rec["body_len"], plain.len() as u64);
}

#[test]
fn writer_thread_dispatch_retries_and_delivers() {
    let s = Sink::start(&[]);
    let gw = start(&[s.url()], "[forward]\ndispatch = \"writer\"", FAST_BACKOFF);
    s.control("fail_next=1&status=503");
    let r = gw.request("POST", INGEST, &[], &pprof());
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(settled(&s), 2, "retried once on the writer thread");
}

#[test]
fn worker_overflow_goes_to_the_writer_threads() {
    // A worker may have 1 delivery in flight per destination (2 threads share 2); a slow
    // destination makes every further one overflow into the queue drained by the writer.
    let s = Sink::start(&["--latency", "300ms"]);
    let gw = start(
        &[s.url()],
        "[forward]\nack = \"enqueue\"\nmax_inflight_per_endpoint = 3",
        "",
    );
    let mut c = gw.connect();
    for _ in 0..12 {
        let r = c.request("POST", INGEST, &[], &pprof()).expect("answered");
        assert_eq!(r.status, 200);
    }
    let recs = s.wait_records(12, Duration::from_secs(15));
    assert!(recs.iter().all(|r| r["status"] == 200));
    let (k, v) = ep(&s);
    let m = gw.metrics();
    assert_eq!(
        m.value("pyroscope_write_sent_profiles_total", &[(k, &v)]),
        12.0
    );
    // At most two deliveries (one on the worker, one on the writer) ran at once.
    let first = recs[0]["at_ms"].as_u64().unwrap_or(0);
    let last = recs[11]["at_ms"].as_u64().unwrap_or(0);
    assert!(
        last - first >= 1200,
        "bounded concurrency: {} ms",
        last - first
    );
}
