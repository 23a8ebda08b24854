//! `pyrogate-load bench` in miniature: every suite once, for a fraction of a second, against
//! the real gateway binary (and nginx when it is installed). Checks that the report is
//! complete and sane and that nothing the benchmark started is left running.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{BIN, Sink, gateway, output_within, post};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(120);

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("pyrogate-bench-test-{}-{name}", std::process::id()))
}

/// Runs `bench` with `args`; returns the `--json` report and the text output.
fn bench(name: &str, args: &[&str]) -> (Value, String) {
    let json = temp(&format!("{name}.json"));
    let pgids = temp(&format!("{name}.pgids"));
    let gw = gateway();
    let out = output_within(
        Command::new(BIN)
            .arg("bench")
            .args(["--gateway", gw.to_str().expect("utf-8 path")])
            .args(["--runs", "1", "--duration", "400ms", "--warmup", "100ms"])
            .args(["--connections", "4", "--json"])
            .arg(&json)
            .args(args)
            .env("PYROGATE_BENCH_PGID_FILE", &pgids),
        TIMEOUT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name}: {stdout}\n{stderr}");
    // Every process group the benchmark started was stopped.
    let left = std::fs::read_to_string(&pgids).unwrap_or_default();
    assert!(left.trim().is_empty(), "{name}: still listed: {left}");
    let report: Value =
        serde_json::from_slice(&std::fs::read(&json).expect("report")).expect("JSON");
    let _ = std::fs::remove_file(&json);
    let _ = std::fs::remove_file(&pgids);
    (report, stdout)
}

fn nginx_installed() -> bool {
    pyrogate_load::bench::nginx::find_binary(None).is_some()
}

fn samples(cells: &Value) -> Vec<(String, Value)> {
    cells
        .as_array()
        .expect("cells")
        .iter()
        .map(|c| {
            let label = c["label"].as_str().unwrap_or("").to_owned();
            (label, c["samples"][0].clone())
        })
        .collect()
}

#[test]
fn receive_and_memory_suites_without_nginx() {
    let (r, text) = bench(
        "receive",
        &[
            "--suites",
            "receive,memory",
            "--sizes",
            "1KiB",
            "--no-nginx",
            "--memory-conns",
            "200",
        ],
    );
    let cells = samples(&r["receive"]);
    assert!(!cells.is_empty(), "{r}");
    for (label, s) in &cells {
        assert!(label.starts_with("pyrogate "), "{label}");
        assert!(s["ok"].as_u64().unwrap_or(0) > 0, "{label}: {s}");
        assert_eq!(s["failed"], 0, "{label}: {s}");
        assert!(
            s["cpu_ms_per_1k"].as_f64().unwrap_or(0.0) > 0.0,
            "{label}: {s}"
        );
        assert!(
            s["peak_rss"].as_u64().unwrap_or(0) > 1 << 20,
            "{label}: {s}"
        );
    }
    let mem = r["memory"].as_array().expect("memory");
    assert_eq!(mem.len(), cells.len(), "{r}");
    for m in mem {
        assert_eq!(m["opened"], 200, "{m}");
        assert!(m["error"].is_null(), "{m}");
        assert!(m["bytes_per_conn"].as_f64().is_some(), "{m}");
    }
    assert!(
        text.contains("== receive:") && text.contains("== memory:"),
        "{text}"
    );
    assert!(
        text.contains("nginx not found") || text.contains("nginx variants"),
        "{text}"
    );
}

#[test]
fn forward_and_latency_suites() {
    let mut args = vec![
        "--suites",
        "forward,latency",
        "--sizes",
        "1KiB",
        "--fanouts",
        "2",
        "--latency-size",
        "1KiB",
    ];
    let with_nginx = nginx_installed();
    if !with_nginx {
        eprintln!("nginx is not installed: its variants are not exercised here");
        args.push("--no-nginx");
    }
    let (r, text) = bench("forward", &args);
    let cells = samples(&r["forward"]);
    let labels: Vec<&str> = cells.iter().map(|(l, _)| l.as_str()).collect();
    assert!(labels.contains(&"direct → sink"), "{labels:?}");
    assert!(labels.contains(&"pyrogate epoll"), "{labels:?}");
    assert_eq!(
        labels.contains(&"nginx proxy_pass+mirror"),
        with_nginx,
        "{labels:?}"
    );
    for (label, s) in &cells {
        assert!(s["ok"].as_u64().unwrap_or(0) > 0, "{label}: {s}");
        assert_eq!(s["failed"], 0, "{label}: {s}");
        // Every copy reached the sinks (fan-out 2 for the gateways, 1 for direct).
        assert!(
            s["delivered"].as_f64().unwrap_or(0.0) >= 0.99,
            "{label}: {s}"
        );
    }
    let lat = &r["latency"];
    assert!(lat["rate"].as_f64().unwrap_or(0.0) > 0.0, "{lat}");
    for (label, s) in samples(&lat["cells"]) {
        assert_eq!(s["failed"], 0, "{label}: {s}");
        assert!(s["schedule_lag_p99_ms"].is_number(), "{label}: {s}");
    }
    assert!(
        text.contains("== forward:") && text.contains("== latency:"),
        "{text}"
    );
    assert!(text.contains("added p99 ms"), "{text}");
}

