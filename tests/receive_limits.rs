//! Bounds on the receive side, on the real binary: the connection limit with per-core quotas
//! (`wait` and `reject`), the connection gauges, the read and idle timeouts, header and body
//! limits (431/413), and memory staying flat under oversized heads.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{Conn, Gateway, IO_TIMEOUT, Metrics, build_request, poll_until};

const PUSH: &str = "/push.v1.PusherService/Push";

on_both_drivers!(
    conn_limit_wait_even_quotas,
    conn_limit_wait_explicit_quotas,
    conn_limit_reject_answers_503,
    connection_gauges_follow_open_connections,
    read_timeout_closes_slow_drip_head,
    read_timeout_closes_slow_drip_body,
    idle_timeout_closes_quiet_connections,
    huge_header_is_431_and_memory_stays_flat,
    header_count_and_size_limits,
    oversize_body_is_413_before_the_body_is_sent,
    oversize_chunked_body_is_413,
    declared_body_length_does_not_pin_memory,
);

/// Tries to read the response of every unserved connection for `window`; returns the
/// indices that got one (in `conns` order).
fn sweep(conns: &mut [Option<Conn>], served: &[bool], window: Duration) -> Vec<usize> {
    let end = Instant::now() + window;
    let mut got = Vec::new();
    loop {
        for (i, c) in conns.iter_mut().enumerate() {
            let Some(c) = c else { continue };
            if served[i] || got.contains(&i) {
                continue;
            }
            if let Ok(r) = c.read_response(Duration::from_millis(5)) {
                assert_eq!(r.status, 200, "connection {i}: {r:?}");
                got.push(i);
            }
        }
        if Instant::now() >= end {
            return got;
        }
    }
}

/// Opens many connections, each with a request in flight. Exactly `conn_limit` are served,
/// the per-core split matching the quotas; the others wait in the kernel backlog until a
/// served connection closes, and only then is one of them served.
fn conn_limit_wait(driver: &str, extra: &[&str], quotas: [f64; 2]) {
    let mut args = vec![
        "--workers",
        "2",
        "--conn-limit",
        "4",
        "--pin-cores",
        "false",
    ];
    args.extend_from_slice(extra);
    let gw = Gateway::on(driver, &args);
    // The readiness probe's connection may still be closing; wait for a clean slate.
    assert!(
        poll_until(IO_TIMEOUT, || {
            let m = gw.metrics();
            (m.value(
                "pyroscope_receive_http_tcp_connections",
                &[("protocol", "http")],
            ) == 1.0)
                .then_some(())
        })
        .is_some()
    );
    // SO_REUSEPORT spreads connections by hash; 24 make it overwhelmingly likely that both
    // shards reach their quota (a shard that does not is caught by the asserts below).
    const N: usize = 24;
    let mut conns: Vec<Option<Conn>> = (0..N)
        .map(|_| {
            let mut c = gw.connect();
            c.send(&build_request("GET", "/-/healthy", &[], b""))
                .unwrap();
            Some(c)
        })
        .collect();
    let mut served = vec![false; N];
    let deadline = Instant::now() + Duration::from_secs(5);
    while served.iter().filter(|s| **s).count() < 4 && Instant::now() < deadline {
        for i in sweep(&mut conns, &served, Duration::from_millis(50)) {
            served[i] = true;
        }
    }
    assert_eq!(
        served.iter().filter(|s| **s).count(),
        4,
        "conn_limit = 4 must be served"
    );
    // Nobody else gets in while the four stay open.
    let extra_served = sweep(&mut conns, &served, Duration::from_millis(400));
    assert!(
        extra_served.is_empty(),
        "served beyond conn_limit: {extra_served:?}"
    );

    let first = served.iter().position(|s| *s).expect("a served connection");
    let m = conns[first].as_mut().unwrap().metrics();
    assert_eq!(
        m.value(
            "pyroscope_receive_http_tcp_connections",
            &[("protocol", "http")]
        ),
        4.0
    );
    assert_eq!(
        m.value(
            "pyroscope_receive_http_tcp_connections_limit",
            &[("protocol", "http")]
        ),
        4.0
    );
    for (core, q) in quotas.iter().enumerate() {
        let core = core.to_string();
        assert_eq!(
            m.value("pyrogate_core_connections_limit", &[("core", &core)]),
            *q,
            "quota of core {core}"
        );
        assert_eq!(
            m.value("pyrogate_core_connections", &[("core", &core)]),
            *q,
            "core {core} is exactly at its quota"
        );
    }

    // Free slots one at a time until a waiting connection is served (the freed slot's shard
    // may have nobody waiting; after at most all four, some waiter must get in).
    let mut newly = Vec::new();
    for _ in 0..4 {
        let victim = (0..N)
            .find(|i| served[*i] && conns[*i].is_some())
            .expect("a served connection to close");
        conns[victim] = None; // closes it; sweeps skip closed connections
        newly = sweep(&mut conns, &served, Duration::from_secs(1));
        if !newly.is_empty() {
            break;
        }
    }
    assert_eq!(
        newly.len(),
        1,
        "exactly one waiter takes the freed slot: {newly:?}"
    );
    let w = newly[0];
    // It is a fully working keep-alive connection now.
    let m = conns[w].as_mut().unwrap().metrics();
    let total = m.value(
        "pyroscope_receive_http_tcp_connections",
        &[("protocol", "http")],
    );
    assert!(total <= 4.0, "never above conn_limit: {total}");
    for (core, q) in quotas.iter().enumerate() {
        let v = m.value("pyrogate_core_connections", &[("core", &core.to_string())]);
        assert!(v <= *q, "core {core} above its quota: {v} > {q}");
    }
}

