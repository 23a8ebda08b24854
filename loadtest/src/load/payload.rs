//! What real SDKs send (PROTOCOL.md §7), rendered once per run into complete HTTP/1.1
//! requests (head plus framed body) that the client writes with a single write.
//!
//! | protocol | imitates | shape |
//! |---|---|---|
//! | `ingest-pprof` | @pyroscope/nodejs 0.6.4 | `/ingest?format=pprof&…`, raw gzip pprof, `application/octet-stream`, no `Content-Encoding` |
//! | `ingest-multipart` | pyroscope-go | `/ingest` (Go-encoded, sorted query, ns timestamps), multipart `profile` + `sample_type_config` |
//! | `ingest-folded` | pyroscope-rs ≤ 0.5 (py-spy, rbspy) | `/ingest?…&format=folded`, folded text, `binary/octet-stream` |
//! | `ingest-jfr` | pyroscope-java (OkHttp) | `/ingest?…&format=jfr`, multipart `jfr` + `labels`, **chunked** |
//! | `push` | pyroscope-io 1.4.0 | Connect Push, `application/proto`, `Content-Encoding: gzip` |
//! | `push-json` | curl / tests | Connect Push, `application/json` (protojson, base64 `rawProfile`) |
//!
//! `from`/`until` are taken once at start-up (the current 10-second bucket), so every
//! request of a run carries the same bytes.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use base64::Engine as _;
use bytes::Bytes;
use prost::Message as _;
use pyrogate::protocol::gzip::inflate_bounded;
use pyrogate::protocol::labelset::{self, Labels};
use pyrogate::protocol::proto::{LabelPair, PushRequest, RawProfileSeries, RawSample};
use pyrogate::protocol::query::query_escape;

use crate::multipart::{self, NewPart, Style};
use crate::rng::Rng;
use crate::{fixtures, synth};

/// Wire protocols the generator can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Protocol {
    IngestPprof,
    IngestMultipart,
    IngestFolded,
    IngestJfr,
    Push,
    PushJson,
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
            Protocol::Mix => "mix",
        }
    }
}

/// Where request bodies come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The captured SDK requests and real profiles in `../shared/fixtures`.
    Fixtures(Option<PathBuf>),
    /// Synthetic gzip'd pprof of about `size` bytes (JFR still comes from the fixtures).
    Synthetic {
        size: usize,
        fixtures: Option<PathBuf>,
    },
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
}

/// Parses `http://host[:port][/prefix]` and resolves the host once.
pub fn parse_target(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--target {url:?}: only http:// URLs are supported"))?;
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
        format!("{authority}:80")
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
}

/// Renders the request(s) of `protocol` (six for `mix`, in [`Protocol::SINGLE`] order).
pub fn prepare(
    protocol: Protocol,
    target: &Target,
    opts: &Options,
) -> Result<Vec<Prepared>, String> {
    let mut inputs = Inputs::new(opts)?;
    let list: Vec<Protocol> = if protocol == Protocol::Mix {
        Protocol::SINGLE.to_vec()
    } else {
        vec![protocol]
    };
    list.into_iter()
        .map(|p| render(p, target, opts, &mut inputs))
        .collect()
}

/// Bodies, loaded lazily (synthetic generation and fixture reads happen at most once).
struct Inputs {
    source: Source,
    seed: u64,
    synthetic: Option<synth::Synthetic>,
}

impl Inputs {
    fn new(opts: &Options) -> Result<Self, String> {
        let synthetic = match &opts.source {
            Source::Synthetic { size, .. } => {
                Some(synth::generate(*size, opts.seed).map_err(|e| e.to_string())?)
            }
            Source::Fixtures(_) => None,
        };
        Ok(Self {
            source: opts.source.clone(),
            seed: opts.seed,
            synthetic,
        })
    }

    fn fixture(&self, rel: &str) -> Result<Vec<u8>, String> {
        let explicit = match &self.source {
            Source::Fixtures(p) | Source::Synthetic { fixtures: p, .. } => p.as_deref(),
        };
        let dir = fixtures::dir(explicit)?;
        fixtures::read(&dir, rel)
    }
}

