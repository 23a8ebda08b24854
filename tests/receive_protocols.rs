//! The Pyroscope endpoints on the real binary, driven with agent-shaped traffic from the
//! test-data crate: Connect Push (proto, JSON, gzip, gRPC-Web) with its error cases, and
//! `/ingest` (the Node.js agent's request, multipart, chunked). No endpoint is configured, so an accepted profile
//! is answered 200 and discarded, as Alloy does with an empty `forward_to`; Push bodies are
//! still decoded, so a 200 proves they parsed.

mod common;

use base64::Engine as _;
use prost::Message as _;

use common::{Gateway, IO_TIMEOUT, Response, gzip, push_gzip, push_proto, td};
use pyrogate::protocol::proto::PushRequest;

const PUSH: &str = "/push.v1.PusherService/Push";

on_both_drivers!(
    push_connect_proto_gzip_as_sent,
    push_connect_proto_plain,
    push_connect_json,
    push_grpc_web,
    push_errors,
    push_decompressed_size_is_bounded,
    ingest_nodejs_request,
    ingest_multipart_and_chunked,
);

fn push(gw: &Gateway, headers: &[(&str, &str)], body: &[u8]) -> Response {
    gw.request("POST", PUSH, headers, body)
}

/// Asserts a Connect error: status, JSON content type and `code`; returns the message.
fn connect_error(r: &Response, status: u16, code: &str) -> String {
    assert_eq!(
        r.status,
        status,
        "{r:?} {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    let j = r.json();
    assert_eq!(j["code"], code, "{j}");
    j["message"].as_str().unwrap_or("").to_string()
}

/// A pyroscope-io request with the agent's exact request line and headers.
fn push_connect_proto_gzip_as_sent(driver: &str) {
    let gw = Gateway::on(driver, &[]);
    let sent = common::python_push();
    assert_eq!(sent.header("content-encoding"), Some("gzip"));
    assert!(sent.header("connect-protocol-version").is_none());
    let body = sent.body.clone();
    let req = sent.render(&gw.addr.to_string());
    let mut c = gw.connect();
    c.send(&req).unwrap();
    let r = c.read_response(IO_TIMEOUT).unwrap();
    assert_eq!(r.status, 200, "{r:?} {}", String::from_utf8_lossy(&r.body));
    r.assert_framing();
    assert!(r.body.is_empty(), "empty PushResponse");
    assert_eq!(r.header("content-type"), Some("application/proto"));
    let m = c.metrics();
    assert_eq!(
        m.value(
            "pyrogate_requests_total",
            &[("route", "push_v1_pusherservice"), ("status_code", "200")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "pyrogate_received_bytes_total",
            &[("route", "push_v1_pusherservice")]
        ),
        body.len() as f64
    );
}

fn push_connect_proto_plain(driver: &str) {
    let gw = Gateway::on(driver, &[]);
    let proto = push_proto();
    assert_eq!(
        proto[0], 0x0a,
        "a non-empty PushRequest starts with field 1"
    );
    for headers in [
        vec![("Content-Type", "application/proto")],
        vec![("Content-Type", "Application/Proto")],
        vec![
            ("Content-Type", "application/proto"),
            ("Connect-Protocol-Version", "1"),
            ("Connect-Timeout-Ms", "5000"),
            ("Content-Encoding", "identity"),
        ],
    ] {
        let r = push(&gw, &headers, &proto);
        assert_eq!(r.status, 200, "{headers:?}: {r:?}");
        assert!(r.body.is_empty());
    }
}

/// protojson built from the generated request: labels as sent, `rawProfile` base64, `ID`.
fn push_json_body() -> Vec<u8> {
    let req = PushRequest::decode(push_proto().as_slice()).expect("body decodes");
    assert_eq!(req.series.len(), 1);
    let s = &req.series[0];
    let sent = &common::python_push().series[0];
    assert_eq!(s.labels.len(), sent.labels.len());
    assert_eq!(
        s.samples[0].raw_profile[..],
        sent.samples[0].raw_profile[..]
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let json = serde_json::json!({
        "series": req.series.iter().map(|s| serde_json::json!({
            "labels": s.labels.iter()
                .map(|l| serde_json::json!({"name": l.name, "value": l.value}))
                .collect::<Vec<_>>(),
            "samples": s.samples.iter()
                .map(|x| serde_json::json!({"rawProfile": b64.encode(&x.raw_profile), "ID": x.id}))
                .collect::<Vec<_>>(),
        })).collect::<Vec<_>>()
    });
    serde_json::to_vec(&json).unwrap()
}

fn push_connect_json(driver: &str) {
    let gw = Gateway::on(driver, &[]);
    let body = push_json_body();
    for ct in ["application/json", "application/json; charset=utf-8"] {
        let r = push(&gw, &[("Content-Type", ct)], &body);
        assert_eq!(
            r.status,
            200,
            "{ct}: {r:?} {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.body_str(), "{}");
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    // gzip'd JSON.
    let r = push(
        &gw,
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        &gzip(&body),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "{}");
    // Bad JSON.
    let r = push(
        &gw,
        &[("Content-Type", "application/json")],
        b"{\"series\": [",
    );
    connect_error(&r, 400, "invalid_argument");
    let r = push(
        &gw,
        &[("Content-Type", "application/json")],
        br#"{"series":[{"samples":[{"rawProfile":"!!not base64!!"}]}]}"#,
    );
    connect_error(&r, 400, "invalid_argument");
}

fn grpc_web_frame(flag: u8, msg: &[u8]) -> Vec<u8> {
    let mut v = vec![flag];
    v.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    v.extend_from_slice(msg);
    v
}

fn push_grpc_web(driver: &str) {
    let gw = Gateway::on(driver, &[]);
    let proto = push_proto();
    let ok_body = b"\x00\x00\x00\x00\x00\x80\x00\x00\x00\x10grpc-status: 0\r\n";
    for ct in ["application/grpc-web", "application/grpc-web+proto"] {
        let r = push(&gw, &[("Content-Type", ct)], &grpc_web_frame(0, &proto));
        assert_eq!(r.status, 200, "{ct}: {r:?}");
        assert_eq!(r.header("content-type"), Some("application/grpc-web+proto"));
        assert_eq!(r.body, ok_body, "{ct}: message frame + trailers frame");
    }
    // Compressed message.
    let r = push(
        &gw,
        &[
            ("Content-Type", "application/grpc-web+proto"),
            ("Grpc-Encoding", "gzip"),
        ],
        &grpc_web_frame(1, &push_gzip()),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, ok_body);
    // JSON codec.
    let r = push(
        &gw,
        &[("Content-Type", "application/grpc-web+json")],
        &grpc_web_frame(0, &push_json_body()),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/grpc-web+json"));
    // Errors are trailers-only: HTTP 200, status in the headers.
    let cases: [(Vec<u8>, &str); 4] = [
        (grpc_web_frame(0, b"\xff\xff\xff"), "3"),
        (
            [grpc_web_frame(0, &proto), grpc_web_frame(0, &proto)].concat(),
            "12",
        ),
        (b"\x00\x00\x00".to_vec(), "3"),
        // Compressed flag without grpc-encoding.
        (grpc_web_frame(1, &push_gzip()), "13"),
    ];
    for (body, status) in cases {
        let r = push(
            &gw,
            &[("Content-Type", "application/grpc-web+proto")],
            &body,
        );
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("grpc-status"), Some(status), "{r:?}");
        assert!(r.header("grpc-message").is_some());
    }
    // Plain gRPC needs HTTP/2: refused clearly.
    let r = push(
        &gw,
        &[("Content-Type", "application/grpc")],
        &grpc_web_frame(0, &proto),
    );
    connect_error(&r, 501, "unimplemented");
}

fn push_errors(driver: &str) {
    // A limit between the gzip'd and the plain size of the same message.
    let (gz_len, plain_len) = (push_gzip().len(), push_proto().len());
    assert!(gz_len < plain_len, "{gz_len} {plain_len}");
    let limit = ((gz_len + plain_len) / 2).to_string();
    let gw = Gateway::on(driver, &["--max-request-body", &limit]);
    let proto_ct = ("Content-Type", "application/proto");
    // Undecodable protobuf.
    let r = push(&gw, &[proto_ct], b"\x0a\xff\xff\xff\xff\x0f");
    let msg = connect_error(&r, 400, "invalid_argument");
    assert!(msg.starts_with("unmarshal message"), "{msg}");
    // Corrupt gzip.
    let mut bad = push_gzip();
    let n = bad.len();
    bad[n / 2] ^= 0xff;
    let r = push(&gw, &[proto_ct, ("Content-Encoding", "gzip")], &bad);
    connect_error(&r, 400, "invalid_argument");
    // Unsupported content types: 415 with Accept-Post, before the body is read.
    for ct in [Some("application/x-protobuf"), Some("text/plain"), None] {
        let headers: Vec<(&str, &str)> = ct.map(|c| ("Content-Type", c)).into_iter().collect();
        let r = push(&gw, &headers, b"\x0a\x00");
        assert_eq!(r.status, 415, "{ct:?}: {r:?}");
        assert_eq!(
            r.header("accept-post"),
            Some("application/json, application/proto"),
            "{r:?}"
        );
    }
    // Unsupported encoding.
    let r = push(&gw, &[proto_ct, ("Content-Encoding", "br")], b"\x0a\x00");
    let msg = connect_error(&r, 501, "unimplemented");
    assert!(msg.contains("gzip"), "{msg}");
    // Bad Connect-Protocol-Version and Connect-Timeout-Ms.
    let r = push(&gw, &[proto_ct, ("Connect-Protocol-Version", "2")], b"");
    connect_error(&r, 400, "invalid_argument");
    let r = push(&gw, &[proto_ct, ("Connect-Timeout-Ms", "soon")], b"");
    connect_error(&r, 400, "invalid_argument");
    let r = push(&gw, &[proto_ct, ("Connect-Timeout-Ms", "12345678901")], b"");
    connect_error(&r, 400, "invalid_argument");
    // Body over max_request_body (the plain message is over the limit).
    let r = push(&gw, &[proto_ct], &push_proto());
    connect_error(&r, 413, "resource_exhausted");
    assert!(r.closes());
    // Under the limit after all (the gzip'd form is smaller).
    let r = push(&gw, &[proto_ct, ("Content-Encoding", "gzip")], &push_gzip());
    assert_eq!(r.status, 200, "{r:?}");
    // The errors were counted per route and status.
    let m = gw.metrics();
    let count = |status: &str| {
        m.get(
            "pyrogate_requests_total",
            &[("route", "push_v1_pusherservice"), ("status_code", status)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(count("415"), 3.0);
    assert_eq!(count("501"), 1.0);
    assert!(count("400") >= 5.0);
}

/// The inflated size of a gzip'd Push is bounded by `server.max_decompressed_body`.
fn push_decompressed_size_is_bounded(driver: &str) {
    // One byte less than the inflated message.
    let limit = push_proto().len() - 1;
    let cfg = common::write_temp(
        "decompressed.toml",
        &format!("[server]\nmax_decompressed_body = \"{limit}\"\n"),
    );
    let gw = Gateway::on(driver, &["-c", cfg.to_str().unwrap()]);
    let r = push(
        &gw,
        &[
            ("Content-Type", "application/proto"),
            ("Content-Encoding", "gzip"),
        ],
        &push_gzip(),
    );
    let msg = connect_error(&r, 429, "resource_exhausted");
    assert!(msg.contains(&limit.to_string()), "{msg}");
    // A gzip bomb (64 MiB of zeros in ~64 KiB) is refused the same way, quickly.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    let t = std::time::Instant::now();
    let r = push(
        &gw,
        &[
            ("Content-Type", "application/proto"),
            ("Content-Encoding", "gzip"),
        ],
        &bomb,
    );
    connect_error(&r, 429, "resource_exhausted");
    assert!(t.elapsed() < std::time::Duration::from_secs(2));
    let _ = std::fs::remove_file(cfg);
}

fn ingest_nodejs_request(driver: &str) {
    let gw = Gateway::on(driver, &[]);
    let sent = td::sdk::node_ingest(1, td::corpus::FIXED_NOW_S, td::pprof::Kind::Wall);
    assert!(
        sent.target
            .starts_with("/ingest?format=pprof&from=1795312290&name=feas.node.app%7B")
    );
    assert_eq!(sent.header("connection"), Some("keep-alive"));
    let body = sent.body.clone();
    let req = sent.render(&gw.addr.to_string());
    let mut c = gw.connect();
    // Twice on one connection: the agent sends `connection: keep-alive`.
    for _ in 0..2 {
        c.send(&req).unwrap();
        let r = c.read_response(IO_TIMEOUT).unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        r.assert_framing();
        assert!(r.body.is_empty());
        assert!(!r.closes());
    }
    let m = c.metrics();
    assert_eq!(
        m.value("pyrogate_received_bytes_total", &[("route", "ingest")]),
        2.0 * body.len() as f64
    );
    // The alias path and an unparsable name are accepted the same way (Alloy continues
    // with empty labels).
    for path in [
        "/pyroscope/ingest?name=app.cpu",
        "/ingest?name=app%7Bflag,a=1%7D",
    ] {
        let r = c.request("POST", path, &[], &body).unwrap();
        assert_eq!(r.status, 200, "{path}: {r:?}");
    }
}

fn ingest_multipart_and_chunked(driver: &str) {
    let gw = Gateway::on(driver, &[]);
    // Go SDK style multipart: `profile` + `sample_type_config` file parts.
    let boundary = "------------------------b7c1a3d2e4f5";
    let mut body = Vec::new();
    for (name, file, data) in [
        (
            "profile",
            "profile.pprof",
            td::pprof::Spec::new(2, td::pprof::Kind::Goroutine).gzip(),
        ),
        (
            "sample_type_config",
            "sample_type_config.json",
            td::formats::sample_type_config(td::pprof::Kind::Goroutine)
                .as_bytes()
                .to_vec(),
        ),
    ] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let ct = format!("multipart/form-data; boundary={boundary}");
    let path = "/ingest?name=my.app%7Benv%3Dprod%7D&from=1700000000&until=1700000010&spyName=gospy&sampleRate=100";
    let r = gw.request("POST", path, &[("Content-Type", &ct)], &body);
    assert_eq!(r.status, 200, "{r:?}");
    // The same multipart body chunked (OkHttp of the Java agent does this), with a JFR part.
    let jfr = td::formats::java_gzip(&td::formats::jfr(300_000, 1));
    let r = gw.request(
        "POST",
        "/ingest?name=java.app&format=jfr",
        &[("Content-Type", &ct), ("Transfer-Encoding", "chunked")],
        &common::chunked(&body, 333, &[]),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let r = gw.request(
        "POST",
        "/ingest?name=java.app&format=jfr",
        &[("Transfer-Encoding", "chunked")],
        &common::chunked(&jfr, 8192, &[]),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let m = gw.metrics();
    assert_eq!(
        m.value("pyrogate_received_bytes_total", &[("route", "ingest")]),
        (2 * body.len() + jfr.len()) as f64,
        "chunked bodies are counted decoded"
    );
}
