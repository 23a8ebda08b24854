//! Inbound HTTP/1.1 on the real binary: framing, keep-alive, pipelining, HTTP/1.0,
//! chunked bodies, `Expect: 100-continue`, routing (404/405) and the health endpoints.

mod common;

use std::time::{Duration, Instant};

use common::{Conn, Gateway, IO_TIMEOUT, build_request, chunked, push_gzip};

const PUSH: &str = "/push.v1.PusherService/Push";

on_both_drivers!(
    health_endpoints_and_framing,
    unknown_path_is_404_and_wrong_method_is_405,
    keep_alive_reuses_one_connection,
    pipelined_requests_are_answered_in_order,
    http10_closes_unless_keep_alive,
    connection_close_is_honoured,
    chunked_bodies_split_at_awkward_boundaries,
    chunked_body_with_extensions_and_trailers,
    malformed_requests_are_refused,
    expect_continue_large_upload_is_fast,
    large_bodies_arrive_intact,
    expect_continue_refused_without_100,
    half_closed_client_still_gets_its_response,
    max_connection_age_closes_old_connections,
    metrics_exposition,
);

fn health_endpoints_and_framing(driver: &str) {
    let gw = Gateway::on(driver, &[]);
    for (path, body) in [
        ("/-/ready", "ready\n"),
        ("/ready", "ready\n"),
        ("/-/healthy", "healthy\n"),
    ] {
        let r = gw.request("GET", path, &[], b"");
        assert_eq!(r.status, 200, "{path}: {r:?}");
        r.assert_framing();
        assert_eq!(r.body_str(), body, "{path}");
        assert!(!r.closes(), "{path} should keep the connection: {r:?}");
    }
    // HEAD: same head, no body; the next pipelined response must still parse.
    let mut c = gw.connect();
    let mut req = build_request("HEAD", "/-/healthy", &[], b"");
    req.extend(build_request("GET", "/-/healthy", &[], b""));
    c.send(&req).unwrap();
    let h = c.read_head_response(IO_TIMEOUT).unwrap();
    assert_eq!(h.status, 200);
    assert_eq!(h.header("content-length"), Some("8"), "{h:?}");
    let g = c.read_response(IO_TIMEOUT).unwrap();
    assert_eq!(g.status, 200);
    assert_eq!(g.body_str(), "healthy\n");
    // Date is an IMF-fixdate.
    let date = g.header("date").unwrap();
    assert!(
        date.ends_with(" GMT") && date.len() == 29,
        "Date {date:?} is not an IMF-fixdate"
    );
}

fn unknown_path_is_404_and_wrong_method_is_405(driver: &str) {
    let gw = Gateway::on(driver, &[]);
    let mut c = gw.connect();
    for path in [
        "/",
        "/invalid",
        "/ingest/",
        "/push.v1.PusherService/Nope",
        "/metricsx",
    ] {
        let r = c.request("POST", path, &[], b"x").unwrap();
        assert_eq!(r.status, 404, "{path}: {r:?}");
        r.assert_framing();
        assert!(
            !r.closes(),
            "a 404 with a buffered body keeps the connection"
        );
    }
    let r = c.get("/invalid").unwrap();
    assert_eq!(r.body_str(), "404 page not found\n");
    // Alloy (gorilla mux): 405 with an empty body.
    for (method, path) in [
        ("GET", "/ingest"),
        ("PUT", "/ingest"),
        ("GET", PUSH),
        ("DELETE", PUSH),
        ("POST", "/metrics"),
        ("POST", "/-/ready"),
        ("PUT", "/-/healthy"),
    ] {
        let r = c.request(method, path, &[], b"").unwrap();
        assert_eq!(r.status, 405, "{method} {path}: {r:?}");
        r.assert_framing();
        assert!(r.body.is_empty(), "{method} {path}: 405 body must be empty");
    }
    // A 405 whose body is already buffered is skipped: the connection stays usable.
    let r = c.request("PUT", "/ingest", &[], b"hello").unwrap();
    assert_eq!(r.status, 405);
    assert!(!r.closes(), "{r:?}");
    assert_eq!(c.get("/-/healthy").unwrap().status, 200);
}

