//! Test downstreams for the forwarding tests: the real `pyrogate-load sink` binary (the
//! Pyroscope-compatible receiver of the load-generator crate) on 127.0.0.1, its `/stats`
//! records, and `/control` fault injection.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::{BIN, Conn, poll_until};

/// `pyrogate-load`, built next to the `pyrogate` binary under test (`cargo test
/// --workspace` and `scripts/test.sh` build it; a lone `cargo test --test x` builds it here).
pub fn sink_bin() -> PathBuf {
    let dir = std::path::Path::new(BIN)
        .parent()
        .expect("binary directory")
        .to_path_buf();
    let bin = dir.join("pyrogate-load");
    if !bin.exists() {
        let release = dir.ends_with("release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "pyrogate-load", "--bin", "pyrogate-load"]);
        if release {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("run cargo build for pyrogate-load");
        assert!(st.success(), "building pyrogate-load failed");
    }
    bin
}

/// FNV-1a 64 of `bytes` as 16 lower-case hex digits (the sink's body checksum).
pub fn fnv(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A running sink; killed on drop.
pub struct Sink {
    child: Child,
    pub addr: SocketAddr,
}

impl Sink {
    pub fn start(extra: &[&str]) -> Sink {
        Self::start_on("127.0.0.1:0", extra)
    }

    /// A sink on a given address (a destination that comes back where it was).
    pub fn start_on(listen: &str, extra: &[&str]) -> Sink {
        let mut child = Command::new(sink_bin())
            .args(["sink", "--listen", listen, "--exit-after", "300s"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pyrogate-load sink");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut sink = Sink {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("sink printed its address");
        sink.addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected sink output {line:?}"))
            .parse()
            .expect("socket address");
        sink
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn call(&self, method: &str, path: &str) -> Value {
        let mut c = Conn::connect(self.addr).expect("connect to sink");
        let r = c
            .request(method, path, &[], b"")
            .unwrap_or_else(|e| panic!("{method} {path} on sink: {e}"));
        assert_eq!(r.status, 200, "{method} {path}: {}", r.body_str());
        if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        }
    }

    pub fn stats(&self) -> Value {
        self.call("GET", "/stats")
    }

    /// Every request the sink kept a record of, oldest first.
    pub fn records(&self) -> Vec<Value> {
        let v = self.call("GET", "/stats?records=1");
        v["records"].as_array().cloned().unwrap_or_default()
    }

    /// Records of answered profile requests (status present).
    pub fn answered(&self) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["status"].is_u64())
            .collect()
    }

    /// Waits until at least `n` records exist; returns them.
    pub fn wait_records(&self, n: usize, timeout: Duration) -> Vec<Value> {
        poll_until(timeout, || {
            let r = self.records();
            (r.len() >= n).then_some(r)
        })
        .unwrap_or_else(|| {
            panic!(
                "sink {} did not get {n} requests: {:?}",
                self.addr,
                self.records()
            )
        })
    }

    /// `POST /control?<query>`.
    pub fn control(&self, query: &str) {
        self.call("POST", &format!("/control?{query}"));
    }

    pub fn reset(&self) {
        self.call("POST", "/stats/reset");
        self.control("reset=1");
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of a record's header (names are lower-cased by the sink).
pub fn header<'a>(rec: &'a Value, name: &str) -> Vec<&'a str> {
    rec["headers"]
        .as_array()
        .map(|hs| {
            hs.iter()
                .filter(|h| h[0].as_str() == Some(name))
                .filter_map(|h| h[1].as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// A Push record's first series labels as (name, value) pairs in wire order.
pub fn series_labels(rec: &Value) -> Vec<(String, String)> {
    rec["series"][0]["labels"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .map(|l| {
                    (
                        l[0].as_str().unwrap_or_default().to_string(),
                        l[1].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
