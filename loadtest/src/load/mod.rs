//! `pyrogate-load run`: drives a target with real Pyroscope traffic.
//!
//! One monoio runtime per thread (threads = min(cores, connections) unless given), each
//! running its share of the connections as tasks. Every connection is a keep-alive
//! HTTP/1.1 client ([`client`]) that writes pre-rendered SDK-style requests ([`payload`]),
//! in a closed loop or on an open-loop schedule with coordinated-omission correction
//! ([`schedule`]). Threads count into their own [`report::Tally`] (no sharing on the hot
//! path besides one atomic ticket counter for `--requests`), send a latency snapshot to the
//! main thread once a second for the progress line, and hand their tallies back at the end
//! to be merged into the [`report::Report`].
//!
//! Every run is bounded: by `--duration` (at most [`MAX_DURATION`]), by `--requests`, or both
//! (whichever comes first), and every request by `--timeout`.
//!
//! An `https://` target is spoken to over TLS ([`tls`]); the connection loop is generic over
//! how a connection is made ([`Dial`]), so the plaintext loop is compiled without any TLS in
//! it. `--reconnect-every N` closes each connection after its N-th response and opens a new
//! one for the next request (a new TLS handshake, resumed unless `--tls-no-resume`), which is
//! part of that request's latency, as for a real client.

pub mod client;
pub mod h2;
pub mod payload;
pub mod report;
pub mod schedule;
pub mod tls;

use std::cell::RefCell;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use pyrogate::config::DriverChoice;
use pyrogate::runtime::driver::{self, DriverKind};

use client::{ClientError, Conn};
use payload::{Options, Prepared, Protocol, Source};
use report::{Latencies, Report, Tally, TlsReport};
use schedule::Schedule;
use tls::{TlsClient, TlsOptions};

/// Longest run; also the bound of a run given only `--requests`.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
pub const MAX_CONNECTIONS: usize = 100_000;
pub const MAX_RATE: f64 = 10_000_000.0;
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// Threads start sending this long after the run is set up, so thread start-up and the
/// initial connects do not count as schedule lag.
const START_DELAY: Duration = Duration::from_millis(100);
/// Back-off after a failed connect, doubling up to the maximum.
const CONNECT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const CONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
const IO_URING_ENTRIES: u32 = 256;

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub target: String,
    pub protocol: Protocol,
    pub connections: usize,
    /// Total requests per second (open loop); `None` = closed loop.
    pub rate: Option<f64>,
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
    pub timeout: Duration,
    pub source: Source,
    pub seed: u64,
    pub tenant: Option<String>,
    pub driver: DriverChoice,
    pub threads: Option<usize>,
    /// Print a progress line to stderr every second.
    pub progress: bool,
    /// Close each connection after this many responses and open a new one (`None`: keep
    /// connections open as long as the server does).
    pub reconnect_every: Option<u64>,
    /// TLS client options for an `https://` target.
    pub tls: TlsOptions,
}

impl RunConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.duration.is_none() && self.requests.is_none() {
            return Err("give --duration or --requests (a run is always bounded)".into());
        }
        if let Some(d) = self.duration
            && (d.is_zero() || d > MAX_DURATION)
        {
            return Err(format!(
                "--duration must be within (0, {}s]",
                MAX_DURATION.as_secs()
            ));
        }
        if self.requests == Some(0) {
            return Err("--requests must be positive".into());
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.connections) {
            return Err(format!(
                "--connections must be within 1..={MAX_CONNECTIONS}"
            ));
        }
        if let Some(r) = self.rate
            && !(r.is_finite() && r > 0.0 && r <= MAX_RATE)
        {
            return Err(format!("--rate must be within (0, {MAX_RATE}]"));
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(format!(
                "--timeout must be within (0, {}s]",
                MAX_TIMEOUT.as_secs()
            ));
        }
        if self.threads == Some(0) {
            return Err("--threads must be positive".into());
        }
        if self.reconnect_every == Some(0) {
            return Err("--reconnect-every must be positive".into());
        }
        self.tls.validate()?;
        if self.tls.any() && !self.target.starts_with("https://") {
            return Err("the --tls-* flags need an https:// --target".into());
        }
        if let Some(t) = &self.tenant
            && (t.is_empty() || t.bytes().any(|b| b < 0x21 || b == 0x7f))
        {
            return Err("--tenant must be non-empty visible ASCII".into());
        }
        Ok(())
    }
}

/// What every thread needs; read-only.
struct Plan {
    addr: SocketAddr,
    requests: Vec<Prepared>,
    start: Instant,
    end_ns: u64,
    timeout: Duration,
    rate: Option<f64>,
    connections: usize,
    limit: Option<u64>,
    claimed: AtomicU64,
    reconnect_every: Option<u64>,
    /// `Some` for an `https://` target.
    tls: Option<TlsClient>,
}

