//! `[server.auth]`: authenticated agents (docs/security.md §2). Credentials live in files
//! holding only slow hashes (bcrypt or argon2); each maps to a tenant.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::units::Dur;

/// A credential verified once is remembered (by its SHA-256) this long, so the slow hash runs
/// once per credential and period, not once per request; a removed credential stops working
/// within this time even without a reload.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
/// Entries of a credentials file; beyond it the file is refused (a bearer token is checked
/// against every entry on a cache miss).
pub const MAX_ENTRIES: usize = 10_000;

/// What a client-sent `X-Scope-OrgID` does when the request is authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientTenant {
    /// Ignored: the credential's tenant is stamped on the forwarded request.
    Replace,
    /// Must equal the credential's tenant (when sent); a different one is refused (401).
    MustMatch,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    pub tokens_file: Option<PathBuf>,
    pub users_file: Option<PathBuf>,
    pub client_tenant: Option<ClientTenant>,
    pub cache_ttl: Option<Dur>,
    pub client_cert: Option<Vec<ClientCertSection>>,
    pub client_cert_tenant: Option<CertAttr>,
}

/// `[[server.auth.client_cert]]`: a verified client certificate that names a tenant.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertSection {
    /// The subject, RFC 4514, most specific attribute first: what
    /// `openssl x509 -noout -subject -nameopt RFC2253` prints.
    pub subject: Option<String>,
    /// A subjectAltName: DNS name, URI (e.g. a SPIFFE ID), e-mail address or IP address.
    pub san: Option<String>,
    pub tenant: String,
}

/// The subject attribute `client_cert_tenant` takes the tenant from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum CertAttr {
    CN,
    O,
    OU,
}

/// How a certificate is recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertMatch {
    Subject(String),
    San(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRule {
    pub matches: CertMatch,
    pub tenant: String,
}

/// A slow hash as written in a credentials file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretHash {
    /// `$2a$`, `$2b$`, `$2y$` (htpasswd -B).
    Bcrypt(String),
    /// `$argon2id$…`, `$argon2i$…`, `$argon2d$…` (PHC string).
    Argon2(String),
}

impl SecretHash {
    /// Recognises a hash by its prefix.
    ///
    /// # Errors
    /// Anything else (plain-text secrets are refused).
    pub fn parse(s: &str) -> Result<Self, String> {
        if ["$2a$", "$2b$", "$2y$", "$2x$"]
            .iter()
            .any(|p| s.starts_with(p))
        {
            Ok(Self::Bcrypt(s.to_owned()))
        } else if s.starts_with("$argon2") {
            Ok(Self::Argon2(s.to_owned()))
        } else {
            Err("not a bcrypt ($2b$…) or argon2 ($argon2id$…) hash".into())
        }
    }
}

/// A bearer token entry: its tenant and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEntry {
    pub tenant: String,
    pub hash: SecretHash,
}

/// A basic-auth user entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub user: String,
    pub hash: SecretHash,
    pub tenant: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    pub tokens: Vec<TokenEntry>,
    pub users: Vec<UserEntry>,
    pub client_tenant: ClientTenant,
    pub cache_ttl: Duration,
    /// The files, for messages and reloads.
    pub tokens_file: Option<PathBuf>,
    pub users_file: Option<PathBuf>,
    /// Tenants of verified client certificates, checked in order.
    pub client_certs: Vec<CertRule>,
    /// For a verified certificate no rule names: the tenant is this subject attribute.
    pub client_cert_tenant: Option<CertAttr>,
}

impl AuthConfig {
    /// Whether client certificates can authenticate (then `[server.tls]` must verify them).
    pub fn uses_client_certs(&self) -> bool {
        !self.client_certs.is_empty() || self.client_cert_tenant.is_some()
    }
}

fn cert_rules(list: &[ClientCertSection]) -> Result<Vec<CertRule>, ConfigError> {
    let mut out = Vec::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        let key = format!("server.auth.client_cert[{i}]");
        let matches = match (&c.subject, &c.san) {
            (Some(s), None) if !s.is_empty() => CertMatch::Subject(s.clone()),
            (None, Some(s)) if !s.is_empty() => CertMatch::San(s.clone()),
            _ => {
                return Err(ConfigError::new(
                    key,
                    "needs exactly one of subject or san (non-empty)",
                ));
            }
        };
        if c.tenant.is_empty() {
            return Err(ConfigError::new(key, "tenant is empty"));
        }
        out.push(CertRule {
            matches,
            tenant: c.tenant.clone(),
        });
    }
    if out.len() > MAX_ENTRIES {
        return Err(ConfigError::new(
            "server.auth.client_cert",
            format!("more than {MAX_ENTRIES} entries"),
        ));
    }
    Ok(out)
}

fn read(path: &Path, key: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))
}

/// Meaningful lines: trimmed, without blanks and `#` comments, with their line numbers.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

