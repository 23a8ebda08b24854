//! `pyrogate-load run --protocol push --h2c-connections N`: Push as gRPC over cleartext
//! HTTP/2 (prior knowledge), the way a gRPC client of `push.v1.PusherService/Push` sends it.
//!
//! `--connections` is then the number of concurrent streams, spread round-robin over the N
//! HTTP/2 connections (stream *s* on connection *s mod N*); each stream is a closed loop, or
//! follows the open-loop schedule of `--rate`, exactly as an HTTP/1.1 connection of
//! [`super::run`] does, with the same coordinated-omission correction, latency histograms,
//! progress lines and [`Report`]. Connections are opened before the start; one that ends is
//! redialled by the next stream that needs it (with the same back-off as HTTP/1.1).
//!
//! Every request is `POST {base}/push.v1.PusherService/Push` with `content-type:
//! application/grpc`, `te: trailers` and the body of the `push` protocol as one gRPC
//! message: the 5-byte prefix (compressed flag, big-endian length) and the PushRequest,
//! uncompressed (flag 0); with `--grpc-gzip` the gzip'd PushRequest the Connect request
//! carries (flag 1, `grpc-encoding: gzip`). A response counts as OK when it is HTTP 200 and
//! its `grpc-status` (in the headers of a trailers-only response, or in the trailers) is 0.
//! An HTTP status other than 200 is recorded as that status; a 200 with another gRPC status
//! as the error `grpc-status N` (its latency still recorded), a 200 without one as
//! `grpc: no grpc-status`.
//!
//! Report fields: `protocol` is `grpc-push` (`grpc-push+gzip`), `connections` the streams,
//! `connects` the HTTP/2 connections opened; `bytes_sent`/`bytes_received` count DATA
//! payloads (the gRPC frames), not HTTP/2 framing or headers.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use h2::client::SendRequest;
use monoio::net::TcpStream;
use pyrogate::runtime::driver::{self, DriverKind};
use pyrogate_testdata::gz::{gunzip, gzip};

use super::payload::{self, Options, Protocol, Source, Target};
use super::report::{self, Report, Tally};
use super::schedule::{self, Schedule};
use super::{
    CONNECT_BACKOFF_MAX, CONNECT_BACKOFF_MIN, IO_URING_ENTRIES, MAX_DURATION, PROGRESS_EVERY,
    RunConfig, START_DELAY, Snapshot, ThreadState, record_error, send_snapshot, watch_progress,
};

/// The gRPC method of Pyroscope's Push.
pub const GRPC_PUSH_PATH: &str = "/push.v1.PusherService/Push";
/// Most HTTP/2 connections of one run.
pub const MAX_H2C_CONNECTIONS: usize = 10_000;
/// How long a finished run waits for its connections to close (GOAWAY and FIN).
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// `run`'s gRPC-over-h2c options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcOptions {
    /// HTTP/2 connections the streams (`RunConfig::connections`) are spread over.
    pub h2_connections: usize,
    /// Send the gzip'd PushRequest (flag 1, `grpc-encoding: gzip`) instead of the plain one.
    pub gzip: bool,
}

impl GrpcOptions {
    /// The report's protocol name.
    pub fn protocol_name(&self) -> &'static str {
        if self.gzip {
            "grpc-push+gzip"
        } else {
            "grpc-push"
        }
    }

    /// Checks these options together with the rest of the run.
    pub fn validate(&self, cfg: &RunConfig) -> Result<(), String> {
        if !(1..=MAX_H2C_CONNECTIONS).contains(&self.h2_connections) {
            return Err(format!(
                "--h2c-connections must be within 1..={MAX_H2C_CONNECTIONS}"
            ));
        }
        if self.h2_connections > cfg.connections {
            return Err(
                "--h2c-connections must not exceed --connections (the concurrent streams)".into(),
            );
        }
        if cfg.protocol != Protocol::Push {
            return Err("--h2c-connections sends gRPC Push: give --protocol push".into());
        }
        if !cfg.target.starts_with("http://") {
            return Err("--h2c-connections speaks cleartext HTTP/2: give an http:// target".into());
        }
        if cfg.reconnect_every.is_some() {
            return Err("--reconnect-every does not apply to --h2c-connections".into());
        }
        Ok(())
    }
}

