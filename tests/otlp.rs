//! OTLP profiles on `POST /v1development/profiles` end to end: the real gateway forwards
//! OTLP requests built by the test-data crate's own protobuf definitions to two real sinks,
//! byte for byte (gzip included); refuses a schema layout the downstream cannot read;
//! answers in OTLP's shapes (`ExportProfilesServiceResponse` with the downstream's
//! `partial_success`, `google.rpc.Status`) in the request's encoding; applies external
//! labels as resource attributes by re-encoding; and follows OTLP/HTTP's retry rules
//! (docs/otlp.md).

mod common;
mod sinks;

use std::time::Duration;

use common::{Gateway, gzip, td};
use serde_json::Value;
use sinks::{Sink, fnv, header};
use td::otlp::{Layout, Spec};

const WAIT: Duration = Duration::from_secs(10);
const PATH: &str = "/v1development/profiles";
const PROTO: &str = "application/x-protobuf";

fn gateway(sinks: &[&Sink], extra: &[&str]) -> Gateway {
    let urls: Vec<String> = sinks.iter().map(|s| s.url()).collect();
    let mut args: Vec<&str> = vec!["--workers", "2"];
    for u in &urls {
        args.push("--forward-to");
        args.push(u);
    }
    args.extend_from_slice(extra);
    Gateway::start(&args)
}

fn one_record_each(sinks: &[&Sink]) -> Vec<Value> {
    sinks
        .iter()
        .map(|s| {
            let recs = s.wait_records(1, WAIT);
            assert_eq!(recs.len(), 1, "sink {} records: {recs:?}", s.addr);
            assert_eq!(recs[0]["status"], 200, "{}", recs[0]);
            recs[0].clone()
        })
        .collect()
}

/// Decodes a `google.rpc.Status` by hand: (code, message).
fn status_proto(b: &[u8]) -> (u64, String) {
    fn varint(b: &[u8], i: &mut usize) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let byte = b[*i];
            *i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return v;
            }
            shift += 7;
        }
    }
    let (mut code, mut message, mut i) = (0, String::new(), 0);
    while i < b.len() {
        match varint(b, &mut i) {
            0x08 => code = varint(b, &mut i),
            0x12 => {
                let n = varint(b, &mut i) as usize;
                message = String::from_utf8_lossy(&b[i..i + n]).into_owned();
                i += n;
            }
            other => panic!("unexpected tag {other:#x} in {b:?}"),
        }
    }
    (code, message)
}

#[test]
fn proto_gzip_and_json_reach_both_sinks_byte_for_byte() {
    let (a, b) = (Sink::start(&[]), Sink::start(&[]));
    let gw = gateway(&[&a, &b], &[]);
    let raw = td::otlp::request(&Spec::new(1, Layout::V1_10).samples(200));
    let body = gzip(&raw);
    let mut c = gw.connect();
    let r = c
        .request(
            "POST",
            PATH,
            &[
                ("Content-Type", PROTO),
                ("Content-Encoding", "gzip"),
                ("X-Scope-OrgID", "team-a"),
            ],
            &body,
        )
        .expect("response");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some(PROTO));
    assert!(r.body.is_empty(), "an empty ExportProfilesServiceResponse");
    for rec in one_record_each(&[&a, &b]) {
        assert_eq!(rec["route"], "otlp");
        assert_eq!(rec["target"], PATH);
        assert_eq!(rec["tenant"], "team-a");
        assert_eq!(
            rec["body_fnv"],
            fnv(&body),
            "gzip'd body forwarded verbatim"
        );
        assert_eq!(header(&rec, "content-type"), [PROTO]);
        assert_eq!(header(&rec, "content-encoding"), ["gzip"]);
    }
    a.reset();
    b.reset();
    // OTLP/JSON: answered in JSON, forwarded as it came.
    let json = td::otlp::json_request(3);
    let r = c
        .request("POST", PATH, &[("Content-Type", "application/json")], &json)
        .expect("response");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body, b"{}");
    for rec in one_record_each(&[&a, &b]) {
        assert_eq!(rec["body_fnv"], fnv(&json));
        assert_eq!(header(&rec, "content-type"), ["application/json"]);
        assert!(header(&rec, "content-encoding").is_empty());
        assert_eq!(rec["tenant"], "anonymous");
    }
    // application/protobuf, uncompressed, is forwarded with its own type.
    a.reset();
    b.reset();
    let r = c
        .request(
            "POST",
            PATH,
            &[("Content-Type", "application/protobuf")],
            &raw,
        )
        .expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/protobuf"));
    for rec in one_record_each(&[&a, &b]) {
        assert_eq!(rec["body_fnv"], fnv(&raw));
        assert_eq!(header(&rec, "content-type"), ["application/protobuf"]);
    }
    let m = gw.metrics();
    assert_eq!(
        m.value(
            "pyrogate_requests_total",
            &[("route", "v1development_profiles"), ("status_code", "200")]
        ),
        3.0
    );
}