fn conn_limit_wait_even_quotas(driver: &str) {
    conn_limit_wait(driver, &[], [2.0, 2.0]);
}

fn conn_limit_wait_explicit_quotas(driver: &str) {
    conn_limit_wait(
        driver,
        &["--core-quota", "0=3", "--core-quota", "1=1"],
        [3.0, 1.0],
    );
}

fn conn_limit_reject_answers_503(driver: &str) {
    let gw = Gateway::on(
        driver,
        &[
            "--workers",
            "2",
            "--conn-limit",
            "2",
            "--on-conn-limit",
            "reject",
        ],
    );
    // Wait until the readiness probe's connection is gone: then only the scrape is open.
    let before = poll_until(IO_TIMEOUT, || {
        let m = gw.try_metrics()?;
        (m.value(
            "pyroscope_receive_http_tcp_connections",
            &[("protocol", "http")],
        ) == 1.0)
            .then_some(m)
    })
    .expect("a quiet gateway")
    .value("pyrogate_rejected_total", &[("reason", "conn_limit")]);
    let mut kept = Vec::new();
    let mut rejected = 0;
    // Each shard (quota 1) serves its first connection; the kernel's hash decides which
    // shard a connection lands on, so keep opening until both are full.
    for _ in 0..60 {
        if kept.len() == 2 {
            break;
        }
        let mut c = gw.connect();
        let r = c.get("/-/healthy").unwrap();
        match r.status {
            200 => {
                assert!(!r.closes());
                kept.push(c);
            }
            503 => {
                r.assert_framing();
                assert_eq!(r.header("retry-after"), Some("1"), "{r:?}");
                assert!(r.closes(), "503 must close: {r:?}");
                assert!(
                    c.wait_closed(IO_TIMEOUT),
                    "rejected connection must be closed"
                );
                rejected += 1;
            }
            s => panic!("unexpected status {s}: {r:?}"),
        }
    }
    assert_eq!(kept.len(), 2, "both shards serve up to their quota");
    // Now every new connection is rejected at once, whatever shard it lands on.
    for _ in 0..6 {
        let t = Instant::now();
        let mut c = gw.connect();
        let r = c.get("/-/healthy").unwrap();
        assert_eq!(r.status, 503, "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(1), "reject is immediate");
        rejected += 1;
    }
    let m = kept[0].metrics();
    assert_eq!(
        m.value("pyrogate_rejected_total", &[("reason", "conn_limit")]) - before,
        f64::from(rejected)
    );
    assert_eq!(
        m.value(
            "pyroscope_receive_http_tcp_connections",
            &[("protocol", "http")]
        ),
        2.0
    );
    // Once the slots are free, new connections are served again.
    drop(kept);
    let ok = poll_until(IO_TIMEOUT, || {
        let mut c = gw.connect();
        (c.get("/-/healthy").ok()?.status == 200).then_some(())
    });
    assert!(ok.is_some(), "served again after the slots were freed");
}

fn connection_gauges_follow_open_connections(driver: &str) {
    let gw = Gateway::on(driver, &["--workers", "2"]);
    let total = |m: &Metrics| {
        m.value(
            "pyroscope_receive_http_tcp_connections",
            &[("protocol", "http")],
        )
    };
    let per_core = |m: &Metrics| {
        m.value("pyrogate_core_connections", &[("core", "0")])
            + m.value("pyrogate_core_connections", &[("core", "1")])
    };
    let mut probe = gw.connect();
    let base = poll_until(IO_TIMEOUT, || {
        let m = probe.metrics();
        (total(&m) == 1.0).then_some(m)
    })
    .expect("only the probe connection is open");
    assert_eq!(per_core(&base), 1.0);
    let mut open: Vec<Conn> = (0..7).map(|_| gw.connect()).collect();
    // Make sure each was accepted (a served request proves it).
    for c in &mut open {
        assert_eq!(c.get("/-/healthy").unwrap().status, 200);
    }
    let m = probe.metrics();
    assert_eq!(total(&m), 8.0);
    assert_eq!(per_core(&m), 8.0);
    assert!(m.sum("pyrogate_connections_accepted_total") >= 8.0);
    drop(open);
    let m = poll_until(IO_TIMEOUT, || {
        let m = probe.metrics();
        (total(&m) == 1.0).then_some(m)
    })
    .expect("gauge returns to 1 after the connections close");
    assert_eq!(per_core(&m), 1.0);
}

/// Sends `prefix`, then one byte of `drip` every 50 ms, until the server answers or closes.
/// Returns the response (if one came) and when it came.
fn drip(gw: &Gateway, prefix: &[u8], drip: &[u8]) -> (Option<common::Response>, Duration, Conn) {
    let mut c = gw.connect();
    let t = Instant::now();
    c.send(prefix).unwrap();
    let deadline = t + Duration::from_secs(6);
    for b in drip.iter().cycle() {
        if Instant::now() > deadline {
            break;
        }
        if c.stream.write_all(&[*b]).is_err() {
            break;
        }
        match c.read_response(Duration::from_millis(50)) {
            Ok(r) => return (Some(r), t.elapsed(), c),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (None, t.elapsed(), c),
        }
    }
    let r = c.read_response(Duration::from_millis(200)).ok();
    (r, t.elapsed(), c)
}

fn read_timeout_closes_slow_drip_head(driver: &str) {
    let gw = Gateway::on(driver, &["--server-read-timeout", "1s"]);
    let (r, elapsed, mut c) = drip(&gw, b"POST /ingest HTTP/1.1\r\nX-Slow: ", b"abcdefgh");
    let r = r.expect("a 408 before the close");
    assert_eq!(r.status, 408, "{r:?}");
    assert!(r.closes());
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2500),
        "closed after {elapsed:?}, read timeout is 1s"
    );
    assert!(c.wait_closed(IO_TIMEOUT));
    let m = gw.metrics();
    assert!(m.value("pyrogate_rejected_total", &[("reason", "read_timeout")]) >= 1.0);
}

