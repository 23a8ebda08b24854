//! `pyrogate-load soak`: a chaos soak of the real `pyrogate` binary.
//!
//! Two gateways run side by side on 127.0.0.1 — one with `ack = "all"`, one with `ack =
//! "durable"` and a spool in a temporary directory — both with a small `conn_limit`,
//! fanning out to the same two sinks (`pyrogate-load sink`, started here) through a
//! [`proxy`] in front of each sink. For the whole run but a final quiet phase, all at once:
//!
//! * the sinks flap: error statuses at a rate, hangs, slow answers and
//!   bursts of failures through the sink's `POST /control`; connections reset (mid-request,
//!   or instead of the answer), slow reads and outages through the proxy;
//! * clients disconnect mid-body, slowloris connections trickle their heads, oversized and
//!   malformed requests arrive, and connection floods go beyond `conn_limit` ([`abuse`]);
//! * every 10 s each gateway's configuration file changes and the gateway gets `SIGHUP`.
//!
//! Meanwhile paced agent-shaped requests with unique bodies ([`traffic`]) go to both
//! gateways; every `200` is recorded by body checksum. Every second each gateway's RSS,
//! open fds, connections and queue/spool bytes are sampled and `/-/healthy` is asked on
//! connections that reach every worker ([`monitor`]). Then faults stop (the quiet phase:
//! traffic goes on), traffic stops, and the durable gateway gets time to deliver its spool.
//!
//! The run fails when RSS or fds grow (least-squares slope over the last half of the
//! samples, flood windows left out, above `--max-rss-slope` / `--max-fd-slope`), when an
//! acknowledged body is missing at a sink ([`ledger`]), when a health check fails, when a
//! gateway dies or panics, and on a few invariants on the way (connections above
//! `conn_limit`, a malformed request answered 2xx, a slowloris connection not cut, a body
//! accepted by a sink that nobody sent whole, an unclean exit on SIGTERM).

pub mod abuse;
pub mod ledger;
pub mod monitor;
pub mod proxy;
pub mod report;
pub mod traffic;

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cli::Driver;
use crate::probe;
use crate::process::children::{START_TIMEOUT, SinkProc, startup_line};
use crate::process::{self, Managed, SpawnOpts};
use ledger::SinkLedger;
use monitor::Sample;
use proxy::{Mode, Proxy, splitmix};
use traffic::{Bodies, Kind};

// === the gateways' settings (written to their configuration files) ===

/// `server.server_read_timeout`: what cuts slowloris connections.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// `server.server_write_timeout`: bounds an `ack = all` answer while sinks hang.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
pub const MAX_BODY: u64 = 1 << 20;
pub const MAX_INFLATED: u64 = 8 << 20;
pub const MAX_HEADER: u64 = 16 << 10;
pub const WORKERS: usize = 2;
/// `forward.writer_threads` (the default) and the per-thread pool bounds written below.
pub const WRITER_THREADS: u64 = 1;
pub const MAX_INFLIGHT_PER_ENDPOINT: u64 = 32;
pub const MAX_IDLE_PER_ENDPOINT: u64 = 16;
pub const ENDPOINTS: u64 = 2;

/// Live TCP connections a gateway may hold at once: `conn_limit` accepted ones, and per
/// delivering thread (workers and writers) and endpoint the in-flight plus idle pool
/// bounds, plus a margin for the soak's own health and metrics connections (which count
/// toward `conn_limit` but may wait beyond it in a flood) and listeners.
pub fn established_bound(conn_limit: u64) -> u64 {
    conn_limit
        + (WORKERS as u64 + WRITER_THREADS)
            * ENDPOINTS
            * (MAX_INFLIGHT_PER_ENDPOINT + MAX_IDLE_PER_ENDPOINT)
        + 128
}

// === the faults' rhythm ===

pub const RELOAD_EVERY: Duration = Duration::from_secs(10);
pub const FLOOD_PERIOD: Duration = Duration::from_secs(20);
pub const FLOOD_HOLD: Duration = Duration::from_secs(3);
pub const SLOWLORIS_CONNS: usize = 16;
pub const SLOWLORIS_TICK: Duration = Duration::from_millis(500);
pub const MIDBODY_EVERY: Duration = Duration::from_millis(100);
pub const MALFORMED_EVERY: Duration = Duration::from_millis(200);
/// A sink's injected hang lasts this long (the gateway's `remote_timeout` cuts it first).
pub const SINK_HANG_FOR: Duration = Duration::from_secs(20);
/// A fault state of a sink lasts between these.
pub const FLAP_MIN: Duration = Duration::from_secs(2);
pub const FLAP_MAX: Duration = Duration::from_secs(6);

pub const MIN_DURATION: Duration = Duration::from_secs(30);
pub const MAX_DURATION: Duration = Duration::from_secs(4 * 3600);

fn duration(s: &str) -> Result<Duration, String> {
    pyrogate::config::units::parse_duration(s).map_err(|e| e.to_string())
}

