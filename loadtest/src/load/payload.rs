//! What real agents send (`docs/sdks.md`), rendered once per run into complete HTTP/1.1
//! requests (head plus framed body) that the client writes with a single write. The shapes
//! come from the test-data crate's agent imitations ([`pyrogate_testdata::sdk`]).
//!
//! | protocol | imitates | shape |
//! |---|---|---|
//! | `ingest-pprof` | @pyroscope/nodejs 0.6.4 | `/ingest?format=pprof&…`, raw gzip pprof, `application/octet-stream`, no `Content-Encoding` |
//! | `ingest-multipart` | pyroscope-go | `/ingest` (Go-encoded, sorted query, ns timestamps), multipart `profile` + `sample_type_config` |
//! | `ingest-folded` | pyroscope-rs ≤ 0.5 (py-spy, rbspy) | `/ingest?…&format=folded`, folded text, `binary/octet-stream` |
//! | `ingest-jfr` | pyroscope-java (OkHttp) | `/ingest?…&format=jfr`, multipart `jfr` + `labels`, **chunked** |
//! | `push` | pyroscope-io 1.4.0 | Connect Push, `application/proto`, `Content-Encoding: gzip` |
//! | `push-json` | curl / tests | Connect Push, `application/json` (protojson, base64 `rawProfile`) |
//! | `push-plain` | a Connect client without its gzip option (connect-go's default) | the `push` request, body inflated, no `Content-Encoding` (not part of `mix`) |
//! | `otlp` | OTel Collector `otlphttp` exporter | `POST /v1development/profiles`, `application/x-protobuf`, `Content-Encoding: gzip`, an `ExportProfilesServiceRequest` in the v1.10.0 layout (not part of `mix`) |
//!
//! Bodies come from one of three sources: the generated agent-sized ones (default), a
//! generated pprof of a chosen size, or a directory of captured requests (`--fixtures`).
//! `from`/`until` are taken once at start-up (the current 10-second bucket), so every
//! request of a run carries the same bytes.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use pyrogate_testdata::formats;
use pyrogate_testdata::gz::{gunzip, gzip};
use pyrogate_testdata::otlp;
use pyrogate_testdata::pprof::{self, Kind};
use pyrogate_testdata::push::{self, Series};
use pyrogate_testdata::sdk::{self, Request};

/// Wire protocols the generator can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Protocol {
    IngestPprof,
    IngestMultipart,
    IngestFolded,
    IngestJfr,
    Push,
    PushJson,
    /// Connect Push without compression (`application/proto`, no `Content-Encoding`), as a
    /// Connect client sends without its gzip option (not part of `mix`).
    PushPlain,
    /// OTLP profiles (not part of `mix`).
    Otlp,
    /// All of the above in turn.
    Mix,
}

impl Protocol {
    pub const SINGLE: [Protocol; 6] = [
        Protocol::IngestPprof,
        Protocol::IngestMultipart,
        Protocol::IngestFolded,
        Protocol::IngestJfr,
        Protocol::Push,
        Protocol::PushJson,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::IngestPprof => "ingest-pprof",
            Protocol::IngestMultipart => "ingest-multipart",
            Protocol::IngestFolded => "ingest-folded",
            Protocol::IngestJfr => "ingest-jfr",
            Protocol::Push => "push",
            Protocol::PushJson => "push-json",
            Protocol::PushPlain => "push-plain",
            Protocol::Otlp => "otlp",
            Protocol::Mix => "mix",
        }
    }
}

/// Where request bodies come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The project's own agent-shaped requests, sized like the agents' (default).
    Generated,
    /// A generated gzip'd pprof of about `size` bytes in every profile body.
    Synthetic { size: usize },
    /// Captured requests and real profiles from a directory laid out like the project's
    /// optional captured corpus (`clients/`, `pprof/`, `jfr/`).
    Captured(PathBuf),
}

impl Source {
    pub fn name(&self) -> &'static str {
        match self {
            Source::Generated => "generated",
            Source::Synthetic { .. } => "synthetic",
            Source::Captured(_) => "captured",
        }
    }
}

/// A parsed `--target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
    /// Path prefix before `/ingest` and `/push.v1…` (empty or starting with `/`, no trailing
    /// slash).
    pub base_path: String,
    /// `https://`: spoken to over TLS.
    pub tls: bool,
}

impl Target {
    /// The host of the authority, without the port (an IPv6 address keeps its brackets).
    pub fn hostname(&self) -> &str {
        if self.host.starts_with('[') {
            return match self.host.find(']') {
                Some(i) => &self.host[..=i],
                None => &self.host,
            };
        }
        match self.host.rsplit_once(':') {
            Some((h, _)) => h,
            None => &self.host,
        }
    }
}