/// One gRPC length-prefixed message: the compressed flag, the big-endian length, the bytes.
pub fn frame(message: &[u8], compressed: bool) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + message.len());
    b.put_u8(u8::from(compressed));
    // Our messages are far below 4 GiB (bodies are bounded to 64 MiB).
    b.put_u32(message.len() as u32);
    b.put_slice(message);
    b.freeze()
}

/// The gRPC body of a Connect Push body (gzip'd or not): the PushRequest framed as one
/// message, plain or gzip'd as asked.
pub fn grpc_body(connect_body: &[u8], compress: bool) -> Result<Bytes, String> {
    let gzipped = connect_body.starts_with(&[0x1f, 0x8b]);
    Ok(match (compress, gzipped) {
        (true, true) => frame(connect_body, true),
        (true, false) => frame(&gzip(connect_body), true),
        (false, true) => {
            let plain = gunzip(connect_body).ok_or("the Push body is not valid gzip")?;
            frame(&plain, false)
        }
        (false, false) => frame(connect_body, false),
    })
}

/// The request head every stream sends (cloned per request).
#[derive(Debug, Clone)]
struct Head {
    uri: http::Uri,
    headers: http::HeaderMap,
}

impl Head {
    fn new(target: &Target, tenant: Option<&str>, compress: bool) -> Result<Self, String> {
        let uri: http::Uri = format!("http://{}{}{GRPC_PUSH_PATH}", target.host, target.base_path)
            .parse()
            .map_err(|e| format!("--target {:?}: {e}", target.url))?;
        let mut headers = http::HeaderMap::new();
        let mut add = |name: &'static str, value: &str| -> Result<(), String> {
            let v = http::HeaderValue::from_str(value).map_err(|e| format!("{name}: {e}"))?;
            headers.insert(name, v);
            Ok(())
        };
        add("content-type", "application/grpc")?;
        add("te", "trailers")?;
        add("user-agent", "pyrogate-load grpc-push")?;
        add("grpc-accept-encoding", "identity,gzip")?;
        if compress {
            add("grpc-encoding", "gzip")?;
        }
        if let Some(t) = tenant {
            add("x-scope-orgid", t)?;
        }
        Ok(Self { uri, headers })
    }

    fn request(&self) -> http::Request<()> {
        let mut r = http::Request::new(());
        *r.method_mut() = http::Method::POST;
        *r.uri_mut() = self.uri.clone();
        *r.headers_mut() = self.headers.clone();
        r
    }
}

/// What every thread needs; read-only.
struct Plan {
    addr: SocketAddr,
    head: Head,
    bodies: Vec<Bytes>,
    start: Instant,
    end_ns: u64,
    timeout: Duration,
    rate: Option<f64>,
    streams: usize,
    h2_connections: usize,
    limit: Option<u64>,
    claimed: AtomicU64,
}

impl Plan {
    fn elapsed_ns(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.start)
            .as_nanos() as u64
    }

    fn claim(&self) -> bool {
        match self.limit {
            Some(l) => self.claimed.fetch_add(1, Ordering::Relaxed) < l,
            None => true,
        }
    }
}

