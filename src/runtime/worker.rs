//! One worker: a pinned thread running its own monoio runtime, its own accept shard and its
//! own connections. Nothing here is shared with other workers except the control mailbox
//! and the per-core metrics it writes.
//!
//! The per-core quota is taken *before* `accept` and released when the connection closes
//! (the permit is a drop guard), exactly like Alloy's limit listener: at quota the shard
//! stops accepting, and new connections wait in the kernel backlog (`on_conn_limit = wait`),
//! or are accepted and answered `503` at once (`reject`).

use std::cell::{Cell, RefCell};
use std::net::TcpListener as StdListener;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use monoio::net::{TcpListener, TcpStream};

use super::service::TlsListener;
use super::service::{ServiceConfig, ServiceFactory, Settings, WorkerService};
use super::{Control, Reload, Shared};
use crate::config::OnConnLimit;
use crate::http::Response;
use crate::http::server::{ConnEnv, Service, prepare_stream, reject_connection, serve_conn};
use crate::http::tls::{HandshakeError, TlsConn};
use crate::metrics::{CoreMetrics, Metrics, RejectReason};
use crate::util::mailbox::Mailbox;
use crate::util::notify::{LocalNotify, LocalSignal};

/// At most this many connections per worker are being answered `503` at the same time in
/// `reject` mode; beyond that a new connection is closed without a response.
const MAX_REJECTING: u32 = 1024;
/// Back-off after `accept` fails with EMFILE/ENFILE, so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

pub struct WorkerSpec<F: ServiceFactory> {
    pub index: usize,
    pub listener: StdListener,
    pub shared: Arc<Shared>,
    pub factory: Arc<F>,
    pub control: Mailbox<Control<ServiceConfig<F>>>,
    pub core: Option<core_affinity::CoreId>,
    pub ready: Sender<Result<usize, (usize, String)>>,
}

/// Connection accounting of one shard.
struct Shard {
    quota: Cell<u64>,
    active: Cell<u64>,
    rejecting: Cell<u32>,
    on_limit: Cell<OnConnLimit>,
    released: LocalNotify,
    /// A committed reload brought a new listener (listen address changed).
    next_listener: RefCell<Option<TcpListener>>,
    rebind: LocalNotify,
    drain: Rc<LocalSignal>,
    metrics: Arc<CoreMetrics>,
    /// TLS on new connections (a reload may switch it; established ones keep theirs).
    tls: RefCell<Option<TlsListener>>,
    all_metrics: Arc<Metrics>,
}

impl Shard {
    fn at_quota(&self) -> bool {
        let q = self.quota.get();
        q > 0 && self.active.get() >= q
    }
}

/// Releases the connection's slot when the connection task ends, however it ends.
struct Permit(Rc<Shard>);

impl Drop for Permit {
    fn drop(&mut self) {
        let s = &self.0;
        s.active.set(s.active.get() - 1);
        s.metrics.conn_closed();
        s.released.notify();
    }
}

pub fn run<F: ServiceFactory>(spec: WorkerSpec<F>) {
    let index = spec.index;
    let settings = spec.shared.settings();
    if settings.pin_cores
        && let Some(core) = spec.core
        && !core_affinity::set_for_current(core)
    {
        tracing::warn!(
            worker = index,
            core = core.id,
            "could not pin worker to its core"
        );
    }
    let kind = spec.shared.driver;
    let ready = spec.ready.clone();
    let entries = settings.io_uring_entries;
    if let Err(e) = super::driver::block_on(kind, entries, move || worker_main(spec)) {
        let _ = ready.send(Err((
            index,
            format!("cannot build the {} runtime: {e}", kind.name()),
        )));
    }
}