/// `<tenant> <hash>` per line.
///
/// # Errors
/// A line that is not two fields, a hash that is neither bcrypt nor argon2, too many lines.
pub fn parse_tokens(text: &str, key: &str) -> Result<Vec<TokenEntry>, ConfigError> {
    let mut out = Vec::new();
    for (n, l) in lines(text) {
        let mut f = l.split_whitespace();
        let (Some(tenant), Some(hash), None) = (f.next(), f.next(), f.next()) else {
            return Err(ConfigError::new(
                key,
                format!("line {n}: expected \"<tenant> <hash>\""),
            ));
        };
        let hash =
            SecretHash::parse(hash).map_err(|e| ConfigError::new(key, format!("line {n}: {e}")))?;
        out.push(TokenEntry {
            tenant: tenant.to_owned(),
            hash,
        });
    }
    if out.len() > MAX_ENTRIES {
        return Err(ConfigError::new(
            key,
            format!("more than {MAX_ENTRIES} entries"),
        ));
    }
    Ok(out)
}

/// `<user>:<hash>[:<tenant>]` per line (htpasswd with an optional tenant; the tenant
/// defaults to the user name).
///
/// # Errors
/// A malformed line, a non-slow hash, a duplicate user, too many lines.
pub fn parse_users(text: &str, key: &str) -> Result<Vec<UserEntry>, ConfigError> {
    let mut out: Vec<UserEntry> = Vec::new();
    for (n, l) in lines(text) {
        let Some((user, rest)) = l.split_once(':') else {
            return Err(ConfigError::new(
                key,
                format!("line {n}: expected \"<user>:<hash>[:<tenant>]\""),
            ));
        };
        // A bcrypt or argon2 hash holds `$` but no `:`.
        let (hash, tenant) = match rest.split_once(':') {
            Some((h, t)) => (h, t),
            None => (rest, user),
        };
        if user.is_empty() || tenant.is_empty() {
            return Err(ConfigError::new(
                key,
                format!("line {n}: empty user or tenant"),
            ));
        }
        if out.iter().any(|u| u.user == user) {
            return Err(ConfigError::new(
                key,
                format!("line {n}: user {user:?} listed twice"),
            ));
        }
        let hash =
            SecretHash::parse(hash).map_err(|e| ConfigError::new(key, format!("line {n}: {e}")))?;
        out.push(UserEntry {
            user: user.to_owned(),
            hash,
            tenant: tenant.to_owned(),
        });
    }
    if out.len() > MAX_ENTRIES {
        return Err(ConfigError::new(
            key,
            format!("more than {MAX_ENTRIES} entries"),
        ));
    }
    Ok(out)
}

pub(super) fn resolve(s: Option<&AuthSection>) -> Result<Option<AuthConfig>, ConfigError> {
    let Some(s) = s else { return Ok(None) };
    let client_certs = cert_rules(s.client_cert.as_deref().unwrap_or_default())?;
    if s.tokens_file.is_none()
        && s.users_file.is_none()
        && client_certs.is_empty()
        && s.client_cert_tenant.is_none()
    {
        return Err(ConfigError::new(
            "server.auth",
            "needs tokens_file, users_file, client_cert or client_cert_tenant",
        ));
    }
    let tokens = match &s.tokens_file {
        Some(p) => parse_tokens(
            &read(p, "server.auth.tokens_file")?,
            "server.auth.tokens_file",
        )?,
        None => Vec::new(),
    };
    let users = match &s.users_file {
        Some(p) => parse_users(
            &read(p, "server.auth.users_file")?,
            "server.auth.users_file",
        )?,
        None => Vec::new(),
    };
    Ok(Some(AuthConfig {
        tokens,
        users,
        client_tenant: s.client_tenant.unwrap_or(ClientTenant::Replace),
        cache_ttl: s.cache_ttl.map_or(DEFAULT_CACHE_TTL, |d| d.0),
        tokens_file: s.tokens_file.clone(),
        users_file: s.users_file.clone(),
        client_certs,
        client_cert_tenant: s.client_cert_tenant,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_parse_and_refuse_plain_secrets() {
        let t = parse_tokens("# tenants\nacme $2b$04$abcdefghijklmnopqrstuvABCDEFGHIJKLMNOPQRSTUVWXYZ01234\n\nbeta $argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA\n", "k").expect("tokens");
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].tenant, "beta");
        assert!(parse_tokens("acme secret\n", "k").is_err());
        assert!(parse_tokens("acme\n", "k").is_err());
        let u = parse_users("alice:$2y$05$xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx:acme\nbob:$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA\n", "k").expect("users");
        assert_eq!(u[0].tenant, "acme");
        assert_eq!(u[1].tenant, "bob");
        assert!(parse_users("carol:plaintext\n", "k").is_err());
        let e = parse_users("a:$2b$04$x\na:$2b$04$y\n", "k").expect_err("duplicate");
        assert!(e.to_string().contains("twice"), "{e}");
    }
}
