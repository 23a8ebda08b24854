//! The sink's protocol handling, against the real binary on 127.0.0.1: Push (proto, JSON,
//! gzip, gRPC-Web), `/ingest` (Node pprof, Go multipart, Java JFR chunked, folded),
//! Pyroscope's status codes for malformed input, and the `/stats` records and checksums.

mod common;

use bytes::Bytes;
use common::{Sink, post, post_chunked, records};
use prost::Message as _;
use pyrogate::protocol::gzip::inflate_bounded;
use pyrogate::protocol::proto::PushRequest;
use pyrogate_load::fnv::{fnv1a64, fnv1a64_hex};
use pyrogate_testdata::formats::{self, Part as NewPart, Style};
use pyrogate_testdata::pprof::{Kind, Spec};
use pyrogate_testdata::{gz, push, sdk};

const PUSH: &str = "/push.v1.PusherService/Push";

/// A pyroscope-io style Push (generated).
fn python() -> sdk::Request {
    sdk::python_push(1)
}

fn push_fixture() -> Vec<u8> {
    python().body
}

fn push_fixture_decoded() -> PushRequest {
    let raw = inflate_bounded(&push_fixture(), 1 << 20).expect("body inflates");
    PushRequest::decode(raw).expect("body decodes")
}

/// A request shaped like @pyroscope/nodejs 0.6.4's.
fn node() -> sdk::Request {
    sdk::node_ingest(1, 1_795_312_305, Kind::Wall)
}

fn node_request() -> Vec<u8> {
    node().render("127.0.0.1:4040")
}

#[test]
fn push_proto_gzip_is_accepted_and_recorded() {
    let sink = Sink::start(&[]);
    let body = push_fixture();
    let mut c = sink.connect();
    let r = c.request(&post(
        PUSH,
        &[
            ("user-agent", "pyroscope-rs/pyspy/1.4.0 reqwest"),
            ("content-type", "application/proto"),
            ("content-encoding", "gzip"),
            ("accept", "*/*"),
            ("X-Scope-OrgID", "tenant-a"),
            ("X-Custom", "kept"),
            ("Authorization", "Bearer secret"),
        ],
        &body,
    ));
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/proto")
    );

    let stats = sink.stats(true);
    let push = &stats["routes"]["push"];
    assert_eq!(push["requests"], 1);
    assert_eq!(push["accepted"], 1);
    assert_eq!(push["profiles"], 1);
    assert_eq!(push["bytes"], body.len());
    assert_eq!(push["checksum_sum"], fnv1a64_hex(&body));
    assert_eq!(stats["tenants"]["tenant-a"]["push"]["accepted"], 1);
    assert_eq!(stats["status"]["200"], 1);

    let rec = &records(&stats)[0];
    assert_eq!(rec["route"], "push");
    assert_eq!(rec["method"], "POST");
    assert_eq!(rec["target"], PUSH);
    assert_eq!(rec["tenant"], "tenant-a");
    assert_eq!(rec["status"], 200);
    assert_eq!(rec["protocol"], "connect");
    assert_eq!(rec["codec"], "proto");
    assert_eq!(rec["framing"], "length");
    assert_eq!(rec["body_len"], body.len());
    assert_eq!(rec["body_fnv"], fnv1a64_hex(&body));
    let headers: Vec<(String, String)> =
        serde_json::from_value(rec["headers"].clone()).expect("pairs");
    for want in [
        ("user-agent", "pyroscope-rs/pyspy/1.4.0 reqwest"),
        ("content-type", "application/proto"),
        ("content-encoding", "gzip"),
        ("x-scope-orgid", "tenant-a"),
        ("x-custom", "kept"),
        ("authorization", "Bearer secret"),
    ] {
        assert!(
            headers.contains(&(want.0.into(), want.1.into())),
            "{want:?} in {headers:?}"
        );
    }
    assert!(!headers.iter().any(|(k, _)| k == "accept"), "{headers:?}");
    // Labels in wire order, sample ID and raw_profile checksum.
    let decoded = push_fixture_decoded();
    let series = &rec["series"][0];
    let labels: Vec<(String, String)> =
        serde_json::from_value(series["labels"].clone()).expect("labels");
    let want: Vec<(String, String)> = decoded.series[0]
        .labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect();
    assert_eq!(labels, want);
    assert_eq!(labels[0], ("__name__".into(), "process_cpu".into()));
    let sample = &series["samples"][0];
    let want = &python().series[0].samples[0];
    assert_eq!(sample["id"], want.id.as_str());
    assert_eq!(sample["raw_len"], want.raw_profile.len());
    assert_eq!(
        sample["raw_fnv"],
        fnv1a64_hex(&decoded.series[0].samples[0].raw_profile)
    );
    assert_eq!(sample["raw_gzip"], false);
}