async fn worker_main<F: ServiceFactory>(spec: WorkerSpec<F>) {
    let WorkerSpec {
        index,
        listener,
        shared,
        factory,
        control,
        ready,
        ..
    } = spec;
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err((index, format!("cannot register listener: {e}"))));
            return;
        }
    };
    let settings = shared.settings();
    let metrics = shared.metrics.cores[index].clone();
    let quota = settings.quota(index);
    metrics.set_limit(quota);
    let drain = Rc::new(LocalSignal::new());
    let shard = Rc::new(Shard {
        quota: Cell::new(quota),
        active: Cell::new(0),
        rejecting: Cell::new(0),
        on_limit: Cell::new(settings.on_conn_limit),
        released: LocalNotify::new(),
        next_listener: RefCell::new(None),
        rebind: LocalNotify::new(),
        drain: drain.clone(),
        metrics,
        tls: RefCell::new(settings.tls.clone()),
        all_metrics: shared.metrics.clone(),
    });
    if settings.tls.is_some() {
        // Every reason at 0 from the start, so rates and alerts work before the first one.
        for r in HandshakeError::REASONS {
            let _ = shared.metrics.tls.failures.with_label_values(&[r]);
        }
    }
    let env = ConnEnv::with_metrics(
        settings.conn,
        drain.clone(),
        Some(shared.metrics.http2.clone()),
    );
    publish_http2(&settings, &env);
    let svc = Rc::new(factory.make(index, &shared));
    let drain_deadline = Rc::new(Cell::new(None::<Instant>));
    monoio::spawn(control_loop(
        index,
        control,
        shard.clone(),
        env.clone(),
        svc.clone(),
        drain_deadline.clone(),
    ));
    monoio::spawn(heartbeat(shared.clone(), index));
    shared.ready.fetch_add(1, Ordering::AcqRel);
    let _ = ready.send(Ok(index));
    drop(ready);

    let listener = accept_loop(listener, &shard, &env, &svc).await;
    // Closing the shard's listener first: the kernel stops routing new connections to it.
    drop(listener);
    let deadline = drain_deadline
        .get()
        .unwrap_or_else(|| Instant::now() + shared.settings().graceful_shutdown_timeout);
    // In-flight requests finish, and so does the work the service still has running on
    // this worker (deliveries of profiles a caller was already answered for).
    loop {
        let pending = svc.pending();
        if shard.active.get() == 0 && pending == 0 {
            break;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            tracing::warn!(
                worker = index,
                open = shard.active.get(),
                pending,
                "graceful shutdown timeout reached; closing remaining connections"
            );
            break;
        }
        let _ = monoio::time::timeout(
            remaining.min(Duration::from_millis(50)),
            shard.released.notified(),
        )
        .await;
    }
}

