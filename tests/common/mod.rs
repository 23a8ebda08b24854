//! Test harness shared by the integration tests: it starts the real `pyrogate` binary on
//! 127.0.0.1 and speaks raw bytes to it.
//!
//! * [`process`]: [`Gateway`] spawns the binary (free loopback port, stderr captured to a
//!   temp file and printed when the test fails), waits until `GET /-/ready` answers 200,
//!   and kills the process when dropped; [`run`] runs it to completion (config errors,
//!   `--check-config`).
//! * [`conn`]: [`Conn`] is a raw TCP connection with a response reader that understands
//!   `Content-Length` framing, so keep-alive and pipelining can be checked byte for byte.
//! * [`metrics`]: [`Metrics`] is a parsed `/metrics` scrape.
//! * Payloads come from the test-data crate ([`td`]).
//!
//! Downstreams for forwarding tests are the real `pyrogate-load sink` (`tests/sinks/`).
//!
//! Every wait is a bounded poll: nothing here sleeps "long enough" and hopes.
//!
//! Not every test file uses every helper.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The binary under test, built by cargo for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_pyrogate");

/// How long the gateway may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound for reading one response.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Poll interval of every bounded wait.
pub const POLL: Duration = Duration::from_millis(10);

/// Both monoio drivers, for tests that must pass on each.
pub const DRIVERS: [&str; 2] = ["io_uring", "legacy"];

/// Generates one `#[test]` per driver for each listed function `fn name(driver: &str)`:
/// `io_uring::name` and `legacy::name`.
#[macro_export]
macro_rules! on_both_drivers {
    ($($name:ident),* $(,)?) => {
        mod io_uring {
            $(
                #[test]
                fn $name() {
                    if $crate::common::driver_available("io_uring") {
                        super::$name("io_uring");
                    }
                }
            )*
        }
        mod legacy {
            $(
                #[test]
                fn $name() {
                    super::$name("legacy");
                }
            )*
        }
    };
}

/// Whether the binary can run on `driver` here. io_uring is often blocked in containers
/// (seccomp, `kernel.io_uring_disabled`); then the io_uring variants report the reason and
/// pass, unless `PYROGATE_REQUIRE_IO_URING=1` asks for a hard failure (set it in CI on
/// machines that have io_uring).
pub fn driver_available(driver: &str) -> bool {
    if driver != "io_uring" {
        return true;
    }
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    let probe = PROBE.get_or_init(|| {
        let out = run(
            &[
                "--check-config",
                "--driver",
                "io_uring",
                "--listen",
                "127.0.0.1:0",
            ],
            Duration::from_secs(10),
        );
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    });
    match probe {
        Ok(()) => true,
        Err(why) => {
            assert!(
                std::env::var("PYROGATE_REQUIRE_IO_URING").as_deref() != Ok("1"),
                "io_uring is required (PYROGATE_REQUIRE_IO_URING=1) but unavailable: {why}"
            );
            eprintln!("SKIPPED io_uring variant: io_uring unavailable here: {why}");
            false
        }
    }
}

/// A unique path in the temp dir for this test process.
pub fn temp_path(what: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("pyrogate-test-{}-{n}-{what}", std::process::id()))
}

/// Writes `text` to a fresh temp file and returns its path (removed by the caller or left
/// in the temp dir).
pub fn write_temp(what: &str, text: &str) -> PathBuf {
    let p = temp_path(what);
    std::fs::write(&p, text).expect("write temp file");
    p
}

/// A free loopback port (bound then released; [`Gateway::start`] retries on the rare
/// collision with another test).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Polls `f` every [`POLL`] until it returns `Some`, at most `timeout`.
pub fn poll_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

pub mod conn;
pub mod metrics;
pub mod process;

// Every test binary uses a different subset of the harness.
#[allow(unused_imports)]
pub use conn::{Conn, Response, build_request, chunked};
#[allow(unused_imports)]
pub use metrics::{Metrics, series_key};
#[allow(unused_imports)]
pub use process::{Gateway, rss_kib, run, run_client, run_sdk, run_with_env};

// === payloads ===

pub use pyrogate_testdata as td;

/// A pyroscope-io 1.4.0 style Push (gzip'd `PushRequest` of one series with eight unsorted
/// labels and a plain pprof, sent with `Content-Encoding: gzip`), generated.
pub fn python_push() -> td::sdk::Request {
    td::sdk::python_push(1)
}

/// Its body.
pub fn push_gzip() -> Vec<u8> {
    python_push().body
}

/// The same Push body, gunzipped: plain protobuf.
pub fn push_proto() -> Vec<u8> {
    gunzip(&push_gzip())
}

/// A gzip'd Go CPU profile (two sample types, deep stacks, labels).
pub fn cpu_pprof_gz() -> Vec<u8> {
    td::pprof::Spec::new(1, td::pprof::Kind::Cpu).gzip()
}

pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}