fn keep_alive_reuses_one_connection(driver: &str) {
    let gw = Gateway::on(driver, &[]);
    let mut c = gw.connect();
    let before = c.metrics();
    let accepted = before.sum("pyrogate_connections_accepted_total");
    for i in 0..50 {
        let r = c
            .request(
                "POST",
                "/ingest?name=app",
                &[],
                format!("body {i}").as_bytes(),
            )
            .unwrap();
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        assert!(!r.closes());
    }
    let after = c.metrics();
    assert_eq!(
        after.sum("pyrogate_connections_accepted_total"),
        accepted,
        "all requests must have used the one connection"
    );
    let ingest_200 = |m: &common::Metrics| {
        m.get(
            "pyrogate_requests_total",
            &[("route", "ingest"), ("status_code", "200")],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(ingest_200(&after) - ingest_200(&before), 50.0);
}

fn pipelined_requests_are_answered_in_order(driver: &str) {
    let gw = Gateway::on(driver, &[]);
    let mut c = gw.connect();
    let push = push_gzip();
    let mut all = Vec::new();
    all.extend(build_request("GET", "/-/healthy", &[], b""));
    all.extend(build_request("HEAD", "/-/ready", &[], b""));
    all.extend(build_request(
        "POST",
        PUSH,
        &[
            ("Content-Type", "application/proto"),
            ("Content-Encoding", "gzip"),
        ],
        &push,
    ));
    all.extend(build_request("PUT", "/ingest", &[], b"hello"));
    all.extend(build_request("GET", "/nope", &[], b""));
    all.extend(build_request(
        "POST",
        "/ingest?name=app",
        &[("Transfer-Encoding", "chunked")],
        &chunked(b"some profile bytes", 5, &[]),
    ));
    all.extend(build_request(
        "POST",
        PUSH,
        &[("Content-Type", "application/proto")],
        b"\xff\xff\xff\xff",
    ));
    all.extend(build_request("GET", "/-/ready", &[], b""));
    // One write: every request arrives in the same segment(s).
    c.send(&all).unwrap();
    let expect: [(u16, bool); 8] = [
        (200, false),
        (200, true),
        (200, false),
        (405, false),
        (404, false),
        (200, false),
        (400, false),
        (200, false),
    ];
    for (i, (status, head)) in expect.iter().enumerate() {
        let r = if *head {
            c.read_head_response(IO_TIMEOUT)
        } else {
            c.read_response(IO_TIMEOUT)
        }
        .unwrap_or_else(|e| panic!("response {i}: {e}"));
        assert_eq!(r.status, *status, "response {i}: {r:?}");
        assert!(!r.closes(), "response {i} closed: {r:?}");
    }
    assert_eq!(c.get("/-/ready").unwrap().body_str(), "ready\n");
    assert!(
        c.buffered().is_empty(),
        "no stray bytes after the responses"
    );
}

fn http10_closes_unless_keep_alive(driver: &str) {
    let gw = Gateway::on(driver, &[]);
    let mut c = gw.connect();
    c.send(b"GET /-/healthy HTTP/1.0\r\n\r\n").unwrap();
    let r = c.read_response(IO_TIMEOUT).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.closes(), "HTTP/1.0 without keep-alive: {r:?}");
    assert!(
        c.wait_closed(IO_TIMEOUT),
        "server must close after an HTTP/1.0 response"
    );

    // HTTP/1.0 keep-alive: the response must say so, or a 1.0 client assumes close.
    let mut c = gw.connect();
    for _ in 0..3 {
        c.send(b"POST /ingest HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc")
            .unwrap();
        let r = c.read_response(IO_TIMEOUT).unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        assert!(!r.closes(), "{r:?}");
        assert!(
            r.header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")),
            "HTTP/1.0 keep-alive response must carry Connection: keep-alive: {r:?}"
        );
    }
}

fn connection_close_is_honoured(driver: &str) {
    let gw = Gateway::on(driver, &[]);
    let mut c = gw.connect();
    let r = c
        .request("GET", "/-/healthy", &[("Connection", "close")], b"")
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.closes(), "{r:?}");
    assert!(c.wait_closed(IO_TIMEOUT));
    // A request pipelined after the closing one is not answered.
    let mut c = gw.connect();
    let mut req = build_request("GET", "/-/healthy", &[("Connection", "close")], b"");
    req.extend(build_request("GET", "/-/ready", &[], b""));
    c.send(&req).unwrap();
    assert_eq!(c.read_response(IO_TIMEOUT).unwrap().status, 200);
    assert!(c.wait_closed(IO_TIMEOUT));
    assert!(
        c.buffered().is_empty(),
        "second request must not be answered"
    );
}

