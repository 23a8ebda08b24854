//! What the sink saw: counters per route and tenant, status counts, and a bounded ring of
//! request records, rendered as the `GET /stats` JSON.
//!
//! Shape (all keys always present unless noted; checksums are 16 lower-case hex digits of
//! FNV-1a 64, see [`crate::fnv`]):
//!
//! ```text
//! { "checks": "full" | "none", "uptime_ms", "since_reset_ms",
//!   "totals":  Counters,                       // push + ingest
//!   "routes":  { "push": Counters, "ingest": Counters },
//!   "tenants": { "<X-Scope-OrgID or anonymous>": { "push": Counters, "ingest": Counters } },
//!   "status":  { "<code>": n },                // answers on the profile routes
//!   "injected": { "errors", "hangs", "delayed" },
//!   "loop_rejections": { "<reason>": n },      // answered by the HTTP loop (413, 408, …)
//!   "records_total", "records_kept", "records_evicted",
//!   "records": [Record]                        // only with ?records=1
//! }
//! Counters = { "requests", "accepted", "rejected", "profiles", "bytes", "bytes_received",
//!              "checksum_sum" }
//! Record = { "seq", "worker", "at_ms", "route": "push"|"ingest", "method", "target",
//!            "tenant", "headers": [[name, value]…], "framing": "length"|"chunked"|"none"|"http2",
//!            "body_len": n|null, "body_fnv": hex|null, "status": n|null, "error":
//!            {"code","message"}|null, "fault": "error"|"hang"|null, "delay_ms", "profiles",
//!            // Push only:
//!            "protocol": "connect"|"grpc-web", "codec": "proto"|"json", "series_omitted",
//!            "series": [{"labels": [[name, value]…], "samples_omitted",
//!                        "samples": [{"id", "raw_len", "raw_fnv", "raw_gzip"}]}],
//!            // /ingest only:
//!            "format", "name": {label: value}|null,
//!            "parts": [{"name", "filename", "content_type", "len", "fnv"}] }
//! ```
//!
//! `body_len`/`body_fnv` are `null` for requests refused from their head (405, 415, …)
//! (`body_fnv` also for every request of a sink started with `--no-checksum`);
//! `status` is `null` for an injected hang. With `--checks none` records carry no
//! route-specific keys and every accepted request counts as one profile.
//!
//! `bytes` and `profiles` count accepted (2xx) requests only; `bytes_received` counts every
//! body read; `checksum_sum` is the wrapping sum of the FNV-1a 64 of every accepted body, so
//! it does not depend on arrival order.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use serde::Serialize;

use super::check::{Detail, IngestDetail, PushDetail};
use crate::fnv;

/// Distinct tenants tracked; more are folded into [`OTHER_TENANT`] so a client that sends
/// random org IDs cannot grow the map without bound.
pub const MAX_TENANTS: usize = 1000;
pub const OTHER_TENANT: &str = "_other";
/// Fixed bookkeeping cost assumed per record, on top of its strings.
const RECORD_OVERHEAD: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    Push,
    Ingest,
    Otlp,
}

impl Route {
    pub fn name(self) -> &'static str {
        match self {
            Route::Push => "push",
            Route::Ingest => "ingest",
            Route::Otlp => "otlp",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub requests: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub profiles: u64,
    pub bytes: u64,
    pub bytes_received: u64,
    pub checksum_sum: u64,
}

impl Counters {
    fn add(&mut self, o: &Outcome) {
        self.requests += 1;
        self.bytes_received += o.body_len.unwrap_or(0);
        match o.status {
            Some(s) if (200..300).contains(&s) => {
                self.accepted += 1;
                self.profiles += o.profiles;
                self.bytes += o.body_len.unwrap_or(0);
                self.checksum_sum = self.checksum_sum.wrapping_add(o.body_fnv.unwrap_or(0));
            }
            _ => self.rejected += 1,
        }
    }

