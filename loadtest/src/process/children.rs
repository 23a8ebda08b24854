//! The two kinds of child the demo and the benchmarks start from this workspace: the
//! `pyrogate` gateway binary and `pyrogate-load sink` (this executable), each on a free
//! loopback port, returned once ready.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::{Managed, SpawnOpts};
use crate::probe::{self, ProbeTls};

/// How long a gateway or sink may take to start.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How to run the gateway.
#[derive(Debug, Clone)]
pub struct GatewayOpts {
    pub bin: PathBuf,
    /// `auto`, `io_uring` or `legacy`.
    pub driver: String,
    pub workers: usize,
    /// Downstream URLs (`--forward-to`); empty = answer 200 and discard.
    pub forward_to: Vec<String>,
    /// Further flags, e.g. `--ack enqueue`.
    pub extra: Vec<String>,
    pub spawn: SpawnOpts,
}

/// A running gateway.
pub struct Gateway {
    pub proc: Managed,
    pub addr: SocketAddr,
    /// The driver it reported at start-up.
    pub driver: String,
    /// How to reach it when its listener speaks TLS (`[server.tls]` in its configuration).
    pub tls: Option<ProbeTls>,
}

impl Gateway {
    /// Starts the gateway on `127.0.0.1:0` and waits until its start-up line names the
    /// bound address and `GET /-/ready` answers 200.
    pub fn start(o: &GatewayOpts) -> Result<Self, String> {
        Self::start_tls(o, None)
    }

    /// [`Gateway::start`] for a gateway whose configuration (in `o.extra`) has
    /// `[server.tls]`: readiness is asked over TLS with `tls`.
    pub fn start_tls(o: &GatewayOpts, tls: Option<ProbeTls>) -> Result<Self, String> {
        let mut cmd = Command::new(&o.bin);
        cmd.args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(["--workers", &o.workers.to_string()])
            .args(["--driver", &o.driver])
            .args(["--graceful-shutdown-timeout", "2s"]);
        if o.spawn.cpus.is_some() {
            // The CPU mask already confines every thread; pinning workers to core ids on
            // top of it could only disagree with the mask.
            cmd.args(["--pin-cores", "false"]);
        }
        for u in &o.forward_to {
            cmd.args(["--forward-to", u]);
        }
        cmd.args(&o.extra);
        let mut proc = Managed::spawn("pyrogate", cmd, &o.spawn)?;
        proc.grace = Duration::from_secs(4);
        let (addr, driver) = proc.wait_for_line(START_TIMEOUT, startup_line)?;
        proc.wait_until(START_TIMEOUT, || {
            probe::is_ok_with(addr, "/-/ready", tls.as_ref())
        })?;
        Ok(Self {
            proc,
            addr,
            driver,
            tls,
        })
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
}

/// `(listen address, driver)` from the gateway's JSON start-up line.
pub fn startup_line(line: &str) -> Option<(SocketAddr, String)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v.get("message")?.as_str()? != "pyrogate listening" {
        return None;
    }
    let addr = v.get("listen")?.as_str()?.parse().ok()?;
    let driver = v.get("driver")?.as_str()?.to_owned();
    Some((addr, driver))
}

/// A `pyrogate-load sink` child.
pub struct SinkProc {
    pub proc: Managed,
    pub addr: SocketAddr,
}

impl SinkProc {
    /// Starts `exe` (a `pyrogate-load` binary) as `sink --listen 127.0.0.1:0 <args>` and
    /// waits for its `listening on` line. `exit_after` bounds its life even if every guard
    /// failed.
    pub fn start(
        exe: &std::path::Path,
        args: &[String],
        exit_after: Duration,
        spawn: &SpawnOpts,
    ) -> Result<Self, String> {
        let mut cmd = Command::new(exe);
        cmd.args(["sink", "--listen", "127.0.0.1:0"])
            .args(["--exit-after", &format!("{}s", exit_after.as_secs().max(1))])
            .args(args);
        let mut proc = Managed::spawn("sink", cmd, spawn)?;
        proc.grace = Duration::from_secs(2);
        let addr = proc.wait_for_line(START_TIMEOUT, |l| {
            l.strip_prefix("listening on ")?.trim().parse().ok()
        })?;
        Ok(Self { proc, addr })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stats(&self) -> Result<serde_json::Value, String> {
        probe::sink_stats(self.addr, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_startup_line_gives_address_and_driver() {
        let l = r#"{"timestamp":"2026-11-22T03:53:11.094400Z","level":"INFO","message":"pyrogate listening","listen":"127.0.0.1:35103","driver":"io_uring","workers":2}"#;
        assert_eq!(
            startup_line(l),
            Some((
                "127.0.0.1:35103".parse().expect("addr"),
                "io_uring".to_owned()
            ))
        );
        assert_eq!(
            startup_line(r#"{"message":"other","listen":"1.2.3.4:5"}"#),
            None
        );
        assert_eq!(startup_line("not json"), None);
    }
}
