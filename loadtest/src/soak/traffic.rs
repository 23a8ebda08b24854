//! The tracked traffic: agent-shaped requests (Push, /ingest pprof, Go multipart, folded,
//! Java JFR chunked) whose bodies are all different, so that every acknowledged request
//! can be looked for at each sink by its body checksum (FNV-1a 64, the sink's `body_fnv`).
//!
//! A body is made unique cheaply: pprof bodies get a `period` field (12) appended to the
//! encoded profile (protobuf keeps the last value of a scalar field), folded text a first
//! line naming the request, multipart bodies a boundary drawn from the request's number.
//! Every kind chosen here reaches a sink byte for byte through the gateway (the demo checks
//! the same: Connect Push and /ingest bodies are forwarded untouched).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyrogate_testdata::formats;
use pyrogate_testdata::gz::gzip;
use pyrogate_testdata::pprof::{Kind as ProfileKind, Spec};
use pyrogate_testdata::push::{self, Series};
use pyrogate_testdata::sdk::{self, Request};

use super::{Ctl, GwState};
use crate::fnv;
use crate::probe::Client;

/// The tracked request kinds, in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Push,
    IngestPprof,
    IngestMultipart,
    IngestFolded,
    IngestJfr,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Push,
        Kind::IngestPprof,
        Kind::IngestMultipart,
        Kind::IngestFolded,
        Kind::IngestJfr,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Push => "push",
            Kind::IngestPprof => "ingest-pprof",
            Kind::IngestMultipart => "ingest-multipart",
            Kind::IngestFolded => "ingest-folded",
            Kind::IngestJfr => "ingest-jfr",
        }
    }
}

/// Tenants the requests rotate through (`None`: no `X-Scope-OrgID`).
const TENANTS: [Option<&str>; 3] = [None, Some("soak-a"), Some("soak-b")];

/// Pre-generated material; [`Bodies::make`] only appends, gzips and renders.
pub struct Bodies {
    now_s: u64,
    push_series: Series,
    push_template: Request,
    pprof_plain: Vec<u8>,
    pprof_template: Request,
    go_profile: Vec<u8>,
    folded: String,
    folded_template: Request,
    jfr: Vec<u8>,
    jfr_labels: Vec<u8>,
}

/// One rendered request.
pub struct Made {
    pub kind: Kind,
    /// Head and framed body.
    pub bytes: Vec<u8>,
    /// The body before transfer framing (what the sink checksums).
    pub body: Vec<u8>,
}

/// `bytes` with a protobuf varint field `field` = `v` appended.
pub fn append_varint_field(mut bytes: Vec<u8>, field: u32, v: u64) -> Vec<u8> {
    let put = |mut x: u64, out: &mut Vec<u8>| {
        while x >= 0x80 {
            out.push((x as u8) | 0x80);
            x >>= 7;
        }
        out.push(x as u8);
    };
    put(u64::from(field) << 3, &mut bytes);
    put(v, &mut bytes);
    bytes
}

/// pprof `Profile.period`.
const PERIOD_FIELD: u32 = 12;

impl Bodies {
    pub fn new(seed: u64, now_s: u64) -> Self {
        let push_template = sdk::python_push(seed);
        let push_series = push_template.series[0].clone();
        let pprof_plain = Spec::new(seed, ProfileKind::Wall)
            .samples(300)
            .functions(200)
            .time(now_s as i64 * 1_000_000_000)
            .plain();
        let pprof_template = sdk::node_ingest(seed, now_s, ProfileKind::Wall);
        let go_profile = Spec::new(seed ^ 5, ProfileKind::Cpu)
            .samples(150)
            .functions(150)
            .time(now_s as i64 * 1_000_000_000)
            .gzip();
        let folded_template = sdk::stack_ingest(seed, now_s, "folded");
        let folded = formats::folded(4096, seed);
        let jfr = formats::java_gzip(&formats::jfr(16 * 1024, seed));
        let jfr_labels = formats::java_gzip(&formats::labels_snapshot(4, seed));
        Self {
            now_s,
            push_series,
            push_template,
            pprof_plain,
            pprof_template,
            go_profile,
            folded,
            folded_template,
            jfr,
            jfr_labels,
        }
    }

