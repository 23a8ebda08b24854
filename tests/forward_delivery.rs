//! Forwarding, what arrives: every kind of request in ../shared/fixtures reaches two
//! destinations byte for byte, with Alloy's label, query and header rules (ALLOY-COMPAT.md
//! §3, §5, §6, §11) and pyrogate's Push rules (verbatim when no label changes, one request
//! per Push, tenant pass-through).

mod common;
mod sinks;

use std::io::Read;
use std::time::Duration;

use base64::Engine;
use common::{Gateway, chunked, fixture};
use serde_json::Value;
use sinks::{Sink, fnv, header, series_labels};

const WAIT: Duration = Duration::from_secs(10);
const NODE_QUERY: &str = "format=pprof&from=1795312298&name=feas.node.app%7Botel.scope.name%3Dcom.grafana.pyroscope%2Fnodejs%2Cotel.scope.version%3D0.6.4%2Cprocess.runtime.name%3Dnodejs%2Cprocess.runtime.version%3D20.20.2%2Cenv%3Dfeas%2Cregion%3Dlocal%7D&spyName=nodespy&until=1795312309&sampleRate=17";
/// ALLOY-COMPAT.md §5.7: what Alloy forwards for the Node capture.
const NODE_FORWARDED: &str = "/ingest?format=pprof&from=1795312298&name=feas.node.app%7Benv%3Dfeas%2Cotel.scope.name%3Dcom.grafana.pyroscope%2Fnodejs%2Cotel.scope.version%3D0.6.4%2Cprocess.runtime.name%3Dnodejs%2Cprocess.runtime.version%3D20.20.2%2Cregion%3Dlocal%2Cservice_name%3Dfeas.node.app%7D&sampleRate=17&spyName=nodespy&until=1795312309";
const PUSH: &str = "/push.v1.PusherService/Push";

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

fn two_sinks() -> (Sink, Sink) {
    (Sink::start(&[]), Sink::start(&[]))
}

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

/// The single record each sink got, checked to be answered 200.
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

