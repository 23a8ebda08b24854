//! Process lifecycle on the real binary: graceful shutdown on SIGTERM/SIGINT (in-flight
//! requests finish with `Connection: close`, idle keep-alive connections close, `/-/ready`
//! says 503, exit 0 within `graceful_shutdown_timeout`) and configuration reload on SIGHUP.

mod common;

use std::time::{Duration, Instant};

use common::{Conn, Gateway, IO_TIMEOUT, build_request, poll_until};

on_both_drivers!(
    sigterm_drains_gracefully,
    shutdown_timeout_bounds_the_exit,
    sigint_also_drains,
    sighup_reloads_limits,
);

/// Sends a request head with `Expect: 100-continue` and waits for the `100`, which proves
/// the server has parsed the head and is now reading the body.
fn start_request(gw: &Gateway, method: &str, path: &str, len: usize) -> Conn {
    let mut c = gw.connect();
    c.send(&build_request(
        method,
        path,
        &[
            ("Expect", "100-continue"),
            ("Content-Length", &len.to_string()),
        ],
        b"",
    ))
    .unwrap();
    let r = c.read_response(IO_TIMEOUT).unwrap();
    assert_eq!(r.status, 100, "{r:?}");
    c
}

fn sigterm_drains_gracefully(driver: &str) {
    let mut gw = Gateway::on(
        driver,
        &["--workers", "2", "--graceful-shutdown-timeout", "10s"],
    );
    // An idle keep-alive connection.
    let mut idle = gw.connect();
    assert_eq!(idle.get("/-/healthy").unwrap().status, 200);
    // A slow upload: head read, half of the body sent.
    let body = vec![b'p'; 64 * 1024];
    let mut upload = start_request(&gw, "POST", "/ingest?name=app.cpu", body.len());
    upload.send(&body[..body.len() / 2]).unwrap();
    // A readiness probe caught mid-request (its one body byte not yet sent).
    let mut probe = start_request(&gw, "GET", "/-/ready", 1);

    let t = Instant::now();
    gw.signal(libc::SIGTERM);
    assert!(
        idle.wait_closed(Duration::from_secs(3)),
        "idle keep-alive connection must be closed on drain"
    );
    assert!(
        gw.wait_refusing(Duration::from_secs(3)),
        "the listeners must close when draining"
    );
    probe.send(b"x").unwrap();
    let r = probe.read_response(IO_TIMEOUT).unwrap();
    assert_eq!(r.status, 503, "not ready while draining: {r:?}");
    assert!(r.closes(), "{r:?}");
    assert!(gw.is_running(), "the upload is still in flight");
    upload.send(&body[body.len() / 2..]).unwrap();
    let r = upload.read_response(IO_TIMEOUT).unwrap();
    assert_eq!(r.status, 200, "in-flight upload completes: {r:?}");
    assert!(r.closes(), "last response says Connection: close: {r:?}");
    assert!(upload.wait_closed(IO_TIMEOUT));
    let st = gw
        .wait_exit(Duration::from_secs(5))
        .expect("exit after drain");
    assert!(st.success(), "exit status {st:?}");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "drained in {:?}, well within the 10s graceful timeout",
        t.elapsed()
    );
    assert!(gw.stderr().contains("pyrogate stopped"), "{}", gw.stderr());
}

fn shutdown_timeout_bounds_the_exit(driver: &str) {
    let mut gw = Gateway::on(
        driver,
        &[
            "--graceful-shutdown-timeout",
            "1s",
            "--server-read-timeout",
            "30s",
        ],
    );
    // An upload that never finishes.
    let mut stuck = start_request(&gw, "POST", "/ingest", 1000);
    stuck.send(b"abc").unwrap();
    let (st, elapsed) = gw.terminate(Duration::from_secs(6));
    let st = st.expect("exits at the graceful shutdown timeout");
    assert!(st.success(), "exit status {st:?}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "exit after {elapsed:?} with a 1s graceful timeout"
    );
    assert!(
        stuck.wait_closed(IO_TIMEOUT),
        "stuck connection closed at exit"
    );
}

fn sigint_also_drains(driver: &str) {
    let mut gw = Gateway::on(driver, &[]);
    let mut idle = gw.connect();
    assert_eq!(idle.get("/-/healthy").unwrap().status, 200);
    gw.signal(libc::SIGINT);
    assert!(idle.wait_closed(Duration::from_secs(3)));
    let st = gw
        .wait_exit(Duration::from_secs(5))
        .expect("exit on SIGINT");
    assert!(st.success(), "{st:?}");
}

fn sighup_reloads_limits(driver: &str) {
    let cfg = common::write_temp(
        "reload.toml",
        "[server]\nconn_limit = 100\nmax_request_body = \"1KiB\"\n[runtime]\nworkers = 2\n",
    );
    let gw = Gateway::on(driver, &["-c", cfg.to_str().unwrap()]);
    let body = vec![b'z'; 2048];
    assert_eq!(gw.request("POST", "/ingest", &[], &body).status, 413);
    let m = gw.metrics();
    assert_eq!(
        m.value(
            "pyroscope_receive_http_tcp_connections_limit",
            &[("protocol", "http")]
        ),
        100.0
    );

    std::fs::write(
        &cfg,
        "[server]\nconn_limit = 50\nmax_request_body = \"4KiB\"\n[runtime]\nworkers = 2\ncore_quotas = [10, 40]\n",
    )
    .unwrap();
    gw.signal(libc::SIGHUP);
    let ok = poll_until(Duration::from_secs(5), || {
        (gw.request("POST", "/ingest", &[], &body).status == 200).then_some(())
    });
    assert!(ok.is_some(), "new max_request_body applied after SIGHUP");
    let m = poll_until(Duration::from_secs(5), || {
        let m = gw.metrics();
        (m.value("pyrogate_core_connections_limit", &[("core", "0")]) == 10.0
            && m.value("pyrogate_core_connections_limit", &[("core", "1")]) == 40.0)
            .then_some(m)
    })
    .expect("per-core quotas reloaded on every worker");
    assert_eq!(
        m.value(
            "pyroscope_receive_http_tcp_connections_limit",
            &[("protocol", "http")]
        ),
        50.0,
        "the global limit gauge follows the reloaded conn_limit"
    );

    // An invalid file is rejected and the running configuration kept.
    std::fs::write(&cfg, "[server]\nconn_limt = 5\n").unwrap();
    gw.signal(libc::SIGHUP);
    let logged = poll_until(Duration::from_secs(5), || {
        gw.stderr().contains("reload rejected").then_some(())
    });
    assert!(logged.is_some(), "stderr: {}", gw.stderr());
    assert_eq!(gw.request("POST", "/ingest", &[], &body).status, 200);
    assert_eq!(
        gw.request("POST", "/ingest", &[], &[b'z'; 5000]).status,
        413
    );
    let _ = std::fs::remove_file(cfg);
}
