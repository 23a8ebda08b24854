//! `pyrogate-load soak --duration 60s` end to end: the real `pyrogate` binary (two of them,
//! `ack = all` and `ack = durable`) under every fault of the soak for 50 s, then 10 s quiet;
//! the run must pass (no growth beyond the limits, every acknowledged body at both sinks,
//! no failed health check). Bounded: killed after [`SOAK_TIMEOUT`]; the soak itself stops
//! every process it started.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, gateway, output_within};

/// 60 s of run, ≤ 15 s of drain (usually under 1 s), start and stop: well under this.
const SOAK_TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn a_one_minute_chaos_soak_passes() {
    let gw = gateway();
    let t = Instant::now();
    let csv = std::env::temp_dir().join(format!("pyrogate-soak-test-{}.csv", std::process::id()));
    let out = output_within(
        Command::new(BIN).args([
            "soak",
            "--duration",
            "60s",
            "--gateway",
            gw.to_str().expect("utf-8 path"),
            "--samples",
            csv.to_str().expect("utf-8 path"),
        ]),
        SOAK_TIMEOUT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("verdict: PASS"), "{stdout}");
    assert!(t.elapsed() < Duration::from_secs(95), "{:?}", t.elapsed());
    // Every fault was there: reloads applied, floods, slowloris cut, malformed refused.
    assert!(!stdout.contains("reloaded 0 "), "{stdout}");
    assert!(
        stdout.contains("floods: 2 ×") || stdout.contains("floods: 3 ×"),
        "{stdout}"
    );
    assert!(stdout.contains("cut by the gateway"), "{stdout}");
    assert!(stdout.contains("garbage head → 400"), "{stdout}");
    assert!(stdout.contains("exit 0 on SIGTERM"), "{stdout}");
    // A sample a second for each gateway.
    let samples = std::fs::read_to_string(&csv).expect("samples CSV");
    let _ = std::fs::remove_file(&csv);
    for name in ["all", "durable"] {
        let n = samples
            .lines()
            .filter(|l| l.starts_with(&format!("{name},")))
            .count();
        assert!((55..=90).contains(&n), "{name}: {n} samples");
    }
}

#[test]
fn bad_arguments_are_refused_before_anything_starts() {
    let out = output_within(
        Command::new(BIN).args(["soak", "--duration", "5s"]),
        Duration::from_secs(10),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--duration"), "{stderr}");
    let out = output_within(
        Command::new(BIN).args(["soak", "--gateway", "/nonexistent/pyrogate"]),
        Duration::from_secs(10),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/pyrogate"));
}
