//! Command-line flags. Each flag overrides the matching key of the TOML file.

use std::path::PathBuf;

use clap::Parser;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use super::ConfigError;
use super::choices::{AckPolicy, DecodePush, Dispatch, DriverChoice, LogFormat, OnConnLimit};

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
    #[arg(long, value_enum, value_name = "wait|reject")]
    pub on_conn_limit: Option<OnConnLimit>,

    /// Worker threads (one accept shard each). `runtime.workers`.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Connection quota of one core, repeatable: `--core-quota 0=4096`. `runtime.core_quotas`.
    #[arg(long = "core-quota", value_name = "CORE=N")]
    pub core_quota: Vec<String>,

    /// I/O driver: `auto`, `io_uring` or `legacy` (epoll). `runtime.driver`.
    #[arg(long, value_enum, value_name = "auto|io_uring|legacy")]
    pub driver: Option<DriverChoice>,

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

    /// Ack policy: `all`, `quorum`, `enqueue` or `durable`. `forward.ack`.
    #[arg(long, value_enum, value_name = "POLICY")]
    pub ack: Option<AckPolicy>,

    /// Directory of the spool's write-ahead log (`ack = durable`). `spool.dir`.
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Where deliveries run: `worker` (on the receiving worker, default) or `writer` (on the
    /// outbound writer threads). `forward.dispatch`.
    #[arg(long, value_enum, value_name = "worker|writer")]
    pub dispatch: Option<Dispatch>,

    /// Decode every Push (`always`, Alloy's early errors) or only when a configured feature
    /// reads it (`auto`, default: otherwise forwarded verbatim). `forward.decode_push`.
    #[arg(long, value_enum, value_name = "auto|always")]
    pub decode_push: Option<DecodePush>,

    /// Outbound writer threads. `forward.writer_threads`.
    #[arg(long, value_name = "N")]
    pub writer_threads: Option<usize>,

    /// External label, repeatable: `--external-label env=prod`. Adds to `external_labels`.
    #[arg(long = "external-label", value_name = "KEY=VALUE")]
    pub external_label: Vec<String>,

    /// Log format: `text` or `json`. `log.format`.
    #[arg(long, value_enum, value_name = "text|json")]
    pub log_format: Option<LogFormat>,

    /// Log level or filter (`info`, `debug`, `pyrogate=debug`); `RUST_LOG` wins when set.
    /// `log.level`.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

/// The configuration key each flag sets, for error messages.
const FLAG_KEYS: [(&str, &str); 21] = [
    ("--listen", "server.listen_address/listen_port"),
    ("--conn-limit", "server.conn_limit"),
    ("--on-conn-limit", "server.on_conn_limit"),
    ("--workers", "runtime.workers"),
    ("--core-quota", "runtime.core_quotas"),
    ("--driver", "runtime.driver"),
    ("--pin-cores", "runtime.pin_cores"),
    ("--server-read-timeout", "server.server_read_timeout"),
    ("--server-write-timeout", "server.server_write_timeout"),
    ("--server-idle-timeout", "server.server_idle_timeout"),
    (
        "--graceful-shutdown-timeout",
        "server.graceful_shutdown_timeout",
    ),
    ("--max-request-body", "server.max_request_body"),
    ("--max-header-bytes", "server.max_header_bytes"),
    ("--max-connection-age", "server.max_connection_age"),
    ("--ack", "forward.ack"),
    ("--spool-dir", "spool.dir"),
    ("--dispatch", "forward.dispatch"),
    ("--writer-threads", "forward.writer_threads"),
    ("--decode-push", "forward.decode_push"),
    ("--log-format", "log.format"),
    ("--log-level", "log.level"),
];

impl Cli {
    /// Parses the process' arguments. `--help` and `--version` print and exit; any other
    /// problem is a [`ConfigError`] whose one line names the flag and the key it sets
    /// (clap's own report spans several lines).
    pub fn parse_args() -> Result<Cli, ConfigError> {
        Self::parse_from_args(std::env::args_os())
    }

    pub fn parse_from_args<I, T>(args: I) -> Result<Cli, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        match Cli::try_parse_from(args) {
            Ok(c) => Ok(c),
            Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
                e.exit()
            }
            Err(e) => Err(one_line(&e)),
        }
    }
}

/// A clap error as one line: `--flag (key): what is wrong`.
fn one_line(e: &clap::Error) -> ConfigError {
    let text = |k: ContextKind| match e.get(k) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => Some(v.join(", ")),
        _ => None,
    };
    let flag = text(ContextKind::InvalidArg)
        .map(|a| a.split_whitespace().next().unwrap_or_default().to_owned());
    let key = match &flag {
        Some(f) => match FLAG_KEYS.iter().find(|(name, _)| name == f) {
            Some((_, k)) => format!("{f} ({k})"),
            None => f.clone(),
        },
        None => "command line".to_owned(),
    };
    let msg = match (e.kind(), text(ContextKind::InvalidValue)) {
        (ErrorKind::InvalidValue, Some(v)) => match text(ContextKind::ValidValue) {
            Some(valid) => format!("invalid value {v:?} (possible values: {valid})"),
            None => format!("invalid value {v:?}"),
        },
        _ => {
            let rendered = e.to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            first.trim_start_matches("error: ").to_owned()
        }
    };
    ConfigError::new(key, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(args: &[&str]) -> String {
        let mut v = vec!["pyrogate"];
        v.extend_from_slice(args);
        match Cli::parse_from_args(v) {
            Ok(c) => panic!("{args:?} parsed: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn errors_are_one_line_naming_flag_and_key() {
        let e = err(&["--on-conn-limit", "drop"]);
        assert_eq!(
            e,
            "config error: --on-conn-limit (server.on_conn_limit): invalid value \"drop\" (possible values: wait, reject)"
        );
        let e = err(&["--driver", "kqueue"]);
        assert!(e.contains("runtime.driver") && e.contains("kqueue"), "{e}");
        let e = err(&["--bogus"]);
        assert!(e.contains("--bogus") && !e.contains('\n'), "{e}");
        let e = err(&["--workers", "many"]);
        assert!(e.contains("runtime.workers") && !e.contains('\n'), "{e}");
        for (flag, _) in FLAG_KEYS {
            assert!(
                Cli::try_parse_from(["pyrogate", flag, "x"]).is_ok()
                    || !err(&[flag, "x"]).contains("command line"),
                "{flag} is a flag of the CLI"
            );
        }
    }
}
