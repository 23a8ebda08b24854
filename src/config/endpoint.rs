//! Downstream endpoints: URL, retry bounds, auth and static headers, with Alloy's defaults
//! (`pyroscope.write` `endpoint` block).

use std::time::Duration;

use super::ConfigError;
use super::file::EndpointSection;

/// Alloy's `remote_timeout`: the budget of one attempt.
pub const DEFAULT_REMOTE_TIMEOUT: Duration = Duration::from_secs(10);
/// Alloy's `min_backoff_period`.
pub const DEFAULT_MIN_BACKOFF: Duration = Duration::from_millis(500);
/// Alloy's `max_backoff_period`.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Alloy's `max_backoff_retries`: the total number of attempts (0 = until the deadline).
pub const DEFAULT_MAX_BACKOFF_RETRIES: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// A parsed `http://host:port/base` URL. The base path is joined with `/ingest` or the Push
/// path the way Go's `path.Join` does, so `http://h/pyro/` forwards to `/pyro/ingest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl {
    pub scheme: Scheme,
    /// Host as written (brackets stripped for IPv6), used for DNS and the `Host` header.
    pub host: String,
    pub port: u16,
    /// Value of the `Host` header (`host[:port]` as written in the URL).
    pub authority: String,
    /// Cleaned base path without a trailing slash (`""` for the root).
    pub base_path: String,
}

impl EndpointUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = if let Some(r) = url.strip_prefix("http://") {
            (Scheme::Http, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (Scheme::Https, r)
        } else {
            return Err(format!(
                "{url:?}: only http:// and https:// URLs are supported"
            ));
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        // The endpoint URL's own query and fragment are discarded, as Alloy does.
        let path = path.split(['?', '#']).next().unwrap_or("");
        if authority.is_empty() {
            return Err(format!("{url:?}: missing host"));
        }
        if authority.contains('@') {
            return Err(format!(
                "{url:?}: credentials in the URL are not supported; use basic_auth"
            ));
        }
        let default_port = match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        let (host, port) = split_host_port(authority, default_port)
            .ok_or_else(|| format!("{url:?}: invalid host or port"))?;
        Ok(Self {
            scheme,
            host,
            port,
            authority: authority.to_string(),
            base_path: clean_path(path),
        })
    }

    /// `path.Join(base, suffix)` for a suffix that starts with `/`.
    pub fn join(&self, suffix: &str) -> String {
        format!("{}{}", self.base_path, suffix)
    }
}

fn split_host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &rest[..end];
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.contains(':') => Some((h.to_string(), p.parse().ok()?)),
        Some(_) => None,
        None => Some((authority.to_string(), default_port)),
    }
}

/// Go `path.Clean` restricted to what URL paths need: collapse `//`, resolve `.` and `..`,
/// drop the trailing slash. Returns `""` for the root so that joining gives `/ingest`.
fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = String::new();
    for s in parts {
        out.push('/');
        out.push_str(s);
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Basic { username: String, password: String },
    Bearer(String),
}

impl Auth {
    /// The `Authorization` header value.
    pub fn header_value(&self) -> String {
        use base64::Engine;
        match self {
            Auth::Basic { username, password } => {
                let raw = format!("{username}:{password}");
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            }
            Auth::Bearer(t) => format!("Bearer {t}"),
        }
    }
}

/// TLS settings of an `https://` endpoint (Alloy's `tls_config` names). Files are read
/// when the endpoint is built, so a bad path is a start-up (or reload) error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// Extra trusted CA certificates (PEM), added to the built-in web PKI roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub cert_file: Option<std::path::PathBuf>,
    pub key_file: Option<std::path::PathBuf>,
    /// Name to verify and send as SNI instead of the URL's host.
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Identifies the endpoint in logs; metrics use the URL, as Alloy's do.
    pub name: String,
    pub url_string: String,
    pub url: EndpointUrl,
    pub remote_timeout: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub max_attempts: u32,
    pub retry_on_http_429: bool,
    /// Static headers, set on every request (after ours, so they may override
    /// `User-Agent`, but never framing headers).
    pub headers: Vec<(String, String)>,
    pub auth: Option<Auth>,
    pub tenant_id: Option<String>,
    pub tls: TlsSettings,
    /// HTTP/2 to this endpoint: one connection per worker carries concurrent requests.
    pub http2: bool,
}