#[test]
fn a_schema_the_downstream_cannot_read_is_refused() {
    let a = Sink::start(&[]);
    let gw = gateway(&[&a], &[]);
    let old = td::otlp::request(&Spec::new(2, Layout::V1_9));
    let mut c = gw.connect();
    let r = c
        .request("POST", PATH, &[("Content-Type", PROTO)], &old)
        .expect("response");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some(PROTO));
    let (code, message) = status_proto(&r.body);
    assert_eq!(code, 3, "INVALID_ARGUMENT");
    assert!(
        message.contains("v1.9") && message.contains("v1.10"),
        "{message}"
    );
    // Garbage is refused the same way, with the reason.
    let r = c
        .request("POST", PATH, &[("Content-Type", PROTO)], b"\x0a\x7fshort")
        .expect("response");
    assert_eq!(r.status, 400);
    assert!(status_proto(&r.body).1.contains("unmarshal"), "{r:?}");
    let r = c
        .request("POST", PATH, &[("Content-Type", "application/json")], b"{")
        .expect("response");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], 3);
    // Head checks: 415, 405.
    let r = c
        .request("POST", PATH, &[("Content-Type", "application/proto")], &old)
        .expect("response");
    assert_eq!(r.status, 415);
    let r = c.get(PATH).expect("response");
    assert_eq!(r.status, 405);
    assert!(
        a.records().iter().all(|r| r["route"] != "otlp"),
        "nothing forwarded"
    );
    drop(gw);
    // A gateway in front of a v1.9 downstream (a sink that does not check the layout)
    // takes v1.9 and refuses v1.10.
    let old_downstream = Sink::start(&["--checks", "none"]);
    let gw = gateway(
        &[&old_downstream],
        &[
            "-c",
            &common::write_temp("otlp19.toml", "[otlp]\nschema = \"v1.9\"\n").to_string_lossy(),
        ],
    );
    let mut c = gw.connect();
    let r = c
        .request("POST", PATH, &[("Content-Type", PROTO)], &old)
        .expect("response");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let recs = old_downstream.wait_records(1, WAIT);
    assert_eq!(recs[0]["body_fnv"], fnv(&old));
    let new = td::otlp::request(&Spec::new(2, Layout::V1_10));
    let r = c
        .request("POST", PATH, &[("Content-Type", PROTO)], &new)
        .expect("response");
    assert_eq!(r.status, 400);
}

#[test]
fn external_labels_become_resource_attributes() {
    let (a, b) = (Sink::start(&[]), Sink::start(&[]));
    let gw = gateway(&[&a, &b], &["--external-label", "env=prod"]);
    let spec = Spec::new(4, Layout::V1_10);
    let body = gzip(&td::otlp::request(&spec));
    let r = gw
        .connect()
        .request(
            "POST",
            PATH,
            &[("Content-Type", PROTO), ("Content-Encoding", "gzip")],
            &body,
        )
        .expect("response");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // Built independently: the same request with the attribute already in its resource.
    let want = td::otlp::request(&spec.clone().attribute("env", "prod"));
    for rec in one_record_each(&[&a, &b]) {
        assert_eq!(rec["body_fnv"], fnv(&want), "re-encoded with env=prod");
        assert_eq!(rec["body_len"], want.len());
        assert!(
            header(&rec, "content-encoding").is_empty(),
            "re-encoded bodies are plain"
        );
    }
    a.reset();
    b.reset();
    // A request that already says env=prod is forwarded verbatim.
    let body = gzip(&want);
    let r = gw
        .connect()
        .request(
            "POST",
            PATH,
            &[("Content-Type", PROTO), ("Content-Encoding", "gzip")],
            &body,
        )
        .expect("response");
    assert_eq!(r.status, 200);
    for rec in one_record_each(&[&a, &b]) {
        assert_eq!(rec["body_fnv"], fnv(&body));
    }
}

#[test]
fn partial_success_and_downstream_errors_in_otlp_shapes() {
    let (a, b) = (Sink::start(&[]), Sink::start(&[]));
    let gw = gateway(&[&a, &b], &[]);
    a.control("otlp_partial=2");
    let raw = td::otlp::request(&Spec::new(5, Layout::V1_10));
    let mut c = gw.connect();
    let r = c
        .request("POST", PATH, &[("Content-Type", PROTO)], &raw)
        .expect("response");
    assert_eq!(r.status, 200);
    // ExportProfilesServiceResponse { partial_success { rejected_profiles: 2, error_message } }
    assert_eq!(&r.body[..4], &[0x0a, (r.body.len() - 2) as u8, 0x08, 0x02]);
    let text = String::from_utf8_lossy(&r.body);
    assert!(
        text.contains(&a.url()) && text.contains("2 profiles refused"),
        "{text}"
    );
    let r = c
        .request(
            "POST",
            PATH,
            &[("Content-Type", "application/json")],
            &td::otlp::json_request(1),
        )
        .expect("response");
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["partialSuccess"]["rejectedProfiles"], "2");
    a.control("reset=1");
    // A retryable status (503) is retried; the request then succeeds.
    a.control("fail_next=1&status=503");
    let r = c
        .request("POST", PATH, &[("Content-Type", PROTO)], &raw)
        .expect("response");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // A 500 is not retried (OTLP/HTTP) and is relayed as a Status.
    a.reset();
    a.control("fail_next=1&status=500&message=boom");
    let r = c
        .request(
            "POST",
            PATH,
            &[("Content-Type", "application/json")],
            &td::otlp::json_request(2),
        )
        .expect("response");
    assert_eq!(r.status, 500);
    let v = r.json();
    assert_eq!(v["code"], 13);
    assert!(v["message"].as_str().unwrap_or("").contains("boom"), "{v}");
    assert_eq!(
        a.records().iter().filter(|r| r["route"] == "otlp").count(),
        1,
        "not retried"
    );
}
