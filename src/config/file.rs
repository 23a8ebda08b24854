//! The TOML file as written by operators. Every table denies unknown keys so that a misspelt
//! `conn_limt` fails loudly instead of silently becoming the default.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::choices::{
    AckPolicy, Dispatch, DriverChoice, ForwardMode, LogFormat, OnConnLimit, RingStore,
};
pub use super::distributor::{DistributorSection, LimitsSection};
use super::units::{Dur, Size};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub runtime: RuntimeSection,
    #[serde(default)]
    pub forward: ForwardSection,
    #[serde(default)]
    pub endpoint: Vec<EndpointSection>,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub distributor: DistributorSection,
    #[serde(default)]
    pub limits: LimitsSection,
    pub ring: Option<RingSection>,
    pub spool: Option<super::spool::SpoolSection>,
    #[serde(default)]
    pub otlp: super::otlp::OtlpSection,
}

/// `[ring]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingSection {
    pub replication_factor: Option<usize>,
    pub zone_awareness: Option<bool>,
    pub heartbeat_timeout: Option<Dur>,
    pub push_path: Option<String>,
    pub store: Option<RingStore>,
    #[serde(default)]
    pub member: Vec<RingMemberSection>,
    pub etcd: Option<EtcdSection>,
    /// `[[endpoint]]` keys (no `url`) applied to every member.
    pub endpoint_defaults: Option<EndpointSection>,
}

/// `[[ring.member]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingMemberSection {
    pub id: String,
    pub url: String,
    #[serde(default)]
    pub zone: String,
    pub tokens: Option<Vec<u32>>,
    pub tokens_count: Option<usize>,
}

/// `[ring.etcd]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSection {
    #[serde(default)]
    pub endpoints: Vec<String>,
    pub key: Option<String>,
    pub dial_timeout: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub listen_address: Option<String>,
    pub listen_port: Option<u16>,
    pub conn_limit: Option<u64>,
    pub on_conn_limit: Option<OnConnLimit>,
    pub server_read_timeout: Option<Dur>,
    pub server_write_timeout: Option<Dur>,
    pub server_idle_timeout: Option<Dur>,
    pub graceful_shutdown_timeout: Option<Dur>,
    pub max_request_body: Option<Size>,
    pub max_decompressed_body: Option<Size>,
    pub max_header_bytes: Option<Size>,
    pub max_connection_age: Option<Dur>,
    pub max_connection_age_jitter: Option<f64>,
    pub listen_backlog: Option<u32>,
    pub auth: Option<super::auth::AuthSection>,
    pub tls: Option<super::tls::TlsSection>,
    pub http2: Option<super::http2::Http2Section>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSection {
    pub workers: Option<usize>,
    pub core_quotas: Option<Vec<u64>>,
    pub driver: Option<DriverChoice>,
    pub pin_cores: Option<bool>,
    pub io_uring_entries: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardSection {
    pub ack: Option<AckPolicy>,
    pub writer_threads: Option<usize>,
    pub queue_max_bytes: Option<Size>,
    pub forward_tenant: Option<bool>,
    pub deadline_reserve: Option<Dur>,
    pub max_idle_conns_per_endpoint: Option<usize>,
    pub idle_conn_timeout: Option<Dur>,
    pub delivery_timeout: Option<Dur>,
    pub max_inflight_per_endpoint: Option<usize>,
    pub dispatch: Option<Dispatch>,
    pub mode: Option<ForwardMode>,
    pub decode_push: Option<super::choices::DecodePush>,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthSection {
    pub username: String,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSection {
    pub url: Option<String>,
    pub name: Option<String>,
    pub remote_timeout: Option<Dur>,
    pub min_backoff_period: Option<Dur>,
    pub max_backoff_period: Option<Dur>,
    pub max_backoff_retries: Option<u32>,
    pub retry_on_http_429: Option<bool>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub basic_auth: Option<BasicAuthSection>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    pub tenant_id: Option<String>,
    pub tls_config: Option<TlsSection>,
    /// Speak HTTP/2 to this endpoint (h2c on `http://`, ALPN `h2` on `https://`).
    pub http2: Option<bool>,
}

/// Alloy's `tls_config` block names.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    pub level: Option<String>,
    pub format: Option<LogFormat>,
}