impl Plan {
    fn elapsed_ns(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.start)
            .as_nanos() as u64
    }

    /// Takes a ticket for one more request; false once `--requests` are used up.
    fn claim(&self) -> bool {
        match self.limit {
            Some(l) => self.claimed.fetch_add(1, Ordering::Relaxed) < l,
            None => true,
        }
    }
}

/// A once-a-second progress snapshot from one thread.
struct Snapshot {
    done: u64,
    failed: u64,
    latencies: Latencies,
}

/// Per-thread counters.
#[derive(Default)]
struct ThreadState {
    tally: Tally,
    interval: Latencies,
    interval_done: u64,
    interval_failed: u64,
}

/// Runs the load and returns the report. Progress lines go to `progress` when enabled.
pub fn run(cfg: &RunConfig, progress: &mut dyn Write) -> Result<Report, String> {
    cfg.validate()?;
    let target = payload::parse_target(&cfg.target)?;
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let opts = Options {
        source: cfg.source.clone(),
        seed: cfg.seed,
        tenant: cfg.tenant.clone(),
        now_s,
    };
    let requests = payload::prepare(cfg.protocol, &target, &opts)?;
    let tls = if target.tls {
        Some(TlsClient::new(&cfg.tls, target.hostname())?)
    } else {
        None
    };
    let decision = driver::choose(cfg.driver, IO_URING_ENTRIES)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cfg.threads.unwrap_or(cores).min(cfg.connections).max(1);
    let duration = cfg.duration.unwrap_or(MAX_DURATION).min(MAX_DURATION);
    let plan = Arc::new(Plan {
        addr: target.addr,
        requests,
        start: Instant::now() + START_DELAY,
        end_ns: duration.as_nanos() as u64,
        timeout: cfg.timeout,
        rate: cfg.rate,
        connections: cfg.connections,
        limit: cfg.requests,
        claimed: AtomicU64::new(0),
        reconnect_every: cfg.reconnect_every,
        tls,
    });
    let (tx, rx) = crossbeam_channel::bounded::<Snapshot>(threads * 4);
    // Threads still running; the progress watcher stops at zero even if a runtime leaked a
    // sender.
    let running = Arc::new(AtomicU64::new(threads as u64));
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let conns: Vec<usize> = (t..cfg.connections).step_by(threads).collect();
        let plan = plan.clone();
        let tx = tx.clone();
        let kind = decision.kind;
        let running = running.clone();
        let h = std::thread::Builder::new()
            .name(format!("load-{t}"))
            .spawn(move || {
                let r =
                    driver::block_on(kind, IO_URING_ENTRIES, move || thread_main(plan, conns, tx))
                        .map_err(|e| format!("thread {t}: cannot build the runtime: {e}"));
                running.fetch_sub(1, Ordering::AcqRel);
                r
            })
            .map_err(|e| format!("cannot spawn thread {t}: {e}"))?;
        handles.push(h);
    }
    drop(tx);
    watch_progress(&rx, &running, plan.start, cfg.progress, progress);
    let mut total = Tally::default();
    for h in handles {
        match h.join() {
            Ok(Ok(t)) => total.merge(&t),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("a load thread panicked".into()),
        }
    }
    let secs = total.end_ns as f64 / 1e9;
    let (payload_name, profile_size) = match &cfg.source {
        Source::Synthetic { size } => ("synthetic", Some(*size as u64)),
        other => (other.name(), None),
    };
    Ok(Report {
        target: cfg.target.clone(),
        protocol: cfg.protocol.name().to_owned(),
        mode: if cfg.rate.is_some() { "open" } else { "closed" },
        connections: cfg.connections,
        threads,
        driver: match decision.kind {
            DriverKind::IoUring => "io_uring".to_owned(),
            DriverKind::Legacy => "legacy".to_owned(),
        },
        payload: payload_name.to_owned(),
        profile_size,
        seed: cfg.seed,
        duration_s: secs,
        target_rate: cfg.rate,
        achieved_rate: report::rate(total.attempted, secs),
        requests: total.attempted,
        ok: total.ok,
        failed: total.failed(),
        success_ratio: report::success_ratio(total.ok, total.attempted),
        status: total
            .status
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        errors: total.errors.clone(),
        latency: total.latencies.summary(),
        schedule_lag: cfg.rate.map(|_| total.schedule_lag.summary()),
        bytes_sent: total.bytes_sent,
        bytes_received: total.bytes_received,
        connects: Some(total.connects),
        reconnect_every: cfg.reconnect_every,
        tls: target.tls.then(|| TlsReport {
            server_name: tls::server_name(&cfg.tls, target.hostname())
                .map(|n| n.to_str().into_owned())
                .unwrap_or_default(),
            trust: cfg.tls.trust(),
            resumption: !cfg.tls.no_resume,
            resumed: total.tls_resumed,
        }),
    })
}

