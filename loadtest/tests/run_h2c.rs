//! `pyrogate-load run --protocol push --h2c-connections N`: gRPC Push over cleartext HTTP/2
//! against the real gateway in front of a real sink. A one-second run over 2 connections with
//! 8 streams: every request answered HTTP 200 with `grpc-status: 0`, every one forwarded to
//! the sink, the gateway counting 2 prior-knowledge HTTP/2 connections; the gzip'd variant
//! with an exact request count; and downstream errors counted as `grpc-status N` failures.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{BIN, Sink, gateway, output_within};
use pyrogate_load::probe;
use pyrogate_load::process::SpawnOpts;
use pyrogate_load::process::children::{Gateway, GatewayOpts};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("pyrogate-run-h2c-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// `run` with gRPC over h2c and `args`; the `--json` report and the text output.
fn run(dir: &Path, name: &str, target: &str, args: &[&str]) -> (Value, String) {
    let json = dir.join(format!("{name}.json"));
    let out = output_within(
        Command::new(BIN)
            .args(["run", "--target", target, "--quiet", "--timeout", "10s"])
            .args(["--protocol", "push", "--profile-size", "1KiB"])
            .arg("--json")
            .arg(&json)
            .args(args),
        TIMEOUT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = serde_json::from_slice(&std::fs::read(&json).expect("report")).expect("JSON");
    (r, stdout)
}

/// The gateway's `/metrics` series starting with `prefix`, summed.
fn metric(gw: &Gateway, prefix: &str) -> f64 {
    let a = probe::get_with(gw.addr, "/metrics", TIMEOUT, None).expect("metrics");
    assert_eq!(a.status, 200);
    String::from_utf8_lossy(&a.body)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[test]
fn grpc_push_over_h2c_reaches_the_sink() {
    let dir = temp_dir();
    let sink = Sink::start(&["--records", "0"]);
    let gw = Gateway::start(&GatewayOpts {
        bin: gateway(),
        driver: "auto".into(),
        workers: 1,
        forward_to: vec![sink.url()],
        extra: Vec::new(),
        spawn: SpawnOpts::default(),
    })
    .expect("gateway started");
    let target = gw.url();

    // One second, 8 streams over 2 connections.
    let (r, text) = run(
        &dir,
        "plain",
        &target,
        &[
            "--connections",
            "8",
            "--h2c-connections",
            "2",
            "--duration",
            "1s",
        ],
    );
    let n = r["requests"].as_u64().expect("requests");
    assert!(n > 0, "{r}");
    assert_eq!(r["protocol"], "grpc-push", "{r}");
    assert_eq!(r["ok"], n, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(r["status"]["200"], n, "{r}");
    assert!(r["errors"].as_object().is_some_and(|e| e.is_empty()), "{r}");
    assert_eq!(r["connects"], 2, "{r}");
    assert_eq!(r["connections"], 8, "{r}");
    assert_eq!(r["latency"]["count"], n, "{r}");
    assert!(
        r["latency"]["p99_ms"].as_f64().is_some_and(|p| p > 0.0),
        "{r}"
    );
    // Each answer is the empty PushResponse as one gRPC message (5 bytes).
    assert_eq!(r["bytes_received"], n * 5, "{r}");
    assert!(text.contains("grpc-push"), "{text}");
    assert_eq!(
        metric(
            &gw,
            "pyrogate_http2_connections_total{setup=\"prior_knowledge\"}"
        ),
        2.0
    );
    let stats = sink.stats(false);
    assert_eq!(stats["totals"]["accepted"], n, "{stats}");
    assert_eq!(stats["routes"]["push"]["accepted"], n, "{stats}");

    // The gzip'd message, an exact number of requests.
    let (r, _) = run(
        &dir,
        "gzip",
        &target,
        &[
            "--connections",
            "4",
            "--h2c-connections",
            "1",
            "--requests",
            "60",
            "--grpc-gzip",
        ],
    );
    assert_eq!(r["protocol"], "grpc-push+gzip", "{r}");
    assert_eq!(
        (r["requests"].as_u64(), r["ok"].as_u64()),
        (Some(60), Some(60)),
        "{r}"
    );
    assert_eq!(r["connects"], 1, "{r}");
    let stats = sink.stats(false);
    assert_eq!(stats["totals"]["accepted"], n + 60, "{stats}");

    // Downstream refusals come back as HTTP 200 with a gRPC error status: failures.
    assert_eq!(sink.control("fail_next=5&status=400").status, 200);
    let (r, _) = run(
        &dir,
        "errors",
        &target,
        &[
            "--connections",
            "2",
            "--h2c-connections",
            "1",
            "--requests",
            "20",
        ],
    );
    assert_eq!(r["requests"], 20, "{r}");
    assert_eq!(r["ok"], 15, "{r}");
    assert_eq!(r["failed"], 5, "{r}");
    let errors = r["errors"].as_object().expect("errors");
    assert_eq!(errors.len(), 1, "{r}");
    let (kind, count) = errors.iter().next().expect("one kind");
    assert!(kind.starts_with("grpc-status "), "{r}");
    assert_ne!(kind, "grpc-status 0", "{r}");
    assert_eq!(count, 5, "{r}");
    // Their latencies are recorded too.
    assert_eq!(r["latency"]["count"], 20, "{r}");

    // Flags that do not go together are refused at start-up.
    for bad in [
        &["--protocol", "ingest-pprof", "--h2c-connections", "1"][..],
        &["--connections", "1", "--h2c-connections", "2"][..],
        &["--h2c-connections", "1", "--reconnect-every", "1"][..],
    ] {
        let out = output_within(
            Command::new(BIN)
                .args(["run", "--target", &target, "--requests", "1"])
                .args(bad),
            TIMEOUT,
        );
        assert!(!out.status.success(), "{bad:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--"),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
