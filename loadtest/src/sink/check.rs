//! The framing checks Pyroscope applies to `/ingest` and Push bodies (docs/ingest.md §8–§12, docs/push.md §2–§8),
//! as pure functions from a request to a verdict.
//!
//! The sink answers what Pyroscope would answer for *framing* problems: undecodable gzip,
//! protobuf, multipart or JSON, a bad `name`, an unknown profile type. It does not apply the
//! distributor's validation (label limits, ingestion window, …): a test sink must accept
//! captured traffic, whose timestamps are years old, and agents' replayed requests.

use bytes::Bytes;
use prost::Message as _;
use pyrogate::http::RequestHead;
use pyrogate::protocol::connect::Code;
use pyrogate::protocol::gzip::{self, GzipError};
use pyrogate::protocol::labelset::{self, Labels};
use pyrogate::protocol::proto::{LabelsSnapshot, Profile};
use pyrogate::protocol::push::{self, PushHead};
use pyrogate::protocol::push::{Codec, Protocol};
use pyrogate::protocol::query;

use crate::fnv;
use pyrogate::protocol::multipart::{self, Limits};

/// How much of each body the sink checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Checks {
    /// Decode everything Pyroscope decodes (gzip, protobuf, multipart, JSON, folded) and
    /// answer its status codes. The default.
    Full,
    /// Accept every request on a profile route unread (only counted and checksummed), so
    /// that the sink costs little more than a `return 200` server in benchmarks. Each
    /// request counts as one profile; records carry no decoded details.
    None,
}

impl Checks {
    pub fn name(self) -> &'static str {
        match self {
            Checks::Full => "full",
            Checks::None => "none",
        }
    }
}

/// Where every accepted profile's bytes are written (`--keep-profiles`), once set.
static KEEP_DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Writes each profile the checks see (a Push `raw_profile`, an `/ingest` pprof body or
/// `profile` part) to `dir/<fnv>.pprof`, for tests that inspect what was forwarded.
pub fn keep_profiles_in(dir: std::path::PathBuf) {
    let _ = KEEP_DIR.set(dir);
}

fn keep(raw: &[u8]) {
    if let Some(dir) = KEEP_DIR.get() {
        let path = dir.join(format!("{}.pprof", fnv::hex(fnv::fnv1a64(raw))));
        if let Err(e) = std::fs::write(&path, raw) {
            eprintln!("sink: cannot keep {}: {e}", path.display());
        }
    }
}

/// Size limits of the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckLimits {
    /// Largest inflated Push message (Pyroscope: the body limit, 256 MiB by default).
    pub max_message: usize,
    /// Largest inflated pprof / JFR (Pyroscope's `max_profile_size_bytes`, 4 MiB default).
    pub max_profile: usize,
}

/// Go's gzip reader needs its 10-byte header before it can say anything, so shorter pprof
/// input fails with EOF whatever it holds (docs/ingest.md §10).
const MIN_PPROF: usize = 10;
/// JFR recordings start with this magic.
const JFR_MAGIC: &[u8] = b"FLR\0";
/// The folded parser's line limit (bufio.Scanner's 64 KiB buffer in Pyroscope).
const MAX_FOLDED_LINE: usize = 64 * 1024;
/// How many series/samples one record keeps (the counters always see all of them).
pub const MAX_RECORDED_SERIES: usize = 64;
pub const MAX_RECORDED_SAMPLES: usize = 64;
/// Longest label name/value kept in a record.
const MAX_RECORDED_STRING: usize = 1024;

/// What the checks found, for the answer, the counters and the request record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// `None` = accepted; otherwise the status, Connect code and message to answer with.
    pub error: Option<Rejection>,
    /// Profiles the request carries (stored, when accepted).
    pub profiles: u64,
    pub detail: Detail,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub code: Code,
    pub message: String,
}

