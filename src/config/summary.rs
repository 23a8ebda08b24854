//! The human summary `--check-config` prints.

use super::Config;
use super::units::{format_duration, format_size};

impl Config {
    /// A human summary of the resolved settings, printed by `--check-config`.
    pub fn summary(&self) -> String {
        let s = &self.server;
        let mut out = format!(
            "listen={} conn_limit={} on_conn_limit={:?} read_timeout={} write_timeout={} \
             idle_timeout={} graceful_shutdown_timeout={} max_request_body={} \
             max_header_bytes={}\nworkers={} core_quotas={:?} driver={:?} pin_cores={}\n\
             ack={:?} writer_threads={} queue_max_bytes={} forward_tenant={}\n",
            s.listen,
            s.conn_limit,
            s.on_conn_limit,
            format_duration(s.read_timeout),
            format_duration(s.write_timeout),
            format_duration(s.idle_timeout),
            format_duration(s.graceful_shutdown_timeout),
            format_size(s.max_request_body),
            format_size(s.max_header_bytes as u64),
            self.runtime.workers,
            self.runtime.core_quotas,
            self.runtime.driver,
            self.runtime.pin_cores,
            self.forward.ack,
            self.forward.writer_threads,
            format_size(self.forward.queue_max_bytes),
            self.forward.forward_tenant,
        );
        for e in &self.endpoints {
            out.push_str(&format!(
                "endpoint name={} url={} remote_timeout={} backoff={}..{} max_backoff_retries={}\n",
                e.name,
                e.url_string,
                format_duration(e.remote_timeout),
                format_duration(e.min_backoff),
                format_duration(e.max_backoff),
                e.max_attempts
            ));
        }
        out
    }
}
