//! The project's whole generated corpus through the real binary: every route and format,
//! with several tenants, reaches two sinks intact; every broken variant gets its documented
//! answer; and, when the captured corpus of real agent traffic is present, it is replayed
//! the same way (otherwise one line says it was skipped).

mod common;
mod sinks;

use std::time::Duration;

use common::{Gateway, td};
use serde_json::Value;
use sinks::{Sink, fnv};
use td::corpus::{self, Route};

const WAIT: Duration = Duration::from_secs(10);

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

fn route_name(r: Route) -> &'static str {
    match r {
        Route::Ingest => "ingest",
        Route::Push => "push",
    }
}

/// `raw_fnv` of every sample of a sink record, in order.
fn raw_fnvs(rec: &Value) -> Vec<String> {
    rec["series"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["samples"].as_array().cloned().unwrap_or_default())
        .filter_map(|x| x["raw_fnv"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn every_route_and_format_reaches_both_sinks_intact() {
    let (a, b) = (Sink::start(&[]), Sink::start(&[]));
    let gw = gateway(&[&a, &b], &[]);
    let cases = corpus::every_route_and_format(11, corpus::FIXED_NOW_S);
    let mut c = gw.connect();
    for case in &cases {
        c.send(&case.request.render(&gw.addr.to_string()))
            .expect("send");
        let r = c.read_response(common::IO_TIMEOUT).expect("response");
        assert_eq!(
            r.status,
            case.pyroscope_status,
            "{}: {}",
            case.name(),
            r.body_str()
        );
        if r.closes() {
            c = gw.connect();
        }
    }
    for sink in [&a, &b] {
        let recs = sink.wait_records(cases.len(), WAIT);
        assert_eq!(recs.len(), cases.len(), "one request per case");
        for (case, rec) in cases.iter().zip(&recs) {
            let what = case.name();
            assert_eq!(rec["route"], route_name(case.route), "{what}");
            assert_eq!(rec["tenant"], case.tenant.unwrap_or("anonymous"), "{what}");
            assert_eq!(rec["status"], case.pyroscope_status, "{what}: {rec}");
            let verbatim = rec["body_fnv"] == fnv(&case.request.body).as_str();
            if case.request.header("content-type") == Some("application/grpc-web+proto") {
                // gRPC-Web is unwrapped and sent on as Connect: the profiles are intact.
                let want: Vec<String> = case
                    .request
                    .series
                    .iter()
                    .flat_map(|s| s.samples.iter().map(|p| fnv(&p.raw_profile)))
                    .collect();
                assert_eq!(raw_fnvs(rec), want, "{what}");
            } else {
                assert!(verbatim, "{what}: body changed on the way: {rec}");
            }
            if case.route == Route::Push {
                assert_eq!(
                    rec["series"].as_array().map(Vec::len),
                    Some(case.request.series.len()),
                    "{what}"
                );
            }
        }
    }
}

#[test]
fn broken_variants_get_their_answers() {
    const MAX_BODY: usize = 64 * 1024;
    let a = Sink::start(&[]);
    // Pyrogate's own answers to broken Pushes: with decode_push = "auto" they would go
    // downstream unread (tests/decode_push.rs covers that).
    let gw = gateway(
        &[&a],
        &["--max-request-body", "64KiB", "--decode-push", "always"],
    );
    for case in corpus::broken_variants(3, corpus::FIXED_NOW_S, MAX_BODY) {
        let what = case.request.name.clone();
        let mut c = gw.connect();
        c.send(&case.request.render(&gw.addr.to_string()))
            .expect("send");
        let r = c.read_response(common::IO_TIMEOUT).expect("response");
        match case.route {
            // A pass-through gateway forwards /ingest bodies untouched: the sink (Pyroscope's
            // framing rules) refuses the damaged ones with 422 and the gateway relays it.
            Route::Ingest if case.status == 200 => {
                assert_eq!(r.status, 422, "{what}: {}", r.body_str())
            }
            _ => assert_eq!(r.status, case.status, "{what}: {}", r.body_str()),
        }
        if let Some(code) = case.code {
            if r.status == 200 {
                // gRPC-Web: trailers-only error in the headers.
                assert_eq!(r.header("grpc-status"), Some("3"), "{what}");
            } else {
                assert_eq!(r.json()["code"], code, "{what}");
            }
        }
    }
    // Nothing broken on the Push route reached the sink.
    assert!(
        a.records().iter().all(|r| r["route"] != "push"),
        "{:?}",
        a.records()
    );
}

/// The captured requests of real agents, when the captured corpus is present.
#[test]
fn captured_corpus_when_present() {
    let Some(dir) = corpus::fixtures_or_skip("tests/corpus.rs captured_corpus_when_present") else {
        return;
    };
    let read = |rel: &str| std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let (a, b) = (Sink::start(&[]), Sink::start(&[]));
    let gw = gateway(&[&a, &b], &[]);
    /// Route, request target, headers, body.
    type Captured<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, Vec<u8>);
    let cases: Vec<Captured<'_>> = vec![
        (
            "push",
            "/push.v1.PusherService/Push".into(),
            vec![
                ("Content-Type", "application/proto"),
                ("Content-Encoding", "gzip"),
            ],
            read("clients/pyroscope-io-1.4.0-push.bin"),
        ),
        (
            "ingest",
            "/ingest?format=pprof&name=feas.node.app&from=1795312298&until=1795312309".into(),
            vec![("Content-Type", "application/octet-stream")],
            read("clients/pyroscope-nodejs-0.6.4-ingest-wall.bin"),
        ),
        (
            "ingest",
            "/ingest?format=pprof&name=go.app".into(),
            vec![],
            read("pprof/heap.pb.gz"),
        ),
        (
            "ingest",
            "/ingest?format=jfr&name=java.app.cpu".into(),
            vec![],
            td::gz::gunzip(&read("jfr/dump1.jfr.gz")).expect("jfr gunzips"),
        ),
        (
            "ingest",
            "/ingest?format=speedscope&name=app.cpu".into(),
            vec![("Content-Type", "application/json")],
            read("speedscope/two-sampled.speedscope.json"),
        ),
    ];
    for (route, path, headers, body) in &cases {
        let r = gw.request("POST", path, headers, body);
        assert_eq!(r.status, 200, "{path}: {}", r.body_str());
        for s in [&a, &b] {
            let rec = s.wait_records(1, WAIT).pop().expect("a record");
            assert_eq!(rec["route"], *route);
            assert_eq!(rec["body_fnv"], fnv(body).as_str(), "{path}");
            s.reset();
        }
    }
}

/// With the edge distributor on (validation and normalisation, Pyroscope's default limits),
/// every generated request of every route and format still gets Pyroscope's answer, and
/// every accepted one is forwarded with its profiles intact or normalised, never refused
/// or dropped. The ingestion window is off here: the corpus is stamped at a fixed time so
/// that it is the same on every run.
#[test]
fn every_route_and_format_passes_validation() {
    let a = Sink::start(&[]);
    let config = common::write_temp(
        "validating.toml",
        "[distributor]\nvalidate = true\nnormalize = true\n\n[limits]\nreject_older_than = \"0s\"\nreject_newer_than = \"0s\"\n",
    );
    let gw = gateway(&[&a], &["--config", config.to_str().expect("utf-8 path")]);
    let cases = corpus::every_route_and_format(13, corpus::FIXED_NOW_S);
    let mut c = gw.connect();
    for case in &cases {
        c.send(&case.request.render(&gw.addr.to_string()))
            .expect("send");
        let r = c.read_response(common::IO_TIMEOUT).expect("response");
        assert_eq!(
            r.status,
            case.pyroscope_status,
            "{}: {}",
            case.name(),
            r.body_str()
        );
        if r.closes() {
            c = gw.connect();
        }
    }
    // The one Pyroscope refuses (`prev_profile`) is refused at the edge now.
    let accepted: Vec<_> = cases.iter().filter(|c| c.pyroscope_status == 200).collect();
    let recs = a.wait_records(accepted.len(), WAIT);
    assert_eq!(recs.len(), accepted.len());
    for (case, rec) in accepted.iter().zip(&recs) {
        assert_eq!(rec["status"], 200, "{}: {rec}", case.name());
        assert_eq!(rec["route"], route_name(case.route), "{}", case.name());
    }
    let m = gw.metrics();
    assert_eq!(m.sum("pyroscope_discarded_samples_total"), 0.0);
}
