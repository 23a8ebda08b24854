//! `[server]`: the listener, its limits and timeouts (names and defaults of Alloy's
//! `pyroscope.receive_http` `http` block).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::choices::OnConnLimit;
use super::file::FileConfig;
use super::{Cli, ConfigError, dur_flag, size_flag};

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
    /// `[server.tls]`: TLS on the listener (plain HTTP when absent).
    pub tls: Option<super::tls::ServerTls>,
    /// `[server.http2]`: cleartext HTTP/2 (`None` when disabled).
    pub http2: Option<super::http2::Http2Config>,
}

pub(super) fn resolve(f: &FileConfig, cli: &Cli) -> Result<ServerConfig, ConfigError> {
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
    let on_conn_limit = cli
        .on_conn_limit
        .or(s.on_conn_limit)
        .unwrap_or(OnConnLimit::Wait);
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
        tls: super::tls::resolve(s.tls.as_ref())?,
        http2: super::http2::resolve(s.http2.as_ref(), max_header_bytes)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        assert_eq!(split_listen(":8080"), Some((String::new(), 8080)));
        assert_eq!(split_listen("[::1]:80"), Some(("::1".into(), 80)));
        assert_eq!(split_listen("::1:80"), None);
        assert_eq!(split_listen("localhost"), None);
    }
}
