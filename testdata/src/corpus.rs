//! The whole corpus: one request for every route and format the gateway serves, several
//! tenants, and broken variants of each kind with the answer a pass-through gateway gives.
//!
//! Also the lookup of the optional captured corpus (`../shared/fixtures` on the project's
//! own machines, or `$PYROGATE_FIXTURES`): tests that use it run only when it is present and
//! print one line naming what they skipped otherwise. Nothing may depend on it alone.

use std::path::{Path, PathBuf};

use crate::gz::gzip;
use crate::pprof::Kind;
use crate::push;
use crate::sdk::{self, Request};

/// Which gateway route a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    Ingest,
    Push,
}

/// One well-formed request of the corpus.
#[derive(Debug, Clone)]
pub struct Case {
    pub route: Route,
    /// The tenant sent in `X-Scope-OrgID`, if any.
    pub tenant: Option<&'static str>,
    pub request: Request,
    /// What Pyroscope answers: 200, except 422 for a multipart with a non-empty
    /// `prev_profile` ("unsupported client version"), which real servers refuse.
    pub pyroscope_status: u16,
}

impl Case {
    pub fn name(&self) -> &str {
        &self.request.name
    }
}

/// Tenants the corpus rotates through (`None` = no `X-Scope-OrgID`).
pub const TENANTS: [Option<&str>; 3] = [Some("team-a"), Some("team-b"), None];

/// A fixed `now` (2026-11-22T01:51:45Z, seconds) for corpora that must be bit-for-bit
/// repeatable; pass the real time where the ingestion window matters.
pub const FIXED_NOW_S: u64 = 1_795_312_305;

/// Size of the JFR recordings in the corpus (uncompressed).
const JFR_SIZE: usize = 64 * 1024;

/// Every route and format, each once, tenants rotating.
pub fn every_route_and_format(seed: u64, now_s: u64) -> Vec<Case> {
    let many = push::many_series(seed, 4);
    let requests = vec![
        sdk::python_push(seed),
        sdk::rust_push(seed, now_s),
        sdk::push_proto(many.clone(), false),
        sdk::push_proto(many.clone(), true),
        sdk::push_json(many.clone(), false),
        sdk::push_json(vec![push::python_series(seed, "json.app")], true),
        sdk::push_grpc_web(many.clone(), false),
        sdk::push_grpc_web(vec![push::python_series(seed, "grpcweb.app")], true),
        sdk::node_ingest(seed, now_s, Kind::Wall),
        sdk::node_ingest(seed, now_s, Kind::Heap),
        sdk::go_ingest(seed, now_s, Kind::Cpu, false),
        sdk::go_ingest(seed, now_s, Kind::Goroutine, false),
        sdk::go_ingest(seed, now_s, Kind::Heap, true),
        sdk::java_jfr(seed, now_s, JFR_SIZE),
        sdk::jfr_raw(seed, now_s, JFR_SIZE),
        sdk::rs05_ingest(seed, now_s),
        sdk::stack_ingest(seed, now_s, "folded"),
        sdk::stack_ingest(seed, now_s, "lines"),
        sdk::stack_ingest(seed, now_s, "trie"),
        sdk::stack_ingest(seed, now_s, "tree"),
        sdk::stack_ingest(seed, now_s, "speedscope"),
    ];
    requests
        .into_iter()
        .enumerate()
        .map(|(i, request)| {
            let tenant = TENANTS[i % TENANTS.len()];
            let route = if request.path().starts_with("/push.v1") {
                Route::Push
            } else {
                Route::Ingest
            };
            let request = match tenant {
                Some(t) => request.with_tenant(t),
                None => request,
            };
            let pyroscope_status = if request.name.ends_with("-prev") {
                422
            } else {
                200
            };
            Case {
                route,
                tenant,
                request,
                pyroscope_status,
            }
        })
        .collect()
}

/// A broken request and what a pass-through gateway (no validation stage) answers.
#[derive(Debug, Clone)]
pub struct Broken {
    pub route: Route,
    pub request: Request,
    /// HTTP status of the answer.
    pub status: u16,
    /// Connect code of a Push answer (`None` for `/ingest`, whose bodies are forwarded
    /// untouched and only refused for their size).
    pub code: Option<&'static str>,
}

