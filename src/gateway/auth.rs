//! Authenticated agents (`[server.auth]`, docs/security.md §2): `Authorization: Basic` and
//! `Bearer` credentials checked against slow hashes, each mapping to a tenant.
//!
//! The slow hash (bcrypt, argon2: tens of milliseconds by design) never runs on a worker:
//! a miss goes to one verifier thread through a bounded queue and the request waits for its
//! answer. A verified credential is remembered per worker by a salted SHA-256 of it for
//! `cache_ttl`, so a busy agent costs one hash computation per period; a refused one is
//! remembered too (for [`NEGATIVE_TTL`]), so repeating a wrong secret costs nothing. Stored
//! digests are compared in constant time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::auth::{AuthConfig, CertAttr, CertMatch, ClientTenant, SecretHash};
use crate::http::transport::PeerCert;
use crate::util::mailbox::{self, MailSender};

/// A refused credential is answered from the cache this long.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// Cached credentials per worker; the cache is emptied when full (a flood of distinct
/// wrong secrets then costs verifier time, bounded by the queue below).
const CACHE_ENTRIES: usize = 4096;
/// Verifications waiting for the verifier thread; beyond it requests are refused at once
/// (`429`) instead of queueing behind a flood.
const QUEUE: usize = 256;
/// Longest credential accepted (SDK tokens are a few hundred bytes at most).
const MAX_CREDENTIAL: usize = 4096;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization` header.
    Missing,
    /// Not `Basic` or `Bearer`, bad base64, no `:`, too long.
    Malformed,
    /// Unknown user, wrong password or token.
    Invalid,
    /// `client_tenant = "must_match"` and the client sent another `X-Scope-OrgID`.
    TenantMismatch,
    /// The verifier is saturated.
    Busy,
    /// A verified client certificate no `client_cert` rule maps, and no credentials.
    UnknownCertificate,
}

impl Denied {
    /// The metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Denied::Missing => "missing",
            Denied::Malformed => "malformed",
            Denied::Invalid => "invalid",
            Denied::TenantMismatch => "tenant_mismatch",
            Denied::Busy => "busy",
            Denied::UnknownCertificate => "unknown_certificate",
        }
    }

    /// The message the client gets (never says which part of a credential was wrong).
    pub fn message(self) -> &'static str {
        match self {
            Denied::Missing => "authentication required",
            Denied::Malformed => "malformed Authorization header",
            Denied::Invalid => "invalid credentials",
            Denied::TenantMismatch => "X-Scope-OrgID does not match the credentials' tenant",
            Denied::Busy => "too many authentication attempts, retry later",
            Denied::UnknownCertificate => "client certificate not mapped to a tenant",
        }
    }
}

/// A credential as presented.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Credential {
    Basic { user: String, password: Vec<u8> },
    Bearer(Vec<u8>),
}

fn parse_authorization(value: &[u8]) -> Result<Credential, Denied> {
    use base64::Engine;
    if value.len() > MAX_CREDENTIAL {
        return Err(Denied::Malformed);
    }
    let s = std::str::from_utf8(value)
        .map_err(|_| Denied::Malformed)?
        .trim();
    let (scheme, rest) = s.split_once(' ').ok_or(Denied::Malformed)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| Denied::Malformed)?;
        let i = raw
            .iter()
            .position(|b| *b == b':')
            .ok_or(Denied::Malformed)?;
        let user = std::str::from_utf8(&raw[..i]).map_err(|_| Denied::Malformed)?;
        Ok(Credential::Basic {
            user: user.to_owned(),
            password: raw[i + 1..].to_vec(),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        Ok(Credential::Bearer(rest.as_bytes().to_vec()))
    } else {
        Err(Denied::Malformed)
    }
}

/// The process's salt for credential digests (so a digest is no stable fingerprint).
fn salt() -> &'static [u8; 32] {
    static SALT: OnceLock<[u8; 32]> = OnceLock::new();
    SALT.get_or_init(|| {
        let mut s = [0u8; 32];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut s);
        s
    })
}

fn digest(value: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(salt());
    ctx.update(value);
    let d = ctx.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Whether `secret` matches `hash` (the slow part).
pub fn verify_secret(secret: &[u8], hash: &SecretHash) -> bool {
    match hash {
        SecretHash::Bcrypt(h) => bcrypt::verify(secret, h).unwrap_or(false),
        SecretHash::Argon2(h) => {
            use argon2::password_hash::{PasswordHash, PasswordVerifier};
            PasswordHash::new(h).ok().is_some_and(|p| {
                argon2::Argon2::default()
                    .verify_password(secret, &p)
                    .is_ok()
            })
        }
    }
}

/// A bcrypt hash (cost 10, bcrypt's default) of a random secret, verified for unknown users
/// so that their answer takes about as long as a wrong password's.
fn dummy_hash() -> &'static SecretHash {
    static DUMMY: OnceLock<SecretHash> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let secret = digest(b"pyrogate unknown user");
        match bcrypt::hash(secret, bcrypt::DEFAULT_COST) {
            Ok(h) => SecretHash::Bcrypt(h),
            Err(_) => SecretHash::Bcrypt(String::new()),
        }
    })
}

/// The verdict of the slow path: the tenant, or refused.
fn verify(cfg: &AuthConfig, cred: &Credential) -> Option<String> {
    match cred {
        Credential::Basic { user, password } => match cfg.users.iter().find(|u| &u.user == user) {
            Some(u) => verify_secret(password, &u.hash).then(|| u.tenant.clone()),
            None => {
                let _ = verify_secret(password, dummy_hash());
                None
            }
        },
        Credential::Bearer(token) => cfg
            .tokens
            .iter()
            .find(|t| verify_secret(token, &t.hash))
            .map(|t| t.tenant.clone()),
    }
}

type Job = (Arc<AuthConfig>, Credential, MailSender<Option<String>>);

/// The verifier thread's queue, started on first use.
fn verifier() -> &'static crossbeam_channel::Sender<Job> {
    static TX: OnceLock<crossbeam_channel::Sender<Job>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("pyrogate-auth".into())
            .spawn(move || {
                while let Ok((cfg, cred, reply)) = rx.recv() {
                    let _ = reply.send(verify(&cfg, &cred));
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the authentication thread; every credential will be refused");
        }
        tx
    })
}

/// Equality whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

struct Cached {
    digest: [u8; 32],
    tenant: Option<Bytes>,
    expires: Instant,
}

/// One worker's authenticator (rebuilt with the settings on reload, which empties the
/// cache).
pub struct Auth {
    cfg: Arc<AuthConfig>,
    /// Keyed by the first 8 bytes of the digest; the whole digest is compared in constant
    /// time.
    cache: RefCell<HashMap<u64, Cached>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("tokens", &self.cfg.tokens.len())
            .field("users", &self.cfg.users.len())
            .field("client_tenant", &self.cfg.client_tenant)
            .finish_non_exhaustive()
    }
}

impl Auth {
    pub fn new(cfg: &AuthConfig) -> Self {
        Self {
            cfg: Arc::new(cfg.clone()),
            cache: RefCell::new(HashMap::new()),
        }
    }

    fn cached(&self, d: &[u8; 32], now: Instant) -> Option<Option<Bytes>> {
        let mut key = [0u8; 8];
        key.copy_from_slice(&d[..8]);
        let cache = self.cache.borrow();
        let c = cache.get(&u64::from_le_bytes(key))?;
        let same = constant_time_eq(&c.digest, d);
        (same && c.expires > now).then(|| c.tenant.clone())
    }

    fn remember(&self, d: [u8; 32], tenant: Option<Bytes>, now: Instant) {
        let ttl = if tenant.is_some() {
            self.cfg.cache_ttl
        } else {
            NEGATIVE_TTL
        };
        let mut key = [0u8; 8];
        key.copy_from_slice(&d[..8]);
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(
            u64::from_le_bytes(key),
            Cached {
                digest: d,
                tenant,
                expires: now + ttl,
            },
        );
    }

    /// The tenant a verified client certificate maps to: the first matching
    /// `client_cert` rule, else `client_cert_tenant`'s subject attribute.
    pub fn cert_tenant(&self, peer: &PeerCert) -> Option<Bytes> {
        if !peer.verified {
            return None;
        }
        let id = peer.identity.as_ref()?;
        let rule = self.cfg.client_certs.iter().find(|r| match &r.matches {
            CertMatch::Subject(s) => *s == id.subject,
            CertMatch::San(s) => [&id.dns_names, &id.uris, &id.emails, &id.ips]
                .iter()
                .any(|list| list.iter().any(|v| v == s)),
        });
        if let Some(r) = rule {
            return Some(Bytes::from(r.tenant.clone()));
        }
        let attr = match self.cfg.client_cert_tenant? {
            CertAttr::CN => id.common_name.as_ref(),
            CertAttr::O => id.organization.first(),
            CertAttr::OU => id.organizational_unit.first(),
        };
        attr.filter(|t| !t.is_empty())
            .map(|t| Bytes::from(t.clone()))
    }

    /// Checks a request's credentials (a verified client certificate first, then the
    /// `Authorization` header): the tenant to stamp on the forwarded request.
    ///
    /// # Errors
    /// Why it is refused.
    pub async fn check(
        &self,
        authorization: Option<&[u8]>,
        client_tenant: Option<&[u8]>,
        peer: Option<&PeerCert>,
    ) -> Result<Bytes, Denied> {
        if let Some(tenant) = peer.and_then(|p| self.cert_tenant(p)) {
            return self.enforce(tenant, client_tenant);
        }
        let value = authorization.ok_or_else(|| {
            let presented = peer.is_some_and(|p| p.verified);
            if presented && self.cfg.uses_client_certs() {
                Denied::UnknownCertificate
            } else {
                Denied::Missing
            }
        })?;
        let d = digest(value);
        let now = Instant::now();
        let tenant = match self.cached(&d, now) {
            Some(t) => t,
            None => {
                let cred = parse_authorization(value)?;
                let (tx, rx) = mailbox::mailbox();
                verifier()
                    .try_send((self.cfg.clone(), cred, tx))
                    .map_err(|_| Denied::Busy)?;
                let t = rx.recv().await.flatten().map(Bytes::from);
                self.remember(d, t.clone(), now);
                t
            }
        };
        let tenant = tenant.ok_or(Denied::Invalid)?;
        self.enforce(tenant, client_tenant)
    }

    /// `client_tenant = "must_match"`: a client-sent tenant must be the credential's.
    fn enforce(&self, tenant: Bytes, client_tenant: Option<&[u8]>) -> Result<Bytes, Denied> {
        if self.cfg.client_tenant == ClientTenant::MustMatch
            && let Some(sent) = client_tenant.filter(|t| !t.is_empty())
            && sent != tenant.as_ref()
        {
            return Err(Denied::TenantMismatch);
        }
        Ok(tenant)
    }
}

/// `pyrogate_auth_failures_total{reason}` and `pyrogate_auth_failures_by_source_total{source}`.
pub struct AuthMetrics {
    pub failures: prometheus::IntCounterVec,
    pub by_source: prometheus::IntCounterVec,
    sources: std::sync::Mutex<std::collections::HashSet<std::net::IpAddr>>,
}

/// Distinct source addresses given their own series; later ones are counted as `other`, so
/// a scan from many addresses cannot grow the metrics without bound.
const MAX_SOURCES: usize = 1000;

impl AuthMetrics {
    /// Registers the authentication metrics.
    ///
    /// # Errors
    /// A metric of the same name is already registered.
    pub fn register(r: &prometheus::Registry) -> prometheus::Result<Arc<Self>> {
        let failures = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "pyrogate_auth_failures_total",
                "Requests refused by [server.auth], by reason.",
            ),
            &["reason"],
        )?;
        let by_source = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "pyrogate_auth_failures_by_source_total",
                "Requests refused by [server.auth], by source IP address (the first 1000 addresses; the rest as \"other\").",
            ),
            &["source"],
        )?;
        r.register(Box::new(failures.clone()))?;
        r.register(Box::new(by_source.clone()))?;
        Ok(Arc::new(Self {
            failures,
            by_source,
            sources: std::sync::Mutex::new(std::collections::HashSet::new()),
        }))
    }

    /// Counts one refusal.
    pub fn failed(&self, d: Denied, source: Option<std::net::IpAddr>) {
        self.failures.with_label_values(&[d.reason()]).inc();
        let Some(ip) = source else { return };
        let known = match self.sources.lock() {
            Ok(mut g) => g.contains(&ip) || (g.len() < MAX_SOURCES && g.insert(ip)),
            Err(_) => false,
        };
        let label = if known {
            ip.to_string()
        } else {
            "other".to_owned()
        };
        self.by_source.with_label_values(&[&label]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::auth::{TokenEntry, UserEntry};

    fn cfg() -> AuthConfig {
        AuthConfig {
            tokens: vec![TokenEntry {
                tenant: "acme".into(),
                hash: SecretHash::parse(&bcrypt::hash("tok-1", 4).expect("hash")).expect("bcrypt"),
            }],
            users: vec![UserEntry {
                user: "alice".into(),
                hash: SecretHash::Argon2(argon2_hash(b"pw")),
                tenant: "team-a".into(),
            }],
            client_tenant: ClientTenant::MustMatch,
            cache_ttl: Duration::from_secs(60),
            tokens_file: None,
            users_file: None,
            client_certs: Vec::new(),
            client_cert_tenant: None,
        }
    }

    fn argon2_hash(pw: &[u8]) -> String {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
        argon2::Argon2::default()
            .hash_password(pw, &salt)
            .expect("argon2")
            .to_string()
    }

    fn basic(u: &str, p: &str) -> Vec<u8> {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
        .into_bytes()
    }

    #[test]
    fn parses_both_schemes_and_refuses_the_rest() {
        assert_eq!(
            parse_authorization(b"Bearer abc"),
            Ok(Credential::Bearer(b"abc".to_vec()))
        );
        assert!(
            matches!(parse_authorization(&basic("u", "p:q")), Ok(Credential::Basic { user, password }) if user == "u" && password == b"p:q")
        );
        assert_eq!(parse_authorization(b"Digest x"), Err(Denied::Malformed));
        assert_eq!(parse_authorization(b"Basic !!!"), Err(Denied::Malformed));
        assert_eq!(parse_authorization(b"Bearer "), Err(Denied::Malformed));
        assert_eq!(
            parse_authorization(&vec![b'a'; 5000]),
            Err(Denied::Malformed)
        );
    }

    #[test]
    fn verifies_tokens_and_users_and_maps_tenants() {
        let c = cfg();
        assert_eq!(
            verify(&c, &Credential::Bearer(b"tok-1".to_vec())),
            Some("acme".into())
        );
        assert_eq!(verify(&c, &Credential::Bearer(b"tok-2".to_vec())), None);
        let alice = |p: &[u8]| Credential::Basic {
            user: "alice".into(),
            password: p.to_vec(),
        };
        assert_eq!(verify(&c, &alice(b"pw")), Some("team-a".into()));
        assert_eq!(verify(&c, &alice(b"px")), None);
        assert_eq!(
            verify(
                &c,
                &Credential::Basic {
                    user: "mallory".into(),
                    password: b"pw".to_vec()
                }
            ),
            None
        );
    }

    #[test]
    fn check_caches_and_enforces_the_tenant() {
        let auth = Auth::new(&cfg());
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
            .block_on(async {
                assert_eq!(auth.check(None, None, None).await, Err(Denied::Missing));
                assert_eq!(
                    auth.check(Some(b"Bearer tok-1"), None, None).await,
                    Ok(Bytes::from("acme"))
                );
                // Answered from the cache: no verifier round trip (it would still be right).
                assert_eq!(
                    auth.check(Some(b"Bearer tok-1"), Some(b"acme"), None).await,
                    Ok(Bytes::from("acme"))
                );
                assert_eq!(
                    auth.check(Some(b"Bearer tok-1"), Some(b"other"), None)
                        .await,
                    Err(Denied::TenantMismatch)
                );
                assert_eq!(
                    auth.check(Some(b"Bearer nope"), None, None).await,
                    Err(Denied::Invalid)
                );
                assert_eq!(
                    auth.check(Some(b"Bearer nope"), None, None).await,
                    Err(Denied::Invalid)
                );
                assert_eq!(
                    auth.check(Some(&basic("alice", "pw")), None, None).await,
                    Ok(Bytes::from("team-a"))
                );
            });
        assert!(auth.cache.borrow().len() >= 3);
    }
}

#[cfg(test)]
mod cert_tests {
    use super::*;
    use crate::config::auth::CertRule;
    use crate::util::x509::CertIdentity;

    fn auth(rules: Vec<CertRule>, attr: Option<CertAttr>, must_match: bool) -> Auth {
        Auth::new(&AuthConfig {
            tokens: Vec::new(),
            users: Vec::new(),
            client_tenant: if must_match {
                ClientTenant::MustMatch
            } else {
                ClientTenant::Replace
            },
            cache_ttl: Duration::from_secs(60),
            tokens_file: None,
            users_file: None,
            client_certs: rules,
            client_cert_tenant: attr,
        })
    }

    fn peer(subject: &str, org: &[&str], uris: &[&str], verified: bool) -> PeerCert {
        PeerCert {
            verified,
            identity: Some(CertIdentity {
                subject: subject.into(),
                organization: org.iter().map(|s| s.to_string()).collect(),
                uris: uris.iter().map(|s| s.to_string()).collect(),
                ..CertIdentity::default()
            }),
        }
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn verified_certificates_map_to_tenants() {
        let a = auth(
            vec![
                CertRule {
                    matches: CertMatch::Subject("CN=agent-1,O=Team A".into()),
                    tenant: "alpha".into(),
                },
                CertRule {
                    matches: CertMatch::San("spiffe://prod/agent".into()),
                    tenant: "beta".into(),
                },
            ],
            Some(CertAttr::O),
            true,
        );
        let t = |p: &PeerCert| {
            a.cert_tenant(p)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        };
        assert_eq!(
            t(&peer("CN=agent-1,O=Team A", &["Team A"], &[], true)).as_deref(),
            Some("alpha")
        );
        assert_eq!(
            t(&peer("CN=x", &[], &["spiffe://prod/agent"], true)).as_deref(),
            Some("beta")
        );
        assert_eq!(
            t(&peer("CN=y,O=gamma", &["gamma"], &[], true)).as_deref(),
            Some("gamma")
        );
        // Unverified certificates identify nobody; nothing to derive → no tenant.
        assert_eq!(
            t(&peer("CN=agent-1,O=Team A", &["Team A"], &[], false)),
            None
        );
        assert_eq!(t(&peer("CN=z", &[], &[], true)), None);
        run(async {
            let p = peer("CN=agent-1,O=Team A", &["Team A"], &[], true);
            assert_eq!(
                a.check(None, None, Some(&p)).await,
                Ok(Bytes::from("alpha"))
            );
            assert_eq!(
                a.check(None, Some(b"other"), Some(&p)).await,
                Err(Denied::TenantMismatch)
            );
            let unknown = peer("CN=z", &[], &[], true);
            assert_eq!(
                a.check(None, None, Some(&unknown)).await,
                Err(Denied::UnknownCertificate)
            );
            assert_eq!(a.check(None, None, None).await, Err(Denied::Missing));
        });
    }
}
