//! `pyrogate-load demo` end to end: the real `pyrogate` binary of the workspace between the
//! demo's sinks and its fixture traffic. Bounded: each demo run is killed after
//! [`DEMO_TIMEOUT`].

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{BIN, gateway, output_within};

const DEMO_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the demo with `args`, killed after [`DEMO_TIMEOUT`].
fn demo(args: &[&str]) -> Output {
    output_within(Command::new(BIN).arg("demo").args(args), DEMO_TIMEOUT)
}

fn check_success(driver: &str) {
    let gw = gateway();
    let t = Instant::now();
    let out = demo(&[
        "--gateway",
        gw.to_str().expect("utf-8 path"),
        "--driver",
        driver,
        "--duration",
        "1s",
        "--connections",
        "4",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    // 12 requests (6 kinds × 2 tenants), each found intact at both sinks.
    assert_eq!(
        stdout.matches("✓ body identical").count()
            + stdout.matches("✓ raw_profile identical").count(),
        24 + 6,
        "{stdout}"
    );
    assert!(!stdout.contains('✗'), "{stdout}");
    for kind in [
        "ingest-pprof",
        "ingest-multipart",
        "ingest-folded",
        "ingest-jfr",
        "push",
        "push-json",
    ] {
        assert!(stdout.contains(&format!("[{kind}]")), "{kind}: {stdout}");
    }
    assert!(stdout.contains("(rebuilt by the gateway)"), "{stdout}");
    assert!(
        stdout.contains("service_name=loadtest.node.app"),
        "{stdout}"
    );
    assert!(stdout.contains("through pyrogate → all sinks"), "{stdout}");
    assert!(
        stdout.contains("gateway stopped cleanly on SIGTERM (exit 0)"),
        "{stdout}"
    );
    assert!(stdout.contains("result: OK"), "{stdout}");
}

#[test]
fn demo_on_the_default_driver() {
    check_success("auto");
}

#[test]
fn demo_on_epoll() {
    check_success("legacy");
}

#[test]
fn a_missing_gateway_is_a_clear_error() {
    let out = demo(&["--gateway", "/nonexistent/pyrogate"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/pyrogate"), "{stderr}");
}