    fn merge(&mut self, o: &Counters) {
        self.requests += o.requests;
        self.accepted += o.accepted;
        self.rejected += o.rejected;
        self.profiles += o.profiles;
        self.bytes += o.bytes;
        self.bytes_received += o.bytes_received;
        self.checksum_sum = self.checksum_sum.wrapping_add(o.checksum_sum);
    }
}

impl Serialize for Counters {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Out {
            requests: u64,
            accepted: u64,
            rejected: u64,
            profiles: u64,
            bytes: u64,
            bytes_received: u64,
            checksum_sum: String,
        }
        Out {
            requests: self.requests,
            accepted: self.accepted,
            rejected: self.rejected,
            profiles: self.profiles,
            bytes: self.bytes,
            bytes_received: self.bytes_received,
            checksum_sum: fnv::hex(self.checksum_sum),
        }
        .serialize(s)
    }
}

/// Everything known about one request on a profile route, from which both the counters and
/// the record are made.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub worker: usize,
    pub route: Option<Route>,
    pub method: String,
    pub target: String,
    pub tenant: String,
    pub headers: Vec<(String, String)>,
    pub framing: &'static str,
    /// `None` when the request was refused before its body was read.
    pub body_len: Option<u64>,
    pub body_fnv: Option<u64>,
    /// `None` = never answered (an injected hang).
    pub status: Option<u16>,
    pub error: Option<(String, String)>,
    pub fault: Option<&'static str>,
    pub delay_ms: u64,
    pub profiles: u64,
    pub detail: Detail,
}

// === records ===

#[derive(Debug, Clone, Serialize)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SampleRecord {
    pub id: String,
    pub raw_len: usize,
    pub raw_fnv: String,
    pub raw_gzip: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeriesRecord {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<SampleRecord>,
    pub samples_omitted: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartRecord {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub len: usize,
    pub fnv: String,
}

/// One request as `/stats?records=1` shows it. Route-specific keys appear only on their
/// route: `protocol`, `codec`, `series`, `series_omitted` on Push; `format`, `name`,
/// `parts` on `/ingest`.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub seq: u64,
    pub worker: usize,
    /// Milliseconds since the sink started.
    pub at_ms: u64,
    pub route: Option<Route>,
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    pub tenant: String,
    /// Selected headers in arrival order, names lower-cased: every `content-type`,
    /// `content-encoding`, `authorization`, `user-agent`, `connect-timeout-ms`,
    /// `connect-protocol-version`, `grpc-*` and `x-*`.
    pub headers: Vec<(String, String)>,
    /// `length`, `chunked` or `none`.
    pub framing: &'static str,
    pub body_len: Option<u64>,
    pub body_fnv: Option<String>,
    /// `null` when the request was never answered (injected hang).
    pub status: Option<u16>,
    pub error: Option<ErrorInfo>,
    /// `error` or `hang` when a fault was injected.
    pub fault: Option<&'static str>,
    /// Injected latency.
    pub delay_ms: u64,
    pub profiles: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codec: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<Vec<SeriesRecord>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series_omitted: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<&'static str>,
    /// The parsed `name` label set; `null` when it did not parse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Option<BTreeMap<String, String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<PartRecord>>,
}

