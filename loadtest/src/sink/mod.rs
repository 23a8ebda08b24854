//! `pyrogate-load sink`: a Pyroscope-compatible receiver for tests, demos and benchmarks.
//!
//! It runs on pyrogate's own runtime ([`pyrogate::runtime::Server`]: one monoio runtime
//! per worker thread, `SO_REUSEPORT` accept shards with connection quotas, the hardened
//! HTTP/1.1 connection loop); the routes live in [`service`], the Pyroscope framing rules
//! in [`check`], the counters and request records in [`stats`], fault injection in
//! [`faults`]. Workers share only two mutexes (stats, faults), each held for a few
//! microseconds per request.

pub mod check;
pub mod faults;
pub mod service;
pub mod stats;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyrogate::config::{DriverChoice, OnConnLimit, resolve_quotas};
use pyrogate::http::h2::Http2Limits;
use pyrogate::http::server::ConnLimits;
use pyrogate::metrics::Metrics;
use pyrogate::runtime::driver::{self, DriverKind};
use pyrogate::runtime::{Server, Settings};

use check::{CheckLimits, Checks};
use faults::{FaultConfig, Faults};
use service::{Shared, SinkFactory, SinkRoute};
use stats::{RingLimits, Stats};

/// Submission-queue entries per ring; the gateway's default.
const IO_URING_ENTRIES: u32 = 1024;
/// Listen backlog per shard: benchmarks open thousands of connections at once.
const BACKLOG: u32 = 4096;
/// Default bounds. The body limit is Pyroscope's order of magnitude scaled down for a test
/// process; the inflated-profile limit is Pyroscope's `max_profile_size_bytes` default.
pub const DEFAULT_MAX_BODY: u64 = 64 << 20;
pub const DEFAULT_MAX_PROFILE: usize = 4 << 20;
pub const DEFAULT_RECORDS: usize = 10_000;
pub const DEFAULT_RECORDS_MAX_BYTES: usize = 64 << 20;
pub const DEFAULT_MAX_CONNS: usize = 65_536;
/// An injected hang holds the request this long, then the sink answers 503 and closes: long
/// enough to outlast any client timeout (SDKs use 10–30 s), short enough to be bounded.
pub const DEFAULT_HANG_FOR: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub listen: SocketAddr,
    pub workers: usize,
    pub driver: DriverChoice,
    pub checks: Checks,
    /// Checksum every accepted body (FNV-1a, ~1.8 ns per byte: at 16 KiB that is most of
    /// the sink's CPU, so benchmarks turn it off).
    pub checksum: bool,
    pub faults: FaultConfig,
    pub hang_for: Duration,
    pub max_body: u64,
    pub max_profile: usize,
    pub records: usize,
    pub records_max_bytes: usize,
    pub max_conns: usize,
    pub read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: 1,
            driver: DriverChoice::Auto,
            checks: Checks::Full,
            checksum: true,
            faults: FaultConfig::default(),
            hang_for: DEFAULT_HANG_FOR,
            max_body: DEFAULT_MAX_BODY,
            max_profile: DEFAULT_MAX_PROFILE,
            records: DEFAULT_RECORDS,
            records_max_bytes: DEFAULT_RECORDS_MAX_BYTES,
            max_conns: DEFAULT_MAX_CONNS,
            read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            max_header_bytes: 64 * 1024,
        }
    }
}

impl SinkConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.workers == 0 || self.workers > 256 {
            return Err(format!(
                "--workers must be within 1..=256, got {}",
                self.workers
            ));
        }
        if self.hang_for.is_zero() || self.hang_for > Duration::from_secs(3600) {
            return Err("--hang-for must be within (0, 1h]".into());
        }
        if self.max_body == 0 {
            return Err("--max-body must be positive".into());
        }
        if self.max_conns < self.workers {
            return Err("--max-conns must be at least --workers".into());
        }
        self.faults.validate(self.hang_for)
    }
}

