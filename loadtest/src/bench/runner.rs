//! One measured run: start the server under test in a fresh process, warm up, run the load,
//! read the server's CPU time and peak memory and the machine's steal around the run, stop
//! the server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::BenchConfig;
use super::gateway_config::Ack;
use super::nginx::{self, Nginx};
use crate::load::payload::Source;
use crate::load::report::Report;
use crate::load::tls::TlsOptions;
use crate::load::{self, RunConfig};
use crate::probe::{self, ProbeTls};
use crate::process::children::{Gateway, GatewayOpts, SinkProc};
use crate::process::{self, SpawnOpts, procfs};

/// Per-request timeout of the load.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Sinks outlive the whole benchmark by at most this (a safety net behind the guards).
const SINK_LIFETIME: Duration = Duration::from_secs(3600);

/// What a run needs from the benchmark.
pub struct Ctx<'a> {
    pub cfg: &'a BenchConfig,
    pub tmp: &'a Path,
    /// pyrogate drivers usable here (`io_uring` only when the kernel allows it).
    pub drivers: &'a [&'static str],
    /// The `pyrogate-load` binary that runs the sinks.
    pub sink_exe: &'a Path,
}

/// The thing the load goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Variant {
    /// Straight to the first sink.
    Direct,
    /// pyrogate on a driver (`io_uring` / `legacy`); forwards to the sinks, or answers 200
    /// and discards when there are none.
    Pyrogate {
        driver: &'static str,
    },
    /// pyrogate with the edge distributor on (`validate` and `normalize`; the `distributor`
    /// suite's config file).
    PyrogateDistributor {
        driver: &'static str,
    },
    /// pyrogate in ring mode (`[forward] mode = "ring"`) with every sink a ring member and
    /// replication factor `rf` (the `ring` suite's config file, [`super::gateway_config::ring`]).
    PyrogateRing {
        driver: &'static str,
        rf: usize,
    },
    /// pyrogate forwarding with the given `forward.ack` (`durable`: a fresh spool per run in
    /// a scratch directory removed afterwards; [`super::gateway_config::durable`]).
    PyrogateAck {
        driver: &'static str,
        ack: Ack,
    },
    /// pyrogate with `[server.tls]` on its listener (the `tls` suite's certificate,
    /// [`super::gateway_config::tls_files`]); the load speaks TLS to it.
    PyrogateTls {
        driver: &'static str,
    },
    /// nginx `proxy_pass` + `mirror`.
    NginxProxy,
    NginxReturn200,
    NginxEcho,
    /// nginx `grpc_pass` to the first sink over h2c, on an HTTP/2 listener (the `h2c`
    /// suite's peer of pyrogate's gRPC Push).
    NginxGrpc,
}

impl Variant {
    pub fn label(&self, fanout: usize) -> String {
        match self {
            Variant::Direct => "direct → sink".into(),
            Variant::Pyrogate { driver } => format!("pyrogate {}", driver_name(driver)),
            Variant::PyrogateDistributor { driver } => {
                format!("pyrogate {} +distributor", driver_name(driver))
            }
            Variant::PyrogateRing { driver, rf } => {
                format!("pyrogate {} ring RF {rf}", driver_name(driver))
            }
            Variant::PyrogateAck { driver, ack } => {
                format!("pyrogate {} {}", driver_name(driver), ack.label())
            }
            Variant::PyrogateTls { driver } => format!("pyrogate {} TLS", driver_name(driver)),
            Variant::NginxProxy if fanout > 1 => "nginx proxy_pass+mirror".into(),
            Variant::NginxProxy => "nginx proxy_pass".into(),
            Variant::NginxReturn200 => "nginx return 200".into(),
            Variant::NginxEcho => "nginx echo (reads body)".into(),
            Variant::NginxGrpc => "nginx grpc_pass".into(),
        }
    }

    pub fn is_nginx(&self) -> bool {
        matches!(
            self,
            Variant::NginxProxy | Variant::NginxReturn200 | Variant::NginxEcho | Variant::NginxGrpc
        )
    }
}

/// What the tables call a driver: `legacy` is monoio's epoll driver.
pub fn driver_name(driver: &str) -> &str {
    if driver == "legacy" { "epoll" } else { driver }
}