/// Merges the threads' snapshots and prints one line per second until every thread is done.
fn watch_progress(
    rx: &crossbeam_channel::Receiver<Snapshot>,
    running: &AtomicU64,
    start: Instant,
    enabled: bool,
    out: &mut dyn Write,
) {
    let mut acc = Latencies::new();
    let (mut done, mut failed, mut total) = (0u64, 0u64, 0u64);
    let mut last = Instant::now().max(start);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(s) => {
                acc.merge(&s.latencies);
                done += s.done;
                failed += s.failed;
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if running.load(Ordering::Acquire) == 0 {
                    break;
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        let span = now.saturating_duration_since(last);
        if span >= PROGRESS_EVERY && now > start {
            total += done;
            if enabled {
                let _ = writeln!(
                    out,
                    "[{:>7.1}s] {:>9.1} req/s  errors {:<6} p99 {:.3} ms  (total {})",
                    now.saturating_duration_since(start).as_secs_f64(),
                    report::rate(done, span.as_secs_f64()),
                    failed,
                    acc.quantile_ms(0.99),
                    total
                );
            }
            acc.reset();
            (done, failed) = (0, 0);
            last = now;
        }
    }
}

/// How a connection is made: plain TCP or TCP + TLS. The connection loop is monomorphised
/// per kind.
pub(crate) trait Dial: 'static {
    type Stream: AsyncReadRent + AsyncWriteRent + 'static;

    fn dial(
        &self,
        addr: SocketAddr,
        deadline: Instant,
    ) -> impl Future<Output = Result<Conn<Self::Stream>, ClientError>>;

    /// Takes a connection that is done with (counts TLS resumptions).
    fn closed(&self, conn: Conn<Self::Stream>, tally: &mut Tally);

    /// The dialer of one of the run's connections (TLS: its own session cache).
    fn for_connection(&self) -> Self
    where
        Self: Sized;
}

/// Plain TCP.
pub(crate) struct Plain;

impl Dial for Plain {
    type Stream = TcpStream;

    fn dial(
        &self,
        addr: SocketAddr,
        deadline: Instant,
    ) -> impl Future<Output = Result<Conn<TcpStream>, ClientError>> {
        Conn::connect(addr, deadline)
    }

    #[inline]
    fn closed(&self, _conn: Conn<TcpStream>, _tally: &mut Tally) {}

    fn for_connection(&self) -> Self {
        Plain
    }
}

impl Dial for TlsClient {
    type Stream = tls::TlsStream;

    fn dial(
        &self,
        addr: SocketAddr,
        deadline: Instant,
    ) -> impl Future<Output = Result<Conn<tls::TlsStream>, ClientError>> {
        self.connect(addr, deadline)
    }

    fn closed(&self, conn: Conn<tls::TlsStream>, tally: &mut Tally) {
        if tls::resumed(conn.into_stream()) {
            tally.tls_resumed += 1;
        }
    }

    fn for_connection(&self) -> Self {
        TlsClient::for_connection(self)
    }
}

async fn thread_main(
    plan: Arc<Plan>,
    conns: Vec<usize>,
    tx: crossbeam_channel::Sender<Snapshot>,
) -> Tally {
    match plan.tls.clone() {
        None => dial_main(plan, conns, tx, Plain).await,
        Some(t) => dial_main(plan, conns, tx, t).await,
    }
}

async fn dial_main<D: Dial>(
    plan: Arc<Plan>,
    conns: Vec<usize>,
    tx: crossbeam_channel::Sender<Snapshot>,
    dial: D,
) -> Tally {
    let state = Rc::new(RefCell::new(ThreadState::default()));
    // The ticker ends itself once the connections are done: monoio does not drop tasks
    // that are still pending when the runtime is dropped, and a leaked sender would keep
    // the progress channel open forever.
    let finished = Rc::new(std::cell::Cell::new(false));
    {
        let (state, tx, finished) = (state.clone(), tx.clone(), finished.clone());
        monoio::spawn(async move {
            loop {
                monoio::time::sleep(PROGRESS_EVERY).await;
                if finished.get() {
                    return;
                }
                send_snapshot(&state, &tx);
            }
        });
    }
    // Open every connection before the start, so the schedule measures requests, not the
    // TCP (and TLS) handshakes of a cold start.
    let mut tasks = Vec::with_capacity(conns.len());
    for c in conns {
        let plan = plan.clone();
        let state = state.clone();
        let dial = dial.for_connection();
        tasks.push(monoio::spawn(async move {
            let deadline = Instant::now() + plan.timeout;
            let conn = dial.dial(plan.addr, deadline).await.ok();
            if conn.is_some() {
                state.borrow_mut().tally.connects += 1;
            }
            let wait = plan.start.saturating_duration_since(Instant::now());
            monoio::time::sleep(wait).await;
            conn_loop(&plan, &state, &dial, c, conn).await;
        }));
    }
    for t in tasks {
        t.await;
    }
    finished.set(true);
    send_snapshot(&state, &tx);
    std::mem::take(&mut state.borrow_mut().tally)
}

