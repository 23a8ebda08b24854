//! One published ring: its members and their tokens, and dskit's walk from a series' token to
//! the members that own it (docs/ring.md §3).

use std::time::Duration;

use super::desc::{Desc, InstanceState};

/// One instance of the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    /// The base URL requests go to (`http://<addr>` for instances read from a store).
    pub url: String,
    /// As the store has it (`host:port`), for messages; the URL's authority for static rings.
    pub addr: String,
    pub zone: String,
    pub state: InstanceState,
    /// Last heartbeat, Unix seconds; 0 = none (static members are always fresh).
    pub heartbeat: i64,
    pub tokens: Vec<u32>,
}

/// How replicas are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub replication_factor: usize,
    pub zone_awareness: bool,
    /// A member whose heartbeat is older is unhealthy; zero = heartbeats are not checked.
    pub heartbeat_timeout: Duration,
}

/// The members a series goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSet {
    /// Healthy members, indices into [`Ring::members`], in walk order.
    pub members: Vec<u32>,
    /// How many of them may fail before the series fails.
    pub max_failures: usize,
}

impl ReplicaSet {
    /// Successes that decide the series.
    pub fn min_success(&self) -> usize {
        self.members.len() - self.max_failures
    }
}

/// A ring snapshot: immutable once built, shared by every worker.
#[derive(Debug, Clone, Default)]
pub struct Ring {
    pub members: Vec<Member>,
    /// Every token, sorted, and the member owning each.
    tokens: Vec<u32>,
    owners: Vec<u32>,
    zones: usize,
}

impl Ring {
    /// A ring of `members` (their order is kept; tokens are merged and sorted).
    pub fn new(members: Vec<Member>) -> Self {
        let mut pairs: Vec<(u32, u32)> = members
            .iter()
            .enumerate()
            .flat_map(|(i, m)| m.tokens.iter().map(move |t| (*t, i as u32)))
            .collect();
        pairs.sort_unstable();
        let mut zones: Vec<&str> = members.iter().map(|m| m.zone.as_str()).collect();
        zones.sort_unstable();
        zones.dedup();
        let zones = zones.len();
        Self {
            tokens: pairs.iter().map(|p| p.0).collect(),
            owners: pairs.iter().map(|p| p.1).collect(),
            members,
            zones,
        }
    }