#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// Length of the run: faults, then a quiet phase (a sixth of it, 10–60 s); then up to
    /// a tenth of it (15–120 s) for the durable spool to drain.
    #[arg(long, default_value = "10m", value_parser = duration)]
    pub duration: Duration,
    /// The gateway binary (default: `pyrogate` next to this executable).
    #[arg(long)]
    pub gateway: Option<PathBuf>,
    /// The gateways' I/O driver.
    #[arg(long, value_enum, default_value_t = Driver::Auto)]
    pub driver: Driver,
    /// Each gateway's `server.conn_limit`; the floods open more.
    #[arg(long, default_value_t = 512)]
    pub conn_limit: u64,
    /// Connections of each flood (default: conn_limit + 256).
    #[arg(long)]
    pub flood: Option<usize>,
    /// Tracked client connections per gateway.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Tracked requests per second per gateway (at most; paced).
    #[arg(long, default_value_t = 60.0)]
    pub rate: f64,
    /// Fail when the gateway's RSS grows faster than this (MiB per minute, least-squares
    /// slope over the last half of the samples).
    #[arg(long, default_value_t = 1.0)]
    pub max_rss_slope: f64,
    /// Fail when the gateway's open fds grow faster than this (per minute, same fit).
    #[arg(long, default_value_t = 1.0)]
    pub max_fd_slope: f64,
    /// Seed of the fault schedule and the bodies.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Keep the temporary directory (configurations, spool).
    #[arg(long)]
    pub keep_temp: bool,
    /// Write every sample of both gateways to this CSV file.
    #[arg(long, value_name = "FILE")]
    pub samples: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct SoakConfig {
    pub duration: Duration,
    pub quiet: Duration,
    pub drain: Duration,
    pub gateway_bin: PathBuf,
    pub driver: &'static str,
    pub conn_limit: u64,
    pub flood: usize,
    pub clients: usize,
    pub rate: f64,
    pub max_rss_slope: f64,
    pub max_fd_slope: f64,
    pub seed: u64,
    pub keep_temp: bool,
    pub samples: Option<PathBuf>,
}

/// The quiet phase of a run of `d`: a sixth, within 10–60 s.
pub fn quiet_for(d: Duration) -> Duration {
    (d / 6).clamp(Duration::from_secs(10), Duration::from_secs(60))
}

/// How long the spool may take to drain after a run of `d`: a tenth, within 15–120 s.
pub fn drain_for(d: Duration) -> Duration {
    (d / 10).clamp(Duration::from_secs(15), Duration::from_secs(120))
}

impl SoakArgs {
    pub fn config(&self) -> Result<SoakConfig, String> {
        if !(MIN_DURATION..=MAX_DURATION).contains(&self.duration) {
            return Err(format!(
                "--duration must be within {}s..={}s",
                MIN_DURATION.as_secs(),
                MAX_DURATION.as_secs()
            ));
        }
        if !(64..=8192).contains(&self.conn_limit) {
            return Err("--conn-limit must be within 64..=8192".into());
        }
        let flood = self.flood.unwrap_or(self.conn_limit as usize + 256);
        if flood > 16_384 {
            return Err("--flood must be at most 16384".into());
        }
        if !(1..=64).contains(&self.clients) {
            return Err("--clients must be within 1..=64".into());
        }
        if !(self.rate > 0.0 && self.rate <= 5000.0) {
            return Err("--rate must be within (0, 5000]".into());
        }
        if !(self.max_rss_slope > 0.0 && self.max_fd_slope > 0.0) {
            return Err("--max-rss-slope and --max-fd-slope must be positive".into());
        }
        Ok(SoakConfig {
            duration: self.duration,
            quiet: quiet_for(self.duration),
            drain: drain_for(self.duration),
            gateway_bin: process::sibling_binary("pyrogate", self.gateway.as_deref())?,
            driver: self.driver.flag(),
            conn_limit: self.conn_limit,
            flood,
            clients: self.clients,
            rate: self.rate,
            max_rss_slope: self.max_rss_slope,
            max_fd_slope: self.max_fd_slope,
            seed: self.seed,
            keep_temp: self.keep_temp,
            samples: self.samples.clone(),
        })
    }
}

// === shared state ===

/// The run's clock and stop flags.
pub struct Ctl {
    pub start: Instant,
    pub fault_end: Instant,
    pub end: Instant,
    /// Everything stops (interrupt, a gateway died).
    stop: AtomicBool,
    /// Samplers and health checks run while set (into the drain).
    monitoring: AtomicBool,
}