#[test]
fn push_json_identity_and_grpc_web_are_accepted() {
    let sink = Sink::start(&[]);
    let mut c = sink.connect();
    let req = push_fixture_decoded();
    let json = push::json(&python().series);
    let r = c.request(&post(PUSH, &[("Content-Type", "application/json")], &json));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"{}");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    // JSON gzip'd, with charset.
    let gz = gz::gzip(&json);
    let r = c.request(&post(
        PUSH,
        &[
            ("Content-Type", "application/json; charset=utf-8"),
            ("Content-Encoding", "gzip"),
        ],
        &gz,
    ));
    assert_eq!(r.status, 200);
    // Proto without compression, with the Connect headers.
    let plain = req.encode_to_vec();
    let r = c.request(&post(
        PUSH,
        &[
            ("Content-Type", "application/proto"),
            ("Connect-Protocol-Version", "1"),
            ("Connect-Timeout-Ms", "5000"),
        ],
        &plain,
    ));
    assert_eq!(r.status, 200);
    // gRPC-Web: one framed message, trailers in the body.
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(plain.len() as u32).to_be_bytes());
    framed.extend_from_slice(&plain);
    let r = c.request(&post(
        PUSH,
        &[("Content-Type", "application/grpc-web+proto")],
        &framed,
    ));
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..6], &[0, 0, 0, 0, 0, 0x80]);
    assert!(String::from_utf8_lossy(&r.body).contains("grpc-status: 0"));

    let stats = sink.stats(true);
    assert_eq!(stats["routes"]["push"]["accepted"], 4);
    assert_eq!(stats["routes"]["push"]["profiles"], 4);
    let recs = records(&stats);
    let codecs: Vec<&str> = recs.iter().filter_map(|r| r["codec"].as_str()).collect();
    assert_eq!(codecs, ["json", "json", "proto", "proto"]);
    assert_eq!(recs[3]["protocol"], "grpc-web");
    // Every record carries the same sample ID and raw profile checksum.
    for r in &recs {
        assert_eq!(
            r["series"][0]["samples"][0]["id"],
            python().series[0].samples[0].id.as_str()
        );
    }
    assert_eq!(recs[1]["body_fnv"], fnv1a64_hex(&gz));
}

#[test]
fn push_errors_use_connect_codes() {
    let sink = Sink::start(&[]);
    let mut c = sink.connect();
    // Content type refused before the body: 415 + Accept-Post.
    let r = c.request(&post(
        PUSH,
        &[("Content-Type", "application/x-protobuf")],
        b"x",
    ));
    assert_eq!(r.status, 415);
    assert_eq!(
        r.header("accept-post").as_deref(),
        Some("application/json, application/proto")
    );
    // Unsupported compression: unimplemented.
    let r = c.request(&post(
        PUSH,
        &[
            ("Content-Type", "application/proto"),
            ("Content-Encoding", "br"),
        ],
        b"x",
    ));
    assert_eq!(r.status, 501);
    assert_eq!(r.json()["code"], "unimplemented");
    // Announced gzip that is not gzip: invalid_argument.
    let r = c.request(&post(
        PUSH,
        &[
            ("Content-Type", "application/proto"),
            ("Content-Encoding", "gzip"),
        ],
        b"this is not a gzip stream at all",
    ));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "invalid_argument");
    // Undecodable protobuf.
    let r = c.request(&post(
        PUSH,
        &[("Content-Type", "application/proto")],
        b"\x0a\xff\xff",
    ));
    assert_eq!(r.status, 400);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("unmarshal message")
    );
    // Empty request: no profiles.
    let r = c.request(&post(PUSH, &[("Content-Type", "application/proto")], b""));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "no profiles received");
    // A raw_profile that is not pprof: Pyroscope's plain error → unknown / 500.
    let mut bad = push_fixture_decoded();
    bad.series[0].samples[0].raw_profile = Bytes::from_static(b"\x1f\x8b\x08 definitely not gzip");
    let r = c.request(&post(
        PUSH,
        &[("Content-Type", "application/proto")],
        &bad.encode_to_vec(),
    ));
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["code"], "unknown");
    // Bad Connect-Protocol-Version.
    let r = c.request(&post(
        PUSH,
        &[
            ("Content-Type", "application/proto"),
            ("Connect-Protocol-Version", "2"),
        ],
        b"",
    ));
    assert_eq!(r.status, 400);
    // Wrong method, unknown method name, unknown path.
    let r = c.request(b"GET /push.v1.PusherService/Push HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 405);
    let r = c.request(&post(
        "/push.v1.PusherService/Nope",
        &[("Content-Type", "application/proto")],
        b"",
    ));
    assert_eq!(r.status, 404);
    let r = c.request(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 404);

    let stats = sink.stats(true);
    let push = &stats["routes"]["push"];
    assert_eq!(push["requests"], 8);
    assert_eq!(push["accepted"], 0);
    assert_eq!(push["rejected"], 8);
    assert_eq!(stats["status"]["400"], 4);
    assert_eq!(stats["status"]["415"], 1);
    let recs = records(&stats);
    assert_eq!(recs.len(), 8);
    // Refused from the head: the body was never read.
    assert!(recs[0]["body_len"].is_null());
    assert_eq!(recs[1]["error"]["code"], "unimplemented");
    assert_eq!(recs[5]["error"]["code"], "unknown");
}

