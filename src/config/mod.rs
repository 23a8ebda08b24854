//! Configuration: the TOML file, CLI overrides, defaults and validation.
//!
//! Everything is resolved and validated here, at start-up (and on reload), so that a bad
//! setting fails with one line naming the key instead of at the first request. Key names and
//! defaults follow Alloy's `pyroscope.receive_http` / `pyroscope.write` so an Alloy user
//! recognises every knob. One file per section ([`server`], [`runtime`], [`forward`],
//! [`endpoint`]); [`file`] is the TOML as written, [`cli`] the flags, [`choices`] the named
//! values both accept, [`source`] reads the file, [`summary`] prints the result.

pub mod auth;
pub mod choices;
pub mod cli;
pub mod distributor;
pub mod endpoint;
pub mod file;
pub mod forward;
pub mod http2;
pub mod otlp;
pub mod ring;
pub mod runtime;
pub mod server;
mod source;
pub mod spool;
mod summary;
pub mod tls;
pub mod units;

use std::collections::BTreeMap;
use std::time::Duration;

pub use choices::{
    AckPolicy, Dispatch, DriverChoice, ForwardMode, LogFormat, OnConnLimit, RingStore,
};
pub use cli::Cli;
pub use distributor::{DistributorConfig, Limits, LimitsConfig};
pub use endpoint::{Auth, EndpointConfig, EndpointUrl, Scheme};
use file::FileConfig;
pub use forward::*;
pub use runtime::*;
pub use server::*;
use units::{parse_duration, parse_size};

/// One configuration error: the key it concerns and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config error: {key}: {msg}")]
pub struct ConfigError {
    pub key: String,
    pub msg: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, msg: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            msg: msg.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

/// The resolved, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    pub runtime: RuntimeConfig,
    pub forward: ForwardConfig,
    pub endpoints: Vec<EndpointConfig>,
    pub external_labels: BTreeMap<String, String>,
    pub log: LogConfig,
    pub distributor: DistributorConfig,
    pub limits: LimitsConfig,
    /// `[ring]`, required by `forward.mode = "ring"`.
    pub ring: Option<ring::RingConfig>,
    /// `[spool]`, required by `forward.ack = "durable"`.
    pub spool: Option<spool::SpoolConfig>,
    /// `[server.auth]`: authenticated agents.
    pub auth: Option<auth::AuthConfig>,
    /// `[otlp]`: OpenTelemetry profiles.
    pub otlp: otlp::OtlpConfig,
}

impl Config {
    /// Reads the file named by the CLI (if any), applies the flags and validates.
    pub fn load(cli: &Cli) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => source::read_file(path)?,
            None => FileConfig::default(),
        };
        Self::resolve(file, cli)
    }

    /// Parses TOML text (no CLI overrides); used by tests and reload.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let file = source::parse_toml(text)?;
        Self::resolve(file, &Cli::default())
    }

    fn resolve(f: FileConfig, cli: &Cli) -> Result<Self, ConfigError> {
        let server = server::resolve(&f, cli)?;
        let runtime = runtime::resolve(&f, cli, server.conn_limit)?;
        let forward = forward::resolve(&f, cli)?;
        let endpoints = resolve_endpoints(&f, cli)?;
        let external_labels = resolve_external_labels(&f, cli)?;
        let log = LogConfig {
            level: cli
                .log_level
                .clone()
                .or(f.log.level.clone())
                .unwrap_or_else(|| "info".into()),
            format: cli.log_format.or(f.log.format).unwrap_or(LogFormat::Text),
        };
        let (distributor, limits) = distributor::resolve(&f.distributor, &f.limits)?;
        let ring = f.ring.as_ref().map(ring::resolve).transpose()?;
        match (forward.mode, &ring) {
            (ForwardMode::Ring, None) => {
                return Err(ConfigError::new(
                    "forward.mode",
                    "\"ring\" needs a [ring] section",
                ));
            }
            (ForwardMode::Ring, Some(_)) if !endpoints.is_empty() => {
                return Err(ConfigError::new(
                    "endpoint",
                    "ring mode sends to the ring's members; remove [[endpoint]] and --forward-to",
                ));
            }
            _ => {}
        }
        let spool = spool::resolve(f.spool.as_ref(), cli.spool_dir.as_ref())?;
        let auth = auth::resolve(f.server.auth.as_ref())?;
        let otlp = otlp::resolve(&f.otlp)?;
        if let Some(a) = &auth
            && a.uses_client_certs()
            && !server
                .tls
                .as_ref()
                .is_some_and(|t| t.client_auth.verifies())
        {
            return Err(ConfigError::new(
                "server.auth.client_cert",
                "client certificates identify tenants only when verified: set [server.tls] client_auth_type = \"RequireAndVerifyClientCert\" (or \"VerifyClientCertIfGiven\") and client_ca_file",
            ));
        }
        if forward.ack == AckPolicy::Durable {
            if spool.is_none() {
                return Err(ConfigError::new(
                    "forward.ack",
                    "\"durable\" needs a [spool] section with dir (or --spool-dir)",
                ));
            }
            if forward.mode == ForwardMode::Ring {
                return Err(ConfigError::new(
                    "forward.ack",
                    "\"durable\" is not available in ring mode (docs/spool.md §7)",
                ));
            }
        }
        Ok(Self {
            server,
            runtime,
            forward,
            endpoints,
            external_labels,
            log,
            distributor,
            limits,
            ring,
            spool,
            auth,
            otlp,
        })
    }
}