/// The gzip'd Push body sent chunked: a 200 proves the body was reassembled byte-exactly
/// (the gzip CRC and the protobuf both check it), whatever the read boundaries.
fn chunked_bodies_split_at_awkward_boundaries(driver: &str) {
    let gw = Gateway::on(driver, &[]);
    let body = push_gzip();
    let head = "POST /push.v1.PusherService/Push HTTP/1.1\r\nHost: x\r\n\
                Content-Type: application/proto\r\nContent-Encoding: gzip\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    for chunk in [1usize, 7, 100, body.len()] {
        let enc = chunked(&body, chunk, &["X-Checksum: none"]);
        let mut req = head.as_bytes().to_vec();
        req.extend_from_slice(&enc);
        // Split points: inside the head's final CRLF, between a size line's CR and LF,
        // inside chunk data, between data and its CRLF, inside the trailer and its end.
        let h = head.len();
        let mut cuts = vec![h - 1, h + 1, h + 2, h + 4];
        let first = format!("{:x}\r\n", chunk.min(body.len())).len();
        cuts.extend([h + first + 1, h + first + chunk.min(body.len()) + 1]);
        cuts.extend([req.len() - 12, req.len() - 3, req.len() - 1]);
        cuts.sort_unstable();
        cuts.dedup();
        let mut c = gw.connect();
        let mut prev = 0;
        for cut in cuts.into_iter().chain([req.len()]) {
            if cut <= prev || cut > req.len() {
                continue;
            }
            c.send(&req[prev..cut]).unwrap();
            // Pacing only (not synchronisation): makes separate reads on the server likely.
            std::thread::sleep(Duration::from_millis(3));
            prev = cut;
        }
        let r = c.read_response(IO_TIMEOUT).unwrap();
        assert_eq!(r.status, 200, "chunk size {chunk}: {r:?} {}", r.body_str());
        assert_eq!(r.header("content-type"), Some("application/proto"));
        assert!(!r.closes());
        // The connection is still in sync.
        assert_eq!(c.get("/-/healthy").unwrap().status, 200);
    }
}

