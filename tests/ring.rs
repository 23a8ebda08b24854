//! Ring mode through the real binary (docs/ring.md): series reach exactly their owners as an
//! independent reference computes them; one owner down changes nothing for the client; two
//! down give Pyroscope's quorum message with a retryable code; membership from a real etcd
//! follows changes and survives etcd going away.

mod common;
mod sinks;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{Conn, Gateway, IO_TIMEOUT, td};
use serde_json::Value;
use sinks::{Sink, fnv, header};
use td::pprof::{Kind, Spec};
use td::push::Series;

const WAIT: Duration = Duration::from_secs(10);

// === an independent reference of Pyroscope's placement ===

/// Go's FNV-1 32 (multiply, then xor).
fn fnv1(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h = h.wrapping_mul(16_777_619) ^ u32::from(*b);
    }
    h
}

/// The token of a series with plain ASCII labels (no quoting beyond the quotes).
fn token(tenant: &str, labels: &BTreeMap<String, String>) -> u32 {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    fnv1(format!("{tenant}{{{}}}", pairs.join(", ")).as_bytes())
}

/// Owners of `key`: from the first token above it, clockwise, distinct members, a member
/// not ACTIVE taken but extending the set, until `rf` are found.
fn owners(tokens: &[(u32, usize)], active: &[bool], key: u32, rf: usize) -> Vec<usize> {
    let mut sorted = tokens.to_vec();
    sorted.sort();
    let start = sorted.iter().position(|(t, _)| *t > key).unwrap_or(0);
    let mut want = rf;
    let mut out = Vec::new();
    for i in 0..sorted.len() {
        if out.len() >= want.min(active.len()) {
            break;
        }
        let m = sorted[(start + i) % sorted.len()].1;
        if out.contains(&m) {
            continue;
        }
        out.push(m);
        if !active[m] {
            want += 1;
        }
    }
    out
}

/// `n` random-looking tokens per member, from a fixed seed.
fn member_tokens(members: usize, n: usize) -> Vec<Vec<u32>> {
    let mut rng = td::rng::Rng::new(77);
    (0..members)
        .map(|_| {
            let mut t: Vec<u32> = (0..n).map(|_| rng.next_u64() as u32).collect();
            t.sort();
            t.dedup();
            t
        })
        .collect()
}

fn static_config(sinks: &[&Sink], tokens: &[Vec<u32>], rf: usize, extra: &str) -> PathBuf {
    let mut cfg =
        format!("[forward]\nmode = \"ring\"\n\n[ring]\nreplication_factor = {rf}\n{extra}\n");
    for (i, (s, t)) in sinks.iter().zip(tokens).enumerate() {
        let list: Vec<String> = t.iter().map(u32::to_string).collect();
        cfg.push_str(&format!(
            "[[ring.member]]\nid = \"m{i}\"\nurl = \"{}\"\ntokens = [{}]\n",
            s.url(),
            list.join(", ")
        ));
    }
    common::write_temp("ring.toml", &cfg)
}

fn series_labels(i: usize) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("__name__".to_string(), "process_cpu".to_string()),
        ("idx".to_string(), i.to_string()),
        ("service_name".to_string(), format!("svc-{i}")),
    ])
}

fn push_body(indices: &[usize], seed: u64) -> Vec<u8> {
    let raw = Spec::new(seed, Kind::CpuNanos)
        .samples(10)
        .functions(10)
        .labels(false, false)
        .plain();
    let series: Vec<Series> = indices
        .iter()
        .map(|i| {
            let l = series_labels(*i);
            let pairs: Vec<(&str, &str)> =
                l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            Series::new(&pairs).sample(raw.clone(), format!("id-{i}"))
        })
        .collect();
    td::push::encode(&series)
}

fn push(c: &mut Conn, body: &[u8]) -> common::Response {
    c.request(
        "POST",
        "/push.v1.PusherService/Push",
        &[("Content-Type", "application/proto")],
        body,
    )
    .expect("response")
}

/// Which series (`idx` label) each sink received.
fn received(sink: &Sink) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    for rec in sink.records() {
        for s in rec["series"].as_array().into_iter().flatten() {
            for l in s["labels"].as_array().into_iter().flatten() {
                if l[0] == "idx" {
                    out.insert(l[1].as_str().unwrap_or("").parse().expect("idx"));
                }
            }
        }
    }
    out
}

