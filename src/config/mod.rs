//! Configuration: the TOML file, CLI overrides, defaults and validation.
//!
//! Everything is resolved and validated here, at start-up (and on reload), so that a bad
//! setting fails with one line naming the key instead of at the first request. Key names and
//! defaults follow Alloy's `pyroscope.receive_http` / `pyroscope.write` so an Alloy user
//! recognises every knob.

pub mod cli;
pub mod endpoint;
pub mod file;
pub mod units;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

pub use cli::Cli;
pub use endpoint::{Auth, EndpointConfig, EndpointUrl, Scheme};
use file::FileConfig;
use units::{format_duration, format_size, parse_duration, parse_size};

/// Alloy's `http.listen_port`.
pub const DEFAULT_LISTEN_PORT: u16 = 8080;
/// Alloy's `conn_limit` since v1.11 (it was 100 before, and users hit it: #3918).
pub const DEFAULT_CONN_LIMIT: u64 = 16384;
/// Alloy's server timeouts.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
pub const DEFAULT_GRACEFUL_SHUTDOWN: Duration = Duration::from_secs(30);
/// Pyroscope's `ingestion_body_limit_mb` default: the largest body a real server accepts, so a
/// larger one can never be delivered anyway.
pub const DEFAULT_MAX_REQUEST_BODY: u64 = 256 << 20;
/// Pyroscope also caps the inflated size of a Push at the body limit.
pub const DEFAULT_MAX_DECOMPRESSED_BODY: u64 = 256 << 20;
/// Go's default is 1 MiB, but no SDK sends more than a few hundred bytes of headers; 64 KiB
/// bounds the memory a slow or hostile client can pin per connection.
pub const DEFAULT_MAX_HEADER_BYTES: u64 = 64 << 10;
/// The kernel clamps this to `net.core.somaxconn`.
pub const DEFAULT_LISTEN_BACKLOG: u32 = 4096;
/// Default jitter applied to `max_connection_age` so that connections opened together do not
/// all close together.
pub const DEFAULT_CONNECTION_AGE_JITTER: f64 = 0.1;
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
/// io_uring submission queue entries per worker.
pub const DEFAULT_IO_URING_ENTRIES: u32 = 1024;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConnLimit {
    /// Stop accepting at the quota; new connections wait in the kernel backlog (Alloy).
    Wait,
    /// Accept and answer `503` with `Retry-After` and `Connection: close` at once.
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverChoice {
    Auto,
    IoUring,
    Legacy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckPolicy {
    All,
    Quorum,
    Enqueue,
}

/// Where deliveries run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatch {
    /// On the worker that received the request (no thread hand-off); writer threads take
    /// the overflow beyond a worker's in-flight share.
    Worker,
    /// Always on the outbound writer threads.
    Writer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// True when `listen_address` was empty: bind all interfaces (dual-stack where possible).
    pub listen_any: bool,
    /// 0 = unlimited.
    pub conn_limit: u64,
    pub on_conn_limit: OnConnLimit,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    pub graceful_shutdown_timeout: Duration,
    pub max_request_body: u64,
    pub max_decompressed_body: u64,
    pub max_header_bytes: usize,
    /// 0 = connections live until the client or the idle timeout closes them.
    pub max_connection_age: Duration,
    pub max_connection_age_jitter: f64,
    pub listen_backlog: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    pub workers: usize,
    /// Resolved per-worker quotas; empty when `conn_limit` is 0 (unlimited).
    pub core_quotas: Vec<u64>,
    pub driver: DriverChoice,
    pub pin_cores: bool,
    pub io_uring_entries: u32,
}

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
}

impl Config {
    /// Reads the file named by the CLI (if any), applies the flags and validates.
    pub fn load(cli: &Cli) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Self::resolve(file, cli)
    }

    /// Parses TOML text (no CLI overrides); used by tests and reload.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let file = parse_toml(text)?;
        Self::resolve(file, &Cli::default())
    }

    fn resolve(f: FileConfig, cli: &Cli) -> Result<Self, ConfigError> {
        let server = resolve_server(&f, cli)?;
        let runtime = resolve_runtime(&f, cli, server.conn_limit)?;
        let forward = resolve_forward(&f, cli)?;
        let endpoints = resolve_endpoints(&f, cli)?;
        let external_labels = resolve_external_labels(&f, cli)?;
        let log = LogConfig {
            level: cli
                .log_level
                .clone()
                .or(f.log.level.clone())
                .unwrap_or_else(|| "info".into()),
            format: match cli.log_format.as_deref().or(f.log.format.as_deref()) {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(o) => {
                    return Err(ConfigError::new(
                        "log.format",
                        format!("{o:?} is not one of text, json"),
                    ));
                }
            },
        };
        Ok(Self {
            server,
            runtime,
            forward,
            endpoints,
            external_labels,
            log,
        })
    }

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

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new("--config", format!("cannot read {}: {e}", path.display()))
    })?;
    parse_toml(&text)
}

