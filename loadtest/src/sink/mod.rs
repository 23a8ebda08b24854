//! `pyrogate-load sink`: a Pyroscope-compatible receiver for tests, demos and benchmarks.
//!
//! One monoio runtime per worker thread, each with its own `SO_REUSEPORT` accept shard
//! (pyrogate's [`bind_shards`]) and pyrogate's hardened HTTP/1.1 connection loop
//! ([`serve_conn`]); the routes live in [`service`], the Pyroscope framing rules in
//! [`check`], the counters and request records in [`stats`], fault injection in [`faults`].
//! Workers share only two mutexes (stats, faults), each held for a few microseconds per
//! request.

pub mod check;
pub mod faults;
pub mod service;
pub mod stats;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use monoio::net::TcpListener;
use pyrogate::config::DriverChoice;
use pyrogate::http::server::{ConnEnv, ConnLimits, serve_conn};
use pyrogate::runtime::driver::{self, DriverKind};
use pyrogate::runtime::listener::bind_shards;
use pyrogate::util::notify::{LocalNotify, LocalSignal};

use check::{CheckLimits, Checks};
use faults::{FaultConfig, Faults};
use service::{Shared, SinkService};
use stats::{RingLimits, Stats};

/// Submission-queue entries per ring; the gateway's default.
const IO_URING_ENTRIES: u32 = 1024;
/// Listen backlog per shard: benchmarks open thousands of connections at once.
const BACKLOG: u32 = 4096;
/// Workers must be up within this time or start-up fails.
const START_TIMEOUT: Duration = Duration::from_secs(10);
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
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Sink {
    /// Binds, starts the workers and returns once every worker accepts.
    pub fn start(cfg: SinkConfig) -> Result<Self, String> {
        cfg.validate()?;
        let decision = driver::choose(cfg.driver, IO_URING_ENTRIES)?;
        let listeners = bind_shards(cfg.listen, false, cfg.workers, BACKLOG)
            .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
        let local_addr = listeners
            .first()
            .ok_or("no listener was bound")?
            .local_addr()
            .map_err(|e| format!("cannot read the listen address: {e}"))?;
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
        let limits = ConnLimits {
            max_header_bytes: cfg.max_header_bytes,
            read_timeout: cfg.read_timeout,
            // The service answers every request (a hang ends after `hang_for`) before the
            // loop's own deadline, so the loop never has to cut a call short.
            write_timeout: cfg.hang_for + Duration::from_secs(5),
            idle_timeout: cfg.idle_timeout,
            max_age: Duration::ZERO,
            max_age_jitter: 0.0,
        };
        let per_worker = cfg.max_conns / cfg.workers;
        let (ready_tx, ready_rx) = crossbeam_channel::bounded::<Result<(), String>>(cfg.workers);
        let mut threads = Vec::with_capacity(cfg.workers);
        for (i, l) in listeners.into_iter().enumerate() {
            let shared = shared.clone();
            let ready = ready_tx.clone();
            let kind = decision.kind;
            let t = std::thread::Builder::new()
                .name(format!("sink-w{i}"))
                .spawn(move || {
                    let ready2 = ready.clone();
                    let res = driver::block_on(kind, IO_URING_ENTRIES, move || {
                        worker(i, l, shared, limits, per_worker, ready2)
                    });
                    if let Err(e) = res {
                        let _ = ready.send(Err(format!("worker {i}: cannot build runtime: {e}")));
                    }
                })
                .map_err(|e| format!("cannot spawn worker {i}: {e}"))?;
            threads.push(t);
        }
        drop(ready_tx);
        for _ in 0..cfg.workers {
            match ready_rx.recv_timeout(START_TIMEOUT) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err("sink workers did not start in time".into()),
            }
        }
        Ok(Self {
            local_addr,
            driver: decision.kind,
            fallback_reason: decision.fallback_reason,
            shared,
            threads,
        })
    }

    /// The `/stats` document, for in-process users (the demo).
    pub fn stats_json(&self, records: bool) -> serde_json::Value {
        self.shared.stats().to_json(records, None)
    }

    /// Blocks while the workers run (they run until the process exits).
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Releases a connection slot when the connection task ends.
struct Slot(Rc<Cell<usize>>, Rc<LocalNotify>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
        self.1.notify();
    }
}

async fn worker(
    index: usize,
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    limits: ConnLimits,
    max_conns: usize,
    ready: crossbeam_channel::Sender<Result<(), String>>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(format!(
                "worker {index}: cannot register listener: {e}"
            )));
            return;
        }
    };
    let env = ConnEnv::new(limits, Rc::new(LocalSignal::new()));
    let svc = Rc::new(SinkService::new(index, shared));
    let active = Rc::new(Cell::new(0usize));
    let released = Rc::new(LocalNotify::new());
    let _ = ready.send(Ok(()));
    drop(ready);
    loop {
        // At the connection cap, stop accepting (new connections wait in the backlog).
        while active.get() >= max_conns {
            released.notified().await;
        }
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(_) => {
                // EMFILE and friends: back off instead of spinning.
                monoio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        active.set(active.get() + 1);
        let slot = Slot(active.clone(), released.clone());
        let (svc, env) = (svc.clone(), env.clone());
        monoio::spawn(serve_conn(stream, svc, env, slot));
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