/// 200 series over a static ring of 5 sinks with RF 3: every series arrives at exactly the
/// 3 owners the reference computes, and nowhere else; each destination got one request per
/// client request at most.
#[test]
fn series_reach_exactly_their_owners() {
    let sinks: Vec<Sink> = (0..5).map(|_| Sink::start(&[])).collect();
    let refs: Vec<&Sink> = sinks.iter().collect();
    let tokens = member_tokens(5, 64);
    let cfg = static_config(&refs, &tokens, 3, "");
    let gw = Gateway::start(&["-c", cfg.to_str().expect("utf-8"), "--workers", "2"]);
    let mut c = gw.connect();
    for batch in (0..200).collect::<Vec<_>>().chunks(10) {
        let r = push(&mut c, &push_body(batch, batch[0] as u64));
        assert_eq!(r.status, 200, "{}", r.body_str());
    }
    let flat: Vec<(u32, usize)> = tokens
        .iter()
        .enumerate()
        .flat_map(|(m, ts)| ts.iter().map(move |t| (*t, m)))
        .collect();
    let mut want: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); 5];
    for i in 0..200 {
        for m in owners(&flat, &[true; 5], token("anonymous", &series_labels(i)), 3) {
            want[m].insert(i);
        }
    }
    let matched = common::poll_until(WAIT, || {
        let got: Vec<BTreeSet<usize>> = sinks.iter().map(received).collect();
        (got == want).then_some(())
    });
    let got: Vec<BTreeSet<usize>> = sinks.iter().map(received).collect();
    assert!(
        matched.is_some(),
        "placement differs:\nwant {want:?}\ngot  {got:?}"
    );
    for (i, s) in sinks.iter().enumerate() {
        assert!(
            s.records().len() <= 20,
            "sink {i}: one request per client request at most"
        );
        assert!(s.records().iter().all(|r| r["status"] == 200));
    }
    // The ring page lists the members with their shares.
    let r = gw.request("GET", "/ring", &[("Accept", "application/json")], b"");
    let j = r.json();
    assert_eq!(j["members"].as_array().map(Vec::len), Some(5));
    let share: f64 = j["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["ownership_percent"].as_f64().unwrap_or(0.0))
        .sum();
    assert!((share - 100.0).abs() < 0.01, "{share}");
    let html = gw.request("GET", "/ring", &[], b"");
    assert!(html.body_str().contains("<table") && html.body_str().contains("m4"));
    let m = gw.metrics();
    assert_eq!(
        m.value("pyrogate_ring_members", &[("state", "ACTIVE")]),
        5.0
    );
}

/// A request whose series are its own (not split, `service_name` set, no label to change)
/// reaches the owners that carry all of it as the client sent it: the gzip'd body byte for
/// byte, with its `Content-Encoding`, nothing re-encoded. One without `service_name` is
/// re-encoded with Pyroscope's default, so the owners see `unknown_service`.
#[test]
fn unchanged_requests_reach_their_owners_as_sent() {
    let sinks: Vec<Sink> = (0..3).map(|_| Sink::start(&[])).collect();
    let refs: Vec<&Sink> = sinks.iter().collect();
    let cfg = static_config(&refs, &member_tokens(3, 16), 3, "");
    let gw = Gateway::start(&["-c", cfg.to_str().expect("utf-8"), "--workers", "1"]);
    let mut c = gw.connect();
    let body = common::gzip(&push_body(&[7], 7));
    let r = c
        .request(
            "POST",
            "/push.v1.PusherService/Push",
            &[
                ("Content-Type", "application/proto"),
                ("Content-Encoding", "gzip"),
            ],
            &body,
        )
        .expect("response");
    assert_eq!(r.status, 200, "{}", r.body_str());
    for (i, sink) in sinks.iter().enumerate() {
        let recs = sink.wait_records(1, WAIT);
        assert_eq!(recs.len(), 1, "sink {i}: {recs:?}");
        let rec = &recs[0];
        assert_eq!(
            rec["body_fnv"],
            fnv(&body),
            "sink {i}: not the client's bytes"
        );
        assert_eq!(header(rec, "content-encoding"), vec!["gzip"], "sink {i}");
        assert_eq!(rec["status"], 200, "sink {i}: {rec}");
    }
    // Without service_name: re-encoded (uncompressed) with the default label.
    let raw = Spec::new(3, Kind::CpuNanos).samples(5).plain();
    let plain = td::push::encode(&[Series::new(&[("__name__", "process_cpu")]).sample(raw, "x")]);
    let r = push(&mut c, &plain);
    assert_eq!(r.status, 200, "{}", r.body_str());
    for (i, sink) in sinks.iter().enumerate() {
        let recs = sink.wait_records(2, WAIT);
        assert_eq!(recs.len(), 2, "sink {i}: {recs:?}");
        let rec = &recs[1];
        assert_ne!(rec["body_fnv"], fnv(&plain), "sink {i}: sent unchanged");
        let labels = rec["series"][0]["labels"].to_string();
        assert!(labels.contains("unknown_service"), "sink {i}: {labels}");
    }
}

