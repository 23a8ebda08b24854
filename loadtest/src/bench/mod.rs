//! `pyrogate-load bench`: the end-to-end comparison of pyrogate with nginx on this machine,
//! in one run.
//!
//! Suites ([`Suite`]):
//! * `forward` (issues 3 and 4): straight to a sink (baseline), through pyrogate on the
//!   io_uring and the epoll driver, and through nginx as a mirroring proxy; fan-out 1 and 2;
//!   1 KiB and 16 KiB synthetic profiles; closed loop.
//! * `receive` (issue 2): pyrogate with no endpoint (answers 200, discards) on both drivers
//!   against nginx `return 200;` and nginx reading the body with the echo module.
//! * `latency` (issue 3): open loop at half the saturation rate of pyrogate (fan-out 2,
//!   16 KiB); p50/p99 added over the direct path.
//! * `memory` (issue 4): RSS with 10,000 idle keep-alive connections, bytes per connection.
//! * `distributor` (not run by default): the forwarding case (fan-out 1) through pyrogate
//!   as a pass-through and with `[distributor] validate = true, normalize = true`, both on
//!   the same profiles stamped with the current time; requests per CPU-second of pyrogate
//!   and their ratio ([`distributor`]).
//! * `ring` (not run by default): requests per CPU-second of pyrogate fanning out to 3
//!   sinks against ring mode over the same 3 sinks with replication factor 3 and 1, for
//!   one-series Pushes with and without string sample labels (the split), many series
//!   ([`ring`]).
//! * `durable` (not run by default): `ack = "durable"` (the spool's write-ahead log, group
//!   commit with `fsync = "batch"` and `"always"`, file I/O on the worker's io_uring or a
//!   plain thread) against `ack = "enqueue"` and `"all"`, fan-out 2, 16 KiB `/ingest`
//!   pprof and Push: requests per CPU-second (closed loop), then p50/p99 in an open loop at
//!   half the enqueue saturation just measured; a fresh spool per run ([`durable`]).
//! * `tls` (not run by default): pyrogate forwarding 1 KiB `/ingest` to one sink with
//!   plaintext and with `[server.tls]` (a certificate the benchmark makes), keep-alive
//!   connections: requests per CPU-second and the ratio TLS ÷ plaintext; then a new
//!   connection per request, plaintext, TLS with full handshakes and TLS resumed: handshakes
//!   per CPU-second of the gateway and the CPU a handshake adds ([`tls`]).
//! * `h2c` (not run by default): Push to pyrogate forwarding to one sink as gRPC over
//!   cleartext HTTP/2 (`--connections` streams, one HTTP/2 connection per 8 of
//!   them) against Connect over `--connections` HTTP/1.1 connections, uncompressed and
//!   gzip'd messages on both: requests per CPU-second, the ratio to HTTP/1.1 carrying the
//!   same bytes, p99 ([`h2c`]).
//!
//! Method (see `docs/benchmarking.md`): every server under test runs in a fresh process
//! per run; runs are interleaved (A B C, A B C, …) and each figure is the median over the
//! rounds; ratios are taken within a round, then the median ([`stats::round_ratio`]). The
//! server's cost is its own CPU time (`utime + stime` of all its threads/processes from
//! `/proc/PID/stat`) per 1000 requests, which does not depend on how fast the load
//! generator and the sinks on the other core are. CPU steal (`/proc/stat`) is recorded for
//! every run; a run with more steal than `--max-steal` is run again once.
//!
//! Placement ([`Layout`]): by default the server under test gets the upper half of the CPUs
//! (CPU 1 of 2) with one worker, and the load generator and the sinks share the lower half
//! (CPU 0): the server's CPU time is then its own and the comparison is between equally
//! confined processes (pyrogate: 1 worker + its writer thread; nginx: 1 worker process).
//! `--no-pin` lets everything float and gives each server one worker per CPU.

pub mod distributor;
pub mod durable;
pub mod gateway_config;
pub mod h2c;
pub mod memory;
pub mod nginx;
pub mod ring;
pub mod runner;
pub mod stats;
pub mod suites;
pub mod table;
pub mod tls;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pyrogate::config::DriverChoice;
use serde::Serialize;

