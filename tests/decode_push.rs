//! `forward.decode_push` through the real binary (docs/push.md §14.1): with `auto` (the
//! default) a Connect Push that nothing configured reads goes to the sinks unread, byte for
//! byte, and a malformed one gets the downstream's answer; with `always` (or when a
//! configured feature reads the labels) it is decoded first and a malformed one gets the
//! early `invalid_argument`, as from Alloy.

mod common;
mod sinks;

use std::path::PathBuf;
use std::time::Duration;

use common::{Gateway, Response, gzip, push_gzip, push_proto, temp_path, write_temp};
use serde_json::Value;
use sinks::{Sink, fnv, header};

const PUSH: &str = "/push.v1.PusherService/Push";
const WAIT: Duration = Duration::from_secs(10);
const PROTO: (&str, &str) = ("Content-Type", "application/proto");
const GZIP: (&str, &str) = ("Content-Encoding", "gzip");

fn gateway(sink: &Sink, extra: &[&str]) -> Gateway {
    let url = sink.url();
    let mut args = vec!["--workers", "1", "--forward-to", &url];
    args.extend_from_slice(extra);
    Gateway::start(&args)
}

/// The pyroscope-io Push with one byte flipped in the middle of its deflate data: the gzip
/// header is intact, the stream is not.
fn corrupt_gzip() -> Vec<u8> {
    let mut bad = push_gzip();
    let n = bad.len();
    bad[n / 2] ^= 0xff;
    bad
}

/// The Connect error of a response: (status, code, message).
fn connect_error(r: &Response) -> (u16, String, String) {
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    let j = r.json();
    let text = |k: &str| j[k].as_str().unwrap_or_default().to_string();
    (r.status, text("code"), text("message"))
}

/// The one record the sink has after a request, with the sink's status.
fn only_record(sink: &Sink) -> Value {
    let recs = sink.wait_records(1, WAIT);
    assert_eq!(recs.len(), 1, "{recs:?}");
    recs[0].clone()
}

fn sent_profiles_and_bytes(gw: &Gateway, sink: &Sink) -> (f64, f64) {
    let m = gw.metrics();
    let ep = [("endpoint", sink.url())];
    let ep: Vec<(&str, &str)> = ep.iter().map(|(k, v)| (*k, v.as_str())).collect();
    (
        m.value("pyroscope_write_sent_profiles_total", &ep),
        m.value("pyroscope_write_sent_bytes_total", &ep),
    )
}

#[test]
fn auto_forwards_a_malformed_gzip_push_and_relays_the_sinks_answer() {
    let sink = Sink::start(&[]);
    let gw = gateway(&sink, &[]);
    let bad = corrupt_gzip();
    let r = gw.request("POST", PUSH, &[PROTO, GZIP], &bad);
    let rec = only_record(&sink);
    assert_eq!(
        rec["body_fnv"],
        fnv(&bad),
        "the malformed body arrived verbatim"
    );
    assert_eq!(header(&rec, "content-encoding"), vec!["gzip"]);
    assert_eq!(header(&rec, "content-type"), vec!["application/proto"]);
    // The sink answered as Pyroscope does (connect-go: a corrupt gzip body is
    // invalid_argument), and the client got that answer, not one of pyrogate's own.
    assert_eq!(rec["status"], 400, "{rec}");
    let (status, code, message) = connect_error(&r);
    assert_eq!(
        (status, code.as_str()),
        (400, "invalid_argument"),
        "{message}"
    );
    assert!(
        message.contains("status=400") && message.contains(&sink.url()),
        "the downstream's refusal: {message}"
    );
    let m = gw.metrics();
    let ep = sink.url();
    assert_eq!(
        m.value(
            "pyroscope_write_dropped_profiles_total",
            &[("endpoint", &ep)]
        ),
        1.0,
        "counted as one dropped profile"
    );
}

#[test]
fn always_answers_a_malformed_gzip_push_itself() {
    let sink = Sink::start(&[]);
    // The flag, and the same key in the file.
    let cfg = write_temp(
        "decode-always.toml",
        "[forward]\ndecode_push = \"always\"\n",
    );
    for args in [
        vec!["--decode-push", "always"],
        vec!["--config", cfg.to_str().expect("utf-8")],
    ] {
        sink.reset();
        let gw = gateway(&sink, &args);
        let r = gw.request("POST", PUSH, &[PROTO, GZIP], &corrupt_gzip());
        let (status, code, message) = connect_error(&r);
        assert_eq!(
            (status, code.as_str()),
            (400, "invalid_argument"),
            "{message}"
        );
        assert!(message.starts_with("decompress: "), "{message}");
        // Nothing went downstream: the next (valid) Push is the sink's only record.
        let good = push_gzip();
        let r = gw.request("POST", PUSH, &[PROTO, GZIP], &good);
        assert_eq!(r.status, 200, "{}", r.body_str());
        let rec = only_record(&sink);
        assert_eq!(rec["body_fnv"], fnv(&good));
        // A decoded Push is counted from its samples: one raw_profile of its own size.
        let raw = common::python_push().series[0].samples[0].raw_profile.len();
        assert_eq!(sent_profiles_and_bytes(&gw, &sink), (1.0, raw as f64));
    }
    let _ = std::fs::remove_file(cfg);
}