fn broken(
    route: Route,
    mut request: Request,
    what: &str,
    status: u16,
    code: Option<&'static str>,
) -> Broken {
    request.name = format!("{}:{what}", request.name);
    Broken {
        route,
        request,
        status,
        code,
    }
}

/// The body cut at half its length (the request is consistent: `Content-Length` follows).
pub fn truncate(mut r: Request) -> Request {
    r.body.truncate(r.body.len() / 2);
    r
}

/// A gzip body whose deflate stream is damaged after its header.
pub fn corrupt_gzip(mut r: Request) -> Request {
    let n = r.body.len();
    for b in r
        .body
        .iter_mut()
        .skip(10)
        .take(n.saturating_sub(18).min(64))
    {
        *b ^= 0x5a;
    }
    r
}

/// Broken variants of every kind: truncated, corrupt gzip, wrong types, oversized.
/// `max_body` is the gateway's `max_request_body`; the oversized cases exceed it by a byte.
pub fn broken_variants(seed: u64, now_s: u64, max_body: usize) -> Vec<Broken> {
    let one = || vec![push::python_series(seed, "broken.app")];
    let plain = sdk::push_proto(one(), false);
    // `series` (field 1) sent as a varint instead of a message.
    let mut wrong_type = plain.clone();
    wrong_type.body = vec![0x08, 0x01];
    // A label name that is not a string but a nested message with invalid UTF-8 inside.
    let mut bad_utf8 = plain.clone();
    bad_utf8.body = vec![0x0a, 0x06, 0x0a, 0x04, 0x0a, 0x02, 0xff, 0xfe];
    let mut json_wrong_type = sdk::push_json(one(), false);
    json_wrong_type.body = br#"{"series": {"labels": 5}}"#.to_vec();
    let mut json_bad_b64 = sdk::push_json(one(), false);
    json_bad_b64.body = br#"{"series": [{"samples": [{"rawProfile": "not base64!"}]}]}"#.to_vec();
    let mut grpc_web_short = sdk::push_grpc_web(one(), false);
    grpc_web_short.body.truncate(grpc_web_short.body.len() - 3);
    let unsupported_ct = plain
        .clone()
        .with_header("Content-Type", "application/x-protobuf");
    let unsupported_enc = plain.clone().with_header("Content-Encoding", "br");
    let mut oversized_push = plain.clone();
    oversized_push.body = vec![0x0a; max_body + 1];
    let mut oversized_ingest = sdk::rs05_ingest(seed, now_s);
    oversized_ingest.body = vec![0x1f; max_body + 1];
    let mut gzip_of_garbage = sdk::push_proto(one(), true);
    gzip_of_garbage.body = gzip(b"\xff\xff\xff\xff this is not a protobuf");

    let p = Route::Push;
    let i = Route::Ingest;
    let ia = Some("invalid_argument");
    vec![
        broken(p, truncate(plain.clone()), "truncated", 400, ia),
        broken(
            p,
            truncate(sdk::python_push(seed)),
            "truncated-gzip",
            400,
            ia,
        ),
        broken(
            p,
            corrupt_gzip(sdk::python_push(seed)),
            "corrupt-gzip",
            400,
            ia,
        ),
        broken(p, wrong_type, "wrong-wire-type", 400, ia),
        broken(p, bad_utf8, "invalid-utf8-string", 400, ia),
        broken(p, gzip_of_garbage, "gzip-of-garbage", 400, ia),
        broken(p, json_wrong_type, "json-wrong-type", 400, ia),
        broken(p, json_bad_b64, "json-bad-base64", 400, ia),
        // gRPC-Web errors travel in headers of an HTTP 200.
        broken(p, grpc_web_short, "grpc-web-truncated-frame", 200, ia),
        broken(p, unsupported_ct, "unsupported-content-type", 415, None),
        broken(
            p,
            unsupported_enc,
            "unsupported-encoding",
            501,
            Some("unimplemented"),
        ),
        broken(
            p,
            oversized_push,
            "oversized",
            413,
            Some("resource_exhausted"),
        ),
        broken(i, oversized_ingest, "oversized", 413, None),
        // Bodies of /ingest are not decoded by a pass-through gateway: forwarded as sent.
        broken(
            i,
            truncate(sdk::node_ingest(seed, now_s, Kind::Wall)),
            "truncated",
            200,
            None,
        ),
        broken(
            i,
            corrupt_gzip(sdk::node_ingest(seed, now_s, Kind::Wall)),
            "corrupt-gzip",
            200,
            None,
        ),
        broken(
            i,
            truncate(sdk::go_ingest(seed, now_s, Kind::Cpu, false)),
            "truncated-multipart",
            200,
            None,
        ),
    ]
}