/// One owner of every series down: every request still gets 200 and the live owners have
/// the data. Two owners of a series down: Pyroscope's quorum message with a retryable code.
#[test]
fn quorum_with_owners_down() {
    let mut sinks: Vec<Option<Sink>> = (0..5).map(|_| Some(Sink::start(&[]))).collect();
    let tokens = member_tokens(5, 64);
    let cfg = {
        let refs: Vec<&Sink> = sinks.iter().map(|s| s.as_ref().expect("sink")).collect();
        static_config(&refs, &tokens, 3, "")
    };
    let gw = Gateway::start(&["-c", cfg.to_str().expect("utf-8"), "--workers", "2"]);
    let flat: Vec<(u32, usize)> = tokens
        .iter()
        .enumerate()
        .flat_map(|(m, ts)| ts.iter().map(move |t| (*t, m)))
        .collect();
    let owners_of = |i: usize| owners(&flat, &[true; 5], token("anonymous", &series_labels(i)), 3);
    // Member 0 down.
    drop(sinks[0].take());
    let mut c = gw.connect();
    for i in 0..40 {
        let r = push(&mut c, &push_body(&[i], i as u64));
        assert_eq!(
            r.status,
            200,
            "series {i} with one owner down: {}",
            r.body_str()
        );
    }
    for i in 0..40 {
        for m in owners_of(i).into_iter().filter(|m| *m != 0) {
            let s = sinks[m].as_ref().expect("live sink");
            assert!(
                common::poll_until(WAIT, || received(s).contains(&i).then_some(())).is_some(),
                "series {i} missing at live owner {m}"
            );
        }
    }
    // Member 1 down too: series owned by both 0 and 1 fail, the others pass.
    drop(sinks[1].take());
    let mut failed = 0;
    for i in 0..40 {
        let o = owners_of(i);
        let r = push(&mut c, &push_body(&[i], i as u64));
        if o.contains(&0) && o.contains(&1) {
            failed += 1;
            assert_eq!(r.status, 503, "series {i}: {}", r.body_str());
            assert_eq!(
                r.body_str(),
                r#"{"code":"unavailable","message":"at least 2 live replicas required, could only find 1"}"#
            );
        } else {
            assert_eq!(r.status, 200, "series {i} ({o:?}): {}", r.body_str());
        }
    }
    assert!(failed > 0, "some series are owned by both stopped members");
    assert!(gw.metrics().sum("pyrogate_ring_quorum_failures_total") >= failed as f64);
}

// === etcd ===

/// A real etcd (Debian's `etcd-server`, installed by scripts/test.sh) on free loopback ports,
/// killed on drop.
struct Etcd {
    child: Child,
    client: SocketAddr,
    _dir: PathBuf,
}