impl Rejection {
    fn new(status: u16, code: Code, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// A Connect error: the status follows from the code (docs/push.md §6).
    fn connect(code: Code, message: impl Into<String>) -> Self {
        Self::new(code.http_status(), code, message)
    }
}

/// Route-specific findings kept in the request record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Detail {
    #[default]
    None,
    Push(PushDetail),
    Ingest(IngestDetail),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushDetail {
    /// `connect`, `grpc-web`.
    pub protocol: &'static str,
    /// `proto`, `json`.
    pub codec: &'static str,
    pub series: Vec<SeriesInfo>,
    /// Series beyond [`MAX_RECORDED_SERIES`] (counted, not kept).
    pub series_omitted: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeriesInfo {
    /// Labels in wire order.
    pub labels: Vec<(String, String)>,
    pub samples: Vec<SampleInfo>,
    pub samples_omitted: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SampleInfo {
    pub id: String,
    pub raw_len: usize,
    /// FNV-1a 64 of the exact `raw_profile` bytes.
    pub raw_fnv: u64,
    pub raw_gzip: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngestDetail {
    /// The format the body was read as (`pprof`, `pprof-multipart`, `jfr`, `jfr-multipart`,
    /// `folded`, `lines`, `trie`, `tree`, `speedscope`).
    pub format: &'static str,
    /// The parsed `name` label set (`None` when `name` did not parse).
    pub name: Option<Labels>,
    /// Multipart parts (name, filename, length, FNV-1a 64).
    pub parts: Vec<PartInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartInfo {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub len: usize,
    pub fnv: u64,
}

fn truncated(s: &str) -> String {
    if s.len() <= MAX_RECORDED_STRING {
        return s.to_owned();
    }
    let mut end = MAX_RECORDED_STRING;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

// === Push ===

/// Checks a Push body whose head passed `pyrogate::protocol::push::parse_head`.
pub fn push(head: &PushHead, body: Bytes, limits: CheckLimits) -> Verdict {
    let mut detail = PushDetail::default();
    let error = push_inner(head, body, limits, &mut detail).err();
    let profiles = detail
        .series
        .iter()
        .map(|s| (s.samples.len() + s.samples_omitted) as u64)
        .sum::<u64>();
    Verdict {
        profiles: if error.is_none() { profiles } else { 0 },
        error,
        detail: Detail::Push(detail),
    }
}

fn push_inner(
    head: &PushHead,
    body: Bytes,
    limits: CheckLimits,
    detail: &mut PushDetail,
) -> Result<(), Rejection> {
    let ct = head.content_type;
    detail.codec = match ct.codec {
        Codec::Proto => "proto",
        Codec::Json => "json",
    };
    detail.protocol = match ct.protocol {
        Protocol::Connect => "connect",
        Protocol::GrpcWeb | Protocol::Grpc => "grpc-web",
    };
    let (req, _) = push::decode_body(head, body, limits.max_message)
        .map_err(|e| Rejection::connect(e.code(), e.to_string()))?;
    let mut first_error = None;
    let mut total = 0usize;
    for (si, series) in req.series.iter().enumerate() {
        let mut info = SeriesInfo {
            labels: series
                .labels
                .iter()
                .map(|l| (truncated(&l.name), truncated(&l.value)))
                .collect(),
            ..SeriesInfo::default()
        };
        for sample in &series.samples {
            total += 1;
            let raw = &sample.raw_profile;
            keep(raw);
            if first_error.is_none()
                && let Err(e) = check_pprof(raw, limits.max_profile)
            {
                first_error = Some(match e {
                    PprofError::TooLarge(max) => Rejection::connect(
                        Code::InvalidArgument,
                        format!("uncompressed profile payload size exceeds limit of {max} bytes"),
                    ),
                    // Pyroscope answers an undecodable raw_profile with a plain error, which
                    // connect-go sends as `unknown` (500) (docs/push.md §8).
                    PprofError::Invalid(why) => Rejection::connect(
                        Code::Unknown,
                        format!("failed to parse profile of series {si}: {why}"),
                    ),
                });
            }
            if info.samples.len() < MAX_RECORDED_SAMPLES {
                info.samples.push(SampleInfo {
                    id: truncated(&sample.id),
                    raw_len: raw.len(),
                    raw_fnv: fnv::fnv1a64(raw),
                    raw_gzip: gzip::is_gzip(raw),
                });
            } else {
                info.samples_omitted += 1;
            }
        }
        if detail.series.len() < MAX_RECORDED_SERIES {
            detail.series.push(info);
        } else {
            detail.series_omitted += 1;
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if total == 0 {
        return Err(Rejection::connect(
            Code::InvalidArgument,
            "no profiles received",
        ));
    }
    Ok(())
}

// === pprof / JFR ===

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PprofError {
    TooLarge(usize),
    Invalid(String),
}

/// Pyroscope's pprof read: gzip when the body starts `1f 8b 08`, else plain; inflated size
/// bounded; must decode as a `Profile`.
pub fn check_pprof(raw: &[u8], max: usize) -> Result<(), PprofError> {
    if raw.len() < MIN_PPROF {
        return Err(PprofError::Invalid("unexpected EOF".into()));
    }
    let plain = if gzip::is_gzip(raw) {
        inflate(raw, max)?
    } else if raw.len() > max {
        return Err(PprofError::TooLarge(max));
    } else {
        Bytes::copy_from_slice(raw)
    };
    Profile::decode(plain)
        .map(drop)
        .map_err(|e| PprofError::Invalid(e.to_string()))
}

fn inflate(raw: &[u8], max: usize) -> Result<Bytes, PprofError> {
    gzip::inflate_bounded(raw, max).map_err(|e| match e {
        GzipError::TooLarge { max, .. } => PprofError::TooLarge(max),
        GzipError::Invalid(why) => PprofError::Invalid(format!("gzip: {why}")),
    })
}

/// A JFR recording (gzip'd when it starts `1f 8b`, as the multipart parts are sniffed).
fn check_jfr(raw: &[u8], max: usize, sniff: bool) -> Result<(), PprofError> {
    let plain = if sniff && raw.starts_with(&[0x1f, 0x8b]) {
        inflate(raw, max)?
    } else {
        Bytes::copy_from_slice(&raw[..raw.len().min(JFR_MAGIC.len())])
    };
    if plain.starts_with(JFR_MAGIC) {
        Ok(())
    } else {
        Err(PprofError::Invalid(
            "not a JFR recording (bad magic)".into(),
        ))
    }
}

fn check_labels_snapshot(raw: &[u8], max: usize) -> Result<(), PprofError> {
    let plain = if raw.starts_with(&[0x1f, 0x8b]) {
        inflate(raw, max)?
    } else {
        Bytes::copy_from_slice(raw)
    };
    LabelsSnapshot::decode(plain)
        .map(drop)
        .map_err(|e| PprofError::Invalid(format!("labels: {e}")))
}

// === /ingest ===

fn ingest_err(status: u16, message: impl Into<String>) -> Rejection {
    Rejection::new(status, Code::from_http_status(status), message)
}

/// 422: every failure to read a pprof/JFR/speedscope/folded body.
fn unprocessable(message: impl Into<String>) -> Rejection {
    ingest_err(422, message)
}

/// Checks an `/ingest` request.
pub fn ingest(head: &RequestHead, body: &Bytes, limits: CheckLimits) -> Verdict {
    let mut detail = IngestDetail::default();
    let result = ingest_inner(head, body, limits, &mut detail);
    let (error, profiles) = match result {
        Ok(n) => (None, n),
        Err(e) => (Some(e), 0),
    };
    Verdict {
        error,
        profiles,
        detail: Detail::Ingest(detail),
    }
}

/// The body format chosen by docs/ingest.md §8 (first match wins).
pub fn select_format(format: Option<&str>, content_type: &str) -> &'static str {
    let multipart = content_type.contains("multipart/form-data");
    match format {
        Some("trie") => "trie",
        _ if content_type == "binary/octet-stream+trie" => "trie",
        Some("tree") => "tree",
        _ if content_type == "binary/octet-stream+tree" => "tree",
        Some("lines") => "lines",
        Some("jfr") if multipart => "jfr-multipart",
        Some("jfr") => "jfr",
        Some("pprof") => "pprof",
        Some("speedscope") => "speedscope",
        _ if multipart => "pprof-multipart",
        _ => "folded",
    }
}

fn ingest_inner(
    head: &RequestHead,
    body: &Bytes,
    limits: CheckLimits,
    detail: &mut IngestDetail,
) -> Result<u64, Rejection> {
    let q = query::parse(head.query().unwrap_or(""));
    let ct = head
        .header("content-type")
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    detail.format = select_format(q.get("format"), &ct);
    let name = q.get("name").unwrap_or("");
    let labels = labelset::parse(name).map_err(|e| ingest_err(400, format!("name: {e}")))?;
    let app = labels
        .get(labelset::NAME_LABEL)
        .cloned()
        .unwrap_or_default();
    let has_profile_id = labels.get("profile_id").is_some_and(|v| !v.is_empty());
    detail.name = Some(labels);
    let max = limits.max_profile;
    match detail.format {
        "pprof" => {
            keep(body);
            check_pprof(body, max).map_err(|e| unprocessable(pprof_message(e)))?;
            Ok(1)
        }
        "pprof-multipart" => {
            let parts = parts(&ct, body, detail)?;
            let file = |n: &str| {
                parts
                    .iter()
                    .find(|p| p.is_file() && p.name.as_deref() == Some(n))
            };
            if file("prev_profile").is_some_and(|p| !p.data.is_empty()) {
                return Err(unprocessable(
                    "unsupported client version, please upgrade to the latest version",
                ));
            }
            if let Some(cfg) = file("sample_type_config") {
                check_sample_type_config(&cfg.data).map_err(unprocessable)?;
            }
            match file("profile") {
                Some(p) if !p.data.is_empty() => {
                    keep(&p.data);
                    check_pprof(&p.data, max).map_err(|e| unprocessable(pprof_message(e)))?;
                    Ok(1)
                }
                // No (file) `profile` part or an empty one: 200, nothing stored.
                _ => Ok(0),
            }
        }
        "jfr" => {
            check_jfr(body, max, false).map_err(|e| unprocessable(pprof_message(e)))?;
            Ok(1)
        }
        "jfr-multipart" => {
            let parts = parts(&ct, body, detail)?;
            let file = |n: &str| {
                parts
                    .iter()
                    .find(|p| p.is_file() && p.name.as_deref() == Some(n))
            };
            let Some(jfr) = file("jfr") else {
                return Err(unprocessable("jfr field is required"));
            };
            check_jfr(&jfr.data, max, true).map_err(|e| unprocessable(pprof_message(e)))?;
            if let Some(l) = file("labels") {
                check_labels_snapshot(&l.data, max).map_err(|e| unprocessable(pprof_message(e)))?;
            }
            Ok(1)
        }
        "speedscope" => {
            check_speedscope(body).map_err(unprocessable)?;
            Ok(1)
        }
        format => {
            // folded, lines, trie, tree: the profile type comes from the app name suffix.
            profile_type(&app).map_err(|e| ingest_err(400, e))?;
            match format {
                "folded" => check_folded(body).map_err(unprocessable)?,
                "lines" => check_lines(body).map_err(unprocessable)?,
                _ => {} // trie/tree are forwarded opaque; their framing is not checked
            }
            // A non-empty `profile_id` label: accepted and silently dropped.
            Ok(u64::from(!has_profile_id))
        }
    }
}

fn pprof_message(e: PprofError) -> String {
    match e {
        PprofError::TooLarge(max) => {
            format!("uncompressed profile payload size exceeds limit of {max} bytes")
        }
        PprofError::Invalid(why) => format!("failed to parse profile: {why}"),
    }
}

fn parts(
    ct: &str,
    body: &Bytes,
    detail: &mut IngestDetail,
) -> Result<Vec<multipart::Part>, Rejection> {
    let boundary = multipart::boundary(ct).map_err(|e| unprocessable(e.to_string()))?;
    let parts = multipart::parse(body, &boundary, Limits::default())
        .map_err(|e| unprocessable(e.to_string()))?;
    detail.parts = parts
        .iter()
        .map(|p| PartInfo {
            name: p.name.as_deref().map(truncated).unwrap_or_default(),
            filename: p.filename.as_deref().map(truncated),
            content_type: p.content_type.as_deref().map(truncated),
            len: p.data.len(),
            fnv: fnv::fnv1a64(&p.data),
        })
        .collect();
    Ok(parts)
}

/// `{"<type>": {"units": str, "display-name": str, "aggregation": str, "cumulative": bool,
/// "sampled": bool}}` — unknown keys are ignored, as by Go's `encoding/json`.
fn check_sample_type_config(data: &[u8]) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| format!("sample_type_config: {e}"))?;
    let obj = v
        .as_object()
        .ok_or("sample_type_config: not a JSON object")?;
    for (k, entry) in obj {
        let Some(entry) = entry.as_object() else {
            if entry.is_null() {
                continue;
            }
            return Err(format!("sample_type_config: {k}: not an object"));
        };
        for (field, value) in entry {
            let ok = match field.as_str() {
                "units" | "display-name" | "aggregation" => value.is_string() || value.is_null(),
                "cumulative" | "sampled" => value.is_boolean() || value.is_null(),
                _ => true,
            };
            if !ok {
                return Err(format!("sample_type_config: {k}.{field}: wrong type"));
            }
        }
    }
    Ok(())
}

fn check_speedscope(body: &[u8]) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("speedscope: {e}"))?;
    match v.get("profiles") {
        Some(p) if p.is_array() => Ok(()),
        _ => Err("speedscope: no profiles".into()),
    }
}

/// `frame;frame;leaf <count>` lines, split at the last space; lines without a space are
/// skipped; a count that is not an integer fails; an over-long line ends parsing.
fn check_folded(body: &[u8]) -> Result<(), String> {
    for line in body.split(|b| *b == b'\n') {
        if line.len() > MAX_FOLDED_LINE {
            break;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(sp) = line.iter().rposition(|b| *b == b' ') else {
            continue;
        };
        let count = &line[sp + 1..];
        let ok = std::str::from_utf8(count)
            .ok()
            .is_some_and(|c| c.parse::<i64>().is_ok());
        if !ok {
            return Err(format!(
                "parsing folded line: invalid count {:?}",
                String::from_utf8_lossy(&count[..count.len().min(64)])
            ));
        }
    }
    Ok(())
}

fn check_lines(body: &[u8]) -> Result<(), String> {
    if body
        .split(|b| *b == b'\n')
        .any(|l| l.len() > MAX_FOLDED_LINE)
    {
        return Err("bufio.Scanner: token too long".into());
    }
    Ok(())
}

/// The profile-type suffix table of docs/ingest.md §11 (folded/lines/trie/tree/speedscope).
/// Returns the `__name__` the series gets.
pub fn profile_type(app: &str) -> Result<&'static str, String> {
    let suffix = match app.rsplit_once('.') {
        Some((_, s)) => s,
        None => return Ok("process_cpu"),
    };
    Ok(match suffix {
        "cpu" | "itimer" => "process_cpu",
        "wall" | "seconds" | "nanoseconds" | "microseconds" | "milliseconds" => "wall",
        "inuse_objects" | "alloc_objects" | "inuse_space" | "alloc_space" => "memory",
        "goroutines" => "goroutine",
        "mutex_count" | "mutex_duration" => "mutex",
        "block_count" | "lock_count" | "block_duration" | "lock_duration" => "block",
        "alloc_in_new_tlab_objects"
        | "alloc_outside_tlab_objects"
        | "live"
        | "alloc_in_new_tlab_bytes"
        | "alloc_outside_tlab_bytes"
        | "live_bytes" => "memory",
        "exceptions" => "exceptions",
        "bytes" => "memory",
        other => return Err(format!("unknown profile type: {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyrogate::http::head::find_head_end;

    const LIMITS: CheckLimits = CheckLimits {
        max_message: 64 << 20,
        max_profile: 4 << 20,
    };

    use pyrogate_testdata::formats::{self, Part, Style};
    use pyrogate_testdata::pprof::{Kind, Spec};
    use pyrogate_testdata::sdk;

    fn head(s: &str) -> RequestHead {
        let end = find_head_end(s.as_bytes(), 0).expect("complete head");
        RequestHead::parse(Bytes::copy_from_slice(&s.as_bytes()[..end])).expect("valid head")
    }

    fn push_head(ct: &str, ce: Option<&str>) -> PushHead {
        let ce = ce
            .map(|c| format!("Content-Encoding: {c}\r\n"))
            .unwrap_or_default();
        push::parse_head(&head(&format!(
            "POST /push.v1.PusherService/Push HTTP/1.1\r\nContent-Type: {ct}\r\n{ce}\r\n"
        )))
        .expect("a valid Push head")
    }

    fn status(v: &Verdict) -> u16 {
        v.error.as_ref().map_or(200, |e| e.status)
    }

    #[test]
    fn python_push_is_accepted_with_details() {
        let sent = sdk::python_push(1);
        let body = Bytes::from(sent.body.clone());
        let v = push(&push_head("application/proto", Some("gzip")), body, LIMITS);
        assert_eq!(v.error, None);
        assert_eq!(v.profiles, 1);
        let Detail::Push(d) = v.detail else {
            panic!("push detail")
        };
        assert_eq!((d.protocol, d.codec), ("connect", "proto"));
        assert_eq!(
            d.series[0].labels[0],
            ("__name__".into(), "process_cpu".into())
        );
        assert_eq!(d.series[0].labels[3].0, "service_name");
        let want = &sent.series[0].samples[0];
        assert_eq!(d.series[0].samples[0].id, want.id);
        assert_eq!(d.series[0].samples[0].raw_len, want.raw_profile.len());
        assert!(!d.series[0].samples[0].raw_gzip);
    }

    #[test]
    fn push_errors_map_like_pyroscope() {
        let h = push_head("application/proto", Some("gzip"));
        // Not gzip although announced: invalid_argument.
        let v = push(
            &h,
            Bytes::from_static(b"not gzip at all, not at all"),
            LIMITS,
        );
        assert_eq!(status(&v), 400);
        // Empty request: no profiles.
        let v = push(&push_head("application/proto", None), Bytes::new(), LIMITS);
        assert_eq!(
            v.error.map(|e| e.message),
            Some("no profiles received".into())
        );
        // Corrupt raw_profile: unknown / 500.
        use pyrogate::protocol::proto::{PushRequest, RawProfileSeries, RawSample};
        let req = PushRequest {
            series: vec![RawProfileSeries {
                labels: vec![],
                samples: vec![RawSample {
                    raw_profile: Bytes::from_static(
                        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
                    ),
                    id: "x".into(),
                }],
                annotations: vec![],
            }],
        };
        let v = push(
            &push_head("application/proto", None),
            Bytes::from(req.encode_to_vec()),
            LIMITS,
        );
        assert_eq!(status(&v), 500);
        assert_eq!(v.error.map(|e| e.code), Some(Code::Unknown));
        // Garbage protobuf.
        let v = push(
            &push_head("application/proto", None),
            Bytes::from_static(b"\x0a\xff"),
            LIMITS,
        );
        assert_eq!(status(&v), 400);
        // Bad JSON.
        let v = push(
            &push_head("application/json", None),
            Bytes::from_static(b"{"),
            LIMITS,
        );
        assert_eq!(status(&v), 400);
    }

    fn ingest_head(query: &str, ct: &str) -> RequestHead {
        head(&format!(
            "POST /ingest?{query} HTTP/1.1\r\nContent-Type: {ct}\r\n\r\n"
        ))
    }

    #[test]
    fn ingest_pprof_raw_and_name() {
        let body = Bytes::from(sdk::node_ingest(1, 1_795_312_305, Kind::Wall).body);
        let q = "format=pprof&name=feas.node.app%7Benv%3Dfeas%7D&spyName=nodespy";
        let v = ingest(&ingest_head(q, "application/octet-stream"), &body, LIMITS);
        assert_eq!(v.error, None);
        assert_eq!(v.profiles, 1);
        let Detail::Ingest(d) = v.detail else {
            panic!("ingest detail")
        };
        assert_eq!(d.format, "pprof");
        let name = d.name.expect("name");
        assert_eq!(
            name.get("__name__").map(String::as_str),
            Some("feas.node.app")
        );
        assert_eq!(name.get("env").map(String::as_str), Some("feas"));

        for (q, want) in [
            ("format=pprof", 400),
            ("format=pprof&name=", 400),
            ("format=pprof&name=bad%20app", 400),
            ("format=pprof&name=app%7Ba-b%3D1%7D", 400),
        ] {
            let v = ingest(&ingest_head(q, "application/octet-stream"), &body, LIMITS);
            assert_eq!(status(&v), want, "{q}");
            let e = v.error.expect("error");
            assert!(e.message.starts_with("name: "), "{}", e.message);
            assert_eq!(e.code, Code::InvalidArgument);
        }
        // Undecodable pprof → 422 unknown; short body → 422.
        for bad in [
            &b"\x1f\x8b\x08garbage-garbage-garbage"[..],
            b"short",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        ] {
            let v = ingest(
                &ingest_head("format=pprof&name=app", "application/octet-stream"),
                &Bytes::copy_from_slice(bad),
                LIMITS,
            );
            assert_eq!(status(&v), 422);
            assert_eq!(v.error.map(|e| e.code), Some(Code::Unknown));
        }
    }

    #[test]
    fn ingest_multipart_go_style() {
        let profile = Spec::new(2, Kind::Goroutine).gzip();
        let cfg = formats::sample_type_config(Kind::Goroutine).as_bytes();
        let mk = |parts: &[Part<'_>]| Bytes::from(formats::multipart("bnd", parts, Style::Go));
        let p = |name, data| Part {
            name,
            filename: Some(if name == "profile" {
                "profile.pprof"
            } else {
                "sample_type_config.json"
            }),
            content_type: Some("application/octet-stream"),
            data,
        };
        let h = ingest_head(
            "name=app.goroutines&spyName=gospy",
            "multipart/form-data; boundary=bnd",
        );
        let v = ingest(
            &h,
            &mk(&[p("profile", &profile), p("sample_type_config", cfg)]),
            LIMITS,
        );
        assert_eq!(v.error, None);
        assert_eq!(v.profiles, 1);
        let Detail::Ingest(d) = &v.detail else {
            panic!()
        };
        assert_eq!(d.format, "pprof-multipart");
        assert_eq!(d.parts.len(), 2);
        assert_eq!(d.parts[0].fnv, fnv::fnv1a64(&profile));
        // Missing profile → 200, nothing stored.
        let v = ingest(&h, &mk(&[p("sample_type_config", cfg)]), LIMITS);
        assert_eq!((status(&v), v.profiles), (200, 0));
        // Bad sample_type_config, prev_profile, corrupt profile → 422.
        for parts in [
            vec![
                p("profile", &profile),
                p("sample_type_config", b"{not json"),
            ],
            vec![p("profile", &profile), p("prev_profile", &profile)],
            vec![p("profile", b"\x1f\x8b\x08 corrupt corrupt corrupt")],
        ] {
            assert_eq!(status(&ingest(&h, &mk(&parts), LIMITS)), 422);
        }
        // Missing boundary / truncated body → 422.
        let h2 = ingest_head("name=app", "multipart/form-data");
        assert_eq!(
            status(&ingest(&h2, &mk(&[p("profile", &profile)]), LIMITS)),
            422
        );
        let full = mk(&[p("profile", &profile)]);
        assert_eq!(
            status(&ingest(&h, &full.slice(..full.len() - 12), LIMITS)),
            422
        );
    }

    #[test]
    fn ingest_jfr() {
        let jfr = formats::java_gzip(&formats::jfr(100_000, 1));
        let labels = formats::java_gzip(&formats::labels_snapshot(4, 1));
        let body = Bytes::from(formats::multipart(
            "u",
            &[
                Part {
                    name: "jfr",
                    filename: Some("jfr"),
                    content_type: None,
                    data: &jfr,
                },
                Part {
                    name: "labels",
                    filename: Some("labels"),
                    content_type: Some("application/x-protobuf"),
                    data: &labels,
                },
            ],
            Style::OkHttp,
        ));
        let h = ingest_head("name=app.cpu&format=jfr", "multipart/form-data; boundary=u");
        let v = ingest(&h, &body, LIMITS);
        assert_eq!(v.error, None);
        let no_jfr = Bytes::from(formats::multipart(
            "u",
            &[Part {
                name: "labels",
                filename: Some("labels"),
                content_type: None,
                data: &labels,
            }],
            Style::OkHttp,
        ));
        let v = ingest(&h, &no_jfr, LIMITS);
        assert_eq!(
            v.error.map(|e| (e.status, e.message)),
            Some((422, "jfr field is required".into()))
        );
        // Raw JFR must be uncompressed.
        let raw_h = ingest_head("name=app.cpu&format=jfr", "application/octet-stream");
        assert_eq!(
            status(&ingest(&raw_h, &Bytes::from(jfr.clone()), LIMITS)),
            422
        );
        let plain = gzip::inflate_bounded(&jfr, 4 << 20).expect("inflates");
        assert_eq!(status(&ingest(&raw_h, &plain, LIMITS)), 200);
    }

    #[test]
    fn ingest_folded_and_types() {
        let h = |q: &str| ingest_head(q, "text/plain");
        let body = Bytes::from_static(b"a;b;c 3\nno-space-line\na;b 10\n");
        assert_eq!(status(&ingest(&h("name=app.cpu"), &body, LIMITS)), 200);
        assert_eq!(status(&ingest(&h("name=app"), &body, LIMITS)), 200);
        let v = ingest(&h("name=my.app"), &body, LIMITS);
        assert_eq!(
            v.error.map(|e| (e.status, e.message)),
            Some((400, "unknown profile type: app".into()))
        );
        let bad = Bytes::from_static(b"a;b;c x3\n");
        assert_eq!(status(&ingest(&h("name=app.cpu"), &bad, LIMITS)), 422);
        let v = ingest(&h("name=app.cpu%7Bprofile_id%3Dabc%7D"), &body, LIMITS);
        assert_eq!((status(&v), v.profiles), (200, 0));
        assert_eq!(
            status(&ingest(&h("name=app.cpu&format=speedscope"), &body, LIMITS)),
            422
        );
        let ss = Bytes::from(formats::speedscope(10, 1));
        assert_eq!(
            status(&ingest(&h("name=app.cpu&format=speedscope"), &ss, LIMITS)),
            200
        );
    }

    #[test]
    fn format_selection_table() {
        assert_eq!(select_format(Some("trie"), "multipart/form-data"), "trie");
        assert_eq!(select_format(None, "binary/octet-stream+tree"), "tree");
        assert_eq!(
            select_format(Some("jfr"), "multipart/form-data; boundary=x"),
            "jfr-multipart"
        );
        assert_eq!(select_format(Some("jfr"), ""), "jfr");
        assert_eq!(
            select_format(Some("pprof"), "multipart/form-data; boundary=x"),
            "pprof"
        );
        assert_eq!(
            select_format(None, "multipart/form-data; boundary=x"),
            "pprof-multipart"
        );
        assert_eq!(select_format(Some("folded"), ""), "folded");
        assert_eq!(
            select_format(Some("whatever"), "application/json"),
            "folded"
        );
        assert_eq!(Code::from_http_status(422), Code::Unknown);
        assert_eq!(Code::from_http_status(503), Code::Unavailable);
    }
}