impl EndpointConfig {
    /// An endpoint with every default, as created by `--forward-to URL`.
    pub fn from_url(url: &str, key: &str) -> Result<Self, ConfigError> {
        Self::from_section(
            &EndpointSection {
                url: Some(url.to_string()),
                ..Default::default()
            },
            key,
        )
    }

    pub fn from_section(s: &EndpointSection, key: &str) -> Result<Self, ConfigError> {
        let err = |field: &str, msg: String| ConfigError::new(format!("{key}.{field}"), msg);
        let url_string = s
            .url
            .clone()
            .ok_or_else(|| err("url", "is required".into()))?;
        let url = EndpointUrl::parse(&url_string).map_err(|m| err("url", m))?;
        let min_backoff = s.min_backoff_period.map_or(DEFAULT_MIN_BACKOFF, |d| d.0);
        let max_backoff = s.max_backoff_period.map_or(DEFAULT_MAX_BACKOFF, |d| d.0);
        if min_backoff > max_backoff {
            return Err(err(
                "min_backoff_period",
                "must not be larger than max_backoff_period".into(),
            ));
        }
        if max_backoff.is_zero() {
            return Err(err("max_backoff_period", "must be greater than 0".into()));
        }
        let remote_timeout = s.remote_timeout.map_or(DEFAULT_REMOTE_TIMEOUT, |d| d.0);
        if remote_timeout.is_zero() {
            return Err(err(
                "remote_timeout",
                "must be greater than 0 (every attempt would fail at once)".into(),
            ));
        }
        let auth = resolve_auth(s).map_err(|m| ConfigError::new(key.to_string(), m))?;
        let mut headers = Vec::with_capacity(s.headers.len());
        for (k, v) in &s.headers {
            validate_header(k, v).map_err(|m| err("headers", m))?;
            headers.push((k.clone(), v.clone()));
        }
        if let Some(t) = &s.tenant_id {
            validate_header("X-Scope-OrgID", t).map_err(|m| err("tenant_id", m))?;
        }
        Ok(Self {
            name: s.name.clone().unwrap_or_else(|| url_string.clone()),
            url_string,
            url,
            remote_timeout,
            min_backoff,
            max_backoff,
            max_attempts: s.max_backoff_retries.unwrap_or(DEFAULT_MAX_BACKOFF_RETRIES),
            retry_on_http_429: s.retry_on_http_429.unwrap_or(true),
            headers,
            auth,
            tenant_id: s.tenant_id.clone().filter(|t| !t.is_empty()),
            tls: resolve_tls(s).map_err(|m| err("tls_config", m))?,
            http2: s.http2.unwrap_or(false),
        })
    }
}

fn resolve_tls(s: &EndpointSection) -> Result<TlsSettings, String> {
    let Some(t) = &s.tls_config else {
        return Ok(TlsSettings::default());
    };
    if t.cert_file.is_some() != t.key_file.is_some() {
        return Err("cert_file and key_file go together".into());
    }
    for f in [&t.ca_file, &t.cert_file, &t.key_file]
        .into_iter()
        .flatten()
    {
        if !f.is_file() {
            return Err(format!("{} is not a readable file", f.display()));
        }
    }
    Ok(TlsSettings {
        ca_file: t.ca_file.clone(),
        cert_file: t.cert_file.clone(),
        key_file: t.key_file.clone(),
        server_name: t.server_name.clone(),
        insecure_skip_verify: t.insecure_skip_verify,
    })
}