impl Ctl {
    pub fn new(duration: Duration, quiet: Duration) -> Self {
        let start = Instant::now();
        Self {
            start,
            fault_end: start + duration.saturating_sub(quiet),
            end: start + duration,
            stop: AtomicBool::new(false),
            monitoring: AtomicBool::new(true),
        }
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn faults_on(&self) -> bool {
        !self.stopped() && Instant::now() < self.fault_end
    }

    pub fn traffic_on(&self) -> bool {
        !self.stopped() && Instant::now() < self.end
    }

    pub fn monitoring(&self) -> bool {
        !self.stopped() && self.monitoring.load(Ordering::SeqCst)
    }

    pub fn remaining_faults(&self) -> Duration {
        self.fault_end.saturating_duration_since(Instant::now())
    }

    /// Seconds since the start of the traffic.
    pub fn t(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts by name.
#[derive(Default)]
pub struct Tally(Mutex<BTreeMap<String, u64>>);

impl Tally {
    pub fn add(&self, k: &str) {
        self.add_n(k, 1);
    }

    pub fn add_n(&self, k: &str, n: u64) {
        *lock(&self.0).entry(k.to_owned()).or_default() += n;
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        lock(&self.0).clone()
    }
}

#[derive(Debug, Clone, Default)]
pub struct FloodStats {
    pub floods: u64,
    pub opened: u64,
    pub answered: u64,
    pub connect_failed: u64,
}

#[derive(Debug, Clone, Default)]
pub struct SlowStats {
    pub cut: u64,
    /// Longest life of a cut connection.
    pub max_hold: Duration,
    pub hold_sum: Duration,
    /// Still open after the give-up time (closed by the soak).
    pub survived: u64,
}

#[derive(Debug, Clone, Default)]
pub struct HealthStats {
    pub ok: u64,
    pub max_latency: Duration,
    /// Fresh connections that waited in the backlog during a flood.
    pub waited: u64,
    /// `(t, what)` of every failure.
    pub failures: Vec<(f64, String)>,
    pub scrape_failures: u64,
}

/// One gateway's state, shared by its threads.
pub struct GwState {
    /// `all` or `durable`.
    pub name: &'static str,
    pub index: u64,
    pub addr: SocketAddr,
    pub pid: u32,
    pub seed: u64,
    counter: AtomicU64,
    pub outcomes: Tally,
    pub abuse: Tally,
    acked: Mutex<Vec<(u64, Kind)>>,
    sent: Mutex<HashSet<u64>>,
    prefixes: Mutex<HashSet<u64>>,
    /// `(start, end)` seconds; the end is set when the flood is over.
    floods: Mutex<Vec<(f64, f64)>>,
    flood: Mutex<FloodStats>,
    slow: Mutex<SlowStats>,
    samples: Mutex<Vec<Sample>>,
    health: Mutex<HealthStats>,
    problems: Mutex<Vec<String>>,
}

impl GwState {
    fn new(name: &'static str, index: u64, addr: SocketAddr, pid: u32, seed: u64) -> Self {
        Self {
            name,
            index,
            addr,
            pid,
            seed: splitmix(seed ^ index),
            counter: AtomicU64::new(0),
            outcomes: Tally::default(),
            abuse: Tally::default(),
            acked: Mutex::new(Vec::new()),
            sent: Mutex::new(HashSet::new()),
            prefixes: Mutex::new(HashSet::new()),
            floods: Mutex::new(Vec::new()),
            flood: Mutex::new(FloodStats::default()),
            slow: Mutex::new(SlowStats::default()),
            samples: Mutex::new(Vec::new()),
            health: Mutex::new(HealthStats::default()),
            problems: Mutex::new(Vec::new()),
        }
    }

    pub fn next_request(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// The body number of tracked request `n` (distinct across gateways).
    pub fn unique(&self, n: u64) -> u64 {
        (self.index << 56) | n
    }

    /// The body number of mid-body disconnect `i`.
    pub fn unique_abuse(&self, i: u64) -> u64 {
        (self.index << 56) | (1 << 55) | i
    }

    pub fn note_sent(&self, sum: u64) {
        lock(&self.sent).insert(sum);
    }

    pub fn note_prefix(&self, sum: u64) {
        lock(&self.prefixes).insert(sum);
    }

    pub fn ack(&self, sum: u64, kind: Kind) {
        lock(&self.acked).push((sum, kind));
    }

    pub fn tally_outcome(&self, kind: Kind, r: &Result<u16, &'static str>) {
        let what = match r {
            Ok(s) => s.to_string(),
            Err(e) => (*e).to_owned(),
        };
        self.outcomes.add(&what);
        self.outcomes.add(&format!("{} {what}", kind.name()));
    }

    pub fn problem(&self, p: String) {
        let mut v = lock(&self.problems);
        if !v.contains(&p) {
            v.push(p);
        }
    }

    pub fn flood_begin(&self, t: f64) {
        lock(&self.floods).push((t, f64::INFINITY));
    }

    pub fn flood_end(&self, t_end: f64, opened: u64, answered: u64, failed: u64) {
        if let Some(last) = lock(&self.floods).last_mut() {
            last.1 = t_end;
        }
        let mut f = lock(&self.flood);
        f.floods += 1;
        f.opened += opened;
        f.answered += answered;
        f.connect_failed += failed;
    }

    /// Whether a flood was on at `t` (or ended less than 2 s before it).
    pub fn in_flood(&self, t: f64) -> bool {
        lock(&self.floods).iter().any(|(a, b)| t >= *a && t <= *b)
    }

    pub fn slowloris_cut(&self, held: Duration) {
        let mut s = lock(&self.slow);
        s.cut += 1;
        s.hold_sum += held;
        s.max_hold = s.max_hold.max(held);
    }

    pub fn slowloris_survived(&self, held: Duration) {
        let mut s = lock(&self.slow);
        s.survived += 1;
        s.max_hold = s.max_hold.max(held);
    }

    pub fn health_ok(&self, took: Duration) {
        let mut h = lock(&self.health);
        h.ok += 1;
        h.max_latency = h.max_latency.max(took);
    }

    pub fn health_waited(&self) {
        lock(&self.health).waited += 1;
    }

    pub fn health_failed(&self, t: f64, why: String) {
        lock(&self.health).failures.push((t, why));
    }

    pub fn scrape_failed(&self) {
        lock(&self.health).scrape_failures += 1;
    }

    pub fn push_sample(&self, s: Sample) {
        lock(&self.samples).push(s);
    }

    pub fn samples(&self) -> Vec<Sample> {
        lock(&self.samples).clone()
    }
}

// === the gateways ===

/// The parts of a gateway's configuration file; `variant` flips what each reload changes.
#[derive(Debug, Clone)]
struct GwConfig {
    port: u16,
    ack: &'static str,
    spool: Option<PathBuf>,
    endpoints: Vec<String>,
    conn_limit: u64,
    driver: &'static str,
}

impl GwConfig {
    fn render(&self, variant: bool) -> String {
        let mut s = format!(
            r#"# Written by pyrogate-load soak.
[server]
listen_address = "127.0.0.1"
listen_port = {port}
conn_limit = {conn_limit}
on_conn_limit = "wait"
server_read_timeout = "{read}s"
server_write_timeout = "{write}s"
server_idle_timeout = "{idle}s"
graceful_shutdown_timeout = "5s"
max_request_body = {max_body}
max_decompressed_body = {max_inflated}
max_header_bytes = {max_header}

[runtime]
workers = {WORKERS}
driver = "{driver}"
pin_cores = false

[forward]
ack = "{ack}"
queue_max_bytes = "32MiB"
max_inflight_per_endpoint = {inflight}
max_idle_conns_per_endpoint = {idle_pool}
writer_threads = {writers}
idle_conn_timeout = "5s"
delivery_timeout = "5m"

[log]
level = "info"
format = "json"
"#,
            port = self.port,
            conn_limit = self.conn_limit,
            read = READ_TIMEOUT.as_secs(),
            write = WRITE_TIMEOUT.as_secs(),
            idle = if variant { 61 } else { 60 },
            max_body = MAX_BODY,
            max_inflated = MAX_INFLATED,
            max_header = MAX_HEADER,
            driver = self.driver,
            ack = self.ack,
            inflight = MAX_INFLIGHT_PER_ENDPOINT,
            idle_pool = MAX_IDLE_PER_ENDPOINT,
            writers = WRITER_THREADS,
        );
        if let Some(dir) = &self.spool {
            s.push_str(&format!(
                "\n[spool]\ndir = \"{}\"\nmax_bytes = \"2GiB\"\nsegment_bytes = \"8MiB\"\nfsync = \"batch\"\n",
                dir.display()
            ));
        }
        for (i, url) in self.endpoints.iter().enumerate() {
            s.push_str(&format!(
                "\n[[endpoint]]\nname = \"sink-{i}\"\nurl = \"{url}\"\nremote_timeout = \"{}s\"\nmin_backoff_period = \"100ms\"\nmax_backoff_period = \"2s\"\nmax_backoff_retries = 8\n",
                if variant { 5 } else { 4 }
            ));
        }
        s
    }
}

/// Writes `text` to `path` atomically (a reload never reads half a file).
fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local_addr: {e}"))
}

/// What the gateway logged, by kind.
#[derive(Debug, Clone, Default)]
pub struct LogCounts {
    pub reloaded: u64,
    pub reload_rejected: Vec<String>,
    /// `level message` → count, for warnings and errors.
    pub notable: BTreeMap<String, u64>,
    pub panics: Vec<String>,
    pub lines: u64,
}

impl LogCounts {
    fn note(&mut self, line: &str) {
        self.lines += 1;
        if line.contains("panicked") {
            self.panics.push(line.chars().take(300).collect());
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            return;
        };
        let msg = v["message"].as_str().unwrap_or("");
        let level = v["level"].as_str().unwrap_or("");
        if msg == "configuration reloaded" {
            self.reloaded += 1;
        } else if msg.starts_with("reload rejected") {
            self.reload_rejected
                .push(v["error"].as_str().unwrap_or(msg).to_owned());
        }
        if matches!(level, "WARN" | "ERROR") && self.notable.len() < 64 {
            *self.notable.entry(format!("{level} {msg}")).or_default() += 1;
        }
    }
}

struct Gateway {
    proc: Managed,
    cfg: GwConfig,
    path: PathBuf,
    state: Arc<GwState>,
    driver: String,
    logs: LogCounts,
    exit: Option<String>,
}

impl Gateway {
    fn start(
        bin: &Path,
        name: &'static str,
        index: u64,
        mut cfg: GwConfig,
        dir: &Path,
        seed: u64,
    ) -> Result<Self, String> {
        let path = dir.join(format!("pyrogate-{name}.toml"));
        let mut last = String::new();
        for _ in 0..3 {
            cfg.port = free_port()?;
            write_atomic(&path, &cfg.render(false))?;
            let mut cmd = Command::new(bin);
            cmd.arg("--config").arg(&path);
            let mut proc = Managed::spawn(
                &format!("pyrogate (ack {name})"),
                cmd,
                &SpawnOpts::default(),
            )?;
            proc.grace = Duration::from_secs(10);
            match proc.wait_for_line(START_TIMEOUT, startup_line) {
                Ok((addr, driver)) => {
                    proc.wait_until(START_TIMEOUT, || probe::is_ok(addr, "/-/ready"))?;
                    let state = Arc::new(GwState::new(name, index, addr, proc.pid(), seed));
                    return Ok(Self {
                        proc,
                        cfg,
                        path,
                        state,
                        driver,
                        logs: LogCounts::default(),
                        exit: None,
                    });
                }
                Err(e) if e.contains("in use") => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// Reads what the gateway printed since the last call.
    fn drain_logs(&mut self) {
        for _ in 0..100_000 {
            let mut got = false;
            let logs = &mut self.logs;
            let _ = self.proc.wait_for_line(Duration::from_millis(1), |l| {
                got = true;
                logs.note(l);
                None::<()>
            });
            if !got {
                break;
            }
        }
    }
}

// === sink flapping ===

/// A sink's fault state for a few seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SinkFault {
    Healthy,
    Errors { rate: f64, status: u16 },
    Hangs { rate: f64 },
    Slow { ms: u64 },
    FailBurst { n: u64 },
    Resets,
    SlowReads,
    Down,
}

impl SinkFault {
    /// The kind, for the summary.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkFault::Healthy => "healthy",
            SinkFault::Errors { .. } => "errors at a rate (5xx, 429)",
            SinkFault::Hangs { .. } => "hangs at a rate",
            SinkFault::Slow { .. } => "slow answers",
            SinkFault::FailBurst { .. } => "failure bursts (next 50 → 503)",
            SinkFault::Resets => "connection resets (proxy)",
            SinkFault::SlowReads => "slow reads (proxy)",
            SinkFault::Down => "down (proxy resets every connection)",
        }
    }

    /// Draws a state; about a third of the time the sink is healthy.
    pub fn draw(r: u64) -> Self {
        let pick = |xs: &[u64]| xs[((r >> 16) % xs.len() as u64) as usize];
        match r % 100 {
            0..30 => SinkFault::Healthy,
            30..44 => SinkFault::Errors {
                rate: [0.3, 0.6, 1.0][((r >> 24) % 3) as usize],
                status: pick(&[500, 502, 503, 504, 429]) as u16,
            },
            44..52 => SinkFault::Hangs {
                rate: [0.05, 0.2][((r >> 24) % 2) as usize],
            },
            52..62 => SinkFault::Slow {
                ms: pick(&[200, 800, 2000]),
            },
            62..68 => SinkFault::FailBurst { n: 50 },
            68..80 => SinkFault::Resets,
            80..90 => SinkFault::SlowReads,
            _ => SinkFault::Down,
        }
    }

    /// The sink's `/control` query and the proxy's mode.
    pub fn apply(&self) -> (String, Mode) {
        let q = match self {
            SinkFault::Errors { rate, status } => {
                let ra = if *status == 429 { "&retry_after=1" } else { "" };
                format!("reset=1&error_rate={rate}&error_status={status}{ra}")
            }
            SinkFault::Hangs { rate } => format!("reset=1&hang_rate={rate}"),
            SinkFault::Slow { ms } => format!("reset=1&latency_ms={ms}"),
            SinkFault::FailBurst { n } => format!("reset=1&fail_next={n}&status=503"),
            _ => "reset=1".to_owned(),
        };
        let mode = match self {
            SinkFault::Resets => Mode::Reset,
            SinkFault::SlowReads => Mode::SlowRead,
            SinkFault::Down => Mode::Down,
            _ => Mode::Pass,
        };
        (q, mode)
    }
}

/// `POST /control?query` on a sink.
fn control(addr: SocketAddr, query: &str) -> Result<(), String> {
    let mut c = probe::Client::connect(addr, Duration::from_secs(5))?;
    let a = c.send(
        format!("POST /control?{query} HTTP/1.1\r\nHost: soak\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )?;
    if a.status == 200 {
        Ok(())
    } else {
        Err(format!("{addr}/control?{query}: status {}", a.status))
    }
}

/// Until the faults end: each sink changes state every 2–6 s. At the end both are healed.
fn flap_loop(
    ctl: Arc<Ctl>,
    sinks: Vec<SocketAddr>,
    proxies: Vec<Arc<Proxy>>,
    faults: Arc<Tally>,
    seed: u64,
) {
    let mut rng = splitmix(seed ^ 0xf1a9);
    let mut next: Vec<Instant> = sinks.iter().map(|_| Instant::now()).collect();
    let span = (FLAP_MAX - FLAP_MIN).as_millis() as u64;
    while ctl.faults_on() {
        for (i, (addr, p)) in sinks.iter().zip(&proxies).enumerate() {
            if Instant::now() < next[i] {
                continue;
            }
            rng = splitmix(rng);
            let f = SinkFault::draw(rng);
            let (q, mode) = f.apply();
            if let Err(e) = control(*addr, &q) {
                faults.add("control failed");
                eprintln!("soak: {e}");
            }
            let reset = p.set_mode(mode);
            if f != SinkFault::Healthy {
                faults.add(f.kind());
            }
            faults.add_n("connections reset on entry to a reset/down phase", reset);
            next[i] = Instant::now() + FLAP_MIN + Duration::from_millis(splitmix(rng) % span);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (addr, p) in sinks.iter().zip(&proxies) {
        p.set_mode(Mode::Pass);
        if control(*addr, "reset=1").is_err() {
            faults.add("control failed");
        }
    }
}

/// Every [`RELOAD_EVERY`] until the faults end: flips each gateway's file and sends SIGHUP.
fn reload_loop(ctl: Arc<Ctl>, targets: Vec<(u32, PathBuf, GwConfig)>, faults: Arc<Tally>) {
    let mut k = 0u64;
    loop {
        let end = Instant::now() + RELOAD_EVERY;
        while Instant::now() < end && ctl.faults_on() {
            std::thread::sleep(Duration::from_millis(100));
        }
        if !ctl.faults_on() {
            return;
        }
        k += 1;
        for (pid, path, cfg) in &targets {
            if write_atomic(path, &cfg.render(k % 2 == 1)).is_err() {
                faults.add("config write failed");
                continue;
            }
            // SAFETY: kill(2) of a child we started and have not reaped.
            unsafe { libc::kill(*pid as libc::pid_t, libc::SIGHUP) };
            faults.add("SIGHUP reloads");
        }
    }
}

/// Every 2 s while monitoring: the sinks' new records.
fn ledger_loop(ctl: Arc<Ctl>, ledgers: Arc<Mutex<Vec<SinkLedger>>>, faults: Arc<Tally>) {
    while ctl.monitoring() {
        for l in lock(&ledgers).iter_mut() {
            if let Err(e) = l.poll() {
                faults.add("sink /stats read failed");
                eprintln!("soak: {e}");
            }
        }
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end && ctl.monitoring() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .stack_size(512 * 1024)
        .spawn(f)
        .map_err(|e| format!("thread {name}: {e}"))
}

fn join_all(handles: &mut Vec<JoinHandle<()>>) {
    for h in handles.drain(..) {
        let _ = h.join();
    }
}

/// Every sample as CSV.
fn write_samples(path: &Path, gws: &[Arc<GwState>]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        f,
        "gateway,t_s,rss_bytes,fds,established,connections,queue_bytes,spool_bytes,flood"
    )?;
    let o = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    for g in gws {
        for s in g.samples() {
            writeln!(
                f,
                "{},{:.3},{},{},{},{},{},{},{}",
                g.name,
                s.t,
                s.rss,
                s.fds,
                s.estab,
                o(s.conns),
                o(s.queue),
                o(s.spool),
                u8::from(s.flood)
            )?;
        }
    }
    f.flush()
}

/// A temporary directory, removed on drop unless kept.
struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Runs the soak, prints the summary to `out`; `Ok(true)` when it passed.
pub fn run(cfg: &SoakConfig, out: &mut impl Write) -> Result<bool, String> {
    process::install_interrupt_handler();
    let nofile = process::raise_nofile(65_536);
    // A flood at a time, the proxies' connections (two fds each), the clients and probes.
    let need = cfg.flood as u64 + cfg.conn_limit + 1_024;
    if nofile < need {
        return Err(format!(
            "RLIMIT_NOFILE is {nofile}; the soak needs about {need} (raise it or lower --conn-limit/--flood)"
        ));
    }
    let tmp = TempDir {
        path: std::env::temp_dir().join(format!(
            "pyrogate-soak-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        )),
        keep: cfg.keep_temp,
    };
    let spool = tmp.path.join("spool");
    std::fs::create_dir_all(&spool).map_err(|e| format!("{}: {e}", spool.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate this executable: {e}"))?;
    let life = cfg.duration + cfg.drain + Duration::from_secs(300);
    let sink_args: Vec<String> = [
        "--workers",
        "1",
        "--records",
        "200000",
        "--records-max-bytes",
        "256MiB",
        "--hang-for",
        &format!("{}s", SINK_HANG_FOR.as_secs()),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut sinks = Vec::new();
    for _ in 0..2 {
        sinks.push(SinkProc::start(
            &exe,
            &sink_args,
            life,
            &SpawnOpts::default(),
        )?);
    }
    let sink_addrs: Vec<SocketAddr> = sinks.iter().map(|s| s.addr).collect();
    let proxies: Vec<Arc<Proxy>> = sink_addrs
        .iter()
        .enumerate()
        .map(|(i, a)| Proxy::start(*a, splitmix(cfg.seed ^ (i as u64 + 11))).map(Arc::new))
        .collect::<Result<_, _>>()?;
    let endpoints: Vec<String> = proxies.iter().map(|p| p.url()).collect();
    let base = GwConfig {
        port: 0,
        ack: "all",
        spool: None,
        endpoints,
        conn_limit: cfg.conn_limit,
        driver: cfg.driver,
    };
    let mut gateways = vec![
        Gateway::start(
            &cfg.gateway_bin,
            "all",
            0,
            base.clone(),
            &tmp.path,
            cfg.seed,
        )?,
        Gateway::start(
            &cfg.gateway_bin,
            "durable",
            1,
            GwConfig {
                ack: "durable",
                spool: Some(spool.clone()),
                ..base
            },
            &tmp.path,
            cfg.seed,
        )?,
    ];
    let mut health_conns = Vec::new();
    for g in &gateways {
        health_conns.push(monitor::open_health_conns(g.state.addr, WORKERS)?);
    }
    writeln!(
        out,
        "soak: {} s ({} s of faults, {} s quiet, then ≤ {} s for the spool to drain); gateways: ack all on {} (pid {}), ack durable on {} (pid {}), driver {}; sinks {} behind fault proxies {}",
        cfg.duration.as_secs(),
        cfg.duration.saturating_sub(cfg.quiet).as_secs(),
        cfg.quiet.as_secs(),
        cfg.drain.as_secs(),
        gateways[0].state.addr,
        gateways[0].state.pid,
        gateways[1].state.addr,
        gateways[1].state.pid,
        gateways[0].driver,
        sink_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "),
        proxies.iter().map(|p| p.addr.to_string()).collect::<Vec<_>>().join(", "),
    )
    .map_err(|e| e.to_string())?;
    let _ = out.flush();

    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let bodies = Arc::new(Bodies::new(cfg.seed, now_s));
    let ctl = Arc::new(Ctl::new(cfg.duration, cfg.quiet));
    let faults = Arc::new(Tally::default());
    let ledgers = Arc::new(Mutex::new(
        sink_addrs
            .iter()
            .map(|a| SinkLedger::new(*a))
            .collect::<Vec<_>>(),
    ));
    let mut traffic_threads = Vec::new();
    let mut fault_threads = Vec::new();
    let mut monitor_threads = Vec::new();
    let interval = Duration::from_secs_f64(cfg.clients as f64 / cfg.rate);
    let max_requests = (cfg.rate * cfg.duration.as_secs_f64()) as u64 + 1_000;
    let secs = cfg.duration.as_secs();
    for (g, conns) in gateways.iter().zip(health_conns) {
        let st = &g.state;
        for i in 0..cfg.clients {
            let (c, s, b) = (ctl.clone(), st.clone(), bodies.clone());
            let per_client = max_requests / cfg.clients as u64 + 10;
            traffic_threads.push(spawn("soak-client", move || {
                traffic::client_loop(c, s, b, i as u64, interval, per_client)
            })?);
        }
        let (c, s) = (ctl.clone(), st.clone());
        monitor_threads.push(spawn("soak-health", move || {
            monitor::health_loop(c, s, conns)
        })?);
        let (c, s) = (ctl.clone(), st.clone());
        monitor_threads.push(spawn("soak-sampler", move || monitor::sampler_loop(c, s))?);
        let (c, s) = (ctl.clone(), st.clone());
        fault_threads.push(spawn("soak-slowloris", move || {
            abuse::slowloris_loop(
                c,
                s,
                SLOWLORIS_CONNS,
                SLOWLORIS_TICK,
                READ_TIMEOUT * 3 + Duration::from_secs(30),
            )
        })?);
        let (c, s, b) = (ctl.clone(), st.clone(), bodies.clone());
        fault_threads.push(spawn("soak-midbody", move || {
            abuse::midbody_loop(c, s, b, MIDBODY_EVERY, secs * 20)
        })?);
        let (c, s) = (ctl.clone(), st.clone());
        fault_threads.push(spawn("soak-malformed", move || {
            abuse::malformed_loop(c, s, MALFORMED_EVERY, secs * 10, MAX_BODY, MAX_INFLATED)
        })?);
        let (c, s, n) = (ctl.clone(), st.clone(), cfg.flood);
        let offset = Duration::from_secs(5 + 10 * st.index);
        fault_threads.push(spawn("soak-flood", move || {
            abuse::flood_loop(c, s, n, FLOOD_PERIOD, offset, FLOOD_HOLD)
        })?);
    }
    {
        let (c, f) = (ctl.clone(), faults.clone());
        let (s, p, seed) = (sink_addrs.clone(), proxies.clone(), cfg.seed);
        fault_threads.push(spawn("soak-flap", move || flap_loop(c, s, p, f, seed))?);
        let targets: Vec<(u32, PathBuf, GwConfig)> = gateways
            .iter()
            .map(|g| (g.state.pid, g.path.clone(), g.cfg.clone()))
            .collect();
        let (c, f) = (ctl.clone(), faults.clone());
        fault_threads.push(spawn("soak-reload", move || reload_loop(c, targets, f))?);
        let (c, l, f) = (ctl.clone(), ledgers.clone(), faults.clone());
        monitor_threads.push(spawn("soak-ledger", move || ledger_loop(c, l, f))?);
    }

    // Supervise: once a second until the traffic ends.
    let mut fatal: Vec<String> = Vec::new();
    let mut last_progress = Instant::now();
    while Instant::now() < ctl.end && fatal.is_empty() {
        std::thread::sleep(Duration::from_millis(500));
        if process::interrupted() {
            fatal.push("interrupted".into());
        }
        for g in gateways.iter_mut() {
            g.drain_logs();
            if let Some(st) = g.proc.exited() {
                fatal.push(format!(
                    "gateway (ack {}) exited during the run ({st}):\n{}",
                    g.state.name,
                    g.proc.tail()
                ));
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(30) {
            last_progress = Instant::now();
            eprintln!(
                "{}",
                report::progress(
                    &ctl,
                    &gateways.iter().map(|g| g.state.clone()).collect::<Vec<_>>(),
                    &faults
                )
            );
        }
    }
    if !fatal.is_empty() {
        ctl.stop.store(true, Ordering::SeqCst);
    }
    join_all(&mut fault_threads);
    join_all(&mut traffic_threads);
    for p in &proxies {
        p.set_mode(Mode::Pass);
    }

    // Drain: until every acknowledged body is at both sinks, or the time is up.
    let drain_start = Instant::now();
    let states: Vec<Arc<GwState>> = gateways.iter().map(|g| g.state.clone()).collect();
    let mut drained_after = None;
    if fatal.is_empty() {
        while drain_start.elapsed() < cfg.drain {
            let missing = {
                let mut ls = lock(&ledgers);
                for l in ls.iter_mut() {
                    let _ = l.poll();
                }
                report::missing_total(&states, &ls)
            };
            if missing == 0 {
                drained_after = Some(drain_start.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
            for g in gateways.iter_mut() {
                g.drain_logs();
            }
        }
        // A few more samples of the settled gateways.
        std::thread::sleep(Duration::from_secs(2));
    }
    ctl.monitoring.store(false, Ordering::SeqCst);
    join_all(&mut monitor_threads);

    // Stop the gateways (SIGTERM: they must drain and exit 0).
    for g in gateways.iter_mut() {
        g.drain_logs();
        let st = g.proc.stop();
        g.exit = Some(match st {
            Some(s) if s.success() => "exit 0 on SIGTERM".to_owned(),
            Some(s) => format!("{s} on SIGTERM"),
            None => "killed after the grace period".to_owned(),
        });
        g.drain_logs();
    }
    {
        let mut ls = lock(&ledgers);
        for l in ls.iter_mut() {
            if let Err(e) = l.poll() {
                fatal.push(format!("final read of a sink's records: {e}"));
            }
        }
    }
    for p in &proxies {
        p.stop();
    }
    let sink_status: Vec<Option<serde_json::Value>> =
        sinks.iter().map(|s| s.stats().ok()).collect();
    drop(sinks);

    if let Some(path) = &cfg.samples {
        write_samples(path, &states).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let ledgers = std::mem::take(&mut *lock(&ledgers));
    let input = report::Input {
        cfg,
        gateways: gateways
            .iter()
            .map(|g| report::GatewayInput {
                state: g.state.clone(),
                logs: g.logs.clone(),
                exit: g.exit.clone().unwrap_or_default(),
            })
            .collect(),
        ledgers: &ledgers,
        faults: faults.snapshot(),
        proxies: proxies.iter().map(|p| p.counts()).collect(),
        sink_stats: sink_status,
        drained_after,
        drain_limit: cfg.drain,
        fatal,
    };
    let verdict = report::render(&input, out).map_err(|e| e.to_string())?;
    if !verdict && !cfg.keep_temp {
        writeln!(
            out,
            "(temporary directory {} removed; --keep-temp keeps it)",
            tmp.path.display()
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_scale_with_the_duration() {
        assert_eq!(quiet_for(Duration::from_secs(60)), Duration::from_secs(10));
        assert_eq!(quiet_for(Duration::from_secs(600)), Duration::from_secs(60));
        assert_eq!(drain_for(Duration::from_secs(60)), Duration::from_secs(15));
        assert_eq!(drain_for(Duration::from_secs(600)), Duration::from_secs(60));
    }

    #[test]
    fn fault_states_cover_every_kind() {
        let mut kinds = std::collections::BTreeSet::new();
        let mut r = 1u64;
        for _ in 0..2000 {
            r = splitmix(r);
            let f = SinkFault::draw(r);
            kinds.insert(f.kind());
            let (q, _) = f.apply();
            let mut faults = crate::sink::faults::Faults::new(
                crate::sink::faults::FaultConfig::default(),
                SINK_HANG_FOR,
            );
            faults.control(&q).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
        assert_eq!(kinds.len(), 8, "{kinds:?}");
    }

    #[test]
    fn the_configuration_parses() {
        let c = GwConfig {
            port: 8080,
            ack: "durable",
            spool: Some(PathBuf::from("/tmp/x")),
            endpoints: vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()],
            conn_limit: 512,
            driver: "auto",
        };
        for v in [false, true] {
            let text = c.render(v);
            let parsed = pyrogate::config::Config::from_toml(&text)
                .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
            assert_eq!(parsed.endpoints.len(), 2);
            assert_eq!(parsed.server.conn_limit, 512);
            assert!(parsed.spool.is_some());
        }
    }
}
