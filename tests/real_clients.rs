//! The real SDKs, not replays: pyroscope-io (Python, Connect Push, gzip) and
//! @pyroscope/nodejs (/ingest, gzip pprof without Content-Encoding) run for a bounded time
//! against the gateway, which forwards to two test destinations. Both destinations must get
//! every profile intact (the sink decodes each pprof and answers 200 only then) with the
//! labels the SDK set.
//!
//! `scripts/test.sh` installs the SDKs (pip: pyroscope-io; npm into tests/clients/node).

mod common;
mod sinks;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::Gateway;
use serde_json::Value;
use sinks::Sink;

const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");

fn gateway(a: &Sink, b: &Sink) -> Gateway {
    Gateway::start(&[
        "--workers",
        "2",
        "--forward-to",
        &a.url(),
        "--forward-to",
        &b.url(),
    ])
}

/// Runs a client to completion (bounded) and returns its output for diagnostics.
fn run_client(program: &str, args: &[&str], dir: &Path, limit: Duration) -> String {
    common::run_client(program, args, dir, &[], limit)
}

/// Profile records the sink answered, with their body checksums.
fn accepted(s: &Sink, route: &str) -> Vec<Value> {
    s.records()
        .into_iter()
        .filter(|r| r["route"] == route && r["status"] == 200)
        .collect()
}