#[test]
fn ingest_node_request_is_accepted_and_recorded() {
    let sink = Sink::start(&[]);
    let mut c = sink.connect();
    let r = c.request(&node_request());
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let stats = sink.stats(true);
    let body = node().body;
    assert_eq!(stats["routes"]["ingest"]["accepted"], 1);
    assert_eq!(stats["routes"]["ingest"]["bytes"], body.len());
    assert_eq!(
        stats["routes"]["ingest"]["checksum_sum"],
        fnv1a64_hex(&body)
    );
    assert_eq!(stats["tenants"]["anonymous"]["ingest"]["profiles"], 1);
    let rec = &records(&stats)[0];
    assert_eq!(rec["route"], "ingest");
    assert_eq!(rec["format"], "pprof");
    assert_eq!(rec["tenant"], "anonymous");
    assert!(
        rec["target"]
            .as_str()
            .unwrap_or("")
            .starts_with("/ingest?format=pprof&from=1795312290&name=feas.node.app%7Botel")
    );
    assert_eq!(rec["name"]["__name__"], "feas.node.app");
    assert_eq!(rec["name"]["region"], "local");
    assert_eq!(rec["name"]["process.runtime.name"], "nodejs");
    assert_eq!(rec["body_fnv"], fnv1a64_hex(&body));
    let headers: Vec<(String, String)> =
        serde_json::from_value(rec["headers"].clone()).expect("pairs");
    assert_eq!(
        headers,
        [
            (
                "content-type".to_owned(),
                "application/octet-stream".to_owned()
            ),
            ("user-agent".to_owned(), "node".to_owned())
        ]
    );
}

#[test]
fn ingest_go_multipart_is_accepted() {
    let sink = Sink::start(&[]);
    let profile = Spec::new(2, Kind::Goroutine).gzip();
    let config = formats::sample_type_config(Kind::Goroutine)
        .as_bytes()
        .to_vec();
    let body = formats::multipart(
        "4e2b8c0d5f3a",
        &[
            NewPart {
                name: "profile",
                filename: Some("profile.pprof"),
                content_type: Some("application/octet-stream"),
                data: &profile,
            },
            NewPart {
                name: "sample_type_config",
                filename: Some("sample_type_config.json"),
                content_type: Some("application/octet-stream"),
                data: &config,
            },
        ],
        Style::Go,
    );
    let path = "/ingest?aggregationType=average&from=1795312290000000000&name=app.go%7Benv%3Dprod%7D\
                &sampleRate=0&spyName=gospy&units=goroutines&until=1795312300000000000";
    let mut c = sink.connect();
    let r = c.request(&post(
        path,
        &[
            ("User-Agent", "Go-http-client/1.1"),
            ("Content-Type", "multipart/form-data; boundary=4e2b8c0d5f3a"),
            ("X-Scope-Orgid", "go-tenant"),
        ],
        &body,
    ));
    assert_eq!(r.status, 200);
    let stats = sink.stats(true);
    assert_eq!(stats["tenants"]["go-tenant"]["ingest"]["profiles"], 1);
    let rec = &records(&stats)[0];
    assert_eq!(rec["format"], "pprof-multipart");
    assert_eq!(rec["tenant"], "go-tenant");
    assert_eq!(rec["name"]["env"], "prod");
    let parts = rec["parts"].as_array().expect("parts");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["name"], "profile");
    assert_eq!(parts[0]["filename"], "profile.pprof");
    assert_eq!(parts[0]["len"], profile.len());
    assert_eq!(parts[0]["fnv"], fnv1a64_hex(&profile));
    assert_eq!(parts[1]["name"], "sample_type_config");
    assert_eq!(parts[1]["fnv"], fnv1a64_hex(&config));
}