fn render(p: Protocol, t: &Target, o: &Options, inp: &mut Inputs) -> Result<Prepared, String> {
    let mut rng = Rng::stream(o.seed, 0x5eed + p as u64);
    let until = o.now_s - o.now_s % 10;
    let from = until.saturating_sub(10);
    let tenant = o.tenant.as_deref();
    match p {
        Protocol::IngestPprof => {
            let body = match &inp.synthetic {
                Some(s) => s.gzip.clone(),
                None => inp.fixture("clients/pyroscope-nodejs-0.6.4-ingest-wall.bin")?,
            };
            let name = "loadtest.node.app{otel.scope.name=com.grafana.pyroscope/nodejs,\
                        otel.scope.version=0.6.4,process.runtime.name=nodejs,\
                        process.runtime.version=20.20.2,env=load}";
            let path = format!(
                "{}/ingest?format=pprof&from={from}&name={}&spyName=nodespy&until={until}&sampleRate=100",
                t.base_path,
                escape(name)
            );
            let mut h = vec![
                ("host", t.host.clone()),
                ("connection", "keep-alive".into()),
                ("content-type", "application/octet-stream".into()),
                ("accept", "*/*".into()),
                ("accept-language", "*".into()),
                ("sec-fetch-mode", "cors".into()),
                ("user-agent", "node".into()),
                ("accept-encoding", "gzip, deflate".into()),
            ];
            if let Some(tn) = tenant {
                h.push(("x-scope-orgid", tn.into()));
            }
            h.push(("content-length", body.len().to_string()));
            Ok(sized(p, &path, &h, body))
        }
        Protocol::IngestMultipart => {
            let (profile, config, units, aggregation, rate) = match &inp.synthetic {
                Some(s) => (
                    s.gzip.clone(),
                    br#"{"cpu":{"units":"nanoseconds","aggregation":"sum","display-name":"cpu"}}"#
                        .to_vec(),
                    "samples",
                    "sum",
                    "100",
                ),
                None => (
                    inp.fixture("pprof/req_2.pprof")?,
                    inp.fixture("pprof/req_2.st.json")?,
                    "goroutines",
                    "average",
                    "0",
                ),
            };
            let mut labels = Labels::new();
            labels.insert("__name__".into(), "loadtest.go.app".into());
            labels.insert("__session_id__".into(), format!("{:016x}", rng.next_u64()));
            labels.insert("env".into(), "load".into());
            labels.insert("otel.scope.name".into(), "com.grafana.pyroscope/go".into());
            labels.insert("otel.scope.version".into(), "1.2.7".into());
            labels.insert("process.runtime.name".into(), "go".into());
            labels.insert("process.runtime.version".into(), "go1.24.4".into());
            let name = labelset::render_canonical(&labels);
            // Go's url.Values.Encode: keys sorted; pyroscope-go sends ns timestamps.
            let path = format!(
                "{}/ingest?aggregationType={aggregation}&from={}&name={}&sampleRate={rate}\
                 &spyName=gospy&units={units}&until={}",
                t.base_path,
                from * 1_000_000_000,
                escape(&name),
                until * 1_000_000_000
            );
            let boundary: String = (0..4)
                .map(|_| format!("{:016x}", rng.next_u64()))
                .collect::<String>()[..60]
                .to_owned();
            let body = multipart::build(
                &boundary,
                &[
                    NewPart {
                        name: "profile",
                        filename: Some("profile.pprof"),
                        content_type: Some("application/octet-stream"),
                        data: &profile,
                    },
                    NewPart {
                        name: "sample_type_config",
                        filename: Some("sample_type_config.json"),
                        content_type: Some("application/octet-stream"),
                        data: &config,
                    },
                ],
                Style::Go,
            );
            // Go's Request.Write: Host, User-Agent, Content-Length, then sorted headers.
            let mut h = vec![
                ("Host", t.host.clone()),
                ("User-Agent", "Go-http-client/1.1".into()),
                ("Content-Length", body.len().to_string()),
                ("Accept-Encoding", "gzip".into()),
                ("Content-Type", multipart::content_type(&boundary)),
            ];
            if let Some(tn) = tenant {
                h.push(("X-Scope-Orgid", tn.into()));
            }
            Ok(sized(p, &path, &h, body))
        }
        Protocol::IngestFolded => {
            let size = match &inp.source {
                Source::Synthetic { size, .. } => *size,
                Source::Fixtures(_) => 4096,
            };
            let body = synth::folded(size, inp.seed).into_bytes();
            let path = format!(
                "{}/ingest?name={}&from={from}&until={until}&format=folded&sampleRate=100&spyName=pyspy",
                t.base_path,
                escape("loadtest.python.app.cpu{env=load}")
            );
            let mut h = vec![
                ("host", t.host.clone()),
                ("content-type", "binary/octet-stream".into()),
                ("accept", "*/*".into()),
            ];
            if let Some(tn) = tenant {
                h.push(("x-scope-orgid", tn.into()));
            }
            h.push(("content-length", body.len().to_string()));
            Ok(sized(p, &path, &h, body))
        }
        Protocol::IngestJfr => {
            let jfr = inp.fixture("jfr/dump1.jfr.gz")?;
            let labels = inp.fixture("jfr/dump1.labels.pb.gz")?;
            let name = "loadtest.java.app.cpu{env=load,otel.scope.name=com.grafana.pyroscope/java,\
                        otel.scope.version=2.1.2,process.runtime.name=OpenJDK Runtime Environment,\
                        process.runtime.version=21.0.7+6-LTS}";
            let path = format!(
                "{}/ingest?name={}&units=samples&aggregationType=sum&from={from}&until={until}\
                 &spyName=javaspy&sampleRate=100&format=jfr",
                t.base_path,
                escape_okhttp(name)
            );
            let boundary = rng.uuid();
            let body = multipart::build(
                &boundary,
                &[
                    NewPart {
                        name: "jfr",
                        filename: Some("jfr"),
                        content_type: None,
                        data: &jfr,
                    },
                    NewPart {
                        name: "labels",
                        filename: Some("labels"),
                        content_type: Some("application/x-protobuf"),
                        data: &labels,
                    },
                ],
                Style::OkHttp,
            );
            let mut h = Vec::new();
            if let Some(tn) = tenant {
                h.push(("X-Scope-OrgID", tn.to_owned()));
            }
            h.extend([
                ("Content-Type", multipart::content_type(&boundary)),
                ("Transfer-Encoding", "chunked".to_owned()),
                ("Host", t.host.clone()),
                ("Connection", "Keep-Alive".into()),
                ("Accept-Encoding", "gzip".into()),
                ("User-Agent", "okhttp/4.12.0".into()),
            ]);
            Ok(chunked(p, &path, &h, body, OKIO_SEGMENT))
        }
        Protocol::Push => {
            let body = match &inp.synthetic {
                Some(s) => synth::gzip(&push_request(s.plain.clone(), &mut rng).encode_to_vec()),
                None => inp.fixture("clients/pyroscope-io-1.4.0-push.bin")?,
            };
            let path = format!("{}/push.v1.PusherService/Push", t.base_path);
            let mut h = vec![
                ("user-agent", "pyroscope-rs/pyspy/1.4.0 reqwest".to_owned()),
                ("content-type", "application/proto".into()),
                ("content-encoding", "gzip".into()),
            ];
            if let Some(tn) = tenant {
                h.push(("x-scope-orgid", tn.into()));
            }
            h.extend([
                ("content-length", body.len().to_string()),
                ("accept", "*/*".into()),
                ("host", t.host.clone()),
            ]);
            Ok(sized(p, &path, &h, body))
        }
        Protocol::PushJson => {
            let req = match &inp.synthetic {
                Some(s) => push_request(s.gzip.clone(), &mut rng),
                None => {
                    let gz = inp.fixture("clients/pyroscope-io-1.4.0-push.bin")?;
                    let raw =
                        inflate_bounded(&gz, 16 << 20).map_err(|e| format!("push fixture: {e}"))?;
                    PushRequest::decode(raw).map_err(|e| format!("push fixture: {e}"))?
                }
            };
            let body = push_json(&req);
            let path = format!("{}/push.v1.PusherService/Push", t.base_path);
            let mut h = vec![
                ("Host", t.host.clone()),
                (
                    "User-Agent",
                    format!("pyrogate-load/{}", env!("CARGO_PKG_VERSION")),
                ),
                ("Content-Type", "application/json".into()),
                ("Connect-Protocol-Version", "1".into()),
                ("Connect-Timeout-Ms", "10000".into()),
            ];
            if let Some(tn) = tenant {
                h.push(("X-Scope-OrgID", tn.into()));
            }
            h.push(("Content-Length", body.len().to_string()));
            Ok(sized(p, &path, &h, body))
        }
        Protocol::Mix => Err("mix is not a single protocol".into()),
    }
}