fn parse_toml(text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| {
        // toml's message spans several lines with a source excerpt; the first line names the
        // problem and the key path, which is what an operator needs.
        let msg = e.message().to_string();
        let key = e
            .span()
            .map(|sp| locate_key(text, sp.start))
            .unwrap_or_else(|| "file".into());
        ConfigError::new(key, msg)
    })
}

/// Names the key at an error offset as its full dotted path (`server.conn_limt`, found from
/// the enclosing `[table]` header) plus the line, so the one-line message says which key.
fn locate_key(text: &str, offset: usize) -> String {
    let line = text[..offset.min(text.len())].matches('\n').count() + 1;
    let lines: Vec<&str> = text.lines().collect();
    let content = lines.get(line - 1).copied().unwrap_or("").trim();
    if content.starts_with('[') {
        let table = content.trim_matches(|c| c == '[' || c == ']').trim();
        return format!("{table} (line {line})");
    }
    let key = content.split('=').next().unwrap_or("").trim();
    if key.is_empty() {
        return format!("line {line}");
    }
    let table = lines[..(line - 1).min(lines.len())]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim());
    match table {
        Some(t) if !t.is_empty() => format!("{t}.{key} (line {line})"),
        _ => format!("{key} (line {line})"),
    }
}

fn dur_flag(flag: &Option<String>, name: &str) -> Result<Option<Duration>, ConfigError> {
    flag.as_deref()
        .map(|v| parse_duration(v).map_err(|e| ConfigError::new(name, e.to_string())))
        .transpose()
}

fn size_flag(flag: &Option<String>, name: &str) -> Result<Option<u64>, ConfigError> {
    flag.as_deref()
        .map(|v| parse_size(v).map_err(|e| ConfigError::new(name, e.to_string())))
        .transpose()
}