impl Record {
    fn new(seq: u64, at_ms: u64, o: Outcome) -> (Self, usize) {
        let mut size = RECORD_OVERHEAD + o.method.len() + o.target.len() + o.tenant.len();
        size += o
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 16)
            .sum::<usize>();
        let mut r = Record {
            seq,
            worker: o.worker,
            at_ms,
            route: o.route,
            method: o.method,
            target: o.target,
            tenant: o.tenant,
            headers: o.headers,
            framing: o.framing,
            body_len: o.body_len,
            body_fnv: o.body_fnv.map(fnv::hex),
            status: o.status,
            error: o.error.map(|(code, message)| {
                size += code.len() + message.len();
                ErrorInfo { code, message }
            }),
            fault: o.fault,
            delay_ms: o.delay_ms,
            profiles: o.profiles,
            protocol: None,
            codec: None,
            series: None,
            series_omitted: None,
            format: None,
            name: None,
            parts: None,
        };
        match o.detail {
            Detail::None => {}
            Detail::Push(PushDetail {
                protocol,
                codec,
                series,
                series_omitted,
            }) => {
                r.protocol = Some(protocol);
                r.codec = Some(codec);
                r.series_omitted = Some(series_omitted);
                r.series = Some(
                    series
                        .into_iter()
                        .map(|s| {
                            size += 32;
                            size += s
                                .labels
                                .iter()
                                .map(|(k, v)| k.len() + v.len() + 16)
                                .sum::<usize>();
                            size += s.samples.iter().map(|x| x.id.len() + 64).sum::<usize>();
                            SeriesRecord {
                                labels: s.labels,
                                samples: s
                                    .samples
                                    .into_iter()
                                    .map(|x| SampleRecord {
                                        id: x.id,
                                        raw_len: x.raw_len,
                                        raw_fnv: fnv::hex(x.raw_fnv),
                                        raw_gzip: x.raw_gzip,
                                    })
                                    .collect(),
                                samples_omitted: s.samples_omitted,
                            }
                        })
                        .collect(),
                );
            }
            Detail::Ingest(IngestDetail {
                format,
                name,
                parts,
            }) => {
                r.format = Some(format);
                if let Some(n) = &name {
                    size += n.iter().map(|(k, v)| k.len() + v.len() + 16).sum::<usize>();
                }
                r.name = Some(name);
                r.parts = Some(
                    parts
                        .into_iter()
                        .map(|p| {
                            size += 64 + p.name.len();
                            size += p.filename.as_ref().map_or(0, String::len);
                            size += p.content_type.as_ref().map_or(0, String::len);
                            PartRecord {
                                name: p.name,
                                filename: p.filename,
                                content_type: p.content_type,
                                len: p.len,
                                fnv: fnv::hex(p.fnv),
                            }
                        })
                        .collect(),
                );
            }
        }
        (r, size)
    }
}

// === the aggregate ===

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Injected {
    pub errors: u64,
    pub hangs: u64,
    pub delayed: u64,
}

/// Bounds of the record ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLimits {
    /// Records kept (0 disables recording; counters still work).
    pub max_records: usize,
    /// Estimated bytes of all kept records; the oldest are evicted beyond it.
    pub max_bytes: usize,
}

pub struct Stats {
    started: Instant,
    reset_at: Instant,
    limits: RingLimits,
    routes: BTreeMap<Route, Counters>,
    tenants: BTreeMap<String, BTreeMap<Route, Counters>>,
    status: BTreeMap<u16, u64>,
    injected: Injected,
    loop_rejections: BTreeMap<&'static str, u64>,
    ring: VecDeque<(Record, usize)>,
    ring_bytes: usize,
    records_total: u64,
    records_evicted: u64,
    seq: u64,
}

impl Stats {
    pub fn new(limits: RingLimits) -> Self {
        let now = Instant::now();
        Self {
            started: now,
            reset_at: now,
            limits,
            routes: BTreeMap::new(),
            tenants: BTreeMap::new(),
            status: BTreeMap::new(),
            injected: Injected::default(),
            loop_rejections: BTreeMap::new(),
            ring: VecDeque::new(),
            ring_bytes: 0,
            records_total: 0,
            records_evicted: 0,
            seq: 0,
        }
    }

    /// Clears everything but the uptime and the record sequence (which keeps increasing, so
    /// a consumer can tell records from before and after a reset apart).
    pub fn reset(&mut self) {
        let (started, seq, limits) = (self.started, self.seq, self.limits);
        *self = Self::new(limits);
        self.started = started;
        self.seq = seq;
    }

