//! The edge distributor through the real binary (docs/distributor.md): one request per
//! Pyroscope check, each answered with Pyroscope's exact status and body, nothing of a
//! refused request forwarded; normalised profiles checked by a second decoder (Go's
//! `github.com/google/pprof/profile`); per-tenant rate limits across two workers.

mod common;
mod sinks;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::{Gateway, IO_TIMEOUT, td};
use prost::Message as _;
use sinks::{Sink, fnv};
use td::invalid::{self, Break};
use td::pprof::{Kind, Spec};
use td::push::Series;
use td::sdk::{self, Request};

const WAIT: Duration = Duration::from_secs(10);

/// Limits small enough that one small request trips each; three tenants with overrides.
const CONFIG: &str = r#"
[distributor]
validate = true
normalize = true
multitenancy_enabled = true

[limits]
ingestion_rate_mb = 100
ingestion_burst_size_mb = 50
max_label_names_per_series = 10
max_profile_stacktrace_samples = 30
max_profile_stacktrace_sample_labels = 5

[limits.overrides."tiny-rate"]
ingestion_rate_mb = 0.001
ingestion_burst_size_mb = 0.001

[limits.overrides."small-body"]
ingestion_body_limit_mb = 0.02

[limits.overrides."small-profile"]
max_profile_size_bytes = 4096
"#;

/// Pyroscope's default limits, with tenants required.
const NORMALIZE_CONFIG: &str = r#"
[distributor]
validate = true
normalize = true
multitenancy_enabled = true
"#;

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i64
}

fn start(sink: &Sink, config: &str) -> Gateway {
    let path = common::write_temp("distributor.toml", config);
    let url = sink.url();
    Gateway::start(&[
        "--config",
        path.to_str().expect("utf-8 path"),
        "--workers",
        "2",
        "--forward-to",
        &url,
    ])
}

/// A small clean CPU profile (no sample labels, zeros or duplicates) stamped `time`.
fn clean(seed: u64, time: i64) -> Vec<u8> {
    Spec::new(seed, Kind::Cpu)
        .samples(10)
        .functions(20)
        .depth(3, 6)
        .zeros(0)
        .duplicates(0)
        .labels(false, false)
        .time(time)
        .plain()
}

fn series(labels: &[(&str, &str)], raw: Vec<u8>) -> Series {
    Series::new(labels).sample(raw, "5b7a2f2e-7f1c-4f8e-9a55-0a9f4d1d2c3b")
}

fn push(series: Vec<Series>, tenant: &str) -> Request {
    sdk::push_proto(series, false).with_tenant(tenant)
}

const SVC: [(&str, &str); 2] = [("__name__", "process_cpu"), ("service_name", "svc")];
const L: &str = r#"{__name__="process_cpu", service_name="svc"}"#;

/// A Connect error body (no trailing newline).
fn connect(code: &str, message: &str) -> String {
    serde_json::json!({ "code": code, "message": message }).to_string()
}

/// A Pyroscope handler error body (`json.Encoder`: trailing newline).
fn handler(code: &str, message: &str) -> String {
    format!("{}\n", connect(code, message))
}

/// `expected` with `{uuid}` standing for any lower-case UUID.
fn matches(expected: &str, actual: &str) -> bool {
    match expected.split_once("{uuid}") {
        None => expected == actual,
        Some((pre, post)) => {
            actual.len() == pre.len() + 36 + post.len()
                && actual.starts_with(pre)
                && actual.ends_with(post)
                && actual[pre.len()..pre.len() + 36]
                    .bytes()
                    .all(|c| c == b'-' || c.is_ascii_hexdigit())
        }
    }
}