fn chunked_body_with_extensions_and_trailers(driver: &str) {
    let gw = Gateway::on(driver, &[]);
    let body = push_gzip();
    let mut enc = Vec::new();
    let (a, b) = body.split_at(100);
    enc.extend_from_slice(format!("{:X};name=value;flag\r\n", a.len()).as_bytes());
    enc.extend_from_slice(a);
    enc.extend_from_slice(b"\r\n");
    enc.extend_from_slice(format!("{:x} ; ext=\"q\"\r\n", b.len()).as_bytes());
    enc.extend_from_slice(b);
    enc.extend_from_slice(b"\r\n0;last\r\nX-Trailer-A: 1\r\nX-Trailer-B: two\r\n\r\n");
    let mut req = build_request(
        "POST",
        PUSH,
        &[
            ("Content-Type", "application/proto"),
            ("Content-Encoding", "gzip"),
            ("Transfer-Encoding", "chunked"),
        ],
        &enc,
    );
    req.extend(build_request("GET", "/-/healthy", &[], b""));
    let mut c = gw.connect();
    c.send(&req).unwrap();
    let r = c.read_response(IO_TIMEOUT).unwrap();
    assert_eq!(r.status, 200, "{r:?} {}", String::from_utf8_lossy(&r.body));
    assert_eq!(c.read_response(IO_TIMEOUT).unwrap().body_str(), "healthy\n");

    // /ingest with chunked body and Expect: 100-continue (the Java agent's OkHttp style).
    let mut c = gw.connect();
    c.send(&build_request(
        "POST",
        "/ingest?name=app.cpu&format=jfr",
        &[
            ("Transfer-Encoding", "chunked"),
            ("Expect", "100-continue"),
            ("Content-Type", "application/octet-stream"),
        ],
        b"",
    ))
    .unwrap();
    let cont = c.read_response(IO_TIMEOUT).unwrap();
    assert_eq!(cont.status, 100, "{cont:?}");
    c.send(&chunked(
        &common::td::formats::java_gzip(&common::td::formats::jfr(300_000, 1)),
        4096,
        &[],
    ))
    .unwrap();
    assert_eq!(c.read_response(IO_TIMEOUT).unwrap().status, 200);
}

