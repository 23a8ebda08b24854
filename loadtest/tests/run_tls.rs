//! `pyrogate-load run` against the real gateway with `[server.tls]` (the certificates the
//! `tls` bench suite makes): every request of a short, bounded run answered 200 and
//! forwarded, the connections it opened counted by the gateway as TLS handshakes
//! (`pyrogate_tls_handshakes_total`), one per request with `--reconnect-every 1`, resumed
//! or not as asked; and `--reconnect-every` on a plaintext target.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{BIN, Sink, gateway, output_within};
use pyrogate_load::bench::gateway_config::{self, TLS_SERVER_NAME, TlsFiles};
use pyrogate_load::load::tls::{TlsOptions, client_config, server_name};
use pyrogate_load::probe::{self, ProbeTls};
use pyrogate_load::process::SpawnOpts;
use pyrogate_load::process::children::{Gateway, GatewayOpts};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pyrogate-run-tls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn probe_tls(files: &TlsFiles) -> ProbeTls {
    let opts = TlsOptions {
        ca: Some(files.ca.clone()),
        server_name: Some(TLS_SERVER_NAME.into()),
        ..TlsOptions::default()
    };
    ProbeTls {
        config: client_config(&opts).expect("client config"),
        name: server_name(&opts, "").expect("name"),
    }
}

/// The gateway with the suite's `[server.tls]`, forwarding to `sink`.
fn tls_gateway(files: &TlsFiles, sink: &Sink) -> Gateway {
    Gateway::start_tls(
        &GatewayOpts {
            bin: gateway(),
            driver: "auto".into(),
            workers: 1,
            forward_to: vec![sink.url()],
            extra: vec!["--config".into(), files.config.display().to_string()],
            spawn: SpawnOpts::default(),
        },
        Some(probe_tls(files)),
    )
    .expect("gateway with TLS started")
}

