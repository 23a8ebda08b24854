//! Short, bounded `pyrogate-load run`s against the real sink: every protocol succeeds, the
//! report is sane and agrees with what the sink counted, the open loop keeps its rate,
//! `--requests` is exact, failures are reported, not hidden.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{BIN, Sink};
use serde_json::Value;

/// Runs `pyrogate-load run` with `args` against `url`; returns the `--json` report.
fn run(url: &str, name: &str, args: &[&str]) -> Value {
    let dir = std::env::temp_dir().join(format!("pyrogate-load-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json: PathBuf = dir.join(format!("{name}.json"));
    let out = Command::new(BIN)
        .args([
            "run",
            "--target",
            url,
            "--quiet",
            "--timeout",
            "5s",
            "--json",
        ])
        .arg(&json)
        .args(args)
        .output()
        .expect("run pyrogate-load run");
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("latency    p50"), "{name}: {text}");
    let report: Value =
        serde_json::from_slice(&std::fs::read(&json).expect("report written")).expect("JSON");
    let _ = std::fs::remove_file(&json);
    report
}

fn assert_sane(r: &Value, name: &str) {
    let requests = r["requests"].as_u64().expect("requests");
    assert!(requests > 0, "{name}: {r}");
    assert_eq!(r["ok"], requests, "{name}: {r}");
    assert_eq!(r["failed"], 0, "{name}: {r}");
    assert_eq!(r["success_ratio"], 1.0, "{name}");
    assert_eq!(r["status"]["200"], requests, "{name}");
    assert!(
        r["errors"].as_object().is_some_and(|e| e.is_empty()),
        "{name}: {r}"
    );
    let l = &r["latency"];
    let f = |k: &str| l[k].as_f64().unwrap_or(-1.0);
    assert_eq!(l["count"], requests, "{name}");
    assert!(f("p50_ms") > 0.0, "{name}: {l}");
    assert!(
        f("p50_ms") <= f("p90_ms") && f("p90_ms") <= f("p99_ms"),
        "{name}: {l}"
    );
    assert!(
        f("p99_ms") <= f("p999_ms") && f("p999_ms") <= f("max_ms"),
        "{name}: {l}"
    );
    assert!(r["achieved_rate"].as_f64().unwrap_or(0.0) > 0.0, "{name}");
    assert!(r["bytes_sent"].as_u64().unwrap_or(0) > 0, "{name}");
}

#[test]
fn every_protocol_succeeds_against_the_sink() {
    let sink = Sink::start(&["--workers", "2", "--records", "0"]);
    let url = sink.url();
    let protocols = [
        "push",
        "push-json",
        "ingest-pprof",
        "ingest-multipart",
        "ingest-folded",
        "ingest-jfr",
        "otlp",
        "mix",
    ];
    // In parallel: the whole matrix takes about one run's time.
    let handles: Vec<_> = protocols
        .iter()
        .map(|p| {
            let url = url.clone();
            let p = p.to_string();
            std::thread::spawn(move || {
                let r = run(
                    &url,
                    &p,
                    &[
                        "--protocol",
                        &p,
                        "--duration",
                        "1s",
                        "--connections",
                        "2",
                        "--tenant",
                        &p,
                    ],
                );
                (p, r)
            })
        })
        .collect();
    let mut total = 0;
    let mut reports = Vec::new();
    for h in handles {
        let (p, r) = h.join().expect("run thread");
        assert_sane(&r, &p);
        assert_eq!(r["protocol"], p.as_str());
        assert_eq!(r["mode"], "closed");
        assert!(r["schedule_lag"].is_null());
        assert_eq!(r["payload"], "generated");
        total += r["ok"].as_u64().unwrap_or(0);
        reports.push((p, r));
    }
    // The sink saw exactly what the generator counted, per tenant (= protocol) and in total.
    let stats = sink.stats(false);
    assert_eq!(stats["totals"]["accepted"], total);
    assert_eq!(stats["totals"]["rejected"], 0);
    for (p, r) in &reports {
        let t = &stats["tenants"][p.as_str()];
        let seen = t["push"]["accepted"].as_u64().unwrap_or(0)
            + t["ingest"]["accepted"].as_u64().unwrap_or(0)
            + t["otlp"]["accepted"].as_u64().unwrap_or(0);
        assert_eq!(seen, r["ok"].as_u64().unwrap_or(0), "{p}");
        let route = if p.starts_with("push") {
            "push"
        } else if p == "otlp" {
            "otlp"
        } else {
            "ingest"
        };
        if p != "mix" {
            assert_eq!(t[route]["accepted"], r["ok"], "{p}");
        }
    }
}

#[test]
fn open_loop_keeps_the_rate_and_requests_are_exact() {
    let sink = Sink::start(&[]);
    let url = sink.url();
    let r = run(
        &url,
        "open",
        &[
            "--rate",
            "200",
            "--duration",
            "1s",
            "--connections",
            "2",
            "--protocol",
            "push",
        ],
    );
    assert_sane(&r, "open");
    assert_eq!(r["mode"], "open");
    assert_eq!(r["target_rate"], 200.0);
    let n = r["requests"].as_u64().unwrap_or(0);
    assert!(
        (190..=201).contains(&n),
        "scheduled {n} requests for 200/s × 1 s"
    );
    let lag = &r["schedule_lag"];
    assert!(lag["count"].as_u64().unwrap_or(0) > 0, "{lag}");
    assert!(lag["p50_ms"].as_f64().unwrap_or(-1.0) >= 0.0, "{lag}");
    let r = run(
        &url,
        "exact",
        &[
            "--requests",
            "37",
            "--connections",
            "3",
            "--protocol",
            "ingest-folded",
            "--driver",
            "legacy",
        ],
    );
    assert_sane(&r, "exact");
    assert_eq!(r["requests"], 37);
    assert_eq!(r["driver"], "legacy");
    assert_eq!(sink.stats(false)["routes"]["ingest"]["accepted"], 37);
}

#[test]
fn synthetic_payloads_reach_the_sink_intact() {
    let sink = Sink::start(&[]);
    let r = run(
        &sink.url(),
        "synthetic",
        &[
            "--requests",
            "20",
            "--protocol",
            "mix",
            "--profile-size",
            "4KiB",
            "--seed",
            "9",
        ],
    );
    assert_sane(&r, "synthetic");
    assert_eq!(r["payload"], "synthetic");
    assert_eq!(r["profile_size"], 4096);
    let stats = sink.stats(true);
    assert_eq!(stats["totals"]["accepted"], 20);
    let recs = common::records(&stats);
    let push = recs
        .iter()
        .find(|r| r["codec"] == "proto")
        .expect("a push record");
    let raw_len = push["series"][0]["samples"][0]["raw_len"]
        .as_u64()
        .unwrap_or(0);
    assert!(raw_len > 4096, "plain pprof inside Push: {raw_len} B");
}

#[test]
fn failures_are_counted_not_hidden() {
    let sink = Sink::start(&[]);
    assert_eq!(sink.control("error_rate=0.5&error_status=503").status, 200);
    let r = run(
        &sink.url(),
        "faulty",
        &["--requests", "200", "--protocol", "push"],
    );
    let ratio = r["success_ratio"].as_f64().unwrap_or(0.0);
    assert!((0.3..0.7).contains(&ratio), "{ratio}");
    let ok = r["status"]["200"].as_u64().unwrap_or(0);
    let bad = r["status"]["503"].as_u64().unwrap_or(0);
    assert_eq!(ok + bad, 200);
    assert_eq!(r["failed"], bad);

    // Nothing listening: connect errors, bounded, exit status 0 with a report.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let r = run(&url, "refused", &["--requests", "5", "--protocol", "push"]);
    assert_eq!(r["ok"], 0);
    assert_eq!(r["requests"], 5);
    assert_eq!(r["success_ratio"], 0.0);
    assert_eq!(r["errors"]["connect: connection refused"], 5);
}

#[test]
fn unbounded_runs_are_refused() {
    let out = Command::new(BIN)
        .args(["run", "--target", "http://127.0.0.1:9"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--duration or --requests"));
}