#[test]
fn sink_without_checksums() {
    let sink = Sink::start(&["--checks", "none", "--no-checksum"]);
    let r = sink
        .connect()
        .request(&post("/ingest?name=a", &[], b"profile"));
    assert_eq!(r.status, 200);
    let stats = sink.stats(true);
    assert_eq!(stats["totals"]["accepted"], 1);
    assert_eq!(stats["totals"]["bytes"], 7);
    assert!(stats["records"][0]["body_fnv"].is_null(), "{stats}");
}

#[test]
fn tls_suite() {
    let (r, text) = bench("tls", &["--suites", "tls", "--no-nginx"]);
    let cells = r["tls"]["cells"].as_array().expect("tls cells").clone();
    assert_eq!(cells.len(), 5, "{}", r["tls"]);
    for c in &cells {
        let label = c["label"].as_str().unwrap_or("");
        let (s, client) = (&c["samples"][0], &c["client"][0]);
        let (tls, reconnect, resume) = (
            c["case"]["tls"] == true,
            c["case"]["reconnect"] == true,
            c["case"]["resume"] == true,
        );
        let requests = s["requests"].as_u64().unwrap_or(0);
        assert!(s["ok"].as_u64().unwrap_or(0) > 0, "{label}: {s}");
        assert_eq!(s["failed"], 0, "{label}: {s}");
        assert!(s["cpu_s"].as_f64().unwrap_or(0.0) > 0.0, "{label}: {s}");
        assert!(
            s["delivered"].as_f64().unwrap_or(0.0) >= 0.99,
            "{label}: {s}"
        );
        let connects = client["connects"].as_u64().unwrap_or(0);
        if reconnect {
            // One connection per request, plus at most the 4 opened before the start.
            assert!(
                (requests..=requests + 4).contains(&connects),
                "{label}: {connects} connects for {requests} requests"
            );
        } else {
            assert_eq!(connects, 4, "{label}: {client}");
        }
        if tls {
            // The gateway counted every connection as a handshake (the second scrape's own
            // handshake is in the change too).
            let handshakes: f64 = s["gateway_metrics"]
                .as_object()
                .expect("scraped")
                .iter()
                .filter(|(k, _)| k.starts_with("pyrogate_tls_handshakes_total{"))
                .filter_map(|(_, v)| v.as_f64())
                .sum();
            assert_eq!(handshakes, connects as f64 + 1.0, "{label}: {s}");
            let resumed = client["resumed"].as_u64().unwrap_or(0);
            if reconnect && resume {
                assert!(resumed * 2 > connects, "{label}: {client}");
            } else if reconnect {
                assert_eq!(resumed, 0, "{label}: {client}");
            }
        }
    }
    assert!(text.contains("== tls:"), "{text}");
    assert!(text.contains("handshakes/CPU-s"), "{text}");
}

#[test]
fn h2c_suite_with_the_nginx_grpc_pass_peer() {
    let with_nginx = nginx_installed();
    let mut args = vec!["--suites", "h2c", "--sizes", "1KiB"];
    if !with_nginx {
        eprintln!("nginx is not installed: the grpc_pass peer is not exercised here");
        args.push("--no-nginx");
    }
    let (r, text) = bench("h2c", &args);
    let cells = r["h2c"]["cells"].as_array().expect("h2c cells").clone();
    let labels: Vec<&str> = cells.iter().filter_map(|c| c["label"].as_str()).collect();
    let want = if with_nginx { 6 } else { 4 };
    assert_eq!(cells.len(), want, "{labels:?}");
    assert!(
        labels.contains(&"HTTP/1.1 Connect Push (uncompressed)"),
        "{labels:?}"
    );
    for c in &cells {
        let (label, s) = (c["label"].as_str().unwrap_or(""), &c["samples"][0]);
        assert!(s["ok"].as_u64().unwrap_or(0) > 0, "{label}: {s}");
        assert_eq!(s["failed"], 0, "{label}: {s}");
        assert!(s["cpu_s"].as_f64().unwrap_or(0.0) > 0.0, "{label}: {s}");
        let nginx = c["case"].as_str().is_some_and(|k| k.starts_with("nginx"));
        assert_eq!(nginx, label.starts_with("nginx grpc_pass"), "{label}: {c}");
        assert_eq!(
            c["cell"]["variant"]["kind"] == "nginx_grpc",
            nginx,
            "{label}: {}",
            c["cell"]
        );
    }
    assert_eq!(
        labels.contains(&"nginx grpc_pass gRPC Push (gzip)"),
        with_nginx,
        "{labels:?}"
    );
    assert!(text.contains("== h2c:"), "{text}");
    assert!(text.contains("×nginx grpc_pass"), "{text}");
}