pub(crate) fn dur_flag(flag: &Option<String>, name: &str) -> Result<Option<Duration>, ConfigError> {
    flag.as_deref()
        .map(|v| parse_duration(v).map_err(|e| ConfigError::new(name, e.to_string())))
        .transpose()
}

pub(crate) fn size_flag(flag: &Option<String>, name: &str) -> Result<Option<u64>, ConfigError> {
    flag.as_deref()
        .map(|v| parse_size(v).map_err(|e| ConfigError::new(name, e.to_string())))
        .transpose()
}

fn resolve_endpoints(f: &FileConfig, cli: &Cli) -> Result<Vec<EndpointConfig>, ConfigError> {
    if !cli.forward_to.is_empty() {
        return cli
            .forward_to
            .iter()
            .map(|u| EndpointConfig::from_url(u, "--forward-to"))
            .collect();
    }
    f.endpoint
        .iter()
        .enumerate()
        .map(|(i, s)| EndpointConfig::from_section(s, &format!("endpoint[{i}]")))
        .collect()
}

fn resolve_external_labels(
    f: &FileConfig,
    cli: &Cli,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut labels = f.external_labels.clone();
    for spec in &cli.external_label {
        let (k, v) = spec.split_once('=').ok_or_else(|| {
            ConfigError::new("--external-label", format!("{spec:?} is not KEY=VALUE"))
        })?;
        labels.insert(k.to_string(), v.to_string());
    }
    for k in labels.keys() {
        let ok = !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        if !ok {
            return Err(ConfigError::new(
                "external_labels",
                format!("{k:?} is not a valid label name ([A-Za-z0-9_.])"),
            ));
        }
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        use clap::Parser;
        let mut v = vec!["pyrogate"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).unwrap()
    }

    #[test]
    fn defaults_follow_alloy() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.server.listen.port(), 8080);
        assert!(c.server.listen_any);
        assert_eq!(c.server.conn_limit, 16384);
        assert_eq!(c.server.read_timeout, Duration::from_secs(30));
        assert_eq!(c.server.write_timeout, Duration::from_secs(30));
        assert_eq!(c.server.idle_timeout, Duration::from_secs(120));
        assert_eq!(c.server.graceful_shutdown_timeout, Duration::from_secs(30));
        assert_eq!(c.server.max_request_body, 256 << 20);
        assert_eq!(c.server.max_header_bytes, 64 << 10);
        assert_eq!(c.server.on_conn_limit, OnConnLimit::Wait);
        assert_eq!(c.forward.ack, AckPolicy::All);
        assert_eq!(c.runtime.core_quotas.iter().sum::<u64>(), 16384);
        assert!(c.endpoints.is_empty());
    }

    #[test]
    fn full_file_shape() {
        let c = Config::from_toml(
            r#"
            external_labels = { env = "prod" }
            [server]
            listen_address = "127.0.0.1"
            listen_port = 9999
            conn_limit = 16384
            on_conn_limit = "reject"
            server_read_timeout = "5s"
            server_write_timeout = "10s"
            server_idle_timeout = "1m"
            graceful_shutdown_timeout = "2s"
            max_request_body = "16MiB"
            max_header_bytes = "8KiB"
            [runtime]
            workers = 2
            core_quotas = [4096, 12288]
            driver = "legacy"
            pin_cores = false
            [forward]
            ack = "enqueue"
            writer_threads = 2
            queue_max_bytes = "64MiB"
            forward_tenant = false
            [[endpoint]]
            name = "a"
            url = "http://127.0.0.1:4040"
            remote_timeout = "3s"
            [[endpoint]]
            url = "http://127.0.0.1:4041/base/"
            tenant_id = "t1"
            headers = { "X-Test" = "1" }
            "#,
        )
        .unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(c.server.on_conn_limit, OnConnLimit::Reject);
        assert_eq!(c.server.max_header_bytes, 8192);
        assert_eq!(c.runtime.core_quotas, vec![4096, 12288]);
        assert_eq!(c.runtime.driver, DriverChoice::Legacy);
        assert_eq!(c.forward.ack, AckPolicy::Enqueue);
        assert_eq!(c.endpoints.len(), 2);
        assert_eq!(c.endpoints[0].remote_timeout, Duration::from_secs(3));
        assert_eq!(c.endpoints[1].url.join("/ingest"), "/base/ingest");
        assert_eq!(
            c.external_labels.get("env").map(String::as_str),
            Some("prod")
        );
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let e = Config::from_toml("[server]\nconn_limt = 5\n").unwrap_err();
        assert!(e.to_string().contains("conn_limt"), "{e}");
        let e = Config::from_toml("bogus = 1\n").unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        // The key is named with its table, even after other tables.
        let e =
            Config::from_toml("[runtime]\nworkers = 1\n[server]\n\nconn_limt = 5\n").unwrap_err();
        assert_eq!(e.key, "server.conn_limt (line 5)");
        let e = Config::from_toml("[[endpoint]]\nurl = \"http://a\"\nbogus = 1\n").unwrap_err();
        assert_eq!(e.key, "endpoint.bogus (line 3)");
    }

    #[test]
    fn bad_duration_names_the_key() {
        let e = Config::from_toml("[server]\nserver_read_timeout = \"30 parsecs\"\n").unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("server_read_timeout") && s.contains("invalid duration"),
            "{s}"
        );
    }

    #[test]
    fn quotas_must_sum_to_conn_limit() {
        let e = Config::from_toml(
            "[server]\nconn_limit = 100\n[runtime]\nworkers = 2\ncore_quotas = [10, 20]\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "runtime.core_quotas");
        assert!(e.msg.contains("sum to 30"), "{e}");
    }

    #[test]
    fn quota_for_missing_core() {
        let c = cli(&["--workers", "2", "--core-quota", "5=10"]);
        let e = Config::load(&c).unwrap_err();
        assert_eq!(e.key, "--core-quota");
        assert!(e.msg.contains("core 5 has no worker"), "{e}");
    }

    #[test]
    fn even_split_with_remainder_first() {
        assert_eq!(
            resolve_quotas(&[None, None, None], 10).unwrap(),
            vec![4, 3, 3]
        );
        assert_eq!(
            resolve_quotas(&[Some(2), None, None], 10).unwrap(),
            vec![2, 4, 4]
        );
        assert_eq!(resolve_quotas(&[None, None], 0).unwrap(), Vec::<u64>::new());
        assert!(resolve_quotas(&[Some(0), None], 10).is_err());
        assert!(resolve_quotas(&[None, None], 1).is_err());
    }

    #[test]
    fn cli_overrides_file() {
        let c = cli(&[
            "--listen",
            "127.0.0.1:1234",
            "--conn-limit",
            "10",
            "--workers",
            "2",
            "--core-quota",
            "1=7",
            "--on-conn-limit",
            "reject",
            "--server-read-timeout",
            "500ms",
            "--forward-to",
            "http://127.0.0.1:4040",
            "--driver",
            "io_uring",
        ]);
        let c = Config::load(&c).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:1234".parse().unwrap());
        assert_eq!(c.runtime.core_quotas, vec![3, 7]);
        assert_eq!(c.server.read_timeout, Duration::from_millis(500));
        assert_eq!(c.endpoints.len(), 1);
        assert_eq!(c.runtime.driver, DriverChoice::IoUring);
    }
}