/// One cell of a table: a variant at a fan-out and profile size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    pub variant: Variant,
    pub fanout: usize,
    pub size: usize,
}

/// What one run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    pub round: usize,
    /// Completed requests per second (whole machine).
    pub rps: f64,
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Open loop: p99 of the generator's own lateness.
    pub schedule_lag_p99_ms: Option<f64>,
    /// CPU seconds of the server under test during the measured run.
    pub cpu_s: Option<f64>,
    pub cpu_ms_per_1k: Option<f64>,
    /// Share of that CPU time spent in user space (the rest is the kernel: TCP, syscalls,
    /// context switches), percent.
    pub cpu_user_pct: Option<f64>,
    /// Peak RSS (VmHWM) of the server process (nginx: its workers), bytes.
    pub peak_rss: Option<u64>,
    /// CPU of the sinks per 1000 client requests.
    pub sink_cpu_ms_per_1k: Option<f64>,
    /// Profiles the sinks accepted / (ok requests × fan-out).
    pub delivered: Option<f64>,
    pub steal_pct: f64,
    pub busy_pct: f64,
    /// Driver the gateway reported.
    pub driver: Option<String>,
    /// This run replaced one with too much steal.
    pub rerun: bool,
    /// Gateway metrics asked for ([`measure_scraped`]): their change over the measured run,
    /// by series (`name{labels}` as `/metrics` prints it).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub gateway_metrics: BTreeMap<String, f64>,
}

/// The sinks of the forwarding suites.
pub struct Sinks {
    pub procs: Vec<SinkProc>,
}

impl Sinks {
    pub fn start(ctx: &Ctx<'_>, n: usize) -> Result<Self, String> {
        let cfg = ctx.cfg;
        let args: Vec<String> = [
            "--checks",
            "none",
            "--no-checksum",
            "--records",
            "0",
            "--idle-timeout",
            "600s",
            "--driver",
            &cfg.sink_driver,
            "--workers",
            &cfg.layout.load_threads.to_string(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let spawn = SpawnOpts {
            cpus: cfg.layout.load_cpus.clone(),
            nofile: None,
        };
        let procs = (0..n)
            .map(|_| SinkProc::start(ctx.sink_exe, &args, SINK_LIFETIME, &spawn))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { procs })
    }

    pub fn urls(&self, n: usize) -> Vec<String> {
        self.procs.iter().take(n).map(SinkProc::url).collect()
    }

    fn accepted(&self) -> Option<u64> {
        let mut sum = 0;
        for s in &self.procs {
            sum += s.stats().ok()?["totals"]["accepted"].as_u64()?;
        }
        Some(sum)
    }

    fn cpu_s(&self) -> Option<f64> {
        self.procs
            .iter()
            .map(|s| procfs::cpu_seconds(s.proc.pid()))
            .sum()
    }
}

/// A server under test.
enum Server {
    Gateway(Gateway),
    Nginx(Nginx),
}

impl Server {
    /// Processes whose CPU counts.
    fn cpu_pids(&self) -> Vec<u32> {
        match self {
            Server::Gateway(g) => vec![g.proc.pid()],
            Server::Nginx(n) => n.proc.pids(),
        }
    }

    /// Processes whose memory counts (nginx: the workers; the idle master is left out).
    fn rss_pids(&self) -> Vec<u32> {
        match self {
            Server::Gateway(g) => vec![g.proc.pid()],
            Server::Nginx(n) => n.workers.clone(),
        }
    }

    fn url(&self) -> String {
        match self {
            Server::Gateway(g) => g.url(),
            Server::Nginx(n) => n.url(),
        }
    }