/// Runs the load and returns the report (the gRPC counterpart of [`super::run`]).
pub fn run(
    cfg: &RunConfig,
    grpc: &GrpcOptions,
    progress: &mut dyn Write,
) -> Result<Report, String> {
    cfg.validate()?;
    grpc.validate(cfg)?;
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
    let bodies = payload::prepare(Protocol::Push, &target, &opts)?
        .iter()
        .map(|p| grpc_body(&p.body, grpc.gzip))
        .collect::<Result<Vec<_>, _>>()?;
    let head = Head::new(&target, cfg.tenant.as_deref(), grpc.gzip)?;
    let decision = driver::choose(cfg.driver, IO_URING_ENTRIES)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cfg.threads.unwrap_or(cores).min(grpc.h2_connections).max(1);
    let duration = cfg.duration.unwrap_or(MAX_DURATION).min(MAX_DURATION);
    let plan = Arc::new(Plan {
        addr: target.addr,
        head,
        bodies,
        start: Instant::now() + START_DELAY,
        end_ns: duration.as_nanos() as u64,
        timeout: cfg.timeout,
        rate: cfg.rate,
        streams: cfg.connections,
        h2_connections: grpc.h2_connections,
        limit: cfg.requests,
        claimed: AtomicU64::new(0),
    });
    let (tx, rx) = crossbeam_channel::bounded::<Snapshot>(threads * 4);
    let running = Arc::new(AtomicU64::new(threads as u64));
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let conns: Vec<usize> = (t..grpc.h2_connections).step_by(threads).collect();
        let plan = plan.clone();
        let tx = tx.clone();
        let kind = decision.kind;
        let running = running.clone();
        let h = std::thread::Builder::new()
            .name(format!("load-h2-{t}"))
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
        protocol: grpc.protocol_name().to_owned(),
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
        reconnect_every: None,
        tls: None,
    })
}

/// One HTTP/2 connection shared by the streams of a thread; redialled when it ends.
struct H2Conn {
    send: RefCell<Option<SendRequest<Bytes>>>,
    /// Set by the connection's driver task when the connection ended.
    closed: RefCell<Rc<Cell<bool>>>,
    dialing: Cell<bool>,
    /// The driver tasks of every connection this slot opened.
    drivers: RefCell<Vec<monoio::task::JoinHandle<()>>>,
}

impl H2Conn {
    fn new() -> Self {
        Self {
            send: RefCell::new(None),
            closed: RefCell::new(Rc::new(Cell::new(true))),
            dialing: Cell::new(false),
            drivers: RefCell::new(Vec::new()),
        }
    }

    /// A handle of the live connection, dialling it first when there is none (one stream
    /// dials, the others wait for it).
    async fn sender(
        &self,
        addr: SocketAddr,
        deadline: Instant,
        state: &RefCell<ThreadState>,
    ) -> Result<SendRequest<Bytes>, String> {
        loop {
            if !self.closed.borrow().get()
                && let Some(s) = self.send.borrow().as_ref()
            {
                return Ok(s.clone());
            }
            if self.dialing.get() {
                if Instant::now() >= deadline {
                    return Err("timeout".into());
                }
                monoio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            self.dialing.set(true);
            let r = dial(addr, deadline).await;
            self.dialing.set(false);
            let (send, closed, driver) = r?;
            state.borrow_mut().tally.connects += 1;
            *self.send.borrow_mut() = Some(send);
            *self.closed.borrow_mut() = closed;
            self.drivers.borrow_mut().push(driver);
        }
    }

    /// Drops the connection's handle and waits (bounded) for its driver tasks: with no
    /// handle and no stream left, the `h2` client sends GOAWAY and closes the socket.
    async fn close(&self) {
        self.send.borrow_mut().take();
        let drivers = std::mem::take(&mut *self.drivers.borrow_mut());
        for d in drivers {
            let _ = monoio::time::timeout(CLOSE_WAIT, d).await;
        }
    }
}

type Dialled = (
    SendRequest<Bytes>,
    Rc<Cell<bool>>,
    monoio::task::JoinHandle<()>,
);

/// TCP connect and the HTTP/2 handshake (prior knowledge), both before `deadline`; the
/// connection is driven by a task of this thread from then on.
async fn dial(addr: SocketAddr, deadline: Instant) -> Result<Dialled, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    let tcp = match monoio::time::timeout(left, TcpStream::connect_addr(addr)).await {
        Err(_) => return Err("timeout".into()),
        Ok(Err(e)) => return Err(format!("connect: {}", io_kind(e.kind()))),
        Ok(Ok(s)) => s,
    };
    let _ = tcp.set_nodelay(true);
    let io = tcp
        .try_into_poll_io()
        .map_err(|(e, _)| format!("connect: {}", io_kind(e.kind())))?;
    let hs = h2::client::Builder::new().handshake::<_, Bytes>(io);
    let (send, conn) = match monoio::time::timeout_at(deadline.into(), hs).await {
        Err(_) => return Err("timeout".into()),
        Ok(Err(e)) => return Err(h2_kind(&e)),
        Ok(Ok(p)) => p,
    };
    let closed = Rc::new(Cell::new(false));
    let flag = closed.clone();
    let driver = monoio::spawn(async move {
        let _ = conn.await;
        flag.set(true);
    });
    Ok((send, closed, driver))
}