fn multipart(boundary: &str, parts: &[(&str, &str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, filename, ct, data) in parts {
        b.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        b.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n")
                .as_bytes(),
        );
        if let Some(ct) = ct {
            b.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        b.extend_from_slice(b"\r\n");
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    b
}

/// Sends `/ingest` and checks both destinations got the same bytes, Content-Type list and
/// (when given) the exact forwarded target.
fn ingest_case(
    what: &str,
    query: &str,
    headers: &[(&str, &str)],
    wire_body: &[u8],
    body: &[u8],
    target: Option<&str>,
) {
    let (a, b) = two_sinks();
    let gw = gateway(&[&a, &b], &[]);
    let r = gw.request("POST", &format!("/ingest?{query}"), headers, wire_body);
    assert_eq!(r.status, 200, "{what}: {} {}", r.status, r.body_str());
    let cts: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| *v)
        .collect();
    for rec in one_record_each(&[&a, &b]) {
        assert_eq!(rec["route"], "ingest", "{what}");
        assert_eq!(rec["body_len"], body.len() as u64, "{what}");
        assert_eq!(rec["body_fnv"], fnv(body), "{what}: body changed");
        assert_eq!(header(&rec, "content-type"), cts, "{what}: content types");
        assert!(header(&rec, "content-encoding").is_empty(), "{what}");
        if let Some(t) = target {
            assert_eq!(rec["target"], t, "{what}");
        }
    }
}

#[test]
fn ingest_node_capture_is_forwarded_like_alloy() {
    let body = fixture("clients/pyroscope-nodejs-0.6.4-ingest-wall.bin");
    ingest_case(
        "node",
        NODE_QUERY,
        &[
            ("Content-Type", "application/octet-stream"),
            ("Connection", "keep-alive"),
        ],
        &body,
        &body,
        Some(NODE_FORWARDED),
    );
}

#[test]
fn ingest_pprof_raw_gzip_and_plain() {
    let gz = fixture("pprof/cpu.pb.gz");
    ingest_case(
        "pprof gz",
        "name=go.app&format=pprof&from=1&until=2",
        &[
            ("Content-Type", "binary/octet-stream"),
            ("Content-Encoding", "gzip"),
        ],
        &gz,
        &gz,
        Some("/ingest?format=pprof&from=1&name=go.app%7Bservice_name%3Dgo.app%7D&until=2"),
    );
    let plain = gunzip(&gz);
    ingest_case(
        "pprof plain",
        "name=go.app&format=pprof",
        &[("Content-Type", "application/octet-stream")],
        &plain,
        &plain,
        None,
    );
}

#[test]
fn ingest_go_multipart() {
    let body = multipart(
        "b0undary",
        &[
            (
                "profile",
                "profile.pprof",
                Some("application/octet-stream"),
                &fixture("pprof/req_2.pprof"),
            ),
            (
                "sample_type_config",
                "sample_type_config.json",
                None,
                &fixture("pprof/req_2.st.json"),
            ),
        ],
    );
    ingest_case(
        "go multipart",
        "aggregationType=average&from=1795312298000000000&name=go.app%7B__session_id__%3Dabc%7D&sampleRate=0&spyName=gospy&units=goroutines&until=1795312308000000000",
        &[("Content-Type", "multipart/form-data; boundary=b0undary")],
        &body,
        &body,
        None,
    );
}

#[test]
fn ingest_java_jfr_multipart_chunked() {
    let body = multipart(
        "5f1e2f9c-uuid",
        &[
            ("jfr", "jfr", None, &fixture("jfr/dump1.jfr.gz")),
            (
                "labels",
                "labels",
                Some("application/x-protobuf"),
                &fixture("jfr/dump1.labels.pb.gz"),
            ),
        ],
    );
    let wire = chunked(&body, 8191, &[]);
    ingest_case(
        "jfr",
        "name=java.app%7Bprocess.runtime.name%3DOpenJDK+Runtime+Environment%7D&units=samples&aggregationType=sum&from=1&until=2&spyName=javaspy&sampleRate=100&format=jfr",
        &[
            (
                "Content-Type",
                "multipart/form-data; boundary=5f1e2f9c-uuid",
            ),
            ("Transfer-Encoding", "chunked"),
        ],
        &wire,
        &body,
        None,
    );
}

#[test]
fn ingest_folded_and_speedscope() {
    let folded = b"main;work;fib 120\nmain;idle 30\n".to_vec();
    ingest_case(
        "folded",
        "name=app.cpu&from=1&until=2",
        &[],
        &folded,
        &folded,
        Some("/ingest?from=1&name=app.cpu%7Bservice_name%3Dapp.cpu%7D&until=2"),
    );
    let ss = fixture("speedscope/simple.speedscope.json");
    ingest_case(
        "speedscope",
        "name=app.cpu&format=speedscope",
        &[("Content-Type", "application/json")],
        &ss,
        &ss,
        None,
    );
}

#[test]
fn ingest_labels_external_and_headers() {
    // ALLOY-COMPAT §15 "AppendIngest basic": endpoint Content-Type replaced by the caller's
    // values (all of them, in order), endpoint headers sent, external labels win.
    let a = Sink::start(&[]);
    let cfg = format!(
        "external_labels = {{ env = \"prod\", cluster = \"cluster-1\" }}\n\
         [[endpoint]]\nurl = \"{}\"\nheaders = {{ \"Content-Type\" = \"evil-content-type\", \"X-Good-Header\" = \"i-am-so-good\" }}\n",
        a.url()
    );
    let path = common::write_temp("forward.toml", &cfg);
    let gw = Gateway::start(&["--config", path.to_str().unwrap_or_default()]);
    let r = gw.request(
        "POST",
        "/ingest?key=value&name=my.awesome.app.cpu%7Benv%3Dstaging%2Cregion%3Dus-west-1%7D",
        &[
            ("Content-Type", "ct1"),
            ("Content-Type", "ct2"),
            ("X-Scope-OrgID", "t1"),
        ],
        b"profile-bytes",
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let rec = &a.wait_records(1, WAIT)[0];
    assert_eq!(header(rec, "content-type"), vec!["ct1", "ct2"]);
    assert_eq!(header(rec, "x-good-header"), vec!["i-am-so-good"]);
    assert_eq!(
        rec["tenant"], "t1",
        "caller's tenant forwarded (forward_tenant)"
    );
    let name = &rec["name"];
    assert_eq!(name["__name__"], "my.awesome.app.cpu");
    assert_eq!(name["env"], "prod", "external label wins");
    assert_eq!(name["cluster"], "cluster-1");
    assert_eq!(name["region"], "us-west-1");
    assert_eq!(name["service_name"], "my.awesome.app.cpu");
    assert!(
        rec["target"]
            .as_str()
            .unwrap_or_default()
            .contains("key=value")
    );
    assert_eq!(rec["body_fnv"], fnv(b"profile-bytes"));
}

#[test]
fn ingest_service_name_rules() {
    let a = Sink::start(&[]);
    let gw = gateway(&[&a], &[]);
    let pprof = fixture("pprof/cpu.pb.gz");
    for (q, expect) in [
        (
            "name=test.app%7Bservice_name%3Dmy-service%7D",
            vec![
                ("__name__", "my-service"),
                ("app_name", "test.app"),
                ("service_name", "my-service"),
            ],
        ),
        (
            "name=test.app%7Binvalid-label-syntax%7D",
            vec![("__name__", "test.app"), ("service_name", "test.app")],
        ),
        (
            "name=test.app%7Benv%3Dprod%2Cregion%3Dus-east%7D",
            vec![
                ("__name__", "test.app"),
                ("env", "prod"),
                ("region", "us-east"),
                ("service_name", "test.app"),
            ],
        ),
    ] {
        a.reset();
        let r = gw.request("POST", &format!("/ingest?{q}&format=pprof"), &[], &pprof);
        assert_eq!(r.status, 200, "{q}: {}", r.body_str());
        let rec = &a.wait_records(1, WAIT)[0];
        let got: Vec<(String, String)> = rec["name"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let want: Vec<(String, String)> = expect
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want, "{q}");
    }
    // Invalid labels are refused (400, not Alloy's 500) and nothing is forwarded.
    a.reset();
    let r = gw.request("POST", "/ingest?name=%7Ba%3D1%7D", &[], b"x");
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert!(
        r.body_str().contains("invalid labels in profile"),
        "{}",
        r.body_str()
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(a.records().is_empty());
}

fn push_fixture() -> (Vec<u8>, Vec<u8>) {
    let gz = fixture("clients/pyroscope-io-1.4.0-push.bin");
    let plain = gunzip(&gz);
    (gz, plain)
}

const FIXTURE_LABELS: [(&str, &str); 8] = [
    ("__name__", "process_cpu"),
    ("env", "feas"),
    ("region", "local"),
    ("service_name", "feas.python.app"),
    ("otel.scope.name", "com.grafana.pyroscope/python"),
    ("otel.scope.version", "1.4.0"),
    ("process.runtime.name", "cpython"),
    ("process.runtime.version", "3.11.7"),
];

fn labels_of(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn push_gzip_proto_is_forwarded_verbatim_to_both() {
    let (gz, _) = push_fixture();
    let (a, b) = two_sinks();
    let gw = gateway(&[&a, &b], &[]);
    let r = gw.request(
        "POST",
        PUSH,
        &[
            ("Content-Type", "application/proto"),
            ("Content-Encoding", "gzip"),
            ("X-Scope-OrgID", "team-a"),
        ],
        &gz,
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    for rec in one_record_each(&[&a, &b]) {
        assert_eq!(
            rec["body_fnv"],
            fnv(&gz),
            "gzip body forwarded byte for byte"
        );
        assert_eq!(header(&rec, "content-encoding"), vec!["gzip"]);
        assert_eq!(header(&rec, "connect-protocol-version"), vec!["1"]);
        assert!(!header(&rec, "connect-timeout-ms").is_empty());
        assert_eq!(rec["tenant"], "team-a");
        // No `app_name=process_cpu` quirk: the labels are the client's, untouched.
        assert_eq!(series_labels(&rec), labels_of(&FIXTURE_LABELS));
        assert_eq!(
            rec["series"][0]["samples"][0]["id"],
            "cc6eb922-fbf0-4dbf-91e1-ed16428f51ca"
        );
    }
}

#[test]
fn push_plain_proto_and_json() {
    let (_, plain) = push_fixture();
    let (a, b) = two_sinks();
    let gw = gateway(&[&a, &b], &[]);
    let r = gw.request(
        "POST",
        PUSH,
        &[("Content-Type", "application/proto")],
        &plain,
    );
    assert_eq!(r.status, 200);
    for rec in one_record_each(&[&a, &b]) {
        assert_eq!(rec["body_fnv"], fnv(&plain));
        assert!(header(&rec, "content-encoding").is_empty());
    }
    a.reset();
    b.reset();
    let raw = &plain;
    // Rebuild the fixture as protojson (labels + one sample) from its decoded record.
    let rec = {
        let s = Sink::start(&[]);
        let gw2 = gateway(&[&s], &[]);
        assert_eq!(
            gw2.request("POST", PUSH, &[("Content-Type", "application/proto")], raw)
                .status,
            200
        );
        s.wait_records(1, WAIT)[0].clone()
    };
    let raw_profile = extract_raw_profile(raw);
    let json = serde_json::json!({
        "series": [{
            "labels": series_labels(&rec).iter().map(|(k, v)| serde_json::json!({"name": k, "value": v})).collect::<Vec<_>>(),
            "samples": [{"ID": "cc6eb922-fbf0-4dbf-91e1-ed16428f51ca", "rawProfile": base64::engine::general_purpose::STANDARD.encode(&raw_profile)}],
        }]
    })
    .to_string();
    let r = gw.request(
        "POST",
        PUSH,
        &[("Content-Type", "application/json")],
        json.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.body_str(), "{}");
    for rec in one_record_each(&[&a, &b]) {
        assert_eq!(rec["codec"], "json");
        assert_eq!(
            rec["body_fnv"],
            fnv(json.as_bytes()),
            "JSON forwarded verbatim"
        );
        assert_eq!(rec["series"][0]["samples"][0]["raw_fnv"], fnv(&raw_profile));
    }
}

/// The `raw_profile` bytes of the fixture's single sample (tiny protobuf walk).
fn extract_raw_profile(plain: &[u8]) -> Vec<u8> {
    fn varint(b: &[u8], i: &mut usize) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        while *i < b.len() {
            let x = b[*i];
            *i += 1;
            v |= u64::from(x & 0x7f) << shift;
            if x & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        v
    }
    fn field(b: &[u8], want: u64) -> Option<&[u8]> {
        let mut i = 0;
        while i < b.len() {
            let key = varint(b, &mut i);
            match key & 7 {
                0 => {
                    varint(b, &mut i);
                }
                2 => {
                    let n = varint(b, &mut i) as usize;
                    let v = b.get(i..i + n)?;
                    i += n;
                    if key >> 3 == want {
                        return Some(v);
                    }
                }
                _ => return None,
            }
        }
        None
    }
    let series = field(plain, 1).expect("series");
    let sample = field(series, 2).expect("sample");
    field(sample, 1).expect("raw_profile").to_vec()
}

#[test]
fn push_with_external_labels_is_rewritten_sharing_profile_bytes() {
    let (gz, plain) = push_fixture();
    let raw_profile = extract_raw_profile(&plain);
    let (a, b) = two_sinks();
    let gw = gateway(
        &[&a, &b],
        &[
            "--external-label",
            "env=prod",
            "--external-label",
            "cluster=c1",
        ],
    );
    let r = gw.request(
        "POST",
        PUSH,
        &[
            ("Content-Type", "application/proto"),
            ("Content-Encoding", "gzip"),
        ],
        &gz,
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let mut want: Vec<(String, String)> = labels_of(&FIXTURE_LABELS)
        .into_iter()
        .map(|(k, v)| {
            if k == "env" {
                (k, "prod".into())
            } else {
                (k, v)
            }
        })
        .collect();
    want.push(("cluster".into(), "c1".into()));
    want.sort();
    for rec in one_record_each(&[&a, &b]) {
        assert!(
            header(&rec, "content-encoding").is_empty(),
            "re-encoded uncompressed"
        );
        assert_eq!(header(&rec, "content-type"), vec!["application/proto"]);
        assert_eq!(series_labels(&rec), want, "external labels win, sorted");
        let s = &rec["series"][0]["samples"][0];
        assert_eq!(s["raw_fnv"], fnv(&raw_profile), "profile bytes intact");
        assert_eq!(s["id"], "cc6eb922-fbf0-4dbf-91e1-ed16428f51ca");
    }
}

#[test]
fn push_reserved_labels_dropped_and_series_kept_in_one_request() {
    // Two series, one with a reserved `__type__` label: one downstream request (Alloy would
    // send two), `__type__` dropped, `__delta__` kept.
    let (_, plain) = push_fixture();
    let raw = extract_raw_profile(&plain);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
    let json = serde_json::json!({"series": [
        {"labels": [{"name": "__name__", "value": "test"}, {"name": "__type__", "value": "type"}, {"name": "__delta__", "value": "false"}, {"name": "job", "value": "foo"}],
         "samples": [{"ID": "a", "rawProfile": b64}]},
        {"labels": [{"name": "app", "value": "app-1"}], "samples": [{"ID": "b", "rawProfile": b64}]}
    ]})
    .to_string();
    let a = Sink::start(&[]);
    let gw = gateway(&[&a], &[]);
    let r = gw.request(
        "POST",
        PUSH,
        &[("Content-Type", "application/json")],
        json.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let recs = a.wait_records(1, WAIT);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        a.records().len(),
        1,
        "one downstream request for two series"
    );
    let rec = &recs[0];
    assert_eq!(rec["series"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        series_labels(rec),
        labels_of(&[("__delta__", "false"), ("__name__", "test"), ("job", "foo")])
    );
    assert_eq!(rec["series"][1]["labels"][0][1], "app-1");
}

#[test]
fn tenant_rules() {
    let (gz, _) = push_fixture();
    let a = Sink::start(&[]);
    let b = Sink::start(&[]);
    let cfg = format!(
        "[forward]\nforward_tenant = false\n[[endpoint]]\nurl = \"{}\"\n[[endpoint]]\nurl = \"{}\"\ntenant_id = \"fixed\"\nbasic_auth = {{ username = \"u\", password = \"p\" }}\n",
        a.url(),
        b.url()
    );
    let path = common::write_temp("tenant.toml", &cfg);
    let gw = Gateway::start(&["--config", path.to_str().unwrap_or_default()]);
    let r = gw.request(
        "POST",
        PUSH,
        &[
            ("Content-Type", "application/proto"),
            ("Content-Encoding", "gzip"),
            ("X-Scope-OrgID", "caller"),
        ],
        &gz,
    );
    assert_eq!(r.status, 200);
    let ra = &a.wait_records(1, WAIT)[0];
    let rb = &b.wait_records(1, WAIT)[0];
    assert_eq!(
        ra["tenant"], "anonymous",
        "forward_tenant = false drops the caller's tenant"
    );
    assert_eq!(rb["tenant"], "fixed", "endpoint tenant_id wins");
    assert_eq!(header(rb, "authorization"), vec!["Basic dTpw"]);
    assert!(header(ra, "authorization").is_empty());
}