    /// Counts a request on a profile route and keeps its record.
    pub fn add(&mut self, o: Outcome) {
        if let Some(route) = o.route {
            self.routes.entry(route).or_default().add(&o);
            let tenant = if self.tenants.contains_key(&o.tenant) || self.tenants.len() < MAX_TENANTS
            {
                o.tenant.clone()
            } else {
                OTHER_TENANT.to_owned()
            };
            self.tenants
                .entry(tenant)
                .or_default()
                .entry(route)
                .or_default()
                .add(&o);
        }
        if let Some(s) = o.status {
            *self.status.entry(s).or_default() += 1;
        }
        match o.fault {
            Some("error") => self.injected.errors += 1,
            Some("hang") => self.injected.hangs += 1,
            _ => {}
        }
        if o.delay_ms > 0 {
            self.injected.delayed += 1;
        }
        self.seq += 1;
        self.records_total += 1;
        if self.limits.max_records == 0 {
            return;
        }
        let at_ms = self.started.elapsed().as_millis() as u64;
        let (rec, size) = Record::new(self.seq, at_ms, o);
        self.ring_bytes += size;
        self.ring.push_back((rec, size));
        while self.ring.len() > self.limits.max_records
            || (self.ring_bytes > self.limits.max_bytes && self.ring.len() > 1)
        {
            if let Some((_, s)) = self.ring.pop_front() {
                self.ring_bytes -= s;
                self.records_evicted += 1;
            }
        }
    }

    /// An error answered by the HTTP loop itself (413, 408, 400 for bad chunking, …).
    pub fn loop_error(&mut self, route: Option<Route>, status: u16) {
        *self.status.entry(status).or_default() += 1;
        if let Some(route) = route {
            let c = self.routes.entry(route).or_default();
            c.requests += 1;
            c.rejected += 1;
        }
    }

    pub fn loop_rejection(&mut self, reason: &'static str) {
        *self.loop_rejections.entry(reason).or_default() += 1;
    }

    pub fn route(&self, route: Route) -> Counters {
        self.routes.get(&route).copied().unwrap_or_default()
    }

