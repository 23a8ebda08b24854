//! Worker threads (one monoio runtime each, pinned to a core), accept shards with per-core
//! connection quotas, the driver choice, signals and graceful drain.
//!
//! Generic over what is served: a [`ServiceFactory`] makes each worker's service, and the
//! runtime never looks inside it (the gateway and the load generator's sink both run here).

pub mod driver;
pub mod listener;
pub mod notify;
pub mod service;
pub mod signals;
pub mod thp;
pub mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::metrics::Metrics;
use crate::util::mailbox::{MailSender, mailbox};
pub use driver::{DriverDecision, DriverKind};
pub use service::{ServiceConfig, ServiceFactory, Settings, WorkerService};

/// State every worker can see. Written rarely (start, drain, reload); never on the request
/// path except the readiness check.
pub struct Shared {
    pub workers: usize,
    pub ready: AtomicUsize,
    pub draining: AtomicBool,
    pub metrics: Arc<Metrics>,
    pub driver: DriverKind,
    /// Bumped every second by each worker's event loop; the systemd watchdog is only fed
    /// while every worker keeps bumping its counter.
    pub heartbeats: Vec<AtomicU64>,
    settings: Mutex<Arc<Settings>>,
}

impl Shared {
    /// The state of a runtime of `settings.workers` workers, none of them ready yet. Services
    /// can be made against it without running a server (in-process tests).
    pub fn new(settings: Settings, metrics: Arc<Metrics>, driver: DriverKind) -> Self {
        let n = settings.workers;
        Self {
            workers: n,
            ready: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            metrics,
            driver,
            heartbeats: (0..n).map(|_| AtomicU64::new(0)).collect(),
            settings: Mutex::new(Arc::new(settings)),
        }
    }

    /// Ready once every worker listens, and not while draining.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) == self.workers && !self.draining.load(Ordering::Acquire)
    }

    /// The runtime settings in force.
    pub fn settings(&self) -> Arc<Settings> {
        match self.settings.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// The reload payload of a worker: its runtime settings and its service's configuration.
pub struct Reload<C> {
    pub settings: Arc<Settings>,
    pub service: Arc<C>,
}

/// Messages from the main thread to a worker.
pub enum Control<C> {
    /// Stop accepting, finish in-flight requests, close idle connections.
    Drain { deadline: Instant },
    /// Reload phase 1: get ready to apply `cfg` (and accept on `listener` when the listen
    /// address changed) without changing anything yet; answer on `reply`.
    Prepare {
        generation: u64,
        cfg: Reload<C>,
        listener: Option<std::net::TcpListener>,
        reply: crossbeam_channel::Sender<(usize, Result<(), String>)>,
    },
    /// Reload phase 2: apply what was prepared for `generation`.
    Commit { generation: u64 },
    /// Reload failed on some worker: drop what was prepared.
    Abort { generation: u64 },
}

/// How long the main thread waits for every worker to prepare a reload.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("config error: server.listen_port: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("config error: {0}")]
    Driver(String),
    #[error("worker {worker} failed to start: {msg}")]
    Worker { worker: usize, msg: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("config error: {0}")]
    Config(String),
    #[error("config error: server.listen_port: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("worker {worker} could not prepare the reload: {msg}")]
    Worker { worker: usize, msg: String },
}

struct WorkerHandle<C> {
    thread: JoinHandle<()>,
    control: MailSender<Control<C>>,
}

pub struct Server<F: ServiceFactory> {
    shared: Arc<Shared>,
    workers: Vec<WorkerHandle<ServiceConfig<F>>>,
    local_addr: Mutex<SocketAddr>,
    generation: AtomicU64,
    pub driver: DriverDecision,
}

fn bind(s: &Settings, n: usize) -> Result<Vec<std::net::TcpListener>, std::io::Error> {
    listener::ensure_free(s.listen, s.listen_any)?;
    listener::bind_shards(s.listen, s.listen_any, n, s.listen_backlog)
}