fn io_kind(k: std::io::ErrorKind) -> String {
    match k {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// A short error kind for the report.
fn h2_kind(e: &h2::Error) -> String {
    if let Some(r) = e.reason() {
        let what = if e.is_go_away() {
            "goaway"
        } else if e.is_reset() {
            "reset"
        } else {
            "error"
        };
        return format!("h2 {what}: {}", format!("{r:?}").to_lowercase());
    }
    if let Some(io) = e.get_io() {
        return format!("h2 io: {}", io_kind(io.kind()));
    }
    "h2: connection error".into()
}

/// What came back for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Answer {
    status: u16,
    grpc_status: Option<u32>,
    received: u64,
}

fn grpc_status(h: &http::HeaderMap) -> Option<u32> {
    h.get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// One request on `send`'s connection: HEADERS, the body in DATA (END_STREAM), then the
/// response head, its DATA and its trailers, all before `deadline` (on timeout the stream is
/// dropped, which resets it).
async fn exchange(
    send: SendRequest<Bytes>,
    req: http::Request<()>,
    body: Bytes,
    deadline: Instant,
) -> Result<Answer, String> {
    let work = async move {
        let mut send = send.ready().await.map_err(|e| h2_kind(&e))?;
        let (response, mut stream) = send.send_request(req, false).map_err(|e| h2_kind(&e))?;
        stream.send_data(body, true).map_err(|e| h2_kind(&e))?;
        let resp = response.await.map_err(|e| h2_kind(&e))?;
        let status = resp.status().as_u16();
        let mut grpc = grpc_status(resp.headers());
        let mut recv = resp.into_body();
        let mut received = 0u64;
        while let Some(chunk) = recv.data().await {
            let chunk = chunk.map_err(|e| h2_kind(&e))?;
            received += chunk.len() as u64;
            let _ = recv.flow_control().release_capacity(chunk.len());
        }
        if let Some(t) = recv.trailers().await.map_err(|e| h2_kind(&e))?
            && let Some(g) = grpc_status(&t)
        {
            grpc = Some(g);
        }
        Ok(Answer {
            status,
            grpc_status: grpc,
            received,
        })
    };
    match monoio::time::timeout_at(deadline.into(), work).await {
        Err(_) => Err("timeout".into()),
        Ok(r) => r,
    }
}

async fn thread_main(
    plan: Arc<Plan>,
    conns: Vec<usize>,
    tx: crossbeam_channel::Sender<Snapshot>,
) -> Tally {
    let state = Rc::new(RefCell::new(ThreadState::default()));
    let finished = Rc::new(Cell::new(false));
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
    // Open every connection before the start, as the HTTP/1.1 loop does.
    let slots: Vec<(usize, Rc<H2Conn>)> =
        conns.iter().map(|&c| (c, Rc::new(H2Conn::new()))).collect();
    for (_, slot) in &slots {
        let deadline = Instant::now() + plan.timeout;
        let _ = slot.sender(plan.addr, deadline, &state).await;
    }
    let mut tasks = Vec::new();
    for s in 0..plan.streams {
        let Some((_, slot)) = slots.iter().find(|(c, _)| *c == s % plan.h2_connections) else {
            continue;
        };
        let (plan, state, slot) = (plan.clone(), state.clone(), slot.clone());
        tasks.push(monoio::spawn(async move {
            let wait = plan.start.saturating_duration_since(Instant::now());
            monoio::time::sleep(wait).await;
            stream_loop(&plan, &state, &slot, s).await;
        }));
    }
    for t in tasks {
        t.await;
    }
    for (_, slot) in &slots {
        slot.close().await;
    }
    finished.set(true);
    send_snapshot(&state, &tx);
    std::mem::take(&mut state.borrow_mut().tally)
}

/// One stream's requests, one after the other (closed loop or open-loop schedule).
async fn stream_loop(plan: &Plan, state: &RefCell<ThreadState>, conn: &H2Conn, index: usize) {
    let schedule = match plan.rate {
        Some(r) => Schedule::open(r, plan.streams, index),
        None => Schedule::Closed,
    };
    let n = plan.bodies.len();
    let mut corrector = schedule::Corrector::new(schedule);
    let mut backoff = CONNECT_BACKOFF_MIN;
    let mut k: u64 = 0;
    let mut free: u64 = 0;
    loop {
        let now = plan.elapsed_ns();
        let intended = schedule.intended(k, now);
        if now >= plan.end_ns || intended >= plan.end_ns || !plan.claim() {
            return;
        }
        if intended > now {
            monoio::time::sleep(Duration::from_nanos(intended - now)).await;
        }
        let body = plan.bodies[(index + k as usize) % n].clone();
        k += 1;
        let deadline = Instant::now() + plan.timeout;
        let sent = plan.elapsed_ns();
        let send = match conn.sender(plan.addr, deadline, state).await {
            Ok(s) => {
                backoff = CONNECT_BACKOFF_MIN;
                s
            }
            Err(kind) => {
                record_error(state, kind, 0, plan.elapsed_ns());
                let left = Duration::from_nanos(plan.end_ns.saturating_sub(plan.elapsed_ns()));
                monoio::time::sleep(backoff.min(left)).await;
                backoff = (backoff * 2).min(CONNECT_BACKOFF_MAX);
                free = plan.elapsed_ns();
                corrector.unavailable_until(free);
                continue;
            }
        };
        let body_len = body.len() as u64;
        let res = exchange(send, plan.head.request(), body, deadline).await;
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
            Ok(a) => {
                let lat = measured.latency_ns;
                let mut s = state.borrow_mut();
                if let Some(lag) = measured.lag_ns {
                    s.tally.schedule_lag.record_ns(lag);
                }
                let ok = match (a.status, a.grpc_status) {
                    (200, Some(0)) => {
                        s.tally.response(lat, 200, body_len, a.received);
                        true
                    }
                    (200, g) => {
                        // HTTP 200 carrying a gRPC error (or none): a failed request whose
                        // latency still counts, as a non-2xx HTTP/1.1 response's does.
                        s.tally.latencies.record_ns(lat);
                        s.tally.bytes_received += a.received;
                        let kind = match g {
                            Some(code) => format!("grpc-status {code}"),
                            None => "grpc: no grpc-status".to_owned(),
                        };
                        s.tally.error(kind, body_len);
                        false
                    }
                    (status, _) => {
                        s.tally.response(lat, status, body_len, a.received);
                        (200..300).contains(&status)
                    }
                };
                s.interval.record_ns(lat);
                s.interval_done += 1;
                if !ok {
                    s.interval_failed += 1;
                }
            }
            Err(kind) => record_error(state, kind, body_len, done),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::payload::parse_target;

    fn cfg() -> RunConfig {
        RunConfig {
            target: "http://127.0.0.1:4040".into(),
            protocol: Protocol::Push,
            connections: 8,
            rate: None,
            duration: Some(Duration::from_secs(1)),
            requests: None,
            timeout: Duration::from_secs(1),
            source: Source::Synthetic { size: 1024 },
            seed: 1,
            tenant: None,
            driver: pyrogate::config::DriverChoice::Auto,
            threads: None,
            progress: false,
            reconnect_every: None,
            tls: Default::default(),
        }
    }

    #[test]
    fn frames_and_bodies() {
        let f = frame(b"abc", false);
        assert_eq!(&f[..], &[0, 0, 0, 0, 3, b'a', b'b', b'c']);
        let f = frame(&[7u8; 300], true);
        assert_eq!(&f[..5], &[1, 0, 0, 1, 44]);
        let plain = b"a PushRequest".to_vec();
        let gz = gzip(&plain);
        // A gzip'd Connect body: unpacked for flag 0, kept as it is for flag 1.
        assert_eq!(grpc_body(&gz, false).expect("plain"), frame(&plain, false));
        assert_eq!(grpc_body(&gz, true).expect("gzip"), frame(&gz, true));
        // A plain Connect body.
        assert_eq!(
            grpc_body(&plain, false).expect("plain"),
            frame(&plain, false)
        );
        let packed = grpc_body(&plain, true).expect("gzip");
        assert_eq!(packed[0], 1);
        assert_eq!(gunzip(&packed[5..]).expect("gzip"), plain);
        assert!(grpc_body(&[0x1f, 0x8b, 0, 0], false).is_err());
    }

    #[test]
    fn heads() {
        let t = parse_target("http://127.0.0.1:4040/base").expect("target");
        let h = Head::new(&t, Some("t1"), true).expect("head");
        let r = h.request();
        assert_eq!(r.method(), http::Method::POST);
        assert_eq!(
            r.uri().to_string(),
            "http://127.0.0.1:4040/base/push.v1.PusherService/Push"
        );
        let get = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok());
        assert_eq!(get("content-type"), Some("application/grpc"));
        assert_eq!(get("te"), Some("trailers"));
        assert_eq!(get("grpc-encoding"), Some("gzip"));
        assert_eq!(get("x-scope-orgid"), Some("t1"));
        let plain = Head::new(&t, None, false).expect("head").request();
        assert!(plain.headers().get("grpc-encoding").is_none());
        assert!(plain.headers().get("x-scope-orgid").is_none());
    }

    #[test]
    fn options() {
        let g = GrpcOptions {
            h2_connections: 2,
            gzip: false,
        };
        assert!(g.validate(&cfg()).is_ok());
        assert_eq!(g.protocol_name(), "grpc-push");
        let too_many = GrpcOptions {
            h2_connections: 9,
            ..g
        };
        assert!(too_many.validate(&cfg()).is_err());
        let zero = GrpcOptions {
            h2_connections: 0,
            ..g
        };
        assert!(zero.validate(&cfg()).is_err());
        let mut c = cfg();
        c.protocol = Protocol::IngestPprof;
        assert!(g.validate(&c).is_err());
        let mut c = cfg();
        c.target = "https://127.0.0.1:4040".into();
        assert!(g.validate(&c).is_err());
        let mut c = cfg();
        c.reconnect_every = Some(1);
        assert!(g.validate(&c).is_err());
    }

    #[test]
    fn grpc_status_from_headers() {
        let mut h = http::HeaderMap::new();
        assert_eq!(grpc_status(&h), None);
        h.insert("grpc-status", http::HeaderValue::from_static("0"));
        assert_eq!(grpc_status(&h), Some(0));
        h.insert("grpc-status", http::HeaderValue::from_static("14"));
        assert_eq!(grpc_status(&h), Some(14));
    }
}