fn resolve_auth(s: &EndpointSection) -> Result<Option<Auth>, String> {
    let kinds = [
        s.basic_auth.is_some(),
        s.bearer_token.is_some(),
        s.bearer_token_file.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() > 1 {
        return Err(
            "at most one of basic_auth, bearer_token & bearer_token_file must be configured".into(),
        );
    }
    if let Some(b) = &s.basic_auth {
        let password = match (&b.password, &b.password_file) {
            (Some(_), Some(_)) => {
                return Err("basic_auth: at most one of password & password_file".into());
            }
            (Some(p), None) => p.clone(),
            (None, Some(f)) => read_secret(f)?,
            (None, None) => String::new(),
        };
        return Ok(Some(Auth::Basic {
            username: b.username.clone(),
            password,
        }));
    }
    if let Some(t) = &s.bearer_token {
        return Ok(Some(Auth::Bearer(t.clone())));
    }
    if let Some(f) = &s.bearer_token_file {
        return Ok(Some(Auth::Bearer(read_secret(f)?)));
    }
    Ok(None)
}

/// Secrets files usually end with a newline that is not part of the secret.
fn read_secret(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Rejects header names and values that would break framing (CR/LF) or override framing
/// headers that pyrogate computes itself.
fn validate_header(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return Err(format!("{name:?} is not a valid header name"));
    }
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(format!("value of {name:?} contains a line break"));
    }
    let lower = name.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "content-length" | "transfer-encoding" | "connection" | "host" | "content-encoding"
    ) {
        return Err(format!(
            "{name:?} is computed by pyrogate and cannot be set"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_join_like_go_path_join() {
        let u = EndpointUrl::parse("http://h:4040").unwrap();
        assert_eq!(u.join("/ingest"), "/ingest");
        assert_eq!(u.port, 4040);
        let u = EndpointUrl::parse("http://h:4040/").unwrap();
        assert_eq!(u.join("/ingest"), "/ingest");
        let u = EndpointUrl::parse("http://h/pyro/").unwrap();
        assert_eq!(u.join("/ingest"), "/pyro/ingest");
        assert_eq!(u.port, 80);
        let u = EndpointUrl::parse("https://h//a/./b/../c?x=1").unwrap();
        assert_eq!(
            u.join("/push.v1.PusherService/Push"),
            "/a/c/push.v1.PusherService/Push"
        );
        assert_eq!(u.scheme, Scheme::Https);
        assert_eq!(u.port, 443);
        let u = EndpointUrl::parse("http://[::1]:9/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        assert_eq!(u.authority, "[::1]:9");
    }

    #[test]
    fn bad_urls() {
        for bad in [
            "ftp://x",
            "http://",
            "http://h:notaport",
            "http://u:p@h/",
            "h:80",
        ] {
            assert!(EndpointUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn auth_kinds_are_exclusive() {
        let s = EndpointSection {
            url: Some("http://h".into()),
            bearer_token: Some("a".into()),
            bearer_token_file: Some("/nonexistent".into()),
            ..Default::default()
        };
        let e = EndpointConfig::from_section(&s, "endpoint[0]").unwrap_err();
        assert!(e.to_string().contains("at most one of basic_auth"), "{e}");
    }

    #[test]
    fn basic_auth_header() {
        let a = Auth::Basic {
            username: "u".into(),
            password: "p".into(),
        };
        assert_eq!(a.header_value(), "Basic dTpw");
    }

    #[test]
    fn defaults_are_alloys() {
        let e = EndpointConfig::from_url("http://127.0.0.1:4040", "forward_to").unwrap();
        assert_eq!(e.remote_timeout, Duration::from_secs(10));
        assert_eq!(e.min_backoff, Duration::from_millis(500));
        assert_eq!(e.max_backoff, Duration::from_secs(300));
        assert_eq!(e.max_attempts, 10);
        assert!(e.retry_on_http_429);
        assert_eq!(e.name, "http://127.0.0.1:4040");
    }
}