/// Parses `http[s]://host[:port][/prefix]` and resolves the host once.
pub fn parse_target(url: &str) -> Result<Target, String> {
    let (rest, tls) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(r), _) => (r, false),
        (None, Some(r)) => (r, true),
        (None, None) => {
            return Err(format!(
                "--target {url:?}: only http:// and https:// URLs are supported"
            ));
        }
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(format!("--target {url:?}: missing host"));
    }
    let has_port = match authority.strip_prefix('[') {
        Some(v6) => v6.contains("]:"),
        None => authority.contains(':'),
    };
    let with_port = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:{}", if tls { 443 } else { 80 })
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("--target {url:?}: cannot resolve {with_port}: {e}"))?
        .next()
        .ok_or_else(|| format!("--target {url:?}: {with_port} resolves to nothing"))?;
    Ok(Target {
        url: url.to_owned(),
        addr,
        host: authority.to_owned(),
        base_path: path.trim_end_matches('/').to_owned(),
        tls,
    })
}

/// Options shared by every protocol.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: Source,
    pub seed: u64,
    pub tenant: Option<String>,
    /// Unix seconds used for `from`/`until`.
    pub now_s: u64,
}

/// One pre-rendered request.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub protocol: Protocol,
    /// Head and framed body, ready to write.
    pub bytes: Bytes,
    /// Body bytes before transfer framing (what a sink checksums).
    pub body: Bytes,
    /// The Push series in the body (Push protocols), for checks on what arrived.
    pub series: Vec<Series>,
}

