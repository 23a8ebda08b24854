//! Endpoint names are resolved off the workers: with a system resolver that takes 5 s (a
//! `getaddrinfo` shim preloaded into the real binary), a worker keeps answering other
//! requests at once while a delivery waits for the name, and the delivery completes once
//! the name resolves.

mod common;
mod sinks;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Gateway, IO_TIMEOUT};
use sinks::Sink;

/// The name the shim makes slow (it then resolves to 127.0.0.1).
const SLOW_HOST: &str = "slow.pyrogate.test";
const SLOW: Duration = Duration::from_secs(5);

const SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <string.h>
#include <unistd.h>
typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
    gai_fn real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    if (node && strcmp(node, "slow.pyrogate.test") == 0) {
        sleep(5);
        return real("127.0.0.1", service, hints, res);
    }
    return real(node, service, hints, res);
}
"#;

/// Builds the shim with the system C compiler (the one the build already needs).
fn shim() -> PathBuf {
    let dir = common::temp_path("dns-shim");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let src = dir.join("slowdns.c");
    let lib = dir.join("libslowdns.so");
    std::fs::write(&src, SHIM).expect("write shim");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&lib)
        .arg(&src)
        .arg("-ldl")
        .output()
        .unwrap_or_else(|e| panic!("{cc} not runnable: {e}"));
    assert!(
        out.status.success(),
        "building the shim failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lib
}

#[test]
fn a_slow_resolver_does_not_delay_other_requests_on_the_core() {
    let lib = shim();
    let sink = Sink::start(&[]);
    let url = format!("http://{SLOW_HOST}:{}", sink.addr.port());
    // One worker, deliveries on it (the default dispatch): everything shares one core.
    let gw = Gateway::start_with_env(
        &["--workers", "1", "--forward-to", &url],
        &[("LD_PRELOAD", lib.to_str().expect("utf-8 path"))],
    );
    let body = common::push_gzip();
    let mut push = gw.connect();
    let t0 = Instant::now();
    push.send(&common::build_request(
        "POST",
        "/push.v1.PusherService/Push",
        &[
            ("Content-Type", "application/proto"),
            ("Content-Encoding", "gzip"),
        ],
        &body,
    ))
    .expect("send the push");
    std::thread::sleep(Duration::from_millis(100));
    // The push is waiting for the name now; the same worker answers at once meanwhile.
    for path in ["/-/healthy", "/metrics", "/-/ready"] {
        let t = Instant::now();
        let r = gw.request("GET", path, &[], b"");
        assert_eq!(r.status, 200, "{path}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{path} took {:?} while a lookup hung",
            t.elapsed()
        );
    }
    assert!(
        t0.elapsed() < SLOW,
        "the checks ran while the lookup was pending"
    );
    let r = push
        .read_response(SLOW + IO_TIMEOUT)
        .expect("the push is answered");
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert!(
        t0.elapsed() >= SLOW - Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
    let recs = sink.wait_records(1, IO_TIMEOUT);
    assert_eq!(recs[0]["route"], "push");
    assert_eq!(recs[0]["status"], 200);
}