fn send_snapshot(state: &Rc<RefCell<ThreadState>>, tx: &crossbeam_channel::Sender<Snapshot>) {
    let mut s = state.borrow_mut();
    let snap = Snapshot {
        done: s.interval_done,
        failed: s.interval_failed,
        latencies: s.interval.clone(),
    };
    s.interval.reset();
    s.interval_done = 0;
    s.interval_failed = 0;
    // Never block the runtime on the progress channel; a dropped snapshot only thins one
    // progress line.
    let _ = tx.try_send(snap);
}

/// Hands the connection in `slot`, if any, back to `dial`.
fn close<D: Dial>(dial: &D, slot: &mut Option<Conn<D::Stream>>, state: &RefCell<ThreadState>) {
    if let Some(c) = slot.take() {
        dial.closed(c, &mut state.borrow_mut().tally);
    }
}

async fn conn_loop<D: Dial>(
    plan: &Plan,
    state: &RefCell<ThreadState>,
    dial: &D,
    index: usize,
    mut conn: Option<Conn<D::Stream>>,
) {
    let schedule = match plan.rate {
        Some(r) => Schedule::open(r, plan.connections, index),
        None => Schedule::Closed,
    };
    let n = plan.requests.len();
    let mut corrector = schedule::Corrector::new(schedule);
    let mut backoff = CONNECT_BACKOFF_MIN;
    let mut k: u64 = 0;
    // When the connection finished its previous request (0: free from the start).
    let mut free: u64 = 0;
    // Responses on the current connection (for --reconnect-every).
    let mut uses: u64 = 0;
    loop {
        let now = plan.elapsed_ns();
        let intended = schedule.intended(k, now);
        if now >= plan.end_ns || intended >= plan.end_ns || !plan.claim() {
            close(dial, &mut conn, state);
            return;
        }
        if intended > now {
            monoio::time::sleep(Duration::from_nanos(intended - now)).await;
        }
        let req: Bytes = plan.requests[(index + k as usize) % n].bytes.clone();
        k += 1;
        let deadline = Instant::now() + plan.timeout;
        // A reconnect is part of the request, as it is for a real client.
        let sent = plan.elapsed_ns();
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match dial.dial(plan.addr, deadline).await {
                Ok(c) => {
                    backoff = CONNECT_BACKOFF_MIN;
                    uses = 0;
                    state.borrow_mut().tally.connects += 1;
                    conn.insert(c)
                }
                Err(e) => {
                    record_error(state, e.kind(), 0, plan.elapsed_ns());
                    let left = Duration::from_nanos(plan.end_ns.saturating_sub(plan.elapsed_ns()));
                    monoio::time::sleep(backoff.min(left)).await;
                    backoff = (backoff * 2).min(CONNECT_BACKOFF_MAX);
                    free = plan.elapsed_ns();
                    corrector.unavailable_until(free);
                    continue;
                }
            },
        };
        let res = c.send(req.clone(), deadline).await;
        let done = plan.elapsed_ns();
        let timing = schedule::Timing {
            intended,
            free,
            sent,
            done,
        };
        free = done;
        let measured = corrector.measure(&timing);
        {
            let mut s = state.borrow_mut();
            s.tally.end_ns = s.tally.end_ns.max(done);
        }
        match res {
            Ok(info) => {
                let lat = measured.latency_ns;
                let mut s = state.borrow_mut();
                if let Some(lag) = measured.lag_ns {
                    s.tally.schedule_lag.record_ns(lag);
                }
                s.tally
                    .response(lat, info.status, req.len() as u64, info.bytes_read as u64);
                s.interval.record_ns(lat);
                s.interval_done += 1;
                if !(200..300).contains(&info.status) {
                    s.interval_failed += 1;
                }
                drop(s);
                uses += 1;
                if info.close || plan.reconnect_every.is_some_and(|n| uses >= n) {
                    close(dial, &mut conn, state);
                }
            }
            Err(e) => {
                record_error(state, e.kind(), req.len() as u64, done);
                close(dial, &mut conn, state);
            }
        }
    }
}

fn record_error(state: &RefCell<ThreadState>, kind: String, sent: u64, at_ns: u64) {
    let mut s = state.borrow_mut();
    s.tally.error(kind, sent);
    s.tally.end_ns = s.tally.end_ns.max(at_ns);
    s.interval_done += 1;
    s.interval_failed += 1;
}