#[test]
fn ingest_java_jfr_multipart_chunked_is_accepted() {
    let sink = Sink::start(&[]);
    let jfr = formats::java_gzip(&formats::jfr(200_000, 1));
    let labels = formats::java_gzip(&formats::labels_snapshot(4, 1));
    let boundary = "6f1c3a52-9d0e-4b7a-8c1f-2e3d4c5b6a79";
    let body = formats::multipart(
        boundary,
        &[
            NewPart {
                name: "jfr",
                filename: Some("jfr"),
                content_type: None,
                data: &jfr,
            },
            NewPart {
                name: "labels",
                filename: Some("labels"),
                content_type: Some("application/x-protobuf"),
                data: &labels,
            },
        ],
        Style::OkHttp,
    );
    let ct = formats::multipart_content_type(boundary);
    let path = "/ingest?name=app.java.cpu%7Benv%3Dprod%7D&units=samples&aggregationType=sum\
                &from=1795312290&until=1795312300&spyName=javaspy&sampleRate=100&format=jfr";
    let mut c = sink.connect();
    let r = c.request(&post_chunked(
        path,
        &[("Content-Type", &ct), ("User-Agent", "okhttp/4.12.0")],
        &body,
        8192,
    ));
    assert_eq!(r.status, 200);
    // The same body sized, on the same connection (keep-alive after a chunked request).
    let r = c.request(&post(path, &[("Content-Type", &ct)], &body));
    assert_eq!(r.status, 200);
    let stats = sink.stats(true);
    assert_eq!(stats["routes"]["ingest"]["accepted"], 2);
    let sum = fnv1a64(&body).wrapping_add(fnv1a64(&body));
    assert_eq!(
        stats["routes"]["ingest"]["checksum_sum"],
        pyrogate_load::fnv::hex(sum)
    );
    let recs = records(&stats);
    assert_eq!(recs[0]["framing"], "chunked");
    assert_eq!(recs[1]["framing"], "length");
    assert_eq!(recs[0]["format"], "jfr-multipart");
    assert_eq!(recs[0]["body_len"], body.len());
    assert_eq!(recs[0]["body_fnv"], fnv1a64_hex(&body));
    assert_eq!(recs[0]["parts"][0]["name"], "jfr");
    assert_eq!(recs[0]["parts"][0]["fnv"], fnv1a64_hex(&jfr));
    assert_eq!(
        recs[0]["parts"][1]["content_type"],
        "application/x-protobuf"
    );
}

#[test]
fn ingest_malformed_bodies_get_pyroscopes_statuses() {
    let sink = Sink::start(&[]);
    let mut c = sink.connect();
    let pprof = Spec::new(1, Kind::Cpu).gzip();
    let oct = [("Content-Type", "application/octet-stream")];
    // `name` missing or invalid: 400 invalid_argument with Go's json.Encoder newline.
    let r = c.request(&post("/ingest?format=pprof", &oct, &pprof));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        b"{\"code\":\"invalid_argument\",\"message\":\"name: service name is required\"}\n"
    );
    assert_eq!(
        r.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    let r = c.request(&post(
        "/ingest?format=pprof&name=app%7Ba-b%3D1%7D",
        &oct,
        &pprof,
    ));
    assert_eq!(r.status, 400);
    // Undecodable pprof (gzip, then protobuf), too short: 422 unknown.
    for bad in [
        &b"\x1f\x8b\x08 not really gzip data here"[..],
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        b"tiny",
    ] {
        let r = c.request(&post("/ingest?format=pprof&name=app", &oct, bad));
        assert_eq!(r.status, 422, "{bad:?}");
        assert_eq!(r.json()["code"], "unknown");
    }
    // Multipart without boundary, truncated multipart, JFR without the jfr part.
    let r = c.request(&post(
        "/ingest?name=app",
        &[("Content-Type", "multipart/form-data")],
        b"--x--\r\n",
    ));
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["message"],
        "malformed multipart content type header"
    );
    let body = formats::multipart(
        "b",
        &[NewPart {
            name: "profile",
            filename: Some("p"),
            content_type: None,
            data: &pprof,
        }],
        Style::Go,
    );
    let r = c.request(&post(
        "/ingest?name=app",
        &[("Content-Type", "multipart/form-data; boundary=b")],
        &body[..body.len() - 10],
    ));
    assert_eq!(r.status, 422);
    let labels_only = formats::multipart(
        "b",
        &[NewPart {
            name: "labels",
            filename: Some("labels"),
            content_type: None,
            data: b"x",
        }],
        Style::OkHttp,
    );
    let r = c.request(&post(
        "/ingest?name=app.cpu&format=jfr",
        &[("Content-Type", "multipart/form-data; boundary=b")],
        &labels_only,
    ));
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["message"], "jfr field is required");
    // Folded: fine, bad count, unknown profile type.
    let r = c.request(&post(
        "/ingest?name=app.cpu&format=folded",
        &[],
        b"main;work 10\nmain;idle 5\n",
    ));
    assert_eq!(r.status, 200);
    let r = c.request(&post("/ingest?name=app.cpu", &[], b"main;work ten\n"));
    assert_eq!(r.status, 422);
    let r = c.request(&post("/ingest?name=my.app", &[], b"main;work 10\n"));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "unknown profile type: app");
    // Wrong method.
    let r = c.request(b"GET /ingest HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 405);

    let stats = sink.stats(true);
    let ingest = &stats["routes"]["ingest"];
    assert_eq!(ingest["requests"], 12);
    assert_eq!(ingest["accepted"], 1);
    assert_eq!(ingest["profiles"], 1);
    assert_eq!(stats["status"]["422"], 7);
    let recs = records(&stats);
    assert!(recs[0]["name"].is_null());
    assert_eq!(recs[0]["error"]["code"], "invalid_argument");
}