    /// The ring dskit stored, its instances addressed as `http://<addr>`.
    pub fn from_desc(desc: &Desc) -> Self {
        let members = desc
            .ingesters
            .iter()
            .filter(|(_, d)| d.state != InstanceState::Left as i32)
            .map(|(id, d)| Member {
                id: id.clone(),
                url: format!("http://{}", d.addr),
                addr: d.addr.clone(),
                zone: d.zone.clone(),
                state: InstanceState::try_from(d.state).unwrap_or(InstanceState::Pending),
                heartbeat: d.timestamp,
                tokens: d.tokens.clone(),
            })
            .collect();
        Self::new(members)
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// dskit's `Get` for writes: from the first token strictly greater than `key`, walk
    /// clockwise over distinct members until `replication_factor` are found (a member not
    /// ACTIVE is taken but extends the set by one; with zone awareness one member per zone),
    /// then drop the unhealthy ones. `n = max(rf, taken)` and `floor(n/2)+1` must remain.
    ///
    /// # Errors
    /// Pyroscope's message when fewer than the quorum are healthy.
    pub fn replicas(&self, key: u32, p: &Placement, now_secs: i64) -> Result<ReplicaSet, String> {
        let mut n = p.replication_factor.max(1);
        let mut taken: Vec<u32> = Vec::with_capacity(n + 2);
        let mut zones: Vec<&str> = Vec::new();
        if !self.tokens.is_empty() {
            let start = self.tokens.partition_point(|t| *t <= key) % self.tokens.len();
            let max_members = self.members.len();
            let mut i = start;
            for _ in 0..self.tokens.len() {
                if taken.len() >= n.min(max_members) || zones.len() >= self.zones.max(1) {
                    break;
                }
                let owner = self.owners[i];
                i = (i + 1) % self.tokens.len();
                if taken.contains(&owner) {
                    continue;
                }
                let m = &self.members[owner as usize];
                if p.zone_awareness && !m.zone.is_empty() && zones.contains(&m.zone.as_str()) {
                    continue;
                }
                taken.push(owner);
                if m.state != InstanceState::Active {
                    n += 1;
                } else if p.zone_awareness && !m.zone.is_empty() {
                    zones.push(m.zone.as_str());
                }
            }
        }
        let rf = p.replication_factor.max(taken.len());
        let min_success = rf / 2 + 1;
        let mut unhealthy = Vec::new();
        taken.retain(|i| {
            let ok = self.healthy(&self.members[*i as usize], p, now_secs);
            if !ok {
                unhealthy.push(self.members[*i as usize].addr.as_str());
            }
            ok
        });
        if taken.len() < min_success {
            let detail = if unhealthy.is_empty() {
                String::new()
            } else {
                format!(" - unhealthy instances: {}", unhealthy.join(","))
            };
            let zones = if p.zone_awareness {
                " across different availability zones"
            } else {
                ""
            };
            return Err(format!(
                "at least {min_success} live replicas required{zones}, could only find {}{detail}",
                taken.len()
            ));
        }
        let max_failures = taken.len() - min_success;
        Ok(ReplicaSet {
            members: taken,
            max_failures,
        })
    }

    /// dskit's `IsHealthy` for writes: ACTIVE, with a heartbeat within the timeout.
    pub fn healthy(&self, m: &Member, p: &Placement, now_secs: i64) -> bool {
        m.state == InstanceState::Active && self.fresh(m, p, now_secs)
    }

    /// The heartbeat is recent enough (always, without heartbeats or a timeout).
    pub fn fresh(&self, m: &Member, p: &Placement, now_secs: i64) -> bool {
        m.heartbeat == 0
            || p.heartbeat_timeout.is_zero()
            || now_secs.saturating_sub(m.heartbeat) <= p.heartbeat_timeout.as_secs() as i64
    }

    /// Share of the token space each member owns (the range from the previous token up to
    /// each of its tokens), in member order.
    pub fn ownership(&self) -> Vec<f64> {
        let mut owned = vec![0u64; self.members.len()];
        let n = self.tokens.len();
        for i in 0..n {
            let prev = if i == 0 {
                self.tokens[n - 1]
            } else {
                self.tokens[i - 1]
            };
            let span = self.tokens[i].wrapping_sub(prev) as u64;
            let span = if n == 1 { 1u64 << 32 } else { span };
            owned[self.owners[i] as usize] += span;
        }
        owned
            .into_iter()
            .map(|o| o as f64 / (1u64 << 32) as f64)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ring::derive_tokens;

    fn member(id: &str, zone: &str, tokens: &[u32]) -> Member {
        Member {
            id: id.into(),
            url: format!("http://{id}"),
            addr: id.into(),
            zone: zone.into(),
            state: InstanceState::Active,
            heartbeat: 0,
            tokens: tokens.to_vec(),
        }
    }

    fn placement(rf: usize) -> Placement {
        Placement {
            replication_factor: rf,
            zone_awareness: false,
            heartbeat_timeout: Duration::from_secs(60),
        }
    }

    fn ids(r: &Ring, set: &ReplicaSet) -> Vec<String> {
        set.members
            .iter()
            .map(|i| r.members[*i as usize].id.clone())
            .collect()
    }

    #[test]
    fn walk_starts_after_the_key_and_wraps() {
        let r = Ring::new(vec![
            member("a", "", &[100, 400]),
            member("b", "", &[200]),
            member("c", "", &[300]),
        ]);
        let p = placement(2);
        // Strictly greater: an exact match moves on.
        assert_eq!(ids(&r, &r.replicas(100, &p, 0).unwrap()), ["b", "c"]);
        assert_eq!(ids(&r, &r.replicas(99, &p, 0).unwrap()), ["a", "b"]);
        assert_eq!(ids(&r, &r.replicas(350, &p, 0).unwrap()), ["a", "b"]);
        // Past the last token: wraps to the first; a is not taken twice.
        assert_eq!(ids(&r, &r.replicas(500, &p, 0).unwrap()), ["a", "b"]);
        let s = r.replicas(1, &placement(3), 0).unwrap();
        assert_eq!(
            (s.members.len(), s.max_failures, s.min_success()),
            (3, 1, 2)
        );
    }

    #[test]
    fn non_active_members_extend_and_unhealthy_ones_count() {
        let mut r = Ring::new(vec![
            member("a", "", &[100]),
            member("b", "", &[200]),
            member("c", "", &[300]),
            member("d", "", &[400]),
        ]);
        r.members[1].state = InstanceState::Leaving;
        // rf 2 from 50: a, b (LEAVING, extends), c; b is then dropped; n = 3 → quorum 2.
        let s = r.replicas(50, &placement(2), 0).unwrap();
        assert_eq!(ids(&r, &s), ["a", "c"]);
        assert_eq!(s.max_failures, 0);
        // A stale heartbeat: unhealthy, and Pyroscope's message when the quorum is gone.
        r.members[0].heartbeat = 1000;
        r.members[2].heartbeat = 1000;
        let e = r.replicas(50, &placement(2), 2000).unwrap_err();
        assert_eq!(
            e,
            "at least 2 live replicas required, could only find 0 - unhealthy instances: a,b,c"
        );
        assert!(r.replicas(50, &placement(2), 1030).is_ok());
    }

    #[test]
    fn zone_awareness_takes_one_member_per_zone() {
        let r = Ring::new(vec![
            member("a1", "a", &[100]),
            member("a2", "a", &[200]),
            member("b1", "b", &[300]),
            member("c1", "c", &[400]),
        ]);
        let p = Placement {
            zone_awareness: true,
            ..placement(3)
        };
        assert_eq!(ids(&r, &r.replicas(50, &p, 0).unwrap()), ["a1", "b1", "c1"]);
        let two_zones = Ring::new(vec![member("a1", "a", &[100]), member("b1", "b", &[200])]);
        let s = two_zones.replicas(50, &p, 0).unwrap();
        assert_eq!(s.members.len(), 2);
        assert_eq!(s.min_success(), 2, "n = rf = 3 → quorum 2");
    }

    #[test]
    fn ownership_sums_to_one() {
        let r = Ring::new(vec![
            member("a", "", &derive_tokens("a", 64)),
            member("b", "", &derive_tokens("b", 64)),
        ]);
        let o = r.ownership();
        assert!((o.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(o.iter().all(|x| (0.3..0.7).contains(x)), "{o:?}");
    }
}