fn read_timeout_closes_slow_drip_body(driver: &str) {
    let gw = Gateway::on(driver, &["--server-read-timeout", "1s"]);
    let head = build_request("POST", "/ingest", &[("Content-Length", "100000")], b"");
    let (r, elapsed, mut c) = drip(&gw, &head, b"0123456789");
    let r = r.expect("a 408 before the close");
    assert_eq!(r.status, 408, "{r:?}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2500),
        "closed after {elapsed:?}, read timeout is 1s"
    );
    assert!(c.wait_closed(IO_TIMEOUT));
    // The Push route answers in Connect form.
    let head = build_request(
        "POST",
        PUSH,
        &[
            ("Content-Type", "application/proto"),
            ("Content-Length", "100000"),
        ],
        b"",
    );
    let (r, _, _) = drip(&gw, &head, b"\x0a");
    let r = r.expect("a 408 before the close");
    assert_eq!(r.status, 408);
    assert_eq!(r.json()["code"], "deadline_exceeded", "{r:?}");
}

fn idle_timeout_closes_quiet_connections(driver: &str) {
    let gw = Gateway::on(
        driver,
        &["--server-idle-timeout", "1s", "--server-read-timeout", "5s"],
    );
    // After a request.
    let mut c = gw.connect();
    assert_eq!(c.get("/-/healthy").unwrap().status, 200);
    let t = Instant::now();
    assert!(
        c.wait_closed(Duration::from_secs(4)),
        "idle connection not closed"
    );
    let e = t.elapsed();
    assert!(
        e >= Duration::from_millis(800) && e < Duration::from_millis(2500),
        "idle close after {e:?}"
    );
    // A connection that never sends anything.
    let mut c = gw.connect();
    let t = Instant::now();
    assert!(c.wait_closed(Duration::from_secs(4)));
    assert!(t.elapsed() >= Duration::from_millis(800));
    // Activity resets the timer: requests every 300 ms for 2 s keep the connection.
    let mut c = gw.connect();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        assert_eq!(c.get("/-/healthy").unwrap().status, 200);
        c.assert_silent(Duration::from_millis(300), "between requests");
    }
}