impl Etcd {
    fn start() -> Etcd {
        let dir = common::temp_path("etcd");
        let client: SocketAddr = ([127, 0, 0, 1], common::free_port()).into();
        let peer: SocketAddr = ([127, 0, 0, 1], common::free_port()).into();
        let child = Command::new("etcd")
            .args([
                "--data-dir",
                dir.to_str().expect("utf-8"),
                "--listen-client-urls",
                &format!("http://{client}"),
                "--advertise-client-urls",
                &format!("http://{client}"),
                "--listen-peer-urls",
                &format!("http://{peer}"),
                "--initial-advertise-peer-urls",
                &format!("http://{peer}"),
                "--initial-cluster",
                &format!("default=http://{peer}"),
                "--log-level",
                "error",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("etcd is needed ({e}); run scripts/test.sh, which installs etcd-server")
            });
        let e = Etcd {
            child,
            client,
            _dir: dir,
        };
        let up = common::poll_until(Duration::from_secs(15), || {
            Conn::connect(e.client)
                .and_then(|mut c| c.get("/health"))
                .ok()
                .filter(|r| r.status == 200)
        });
        assert!(up.is_some(), "etcd did not start");
        e
    }

    fn url(&self) -> String {
        format!("http://{}", self.client)
    }

    /// Stores `value` under `key` through the v3 JSON gateway.
    fn put(&self, key: &str, value: &[u8]) {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let body = format!(
            "{{\"key\":\"{}\",\"value\":\"{}\"}}",
            b64(key.as_bytes()),
            b64(value)
        );
        let r = Conn::connect(self.client)
            .expect("connect etcd")
            .request(
                "POST",
                "/v3/kv/put",
                &[("Content-Type", "application/json")],
                body.as_bytes(),
            )
            .expect("put");
        assert_eq!(r.status, 200, "{}", r.body_str());
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A dskit ring value: `ring.Desc` (field numbers of dskit's ring.proto) written with the
/// test data crate's protobuf encoder, snappy-framed as literals.
fn ring_value(members: &[(&str, SocketAddr, &[u32], i32)]) -> Vec<u8> {
    use prost::Message as _;
    #[derive(Clone, PartialEq, prost::Message)]
    struct Desc {
        #[prost(btree_map = "string, message", tag = "1")]
        ingesters: BTreeMap<String, Instance>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Instance {
        #[prost(string, tag = "1")]
        addr: String,
        #[prost(int64, tag = "2")]
        timestamp: i64,
        #[prost(int32, tag = "3")]
        state: i32,
        #[prost(uint32, repeated, tag = "6")]
        tokens: Vec<u32>,
        #[prost(string, tag = "9")]
        id: String,
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let desc = Desc {
        ingesters: members
            .iter()
            .map(|(id, addr, tokens, state)| {
                (
                    id.to_string(),
                    Instance {
                        addr: addr.to_string(),
                        timestamp: now,
                        state: *state,
                        tokens: tokens.to_vec(),
                        id: id.to_string(),
                    },
                )
            })
            .collect(),
    };
    let plain = desc.encode_to_vec();
    // Snappy block: the length as a varint, then literals of at most 60 bytes (tag < 60).
    let mut out = Vec::new();
    let mut n = plain.len();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    for chunk in plain.chunks(60) {
        out.push(((chunk.len() - 1) as u8) << 2);
        out.extend_from_slice(chunk);
    }
    out
}

const ACTIVE: i32 = 0;
const LEAVING: i32 = 1;

/// The ring comes from etcd; a change (a member added, one set LEAVING) is followed within
/// 2 s with no request failing meanwhile; with etcd stopped the last ring keeps serving.
#[test]
fn membership_from_etcd() {
    let etcd = Etcd::start();
    let sinks: Vec<Sink> = (0..4).map(|_| Sink::start(&[])).collect();
    let tokens = member_tokens(4, 32);
    let key = "collectors/ring";
    let v1 = ring_value(&[
        ("m0", sinks[0].addr, &tokens[0], ACTIVE),
        ("m1", sinks[1].addr, &tokens[1], ACTIVE),
        ("m2", sinks[2].addr, &tokens[2], ACTIVE),
    ]);
    etcd.put(key, &v1);
    let cfg = common::write_temp(
        "ring-etcd.toml",
        &format!(
            "[forward]\nmode = \"ring\"\n[ring]\nreplication_factor = 2\nstore = \"etcd\"\n[ring.etcd]\nendpoints = [\"{}\"]\nkey = \"{key}\"\n",
            etcd.url()
        ),
    );
    let gw = Gateway::start(&["-c", cfg.to_str().expect("utf-8"), "--workers", "2"]);
    let members_on_page = |gw: &Gateway| -> Vec<(String, String)> {
        let j = gw
            .request("GET", "/ring", &[("Accept", "application/json")], b"")
            .json();
        j["members"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                (
                    m["id"].as_str().unwrap_or("").to_string(),
                    m["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    assert!(
        common::poll_until(WAIT, || (members_on_page(&gw).len() == 3).then_some(())).is_some(),
        "the ring from etcd: {:?}",
        members_on_page(&gw)
    );
    let flat = |n: usize| -> Vec<(u32, usize)> {
        tokens[..n]
            .iter()
            .enumerate()
            .flat_map(|(m, ts)| ts.iter().map(move |t| (*t, m)))
            .collect()
    };
    let mut c = gw.connect();
    for i in 0..30 {
        assert_eq!(push(&mut c, &push_body(&[i], 1)).status, 200);
    }
    for i in 0..30 {
        for m in owners(
            &flat(3),
            &[true; 3],
            token("anonymous", &series_labels(i)),
            2,
        ) {
            assert!(
                common::poll_until(WAIT, || received(&sinks[m]).contains(&i).then_some(()))
                    .is_some(),
                "series {i} at m{m}"
            );
        }
    }
    // Change the ring while traffic flows: m3 joins, m1 leaves.
    let v2 = ring_value(&[
        ("m0", sinks[0].addr, &tokens[0], ACTIVE),
        ("m1", sinks[1].addr, &tokens[1], LEAVING),
        ("m2", sinks[2].addr, &tokens[2], ACTIVE),
        ("m3", sinks[3].addr, &tokens[3], ACTIVE),
    ]);
    let changed_at = Instant::now();
    etcd.put(key, &v2);
    let mut seen_at = None;
    let mut i = 100;
    while changed_at.elapsed() < Duration::from_secs(4) {
        let r = push(&mut c, &push_body(&[i], 2));
        assert_eq!(
            r.status,
            200,
            "request {i} during the swap: {}",
            r.body_str()
        );
        if seen_at.is_none() && members_on_page(&gw).len() == 4 {
            seen_at = Some(changed_at.elapsed());
        }
        i += 1;
    }
    let seen = seen_at.expect("the new ring was published");
    assert!(seen <= Duration::from_secs(2), "followed after {seen:?}");
    assert!(members_on_page(&gw).contains(&("m1".into(), "LEAVING".into())));
    // After the swap: series go to the new owners (m1 is LEAVING: taken, extends, but is
    // not written to as unhealthy).
    for j in 1000..1030 {
        assert_eq!(push(&mut c, &push_body(&[j], 3)).status, 200);
    }
    let active = [true, false, true, true];
    let want: Vec<BTreeSet<usize>> = (0..4)
        .map(|m| {
            (1000..1030)
                .filter(|j| {
                    owners(&flat(4), &active, token("anonymous", &series_labels(*j)), 2)
                        .into_iter()
                        .filter(|o| active[*o])
                        .any(|o| o == m)
                })
                .collect()
        })
        .collect();
    let after = |m: usize| -> BTreeSet<usize> {
        received(&sinks[m])
            .into_iter()
            .filter(|j| (1000..1030).contains(j))
            .collect()
    };
    let matched = common::poll_until(WAIT, || {
        let got: Vec<BTreeSet<usize>> = (0..4).map(after).collect();
        (got == want).then_some(())
    });
    let got: Vec<BTreeSet<usize>> = (0..4).map(after).collect();
    assert!(
        matched.is_some(),
        "after the swap:\nwant {want:?}\ngot  {got:?}"
    );
    assert!(want[1].is_empty(), "nothing goes to the LEAVING member");
    // etcd goes away: the last ring keeps serving, and the gateway says so.
    drop(etcd);
    let mut c = gw.connect();
    for k in 2000..2010 {
        let r = push(&mut c, &push_body(&[k], 4));
        assert_eq!(r.status, 200, "{}", r.body_str());
    }
    let down = common::poll_until(Duration::from_secs(15), || {
        (gw.metrics().value("pyrogate_ring_store_up", &[]) == 0.0).then_some(())
    });
    assert!(down.is_some(), "store_up drops to 0");
    let j = gw
        .request("GET", "/ring", &[("Accept", "application/json")], b"")
        .json();
    assert!(j["store_error"].is_string(), "{j}");
    assert_eq!(j["members"].as_array().map(Vec::len), Some(4));
    let _ = IO_TIMEOUT;
    let _: Option<Value> = None;
}

/// `/ingest` goes to the owners of its `name` label set; a Push profile whose samples carry
/// string labels is split, each part going to the owners of the series labels merged with
/// its sample labels.
#[test]
fn ingest_and_split_series_follow_the_ring() {
    let sinks: Vec<Sink> = (0..3).map(|_| Sink::start(&[])).collect();
    let refs: Vec<&Sink> = sinks.iter().collect();
    let tokens = member_tokens(3, 32);
    let cfg = static_config(&refs, &tokens, 1, "");
    let gw = Gateway::start(&["-c", cfg.to_str().expect("utf-8")]);
    let flat: Vec<(u32, usize)> = tokens
        .iter()
        .enumerate()
        .flat_map(|(m, ts)| ts.iter().map(move |t| (*t, m)))
        .collect();
    let owner = |labels: &BTreeMap<String, String>| {
        owners(&flat, &[true; 3], token("anonymous", labels), 1)[0]
    };

    // /ingest: several apps, each to the owner of {__name__=<app>, env=prod}.
    for app in ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"] {
        let body = Spec::new(5, Kind::Cpu).samples(10).gzip();
        let r = gw.request(
            "POST",
            &format!("/ingest?name={app}%7Benv%3Dprod%7D&format=pprof&spyName=gospy"),
            &[("Content-Type", "application/octet-stream")],
            &body,
        );
        assert_eq!(r.status, 200, "{}", r.body_str());
        let labels = BTreeMap::from([
            ("__name__".to_string(), app.to_string()),
            ("env".to_string(), "prod".to_string()),
        ]);
        let want = owner(&labels);
        let at = |s: &Sink| {
            s.records()
                .iter()
                .any(|r| r["route"] == "ingest" && r["name"]["__name__"] == app)
        };
        assert!(
            common::poll_until(WAIT, || at(&sinks[want]).then_some(())).is_some(),
            "{app} at its owner m{want}"
        );
        for (m, s) in sinks.iter().enumerate() {
            assert_eq!(at(s), m == want, "{app} at m{m}");
        }
    }

    // Push with string sample labels: the parts' label sets, computed independently.
    let spec = Spec::new(8, Kind::Cpu)
        .labels(true, false)
        .samples(80)
        .zeros(0);
    let model = spec.profile();
    let base = BTreeMap::from([
        ("__name__".to_string(), "process_cpu".to_string()),
        ("service_name".to_string(), "split-svc".to_string()),
    ]);
    let mut parts: BTreeSet<Vec<(String, String)>> = BTreeSet::new();
    for s in &model.sample {
        let mut l = base.clone();
        for lab in s.label.iter().filter(|x| x.str != 0) {
            l.entry(model.string_table[lab.key as usize].clone())
                .or_insert_with(|| model.string_table[lab.str as usize].clone());
        }
        parts.insert(l.into_iter().collect());
    }
    assert!(parts.len() > 1);
    let body = td::push::encode(&[Series::new(&[
        ("__name__", "process_cpu"),
        ("service_name", "split-svc"),
    ])
    .sample(spec.gzip(), "one")]);
    let r = gw.request(
        "POST",
        "/push.v1.PusherService/Push",
        &[("Content-Type", "application/proto")],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let got = |m: usize| -> BTreeSet<Vec<(String, String)>> {
        sinks[m]
            .records()
            .iter()
            .filter(|r| r["route"] == "push")
            .flat_map(|r| r["series"].as_array().cloned().unwrap_or_default())
            .map(|s| {
                s["labels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|l| {
                        (
                            l[0].as_str().unwrap_or("").to_string(),
                            l[1].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let want: Vec<BTreeSet<Vec<(String, String)>>> = (0..3)
        .map(|m| {
            parts
                .iter()
                .filter(|p| owner(&p.iter().cloned().collect()) == m)
                .cloned()
                .collect()
        })
        .collect();
    let matched = common::poll_until(WAIT, || {
        ((0..3).map(got).collect::<Vec<_>>() == want).then_some(())
    });
    assert!(
        matched.is_some(),
        "split parts:\nwant {want:?}\ngot  {:?}",
        (0..3).map(got).collect::<Vec<_>>()
    );
}