#[test]
fn oversized_body_is_refused_by_the_loop_in_the_routes_dialect() {
    let sink = Sink::start(&["--max-body", "1KiB"]);
    let mut c = sink.connect();
    let big = vec![0u8; 4096];
    let r = c.request(&post(PUSH, &[("Content-Type", "application/proto")], &big));
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["code"], "resource_exhausted");
    let mut c = sink.connect();
    let r = c.request(&post("/ingest?name=app", &[], &big));
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["code"], "invalid_argument");
    let stats = sink.stats(false);
    assert_eq!(stats["loop_rejections"]["body_too_large"], 2);
    assert_eq!(stats["status"]["413"], 2);
    assert_eq!(stats["routes"]["push"]["rejected"], 1);
}

#[test]
fn stats_reset_and_bounded_records() {
    // The epoll driver here; the other tests use the default (io_uring where available).
    let sink = Sink::start(&["--records", "3", "--workers", "2", "--driver", "legacy"]);
    let body = push_fixture();
    for i in 0..5 {
        let mut c = sink.connect();
        let tenant = format!("t{}", i % 2);
        let r = c.request(&post(
            PUSH,
            &[
                ("Content-Type", "application/proto"),
                ("Content-Encoding", "gzip"),
                ("X-Scope-OrgID", &tenant),
            ],
            &body,
        ));
        assert_eq!(r.status, 200);
    }
    let stats = sink.stats(true);
    assert_eq!(stats["records_total"], 5);
    assert_eq!(stats["records_kept"], 3);
    assert_eq!(stats["records_evicted"], 2);
    assert_eq!(records(&stats).len(), 3);
    assert_eq!(stats["tenants"]["t0"]["push"]["accepted"], 3);
    assert_eq!(stats["tenants"]["t1"]["push"]["accepted"], 2);
    let sum = (0..5).fold(0u64, |a, _| a.wrapping_add(fnv1a64(&body)));
    assert_eq!(
        stats["totals"]["checksum_sum"],
        pyrogate_load::fnv::hex(sum)
    );
    sink.reset_stats();
    let stats = sink.stats(true);
    assert_eq!(stats["totals"]["requests"], 0);
    assert_eq!(stats["records_kept"], 0);
    assert!(stats["tenants"].as_object().is_some_and(|t| t.is_empty()));
    // Health endpoints.
    let r = sink
        .connect()
        .request(b"GET /-/ready HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
}

#[test]
fn checks_none_accepts_unread_for_benchmarks() {
    let sink = Sink::start(&["--checks", "none"]);
    let mut c = sink.connect();
    let r = c.request(&post(
        PUSH,
        &[("Content-Type", "application/proto")],
        b"not a push request",
    ));
    assert_eq!(r.status, 200);
    let r = c.request(&post("/ingest?format=pprof&name=app", &[], b"not pprof"));
    assert_eq!(r.status, 200);
    // Head-level refusals still apply.
    let r = c.request(&post(PUSH, &[("Content-Type", "text/plain")], b"x"));
    assert_eq!(r.status, 415);
    let stats = sink.stats(true);
    assert_eq!(stats["checks"], "none");
    assert_eq!(stats["totals"]["accepted"], 2);
    assert_eq!(stats["totals"]["profiles"], 2);
    assert_eq!(
        records(&stats)[0]["body_fnv"],
        fnv1a64_hex(b"not a push request")
    );
    assert_eq!(Sink::start(&[]).stats(false)["checks"], "full");
}