/// 1 MiB of headers is refused with 431 after reading at most the header limit, and the
/// process's memory does not grow with the attempts.
fn huge_header_is_431_and_memory_stays_flat(driver: &str) {
    let gw = Gateway::on(driver, &["--workers", "2"]);
    let mut req = b"POST /ingest HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 1 << 20));
    req.extend_from_slice(b"\r\n\r\n");
    let attempt = |req: &[u8]| {
        let mut c = gw.connect();
        // The server answers early and then discards the rest while lingering, so the
        // write completes; a reset while writing is tolerated as long as the 431 came.
        let _ = c.stream.write_all(req);
        let r = c.read_response(IO_TIMEOUT).expect("431 response");
        assert_eq!(r.status, 431, "{r:?}");
        assert!(r.closes());
    };
    // Let the last connections' tasks finish (their lingering ends at EOF); the scrapes
    // also warm up the /metrics path on every worker before the baseline.
    let settle = || {
        poll_until(IO_TIMEOUT, || {
            let m = gw.metrics();
            (m.value(
                "pyroscope_receive_http_tcp_connections",
                &[("protocol", "http")],
            ) == 1.0)
                .then_some(())
        })
        .expect("connections closed")
    };
    // Warm up both workers (the kernel spreads connections by hash) and their allocators.
    for _ in 0..20 {
        attempt(&req);
    }
    for _ in 0..4 {
        settle();
    }
    let before = gw.rss_kib();
    for _ in 0..50 {
        attempt(&req);
    }
    settle();
    let after = gw.rss_kib();
    let growth = after.saturating_sub(before);
    eprintln!("RSS {before} KiB -> {after} KiB over 50 attempts");
    // 50 MiB were sent; a server that buffered them would grow by that much. The bound
    // leaves room for one allocator segment (2 MiB) being mapped late.
    assert!(
        growth < 4 * 1024,
        "RSS grew by {growth} KiB over 50 x 1 MiB heads ({before} -> {after} KiB)"
    );
    let m = gw.metrics();
    assert!(m.value("pyrogate_rejected_total", &[("reason", "header_too_large")]) >= 70.0);
    assert!(
        m.value(
            "pyrogate_requests_total",
            &[("route", "other"), ("status_code", "431")]
        ) >= 70.0
    );
}