    /// The `/stats` document. `records`: include the ring (the last `limit` records).
    pub fn to_json(&self, records: bool, limit: Option<usize>) -> serde_json::Value {
        let mut totals = Counters::default();
        for c in self.routes.values() {
            totals.merge(c);
        }
        let routes: BTreeMap<&str, Counters> = [Route::Push, Route::Ingest, Route::Otlp]
            .into_iter()
            .map(|r| (r.name(), self.route(r)))
            .collect();
        let tenants: BTreeMap<&str, BTreeMap<&str, Counters>> = self
            .tenants
            .iter()
            .map(|(t, m)| {
                let per: BTreeMap<&str, Counters> = [Route::Push, Route::Ingest, Route::Otlp]
                    .into_iter()
                    .map(|r| (r.name(), m.get(&r).copied().unwrap_or_default()))
                    .collect();
                (t.as_str(), per)
            })
            .collect();
        let status: BTreeMap<String, u64> = self
            .status
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        let mut doc = serde_json::json!({
            "uptime_ms": self.started.elapsed().as_millis() as u64,
            "since_reset_ms": self.reset_at.elapsed().as_millis() as u64,
            "totals": totals,
            "routes": routes,
            "tenants": tenants,
            "status": status,
            "injected": self.injected,
            "loop_rejections": self.loop_rejections,
            "records_total": self.records_total,
            "records_kept": self.ring.len(),
            "records_evicted": self.records_evicted,
        });
        if records && let Some(obj) = doc.as_object_mut() {
            let skip = limit.map_or(0, |l| self.ring.len().saturating_sub(l));
            let list: Vec<&Record> = self.ring.iter().skip(skip).map(|(r, _)| r).collect();
            obj.insert(
                "records".into(),
                serde_json::to_value(list).unwrap_or(serde_json::Value::Null),
            );
        }
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(route: Route, tenant: &str, status: Option<u16>, body: &[u8]) -> Outcome {
        Outcome {
            route: Some(route),
            method: "POST".into(),
            target: "/ingest?name=x".into(),
            tenant: tenant.into(),
            framing: "length",
            body_len: Some(body.len() as u64),
            body_fnv: Some(fnv::fnv1a64(body)),
            status,
            profiles: 1,
            ..Outcome::default()
        }
    }

    #[test]
    fn counters_per_route_and_tenant() {
        let mut s = Stats::new(RingLimits {
            max_records: 10,
            max_bytes: 1 << 20,
        });
        s.add(outcome(Route::Push, "anonymous", Some(200), b"abc"));
        s.add(outcome(Route::Push, "t1", Some(503), b"defg"));
        s.add(outcome(Route::Ingest, "t1", Some(200), b"hi"));
        s.add(outcome(Route::Ingest, "t1", None, b"hang"));
        let j = s.to_json(true, None);
        assert_eq!(j["routes"]["push"]["requests"], 2);
        assert_eq!(j["routes"]["push"]["accepted"], 1);
        assert_eq!(j["routes"]["push"]["bytes"], 3);
        assert_eq!(j["routes"]["push"]["bytes_received"], 7);
        assert_eq!(j["routes"]["ingest"]["rejected"], 1);
        assert_eq!(j["tenants"]["t1"]["ingest"]["profiles"], 1);
        assert_eq!(j["tenants"]["anonymous"]["ingest"]["requests"], 0);
        assert_eq!(j["status"]["200"], 2);
        assert_eq!(j["status"]["503"], 1);
        assert_eq!(j["totals"]["accepted"], 2);
        let sum = fnv::fnv1a64(b"abc").wrapping_add(fnv::fnv1a64(b"hi"));
        assert_eq!(j["totals"]["checksum_sum"], fnv::hex(sum));
        let recs = j["records"].as_array().expect("records");
        assert_eq!(recs.len(), 4);
        assert_eq!(recs[0]["body_fnv"], fnv::fnv1a64_hex(b"abc"));
        assert!(recs[3]["status"].is_null());
        assert!(s.to_json(false, None).get("records").is_none());
        assert_eq!(
            s.to_json(true, Some(1))["records"].as_array().map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn ring_is_bounded_by_count_and_bytes() {
        let mut s = Stats::new(RingLimits {
            max_records: 3,
            max_bytes: 1 << 20,
        });
        for _ in 0..10 {
            s.add(outcome(Route::Push, "a", Some(200), b"x"));
        }
        let j = s.to_json(true, None);
        assert_eq!(j["records_kept"], 3);
        assert_eq!(j["records_evicted"], 7);
        assert_eq!(j["records"][0]["seq"], 8);
        let mut s = Stats::new(RingLimits {
            max_records: 1000,
            max_bytes: 2000,
        });
        for _ in 0..100 {
            s.add(outcome(Route::Push, "a", Some(200), b"x"));
        }
        assert!(
            s.ring.len() < 10 && s.ring_bytes <= 2000,
            "{}",
            s.ring.len()
        );
        assert_eq!(s.route(Route::Push).requests, 100);
    }

    #[test]
    fn tenants_are_bounded_and_reset_clears() {
        let mut s = Stats::new(RingLimits {
            max_records: 0,
            max_bytes: 0,
        });
        for i in 0..(MAX_TENANTS + 50) {
            s.add(outcome(Route::Push, &format!("t{i}"), Some(200), b"x"));
        }
        assert_eq!(s.tenants.len(), MAX_TENANTS + 1);
        assert_eq!(s.tenants[OTHER_TENANT][&Route::Push].requests, 50);
        assert!(s.ring.is_empty());
        s.reset();
        assert_eq!(s.route(Route::Push), Counters::default());
        assert_eq!(s.seq, (MAX_TENANTS + 50) as u64);
    }
}