fn resolve_server(f: &FileConfig, cli: &Cli) -> Result<ServerConfig, ConfigError> {
    let s = &f.server;
    let (mut address, mut port) = (
        s.listen_address.clone().unwrap_or_default(),
        s.listen_port.unwrap_or(DEFAULT_LISTEN_PORT),
    );
    if let Some(l) = &cli.listen {
        let (a, p) = split_listen(l).ok_or_else(|| {
            ConfigError::new(
                "--listen",
                format!("{l:?} is not ADDR:PORT (e.g. 127.0.0.1:8080)"),
            )
        })?;
        address = a;
        port = p;
    }
    let listen_any = address.is_empty();
    let ip: IpAddr = if listen_any {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        address.parse().map_err(|_| {
            ConfigError::new(
                "server.listen_address",
                format!("{address:?} is not an IP address"),
            )
        })?
    };
    let read_timeout = dur_flag(&cli.server_read_timeout, "--server-read-timeout")?
        .or(s.server_read_timeout.map(|d| d.0))
        .unwrap_or(DEFAULT_READ_TIMEOUT);
    let write_timeout = dur_flag(&cli.server_write_timeout, "--server-write-timeout")?
        .or(s.server_write_timeout.map(|d| d.0))
        .unwrap_or(DEFAULT_WRITE_TIMEOUT);
    let idle_timeout = dur_flag(&cli.server_idle_timeout, "--server-idle-timeout")?
        .or(s.server_idle_timeout.map(|d| d.0))
        .unwrap_or(DEFAULT_IDLE_TIMEOUT);
    for (key, d) in [
        ("server.server_read_timeout", read_timeout),
        ("server.server_write_timeout", write_timeout),
        ("server.server_idle_timeout", idle_timeout),
    ] {
        if d.is_zero() {
            return Err(ConfigError::new(key, "must be greater than 0"));
        }
    }
    let max_header_bytes = size_flag(&cli.max_header_bytes, "--max-header-bytes")?
        .or(s.max_header_bytes.map(|v| v.0))
        .unwrap_or(DEFAULT_MAX_HEADER_BYTES);
    if !(1024..=(16 << 20)).contains(&max_header_bytes) {
        return Err(ConfigError::new(
            "server.max_header_bytes",
            "must be between 1KiB and 16MiB",
        ));
    }
    let max_request_body = size_flag(&cli.max_request_body, "--max-request-body")?
        .or(s.max_request_body.map(|v| v.0))
        .unwrap_or(DEFAULT_MAX_REQUEST_BODY);
    if max_request_body == 0 {
        return Err(ConfigError::new(
            "server.max_request_body",
            "must be greater than 0",
        ));
    }
    let jitter = s
        .max_connection_age_jitter
        .unwrap_or(DEFAULT_CONNECTION_AGE_JITTER);
    if !(0.0..=1.0).contains(&jitter) {
        return Err(ConfigError::new(
            "server.max_connection_age_jitter",
            "must be between 0 and 1",
        ));
    }
    let on_conn_limit = match cli
        .on_conn_limit
        .as_deref()
        .or(s.on_conn_limit.as_deref())
        .unwrap_or("wait")
    {
        "wait" => OnConnLimit::Wait,
        "reject" => OnConnLimit::Reject,
        o => {
            return Err(ConfigError::new(
                "server.on_conn_limit",
                format!("{o:?} is not one of wait, reject"),
            ));
        }
    };
    Ok(ServerConfig {
        listen: SocketAddr::new(ip, port),
        listen_any,
        conn_limit: cli
            .conn_limit
            .or(s.conn_limit)
            .unwrap_or(DEFAULT_CONN_LIMIT),
        on_conn_limit,
        read_timeout,
        write_timeout,
        idle_timeout,
        graceful_shutdown_timeout: dur_flag(
            &cli.graceful_shutdown_timeout,
            "--graceful-shutdown-timeout",
        )?
        .or(s.graceful_shutdown_timeout.map(|d| d.0))
        .unwrap_or(DEFAULT_GRACEFUL_SHUTDOWN),
        max_request_body,
        max_decompressed_body: s
            .max_decompressed_body
            .map_or(DEFAULT_MAX_DECOMPRESSED_BODY, |v| v.0),
        max_header_bytes: max_header_bytes as usize,
        max_connection_age: dur_flag(&cli.max_connection_age, "--max-connection-age")?
            .or(s.max_connection_age.map(|d| d.0))
            .unwrap_or(Duration::ZERO),
        max_connection_age_jitter: jitter,
        listen_backlog: s.listen_backlog.unwrap_or(DEFAULT_LISTEN_BACKLOG),
    })
}

/// `127.0.0.1:8080`, `:8080`, `[::1]:8080`, `::1:8080` is ambiguous and rejected.
fn split_listen(l: &str) -> Option<(String, u16)> {
    if let Some(rest) = l.strip_prefix('[') {
        let (a, p) = rest.split_once("]:")?;
        return Some((a.to_string(), p.parse().ok()?));
    }
    let (a, p) = l.rsplit_once(':')?;
    if a.contains(':') {
        return None;
    }
    Some((a.to_string(), p.parse().ok()?))
}

fn resolve_runtime(
    f: &FileConfig,
    cli: &Cli,
    conn_limit: u64,
) -> Result<RuntimeConfig, ConfigError> {
    let r = &f.runtime;
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = cli.workers.or(r.workers).unwrap_or(available);
    if workers == 0 || workers > 1024 {
        return Err(ConfigError::new(
            "runtime.workers",
            "must be between 1 and 1024",
        ));
    }
    let driver = match cli
        .driver
        .as_deref()
        .or(r.driver.as_deref())
        .unwrap_or("auto")
    {
        "auto" => DriverChoice::Auto,
        "io_uring" | "iouring" | "uring" => DriverChoice::IoUring,
        "legacy" | "epoll" => DriverChoice::Legacy,
        o => {
            return Err(ConfigError::new(
                "runtime.driver",
                format!("{o:?} is not one of auto, io_uring, legacy"),
            ));
        }
    };
    let mut given: Vec<Option<u64>> = vec![None; workers];
    if let Some(q) = &r.core_quotas {
        if q.len() > workers {
            return Err(ConfigError::new(
                "runtime.core_quotas",
                format!(
                    "{} quotas given but there are only {workers} workers",
                    q.len()
                ),
            ));
        }
        for (i, v) in q.iter().enumerate() {
            given[i] = Some(*v);
        }
    }
    for spec in &cli.core_quota {
        let (core, n) = spec
            .split_once('=')
            .and_then(|(c, n)| {
                Some((
                    c.trim().parse::<usize>().ok()?,
                    n.trim().parse::<u64>().ok()?,
                ))
            })
            .ok_or_else(|| ConfigError::new("--core-quota", format!("{spec:?} is not CORE=N")))?;
        if core >= workers {
            return Err(ConfigError::new(
                "--core-quota",
                format!(
                    "core {core} has no worker (workers = {workers}, cores 0..{})",
                    workers - 1
                ),
            ));
        }
        given[core] = Some(n);
    }
    let core_quotas = resolve_quotas(&given, conn_limit)?;
    Ok(RuntimeConfig {
        workers,
        core_quotas,
        driver,
        pin_cores: cli.pin_cores.or(r.pin_cores).unwrap_or(true),
        io_uring_entries: r
            .io_uring_entries
            .unwrap_or(DEFAULT_IO_URING_ENTRIES)
            .max(256),
    })
}