fn malformed_requests_are_refused(driver: &str) {
    let gw = Gateway::on(driver, &[]);
    // Every case carries a valid Host, so each is refused for its own fault (the Host
    // rules and the rest of RFC 9112 are in tests/http_strictness.rs).
    let cases: &[(&[u8], u16)] = &[
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
        (b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (
            b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            400,
        ),
        (
            b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            b"POST /ingest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            501,
        ),
        (b"POST /ingest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        // RFC 9112 §6.1: Transfer-Encoding on HTTP/1.0 is faulty framing.
        (
            b"POST /ingest HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            b"POST /ingest HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx",
            417,
        ),
        (
            b"POST /ingest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
        ),
        (
            b"POST /ingest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY",
            400,
        ),
        (b"GET /-/healthy HTTP/1.1\r\n\r\n", 400),
        (b"GET /-/healthy HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ];
    for (req, status) in cases {
        let mut c = gw.connect();
        c.send(req).unwrap();
        let r = c
            .read_response(IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(req)));
        assert_eq!(
            r.status,
            *status,
            "{:?}: {r:?}",
            String::from_utf8_lossy(req)
        );
        r.assert_framing();
        assert!(r.closes(), "errors in framing close the connection: {r:?}");
        assert!(c.wait_closed(IO_TIMEOUT));
    }
    // On the Push route the loop's own errors are Connect JSON.
    let mut c = gw.connect();
    c.send(
        b"POST /push.v1.PusherService/Push HTTP/1.1\r\nHost: x\r\nContent-Type: application/proto\r\n\
          Transfer-Encoding: chunked\r\n\r\nnot-hex\r\n",
    )
    .unwrap();
    let r = c.read_response(IO_TIMEOUT).unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "invalid_argument", "{r:?}");
}

/// curl sends `Expect: 100-continue` for large bodies and waits up to 1 s for the `100`; a
/// server that ignores it costs every upload a second.
fn expect_continue_large_upload_is_fast(driver: &str) {
    let gw = Gateway::on(driver, &[]);
    let body = vec![0x5au8; 2 << 20];
    for _ in 0..3 {
        let mut c = gw.connect();
        let t = Instant::now();
        c.send(&build_request(
            "POST",
            "/ingest?name=app.cpu&format=pprof",
            &[
                ("Expect", "100-continue"),
                ("Content-Length", &body.len().to_string()),
                ("Content-Type", "application/octet-stream"),
            ],
            b"",
        ))
        .unwrap();
        // The client waits for the interim response before sending the body.
        let cont = c.read_response(Duration::from_millis(900)).unwrap();
        assert_eq!(cont.status, 100, "{cont:?}");
        c.send(&body).unwrap();
        let r = c.read_response(IO_TIMEOUT).unwrap();
        let elapsed = t.elapsed();
        assert_eq!(r.status, 200, "{r:?}");
        assert!(!r.closes());
        assert!(
            elapsed < Duration::from_millis(500),
            "2 MiB upload with Expect took {elapsed:?}"
        );
        // The connection is reusable afterwards.
        assert_eq!(c.get("/-/healthy").unwrap().status, 200);
    }
    // Expect with a body already sent along (clients that do not wait): no harm either.
    let mut c = gw.connect();
    let r = c
        .request("POST", "/ingest", &[("Expect", "100-continue")], b"abc")
        .unwrap();
    assert_eq!(r.status, 200);
}

/// Multi-MiB `Content-Length` bodies written in uneven pieces (the server's buffer grows as
/// they arrive) reach the decoder byte-exact: a gzip'd Push is checked by its CRC.
fn large_bodies_arrive_intact(driver: &str) {
    use prost::Message as _;
    use pyrogate::protocol::proto::{PushRequest, RawProfileSeries, RawSample};
    let gw = Gateway::on(driver, &[]);
    // Incompressible payload so that the gzip'd body is as large as the message.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..(3 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let req = PushRequest {
        series: vec![RawProfileSeries {
            labels: vec![],
            samples: vec![RawSample {
                raw_profile: noise.into(),
                id: "big".into(),
            }],
            annotations: vec![],
        }],
    };
    let body = common::gzip(&req.encode_to_vec());
    assert!(body.len() > 3 << 20);
    let mut c = gw.connect();
    let mut all = build_request(
        "POST",
        PUSH,
        &[
            ("Content-Type", "application/proto"),
            ("Content-Encoding", "gzip"),
        ],
        &body,
    );
    all.extend(build_request("GET", "/-/healthy", &[], b""));
    let mut at = 0;
    for (i, size) in [1usize, 100, 5000, 70_000, 1 << 20, 333_333]
        .iter()
        .cycle()
        .enumerate()
    {
        if at >= all.len() || i > 1000 {
            break;
        }
        let end = (at + size).min(all.len());
        c.send(&all[at..end]).unwrap();
        at = end;
    }
    assert_eq!(at, all.len());
    let r = c.read_response(IO_TIMEOUT).unwrap();
    assert_eq!(r.status, 200, "{r:?} {}", String::from_utf8_lossy(&r.body));
    assert_eq!(c.read_response(IO_TIMEOUT).unwrap().body_str(), "healthy\n");
    // One flipped byte deep inside is caught (the test can fail).
    let mut bad = body.clone();
    bad[2 << 20] ^= 0x01;
    let r = c
        .request(
            "POST",
            PUSH,
            &[
                ("Content-Type", "application/proto"),
                ("Content-Encoding", "gzip"),
            ],
            &bad,
        )
        .unwrap();
    assert_eq!(r.status, 400, "{r:?}");
}

/// A request refused from its head alone must not invite the body with a `100`.
fn expect_continue_refused_without_100(driver: &str) {
    let gw = Gateway::on(driver, &[]);
    for (path, ct, status) in [
        (PUSH, "application/x-protobuf", 415),
        ("/nope", "application/octet-stream", 404),
    ] {
        let mut c = gw.connect();
        c.send_request(
            "POST",
            path,
            &[
                ("Expect", "100-continue"),
                ("Content-Type", ct),
                ("Content-Length", "100000"),
            ],
            b"",
        )
        .unwrap();
        let r = c.read_response(IO_TIMEOUT).unwrap();
        assert_eq!(r.status, status, "first response must be final: {r:?}");
        assert!(r.closes(), "the unsent body cannot be skipped: {r:?}");
        assert!(c.wait_closed(IO_TIMEOUT));
    }
}

/// Some clients send the request and shut down their write side at once.
fn half_closed_client_still_gets_its_response(driver: &str) {
    let gw = Gateway::on(driver, &[]);
    let mut c = gw.connect();
    c.send_request(
        "POST",
        PUSH,
        &[("Content-Type", "application/proto")],
        &common::push_proto(),
    )
    .unwrap();
    c.shutdown_write();
    let r = c.read_response(IO_TIMEOUT).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        c.wait_closed(IO_TIMEOUT),
        "server closes after the client's EOF"
    );
}

