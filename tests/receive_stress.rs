//! Many concurrent clients against a small connection limit: every client is eventually
//! served (waiting in the backlog, never lost), every response is correct and in order, and
//! the connection gauges return to zero. Bounded: a few seconds per driver.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Conn, Gateway, build_request, chunked, poll_until, push_gzip};

on_both_drivers!(many_clients_through_a_small_conn_limit);

const PUSH: &str = "/push.v1.PusherService/Push";
const CLIENTS: usize = 128;
const ROUNDS: usize = 20;

fn many_clients_through_a_small_conn_limit(driver: &str) {
    let gw = Gateway::on(
        driver,
        &[
            "--workers",
            "2",
            "--conn-limit",
            "8",
            "--server-idle-timeout",
            "5s",
        ],
    );
    let addr = gw.addr;
    let push = Arc::new(push_gzip());
    let t = Instant::now();
    let handles: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let push = push.clone();
            std::thread::spawn(move || -> Result<usize, String> {
                let mut c = Conn::connect(addr).map_err(|e| e.to_string())?;
                let mut answered = 0;
                for round in 0..ROUNDS {
                    // Three requests in one write: Content-Length, chunked, and a GET.
                    let body = format!("client {i} round {round}");
                    let mut req = build_request("POST", "/ingest?name=app", &[], body.as_bytes());
                    req.extend(build_request(
                        "POST",
                        PUSH,
                        &[
                            ("Content-Type", "application/proto"),
                            ("Content-Encoding", "gzip"),
                            ("Transfer-Encoding", "chunked"),
                        ],
                        &chunked(&push, 50 + i, &[]),
                    ));
                    req.extend(build_request("GET", "/-/healthy", &[], b""));
                    c.send(&req).map_err(|e| format!("client {i}: send: {e}"))?;
                    for want in [200, 200, 200] {
                        let r = c
                            .read_response(Duration::from_secs(20))
                            .map_err(|e| format!("client {i} round {round}: {e}"))?;
                        if r.status != want || r.closes() {
                            return Err(format!("client {i} round {round}: {r:?}"));
                        }
                        answered += 1;
                    }
                }
                Ok(answered)
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h
            .join()
            .expect("client thread")
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(total, CLIENTS * ROUNDS * 3);
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
    let m = poll_until(Duration::from_secs(5), || {
        let m = gw.metrics();
        (m.value(
            "pyroscope_receive_http_tcp_connections",
            &[("protocol", "http")],
        ) == 1.0)
            .then_some(m)
    })
    .expect("every client connection closed");
    assert_eq!(
        m.value(
            "pyrogate_requests_total",
            &[("route", "push_v1_pusherservice"), ("status_code", "200")]
        ),
        (CLIENTS * ROUNDS) as f64
    );
    assert!(m.sum("pyrogate_connections_accepted_total") >= CLIENTS as f64);
}
