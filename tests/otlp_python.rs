//! An independent OTLP client: Python's `opentelemetry-proto` (PyPI 1.45.2, generated from
//! opentelemetry-proto v1.10.0) builds real `ExportProfilesServiceRequest` messages and
//! posts them over HTTP — protobuf, gzip'd protobuf and OTLP/JSON — through the gateway to
//! two sinks, which must receive exactly the bytes the client sent; the client decodes the
//! answers with the package's own `ExportProfilesServiceResponse` (scripts/test.sh installs
//! the package).

mod common;
mod sinks;

use std::path::Path;
use std::time::Duration;

use common::{Gateway, run_client};
use sinks::{Sink, fnv, header};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn opentelemetry_proto_client_through_to_two_sinks() {
    let (a, b) = (Sink::start(&[]), Sink::start(&[]));
    a.control("otlp_partial=1");
    let (ua, ub) = (a.url(), b.url());
    let gw = Gateway::start(&["--workers", "2", "--forward-to", &ua, "--forward-to", &ub]);
    let out = common::temp_path("otlp-python");
    std::fs::create_dir_all(&out).expect("output directory");
    let clients = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
    let base = format!("http://{}", gw.addr);
    let printed = run_client(
        "python3",
        &[
            "python/otlp_export.py",
            &base,
            &out.to_string_lossy(),
            "py-tenant",
        ],
        &clients,
        &[],
        Duration::from_secs(60),
    );
    let lines: Vec<&str> = printed.lines().filter(|l| l.starts_with("OK ")).collect();
    assert_eq!(
        lines,
        [
            "OK proto.bin 200 application/x-protobuf 1",
            "OK proto.bin.gz 200 application/x-protobuf 1",
            "OK request.json 200 application/json 1",
        ],
        "{printed}"
    );
    let sent: Vec<Vec<u8>> = ["proto.bin", "proto.bin.gz", "request.json"]
        .iter()
        .map(|f| std::fs::read(out.join(f)).expect("body written by the client"))
        .collect();
    for sink in [&a, &b] {
        let recs = sink.wait_records(3, WAIT);
        assert_eq!(recs.len(), 3, "{recs:?}");
        for (rec, body) in recs.iter().zip(&sent) {
            assert_eq!(rec["status"], 200, "{rec}");
            assert_eq!(rec["route"], "otlp");
            assert_eq!(rec["tenant"], "py-tenant");
            assert_eq!(rec["body_fnv"], fnv(body), "byte for byte: {rec}");
        }
        assert_eq!(header(&recs[1], "content-encoding"), ["gzip"]);
        assert_eq!(header(&recs[2], "content-type"), ["application/json"]);
    }
}