fn max_connection_age_closes_old_connections(driver: &str) {
    let gw = Gateway::on(driver, &["--max-connection-age", "300ms"]);
    let mut c = gw.connect();
    let t = Instant::now();
    let r = c.get("/-/healthy").unwrap();
    assert!(!r.closes(), "young connection is kept: {r:?}");
    // Let the connection age past max_connection_age (the jitter only shortens it).
    std::thread::sleep(Duration::from_millis(350).saturating_sub(t.elapsed()));
    let r = c.get("/-/healthy").unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.closes(),
        "an old connection's response says Connection: close: {r:?}"
    );
    assert!(c.wait_closed(IO_TIMEOUT));
}

fn metrics_exposition(driver: &str) {
    let gw = Gateway::on(
        driver,
        &[
            "--workers",
            "2",
            "--conn-limit",
            "100",
            "--core-quota",
            "1=30",
        ],
    );
    // Generate some traffic of each kind.
    let mut c = gw.connect();
    assert_eq!(
        c.request("POST", "/ingest", &[], b"12345").unwrap().status,
        200
    );
    assert_eq!(c.get("/nope").unwrap().status, 404);
    let r = c.get("/metrics").unwrap();
    assert_eq!(r.status, 200);
    r.assert_framing();
    assert!(
        r.header("content-type")
            .is_some_and(|v| v.starts_with("text/plain; version=0.0.4")),
        "{r:?}"
    );
    let m = common::Metrics::parse(r.body_str());
    assert!(
        r.body_str()
            .contains("# TYPE pyroscope_receive_http_tcp_connections gauge"),
        "missing TYPE line"
    );
    assert!(
        m.value(
            "pyroscope_receive_http_tcp_connections",
            &[("protocol", "http")]
        ) >= 1.0
    );
    assert_eq!(
        m.value(
            "pyroscope_receive_http_tcp_connections_limit",
            &[("protocol", "http")]
        ),
        100.0
    );
    assert_eq!(
        m.value("pyrogate_core_connections_limit", &[("core", "0")]),
        70.0
    );
    assert_eq!(
        m.value("pyrogate_core_connections_limit", &[("core", "1")]),
        30.0
    );
    let per_core = m.value("pyrogate_core_connections", &[("core", "0")])
        + m.value("pyrogate_core_connections", &[("core", "1")]);
    assert_eq!(
        per_core,
        m.value(
            "pyroscope_receive_http_tcp_connections",
            &[("protocol", "http")]
        ),
        "per-core gauges sum to the total"
    );
    assert_eq!(
        m.value(
            "pyrogate_requests_total",
            &[("route", "ingest"), ("status_code", "200")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "pyrogate_requests_total",
            &[("route", "other"), ("status_code", "404")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "pyroscope_receive_http_request_duration_seconds_count",
            &[
                ("method", "POST"),
                ("route", "ingest"),
                ("status_code", "200"),
                ("ws", "false")
            ]
        ),
        1.0
    );
    assert_eq!(
        m.value("pyrogate_received_bytes_total", &[("route", "ingest")]),
        5.0
    );
    for reason in [
        "conn_limit",
        "header_too_large",
        "body_too_large",
        "read_timeout",
    ] {
        assert!(
            m.get("pyrogate_rejected_total", &[("reason", reason)])
                .is_some(),
            "rejected reason {reason} not exported"
        );
    }
    assert!(
        m.get(
            "pyroscope_receive_http_inflight_requests",
            &[("method", "POST"), ("route", "ingest")]
        )
        .is_some()
    );
    let _ = Conn::connect(gw.addr).unwrap(); // still accepting after the scrape
}
