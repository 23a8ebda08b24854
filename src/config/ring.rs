//! `[ring]`: ring mode's placement (replication, zones, heartbeats), its members (a static
//! list or dskit's ring in etcd) and the endpoint options every member gets
//! (docs/ring.md §1).

use std::time::Duration;

use super::ConfigError;
use super::choices::RingStore;
use super::endpoint::{EndpointConfig, EndpointUrl};
use super::file::{EndpointSection, RingSection};

/// Pyroscope's effective default (it overrides dskit's 3 with 1).
pub const DEFAULT_REPLICATION_FACTOR: usize = 1;
/// dskit's default heartbeat timeout.
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(60);
/// The Push path of Pyroscope's distributor; ingesters serve `/ingester.v1.IngesterService/Push`.
pub const DEFAULT_PUSH_PATH: &str = "/push.v1.PusherService/Push";
/// The paths a member may be sent Pushes on.
pub const PUSH_PATHS: [&str; 2] = [DEFAULT_PUSH_PATH, "/ingester.v1.IngesterService/Push"];
/// Tokens a static member without explicit tokens gets (dskit's ingester default is 128).
pub const DEFAULT_TOKENS_COUNT: usize = 128;
/// dskit's ring key under its default `collectors/` prefix.
pub const DEFAULT_ETCD_KEY: &str = "collectors/ring";
/// Attempts per replica unless `endpoint_defaults` says otherwise: Pyroscope's distributor
/// sends each replica one push (replication, not retries, covers a failed member), and a
/// quorum decision must not wait for a dead member's backoff.
pub const DEFAULT_MEMBER_ATTEMPTS: u32 = 1;
/// Pyroscope's per-ingester push timeout (`-distributor.push.timeout`).
pub const DEFAULT_MEMBER_TIMEOUT: Duration = Duration::from_secs(5);
/// dskit's etcd dial timeout.
pub const DEFAULT_ETCD_DIAL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
pub struct RingConfig {
    pub replication_factor: usize,
    pub zone_awareness: bool,
    pub heartbeat_timeout: Duration,
    pub push_path: String,
    pub store: RingStoreConfig,
    /// Every member's endpoint options (its URL and name are the member's).
    pub endpoint_defaults: EndpointSection,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RingStoreConfig {
    Static(Vec<StaticMember>),
    Etcd(EtcdConfig),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticMember {
    pub id: String,
    pub url: String,
    pub zone: String,
    /// Explicit, or derived from the ID.
    pub tokens: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Base URLs of etcd's v3 JSON gateway (`http://host:2379`).
    pub endpoints: Vec<EndpointUrl>,
    pub key: String,
    pub dial_timeout: Duration,
}

impl RingConfig {
    /// The endpoint configuration of the member at `url` called `id`.
    ///
    /// # Errors
    /// A URL that does not parse (etcd's `addr` is written by others).
    pub fn member_endpoint(&self, id: &str, url: &str) -> Result<EndpointConfig, ConfigError> {
        let mut s = self.endpoint_defaults.clone();
        s.url = Some(url.to_string());
        s.name = Some(id.to_string());
        s.max_backoff_retries = s.max_backoff_retries.or(Some(DEFAULT_MEMBER_ATTEMPTS));
        s.remote_timeout = s
            .remote_timeout
            .or(Some(super::units::Dur(DEFAULT_MEMBER_TIMEOUT)));
        EndpointConfig::from_section(&s, &format!("ring member {id}"))
    }
}

/// `count` tokens for a member with no tokens of its own, derived from its ID alone, so that
/// every gateway with the same static configuration builds the same ring: a SplitMix64 stream
/// seeded by the FNV-1a 64 hash of the ID, duplicates skipped, sorted.
pub fn derive_tokens(id: &str, count: usize) -> Vec<u32> {
    let mut seed = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut out: Vec<u32> = Vec::with_capacity(count);
    let mut seen = std::collections::HashSet::with_capacity(count);
    while out.len() < count {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let t = (z >> 32) as u32;
        if seen.insert(t) {
            out.push(t);
        }
    }
    out.sort_unstable();
    out
}

pub(super) fn resolve(s: &RingSection) -> Result<RingConfig, ConfigError> {
    let derive = derive_tokens;
    let err = |k: &str, m: &str| ConfigError::new(format!("ring.{k}"), m);
    let replication_factor = s.replication_factor.unwrap_or(DEFAULT_REPLICATION_FACTOR);
    if replication_factor == 0 {
        return Err(err("replication_factor", "must be at least 1"));
    }
    let push_path = s
        .push_path
        .clone()
        .unwrap_or_else(|| DEFAULT_PUSH_PATH.to_string());
    if !PUSH_PATHS.contains(&push_path.as_str()) {
        return Err(err(
            "push_path",
            &format!("must be one of {}", PUSH_PATHS.join(", ")),
        ));
    }
    if let Some(d) = &s.endpoint_defaults
        && d.url.is_some()
    {
        return Err(err(
            "endpoint_defaults.url",
            "is the member's own; leave it out",
        ));
    }
    let endpoint_defaults = s.endpoint_defaults.clone().unwrap_or_default();
    let store = match s.store.unwrap_or(RingStore::Static) {
        RingStore::Static => {
            if s.member.is_empty() {
                return Err(err(
                    "member",
                    "store = \"static\" needs at least one [[ring.member]]",
                ));
            }
            let mut members = Vec::with_capacity(s.member.len());
            for (i, m) in s.member.iter().enumerate() {
                let key = format!("member[{i}]");
                if m.id.is_empty() {
                    return Err(err(&format!("{key}.id"), "is required"));
                }
                if members.iter().any(|x: &StaticMember| x.id == m.id) {
                    return Err(err(
                        &format!("{key}.id"),
                        &format!("{:?} appears twice", m.id),
                    ));
                }
                EndpointUrl::parse(&m.url).map_err(|e| err(&format!("{key}.url"), &e))?;
                let tokens = match (&m.tokens, m.tokens_count) {
                    (Some(_), Some(_)) => {
                        return Err(err(&key, "set tokens or tokens_count, not both"));
                    }
                    (Some(t), None) if t.is_empty() => {
                        return Err(err(&format!("{key}.tokens"), "must not be empty"));
                    }
                    (Some(t), None) => t.clone(),
                    (None, n) => {
                        let n = n.unwrap_or(DEFAULT_TOKENS_COUNT);
                        if n == 0 || n > 4096 {
                            return Err(err(
                                &format!("{key}.tokens_count"),
                                "must be between 1 and 4096",
                            ));
                        }
                        derive(&m.id, n)
                    }
                };
                members.push(StaticMember {
                    id: m.id.clone(),
                    url: m.url.clone(),
                    zone: m.zone.clone(),
                    tokens,
                });
            }
            if s.etcd.is_some() {
                return Err(err("etcd", "is for store = \"etcd\""));
            }
            RingStoreConfig::Static(members)
        }
        RingStore::Etcd => {
            if !s.member.is_empty() {
                return Err(err("member", "is for store = \"static\""));
            }
            let e = s
                .etcd
                .as_ref()
                .ok_or_else(|| err("etcd", "store = \"etcd\" needs [ring.etcd]"))?;
            if e.endpoints.is_empty() {
                return Err(err("etcd.endpoints", "needs at least one URL"));
            }
            let endpoints = e
                .endpoints
                .iter()
                .map(|u| EndpointUrl::parse(u).map_err(|m| err("etcd.endpoints", &m)))
                .collect::<Result<Vec<_>, _>>()?;
            RingStoreConfig::Etcd(EtcdConfig {
                endpoints,
                key: e
                    .key
                    .clone()
                    .unwrap_or_else(|| DEFAULT_ETCD_KEY.to_string()),
                dial_timeout: e.dial_timeout.map_or(DEFAULT_ETCD_DIAL_TIMEOUT, |d| d.0),
            })
        }
    };
    let cfg = RingConfig {
        replication_factor,
        zone_awareness: s.zone_awareness.unwrap_or(false),
        heartbeat_timeout: s
            .heartbeat_timeout
            .map_or(DEFAULT_HEARTBEAT_TIMEOUT, |d| d.0),
        push_path,
        store,
        endpoint_defaults,
    };
    // The defaults must make a valid endpoint.
    cfg.member_endpoint("check", "http://127.0.0.1:1")
        .map_err(|e| err("endpoint_defaults", &e.to_string()))?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Result<RingConfig, String> {
        let f = super::super::source::parse_toml(text).map_err(|e| e.to_string())?;
        resolve(f.ring.as_ref().expect("[ring]")).map_err(|e| e.to_string())
    }

    #[test]
    fn static_and_etcd_rings() {
        let c = cfg("[ring]\nreplication_factor = 3\n[[ring.member]]\nid = \"a\"\nurl = \"http://127.0.0.1:1\"\n[[ring.member]]\nid = \"b\"\nurl = \"http://127.0.0.1:2\"\ntokens = [5, 9]\n").expect("valid");
        assert_eq!(c.replication_factor, 3);
        assert_eq!(c.heartbeat_timeout, DEFAULT_HEARTBEAT_TIMEOUT);
        assert_eq!(c.push_path, DEFAULT_PUSH_PATH);
        let RingStoreConfig::Static(m) = &c.store else {
            panic!("static")
        };
        assert_eq!(m[0].tokens, derive_tokens("a", DEFAULT_TOKENS_COUNT));
        assert_eq!(m[1].tokens, [5, 9]);
        let c =
            cfg("[ring]\nstore = \"etcd\"\n[ring.etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\n")
                .expect("valid");
        let RingStoreConfig::Etcd(e) = &c.store else {
            panic!("etcd")
        };
        assert_eq!(e.key, "collectors/ring");
        assert_eq!(c.replication_factor, 1, "Pyroscope's default");
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("[ring]\n", "ring.member"),
            (
                "[ring]\nreplication_factor = 0\n",
                "ring.replication_factor",
            ),
            (
                "[ring]\npush_path = \"/x\"\n[[ring.member]]\nid=\"a\"\nurl=\"http://h:1\"\n",
                "ring.push_path",
            ),
            (
                "[ring]\n[[ring.member]]\nid=\"a\"\nurl=\"nope\"\n",
                "ring.member[0].url",
            ),
            (
                "[ring]\n[[ring.member]]\nid=\"a\"\nurl=\"http://h:1\"\n[[ring.member]]\nid=\"a\"\nurl=\"http://h:2\"\n",
                "ring.member[1].id",
            ),
            ("[ring]\nstore = \"etcd\"\n", "ring.etcd"),
            (
                "[ring]\n[[ring.member]]\nid=\"a\"\nurl=\"http://h:1\"\ntokens=[1]\ntokens_count=3\n",
                "ring.member[0]",
            ),
        ] {
            let e = cfg(text).expect_err(text);
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn derived_tokens_are_stable_and_distinct() {
        let t = derive_tokens("ingester-1", 128);
        assert_eq!(t.len(), 128);
        assert_eq!(t, derive_tokens("ingester-1", 128));
        assert_ne!(t, derive_tokens("ingester-2", 128));
        assert!(t.windows(2).all(|w| w[0] < w[1]));
    }
}