fn header_count_and_size_limits(driver: &str) {
    let gw = Gateway::on(driver, &["--max-header-bytes", "8KiB"]);
    // Just under the limit: fine.
    let big = "v".repeat(7 * 1024);
    let r = gw.request("POST", "/ingest", &[("X-Big", &big)], b"x");
    assert_eq!(r.status, 200, "{r:?}");
    // Just over: 431.
    let big = "v".repeat(8 * 1024);
    let r = gw.request("POST", "/ingest", &[("X-Big", &big)], b"x");
    assert_eq!(r.status, 431);
    assert!(r.closes());
    // Too many header fields: 431 too.
    let names: Vec<String> = (0..101).map(|i| format!("X-H{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let r = gw.request("GET", "/-/healthy", &headers, b"");
    assert_eq!(r.status, 431, "{r:?}");
}

fn oversize_body_is_413_before_the_body_is_sent(driver: &str) {
    let gw = Gateway::on(driver, &["--max-request-body", "1KiB"]);
    // At the limit: accepted.
    let r = gw.request("POST", "/ingest", &[], &[b'x'; 1024]);
    assert_eq!(r.status, 200);
    // Over it: only the head is sent; the 413 must come anyway.
    for (path, extra) in [
        ("/ingest", vec![]),
        ("/ingest", vec![("Expect", "100-continue")]),
        (PUSH, vec![("Content-Type", "application/proto")]),
    ] {
        let mut headers = vec![("Content-Length", "1025")];
        headers.extend(extra.iter().copied());
        let mut c = gw.connect();
        let t = Instant::now();
        c.send_request("POST", path, &headers, b"").unwrap();
        let r = c.read_response(IO_TIMEOUT).expect("413 without the body");
        assert_eq!(r.status, 413, "{path} {headers:?}: {r:?}");
        assert!(t.elapsed() < Duration::from_secs(1));
        assert!(r.closes());
        r.assert_framing();
        if path == PUSH {
            let j = r.json();
            assert_eq!(j["code"], "resource_exhausted", "{j}");
        } else {
            assert_eq!(r.body_str(), "request body too large\n");
        }
        assert!(c.wait_closed(IO_TIMEOUT));
    }
    // A huge declared length is refused the same way (and allocates nothing).
    let mut c = gw.connect();
    c.send_request(
        "POST",
        "/ingest",
        &[("Content-Length", "9999999999999")],
        b"",
    )
    .unwrap();
    assert_eq!(c.read_response(IO_TIMEOUT).unwrap().status, 413);
    let m = gw.metrics();
    assert!(m.value("pyrogate_rejected_total", &[("reason", "body_too_large")]) >= 4.0);
}

fn oversize_chunked_body_is_413(driver: &str) {
    let gw = Gateway::on(driver, &["--max-request-body", "1KiB"]);
    // The declared chunk size alone exceeds the limit: refused before the data.
    let mut c = gw.connect();
    c.send(&build_request(
        "POST",
        "/ingest",
        &[("Transfer-Encoding", "chunked")],
        b"401\r\n",
    ))
    .unwrap();
    let r = c.read_response(IO_TIMEOUT).unwrap();
    assert_eq!(r.status, 413, "{r:?}");
    // Several small chunks adding up to more than the limit.
    let body = common::chunked(&[b'y'; 1500], 100, &[]);
    let r = gw.request(
        "POST",
        "/ingest",
        &[("Transfer-Encoding", "chunked")],
        &body,
    );
    assert_eq!(r.status, 413);
    let r = gw.request(
        "POST",
        PUSH,
        &[
            ("Content-Type", "application/proto"),
            ("Transfer-Encoding", "chunked"),
        ],
        &body,
    );
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["code"], "resource_exhausted");
    // Exactly at the limit, chunked: accepted.
    let body = common::chunked(&[b'y'; 1024], 100, &[]);
    let r = gw.request(
        "POST",
        "/ingest",
        &[("Transfer-Encoding", "chunked")],
        &body,
    );
    assert_eq!(r.status, 200);
}

/// A `Content-Length` is only a claim: connections that each declare the largest allowed
/// body but send almost nothing must not make the gateway commit memory for the claim.
fn declared_body_length_does_not_pin_memory(driver: &str) {
    let gw = Gateway::on(driver, &["--workers", "2", "--server-read-timeout", "20s"]);
    // Warm up: a few real uploads, so allocator arenas exist on both workers.
    for _ in 0..8 {
        let r = gw.request("POST", "/ingest", &[], &vec![b'w'; 300 * 1024]);
        assert_eq!(r.status, 200);
    }
    let before = gw.rss_kib();
    const N: usize = 100;
    let declared = (256u64 << 20).to_string();
    let conns: Vec<Conn> = (0..N)
        .map(|_| {
            let mut c = gw.connect();
            c.send_request(
                "POST",
                "/ingest",
                &[("Content-Length", &declared), ("Expect", "100-continue")],
                b"",
            )
            .unwrap();
            // The 100 proves the head was admitted: the body phase has begun.
            assert_eq!(c.read_response(IO_TIMEOUT).unwrap().status, 100);
            c.send(&[b'b'; 1000]).unwrap();
            c
        })
        .collect();
    // Sample for a while: the server reads the 1000 bytes of each at its own pace.
    let mut peak = 0;
    let end = Instant::now() + Duration::from_millis(500);
    while Instant::now() < end {
        peak = peak.max(gw.rss_kib());
        std::thread::sleep(Duration::from_millis(20));
    }
    let growth = peak.saturating_sub(before);
    eprintln!("RSS {before} KiB -> peak {peak} KiB with {N} connections declaring 256 MiB");
    // 100 KB were received in total; allow ~160 KiB of buffers per connection (reserving
    // the declared size cost ~2.7 MB each).
    assert!(
        growth < 16 * 1024,
        "RSS grew by {growth} KiB for {N} connections that sent 1000 bytes each"
    );
    drop(conns);
}
