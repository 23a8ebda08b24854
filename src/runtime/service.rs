//! What the runtime runs on every worker, and the settings it runs it with.
//!
//! The runtime knows nothing of what is served: a [`ServiceFactory`] makes one
//! [`WorkerService`] per worker, on that worker's thread, and the runtime drives it (accept,
//! connection loop, reload, drain). The gateway is one such service; the load generator's
//! sink is another.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use crate::config::tls::Acceptor;
use crate::config::{Config, OnConnLimit};
use crate::http::h2::Http2Limits;
use crate::http::server::{ConnLimits, Service};

/// A per-worker HTTP service with the hooks the runtime drives.
pub trait WorkerService: Service {
    /// What a reload hands to every worker (the service's own configuration).
    type Config: Send + Sync + 'static;

    /// Applies a committed reload on this worker (phase 2; it cannot fail any more).
    fn reload(&self, _cfg: &Arc<Self::Config>) {}

    /// Work still running on this worker that a drain must wait for once its connections
    /// are closed (e.g. deliveries of acknowledged profiles).
    fn pending(&self) -> usize {
        0
    }
}

/// The configuration type of a factory's services.
pub type ServiceConfig<F> = <<F as ServiceFactory>::Service as WorkerService>::Config;

/// Makes the service of each worker. Shared by every worker thread; `make` runs on the
/// worker's own thread, so the service itself need not be `Send`.
pub trait ServiceFactory: Send + Sync + 'static {
    type Service: WorkerService;

    fn make(&self, worker: usize, shared: &Arc<Shared>) -> Self::Service;
}

/// Everything the runtime needs to know, derived from whatever configuration the service
/// has (the gateway's [`Config`], or the sink's flags).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub listen: SocketAddr,
    /// Bind every interface (dual-stack where possible) instead of `listen`'s address.
    pub listen_any: bool,
    pub listen_backlog: u32,
    pub workers: usize,
    /// Per-worker connection quotas; empty = unlimited.
    pub core_quotas: Vec<u64>,
    pub on_conn_limit: OnConnLimit,
    pub conn: ConnLimits,
    pub graceful_shutdown_timeout: Duration,
    pub pin_cores: bool,
    pub io_uring_entries: u32,
    /// TLS on the listener: the rustls configuration and whether client certificates are
    /// verified (plain HTTP when `None`).
    pub tls: Option<TlsListener>,
}

/// What a worker needs to run TLS handshakes.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsListener {
    pub acceptor: Acceptor,
    pub verifies_client_certs: bool,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Self {
        let s = &cfg.server;
        Self {
            listen: s.listen,
            listen_any: s.listen_any,
            listen_backlog: s.listen_backlog,
            workers: cfg.runtime.workers,
            core_quotas: cfg.runtime.core_quotas.clone(),
            on_conn_limit: s.on_conn_limit,
            conn: ConnLimits {
                max_header_bytes: s.max_header_bytes,
                read_timeout: s.read_timeout,
                write_timeout: s.write_timeout,
                idle_timeout: s.idle_timeout,
                max_age: s.max_connection_age,
                max_age_jitter: s.max_connection_age_jitter,
                http2: s.http2.as_ref().map(Http2Limits::from_config),
            },
            graceful_shutdown_timeout: s.graceful_shutdown_timeout,
            pin_cores: cfg.runtime.pin_cores,
            io_uring_entries: cfg.runtime.io_uring_entries,
            tls: s.tls.as_ref().map(|t| TlsListener {
                acceptor: t.acceptor.clone(),
                verifies_client_certs: t.client_auth.verifies(),
            }),
        }
    }

    /// The quota of worker `index` (0 = unlimited).
    pub fn quota(&self, index: usize) -> u64 {
        self.core_quotas.get(index).copied().unwrap_or(0)
    }

    /// The global connection limit the quotas add up to (0 = unlimited).
    pub fn conn_limit(&self) -> u64 {
        self.core_quotas.iter().sum()
    }
}