impl<F: ServiceFactory> Server<F> {
    /// Binds every shard, starts the workers (each makes its service with `factory`) and
    /// returns once all of them accept.
    pub fn start(
        settings: Settings,
        factory: F,
        metrics: Arc<Metrics>,
        driver: DriverDecision,
    ) -> Result<Self, StartError> {
        let n = settings.workers;
        // Before the workers allocate their connections' state (see thp.rs).
        thp::disable();
        let bind_error = |source| StartError::Bind {
            addr: settings.listen,
            source,
        };
        let listeners = bind(&settings, n).map_err(bind_error)?;
        let local_addr = listeners
            .first()
            .ok_or(StartError::Worker {
                worker: 0,
                msg: "no worker configured".into(),
            })?
            .local_addr()
            .map_err(bind_error)?;
        let shared = Arc::new(Shared::new(settings, metrics, driver.kind));
        let factory = Arc::new(factory);
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let (ready_tx, ready_rx) = crossbeam_channel::unbounded::<Result<usize, (usize, String)>>();
        let mut workers = Vec::with_capacity(n);
        for (i, l) in listeners.into_iter().enumerate() {
            let (tx, rx) = mailbox::<Control<ServiceConfig<F>>>();
            let core = if cores.is_empty() {
                None
            } else {
                Some(cores[i % cores.len()])
            };
            let spec = worker::WorkerSpec {
                index: i,
                listener: l,
                shared: shared.clone(),
                factory: factory.clone(),
                control: rx,
                core,
                ready: ready_tx.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("pyrogate-w{i}"))
                .spawn(move || worker::run(spec))
                .map_err(|e| StartError::Worker {
                    worker: i,
                    msg: e.to_string(),
                })?;
            workers.push(WorkerHandle {
                thread,
                control: tx,
            });
        }
        drop(ready_tx);
        for _ in 0..n {
            match ready_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Ok(_)) => {}
                Ok(Err((worker, msg))) => return Err(StartError::Worker { worker, msg }),
                Err(_) => {
                    return Err(StartError::Worker {
                        worker: usize::MAX,
                        msg: "workers did not start within 10s".into(),
                    });
                }
            }
        }
        Ok(Self {
            shared,
            workers,
            local_addr: Mutex::new(local_addr),
            generation: AtomicU64::new(0),
            driver,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        match self.local_addr.lock() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Starts the graceful drain on every worker.
    pub fn drain(&self) {
        let deadline = Instant::now() + self.shared.settings().graceful_shutdown_timeout;
        self.shared.draining.store(true, Ordering::Release);
        for w in &self.workers {
            let _ = w.control.send(Control::Drain { deadline });
        }
    }

    /// Applies new settings and a new service configuration on every worker, in two
    /// phases: every worker prepares (including a new listener when the listen address
    /// changed); only when all of them succeeded does `apply` run (e.g. the forwarding
    /// stage) and every worker commit. Otherwise nothing changes anywhere. Established
    /// connections are kept either way.
    pub fn reload(
        &self,
        settings: Settings,
        service: Arc<ServiceConfig<F>>,
        apply: impl FnOnce() -> Result<(), String>,
    ) -> Result<(), ReloadError> {
        let old = self.shared.settings();
        if settings.workers != old.workers {
            return Err(ReloadError::Config(format!(
                "runtime.workers: changing the number of workers ({} -> {}) needs a restart",
                old.workers, settings.workers
            )));
        }
        if settings.pin_cores != old.pin_cores || settings.io_uring_entries != old.io_uring_entries
        {
            tracing::warn!(
                "reload: runtime.pin_cores and runtime.io_uring_entries apply at the next restart"
            );
        }
        let rebind = settings.listen != old.listen || settings.listen_any != old.listen_any;
        let mut listeners: Vec<Option<std::net::TcpListener>> = if rebind {
            bind(&settings, self.workers.len())
                .map_err(|source| ReloadError::Bind {
                    addr: settings.listen,
                    source,
                })?
                .into_iter()
                .map(Some)
                .collect()
        } else {
            (0..self.workers.len()).map(|_| None).collect()
        };
        let new_addr = match listeners.first().and_then(|l| l.as_ref()) {
            Some(l) => Some(l.local_addr().map_err(|source| ReloadError::Bind {
                addr: settings.listen,
                source,
            })?),
            None => None,
        };
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let settings = Arc::new(settings);
        let (tx, rx) = crossbeam_channel::unbounded();
        for (w, l) in self.workers.iter().zip(listeners.iter_mut()) {
            let _ = w.control.send(Control::Prepare {
                generation,
                cfg: Reload {
                    settings: settings.clone(),
                    service: service.clone(),
                },
                listener: l.take(),
                reply: tx.clone(),
            });
        }
        drop(tx);
        let deadline = Instant::now() + PREPARE_TIMEOUT;
        let mut failure = None;
        for _ in 0..self.workers.len() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(remaining) {
                Ok((_, Ok(()))) => {}
                Ok((worker, Err(msg))) => {
                    failure = Some(ReloadError::Worker { worker, msg });
                    break;
                }
                Err(_) => {
                    failure = Some(ReloadError::Worker {
                        worker: usize::MAX,
                        msg: format!("not every worker answered within {PREPARE_TIMEOUT:?}"),
                    });
                    break;
                }
            }
        }
        if failure.is_none()
            && let Err(msg) = apply()
        {
            failure = Some(ReloadError::Config(msg));
        }
        if let Some(e) = failure {
            for w in &self.workers {
                let _ = w.control.send(Control::Abort { generation });
            }
            return Err(e);
        }
        self.shared
            .metrics
            .conn_limit
            .store(settings.conn_limit(), Ordering::Relaxed);
        if let Ok(mut g) = self.shared.settings.lock() {
            *g = settings;
        }
        if let Some(a) = new_addr
            && let Ok(mut g) = self.local_addr.lock()
        {
            *g = a;
        }
        for w in &self.workers {
            let _ = w.control.send(Control::Commit { generation });
        }
        Ok(())
    }

    /// Waits for every worker to finish.
    pub fn join(self) {
        for w in self.workers {
            let _ = w.thread.join();
        }
    }
}