    /// Request number `u` of `kind` (its body differs from every other `u`'s).
    pub fn make(&self, kind: Kind, u: u64, host: &str) -> Made {
        let mut req = match kind {
            Kind::Push => {
                let mut s = self.push_series.clone();
                s.samples[0].raw_profile =
                    append_varint_field(s.samples[0].raw_profile.clone(), PERIOD_FIELD, u + 1);
                let mut r = self.push_template.clone();
                r.body = gzip(&push::encode(std::slice::from_ref(&s)));
                r
            }
            Kind::IngestPprof => {
                let mut r = self.pprof_template.clone();
                r.body = gzip(&append_varint_field(
                    self.pprof_plain.clone(),
                    PERIOD_FIELD,
                    u + 1,
                ));
                r
            }
            Kind::IngestMultipart => sdk::go_multipart(
                u,
                self.now_s,
                ProfileKind::Cpu,
                &self.go_profile,
                None,
                None,
            ),
            Kind::IngestFolded => {
                let mut r = self.folded_template.clone();
                let mut body = format!("soak;request;u{u:x} 1\n").into_bytes();
                body.extend_from_slice(self.folded.as_bytes());
                r.body = body;
                r
            }
            Kind::IngestJfr => sdk::java_multipart(u, self.now_s, &self.jfr, &self.jfr_labels),
        };
        if let Some(t) = TENANTS[(u % TENANTS.len() as u64) as usize] {
            req = req.with_tenant(t);
        }
        Made {
            kind,
            bytes: req.render(host),
            body: req.body,
        }
    }
}

/// Per-request client timeout: above the gateway's write timeout, so the gateway always
/// answers first.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(25);

/// One tracked client: paced requests on a keep-alive connection until the end of the run
/// (or `max_requests`), every outcome tallied, every 200 recorded by body checksum.
pub fn client_loop(
    ctl: Arc<Ctl>,
    gw: Arc<GwState>,
    bodies: Arc<Bodies>,
    index: u64,
    interval: Duration,
    max_requests: u64,
) {
    let host = gw.addr.to_string();
    let mut conn: Option<Client> = None;
    let mut next = Instant::now() + interval.mul_f64((index % 16) as f64 / 16.0);
    for _ in 0..max_requests {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        // Behind schedule: no burst to catch up.
        let now = Instant::now();
        next = next.max(now.checked_sub(interval).unwrap_or(now)) + interval;
        if !ctl.traffic_on() {
            return;
        }
        let n = gw.next_request();
        let kind = Kind::ALL[(n % Kind::ALL.len() as u64) as usize];
        let u = gw.unique(n);
        let made = bodies.make(kind, u, &host);
        let sum = fnv::fnv1a64(&made.body);
        gw.note_sent(sum);
        let outcome = send(&mut conn, gw.addr, &made.bytes);
        match &outcome {
            Ok(200) => gw.ack(sum, made.kind),
            Ok(_) => {}
            Err(_) => conn = None,
        }
        gw.tally_outcome(made.kind, &outcome);
    }
}

/// Sends on the kept connection (opening one when needed); the status, or the failure's
/// class (`connect`, `timeout`, `closed`, `io`).
fn send(conn: &mut Option<Client>, addr: SocketAddr, bytes: &[u8]) -> Result<u16, &'static str> {
    if conn.is_none() {
        *conn = Some(Client::connect(addr, CLIENT_TIMEOUT).map_err(|_| "connect")?);
    }
    let Some(c) = conn.as_mut() else {
        return Err("connect");
    };
    match c.send(bytes) {
        Ok(a) => {
            if a.close {
                *conn = None;
            }
            Ok(a.status)
        }
        Err(e) if e.contains("timed out") || e.contains("Resource temporarily") => Err("timeout"),
        Err(e) if e.contains("closed") || e.contains("reset") || e.contains("Broken pipe") => {
            Err("closed")
        }
        Err(_) => Err("io"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_unique_and_still_valid() {
        let b = Bodies::new(1, 1_795_312_305);
        let mut seen = std::collections::HashSet::new();
        for u in 0..20u64 {
            for k in Kind::ALL {
                let m = b.make(k, u, "127.0.0.1:1");
                assert!(seen.insert(fnv::fnv1a64(&m.body)), "{k:?} {u}");
                assert!(m.bytes.len() > m.body.len());
            }
        }
        // The appended period decodes as the last value of the field.
        let p = append_varint_field(vec![], PERIOD_FIELD, 300);
        assert_eq!(p, vec![0x60, 0xac, 0x02]);
        let plain =
            pyrogate_testdata::gz::gunzip(&b.make(Kind::IngestPprof, 5, "h").body).expect("gzip");
        let prof = <pyrogate_testdata::wire::Profile as prost::Message>::decode(&plain[..])
            .expect("still a profile");
        assert_eq!(prof.period, 6);
    }
}