use crate::load::payload::Protocol;
use crate::process;

/// What the benchmark measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Suite {
    Forward,
    Receive,
    Latency,
    Memory,
    Distributor,
    Ring,
    Durable,
    Tls,
    H2c,
}

/// Where the processes run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layout {
    /// CPUs of the load generator and the sinks (`None` = not pinned).
    pub load_cpus: Option<Vec<usize>>,
    /// CPUs of the server under test (`None` = not pinned).
    pub gateway_cpus: Option<Vec<usize>>,
    /// pyrogate `--workers` and nginx `worker_processes`.
    pub gateway_workers: usize,
    /// Load generator threads and sink workers.
    pub load_threads: usize,
}

impl Layout {
    /// Pinned: the server gets the upper half of `cpus`, the load and the sinks the lower
    /// half. Falls back to [`Layout::shared`] with fewer than two CPUs.
    pub fn pinned(cpus: &[usize]) -> Self {
        if cpus.len() < 2 {
            return Self::shared(cpus.len());
        }
        let (load, gw) = cpus.split_at(cpus.len() / 2);
        Self {
            load_cpus: Some(load.to_vec()),
            gateway_cpus: Some(gw.to_vec()),
            gateway_workers: gw.len(),
            load_threads: load.len(),
        }
    }

    /// Nothing pinned; one server worker and one load thread per CPU.
    pub fn shared(cpus: usize) -> Self {
        Self {
            load_cpus: None,
            gateway_cpus: None,
            gateway_workers: cpus.max(1),
            load_threads: cpus.max(1),
        }
    }

    pub fn describe(&self) -> String {
        match (&self.load_cpus, &self.gateway_cpus) {
            (Some(l), Some(g)) => format!(
                "pinned (sched_setaffinity, as taskset): server under test on CPU {} with {} worker(s); load generator ({} thread(s)) and sinks on CPU {}",
                cpu_list(g),
                self.gateway_workers,
                self.load_threads,
                cpu_list(l)
            ),
            _ => format!(
                "not pinned: {} server worker(s), {} load thread(s), all sharing every CPU",
                self.gateway_workers, self.load_threads
            ),
        }
    }
}

fn cpu_list(c: &[usize]) -> String {
    c.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Everything `bench` needs, validated.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub suites: Vec<Suite>,
    pub runs: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub connections: usize,
    pub sizes: Vec<usize>,
    pub fanouts: Vec<usize>,
    /// Profile size of the latency suite.
    pub latency_size: usize,
    /// Open-loop rate of the latency suite; `None` = half the measured saturation.
    pub latency_rate: Option<f64>,
    pub protocol: Protocol,
    pub gateway_bin: PathBuf,
    pub nginx_bin: Option<PathBuf>,
    pub echo_module: Option<PathBuf>,
    pub layout: Layout,
    pub load_driver: DriverChoice,
    /// `--driver` of the sinks.
    pub sink_driver: String,
    pub memory_conns: usize,
    pub max_steal: f64,
    pub json: Option<PathBuf>,
    pub keep_temp: bool,
    pub quick: bool,
}

pub const MAX_RUNS: usize = 50;
pub const MAX_RUN_DURATION: Duration = Duration::from_secs(600);
pub const MAX_MEMORY_CONNS: usize = 100_000;

