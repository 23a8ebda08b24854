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
             ack={:?} writer_threads={} queue_max_bytes={} forward_tenant={} decode_push={:?}\n",
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
            self.forward.decode_push,
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
        if let Some(a) = &self.auth {
            out.push_str(&format!(
                "auth tokens={} users={} client_tenant={:?} cache_ttl={}\n",
                a.tokens.len(),
                a.users.len(),
                a.client_tenant,
                format_duration(a.cache_ttl)
            ));
        }
        if let Some(sp) = &self.spool {
            out.push_str(&format!(
                "spool dir={} max_bytes={} segment_bytes={} fsync={:?} fsync_interval={} max_age={} io={:?}\n",
                sp.dir.display(),
                format_size(sp.max_bytes),
                format_size(sp.segment_bytes),
                sp.fsync,
                format_duration(sp.fsync_interval),
                format_duration(sp.max_age),
                sp.io
            ));
        }
        out.push_str(&format!("forward mode={:?}\n", self.forward.mode));
        if let Some(r) = &self.ring {
            let store = match &r.store {
                super::ring::RingStoreConfig::Static(m) => format!(
                    "static members={}",
                    m.iter()
                        .map(|x| format!("{}({} tokens)", x.id, x.tokens.len()))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                super::ring::RingStoreConfig::Etcd(e) => format!(
                    "etcd endpoints={} key={}",
                    e.endpoints
                        .iter()
                        .map(|u| u.authority.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    e.key
                ),
            };
            out.push_str(&format!(
                "ring replication_factor={} zone_awareness={} heartbeat_timeout={} push_path={} store={store}\n",
                r.replication_factor,
                r.zone_awareness,
                format_duration(r.heartbeat_timeout),
                r.push_path
            ));
        }
        let d = &self.distributor;
        out.push_str(&format!(
            "distributor validate={} normalize={} multitenancy_enabled={}\n",
            d.validate, d.normalize, d.multitenancy_enabled
        ));
        out.push_str(&format!("limits {}\n", limits_line(&self.limits.defaults)));
        for (tenant, l) in &self.limits.overrides {
            out.push_str(&format!("limits tenant={tenant:?} {}\n", limits_line(l)));
        }
        out
    }
}

fn limits_line(l: &super::Limits) -> String {
    format!(
        "ingestion_rate_mb={} ingestion_burst_size_mb={} ingestion_body_limit_mb={} \
         max_label_names_per_series={} max_label_name_length={} max_label_value_length={} \
         max_profile_size_bytes={} max_profile_stacktrace_samples={} \
         max_profile_stacktrace_sample_labels={} max_profile_stacktrace_depth={} \
         max_profile_symbol_value_length={} reject_older_than={} reject_newer_than={} \
         disable_label_sanitization={} max_sessions_per_series={}",
        l.ingestion_rate_mb,
        l.ingestion_burst_size_mb,
        l.ingestion_body_limit_mb,
        l.max_label_names_per_series,
        l.max_label_name_length,
        l.max_label_value_length,
        l.max_profile_size_bytes,
        l.max_profile_stacktrace_samples,
        l.max_profile_stacktrace_sample_labels,
        l.max_profile_stacktrace_depth,
        l.max_profile_symbol_value_length,
        format_duration(l.reject_older_than),
        format_duration(l.reject_newer_than),
        l.disable_label_sanitization,
        l.max_sessions_per_series,
    )
}