fn checksums(recs: &[Value]) -> BTreeSet<String> {
    recs.iter()
        .filter_map(|r| r["body_fnv"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn python_sdk_push_reaches_both_destinations_intact() {
    let (a, b) = (Sink::start(&[]), Sink::start(&[]));
    let gw = gateway(&a, &b);
    let out = run_client(
        "python3",
        &[
            "python/client.py",
            &format!("http://{}", gw.addr),
            "5",
            "team-py",
        ],
        Path::new(CLIENTS),
        Duration::from_secs(60),
    );
    let pa = common::poll_until(Duration::from_secs(10), || {
        let r = accepted(&a, "push");
        (!r.is_empty() && accepted(&b, "push").len() == r.len()).then_some(r)
    })
    .unwrap_or_else(|| panic!("no Push arrived at both sinks; client said:\n{out}"));
    let pb = accepted(&b, "push");
    assert_eq!(
        checksums(&pa),
        checksums(&pb),
        "both destinations got the same bytes"
    );
    assert!(
        a.records().iter().all(|r| r["status"] == 200),
        "every request accepted"
    );
    for r in &pa {
        assert_eq!(r["tenant"], "team-py");
        let labels = sinks::series_labels(r);
        for want in [
            ("__name__", "process_cpu"),
            ("service_name", "pyrogate.test.python"),
            ("env", "ci"),
            ("process.runtime.name", "cpython"),
        ] {
            assert!(
                labels.iter().any(|(k, v)| k == want.0 && v == want.1),
                "{want:?} missing in {labels:?}"
            );
        }
        assert!(
            !labels.iter().any(|(k, _)| k == "app_name"),
            "no app_name quirk"
        );
        let sample = &r["series"][0]["samples"][0];
        assert!(sample["raw_len"].as_u64().unwrap_or(0) > 0);
    }
}

#[test]
fn nodejs_sdk_ingest_reaches_both_destinations_intact() {
    let node_dir = Path::new(CLIENTS).join("node");
    assert!(
        node_dir.join("node_modules/@pyroscope/nodejs").exists(),
        "@pyroscope/nodejs is not installed; run scripts/test.sh (npm install in {})",
        node_dir.display()
    );
    let (a, b) = (Sink::start(&[]), Sink::start(&[]));
    let gw = gateway(&a, &b);
    let out = run_client(
        "node",
        &["client.js", &format!("http://{}", gw.addr), "5"],
        &node_dir,
        Duration::from_secs(60),
    );
    let ia = common::poll_until(Duration::from_secs(10), || {
        let r = accepted(&a, "ingest");
        (r.len() >= 2 && accepted(&b, "ingest").len() == r.len()).then_some(r)
    })
    .unwrap_or_else(|| panic!("too few /ingest requests at both sinks; client said:\n{out}"));
    let ib = accepted(&b, "ingest");
    assert_eq!(checksums(&ia), checksums(&ib));
    assert!(a.records().iter().all(|r| r["status"] == 200));
    for r in &ia {
        assert_eq!(r["format"], "pprof");
        let name = &r["name"];
        assert_eq!(name["__name__"], "pyrogate.test.node");
        assert_eq!(name["service_name"], "pyrogate.test.node");
        assert_eq!(name["env"], "ci");
        assert_eq!(name["process.runtime.name"], "nodejs");
        assert_eq!(
            sinks::header(r, "content-type"),
            vec!["application/octet-stream"]
        );
        let target = r["target"].as_str().unwrap_or_default();
        assert!(target.contains("spyName=nodespy"), "{target}");
    }
}

/// The real agents' traffic passes the edge distributor (Pyroscope's validation and
/// normalisation, default limits, the real ingestion window): every request is accepted and
/// forwarded, nothing is discarded, and what is forwarded decodes (the sink parses every
/// profile before it answers 200).
#[test]
fn real_sdk_traffic_passes_validation() {
    let node_dir = Path::new(CLIENTS).join("node");
    assert!(
        node_dir.join("node_modules/@pyroscope/nodejs").exists(),
        "@pyroscope/nodejs is not installed; run scripts/test.sh (npm install in {})",
        node_dir.display()
    );
    let a = Sink::start(&[]);
    let config = common::write_temp(
        "validating.toml",
        "[distributor]\nvalidate = true\nnormalize = true\n",
    );
    let gw = Gateway::start(&[
        "--config",
        config.to_str().expect("utf-8 path"),
        "--workers",
        "2",
        "--forward-to",
        &a.url(),
    ]);
    let url = format!("http://{}", gw.addr);
    let py = run_client(
        "python3",
        &["python/client.py", &url, "5", "team-py"],
        Path::new(CLIENTS),
        Duration::from_secs(60),
    );
    let node = run_client(
        "node",
        &["client.js", &url, "5"],
        &node_dir,
        Duration::from_secs(60),
    );
    let recs = common::poll_until(Duration::from_secs(10), || {
        let push = accepted(&a, "push");
        let ingest = accepted(&a, "ingest");
        (!push.is_empty() && ingest.len() >= 2).then_some(a.records())
    })
    .unwrap_or_else(|| panic!("too little arrived; python said:\n{py}\nnode said:\n{node}"));
    assert!(
        recs.iter().all(|r| r["status"] == 200),
        "every forwarded request accepted: {recs:?}"
    );
    let m = gw.metrics();
    assert_eq!(
        m.sum("pyroscope_discarded_samples_total"),
        0.0,
        "nothing refused; python said:\n{py}\nnode said:\n{node}"
    );
    // Every profile request the agents made was answered 200 (no other status recorded).
    let counts: Vec<(&String, &f64)> = m
        .series
        .iter()
        .filter(|(k, _)| k.starts_with("pyroscope_receive_http_request_duration_seconds_count{"))
        .filter(|(k, _)| {
            k.contains("route=\"ingest\"") || k.contains("route=\"push_v1_pusherservice\"")
        })
        .collect();
    assert!(!counts.is_empty());
    for (k, v) in counts {
        assert!(
            k.contains("status_code=\"200\"") || *v == 0.0,
            "{k} {v}; python said:\n{py}\nnode said:\n{node}"
        );
    }
}

/// The generated imitations of these two agents (`pyrogate_testdata::sdk`) are only as good
/// as their likeness: capture what the real SDKs send (straight to a sink, no gateway) and
/// compare the shape that matters to a gateway — route, content headers, query parameters,
/// label names, body compression.
#[test]
fn generated_imitations_match_what_the_real_sdks_send() {
    use common::td::{corpus, pprof::Kind, sdk};
    let query_keys = |target: &str| -> BTreeSet<String> {
        target
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split('=').next())
            .map(str::to_string)
            .collect()
    };
    // Python: Connect Push.
    let s = Sink::start(&[]);
    run_client(
        "python3",
        &["python/client.py", &s.url(), "3", "team-py"],
        Path::new(CLIENTS),
        Duration::from_secs(60),
    );
    let real = common::poll_until(Duration::from_secs(10), || accepted(&s, "push").pop())
        .expect("the Python SDK pushed");
    let fake = sdk::python_push(1);
    for h in ["content-type", "content-encoding"] {
        assert_eq!(
            sinks::header(&real, h),
            vec![fake.header(h).unwrap_or_default()],
            "{h}"
        );
    }
    assert!(sinks::header(&real, "connect-protocol-version").is_empty());
    let ua = sinks::header(&real, "user-agent").join("");
    assert!(ua.starts_with("pyroscope-rs/pyspy/"), "{ua}");
    assert!(
        fake.header("user-agent")
            .unwrap_or_default()
            .starts_with("pyroscope-rs/pyspy/")
    );
    let real_names: BTreeSet<String> = sinks::series_labels(&real)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    for (k, _) in &fake.series[0].labels {
        if k != "env" && k != "region" {
            assert!(
                real_names.contains(k),
                "{k} not sent by the real SDK: {real_names:?}"
            );
        }
    }
    assert_eq!(
        real["series"][0]["samples"][0]["raw_gzip"], false,
        "plain pprof inside"
    );
    assert_eq!(real["target"], fake.target.as_str());
    // Node.js: /ingest with a raw gzip pprof and no Content-Encoding.
    let node_dir = Path::new(CLIENTS).join("node");
    let s = Sink::start(&[]);
    run_client(
        "node",
        &["client.js", &s.url(), "3"],
        &node_dir,
        Duration::from_secs(60),
    );
    let real = common::poll_until(Duration::from_secs(10), || accepted(&s, "ingest").pop())
        .expect("the Node.js SDK uploaded");
    let fake = sdk::node_ingest(1, corpus::FIXED_NOW_S, Kind::Wall);
    assert_eq!(
        sinks::header(&real, "content-type"),
        vec![fake.header("content-type").unwrap_or_default()]
    );
    assert!(sinks::header(&real, "content-encoding").is_empty());
    assert!(fake.header("content-encoding").is_none());
    let target = real["target"].as_str().unwrap_or_default();
    assert_eq!(query_keys(target), query_keys(&fake.target), "{target}");
    assert!(target.starts_with("/ingest?format=pprof&from="), "{target}");
    assert_eq!(real["format"], "pprof");
    assert!(common::td::gz::is_gzip(&fake.body));
}