// === the optional captured corpus ===

/// Environment variable naming a directory of captured requests and profiles.
pub const FIXTURES_ENV: &str = "PYROGATE_FIXTURES";

/// The captured corpus, when present: `$PYROGATE_FIXTURES`, else `../shared/fixtures` next
/// to the repository (only on the project's own machines; a fresh clone has none).
pub fn fixtures_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(FIXTURES_ENV) {
        let p = PathBuf::from(p);
        return p.is_dir().then_some(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    p.join("README.md")
        .is_file()
        .then(|| p.canonicalize().unwrap_or(p))
}

/// The captured corpus' directory, or one line naming what is skipped (`what`) and `None`.
pub fn fixtures_or_skip(what: &str) -> Option<PathBuf> {
    let dir = fixtures_dir();
    if dir.is_none() {
        skipped(
            what,
            &format!("no captured corpus (../shared/fixtures or ${FIXTURES_ENV})"),
        );
    }
    dir
}

/// Reads `rel` from the captured corpus, or prints one line naming what is skipped
/// (`what`) and returns `None`.
pub fn fixture(rel: &str, what: &str) -> Option<Vec<u8>> {
    let dir = fixtures_or_skip(what)?;
    match std::fs::read(dir.join(rel)) {
        Ok(b) => Some(b),
        Err(e) => {
            skipped(what, &format!("{}: {e}", dir.join(rel).display()));
            None
        }
    }
}

/// One line on the process' stderr, past the test harness' output capture (which only
/// captures the print macros), so a skipped check is visible in every test run.
pub fn skipped(what: &str, why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED {what}: {why}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn corpus_covers_routes_formats_and_tenants() {
        let all = every_route_and_format(1, FIXED_NOW_S);
        let names: HashSet<&str> = all.iter().map(Case::name).collect();
        assert_eq!(names.len(), all.len(), "names are unique");
        let tenants: HashSet<Option<&str>> = all.iter().map(|c| c.tenant).collect();
        assert_eq!(tenants.len(), 3);
        for format in [
            "pprof",
            "jfr",
            "folded",
            "lines",
            "trie",
            "tree",
            "speedscope",
        ] {
            assert!(
                all.iter()
                    .any(|c| c.request.target.contains(&format!("format={format}"))),
                "{format}"
            );
        }
        assert!(all.iter().any(|c| {
            c.request
                .header("content-type")
                .is_some_and(|v| v.starts_with("multipart/"))
        }));
        for ct in [
            "application/proto",
            "application/json",
            "application/grpc-web+proto",
        ] {
            assert!(
                all.iter()
                    .any(|c| c.request.header("content-type") == Some(ct)),
                "{ct}"
            );
        }
        assert!(all.iter().any(|c| c.request.chunk.is_some()));
        assert!(all.iter().any(|c| c.request.series.len() > 1));
        // Repeatable for a fixed seed and time.
        let again = every_route_and_format(1, FIXED_NOW_S);
        assert!(all.iter().zip(&again).all(|(a, b)| a.request == b.request));
    }

    #[test]
    fn broken_variants_differ_from_the_originals() {
        let b = broken_variants(1, FIXED_NOW_S, 1 << 16);
        assert!(b.len() >= 12);
        assert!(b.iter().any(|x| x.request.body.len() == (1 << 16) + 1));
        let names: HashSet<&str> = b.iter().map(|x| x.request.name.as_str()).collect();
        assert_eq!(names.len(), b.len());
    }
}