#[test]
fn auto_forwards_a_valid_push_byte_identical() {
    let sink = Sink::start(&[]);
    let gw = gateway(&sink, &[]);
    let good = push_gzip();
    let r = gw.request("POST", PUSH, &[PROTO, GZIP, ("X-Scope-OrgID", "t1")], &good);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert!(r.body.is_empty());
    let rec = only_record(&sink);
    assert_eq!(rec["status"], 200, "{rec}");
    assert_eq!(rec["body_fnv"], fnv(&good));
    assert_eq!(header(&rec, "content-encoding"), vec!["gzip"]);
    assert_eq!(header(&rec, "content-type"), vec!["application/proto"]);
    assert_eq!(rec["tenant"], "t1");
    // Unread: one profile per request, the body's bytes as received.
    assert_eq!(
        sent_profiles_and_bytes(&gw, &sink),
        (1.0, good.len() as f64)
    );
    // Plain protobuf and JSON keep their Content-Type and get no Content-Encoding.
    sink.reset();
    let ct = "application/json; charset=utf-8";
    for (headers, body) in [
        (vec![PROTO], push_proto()),
        (vec![("Content-Type", ct)], push_json()),
    ] {
        sink.reset();
        let r = gw.request("POST", PUSH, &headers, &body);
        assert_eq!(r.status, 200, "{}", r.body_str());
        let rec = only_record(&sink);
        assert_eq!(rec["body_fnv"], fnv(&body));
        assert!(header(&rec, "content-encoding").is_empty(), "{rec}");
        assert_eq!(header(&rec, "content-type"), vec![headers[0].1]);
    }
}

/// Unread means the gateway's Push label rule (reserved labels dropped, a repeated name's
/// last value kept, empty values deleted) is not applied: the labels reach the downstream
/// as the client sent them, and Pyroscope applies its own rules. With `always` they are
/// rewritten as before.
#[test]
fn auto_leaves_the_labels_as_sent() {
    use base64::Engine as _;
    let raw = &common::python_push().series[0].samples[0].raw_profile;
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
    let json = serde_json::json!({"series": [{
        "labels": [{"name": "__name__", "value": "process_cpu"}, {"name": "__type__", "value": "t"},
                   {"name": "service_name", "value": "svc"}],
        "samples": [{"ID": "a", "rawProfile": b64}],
    }]})
    .to_string();
    let sink = Sink::start(&[]);
    for (args, want) in [
        (&[][..], &["__name__", "__type__", "service_name"][..]),
        (
            &["--decode-push", "always"][..],
            &["__name__", "service_name"][..],
        ),
    ] {
        sink.reset();
        let gw = gateway(&sink, args);
        let r = gw.request(
            "POST",
            PUSH,
            &[("Content-Type", "application/json")],
            json.as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.body_str());
        let rec = only_record(&sink);
        let names: Vec<String> = sinks::series_labels(&rec)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, want, "{args:?}");
    }
}

/// Features that read the labels make `auto` decode: external labels (the malformed body
/// is answered by pyrogate). gRPC-Web is unframed and its message forwarded as sent, as a
/// Connect body.
#[test]
fn auto_decodes_when_something_reads_the_message() {
    let sink = Sink::start(&[]);
    let gw = gateway(&sink, &["--external-label", "env=prod"]);
    let r = gw.request("POST", PUSH, &[PROTO, GZIP], &corrupt_gzip());
    let (status, code, message) = connect_error(&r);
    assert_eq!(
        (status, code.as_str()),
        (400, "invalid_argument"),
        "{message}"
    );
    assert!(message.starts_with("decompress: "), "{message}");
    let gw = gateway(&sink, &[]);
    let proto = push_proto();
    let mut frame = vec![1u8];
    let gz = gzip(&proto);
    frame.extend_from_slice(&(gz.len() as u32).to_be_bytes());
    frame.extend_from_slice(&gz);
    let r = gw.request(
        "POST",
        PUSH,
        &[
            ("Content-Type", "application/grpc-web+proto"),
            ("Grpc-Encoding", "gzip"),
        ],
        &frame,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("grpc-status"), None, "success, not trailers-only");
    let rec = only_record(&sink);
    assert_eq!(rec["status"], 200, "{rec}");
    assert_eq!(header(&rec, "content-type"), vec!["application/proto"]);
    assert_eq!(header(&rec, "content-encoding"), vec!["gzip"]);
    assert_ne!(rec["body_fnv"], fnv(&frame), "unframed");
    assert_eq!(
        rec["body_fnv"],
        fnv(&gz),
        "the message as the client compressed it"
    );
    assert_eq!(rec["codec"], "proto");
    let raw = &common::python_push().series[0].samples[0].raw_profile;
    assert_eq!(
        rec["series"][0]["samples"][0]["raw_fnv"],
        fnv(raw),
        "the same profile"
    );
}

