//! Worker threads (one monoio runtime each, pinned to a core), accept shards with per-core
//! connection quotas, the driver choice, signals and graceful drain.

pub mod driver;
pub mod listener;
pub mod notify;
pub mod signals;
pub mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::forward::Forwarder;
use crate::metrics::Metrics;
use crate::util::mailbox::{MailSender, mailbox};
pub use driver::{DriverDecision, DriverKind};

/// State every worker can see. Written rarely (start, drain, reload); never on the request
/// path except the readiness check.
pub struct Shared {
    pub workers: usize,
    pub ready: AtomicUsize,
    pub draining: AtomicBool,
    pub metrics: Arc<Metrics>,
    pub forwarder: Forwarder,
    pub driver: DriverKind,
    config: Mutex<Arc<Config>>,
}

impl Shared {
    /// Ready once every worker listens, and not while draining.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) == self.workers && !self.draining.load(Ordering::Acquire)
    }

    pub fn config(&self) -> Arc<Config> {
        match self.config.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// Messages from the main thread to a worker.
pub enum Control {
    /// Stop accepting, finish in-flight requests, close idle connections.
    Drain { deadline: Instant },
    /// Apply a new, already validated configuration.
    Reload(Arc<Config>),
}

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

struct WorkerHandle {
    thread: JoinHandle<()>,
    control: MailSender<Control>,
}

pub struct Server {
    shared: Arc<Shared>,
    workers: Vec<WorkerHandle>,
    local_addr: SocketAddr,
    pub driver: DriverDecision,
}

impl Server {
    /// Binds every shard, starts the workers and returns once all of them accept.
    pub fn start(
        config: Config,
        forwarder: Forwarder,
        metrics: Arc<Metrics>,
        driver: DriverDecision,
    ) -> Result<Self, StartError> {
        let n = config.runtime.workers;
        let listeners = listener::bind_shards(
            config.server.listen,
            config.server.listen_any,
            n,
            config.server.listen_backlog,
        )
        .map_err(|source| StartError::Bind {
            addr: config.server.listen,
            source,
        })?;
        let local_addr = listeners[0]
            .local_addr()
            .map_err(|source| StartError::Bind {
                addr: config.server.listen,
                source,
            })?;
        let shared = Arc::new(Shared {
            workers: n,
            ready: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            metrics,
            forwarder,
            driver: driver.kind,
            config: Mutex::new(Arc::new(config)),
        });
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let (ready_tx, ready_rx) = crossbeam_channel::unbounded::<Result<usize, (usize, String)>>();
        let mut workers = Vec::with_capacity(n);
        for (i, l) in listeners.into_iter().enumerate() {
            let (tx, rx) = mailbox::<Control>();
            let core = if cores.is_empty() {
                None
            } else {
                Some(cores[i % cores.len()])
            };
            let spec = worker::WorkerSpec {
                index: i,
                listener: l,
                shared: shared.clone(),
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
            local_addr,
            driver,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Starts the graceful drain on every worker.
    pub fn drain(&self) {
        let cfg = self.shared.config();
        let deadline = Instant::now() + cfg.server.graceful_shutdown_timeout;
        self.shared.draining.store(true, Ordering::Release);
        for w in &self.workers {
            let _ = w.control.send(Control::Drain { deadline });
        }
    }

    /// Sends a validated configuration to every worker.
    pub fn reload(&self, cfg: Config) {
        let cfg = Arc::new(cfg);
        if let Ok(mut g) = self.shared.config.lock() {
            *g = cfg.clone();
        }
        for w in &self.workers {
            let _ = w.control.send(Control::Reload(cfg.clone()));
        }
    }

    /// Waits for every worker to finish.
    pub fn join(self) {
        for w in self.workers {
            let _ = w.thread.join();
        }
    }
}
