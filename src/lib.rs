//! pyrogate: an edge gateway for continuous-profiling traffic.
//!
//! The tree follows a request's journey: [`runtime`] (workers, accept shards, quotas) →
//! [`http`] (framing) → [`protocol`] (`/ingest`, Push) → [`forward`] (envelopes, queues,
//! writers) → [`metrics`].
pub mod config;
pub mod distributor;
pub mod forward;
pub mod gateway;
pub mod http;
pub mod metrics;
pub mod protocol;
pub mod ring;
pub mod runtime;
pub mod spool;
pub mod util;
