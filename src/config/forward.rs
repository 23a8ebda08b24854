//! `[forward]`: ack policy, where deliveries run, queue bounds, delivery timeouts and
//! whether a Push is decoded at the edge.

use std::time::Duration;

use super::choices::{AckPolicy, DecodePush, Dispatch, ForwardMode};
use super::file::FileConfig;
use super::{Cli, ConfigError};

/// Per destination: enough for ~16k typical (16 KiB) profiles in flight or queued while a
/// destination is slow; beyond it the gateway sheds load with 429 instead of growing.
pub const DEFAULT_QUEUE_MAX_BYTES: u64 = 256 << 20;
/// Time kept back from a caller's deadline so that pyrogate can still answer it (with a
/// retryable status) after its last downstream attempt gave up.
pub const DEFAULT_DEADLINE_RESERVE: Duration = Duration::from_millis(250);
/// Alloy keeps up to 1000 idle connections per host; a gateway needs far fewer per writer.
pub const DEFAULT_MAX_IDLE_CONNS: usize = 256;
/// Alloy's transport keeps idle connections 5 minutes; shorter is kinder to load balancers.
pub const DEFAULT_IDLE_CONN_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a profile that no caller waits for (ack `enqueue`, or the destinations beyond a
/// quorum) keeps being retried; Alloy's 10 attempts with default backoff take about as long.
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(300);
/// Concurrent requests (= connections) per destination, across writer threads.
pub const DEFAULT_MAX_INFLIGHT: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct ForwardConfig {
    pub ack: AckPolicy,
    pub writer_threads: usize,
    pub queue_max_bytes: u64,
    pub forward_tenant: bool,
    pub deadline_reserve: Duration,
    pub max_idle_conns_per_endpoint: usize,
    pub idle_conn_timeout: Duration,
    pub delivery_timeout: Duration,
    pub max_inflight_per_endpoint: usize,
    pub dispatch: Dispatch,
    /// `fanout` (every endpoint) or `ring` (each series to its owners).
    pub mode: ForwardMode,
    /// Whether every Push is decoded at the edge, or only when a configured feature reads it
    /// (docs/push.md §14.1).
    pub decode_push: DecodePush,
}

pub(super) fn resolve(f: &FileConfig, cli: &Cli) -> Result<ForwardConfig, ConfigError> {
    let s = &f.forward;
    let ack = cli.ack.or(s.ack).unwrap_or(AckPolicy::All);
    let dispatch = cli.dispatch.or(s.dispatch).unwrap_or(Dispatch::Worker);
    let writer_threads = cli.writer_threads.or(s.writer_threads).unwrap_or(1);
    if writer_threads == 0 || writer_threads > 256 {
        return Err(ConfigError::new(
            "forward.writer_threads",
            "must be between 1 and 256",
        ));
    }
    let queue_max_bytes = s.queue_max_bytes.map_or(DEFAULT_QUEUE_MAX_BYTES, |v| v.0);
    if queue_max_bytes == 0 {
        return Err(ConfigError::new(
            "forward.queue_max_bytes",
            "must be greater than 0",
        ));
    }
    Ok(ForwardConfig {
        ack,
        writer_threads,
        queue_max_bytes,
        forward_tenant: s.forward_tenant.unwrap_or(true),
        deadline_reserve: s.deadline_reserve.map_or(DEFAULT_DEADLINE_RESERVE, |d| d.0),
        max_idle_conns_per_endpoint: s
            .max_idle_conns_per_endpoint
            .unwrap_or(DEFAULT_MAX_IDLE_CONNS),
        idle_conn_timeout: s
            .idle_conn_timeout
            .map_or(DEFAULT_IDLE_CONN_TIMEOUT, |d| d.0),
        delivery_timeout: s.delivery_timeout.map_or(DEFAULT_DELIVERY_TIMEOUT, |d| d.0),
        max_inflight_per_endpoint: s
            .max_inflight_per_endpoint
            .unwrap_or(DEFAULT_MAX_INFLIGHT)
            .max(1),
        dispatch,
        mode: s.mode.unwrap_or(ForwardMode::Fanout),
        decode_push: cli
            .decode_push
            .or(s.decode_push)
            .unwrap_or(DecodePush::Auto),
    })
}