/// Feeds the watchdog: the counter only moves while this worker's event loop runs.
async fn heartbeat(shared: Arc<Shared>, index: usize) {
    loop {
        shared.heartbeats[index].fetch_add(1, Ordering::Relaxed);
        monoio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Accepts until the drain starts; returns the listener in use then (a reload may have
/// replaced the one it started with).
async fn accept_loop<S: WorkerService>(
    mut listener: TcpListener,
    shard: &Rc<Shard>,
    env: &Rc<ConnEnv>,
    svc: &Rc<S>,
) -> TcpListener {
    loop {
        if let Some(next) = shard.next_listener.borrow_mut().take() {
            // The old shard closes here; its not-yet-accepted connections are reset, as
            // when any server stops listening on an address.
            listener = next;
        }
        if shard.on_limit.get() == OnConnLimit::Wait {
            // Take the permit before accepting: at quota, stop accepting (Alloy semantics).
            while shard.at_quota() {
                monoio::select! {
                    _ = shard.released.notified() => {},
                    _ = shard.drain.wait() => return listener,
                }
            }
        }
        let accepted = monoio::select! {
            r = listener.accept() => Some(r),
            _ = shard.rebind.notified() => None,
            _ = shard.drain.wait() => return listener,
        };
        let Some(accepted) = accepted else { continue };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                accept_error(&e).await;
                continue;
            }
        };
        if shard.at_quota() {
            if shard.tls.borrow().is_some() {
                // A plain-text 503 means nothing to a TLS client, and a handshake to send
                // it would spend the CPU the limit protects: close at once.
                shard.metrics.rejected(RejectReason::ConnLimit);
                drop(stream);
            } else {
                reject(shard, stream);
            }
            continue;
        }
        shard.active.set(shard.active.get() + 1);
        shard.metrics.conn_opened();
        let permit = Permit(shard.clone());
        if prepare_stream(&stream).is_err() {
            continue;
        }
        let (svc, env) = (svc.clone(), env.clone());
        let tls = shard.tls.borrow().clone();
        match tls {
            None => {
                monoio::spawn(serve_conn(stream, svc, env, permit));
            }
            Some(tls) => {
                let metrics = shard.all_metrics.clone();
                monoio::spawn(serve_tls(stream, tls, svc, env, permit, metrics));
            }
        }
    }
}

/// Runs the TLS handshake (bounded by `server_read_timeout`, cut short by a drain) on this
/// worker, then serves the connection like a plain one.
async fn serve_tls<S: Service>(
    stream: TcpStream,
    tls: TlsListener,
    svc: Rc<S>,
    env: Rc<ConnEnv>,
    permit: Permit,
    metrics: Arc<Metrics>,
) {
    let started = Instant::now();
    let timeout = env.limits.get().read_timeout;
    let handshake = Box::pin(TlsConn::accept(
        stream,
        tls.acceptor.0.clone(),
        tls.verifies_client_certs,
    ));
    let result = monoio::select! {
        r = monoio::time::timeout(timeout, handshake) => {
            r.unwrap_or(Err(HandshakeError::Timeout))
        },
        _ = env.drain.wait() => return,
    };
    match result {
        Ok(conn) => {
            let m = &metrics.tls;
            m.handshakes.with_label_values(&[conn.version()]).inc();
            m.duration.observe(started.elapsed().as_secs_f64());
            serve_conn(conn, svc, env, permit).await;
        }
        Err(e) => {
            metrics.tls.failures.with_label_values(&[e.reason()]).inc();
            tracing::debug!(error = %e, "TLS handshake failed");
        }
    }
}

/// `on_conn_limit = reject`: answer at once so the client can go elsewhere or back off,
/// instead of hanging in the backlog.
fn reject(shard: &Rc<Shard>, stream: TcpStream) {
    shard.metrics.rejected(RejectReason::ConnLimit);
    if shard.rejecting.get() >= MAX_REJECTING {
        return; // dropping the stream closes it
    }
    shard.rejecting.set(shard.rejecting.get() + 1);
    let shard = shard.clone();
    monoio::spawn(async move {
        let _ = stream.set_nodelay(true);
        let resp = Response::text(503, "connection limit reached\n")
            .header("Retry-After", "1")
            .closing();
        reject_connection(stream, &resp).await;
        shard.rejecting.set(shard.rejecting.get() - 1);
    });
}

async fn accept_error(e: &std::io::Error) {
    match e.raw_os_error() {
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM) => {
            tracing::warn!(error = %e, "accept failed: out of file descriptors or memory; raise LimitNOFILE or lower conn_limit");
            monoio::time::sleep(ACCEPT_ERROR_PAUSE).await;
        }
        // The peer went away between the handshake and accept: nothing to do.
        Some(libc::ECONNABORTED) | Some(libc::EINTR) | Some(libc::EAGAIN) => {}
        _ => {
            tracing::warn!(error = %e, "accept failed");
            monoio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn control_loop<S: WorkerService>(
    index: usize,
    control: Mailbox<Control<S::Config>>,
    shard: Rc<Shard>,
    env: Rc<ConnEnv>,
    svc: Rc<S>,
    drain_deadline: Rc<Cell<Option<Instant>>>,
) {
    let mut prepared: Option<(u64, Reload<S::Config>, Option<TcpListener>)> = None;
    while let Some(msg) = control.recv().await {
        match msg {
            Control::Drain { deadline } => {
                drain_deadline.set(Some(deadline));
                // Also closes the idle keep-alive connections.
                env.start_drain();
                // Wake the accept loop and any waiter on the quota.
                shard.released.notify();
            }
            Control::Prepare {
                generation,
                cfg,
                listener,
                reply,
            } => {
                let result = match listener.map(TcpListener::from_std).transpose() {
                    Ok(l) => {
                        prepared = Some((generation, cfg, l));
                        Ok(())
                    }
                    Err(e) => Err(format!("cannot register the new listener: {e}")),
                };
                let _ = reply.send((index, result));
            }
            Control::Abort { generation } => {
                if prepared.as_ref().is_some_and(|p| p.0 == generation) {
                    prepared = None;
                }
            }
            Control::Commit { generation } => {
                let Some((g, cfg, listener)) = prepared.take() else {
                    continue;
                };
                if g != generation {
                    continue;
                }
                apply(index, &cfg.settings, &shard, &env);
                svc.reload(&cfg.service);
                if let Some(l) = listener {
                    *shard.next_listener.borrow_mut() = Some(l);
                    shard.rebind.notify();
                }
            }
        }
    }
}

/// Shows the HTTP/2 bounds in force (and the connection and reset counters at 0), so
/// dashboards have them before the first HTTP/2 client.
fn publish_http2(settings: &Settings, env: &ConnEnv) {
    if let (Some(h), Some(m)) = (settings.conn.http2, &env.http2_metrics) {
        h.publish(m);
        for setup in ["prior_knowledge", "upgrade"] {
            let _ = m.connections.with_label_values(&[setup]);
        }
        for code in ["no_error", "enhance_your_calm", "protocol_error"] {
            let _ = m.goaways.with_label_values(&[code]);
        }
    }
}

/// Applies committed runtime settings to this worker: limits read per request, the quota
/// and its policy.
fn apply(index: usize, settings: &Settings, shard: &Shard, env: &ConnEnv) {
    env.limits.set(settings.conn);
    publish_http2(settings, env);
    *shard.tls.borrow_mut() = settings.tls.clone();
    shard.on_limit.set(settings.on_conn_limit);
    let quota = settings.quota(index);
    shard.quota.set(quota);
    shard.metrics.set_limit(quota);
    // A larger quota may let the accept loop continue.
    shard.released.notify();
}