    fn check_alive(&mut self) -> Result<(), String> {
        let p = match self {
            Server::Gateway(g) => &mut g.proc,
            Server::Nginx(n) => &mut n.proc,
        };
        match p.exited() {
            None => Ok(()),
            Some(st) => Err(format!(
                "{} died during the run ({st}):\n{}",
                p.name(),
                p.tail()
            )),
        }
    }
}

/// `(user, sys)` CPU seconds of all `pids` together.
fn cpu_of(pids: &[u32]) -> Option<(f64, f64)> {
    pids.iter()
        .map(|p| procfs::cpu_user_sys(*p))
        .try_fold((0.0, 0.0), |(u, s), x| x.map(|(a, b)| (u + a, s + b)))
}

/// A free loopback port (bound, then released).
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// Starts the server of `cell` (none for [`Variant::Direct`]).
fn start_server(
    ctx: &Ctx<'_>,
    cell: &Cell,
    sinks: &[SocketAddr],
    forward: &[String],
    scratch: Option<&Path>,
) -> Result<Option<Server>, String> {
    let cfg = ctx.cfg;
    let spawn = SpawnOpts {
        cpus: cfg.layout.gateway_cpus.clone(),
        nofile: None,
    };
    match &cell.variant {
        Variant::Direct => Ok(None),
        Variant::Pyrogate { driver }
        | Variant::PyrogateDistributor { driver }
        | Variant::PyrogateRing { driver, .. }
        | Variant::PyrogateAck { driver, .. }
        | Variant::PyrogateTls { driver } => {
            let (forward_to, extra) = match &cell.variant {
                Variant::PyrogateDistributor { .. } => {
                    let file = super::gateway_config::write_distributor(ctx.tmp)?;
                    (
                        forward.to_vec(),
                        vec!["--config".to_owned(), file.display().to_string()],
                    )
                }
                // Ring mode refuses `--forward-to`: the members are the destinations.
                Variant::PyrogateRing { rf, .. } => {
                    let file = super::gateway_config::write_ring(ctx.tmp, *rf, forward)?;
                    (
                        Vec::new(),
                        vec!["--config".to_owned(), file.display().to_string()],
                    )
                }
                Variant::PyrogateAck { ack, .. } => (forward.to_vec(), ack.flags(scratch)?),
                Variant::PyrogateTls { .. } => {
                    let files = super::gateway_config::tls_files(ctx.tmp)?;
                    (
                        forward.to_vec(),
                        vec!["--config".to_owned(), files.config.display().to_string()],
                    )
                }
                _ => (forward.to_vec(), Vec::new()),
            };
            let probe_tls = match &cell.variant {
                Variant::PyrogateTls { .. } => Some(bench_probe_tls(ctx)?),
                _ => None,
            };
            let g = Gateway::start_tls(
                &GatewayOpts {
                    bin: cfg.gateway_bin.clone(),
                    driver: (*driver).to_owned(),
                    workers: cfg.layout.gateway_workers,
                    forward_to,
                    extra,
                    spawn,
                },
                probe_tls,
            )?;
            Ok(Some(Server::Gateway(g)))
        }
        v => {
            let bin = cfg.nginx_bin.as_deref().ok_or("nginx is not installed")?;
            let mode = match v {
                Variant::NginxProxy => nginx::Mode::Proxy {
                    upstreams: sinks.to_vec(),
                },
                Variant::NginxReturn200 => nginx::Mode::Return200,
                Variant::NginxGrpc => nginx::Mode::Grpc {
                    upstream: *sinks.first().ok_or("nginx grpc_pass needs a sink")?,
                    ready_port: free_port()?,
                },
                _ => nginx::Mode::Echo {
                    module: cfg
                        .echo_module
                        .clone()
                        .ok_or("the nginx echo module is not installed")?,
                },
            };
            let mut last = String::new();
            for _ in 0..3 {
                let conf = nginx::Conf {
                    dir: ctx.tmp.join("nginx"),
                    port: free_port()?,
                    workers: cfg.layout.gateway_workers,
                    mode: mode.clone(),
                    max_conns: (cfg.connections * 4 + 1024).max(4096),
                    body_buffer: (cell.size * 2 + 64 * 1024).max(256 * 1024),
                    as_root: process::is_root(),
                };
                match Nginx::start(bin, &conf, &spawn) {
                    Ok(n) => return Ok(Some(Server::Nginx(n))),
                    // A port taken between our probe and nginx's bind: try another.
                    Err(e) if e.contains("Address already in use") => last = e,
                    Err(e) => return Err(e),
                }
            }
            Err(last)
        }
    }
}

/// How the load speaks to a [`Variant::PyrogateTls`] gateway: trusting the benchmark's CA,
/// verifying [`super::gateway_config::TLS_SERVER_NAME`], resumption allowed.
pub fn bench_tls_options(ctx: &Ctx<'_>) -> Result<TlsOptions, String> {
    let files = super::gateway_config::tls_files(ctx.tmp)?;
    Ok(TlsOptions {
        ca: Some(files.ca),
        server_name: Some(super::gateway_config::TLS_SERVER_NAME.to_owned()),
        ..TlsOptions::default()
    })
}

/// The control plane's TLS (readiness, `/metrics`) to a [`Variant::PyrogateTls`] gateway.
fn bench_probe_tls(ctx: &Ctx<'_>) -> Result<ProbeTls, String> {
    let opts = bench_tls_options(ctx)?;
    Ok(ProbeTls {
        config: crate::load::tls::client_config(&opts)?,
        name: crate::load::tls::server_name(&opts, "")?,
    })
}

/// The load of one run (an `https://` target: with [`bench_tls_options`]).
pub fn load_config(
    ctx: &Ctx<'_>,
    target: &str,
    source: Source,
    rate: Option<f64>,
    duration: Duration,
) -> RunConfig {
    let cfg = ctx.cfg;
    RunConfig {
        target: target.to_owned(),
        protocol: cfg.protocol,
        connections: cfg.connections,
        rate,
        duration: Some(duration),
        requests: None,
        timeout: REQUEST_TIMEOUT,
        source,
        seed: 1,
        tenant: None,
        driver: cfg.load_driver,
        threads: Some(cfg.layout.load_threads),
        progress: false,
        reconnect_every: None,
        tls: if target.starts_with("https://") {
            // The files were made when the gateway started; an error here shows as the
            // load's "needs --tls-ca" error.
            bench_tls_options(ctx).unwrap_or_default()
        } else {
            TlsOptions::default()
        },
    }
}

fn run_load(cfg: &RunConfig) -> Result<Report, String> {
    load::run(cfg, &mut std::io::sink())
}

/// Runs the load of one run (warm-up or measured) described by a [`RunConfig`].
pub type LoadFn<'a> = dyn Fn(&RunConfig) -> Result<Report, String> + 'a;

/// The sinks a cell's server sends to: all of them for a ring (every sink is a member),
/// the first `fanout` otherwise.
fn destinations(cell: &Cell, sinks: &Sinks) -> usize {
    match cell.variant {
        Variant::PyrogateRing { .. } => sinks.procs.len(),
        _ => cell.fanout,
    }
}

/// Measures `cell` once: fresh server, warm-up, measured run, with a synthetic profile of
/// the cell's size in every request.
pub fn measure(
    ctx: &Ctx<'_>,
    cell: &Cell,
    sinks: Option<&Sinks>,
    rate: Option<f64>,
    round: usize,
) -> Result<Sample, String> {
    let synthetic = |c: &Cell| Ok(Source::Synthetic { size: c.size });
    measure_with(ctx, cell, sinks, rate, round, &synthetic)
}

/// Where a run's request bodies come from, asked once per run before its server starts.
pub type PayloadFn<'a> = dyn Fn(&Cell) -> Result<Source, String> + 'a;

/// [`measure`] with the request bodies from `payload`.
pub fn measure_with(
    ctx: &Ctx<'_>,
    cell: &Cell,
    sinks: Option<&Sinks>,
    rate: Option<f64>,
    round: usize,
    payload: &PayloadFn<'_>,
) -> Result<Sample, String> {
    measure_full(ctx, cell, sinks, rate, round, payload, &run_load)
}

/// [`measure_with`] with the load generated by `load` (the `ring` suite's cycles over many
/// distinct requests; the others use [`load::run`]).
pub fn measure_full(
    ctx: &Ctx<'_>,
    cell: &Cell,
    sinks: Option<&Sinks>,
    rate: Option<f64>,
    round: usize,
    payload: &PayloadFn<'_>,
    load: &LoadFn<'_>,
) -> Result<Sample, String> {
    measure_scraped(ctx, cell, sinks, rate, round, payload, load, &[])
}

/// A directory of one run under the benchmark's temp dir (the spool of a durable gateway
/// and its configuration), removed when dropped, i.e. after the server stopped.
pub struct Scratch {
    pub path: PathBuf,
    keep: bool,
}

impl Scratch {
    fn new(ctx: &Ctx<'_>) -> Result<Self, String> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = ctx.tmp.join(format!("run-{n}"));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self {
            path,
            keep: ctx.cfg.keep_temp,
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Whether a run of `cell` needs a [`Scratch`] directory.
fn needs_scratch(cell: &Cell) -> bool {
    matches!(
        cell.variant,
        Variant::PyrogateAck {
            ack: Ack::Durable { .. },
            ..
        }
    )
}

/// The series of the gateway's `/metrics` whose name starts with one of `prefixes`, by
/// `name{labels}`.
pub fn scrape(addr: SocketAddr, prefixes: &[&str]) -> Result<BTreeMap<String, f64>, String> {
    scrape_with(addr, None, prefixes)
}

/// [`scrape`], over TLS when `tls` is given.
pub fn scrape_with(
    addr: SocketAddr,
    tls: Option<&ProbeTls>,
    prefixes: &[&str],
) -> Result<BTreeMap<String, f64>, String> {
    let answer = probe::get_with(addr, "/metrics", Duration::from_secs(5), tls)?;
    if answer.status != 200 {
        return Err(format!("GET /metrics answered {}", answer.status));
    }
    Ok(parse_metrics(
        &String::from_utf8_lossy(&answer.body),
        prefixes,
    ))
}

/// [`scrape`] on Prometheus' text format.
pub fn parse_metrics(text: &str, prefixes: &[&str]) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
        .filter_map(|l| {
            let (series, value) = l.trim_end().rsplit_once(' ')?;
            let v = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().ok()?,
            };
            Some((series.to_owned(), v))
        })
        .collect()
}

/// After the measured run of a gateway that answers before it delivers: waits until the
/// sinks have every copy of the run's requests, or nothing arrived for 300 ms, or 3 s.
fn wait_for_deliveries(sinks: &Sinks, before: u64, expected: u64) {
    let end = Instant::now() + Duration::from_secs(3);
    let (mut last, mut since) = (None, Instant::now());
    while Instant::now() < end {
        let Some(now) = sinks.accepted() else { return };
        if now.saturating_sub(before) >= expected {
            return;
        }
        if last != Some(now) {
            (last, since) = (Some(now), Instant::now());
        } else if since.elapsed() >= Duration::from_millis(300) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`measure_full`] that also reads the gateway's `/metrics` series starting with one of
/// `scrape_prefixes` before and after the measured run ([`Sample::gateway_metrics`] holds
/// the change). A durable gateway gets a fresh [`Scratch`] directory (its spool) that is
/// removed after the run.
#[allow(clippy::too_many_arguments)]
pub fn measure_scraped(
    ctx: &Ctx<'_>,
    cell: &Cell,
    sinks: Option<&Sinks>,
    rate: Option<f64>,
    round: usize,
    payload: &PayloadFn<'_>,
    load: &LoadFn<'_>,
    scrape_prefixes: &[&str],
) -> Result<Sample, String> {
    let cfg = ctx.cfg;
    let source = payload(cell)?;
    let sink_addrs: Vec<SocketAddr> = sinks
        .map(|s| s.procs.iter().take(cell.fanout).map(|p| p.addr).collect())
        .unwrap_or_default();
    let forward: Vec<String> = sinks
        .map(|s| s.urls(destinations(cell, s)))
        .unwrap_or_default();
    // Declared before the server, so dropped after it.
    let scratch = needs_scratch(cell).then(|| Scratch::new(ctx)).transpose()?;
    let mut server = start_server(
        ctx,
        cell,
        &sink_addrs,
        &forward,
        scratch.as_ref().map(|s| s.path.as_path()),
    )?;
    let gateway_addr = match &server {
        Some(Server::Gateway(g)) if !scrape_prefixes.is_empty() => Some((g.addr, g.tls.clone())),
        _ => None,
    };
    let target = match (&server, sinks) {
        (Some(s), _) => s.url(),
        (None, Some(s)) => s.procs.first().ok_or("no sink")?.url(),
        (None, None) => return Err("the direct path needs a sink".into()),
    };
    if !cfg.warmup.is_zero() {
        load(&load_config(ctx, &target, source.clone(), rate, cfg.warmup))?;
    }
    // Read before the gateway's CPU time, so that answering it is not counted.
    let metrics0 = gateway_addr
        .as_ref()
        .map(|(a, tls)| scrape_with(*a, tls.as_ref(), scrape_prefixes))
        .transpose()?;
    let pids = server.as_ref().map(Server::cpu_pids).unwrap_or_default();
    let cpu0 = cpu_of(&pids);
    let sink_cpu0 = sinks.and_then(Sinks::cpu_s);
    let acc0 = sinks.and_then(Sinks::accepted);
    let t0 = procfs::cpu_times();
    let report = load(&load_config(ctx, &target, source, rate, cfg.duration))?;
    let t1 = procfs::cpu_times();
    let cpu1 = cpu_of(&pids);
    let sink_cpu1 = sinks.and_then(Sinks::cpu_s);
    let metrics1 = gateway_addr
        .as_ref()
        .map(|(a, tls)| scrape_with(*a, tls.as_ref(), scrape_prefixes))
        .transpose()?;
    // The last mirrored copies may still be on their way to the sinks; a gateway that
    // answers before delivering may still hold a queue (or a spool) of them.
    match (&cell.variant, sinks, acc0) {
        (Variant::PyrogateAck { ack, .. }, Some(s), Some(before))
            if ack.answers_before_delivery() =>
        {
            wait_for_deliveries(s, before, report.ok * cell.fanout as u64);
        }
        _ if sinks.is_some() && server.is_some() => {
            std::thread::sleep(Duration::from_millis(50));
        }
        _ => {}
    }
    let acc1 = sinks.and_then(Sinks::accepted);
    let gateway_metrics = match (metrics0, metrics1) {
        (Some(a), Some(b)) => b
            .iter()
            .map(|(k, v)| (k.clone(), v - a.get(k).copied().unwrap_or(0.0)))
            .collect(),
        _ => BTreeMap::new(),
    };
    let mut sample = Sample {
        round,
        gateway_metrics,
        rps: report.achieved_rate,
        requests: report.requests,
        ok: report.ok,
        failed: report.failed,
        p50_ms: report.latency.p50_ms,
        p90_ms: report.latency.p90_ms,
        p99_ms: report.latency.p99_ms,
        p999_ms: report.latency.p999_ms,
        schedule_lag_p99_ms: report.schedule_lag.map(|l| l.p99_ms),
        ..Sample::default()
    };
    if let (Some(a), Some(b)) = (t0, t1) {
        sample.steal_pct = a.steal_pct(&b);
        sample.busy_pct = a.busy_pct(&b);
    }
    if let Some(s) = server.as_mut() {
        s.check_alive()?;
        if let (Some((u0, s0)), Some((u1, s1))) = (cpu0, cpu1) {
            let total = (u1 - u0) + (s1 - s0);
            sample.cpu_s = Some(total);
            sample.cpu_ms_per_1k = super::stats::cpu_ms_per_1k(total, report.requests);
            if total > 0.0 {
                sample.cpu_user_pct = Some((u1 - u0) * 100.0 / total);
            }
        }
        sample.peak_rss = s
            .rss_pids()
            .iter()
            .map(|p| procfs::status_bytes(*p, "VmHWM"))
            .sum();
        if let Server::Gateway(g) = s {
            sample.driver = Some(g.driver.clone());
        }
    }
    if let (Some(a), Some(b)) = (sink_cpu0, sink_cpu1) {
        sample.sink_cpu_ms_per_1k = super::stats::cpu_ms_per_1k(b - a, report.requests);
    }
    if let (Some(a), Some(b)) = (acc0, acc1)
        && report.ok > 0
    {
        let fanout = if server.is_some() { cell.fanout } else { 1 };
        sample.delivered = Some((b.saturating_sub(a)) as f64 / (report.ok * fanout as u64) as f64);
    }
    drop(server);
    drop(scratch);
    Ok(sample)
}

/// One progress line (stderr).
pub fn progress_line(what: &str, label: &str, s: &Sample) -> String {
    format!(
        "  {what:<22} {label:<30} {:>9.0} req/s  cpu {:>7} s/1k  p50 {:>7.3}  p99 {:>7.3} ms  steal {:>4.1}%{}{}",
        s.rps,
        s.cpu_ms_per_1k
            .map_or("-".into(), |c| format!("{:.4}", c / 1000.0)),
        s.p50_ms,
        s.p99_ms,
        s.steal_pct,
        if s.failed > 0 {
            format!("  FAILED {}", s.failed)
        } else {
            String::new()
        },
        if s.rerun { "  (re-run)" } else { "" }
    )
}
