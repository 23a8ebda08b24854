//! An `/ingest` request through Pyroscope's ingest handler and its converters
//! (docs/distributor.md §3.2): the tenant, the `name` parameter, then per format:
//!
//! * pprof (raw or multipart): the profile is decoded, its time fixed, labelled as
//!   Pyroscope labels it (`__name__` from the sample types, `__delta__`, `pyroscope_spy`,
//!   `service_name`, the `name` tags) and checked like a Push profile;
//! * JFR, speedscope and the text formats (folded, lines, trie, tree): only the labels are
//!   checked, and the rate limit is charged the body size; the body is never touched.
//!
//! Each format answers a refusal the way its Pyroscope code path does: pprof and JFR with
//! 422 and the wrapped Go error chain, speedscope with 422 and its own chain, the text
//! formats with the Connect status of the inner error.

use std::collections::HashMap;

use bytes::Bytes;
use serde::Deserialize;

use crate::protocol::connect::Code;
use crate::protocol::labelset::{self, Labels, NAME_LABEL};
use crate::protocol::multipart;
use crate::protocol::pprof::Profile;
use crate::protocol::query::Query;

use super::labels::Pair;
use super::profile::{self, DecodeFailure, Outcome};
use super::tenant::{self, TenantError};
use super::{Now, Policy, Rejection, Stage, gofmt};

/// How Pyroscope reads a body, chosen from `format` and the Content-Type exactly as its
/// handler chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `format=pprof`: the body is the profile.
    Pprof,
    /// A `multipart/form-data` body (Go SDK): the `profile` part.
    PprofForm,
    Jfr,
    Speedscope,
    /// folded ("groups", the default), lines, trie, tree.
    Text,
}

impl Format {
    pub fn of(format: Option<&str>, content_type: &str) -> Format {
        match format.unwrap_or("") {
            "trie" | "tree" | "lines" => Format::Text,
            _ if content_type == "binary/octet-stream+trie"
                || content_type == "binary/octet-stream+tree" =>
            {
                Format::Text
            }
            "jfr" => Format::Jfr,
            "pprof" => Format::Pprof,
            "speedscope" => Format::Speedscope,
            _ if content_type.contains("multipart/form-data") => Format::PprofForm,
            _ => Format::Text,
        }
    }
}

/// The `/ingest` request as the stage needs it.
pub struct Request<'a> {
    pub tenant_header: Option<&'a [u8]>,
    pub query: &'a Query,
    pub content_type: &'a str,
    pub body: &'a Bytes,
}

/// Pyroscope's answer to a refused `/ingest` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub code: Code,
    pub message: String,
    /// Go's `json.Encoder` (the handler's own errors) ends the body with a newline;
    /// connect's error writer (the text formats' push errors) does not.
    pub newline: bool,
    /// On 429s the rate limiter can predict (our addition).
    pub retry_after_secs: Option<u64>,
}

impl Refusal {
    /// An error the handler writes itself (`ErrorWithStatus`): code from the status.
    fn handler(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            code: Code::from_http_status(status),
            message: message.into(),
            newline: true,
            retry_after_secs: None,
        }
    }
}

/// What to forward of an accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Unchanged,
    /// The body as these chunks (a normalised profile, spliced into the multipart body
    /// when it came in one).
    Replaced(Vec<Bytes>),
    /// Nothing survived normalisation: answer 200, forward nothing.
    Empty,
}

/// Checks an `/ingest` request.
///
/// # Errors
/// Pyroscope's answer.
pub fn check(
    stage: &Stage,
    policy: &Policy,
    req: &Request<'_>,
    now: Now,
) -> Result<Verdict, Refusal> {
    let multitenancy = policy.config.multitenancy_enabled;
    // The authentication middleware only requires the header; its validity is checked
    // inside the push, so the answer depends on the format.
    if multitenancy && req.tenant_header.is_none_or(<[u8]>::is_empty) {
        return Err(Refusal::handler(401, TenantError::NoOrgId.to_string()));
    }
    let name = match req.query.get("name").unwrap_or("") {
        "" => Labels::new(),
        n => labelset::parse(n).map_err(|e| Refusal::handler(400, format!("name: {e}")))?,
    };
    let format = Format::of(req.query.get("format"), req.content_type);
    let tenant = tenant::resolve(req.tenant_header, multitenancy);
    if !(policy.config.validate || policy.config.normalize) {
        return tenant
            .map(|_| Verdict::Unchanged)
            .map_err(|e| tenant_refusal(format, &e));
    }
    match format {
        Format::Pprof | Format::PprofForm => check_pprof(stage, policy, req, tenant, &name, now),
        Format::Jfr | Format::Speedscope | Format::Text => {
            let tenant = tenant.map_err(|e| tenant_refusal(format, &e))?;
            let labels = ingest_labels(&name, req.query, text_metric(req.query.get("units")));
            let n = req.body.len() as u64;
            profile::check_labels(stage, policy, &tenant, labels, n, now)
                .map(|()| Verdict::Unchanged)
                .map_err(|r| push_refusal(format, &r))
        }
    }
}