impl BenchConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_RUNS).contains(&self.runs) {
            return Err(format!("--runs must be within 1..={MAX_RUNS}"));
        }
        if self.duration.is_zero() || self.duration > MAX_RUN_DURATION {
            return Err(format!(
                "--duration must be within (0, {}s]",
                MAX_RUN_DURATION.as_secs()
            ));
        }
        if self.warmup > MAX_RUN_DURATION {
            return Err("--warmup is too long".into());
        }
        if !(1..=crate::load::MAX_CONNECTIONS).contains(&self.connections) {
            return Err("--connections must be positive".into());
        }
        if self.sizes.is_empty() || self.sizes.iter().any(|s| *s < 64 || *s > 64 << 20) {
            return Err("--sizes must list sizes within 64 B..=64 MiB".into());
        }
        if self.fanouts.is_empty() || self.fanouts.iter().any(|f| !(1..=8).contains(f)) {
            return Err("--fanouts must list values within 1..=8".into());
        }
        if !(1..=MAX_MEMORY_CONNS).contains(&self.memory_conns) {
            return Err(format!(
                "--memory-conns must be within 1..={MAX_MEMORY_CONNS}"
            ));
        }
        if let Some(r) = self.latency_rate
            && !(r.is_finite() && r > 0.0)
        {
            return Err("--latency-rate must be positive".into());
        }
        if self.suites.is_empty() {
            return Err("no suite selected".into());
        }
        Ok(())
    }

    /// A rough upper bound of the run time, for the opening line.
    pub fn estimate(&self) -> Duration {
        let per_run = self.duration + self.warmup + Duration::from_millis(900);
        let mut runs = 0usize;
        let n_sizes = self.sizes.len();
        for s in &self.suites {
            runs += match s {
                Suite::Forward => n_sizes * (1 + 3 * self.fanouts.len()) * self.runs,
                Suite::Receive => n_sizes * 4 * self.runs,
                Suite::Latency => 4 * self.runs,
                Suite::Memory => 0,
                Suite::Distributor => n_sizes * 4 * self.runs,
                Suite::Ring => ring::CELLS_PER_ROUND * self.runs,
                Suite::Durable => durable::RUNS_PER_ROUND * self.runs,
                Suite::Tls => tls::RUNS_PER_ROUND * self.runs,
                Suite::H2c => n_sizes * h2c::RUNS_PER_ROUND * self.runs,
            };
        }
        let memory = if self.suites.contains(&Suite::Memory) {
            Duration::from_secs(3 * (4 + (self.memory_conns as u64 / 2000)))
        } else {
            Duration::ZERO
        };
        per_run * runs as u32 + memory
    }
}

/// Facts about the machine and the peers, printed first and kept in the JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: Vec<usize>,
    pub kernel: String,
    pub layout: Layout,
    pub gateway_bin: String,
    pub nginx: Option<String>,
    pub echo_module: Option<String>,
    pub io_uring: Result<(), String>,
    pub nofile_hard: u64,
    pub load_avg_at_start: String,
}

/// The whole report (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub machine: Machine,
    pub protocol: String,
    pub runs: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub connections: usize,
    pub forward: Vec<suites::CellReport>,
    pub receive: Vec<suites::CellReport>,
    pub latency: Option<suites::LatencyReport>,
    pub memory: Vec<memory::MemoryResult>,
    pub distributor: Vec<suites::CellReport>,
    pub ring: Vec<ring::RingCellReport>,
    pub durable: Option<durable::DurableResult>,
    pub tls: Option<tls::TlsResult>,
    pub h2c: Option<h2c::H2cResult>,
    pub notes: Vec<String>,
    pub failures: Vec<String>,
    pub elapsed_s: f64,
}

/// A temporary directory removed on drop (unless kept).
pub struct TempDir {
    pub path: PathBuf,
    pub keep: bool,
}