/// The pyroscope-io Push as protojson (labels as sent, `rawProfile` in base64).
fn push_json() -> Vec<u8> {
    use base64::Engine as _;
    let sent = common::python_push();
    let s = &sent.series[0];
    let b64 = base64::engine::general_purpose::STANDARD;
    let json = serde_json::json!({"series": [{
        "labels": s.labels.iter()
            .map(|(k, v)| serde_json::json!({"name": k, "value": v}))
            .collect::<Vec<_>>(),
        "samples": [{"rawProfile": b64.encode(&s.samples[0].raw_profile), "ID": s.samples[0].id}],
    }]});
    serde_json::to_vec(&json).expect("serializable")
}

/// The distributor's tenant rule reads only the header, so it still applies to an unread
/// Push: without `X-Scope-OrgID` it is refused before anything is forwarded.
#[test]
fn auto_still_applies_the_tenant_rule() {
    let sink = Sink::start(&[]);
    let cfg = write_temp(
        "decode-tenant.toml",
        "[distributor]\nmultitenancy_enabled = true\n",
    );
    let gw = gateway(&sink, &["--config", cfg.to_str().expect("utf-8")]);
    let r = gw.request("POST", PUSH, &[PROTO, GZIP], &corrupt_gzip());
    let (status, code, _) = connect_error(&r);
    assert_eq!((status, code.as_str()), (401, "unauthenticated"));
    let good = push_gzip();
    let r = gw.request("POST", PUSH, &[PROTO, GZIP, ("X-Scope-OrgID", "t2")], &good);
    assert_eq!(r.status, 200, "{}", r.body_str());
    let rec = only_record(&sink);
    assert_eq!(
        (rec["body_fnv"].clone(), rec["tenant"].clone()),
        (fnv(&good).into(), "t2".into())
    );
    let _ = std::fs::remove_file(cfg);
}

fn spool_dir() -> PathBuf {
    let d = temp_path("decode-spool");
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

/// `ack = "durable"` with an unread Push: the spool keeps its headers, so what is replayed
/// is what was received.
#[test]
fn durable_spool_forwards_an_unread_push_verbatim() {
    let sink = Sink::start(&[]);
    let dir = spool_dir();
    let cfg = write_temp(
        "decode-durable.toml",
        &format!(
            "[forward]\nack = \"durable\"\n\n[spool]\ndir = \"{}\"\n\n[[endpoint]]\nurl = \"{}\"\n",
            dir.display(),
            sink.url()
        ),
    );
    let gw = Gateway::start(&["--workers", "1", "--config", cfg.to_str().expect("utf-8")]);
    let good = push_gzip();
    let r = gw.request("POST", PUSH, &[PROTO, GZIP], &good);
    assert_eq!(r.status, 200, "{}", r.body_str());
    let rec = only_record(&sink);
    assert_eq!(rec["status"], 200, "{rec}");
    assert_eq!(rec["body_fnv"], fnv(&good));
    assert_eq!(header(&rec, "content-encoding"), vec!["gzip"]);
    assert_eq!(header(&rec, "content-type"), vec!["application/proto"]);
    // A malformed one is acknowledged once it is on disk (durable answers before any
    // delivery), reaches the sink as received and is dropped on its refusal.
    sink.reset();
    let bad = corrupt_gzip();
    let r = gw.request("POST", PUSH, &[PROTO, GZIP], &bad);
    assert_eq!(r.status, 200, "{}", r.body_str());
    let rec = only_record(&sink);
    assert_eq!(rec["body_fnv"], fnv(&bad));
    assert_eq!(rec["status"], 400, "{rec}");
    drop(gw);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_file(cfg);
}