fn check_pprof(
    stage: &Stage,
    policy: &Policy,
    req: &Request<'_>,
    tenant: Result<String, TenantError>,
    name: &Labels,
    now: Now,
) -> Result<Verdict, Refusal> {
    let parsing =
        |m: String| Refusal::handler(422, format!("parsing IngestInput-pprof failed {m}"));
    let (raw, config) = match Format::of(req.query.get("format"), req.content_type) {
        Format::PprofForm => form_profile(req)
            .map_err(|e| parsing(format!("failed to parse pprof /ingest multipart form {e}")))?,
        _ => (req.body.clone(), None),
    };
    // No profile: nothing to store, nothing to check.
    if raw.is_empty() {
        return Ok(Verdict::Unchanged);
    }
    let tenant = tenant.map_err(|e| tenant_refusal(Format::Pprof, &e))?;
    let tenant = tenant.as_str();
    let limits = policy.limits.of(tenant);
    let mut decoded = profile::decode(&raw, limits, policy.hard_max_decoded).map_err(|f| {
        parsing(match f {
            DecodeFailure::TooLarge { limit } => format!(
                "invalid_argument: decompressed size exceeds maximum allowed size of {limit} bytes"
            ),
            DecodeFailure::Invalid(e) => format!("invalid_argument: {e}"),
        })
    })?;
    let spy = req
        .query
        .get("spyName")
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown");
    fix_time(&mut decoded.profile, start_nanos(req.query, now));
    if spy == "dotnetspy"
        || (spy == "unknown"
            && config
                .as_ref()
                .is_some_and(|c| c.contains_key("inuse-space")))
    {
        fix_dotnet(&mut decoded.profile);
    }
    let metric = metric_name(&decoded.profile, config.as_ref());
    let labels = ingest_labels(name, req.query, &metric);
    match profile::check(stage, policy, tenant, labels, decoded, now) {
        Ok(Outcome::Unchanged) => Ok(Verdict::Unchanged),
        Ok(Outcome::Empty) => Ok(Verdict::Empty),
        Ok(Outcome::Replaced(new)) => Ok(Verdict::Replaced(splice(req.body, &raw, new))),
        Err(r) => Err(push_refusal(Format::Pprof, &r)),
    }
}

/// The `profile` file part of a multipart body (empty when absent) and the parsed
/// `sample_type_config` file part. Only non-empty file parts count, as in Pyroscope's
/// `form.ReadField`.
fn form_profile(req: &Request<'_>) -> Result<(Bytes, Option<SampleTypeConfig>), String> {
    let boundary = multipart::boundary(req.content_type).map_err(|e| e.to_string())?;
    let parts = multipart::parse(req.body, &boundary, multipart::Limits::default())
        .map_err(|e| e.to_string())?;
    let file = |n: &str| {
        parts
            .iter()
            .find(|p| p.is_file() && p.name.as_deref() == Some(n))
            .map(|p| p.data.clone())
            .filter(|d| !d.is_empty())
    };
    if file("prev_profile").is_some() {
        return Err(
            "unsupported client version. Please update github.com/grafana/pyroscope-go to the latest version"
                .into(),
        );
    }
    let config = match file("sample_type_config") {
        Some(data) => {
            let mut buf = data.to_vec();
            Some(
                simd_json::serde::from_slice::<SampleTypeConfig>(&mut buf)
                    .map_err(|e| e.to_string())?,
            )
        }
        None => None,
    };
    Ok((file("profile").unwrap_or_default(), config))
}