impl TempDir {
    pub fn new(keep: bool) -> Result<Self, String> {
        let path = std::env::temp_dir().join(format!(
            "pyrogate-bench-{}-{}",
            std::process::id(),
            Instant::now().elapsed().subsec_nanos()
        ));
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self { path, keep })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn read_trim(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Runs the selected suites, prints the tables to `out` as they complete (progress goes to
/// stderr), and returns the report. Errors in single runs are collected in
/// `report.failures`; only set-up errors abort.
pub fn run(cfg: &BenchConfig, out: &mut dyn std::io::Write) -> Result<BenchReport, String> {
    cfg.validate()?;
    let started = Instant::now();
    process::install_interrupt_handler();
    let all_cpus = process::allowed_cpus();
    if let Some(cpus) = &cfg.layout.load_cpus {
        // This thread runs the load generator; its threads inherit the mask.
        process::pin_current_thread(cpus)?;
    }
    let io_uring = pyrogate::runtime::driver::choose(DriverChoice::IoUring, 256).map(|_| ());
    let nginx_version = cfg.nginx_bin.as_deref().and_then(nginx::version);
    let machine = Machine {
        cpus: all_cpus,
        kernel: read_trim("/proc/sys/kernel/osrelease"),
        layout: cfg.layout.clone(),
        gateway_bin: format!(
            "{} (run from a copy, so rebuilds during the benchmark do not mix binaries)",
            cfg.gateway_bin.display()
        ),
        nginx: cfg.nginx_bin.as_ref().map(|p| {
            format!(
                "{} ({})",
                nginx_version.as_deref().unwrap_or("?"),
                p.display()
            )
        }),
        echo_module: cfg.echo_module.as_ref().map(|p| p.display().to_string()),
        io_uring: io_uring.clone(),
        nofile_hard: process::nofile_hard_limit(),
        load_avg_at_start: read_trim("/proc/loadavg"),
    };
    let tmp = TempDir::new(cfg.keep_temp)?;
    // Other builds may replace the binaries in target/ while the benchmark runs; every run
    // must use the same gateway, so run copies.
    let bin_dir = tmp.path.join("bin");
    std::fs::create_dir_all(&bin_dir).map_err(|e| format!("{}: {e}", bin_dir.display()))?;
    let copy = |from: &Path, name: &str| -> Result<PathBuf, String> {
        let to = bin_dir.join(name);
        std::fs::copy(from, &to).map_err(|e| format!("copy {}: {e}", from.display()))?;
        Ok(to)
    };
    let gateway_copy = copy(&cfg.gateway_bin, "pyrogate")?;
    let this_exe =
        std::env::current_exe().map_err(|e| format!("cannot locate this executable: {e}"))?;
    let sink_exe = copy(&this_exe, "pyrogate-load")?;
    let mut run_cfg = cfg.clone();
    run_cfg.gateway_bin = gateway_copy;
    let cfg = &run_cfg;
    let mut report = BenchReport {
        machine: machine.clone(),
        protocol: cfg.protocol.name().to_owned(),
        runs: cfg.runs,
        duration_s: cfg.duration.as_secs_f64(),
        warmup_s: cfg.warmup.as_secs_f64(),
        connections: cfg.connections,
        forward: Vec::new(),
        receive: Vec::new(),
        latency: None,
        memory: Vec::new(),
        distributor: Vec::new(),
        ring: Vec::new(),
        durable: None,
        tls: None,
        h2c: None,
        notes: Vec::new(),
        failures: Vec::new(),
        elapsed_s: 0.0,
    };
    let _ = writeln!(out, "{}", header(cfg, &machine));
    let _ = out.flush();
    let mut drivers: Vec<&'static str> = Vec::new();
    match &io_uring {
        Ok(()) => drivers.push("io_uring"),
        Err(why) => report
            .notes
            .push(format!("io_uring variants skipped: {why}")),
    }
    drivers.push("legacy");
    if cfg.nginx_bin.is_none() {
        report.notes.push(
            "nginx not found: nginx variants and ratios skipped (scripts/bench.sh installs it)"
                .into(),
        );
    }
    let ctx = runner::Ctx {
        cfg,
        tmp: &tmp.path,
        drivers: &drivers,
        sink_exe: &sink_exe,
    };
    let mut suites_run = cfg.suites.clone();
    suites_run.sort();
    suites_run.dedup();
    for suite in suites_run {
        if process::interrupted() {
            report.failures.push("interrupted".into());
            break;
        }
        match suite {
            Suite::Forward => {
                let cells = suites::forward(&ctx, &mut report.failures, &mut report.notes)?;
                let _ = writeln!(out, "{}", suites::render_forward(cfg, &cells));
                report.forward = cells;
            }
            Suite::Receive => {
                let cells = suites::receive(&ctx, &mut report.failures, &mut report.notes)?;
                let _ = writeln!(out, "{}", suites::render_receive(cfg, &cells));
                report.receive = cells;
            }
            Suite::Latency => {
                let lat = suites::latency(&ctx, &report.forward, &mut report.failures)?;
                let _ = writeln!(out, "{}", suites::render_latency(cfg, &lat));
                report.latency = Some(lat);
            }
            Suite::Memory => {
                let mem = memory::run(&ctx, &mut report.failures, &mut report.notes);
                let _ = writeln!(out, "{}", memory::render(cfg, &mem));
                report.memory = mem;
            }
            Suite::Distributor => {
                let cells = distributor::run(&ctx, &mut report.failures, &mut report.notes)?;
                let _ = writeln!(out, "{}", distributor::render(cfg, &cells));
                report.distributor = cells;
            }
            Suite::Ring => {
                let r = ring::run(&ctx, &mut report.failures, &mut report.notes)?;
                let _ = writeln!(out, "{}", ring::render(cfg, &r));
                report.ring = r.cells;
            }
            Suite::Durable => {
                let r = durable::run(&ctx, &mut report.failures, &mut report.notes)?;
                let _ = writeln!(out, "{}", durable::render(cfg, &r));
                report.durable = Some(r);
            }
            Suite::Tls => {
                let r = tls::run(&ctx, &mut report.failures, &mut report.notes)?;
                let _ = writeln!(out, "{}", tls::render(cfg, &r));
                report.tls = Some(r);
            }
            Suite::H2c => {
                let r = h2c::run(&ctx, &mut report.failures, &mut report.notes)?;
                let _ = writeln!(out, "{}", h2c::render(cfg, &r));
                report.h2c = Some(r);
            }
        }
        let _ = out.flush();
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    let _ = writeln!(out, "{}", footer(&report));
    if let Some(p) = &cfg.json {
        let json = serde_json::to_vec_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(p, json).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(report)
}

fn header(cfg: &BenchConfig, m: &Machine) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "pyrogate-load bench{} — {} run(s) of {:.1} s per cell (after {:.1} s warm-up), interleaved; medians",
        if cfg.quick { " --quick" } else { "" },
        cfg.runs,
        cfg.duration.as_secs_f64(),
        cfg.warmup.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "machine     {} CPU(s) allowed {:?}, Linux {}, load average at start {}",
        m.cpus.len(),
        m.cpus,
        m.kernel,
        m.load_avg_at_start
    );
    let _ = writeln!(s, "placement   {}", m.layout.describe());
    let _ = writeln!(s, "gateway     {}", m.gateway_bin);
    let _ = writeln!(
        s,
        "nginx       {}{}",
        m.nginx.as_deref().unwrap_or("not found"),
        m.echo_module
            .as_deref()
            .map(|e| format!(", echo module {e}"))
            .unwrap_or_else(|| ", no echo module".into())
    );
    let _ = writeln!(
        s,
        "io_uring    {}",
        match &m.io_uring {
            Ok(()) => "available".to_owned(),
            Err(e) => format!("unavailable: {e}"),
        }
    );
    let _ = writeln!(
        s,
        "load        {} connections, closed loop, protocol {}, synthetic gzip'd pprof; sinks: pyrogate-load sink --checks none",
        cfg.connections,
        cfg.protocol.name()
    );
    let _ = write!(
        s,
        "estimate    about {} min",
        cfg.estimate().as_secs().div_ceil(60)
    );
    s
}

fn footer(r: &BenchReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for n in &r.notes {
        let _ = writeln!(s, "note: {n}");
    }
    for f in &r.failures {
        let _ = writeln!(s, "FAILED: {f}");
    }
    let _ = write!(
        s,
        "bench finished in {:.0} s{}",
        r.elapsed_s,
        if r.failures.is_empty() {
            String::new()
        } else {
            format!(" with {} failure(s)", r.failures.len())
        }
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        let l = Layout::pinned(&[0, 1]);
        assert_eq!(l.load_cpus, Some(vec![0]));
        assert_eq!(l.gateway_cpus, Some(vec![1]));
        assert_eq!((l.gateway_workers, l.load_threads), (1, 1));
        let l = Layout::pinned(&[0, 1, 2, 3]);
        assert_eq!(l.load_cpus, Some(vec![0, 1]));
        assert_eq!(l.gateway_cpus, Some(vec![2, 3]));
        let l = Layout::pinned(&[0, 1, 2]);
        assert_eq!(
            (l.load_cpus, l.gateway_cpus),
            (Some(vec![0]), Some(vec![1, 2]))
        );
        let l = Layout::pinned(&[3]);
        assert_eq!(l, Layout::shared(1));
        assert!(
            Layout::pinned(&[0, 1])
                .describe()
                .contains("on CPU 1 with 1 worker")
        );
        assert!(Layout::shared(2).describe().starts_with("not pinned"));
    }
}
