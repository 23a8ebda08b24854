//! Command-line flags. Each flag overrides the matching key of the TOML file.

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Default, Clone, Parser)]
#[command(
    name = "pyrogate",
    version,
    about = "Edge gateway for continuous-profiling traffic: accepts Pyroscope /ingest and Connect \
             Push, forwards every profile to one or more Pyroscope servers."
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(short = 'c', long, env = "PYROGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Validate the configuration (including that the listen address can be bound), print
    /// the resolved settings and exit.
    #[arg(long)]
    pub check_config: bool,

    /// Listen address, `ADDR:PORT` (`:8080` or `[::1]:8080` work too). Overrides
    /// `server.listen_address` and `server.listen_port`.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,

    /// Maximum simultaneously accepted connections (0 = unlimited). `server.conn_limit`.
    #[arg(long, value_name = "N")]
    pub conn_limit: Option<u64>,

    /// What a shard does at its quota: `wait` (stop accepting, as Alloy) or `reject` (accept
    /// and answer 503 with Retry-After). `server.on_conn_limit`.
    #[arg(long, value_name = "wait|reject")]
    pub on_conn_limit: Option<String>,

    /// Worker threads (one accept shard each). `runtime.workers`.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Connection quota of one core, repeatable: `--core-quota 0=4096`. `runtime.core_quotas`.
    #[arg(long = "core-quota", value_name = "CORE=N")]
    pub core_quota: Vec<String>,

    /// I/O driver: `auto`, `io_uring` or `legacy` (epoll). `runtime.driver`.
    #[arg(long, value_name = "auto|io_uring|legacy")]
    pub driver: Option<String>,

    /// Pin each worker to a core. `runtime.pin_cores`.
    #[arg(long, value_name = "BOOL")]
    pub pin_cores: Option<bool>,

    /// `server.server_read_timeout` (whole request: head and body).
    #[arg(long, value_name = "DURATION")]
    pub server_read_timeout: Option<String>,

    /// `server.server_write_timeout` (end of head to end of response).
    #[arg(long, value_name = "DURATION")]
    pub server_write_timeout: Option<String>,

    /// `server.server_idle_timeout` (keep-alive idle).
    #[arg(long, value_name = "DURATION")]
    pub server_idle_timeout: Option<String>,

    /// `server.graceful_shutdown_timeout`.
    #[arg(long, value_name = "DURATION")]
    pub graceful_shutdown_timeout: Option<String>,

    /// `server.max_request_body`.
    #[arg(long, value_name = "SIZE")]
    pub max_request_body: Option<String>,

    /// `server.max_header_bytes`.
    #[arg(long, value_name = "SIZE")]
    pub max_header_bytes: Option<String>,

    /// `server.max_connection_age` (0 = off).
    #[arg(long, value_name = "DURATION")]
    pub max_connection_age: Option<String>,

    /// Downstream Pyroscope URL, repeatable. Replaces the file's `[[endpoint]]` list.
    #[arg(long = "forward-to", value_name = "URL")]
    pub forward_to: Vec<String>,

    /// Ack policy: `all`, `quorum` or `enqueue`. `forward.ack`.
    #[arg(long, value_name = "POLICY")]
    pub ack: Option<String>,

    /// Where deliveries run: `worker` (on the receiving worker, default) or `writer` (on the
    /// outbound writer threads). `forward.dispatch`.
    #[arg(long, value_name = "worker|writer")]
    pub dispatch: Option<String>,

    /// Outbound writer threads. `forward.writer_threads`.
    #[arg(long, value_name = "N")]
    pub writer_threads: Option<usize>,

    /// External label, repeatable: `--external-label env=prod`. Adds to `external_labels`.
    #[arg(long = "external-label", value_name = "KEY=VALUE")]
    pub external_label: Vec<String>,

    /// Log format: `text` or `json`. `log.format`.
    #[arg(long, value_name = "text|json")]
    pub log_format: Option<String>,

    /// Log level or filter (`info`, `debug`, `pyrogate=debug`); `RUST_LOG` wins when set.
    /// `log.level`.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
}