/// Quotas default to an even split of `conn_limit` (remainder to the first cores); cores with
/// an explicit quota keep it and the others share what is left. They always sum to
/// `conn_limit`, so the global limit stays exactly what the operator configured.
pub fn resolve_quotas(given: &[Option<u64>], conn_limit: u64) -> Result<Vec<u64>, ConfigError> {
    let key = "runtime.core_quotas";
    if conn_limit == 0 {
        if given.iter().any(Option::is_some) {
            return Err(ConfigError::new(
                key,
                "per-core quotas need a conn_limit (server.conn_limit = 0 means unlimited)",
            ));
        }
        return Ok(Vec::new());
    }
    let fixed: u64 = given.iter().flatten().sum();
    let free: Vec<usize> = (0..given.len()).filter(|i| given[*i].is_none()).collect();
    if let Some(i) = given.iter().position(|q| *q == Some(0)) {
        return Err(ConfigError::new(
            key,
            format!("the quota of core {i} is 0; every worker needs at least 1 connection"),
        ));
    }
    if free.is_empty() {
        if fixed != conn_limit {
            return Err(ConfigError::new(
                key,
                format!("quotas sum to {fixed} but server.conn_limit is {conn_limit}"),
            ));
        }
        return Ok(given.iter().map(|q| q.unwrap_or(0)).collect());
    }
    if fixed >= conn_limit {
        return Err(ConfigError::new(
            key,
            format!(
                "quotas sum to {fixed}, leaving nothing of server.conn_limit = {conn_limit} for \
                 the other {} cores",
                free.len()
            ),
        ));
    }
    let rest = conn_limit - fixed;
    let n = free.len() as u64;
    if rest < n {
        return Err(ConfigError::new(
            "server.conn_limit",
            format!("{conn_limit} is too small to give each of the {n} workers a connection"),
        ));
    }
    let mut out: Vec<u64> = given.iter().map(|q| q.unwrap_or(0)).collect();
    for (k, i) in free.iter().enumerate() {
        out[*i] = rest / n + u64::from((k as u64) < rest % n);
    }
    Ok(out)
}

fn resolve_forward(f: &FileConfig, cli: &Cli) -> Result<ForwardConfig, ConfigError> {
    let s = &f.forward;
    let ack = match cli.ack.as_deref().or(s.ack.as_deref()).unwrap_or("all") {
        "all" => AckPolicy::All,
        "quorum" => AckPolicy::Quorum,
        "enqueue" => AckPolicy::Enqueue,
        o => {
            return Err(ConfigError::new(
                "forward.ack",
                format!("{o:?} is not one of all, quorum, enqueue"),
            ));
        }
    };
    let dispatch = match cli
        .dispatch
        .as_deref()
        .or(s.dispatch.as_deref())
        .unwrap_or("worker")
    {
        "worker" => Dispatch::Worker,
        "writer" => Dispatch::Writer,
        o => {
            return Err(ConfigError::new(
                "forward.dispatch",
                format!("{o:?} is not one of worker, writer"),
            ));
        }
    };
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
    })
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

    #[test]
    fn listen_forms() {
        assert_eq!(split_listen(":8080"), Some((String::new(), 8080)));
        assert_eq!(split_listen("[::1]:80"), Some(("::1".into(), 80)));
        assert_eq!(split_listen("::1:80"), None);
        assert_eq!(split_listen("localhost"), None);
    }
}