/// Go's `Time.String()` of Unix milliseconds in UTC (trailing zeros of the fraction
/// dropped), written here independently of the gateway's.
fn go_time(ms: i64) -> String {
    let (secs, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to civil date (Gregorian), by counting years and months.
    let mut y = 1970i64;
    let mut d = days;
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    loop {
        let len = if leap(y) { 366 } else { 365 };
        if d < len {
            break;
        }
        d -= len;
        y += 1;
    }
    let months = [
        31,
        if leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut m = 0;
    while d >= months[m] {
        d -= months[m];
        m += 1;
    }
    let mut s = format!(
        "{y:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        m + 1,
        d + 1,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if frac != 0 {
        s.push('.');
        s.push_str(format!("{frac:03}").trim_end_matches('0'));
    }
    s + " +0000 UTC"
}

/// go-humanize `IBytes`, written here independently.
fn iec(n: u64) -> String {
    if n < 10 {
        return format!("{n} B");
    }
    let units = ["B", "KiB", "MiB", "GiB"];
    let mut e = 0;
    while e + 1 < units.len() && (n as f64) >= 1024f64.powi(e as i32 + 1) {
        e += 1;
    }
    let val = ((n as f64) / 1024f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", units[e])
    } else {
        format!("{val:.0} {}", units[e])
    }
}

struct Row {
    name: String,
    request: Request,
    status: u16,
    body: String,
}

fn row(name: impl Into<String>, request: Request, status: u16, body: String) -> Row {
    Row {
        name: name.into(),
        request,
        status,
        body,
    }
}

/// The Push rows: tenancy, the request-level checks, every label check and every profile
/// check, each with Pyroscope's status and body.
fn push_rows(now: i64) -> Vec<Row> {
    let ok = |seed| clean(seed, now);
    let mut rows = vec![
        row(
            "push: no tenant",
            sdk::push_proto(vec![series(&SVC, ok(1))], false),
            401,
            connect("unauthenticated", "no org id"),
        ),
        row(
            "push: invalid tenant",
            push(vec![series(&SVC, ok(1))], "team/a"),
            401,
            connect(
                "unauthenticated",
                "tenant ID 'team/a' contains unsupported character '/'",
            ),
        ),
        row(
            "push: two tenants",
            push(vec![series(&SVC, ok(1))], "team-a|team-b"),
            401,
            connect("unauthenticated", "multiple org IDs present"),
        ),
        row(
            "push: tenant too long",
            push(vec![series(&SVC, ok(1))], &"t".repeat(151)),
            401,
            connect(
                "unauthenticated",
                "tenant ID is too long: max 150 characters",
            ),
        ),
        row(
            "push: tenant '..'",
            push(vec![series(&SVC, ok(1))], ".."),
            401,
            connect("unauthenticated", "tenant ID is '.' or '..'"),
        ),
        row(
            "push: no profiles",
            push(vec![Series::new(&SVC)], "team-a"),
            400,
            connect("invalid_argument", "no profiles received"),
        ),
        row(
            "push: profile over max_profile_size_bytes once inflated",
            sdk::push_proto(
                vec![series(
                    &SVC,
                    td::gz::gzip(&Spec::new(3, Kind::Cpu).samples(200).time(now).plain()),
                )],
                false,
            )
            .with_tenant("small-profile"),
            400,
            connect(
                "invalid_argument",
                "uncompressed profile payload size exceeds limit of 4.1 kB",
            ),
        ),
        row(
            "push: inflated total over ingestion_body_limit_mb",
            push(
                vec![
                    series(&SVC, Spec::new(4, Kind::Cpu).samples(60).time(now).plain()),
                    series(&SVC, Spec::new(5, Kind::Cpu).samples(60).time(now).plain()),
                ],
                "small-body",
            ),
            400,
            connect(
                "invalid_argument",
                "uncompressed batched profile payload size exceeds limit of 21 kB",
            ),
        ),
        row(
            "push: undecodable raw_profile",
            push(vec![series(&SVC, b"\x12\x05\x0a\x03".to_vec())], "team-a"),
            500,
            // Shorter than a gzip header: Go's gzip sniffing fails first.
            connect("unknown", "unexpected EOF"),
        ),
    ];
    // Labels (ValidateLabels), on a clean profile.
    let long_name = "n".repeat(1025);
    let long_value = "v".repeat(2049);
    let many: Vec<(String, String)> = (0..9).map(|i| (format!("k{i}"), "v".into())).collect();
    let mut many_refs: Vec<(&str, &str)> = SVC.to_vec();
    many_refs.extend(many.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let many_l = format!(
        "{{__name__=\"process_cpu\", {}, service_name=\"svc\"}}",
        many.iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    type LabelRow<'a> = (&'a str, Vec<(&'a str, &'a str)>, String);
    let label_rows: Vec<LabelRow> = vec![
        (
            "no __name__",
            vec![("service_name", "svc")],
            "invalid labels '{service_name=\"svc\"}' with error: invalid metric name".into(),
        ),
        (
            "empty service_name",
            vec![("__name__", "process_cpu"), ("service_name", "")],
            "invalid labels '{__name__=\"process_cpu\"}' with error: service name is not provided"
                .into(),
        ),
        (
            "11 label names",
            many_refs.clone(),
            format!("profile series '{many_l}' has 11 label names; limit 10"),
        ),
        (
            "label name too long",
            vec![SVC[0], SVC[1], (long_name.as_str(), "v")],
            format!(
                "profile with labels '{{__name__=\"process_cpu\", {long_name}=\"v\", service_name=\"svc\"}}' has label name too long: '{long_name}'"
            ),
        ),
        (
            "label value too long",
            vec![SVC[0], SVC[1], ("k", long_value.as_str())],
            format!(
                "profile with labels '{{__name__=\"process_cpu\", k=\"{long_value}\", service_name=\"svc\"}}' has label value too long: '{long_value}'"
            ),
        ),
        (
            "empty label name",
            vec![SVC[0], SVC[1], ("", "v")],
            "invalid labels '{=\"v\", __name__=\"process_cpu\", service_name=\"svc\"}' with error: invalid label name ''".into(),
        ),
        (
            "duplicate label name",
            vec![SVC[0], SVC[1], ("env", "a"), ("env", "b")],
            "profile with labels '{__name__=\"process_cpu\", env=\"a\", env=\"b\", service_name=\"svc\"}' has duplicate label name: 'env'".into(),
        ),
    ];
    for (name, labels, message) in label_rows {
        rows.push(row(
            format!("push labels: {name}"),
            push(vec![series(&labels, ok(2))], "team-a"),
            400,
            connect("invalid_argument", &message),
        ));
    }
    // A pprof sample label joins the series labels before they are checked.
    let mut p = td::pprof::Spec::new(6, Kind::Cpu)
        .samples(10)
        .functions(20)
        .depth(3, 6)
        .zeros(0)
        .duplicates(0)
        .labels(false, false)
        .time(now)
        .profile();
    let key = invalid::intern(&mut p, &"a".repeat(1025));
    let value = invalid::intern(&mut p, "v");
    p.sample[0].label.push(td::wire::Label {
        key,
        str: value,
        ..Default::default()
    });
    let a = "a".repeat(1025);
    rows.push(row(
        "push labels: a sample label's name too long",
        push(vec![series(&SVC, p.encode_to_vec())], "team-a"),
        400,
        connect(
            "invalid_argument",
            &format!(
                "profile with labels '{{__name__=\"process_cpu\", {a}=\"v\", service_name=\"svc\"}}' has label name too long: '{a}'"
            ),
        ),
    ));
    // Profiles (ValidateProfile), each break on its own (the window rows are separate).
    let profile_rows: Vec<(Break, String)> = vec![
        (Break::NoSampleTypes, "empty profile".into()),
        (
            Break::Samples(31),
            format!(
                "the profile with labels '{L}' exceeds the samples count limit (max_profile_stacktrace_samples, actual: 31, limit: 30)"
            ),
        ),
        (
            Break::SampleLabels(6),
            format!(
                "the profile with labels '{L}' exceeds the sample labels limit (max_profile_stacktrace_sample_labels, actual: 6, limit: 5)"
            ),
        ),
        (Break::LocationIdZero, "location id is 0".into()),
        (Break::FunctionIdZero, "function id is 0".into()),
        (
            Break::ValueLengthMismatch,
            "sample value length mismatch".into(),
        ),
        (
            Break::StringZeroNotEmpty,
            "string 0 should be empty string".into(),
        ),
        (
            Break::SampleTypeIndex,
            "sample type type string index out of range".into(),
        ),
        (
            Break::SampleLabelIndex,
            "sample label string index out of range".into(),
        ),
        (
            Break::FunctionNameIndex,
            "function name string index out of range".into(),
        ),
        (
            Break::FunctionSystemNameIndex,
            "function system name index string out of range".into(),
        ),
        (
            Break::FunctionFileNameIndex,
            "function file name string index out of range".into(),
        ),
        (
            Break::MappingFileNameIndex,
            "mapping file name string index out of range".into(),
        ),
        (
            Break::MappingBuildIdIndex,
            "mapping build id string index out of range".into(),
        ),
        (Break::SampleTypeDash, "sample type contains -".into()),
        (
            Break::InvalidUtf8,
            "invalid utf8 string hex: 66c56fff".into(),
        ),
    ];
    for (b, message) in profile_rows {
        rows.push(row(
            format!("push profile: {b:?}"),
            push(vec![series(&SVC, invalid::profile(b, 9, now))], "team-a"),
            400,
            connect("invalid_argument", &message),
        ));
    }
    // One bad series among good ones: Pyroscope's answer for the bad one.
    rows.push(row(
        "push: one bad series of three",
        push(
            vec![
                series(
                    &[("__name__", "process_cpu"), ("service_name", "a")],
                    ok(10),
                ),
                series(&SVC, invalid::profile(Break::FunctionIdZero, 11, now)),
                series(
                    &[("__name__", "process_cpu"), ("service_name", "c")],
                    ok(12),
                ),
            ],
            "team-a",
        ),
        400,
        connect("invalid_argument", "function id is 0"),
    ));
    rows
}

/// An `/ingest` request of `body` under `target` with `content_type`.
fn ingest(target: String, content_type: &str, body: Vec<u8>, tenant: Option<&str>) -> Request {
    let r = Request::post(
        "ingest",
        target,
        &[("Content-Type", content_type.into())],
        body,
    );
    match tenant {
        Some(t) => r.with_tenant(t),
        None => r,
    }
}

/// The `/ingest` rows: each format's own answer.
fn ingest_rows(now: i64) -> Vec<Row> {
    let now_s = (now / 1_000_000_000) as u64;
    let from = now_s - 10;
    let pprof_target = format!(
        "/ingest?name=app%7Benv%3Dprod%7D&from={from}&until={now_s}&format=pprof&spyName=gospy"
    );
    let l = r#"{__delta__="false", __name__="process_cpu", env="prod", pyroscope_spy="gospy", service_name="app"}"#;
    let chain = |m: &str| {
        handler(
            "unknown",
            &format!(
                "pushing IngestInput-pprof failed push series with index 0 and id {{uuid}} failed: invalid_argument: {m}"
            ),
        )
    };
    let tags: String = (0..7).map(|i| format!("k{i}=v,")).collect();
    let many_name = td::sdk::query_escape(&format!("app{{{}}}", tags.trim_end_matches(',')));
    let many_l = format!(
        "{{__delta__=\"false\", __name__=\"process_cpu\", {}, pyroscope_spy=\"pyspy\", service_name=\"app\"}}",
        (0..7)
            .map(|i| format!("k{i}=\"v\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let too_many = format!("profile series '{many_l}' has 11 label names; limit 10");
    let text_target = |format: &str| {
        format!("/ingest?name={many_name}&from={from}&until={now_s}&format={format}&spyName=pyspy")
    };
    let go = |profile: &[u8], prev: Option<&[u8]>| {
        sdk::go_multipart(1, now_s, Kind::Cpu, profile, prev, None).with_tenant("team-a")
    };
    // pyroscope-go's tags, sorted; the session id is still there when the profile is
    // checked (Pyroscope reduces it later).
    let session = {
        let t = go(&[], None).target;
        let at = t.find("__session_id__%3D").expect("a session id") + "__session_id__%3D".len();
        t[at..at + 16].to_string()
    };
    let go_l = format!(
        r#"{{__delta__="false", __name__="process_cpu", __session_id__="{session}", env="feas", otel.scope.name="com.grafana.pyroscope/go", otel.scope.version="1.2.7", process.runtime.name="go", process.runtime.version="go1.24.4", pyroscope_spy="gospy", service_name="feas.go.app"}}"#
    );
    vec![
        row(
            "ingest: no tenant",
            ingest(
                pprof_target.clone(),
                "application/octet-stream",
                clean(1, now),
                None,
            ),
            401,
            handler("unauthenticated", "no org id"),
        ),
        row(
            "ingest: unparsable name",
            ingest(
                format!("/ingest?name=my%20app&from={from}&format=pprof"),
                "application/octet-stream",
                clean(1, now),
                Some("team-a"),
            ),
            400,
            handler(
                "invalid_argument",
                "name: invalid service name: my app: character is not allowed: ' '",
            ),
        ),
        row(
            "ingest pprof: invalid tenant",
            ingest(
                pprof_target.clone(),
                "application/octet-stream",
                clean(1, now),
                Some("a b"),
            ),
            422,
            handler(
                "unknown",
                "parsing IngestInput-pprof failed tenant ID 'a b' contains unsupported character ' '",
            ),
        ),
        row(
            "ingest pprof: sample type with a dash",
            ingest(
                pprof_target.clone(),
                "application/octet-stream",
                td::gz::gzip(&invalid::profile(Break::SampleTypeDash, 3, now)),
                Some("team-a"),
            ),
            422,
            chain("sample type contains -"),
        ),
        row(
            "ingest pprof: too many sample labels",
            ingest(
                pprof_target.clone(),
                "application/octet-stream",
                invalid::profile(Break::SampleLabels(6), 3, now),
                Some("team-a"),
            ),
            422,
            chain(&format!(
                "the profile with labels '{l}' exceeds the sample labels limit (max_profile_stacktrace_sample_labels, actual: 6, limit: 5)"
            )),
        ),
        row(
            "ingest pprof: stamped in 1970, so `from` is used (accepted)",
            ingest(
                pprof_target.clone(),
                "application/octet-stream",
                clean(4, 15_000_000_000),
                Some("team-a"),
            ),
            200,
            String::new(),
        ),
        row(
            "ingest pprof: rate limit (422 on this path, as in Pyroscope)",
            ingest(
                pprof_target.clone(),
                "application/octet-stream",
                clean(5, now),
                Some("tiny-rate"),
            ),
            422,
            // The message is checked in rate_limits_answer_as_pyroscope.
            "{rate}".into(),
        ),
        row(
            "ingest multipart: location id 0",
            go(
                &td::gz::gzip(&invalid::profile(Break::LocationIdZero, 5, now)),
                None,
            ),
            422,
            chain("location id is 0"),
        ),
        row(
            "ingest multipart: over the samples limit",
            go(&invalid::profile(Break::Samples(31), 5, now), None),
            422,
            chain(&format!(
                "the profile with labels '{go_l}' exceeds the samples count limit (max_profile_stacktrace_samples, actual: 31, limit: 30)"
            )),
        ),
        row(
            "ingest multipart: prev_profile",
            go(&clean(6, now), Some(&clean(7, now))),
            422,
            handler(
                "unknown",
                "parsing IngestInput-pprof failed failed to parse pprof /ingest multipart form unsupported client version. Please update github.com/grafana/pyroscope-go to the latest version",
            ),
        ),
        row(
            "ingest folded: invalid tenant",
            ingest(
                text_target("folded"),
                "binary/octet-stream",
                b"a;b 1\n".to_vec(),
                Some("a b"),
            ),
            401,
            connect(
                "unauthenticated",
                "tenant ID 'a b' contains unsupported character ' '",
            ),
        ),
        row(
            "ingest folded: too many labels",
            ingest(
                text_target("folded"),
                "binary/octet-stream",
                b"a;b 1\n".to_vec(),
                Some("team-a"),
            ),
            400,
            connect("invalid_argument", &too_many),
        ),
        row(
            "ingest lines: too many labels",
            ingest(
                text_target("lines"),
                "binary/octet-stream",
                b"a;b\n".to_vec(),
                Some("team-a"),
            ),
            400,
            connect("invalid_argument", &too_many),
        ),
        row(
            "ingest speedscope: too many labels",
            ingest(
                text_target("speedscope"),
                "application/json",
                td::formats::speedscope(5, 1),
                Some("team-a"),
            ),
            422,
            handler(
                "unknown",
                &format!(
                    "pyroscopeIngesterAdapter failed to push: push series with index 0 and id {{uuid}} failed: invalid_argument: {too_many}"
                ),
            ),
        ),
        row(
            "ingest jfr: too many labels",
            ingest(
                text_target("jfr"),
                "application/octet-stream",
                td::formats::jfr(4096, 1),
                Some("team-a"),
            ),
            422,
            handler(
                "unknown",
                &format!(
                    "pushing IngestInput-pprof failed push series with index 0 and id {{uuid}} failed: invalid_argument: {too_many}"
                ),
            ),
        ),
    ]
}

/// Every row once, on one connection; then nothing of any refused request reached the
/// sink (only the accepted rows did).
#[test]
fn every_check_answers_as_pyroscope() {
    let sink = Sink::start(&[]);
    let gw = start(&sink, CONFIG);
    let now = now_nanos();
    let mut rows = push_rows(now);
    rows.extend(ingest_rows(now));
    let mut c = gw.connect();
    let mut accepted = 0;
    let mut failures = Vec::new();
    for r in &rows {
        c.send(&r.request.render(&gw.addr.to_string()))
            .expect("send");
        let resp = c.read_response(IO_TIMEOUT).expect("response");
        let body = resp.body_str().to_string();
        if resp.status == 200 {
            accepted += 1;
        }
        let body_ok = r.body == "{rate}"
            && body.contains("push rate limit (1.0 KiB) exceeded while adding")
            || matches(&r.body, &body);
        if resp.status != r.status || !body_ok {
            failures.push(format!(
                "{}:\n  want {} {:?}\n  got  {} {:?}",
                r.name, r.status, r.body, resp.status, body
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Only the accepted requests were forwarded, one record each.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.records().len(), accepted, "{:?}", sink.records());
    // Refusals were counted under Pyroscope's names.
    let m = gw.metrics();
    assert!(
        m.value(
            "pyroscope_discarded_samples_total",
            &[("reason", "malformed_profile"), ("tenant", "team-a")]
        ) >= 14.0
    );
    assert!(
        m.value(
            "pyroscope_discarded_bytes_total",
            &[
                ("reason", "profile_size_limit"),
                ("tenant", "small-profile")
            ]
        ) == 4096.0,
        "Pyroscope counts the limit, not the size"
    );
}

/// The ingestion window: the bounds come from the gateway's clock, so they are checked
/// against the interval the request was sent in.
#[test]
fn ingestion_window_messages() {
    let sink = Sink::start(&[]);
    let gw = start(&sink, CONFIG);
    for (b, offset_ms) in [
        (Break::TooOld, -2 * 3_600_000),
        (Break::TooNew, 20 * 60_000),
    ] {
        let now = now_nanos();
        let before = now / 1_000_000;
        let r = gw.request(
            "POST",
            "/push.v1.PusherService/Push",
            &[
                ("Content-Type", "application/proto"),
                ("X-Scope-OrgID", "team-a"),
            ],
            &td::push::encode(&[series(&SVC, invalid::profile(b, 9, now))]),
        );
        let after = now_nanos() / 1_000_000;
        assert_eq!(r.status, 400, "{b:?}: {}", r.body_str());
        let message = r.json()["message"].as_str().unwrap_or_default().to_string();
        let stamped = before + offset_ms;
        let hit = (before..=after).any(|server_now| {
            message
                == format!(
                    "profile with labels '{L}' is outside of ingestion window (profile timestamp: {}, the ingestion window starts at {} and ends at {})",
                    go_time(stamped),
                    go_time(server_now - 3_600_000),
                    go_time(server_now + 600_000)
                )
        });
        assert!(hit, "{b:?}: {message}");
    }
    assert_eq!(go_time(1_676_632_334_000), "2023-02-17 11:12:14 +0000 UTC");
    assert_eq!(
        go_time(1_699_534_782_370),
        "2023-11-09 12:59:42.37 +0000 UTC"
    );
}

/// A tenant over its rate gets Pyroscope's 429 with a Retry-After; another tenant is not
/// affected; the accepted rate across two workers is the configured one within 10 %.
#[test]
fn rate_limits_answer_as_pyroscope() {
    let sink = Sink::start(&["--checks", "none", "--records", "0"]);
    // 64 KiB/s with a 16 KiB burst.
    let config = r#"
[distributor]
validate = true
multitenancy_enabled = true

[limits.overrides."limited"]
ingestion_rate_mb = 0.0625
ingestion_burst_size_mb = 0.015625
"#;
    let gw = start(&sink, config);
    let now = now_nanos();
    let raw = clean(1, now);
    let labels = [("__name__", "process_cpu"), ("service_name", "svc")];
    let cost = raw.len() + labels.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    let body = td::push::encode(&[series(&labels, raw.clone())]);
    let headers =
        |t: &'static str| vec![("Content-Type", "application/proto"), ("X-Scope-OrgID", t)];
    // Drain the burst, then the next one is refused with Pyroscope's message.
    let mut first_refusal = None;
    for _ in 0..100 {
        let r = gw.request(
            "POST",
            "/push.v1.PusherService/Push",
            &headers("limited"),
            &body,
        );
        if r.status != 200 {
            first_refusal = Some(r);
            break;
        }
    }
    let r = first_refusal.expect("the burst ran out");
    assert_eq!(r.status, 429);
    assert_eq!(
        r.body_str(),
        connect(
            "resource_exhausted",
            &format!(
                "push rate limit (64 KiB) exceeded while adding {}",
                iec(cost as u64)
            )
        )
    );
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=2).contains(&retry), "{retry}");
    // Another tenant is unaffected.
    for _ in 0..20 {
        let r = gw.request(
            "POST",
            "/push.v1.PusherService/Push",
            &headers("other"),
            &body,
        );
        assert_eq!(r.status, 200, "{}", r.body_str());
    }
    // Measured rate: 4 connections (spread over both workers) offering far more than the
    // limit for a bounded time.
    std::thread::sleep(Duration::from_secs(1)); // refill the burst
    let run = Duration::from_secs(4);
    let started = std::time::Instant::now();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let addr = gw.addr;
            let body = body.clone();
            std::thread::spawn(move || {
                let mut c = common::Conn::connect(addr).expect("connect");
                let (mut ok, mut refused) = (0u64, 0u64);
                while started.elapsed() < run {
                    let r = c
                        .request(
                            "POST",
                            "/push.v1.PusherService/Push",
                            &headers("limited"),
                            &body,
                        )
                        .expect("response");
                    match r.status {
                        200 => ok += 1,
                        429 => refused += 1,
                        s => panic!("unexpected {s}: {}", r.body_str()),
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                (ok, refused)
            })
        })
        .collect();
    let (mut ok, mut refused) = (0u64, 0u64);
    for h in handles {
        let (o, r) = h.join().expect("client thread");
        ok += o;
        refused += r;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let accepted = (ok * cost as u64) as f64;
    let (rate, burst) = (65_536.0, 16_384.0);
    let expected = rate * elapsed + burst;
    assert!(
        refused > ok,
        "the clients offered more than the limit ({ok} ok, {refused} refused)"
    );
    assert!(
        (accepted - expected).abs() <= expected * 0.10,
        "accepted {accepted:.0} B in {elapsed:.2} s; a {rate} B/s limit with a {burst} B burst allows {expected:.0}"
    );
    let m = gw.metrics();
    assert_eq!(
        m.value(
            "pyroscope_discarded_samples_total",
            &[("reason", "rate_limited"), ("tenant", "limited")]
        ),
        (refused + 1) as f64
    );
}

// === normalisation ===

/// Go's `profile.Parse` + `CheckValid` over `files`: (samples, per-type sums, time) each.
fn go_check(files: &[PathBuf]) -> Vec<(usize, Vec<i64>, i64)> {
    let bin = go_checker();
    let out = Command::new(&bin)
        .args(files)
        .output()
        .expect("run pprofcheck");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "Go rejected a forwarded profile:\n{text}"
    );
    text.lines()
        .map(|l| {
            let field = |k: &str| {
                l.split_whitespace()
                    .find_map(|f| f.strip_prefix(k))
                    .unwrap_or_else(|| panic!("{k} in {l}"))
                    .to_string()
            };
            (
                field("samples=").parse().expect("count"),
                field("sums=")
                    .split(',')
                    .map(|v| v.parse().expect("sum"))
                    .collect(),
                field("time=").parse().expect("time"),
            )
        })
        .collect()
}

/// Builds `tests/go/pprofcheck` with Debian's Go and pprof packages (scripts/test.sh
/// installs `golang-go` and `golang-github-google-pprof-dev`).
fn go_checker() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let out = common::temp_path("pprofcheck");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go/pprofcheck/main.go");
        let st = Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg(&src)
            .env("GO111MODULE", "off")
            .env("GOPATH", "/usr/share/gocode")
            .env("GOCACHE", std::env::temp_dir().join("pyrogate-gocache"))
            .status()
            .unwrap_or_else(|e| {
                panic!("`go` is needed to check normalised profiles ({e}); run scripts/test.sh, which installs golang-go and golang-github-google-pprof-dev")
            });
        assert!(st.success(), "building tests/go/pprofcheck failed (is golang-github-google-pprof-dev installed?)");
        out
    })
    .clone()
}

/// The sample count and per-type sums normalisation must leave (the test-data crate's
/// independent computation).
fn expected_after_normalise(p: &td::wire::Profile) -> (usize, Vec<i64>) {
    let groups = td::pprof::expected_after_normalise(p);
    let mut sums = vec![0i64; p.sample_type.len()];
    for values in groups.values() {
        for (sum, v) in sums.iter_mut().zip(values) {
            *sum += v;
        }
    }
    (groups.len(), sums)
}

/// Profiles with known zeros, negatives and duplicates, plain and gzip'd, through Push and
/// `/ingest` (raw and multipart): what arrives is the normalised profile, gzip'd as it was
/// sent, which Go's decoder accepts, with the independently computed sample count and the
/// same value sums; a profile normalisation does not change arrives byte for byte.
#[test]
fn normalised_profiles_decode_elsewhere_with_sums_preserved() {
    let dir = common::temp_path("kept");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let sink = Sink::start(&["--keep-profiles", dir.to_str().expect("utf-8")]);
    let gw = start(&sink, NORMALIZE_CONFIG);
    let now = now_nanos();
    let now_s = (now / 1_000_000_000) as u64;
    let mut sent: Vec<(td::wire::Profile, bool)> = Vec::new();
    let mut c = gw.connect();
    for (i, kind) in [Kind::Cpu, Kind::Heap, Kind::Wall, Kind::Goroutine]
        .into_iter()
        .enumerate()
    {
        let spec = Spec::new(20 + i as u64, kind)
            .samples(25)
            .functions(40)
            .zeros(10)
            .duplicates(40)
            .negatives(5)
            .labels(true, true)
            .time(now);
        let model = spec.profile();
        let gzipped = i % 2 == 1;
        let raw = if gzipped { spec.gzip() } else { spec.plain() };
        let labels = [("__name__", kind.metric()), ("service_name", "svc")];
        let req = push(vec![series(&labels, raw)], "team-a");
        c.send(&req.render("h")).expect("send");
        let r = c.read_response(IO_TIMEOUT).expect("response");
        assert_eq!(r.status, 200, "{kind:?}: {}", r.body_str());
        sent.push((model, gzipped));
    }
    // /ingest: a raw gzip'd profile and a Go multipart one.
    let spec = Spec::new(30, Kind::Cpu)
        .samples(25)
        .functions(40)
        .zeros(10)
        .duplicates(40)
        .time(now);
    let target = format!(
        "/ingest?name=app&from={}&format=pprof&spyName=nodespy",
        now_s - 10
    );
    let r = c
        .request(
            "POST",
            &target,
            &[
                ("Content-Type", "application/octet-stream"),
                ("X-Scope-OrgID", "team-a"),
            ],
            &spec.gzip(),
        )
        .expect("response");
    assert_eq!(r.status, 200, "{}", r.body_str());
    sent.push((spec.profile(), true));
    let spec = Spec::new(31, Kind::Cpu)
        .samples(25)
        .functions(40)
        .zeros(10)
        .duplicates(40)
        .time(now);
    let go = sdk::go_multipart(1, now_s, Kind::Cpu, &spec.gzip(), None, None).with_tenant("team-a");
    c.send(&go.render("h")).expect("send");
    let r = c.read_response(IO_TIMEOUT).expect("response");
    assert_eq!(r.status, 200, "{}", r.body_str());
    sent.push((spec.profile(), true));
    let records = sink.wait_records(sent.len(), WAIT);
    // Push records name their profile (raw_fnv); the two /ingest ones are the other files.
    let push_files: Vec<PathBuf> = records[..4]
        .iter()
        .map(|rec| {
            let h = rec["series"][0]["samples"][0]["raw_fnv"]
                .as_str()
                .expect("a Push record");
            dir.join(format!("{h}.pprof"))
        })
        .collect();
    let ingest_files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("kept dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !push_files.contains(p))
        .collect();
    assert_eq!(ingest_files.len(), 2, "two /ingest profiles kept");
    let pushed = go_check(&push_files);
    for (i, ((model, gzipped), (samples, sums, time))) in sent.iter().zip(&pushed).enumerate() {
        let (want_samples, want_sums) = expected_after_normalise(model);
        assert_eq!(
            *samples, want_samples,
            "profile {i}: samples after normalisation"
        );
        assert_eq!(*sums, want_sums, "profile {i}: value sums");
        assert_eq!(*time, now, "profile {i}: time kept");
        assert!(
            *samples < model.sample.len(),
            "profile {i}: nothing was merged or dropped"
        );
        let bytes = std::fs::read(&push_files[i]).expect("kept file");
        assert_eq!(
            bytes.starts_with(&[0x1f, 0x8b]),
            *gzipped,
            "profile {i}: compression kept"
        );
    }
    // The /ingest ones, in either order.
    let mut got: Vec<(usize, Vec<i64>)> = go_check(&ingest_files)
        .into_iter()
        .map(|(n, s, _)| (n, s))
        .collect();
    let mut want: Vec<(usize, Vec<i64>)> = sent[4..]
        .iter()
        .map(|(m, _)| expected_after_normalise(m))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "/ingest profiles after normalisation");
    for f in &ingest_files {
        let bytes = std::fs::read(f).expect("kept file");
        assert!(
            bytes.starts_with(&[0x1f, 0x8b]),
            "sent gzip'd, forwarded gzip'd"
        );
    }
    let m = gw.metrics();
    assert_eq!(
        m.sum("pyrogate_normalized_profiles_total"),
        sent.len() as f64
    );

    // A profile that is already normal (one the gateway normalised) arrives byte for byte.
    let normal = std::fs::read(&push_files[0]).expect("kept file");
    let r = c
        .request(
            "POST",
            "/push.v1.PusherService/Push",
            &[
                ("Content-Type", "application/proto"),
                ("X-Scope-OrgID", "team-a"),
            ],
            &td::push::encode(&[series(&SVC, normal.clone())]),
        )
        .expect("response");
    assert_eq!(r.status, 200, "{}", r.body_str());
    let records = sink.wait_records(sent.len() + 1, WAIT);
    assert_eq!(
        records[sent.len()]["series"][0]["samples"][0]["raw_fnv"],
        fnv(&normal)
    );
    assert_eq!(
        gw.metrics().sum("pyrogate_normalized_profiles_total"),
        sent.len() as f64
    );
}

/// A profile without a timestamp gets the gateway's "now"; one with none through Push and
/// one stamped in 1970 through /ingest are both accepted.
#[test]
fn missing_timestamps_are_set() {
    let dir = common::temp_path("kept-time");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let sink = Sink::start(&["--keep-profiles", dir.to_str().expect("utf-8")]);
    let gw = start(&sink, CONFIG);
    let before = now_nanos();
    let r = gw.request(
        "POST",
        "/push.v1.PusherService/Push",
        &[
            ("Content-Type", "application/proto"),
            ("X-Scope-OrgID", "team-a"),
        ],
        &td::push::encode(&[series(&SVC, clean(50, 0))]),
    );
    let after = now_nanos();
    assert_eq!(r.status, 200, "{}", r.body_str());
    let rec = &sink.wait_records(1, WAIT)[0];
    let h = rec["series"][0]["samples"][0]["raw_fnv"]
        .as_str()
        .expect("fnv");
    let got = go_check(&[dir.join(format!("{h}.pprof"))]);
    let t = got[0].2;
    // Pyroscope's clock has millisecond resolution.
    assert!(
        t >= before / 1_000_000 * 1_000_000 && t <= after,
        "{t} not in [{before}, {after}]"
    );
}

/// Per-tenant overrides change on SIGHUP: a tenant's stricter label limit applies after the
/// reload, to that tenant only.
#[test]
fn sighup_reloads_overrides() {
    let sink = Sink::start(&[]);
    let path = common::write_temp("reload-distributor.toml", NORMALIZE_CONFIG);
    let url = sink.url();
    let gw = Gateway::start(&[
        "--config",
        path.to_str().expect("utf-8"),
        "--forward-to",
        &url,
    ]);
    let now = now_nanos();
    let labels = [SVC[0], SVC[1], ("env", "prod")];
    let send = |tenant: &str| {
        gw.request(
            "POST",
            "/push.v1.PusherService/Push",
            &[
                ("Content-Type", "application/proto"),
                ("X-Scope-OrgID", tenant),
            ],
            &td::push::encode(&[series(&labels, clean(60, now))]),
        )
    };
    assert_eq!(send("strict").status, 200);
    std::fs::write(
        &path,
        format!(
            "{NORMALIZE_CONFIG}\n[limits.overrides.\"strict\"]\nmax_label_names_per_series = 2\n"
        ),
    )
    .expect("rewrite config");
    gw.signal(libc::SIGHUP);
    let refused = common::poll_until(Duration::from_secs(5), || {
        let r = send("strict");
        (r.status == 400).then_some(r)
    })
    .expect("the override applies after SIGHUP");
    assert_eq!(
        refused.body_str(),
        connect(
            "invalid_argument",
            "profile series '{__name__=\"process_cpu\", env=\"prod\", service_name=\"svc\"}' has 3 label names; limit 2"
        )
    );
    assert_eq!(send("other").status, 200, "other tenants keep the defaults");
}