/// Pyroscope's repairs of .NET profiles before validation: function ids taken from the
/// locations when every function id is 0 (and there is one function per location), and
/// `-` in sample type names replaced by `_`.
fn fix_dotnet(p: &mut Profile) {
    if p.functions.iter().all(|f| f.id == 0) && p.functions.len() == p.locations.len() {
        for (f, l) in p.functions.iter_mut().zip(&p.locations) {
            f.id = l.id;
        }
    }
    for i in 0..p.sample_type.len() {
        let t = p.sample_type[i].r#type;
        if let Some(s) = p.string(t).filter(|s| s.contains(&b'-')) {
            let fixed: Vec<u8> = s
                .iter()
                .map(|&c| if c == b'-' { b'_' } else { c })
                .collect();
            p.set_string(t, &fixed);
        }
    }
}

/// `sample_type_config`: per sample type, how Pyroscope should present it.
type SampleTypeConfig = HashMap<String, SampleTypeEntry>;

#[derive(Debug, Deserialize)]
struct SampleTypeEntry {
    #[serde(rename = "display-name", default)]
    display_name: Option<String>,
}

/// The body with `new` in place of `old`, which is either the whole body or a slice of it
/// (a multipart part); the rest of the body is shared, not copied.
fn splice(body: &Bytes, old: &Bytes, new: Bytes) -> Vec<Bytes> {
    let start = (old.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
    match start.checked_add(old.len()) {
        Some(end) if end <= body.len() && !(start == 0 && end == body.len()) => {
            vec![body.slice(..start), new, body.slice(end..)]
        }
        _ => vec![new],
    }
}

/// `fixTime`: a profile without a time, or stamped in 1970, gets the request's start.
fn fix_time(p: &mut Profile, start_nanos: i64) {
    if p.time_nanos == 0 || gofmt::year_of_nanos(p.time_nanos) == 1970 {
        p.time_nanos = start_nanos;
    }
}

/// The request's `from`, in Unix nanoseconds (Pyroscope's `attime.Parse`: `now`, or a
/// Unix time in seconds, milliseconds, microseconds or nanoseconds by its digit count);
/// now when absent or unreadable.
fn start_nanos(q: &Query, now: Now) -> i64 {
    let now_nanos = now.millis.saturating_mul(1_000_000);
    let Some(from) = q.get("from") else {
        return now_nanos;
    };
    match from.parse::<i64>() {
        Ok(v) => match from.len() {
            13 => v.saturating_mul(1_000_000),
            16 => v.saturating_mul(1_000),
            19 => v,
            _ => v.saturating_mul(1_000_000_000),
        },
        Err(_) => now_nanos,
    }
}

/// Pyroscope's default display names of sample types.
fn default_display_name(t: &str) -> &str {
    match t {
        "samples" => "cpu",
        "goroutine" => "goroutines",
        "contentions" => "mutex_count",
        "delay" => "mutex_duration",
        other => other,
    }
}

/// `metricName`: `wall` if any sample type is; otherwise the first sample type whose
/// (display) name names a known kind; otherwise the last one's name.
fn metric_name(p: &Profile, config: Option<&SampleTypeConfig>) -> String {
    let types: Vec<String> = p
        .sample_type
        .iter()
        .map(|vt| String::from_utf8_lossy(p.string(vt.r#type).unwrap_or_default()).into_owned())
        .collect();
    if types.iter().any(|t| t == "wall") {
        return "wall".into();
    }
    let mut last = String::new();
    for t in &types {
        let display = config
            .and_then(|c| c.get(t))
            .and_then(|e| e.display_name.clone())
            .unwrap_or_else(|| default_display_name(t).to_string());
        let kind = if display.contains("cpu") {
            Some("process_cpu")
        } else if display.contains("alloc_")
            || display.contains("inuse_")
            || display == "space"
            || display == "objects"
        {
            Some("memory")
        } else if display.contains("mutex_") {
            Some("mutex")
        } else if display.contains("block_") {
            Some("block")
        } else if display.contains("goroutines") {
            Some("goroutines")
        } else {
            None
        };
        if let Some(k) = kind {
            return k.into();
        }
        last = display;
    }
    last
}

/// The `__name__` of a non-pprof upload, from its `units` (an approximation of the
/// converter's profile type; the body is not parsed).
fn text_metric(units: Option<&str>) -> &'static str {
    match units.unwrap_or("samples") {
        "objects" | "bytes" => "memory",
        "lock_samples" | "lock_nanoseconds" => "mutex",
        "goroutines" => "goroutines",
        _ => "process_cpu",
    }
}

/// `createLabels`: `__name__`, `__delta__="false"`, `pyroscope_spy`, `service_name` (the
/// app name, unless the tags set it), then every tag Pyroscope keeps (not `__`-prefixed,
/// except `__session_id__`).
fn ingest_labels(name: &Labels, q: &Query, metric: &str) -> Vec<Pair> {
    let pair = |n: &str, v: &str| (n.as_bytes().to_vec(), v.as_bytes().to_vec());
    let mut ls = vec![
        pair("__name__", metric),
        pair("__delta__", "false"),
        pair(
            "pyroscope_spy",
            q.get("spyName")
                .filter(|s| !s.is_empty())
                .unwrap_or("unknown"),
        ),
    ];
    if !name.contains_key("service_name") {
        ls.push(pair(
            "service_name",
            name.get(NAME_LABEL).map_or("", String::as_str),
        ));
    }
    for (k, v) in name {
        if !k.starts_with("__") || k == "__session_id__" {
            ls.push(pair(k, v));
        }
    }
    ls
}

/// A tenant ID that failed dskit's checks, answered as each format's code path does.
fn tenant_refusal(format: Format, e: &TenantError) -> Refusal {
    let chain = |m: String| Refusal::handler(422, m);
    match format {
        Format::Pprof | Format::PprofForm => chain(format!("parsing IngestInput-pprof failed {e}")),
        Format::Jfr => chain(format!(
            "pushing IngestInput-pprof failed unauthenticated: {e}"
        )),
        Format::Speedscope => chain(format!(
            "pyroscopeIngesterAdapter failed to push: unauthenticated: {e}"
        )),
        Format::Text => connect_refusal(Code::Unauthenticated, e.to_string(), None),
    }
}

/// A refused profile, answered as each format's code path does. The series id Pyroscope
/// puts in the chain is a fresh random UUID, as Pyroscope's is.
fn push_refusal(format: Format, r: &Rejection) -> Refusal {
    let series = || {
        format!(
            "push series with index 0 and id {} failed: {}: {}",
            gofmt::uuid_v4(),
            r.code.name(),
            r.message
        )
    };
    match format {
        Format::Pprof | Format::PprofForm | Format::Jfr => Refusal::handler(
            422,
            format!("pushing IngestInput-pprof failed {}", series()),
        ),
        Format::Speedscope => Refusal::handler(
            422,
            format!("pyroscopeIngesterAdapter failed to push: {}", series()),
        ),
        Format::Text => connect_refusal(r.code, r.message.clone(), r.retry_after_secs),
    }
}

/// connect's error writer: the code's status, the inner message, no newline.
fn connect_refusal(code: Code, message: String, retry_after_secs: Option<u64>) -> Refusal {
    Refusal {
        status: code.http_status(),
        code,
        message,
        newline: false,
        retry_after_secs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_pyroscope_chooses_them() {
        let f = Format::of;
        assert_eq!(f(None, ""), Format::Text);
        assert_eq!(f(Some("pprof"), ""), Format::Pprof);
        assert_eq!(
            f(Some("jfr"), "multipart/form-data; boundary=x"),
            Format::Jfr
        );
        assert_eq!(
            f(None, "multipart/form-data; boundary=x"),
            Format::PprofForm
        );
        assert_eq!(f(Some("trie"), ""), Format::Text);
        assert_eq!(f(Some("pprof"), "binary/octet-stream+trie"), Format::Text);
        assert_eq!(f(Some("speedscope"), ""), Format::Speedscope);
        assert_eq!(f(Some("other"), ""), Format::Text);
    }

    #[test]
    fn splice_shares_the_rest_of_the_body() {
        let body = Bytes::from_static(b"head[profile]tail");
        let old = body.slice(5..12);
        let out = splice(&body, &old, Bytes::from_static(b"NEW"));
        assert_eq!(out.concat(), b"head[NEW]tail");
        assert_eq!(
            splice(&body, &body, Bytes::from_static(b"X")),
            vec![Bytes::from_static(b"X")]
        );
    }

    #[test]
    fn from_by_digit_count() {
        let now = Now::read();
        let q = |s: &str| crate::protocol::query::parse(s);
        assert_eq!(
            start_nanos(&q("from=1795312298"), now),
            1_795_312_298_000_000_000
        );
        assert_eq!(
            start_nanos(&q("from=1795312298123"), now),
            1_795_312_298_123_000_000
        );
        assert_eq!(start_nanos(&q(""), now), now.millis * 1_000_000);
    }
}