/// Okio's segment size: OkHttp streams a body of unknown length in chunks of this size.
const OKIO_SEGMENT: usize = 8192;

/// The labels pyroscope-io 1.4.0 sends, in its order, with one sample.
fn push_request(raw_profile: Vec<u8>, rng: &mut Rng) -> PushRequest {
    let labels = [
        ("__name__", "process_cpu"),
        ("env", "load"),
        ("service_name", "loadtest.python.app"),
        ("otel.scope.name", "com.grafana.pyroscope/python"),
        ("otel.scope.version", "1.4.0"),
        ("process.runtime.name", "cpython"),
        ("process.runtime.version", "3.11.7"),
    ];
    PushRequest {
        series: vec![RawProfileSeries {
            labels: labels
                .iter()
                .map(|(n, v)| LabelPair {
                    name: (*n).into(),
                    value: (*v).into(),
                })
                .collect(),
            samples: vec![RawSample {
                raw_profile: Bytes::from(raw_profile),
                id: rng.uuid(),
            }],
            annotations: vec![],
        }],
    }
}

/// protojson of a `PushRequest` (JSON field names, standard base64).
pub fn push_json(req: &PushRequest) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let series: Vec<serde_json::Value> = req
        .series
        .iter()
        .map(|s| {
            serde_json::json!({
                "labels": s.labels.iter().map(|l| serde_json::json!({"name": l.name, "value": l.value})).collect::<Vec<_>>(),
                "samples": s.samples.iter().map(|x| serde_json::json!({"ID": x.id, "rawProfile": b64.encode(&x.raw_profile)})).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "series": series })).unwrap_or_default()
}