/// TLS handshakes the gateway has completed so far. Each call makes one itself (counted
/// in what it reads).
fn handshakes(gw: &Gateway) -> f64 {
    let a = probe::get_with(gw.addr, "/metrics", TIMEOUT, gw.tls.as_ref()).expect("metrics");
    assert_eq!(a.status, 200);
    String::from_utf8_lossy(&a.body)
        .lines()
        .filter(|l| l.starts_with("pyrogate_tls_handshakes_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// `run` with `args`; the `--json` report.
fn run(dir: &Path, name: &str, target: &str, args: &[&str]) -> Value {
    let json = dir.join(format!("{name}.json"));
    let out = output_within(
        Command::new(BIN)
            .args(["run", "--target", target, "--quiet", "--timeout", "10s"])
            .args(["--protocol", "ingest-pprof", "--profile-size", "1KiB"])
            .arg("--json")
            .arg(&json)
            .args(args),
        TIMEOUT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{name}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("connects"), "{name}: {stdout}");
    serde_json::from_slice(&std::fs::read(&json).expect("report")).expect("JSON")
}

fn assert_all_ok(r: &Value, requests: u64, name: &str) {
    assert_eq!(r["requests"], requests, "{name}: {r}");
    assert_eq!(r["ok"], requests, "{name}: {r}");
    assert_eq!(r["status"]["200"], requests, "{name}: {r}");
    assert!(
        r["errors"].as_object().is_some_and(|e| e.is_empty()),
        "{name}: {r}"
    );
}

#[test]
fn https_runs_count_one_handshake_per_connection() {
    let dir = temp_dir("tls");
    let files = gateway_config::tls_files(&dir).expect("certificates");
    let sink = Sink::start(&["--records", "0"]);
    let gw = tls_gateway(&files, &sink);
    let target = gw.url();
    assert!(target.starts_with("https://127.0.0.1:"), "{target}");
    let ca = files.ca.display().to_string();
    let tls_args = [
        "--tls-ca",
        ca.as_str(),
        "--tls-server-name",
        TLS_SERVER_NAME,
    ];

    // Keep-alive: two connections, two handshakes, 40 requests.
    let before = handshakes(&gw);
    let r = run(
        &dir,
        "keepalive",
        &target,
        &[&tls_args[..], &["--connections", "2", "--requests", "40"]].concat(),
    );
    assert_all_ok(&r, 40, "keep-alive");
    assert_eq!(r["connects"], 2, "{r}");
    assert_eq!(r["tls"]["server_name"], TLS_SERVER_NAME, "{r}");
    assert_eq!(r["tls"]["resumption"], true, "{r}");
    // The second scrape's own handshake is in the count.
    assert_eq!(handshakes(&gw) - before, 2.0 + 1.0, "keep-alive");

    // A new connection per request, resumption allowed: one handshake per request, all but
    // the first resumed (one connection at a time, so every ticket is there when needed).
    let before = handshakes(&gw);
    let r = run(
        &dir,
        "resumed",
        &target,
        &[
            &tls_args[..],
            &[
                "--connections",
                "1",
                "--requests",
                "25",
                "--reconnect-every",
                "1",
            ],
        ]
        .concat(),
    );
    assert_all_ok(&r, 25, "resumed");
    assert_eq!(r["connects"], 25, "{r}");
    assert_eq!(r["reconnect_every"], 1, "{r}");
    assert_eq!(r["tls"]["resumed"], 24, "{r}");
    assert_eq!(handshakes(&gw) - before, 25.0 + 1.0, "resumed");

    // The same without resumption: every handshake full.
    let before = handshakes(&gw);
    let r = run(
        &dir,
        "full",
        &target,
        &[
            &tls_args[..],
            &[
                "--connections",
                "1",
                "--requests",
                "25",
                "--reconnect-every",
                "1",
                "--tls-no-resume",
            ],
        ]
        .concat(),
    );
    assert_all_ok(&r, 25, "full");
    assert_eq!(r["connects"], 25, "{r}");
    assert_eq!(r["tls"]["resumed"], 0, "{r}");
    assert_eq!(r["tls"]["resumption"], false, "{r}");
    assert_eq!(handshakes(&gw) - before, 25.0 + 1.0, "full");

    // Every request reached the sink through the gateway.
    let stats = sink.stats(false);
    assert_eq!(stats["totals"]["accepted"], 40 + 25 + 25, "{stats}");

    // Without a CA to trust the run refuses to start; with a CA that did not sign the
    // server's certificate every handshake fails and is reported as such.
    let out = output_within(
        Command::new(BIN).args(["run", "--target", &target, "--requests", "1"]),
        TIMEOUT,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--tls-ca"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = gateway_config::tls_files(&temp_dir("other-ca")).expect("another CA");
    let json = dir.join("untrusted.json");
    let out = output_within(
        Command::new(BIN)
            .args(["run", "--target", &target, "--quiet", "--requests", "3"])
            .args(["--tls-server-name", TLS_SERVER_NAME, "--tls-ca"])
            .arg(&other.ca)
            .arg("--json")
            .arg(&json),
        TIMEOUT,
    );
    assert!(out.status.success(), "a failing run still reports");
    let r: Value = serde_json::from_slice(&std::fs::read(&json).expect("report")).expect("JSON");
    assert_eq!(r["ok"], 0, "{r}");
    assert!(
        r["errors"]
            .as_object()
            .is_some_and(|e| e.keys().any(|k| k.starts_with("tls handshake"))),
        "{r}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(other.ca.parent().and_then(Path::parent).expect("dir"));
}

#[test]
fn reconnect_every_on_a_plaintext_target() {
    let dir = temp_dir("plain");
    let sink = Sink::start(&["--records", "0"]);
    let r = run(
        &dir,
        "plain",
        &sink.url(),
        &[
            "--connections",
            "1",
            "--requests",
            "20",
            "--reconnect-every",
            "5",
        ],
    );
    assert_all_ok(&r, 20, "plain");
    assert_eq!(r["connects"], 4, "{r}");
    assert!(r.get("tls").is_none(), "{r}");
    let stats = sink.stats(false);
    assert_eq!(stats["totals"]["accepted"], 20, "{stats}");
    // Plain keep-alive: one connection for the whole run.
    let r = run(&dir, "keepalive", &sink.url(), &["--requests", "20"]);
    assert_eq!(r["connects"], 1, "{r}");
    let _ = std::fs::remove_dir_all(&dir);
}