/// Renders the request(s) of `protocol` (six for `mix`, in [`Protocol::SINGLE`] order).
pub fn prepare(
    protocol: Protocol,
    target: &Target,
    opts: &Options,
) -> Result<Vec<Prepared>, String> {
    let synthetic = match &opts.source {
        Source::Synthetic { size } => {
            Some(pprof::sized(*size, opts.seed, Kind::Cpu).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let list: Vec<Protocol> = if protocol == Protocol::Mix {
        Protocol::SINGLE.to_vec()
    } else {
        vec![protocol]
    };
    list.into_iter()
        .map(|p| {
            // `push-plain` is the Push request with its body inflated.
            let base = if p == Protocol::PushPlain {
                Protocol::Push
            } else {
                p
            };
            let mut req = match (&opts.source, &synthetic) {
                (Source::Captured(dir), _) => captured(base, opts, dir)?,
                (_, Some(s)) => sized(base, opts, s),
                _ => generated(base, opts),
            };
            if p == Protocol::PushPlain {
                req.body = gunzip(&req.body).ok_or("push-plain: the Push body is not gzip'd")?;
                req.headers
                    .retain(|(n, _)| !n.eq_ignore_ascii_case("content-encoding"));
            }
            Ok(finish(p, req, target, opts))
        })
        .collect()
}

/// Size of the generated JFR recordings (uncompressed); real 10 s recordings are larger,
/// but this keeps a mixed run's bodies comparable.
const JFR_SIZE: usize = 64 * 1024;

fn generated(p: Protocol, o: &Options) -> Request {
    let (seed, now) = (o.seed, o.now_s);
    match p {
        Protocol::IngestPprof => sdk::node_ingest(seed, now, Kind::Wall),
        Protocol::IngestMultipart => sdk::go_ingest(seed, now, Kind::Goroutine, false),
        Protocol::IngestFolded => sdk::stack_ingest(seed, now, "folded"),
        Protocol::IngestJfr => sdk::java_jfr(seed, now, JFR_SIZE),
        Protocol::Push | Protocol::PushPlain | Protocol::Mix => sdk::python_push(seed),
        Protocol::PushJson => sdk::push_json(
            vec![push::python_series(seed, "loadtest.python.app")],
            false,
        ),
        Protocol::Otlp => otlp_collector(&otlp::Spec::new(seed, otlp::Layout::V1_10)),
    }
}

/// Bytes per generated OTLP sample (stack, value, attribute): sizes a `--size` body.
const OTLP_BYTES_PER_SAMPLE: usize = 48;

/// What the Collector's `otlphttp` exporter sends: a gzip'd protobuf
/// `ExportProfilesServiceRequest` (deterministic from the spec's seed).
fn otlp_collector(spec: &otlp::Spec) -> Request {
    Request::post(
        "otlp-collector",
        "/v1development/profiles".to_owned(),
        &[
            (
                "User-Agent",
                "OpenTelemetry Collector Contrib/0.140.0".to_owned(),
            ),
            ("Content-Type", "application/x-protobuf".to_owned()),
            ("Content-Encoding", "gzip".to_owned()),
        ],
        gzip(&otlp::request(spec)),
    )
}

/// The agents' requests with a generated profile of the chosen size in every body.
fn sized(p: Protocol, o: &Options, s: &pprof::Sized) -> Request {
    let (seed, now) = (o.seed, o.now_s);
    let series = |raw: &[u8]| {
        let mut x = push::python_series(seed, "loadtest.python.app");
        x.samples[0].raw_profile = raw.to_vec();
        vec![x]
    };
    match p {
        Protocol::IngestPprof => {
            let mut r = sdk::node_ingest(seed, now, Kind::Wall);
            r.body = s.gzip.clone();
            r
        }
        Protocol::IngestMultipart => sdk::go_multipart(
            seed,
            now,
            Kind::Cpu,
            &s.gzip,
            None,
            Some(formats::sample_type_config(Kind::Cpu)),
        ),
        Protocol::IngestFolded => {
            let mut r = sdk::stack_ingest(seed, now, "folded");
            r.body = formats::folded(s.gzip.len(), seed).into_bytes();
            r
        }
        Protocol::IngestJfr => sdk::java_jfr(seed, now, s.plain.len().max(1024)),
        Protocol::Push | Protocol::PushPlain | Protocol::Mix => {
            let series = series(&s.plain);
            let mut r = sdk::python_push(seed);
            r.body = gzip(&push::encode(&series));
            r.series = series;
            r
        }
        Protocol::PushJson => sdk::push_json(series(&s.gzip), false),
        Protocol::Otlp => otlp_collector(
            &otlp::Spec::new(seed, otlp::Layout::V1_10)
                .samples((s.plain.len() / OTLP_BYTES_PER_SAMPLE).max(1)),
        ),
    }
}

/// The agents' requests with captured bodies from `dir` (folded text has no capture and
/// stays generated).
fn captured(p: Protocol, o: &Options, dir: &Path) -> Result<Request, String> {
    let (seed, now) = (o.seed, o.now_s);
    let read = |rel: &str| crate::fixtures::read(dir, rel);
    let push_series = || -> Result<Vec<Series>, String> {
        let gz = read("clients/pyroscope-io-1.4.0-push.bin")?;
        let raw = gunzip(&gz).ok_or("push capture: not gzip")?;
        push::decode(&raw).ok_or_else(|| "push capture: not a PushRequest".into())
    };
    Ok(match p {
        Protocol::IngestPprof => {
            let mut r = sdk::node_ingest(seed, now, Kind::Wall);
            r.body = read("clients/pyroscope-nodejs-0.6.4-ingest-wall.bin")?;
            r
        }
        Protocol::IngestMultipart => {
            let config = read("pprof/req_2.st.json")?;
            sdk::go_multipart(
                seed,
                now,
                Kind::Goroutine,
                &read("pprof/req_2.pprof")?,
                None,
                Some(&String::from_utf8_lossy(&config)),
            )
        }
        Protocol::IngestFolded => sdk::stack_ingest(seed, now, "folded"),
        Protocol::IngestJfr => sdk::java_multipart(
            seed,
            now,
            &read("jfr/dump1.jfr.gz")?,
            &read("jfr/dump1.labels.pb.gz")?,
        ),
        Protocol::Push | Protocol::PushPlain | Protocol::Mix => {
            let mut r = sdk::python_push(seed);
            r.body = read("clients/pyroscope-io-1.4.0-push.bin")?;
            r.series = push_series()?;
            r
        }
        Protocol::PushJson => sdk::push_json(push_series()?, false),
        // No OTLP capture exists: the generated request.
        Protocol::Otlp => otlp_collector(&otlp::Spec::new(seed, otlp::Layout::V1_10)),
    })
}

/// Applies the tenant and the target's base path and renders the bytes.
fn finish(p: Protocol, mut req: Request, t: &Target, o: &Options) -> Prepared {
    if let Some(tn) = &o.tenant {
        req = req.with_tenant(tn);
    }
    req.target = format!("{}{}", t.base_path, req.target);
    Prepared {
        protocol: p,
        bytes: Bytes::from(req.render(&t.host)),
        body: Bytes::from(req.body),
        series: req.series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        parse_target("http://127.0.0.1:4040").expect("valid")
    }

    fn opts(source: Source) -> Options {
        Options {
            source,
            seed: 1,
            tenant: Some("t1".into()),
            now_s: 1_795_312_305,
        }
    }

    #[test]
    fn targets() {
        let t = parse_target("http://127.0.0.1:4040/pyroscope/").expect("valid");
        assert_eq!(t.addr, "127.0.0.1:4040".parse().expect("addr"));
        assert_eq!(t.host, "127.0.0.1:4040");
        assert_eq!(t.base_path, "/pyroscope");
        let t = parse_target("http://127.0.0.1").expect("valid");
        assert_eq!(t.addr.port(), 80);
        assert!(!t.tls);
        assert_eq!(t.hostname(), "127.0.0.1");
        let t = parse_target("https://127.0.0.1").expect("valid");
        assert_eq!((t.addr.port(), t.tls), (443, true));
        let t = parse_target("https://localhost:8443/p").expect("valid");
        assert_eq!((t.addr.port(), t.hostname()), (8443, "localhost"));
        assert_eq!(t.base_path, "/p");
        let t = parse_target("https://[::1]:8443").expect("valid");
        assert_eq!((t.hostname(), t.host.as_str()), ("[::1]", "[::1]:8443"));
        assert!(parse_target("ftp://x").is_err());
        assert!(parse_target("http://").is_err());
        assert!(parse_target("https://").is_err());
    }

    #[test]
    fn every_protocol_renders_a_parsable_request() {
        for source in [Source::Generated, Source::Synthetic { size: 4096 }] {
            let all = prepare(Protocol::Mix, &target(), &opts(source.clone())).expect("renders");
            assert_eq!(all.len(), 6);
            for p in &all {
                let mut slots = [httparse::EMPTY_HEADER; 32];
                let mut req = httparse::Request::new(&mut slots);
                let n = match req.parse(&p.bytes) {
                    Ok(httparse::Status::Complete(n)) => n,
                    other => panic!("{:?}: {other:?}", p.protocol),
                };
                let chunked = req
                    .headers
                    .iter()
                    .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
                assert_eq!(chunked, p.protocol == Protocol::IngestJfr);
                if !chunked {
                    assert_eq!(&p.bytes[n..], &p.body[..], "{:?}", p.protocol);
                }
                assert!(
                    req.headers
                        .iter()
                        .any(|h| h.name.eq_ignore_ascii_case("x-scope-orgid") && h.value == b"t1")
                );
            }
            let push = &all[4];
            assert_eq!(push.series.len(), 1, "{source:?}");
            let path = std::str::from_utf8(&all[0].bytes[..200]).unwrap_or("");
            assert!(
                path.starts_with("POST /ingest?format=pprof&from=1795312290&name=feas.node.app%7B"),
                "{path}"
            );
        }
    }

    #[test]
    fn synthetic_payloads_are_deterministic_and_sized() {
        let src = Source::Synthetic { size: 4096 };
        let a = prepare(Protocol::IngestPprof, &target(), &opts(src.clone())).expect("synthetic");
        let b = prepare(Protocol::IngestPprof, &target(), &opts(src)).expect("synthetic");
        assert_eq!(a[0].bytes, b[0].bytes);
        let len = a[0].body.len();
        assert!((3500..4700).contains(&len), "{len}");
    }

    #[test]
    fn captured_source_reads_the_directory() {
        let dir = std::env::temp_dir().join(format!("pyrogate-captured-{}", std::process::id()));
        let err = prepare(
            Protocol::Push,
            &target(),
            &opts(Source::Captured(dir.clone())),
        )
        .expect_err("missing files are an error");
        assert!(err.contains("pyroscope-io-1.4.0-push.bin"), "{err}");
        // A directory holding a Push body in the captured layout.
        std::fs::create_dir_all(dir.join("clients")).expect("mkdir");
        let sent = sdk::python_push(9);
        std::fs::write(dir.join("clients/pyroscope-io-1.4.0-push.bin"), &sent.body).expect("write");
        let got = prepare(
            Protocol::Push,
            &target(),
            &opts(Source::Captured(dir.clone())),
        )
        .expect("reads");
        assert_eq!(got[0].body[..], sent.body[..]);
        assert_eq!(got[0].series, sent.series);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn push_plain_is_push_inflated() {
        for source in [Source::Generated, Source::Synthetic { size: 4096 }] {
            let o = opts(source);
            let push = prepare(Protocol::Push, &target(), &o).expect("push");
            let plain = prepare(Protocol::PushPlain, &target(), &o).expect("push-plain");
            assert_eq!(
                gunzip(&push[0].body).as_deref(),
                Some(&plain[0].body[..]),
                "the same PushRequest"
            );
            assert_eq!(plain[0].series, push[0].series);
            let head = String::from_utf8_lossy(
                &plain[0].bytes[..plain[0].bytes.len() - plain[0].body.len()],
            )
            .to_lowercase();
            assert!(!head.contains("content-encoding"), "{head}");
            assert!(head.contains("content-type: application/proto"), "{head}");
        }
    }
}