/// A started sink.
pub struct Sink {
    pub local_addr: SocketAddr,
    pub driver: DriverKind,
    pub fallback_reason: Option<String>,
    shared: Arc<Shared>,
    server: Server<SinkFactory>,
}

impl Sink {
    /// Binds, starts the workers and returns once every worker accepts.
    pub fn start(cfg: SinkConfig) -> Result<Self, String> {
        cfg.validate()?;
        let decision = driver::choose(cfg.driver, IO_URING_ENTRIES)?;
        let shared = Arc::new(Shared {
            stats: Mutex::new(Stats::new(RingLimits {
                max_records: cfg.records,
                max_bytes: cfg.records_max_bytes,
            })),
            faults: Mutex::new(Faults::new(cfg.faults.clone(), cfg.hang_for)),
            limits: CheckLimits {
                max_message: usize::try_from(cfg.max_body).unwrap_or(usize::MAX),
                max_profile: cfg.max_profile,
            },
            checks: cfg.checks,
            checksum: cfg.checksum,
            max_body: cfg.max_body,
            hang_for: cfg.hang_for,
        });
        let quotas = resolve_quotas(&vec![None; cfg.workers], cfg.max_conns as u64)
            .map_err(|e| e.to_string())?;
        let settings = Settings {
            listen: cfg.listen,
            listen_any: false,
            listen_backlog: BACKLOG,
            workers: cfg.workers,
            core_quotas: quotas,
            // At the connection cap, stop accepting: new connections wait in the backlog.
            on_conn_limit: OnConnLimit::Wait,
            conn: ConnLimits {
                max_header_bytes: cfg.max_header_bytes,
                read_timeout: cfg.read_timeout,
                // The service answers every request (a hang ends after `hang_for`) before
                // the loop's own deadline, so the loop never has to cut a call short.
                write_timeout: cfg.hang_for + Duration::from_secs(5),
                idle_timeout: cfg.idle_timeout,
                max_age: Duration::ZERO,
                max_age_jitter: 0.0,
                // h2c too, as Pyroscope serves it (endpoints with `http2 = true`).
                http2: pyrogate::config::http2::resolve(None, cfg.max_header_bytes as u64)
                    .ok()
                    .flatten()
                    .map(|c| Http2Limits::from_config(&c)),
            },
            graceful_shutdown_timeout: Duration::from_secs(1),
            pin_cores: false,
            io_uring_entries: IO_URING_ENTRIES,
            tls: None,
        };
        let metrics = Metrics::new(cfg.workers, cfg.max_conns as u64, &SinkRoute::LABELS);
        let server = Server::start(settings, SinkFactory(shared.clone()), metrics, decision)
            .map_err(|e| format!("sink: {e}"))?;
        Ok(Self {
            local_addr: server.local_addr(),
            driver: server.driver.kind,
            fallback_reason: server.driver.fallback_reason.clone(),
            shared,
            server,
        })
    }

    /// The `/stats` document, for in-process users (the demo).
    pub fn stats_json(&self, records: bool) -> serde_json::Value {
        self.shared.stats().to_json(records, None)
    }

    /// Blocks while the workers run (they run until the process exits).
    pub fn join(self) {
        self.server.join();
    }
}

/// `pyrogate-load sink`: start, print `listening on <addr>` once ready, serve until killed
/// (or until `exit_after`).
pub fn run(cfg: SinkConfig, exit_after: Option<Duration>) -> Result<(), String> {
    use std::io::Write as _;
    let sink = Sink::start(cfg)?;
    if let Some(why) = &sink.fallback_reason {
        eprintln!("sink: io_uring unavailable ({why}); using epoll");
    }
    eprintln!("sink: driver {}", sink.driver.name());
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", sink.local_addr).map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    match exit_after {
        Some(d) => {
            std::thread::sleep(d);
            Ok(())
        }
        None => {
            sink.join();
            Ok(())
        }
    }
}