/// Go `QueryEscape` / `URLSearchParams` style (space → `+`).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    query_escape(s, &mut out);
    out
}

/// OkHttp's query-component encoding: space → `%20`, the reserved characters that would
/// change the query's meaning percent-encoded, most others kept.
fn escape_okhttp(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/:,;@!$()*[]{}".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn head(path: &str, headers: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + path.len());
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn sized(p: Protocol, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> Prepared {
    let mut out = head(path, headers);
    out.extend_from_slice(&body);
    Prepared {
        protocol: p,
        bytes: Bytes::from(out),
        body: Bytes::from(body),
    }
}

/// Frames `body` as `Transfer-Encoding: chunked` in chunks of `chunk` bytes.
fn chunked(
    p: Protocol,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    chunk: usize,
) -> Prepared {
    let mut out = head(path, headers);
    for c in body.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    Prepared {
        protocol: p,
        bytes: Bytes::from(out),
        body: Bytes::from(body),
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
        assert!(parse_target("https://x").is_err());
        assert!(parse_target("http://").is_err());
    }

    #[test]
    fn every_protocol_renders_a_parsable_request() {
        let all =
            prepare(Protocol::Mix, &target(), &opts(Source::Fixtures(None))).expect("fixtures");
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
        // The push request is the captured body, byte for byte.
        let push = &all[4];
        assert_eq!(push.body.len(), 569);
        let path = std::str::from_utf8(&all[0].bytes[..200]).unwrap_or("");
        assert!(
            path.starts_with("POST /ingest?format=pprof&from=1795312290&name=loadtest.node.app%7B"),
            "{path}"
        );
    }

    #[test]
    fn synthetic_payloads_are_deterministic() {
        let src = Source::Synthetic {
            size: 4096,
            fixtures: None,
        };
        let a = prepare(Protocol::Push, &target(), &opts(src.clone())).expect("synthetic");
        let b = prepare(Protocol::Push, &target(), &opts(src)).expect("synthetic");
        assert_eq!(a[0].bytes, b[0].bytes);
        let len = a[0].body.len();
        assert!((3500..4700).contains(&len), "{len}");
    }

    #[test]
    fn okhttp_escaping() {
        assert_eq!(escape_okhttp("a b{c=d,e}"), "a%20b{c%3Dd,e}");
        assert_eq!(escape("a b{c=d}"), "a+b%7Bc%3Dd%7D");
    }
}
