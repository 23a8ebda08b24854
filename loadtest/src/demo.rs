//! `pyrogate-load demo`: the README's main job, on loopback.
//!
//! 1. Starts Pyroscope-compatible sinks (in this process, full framing checks) and the
//!    workspace's `pyrogate` binary in front of them (fan-out to every sink, `ack = all`).
//! 2. Sends the project's own corpus ([`corpus::every_route_and_format`]: every route and
//!    format the gateway serves, shaped like each real agent's requests, tenants rotating),
//!    then, with `--fixtures DIR`, the captured requests of that directory.
//! 3. Reads what each sink recorded and checks that every request arrived at every sink
//!    intact: the `/ingest` body byte for byte (FNV-1a checksum), and for Push the
//!    `raw_profile` bytes (a gRPC-Web Push is re-encoded as Connect on the way). A request
//!    Pyroscope refuses (a multipart with `prev_profile`) must be refused the same way.
//! 4. Runs a short closed-loop load of the six load kinds straight to a sink and through the
//!    gateway, and prints throughput, latency and the gateway's CPU per request.
//! 5. Stops the gateway (SIGTERM: it must drain and exit 0).
//!
//! Returns whether everything checked out; any failure makes the command exit non-zero.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use pyrogate::protocol::query;
use pyrogate_testdata::corpus::{self, Route};

use crate::bench::table::{self, Table};
use crate::fnv;
use crate::load::payload::{self, Options, Protocol, Source};
use crate::load::{self, RunConfig};
use crate::probe::Client;
use crate::process::children::{Gateway, GatewayOpts};
use crate::process::{self, SpawnOpts, procfs};
use crate::sink::{Sink, SinkConfig};

/// The tenant whose requests are shown decoded; the corpus rotates through it, another
/// tenant and none.
const TENANT: &str = "team-a";
const ANONYMOUS: &str = "anonymous";
/// Seed of the generated corpus.
const SEED: u64 = 1;
/// Bound of one request of the first phase.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The two load runs together stay well inside the demo's minute.
pub const MAX_LOAD_DURATION: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// A directory of captured requests to send after the generated corpus.
    pub fixtures: Option<PathBuf>,
    pub gateway: Option<PathBuf>,
    /// pyrogate `--driver`.
    pub driver: String,
    pub sinks: usize,
    pub duration: Duration,
    pub connections: usize,
}

impl DemoConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=4).contains(&self.sinks) {
            return Err("--sinks must be within 1..=4".into());
        }
        if self.duration.is_zero() || self.duration > MAX_LOAD_DURATION {
            return Err(format!(
                "--duration must be within (0, {}s]",
                MAX_LOAD_DURATION.as_secs()
            ));
        }
        if !(1..=1000).contains(&self.connections) {
            return Err("--connections must be within 1..=1000".into());
        }
        if let Some(d) = &self.fixtures {
            crate::fixtures::check_dir(d)?;
        }
        Ok(())
    }
}

/// One request of the first phase.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// What it imitates (`push-python`, `ingest-go-multipart-goroutines`, …).
    pub kind: String,
    /// `generated` or `captured`.
    pub corpus: &'static str,
    pub route: &'static str,
    pub tenant: Option<String>,
    /// The status Pyroscope answers (and the gateway relays).
    pub expect: u16,
    pub bytes: Vec<u8>,
    pub body: Vec<u8>,
    /// Push: the `raw_profile` bytes of every sample, in order.
    pub raw_profiles: Vec<Vec<u8>>,
}

/// What was sent in the first phase, and what to look for at the sinks.
#[derive(Debug, Clone)]
pub struct Sent {
    pub kind: String,
    pub corpus: &'static str,
    pub route: &'static str,
    pub tenant: String,
    pub status: u16,
    pub expect: u16,
    /// The request line's target.
    pub target: String,
    /// FNV-1a of the body before transfer framing.
    pub body_fnv: u64,
    /// Push: FNV-1a of each `raw_profile` (what survives a re-encoding).
    pub raw_fnvs: Vec<u64>,
}

/// How a sent request was found at a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// The body arrived byte for byte.
    Body,
    /// Push re-encoded on the way; every `raw_profile` arrived byte for byte.
    RawProfile,
    /// Refused by the sink with the status Pyroscope gives, as expected.
    Refused,
    Missing,
}

impl Match {
    fn text(self) -> &'static str {
        match self {
            Match::Body => "✓ body identical",
            Match::RawProfile => "✓ raw_profile identical",
            Match::Refused => "✓ refused as by Pyroscope",
            Match::Missing => "✗ MISSING",
        }
    }
}

/// How each kind is sent, for the table.
fn described(kind: &str) -> String {
    let (base, suffix) = match kind.strip_prefix("captured ") {
        Some(k) => (k, " (captured)"),
        None => (kind, ""),
    };
    let text = match base {
        "push-python" | "push" => "Push protobuf, gzip (pyroscope-io)",
        "push-rust" => "Push protobuf, gzip (pyroscope-rs)",
        "push-proto" => "Push protobuf, 4 series",
        "push-proto-gzip" => "Push protobuf gzip, 4 series",
        "push-json" => "Push JSON (Connect protojson)",
        "push-json-gzip" => "Push JSON, gzip",
        "push-grpc-web" => "Push gRPC-Web, 4 series",
        "push-grpc-web-gzip" => "Push gRPC-Web, gzip'd message",
        "ingest-node-pprof-wall" | "ingest-pprof" => "/ingest pprof gzip, wall (Node.js)",
        "ingest-node-pprof-memory" => "/ingest pprof gzip, heap (Node.js)",
        "ingest-go-multipart-process_cpu" => "/ingest multipart, CPU (Go)",
        "ingest-go-multipart-goroutines" | "ingest-multipart" => {
            "/ingest multipart + sample_type_config (Go)"
        }
        "ingest-go-multipart-memory-prev" => "/ingest multipart + prev_profile (old Go)",
        "ingest-java-jfr" | "ingest-jfr" => "/ingest JFR multipart, chunked (Java)",
        "ingest-jfr-raw" => "/ingest raw JFR",
        "ingest-rs05-pprof" => "/ingest pprof, Content-Encoding gzip (rs ≤ 0.5)",
        "ingest-folded" => "/ingest folded text",
        "ingest-lines" => "/ingest lines text",
        "ingest-trie" => "/ingest trie",
        "ingest-tree" => "/ingest tree",
        "ingest-speedscope" => "/ingest speedscope JSON",
        _ => "",
    };
    format!("{text}{suffix}")
}

fn route_name(r: Route) -> &'static str {
    match r {
        Route::Ingest => "ingest",
        Route::Push => "push",
    }
}

/// The project's corpus, every route and format, rendered for `host`.
pub fn generated(host: &str, now_s: u64) -> Vec<Outgoing> {
    corpus::every_route_and_format(SEED, now_s)
        .into_iter()
        .map(|c| Outgoing {
            kind: c.request.name.clone(),
            corpus: "generated",
            route: route_name(c.route),
            tenant: c.tenant.map(str::to_owned),
            expect: c.pyroscope_status,
            bytes: c.request.render(host),
            body: c.request.body.clone(),
            raw_profiles: c
                .request
                .series
                .iter()
                .flat_map(|s| s.samples.iter().map(|p| p.raw_profile.clone()))
                .collect(),
        })
        .collect()
}

/// The captured requests of `dir`, as the load kinds send them.
pub fn captured(
    target: &payload::Target,
    dir: &std::path::Path,
    now_s: u64,
) -> Result<Vec<Outgoing>, String> {
    let prepared = payload::prepare(
        Protocol::Mix,
        target,
        &Options {
            source: Source::Captured(dir.to_path_buf()),
            seed: SEED,
            tenant: Some(TENANT.to_owned()),
            now_s,
        },
    )?;
    Ok(prepared
        .into_iter()
        .map(|p| Outgoing {
            kind: format!("captured {}", p.protocol.name()),
            corpus: "captured",
            route: match p.protocol {
                Protocol::Push | Protocol::PushJson | Protocol::PushPlain => "push",
                _ => "ingest",
            },
            tenant: Some(TENANT.to_owned()),
            expect: 200,
            bytes: p.bytes.to_vec(),
            body: p.body.to_vec(),
            raw_profiles: p
                .series
                .iter()
                .flat_map(|s| s.samples.iter().map(|x| x.raw_profile.clone()))
                .collect(),
        })
        .collect())
}

/// The expectations of one sent request.
pub fn expected(o: &Outgoing, status: u16) -> Sent {
    let line_end = o.bytes.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
    let target = std::str::from_utf8(&o.bytes[..line_end])
        .ok()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("")
        .to_owned();
    Sent {
        kind: o.kind.clone(),
        corpus: o.corpus,
        route: o.route,
        tenant: o.tenant.clone().unwrap_or_else(|| ANONYMOUS.to_owned()),
        status,
        expect: o.expect,
        target,
        body_fnv: fnv::fnv1a64(&o.body),
        raw_fnvs: o.raw_profiles.iter().map(|r| fnv::fnv1a64(r)).collect(),
    }
}

fn record_raw_fnvs(r: &serde_json::Value) -> Vec<String> {
    r["series"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["samples"].as_array().cloned().unwrap_or_default())
        .filter_map(|x| x["raw_fnv"].as_str().map(str::to_owned))
        .collect()
}

/// Finds each sent request among a sink's records (each record used at most once; exact
/// body matches are preferred, so a verbatim Push is not mistaken for a re-encoded one).
/// A request Pyroscope accepts counts only in a record answered 200; one it refuses must
/// be found refused with the same status.
pub fn match_records(sent: &[Sent], records: &[serde_json::Value]) -> Vec<(Match, Option<usize>)> {
    let mut used = vec![false; records.len()];
    let mut out = Vec::with_capacity(sent.len());
    for s in sent {
        let candidate = |r: &serde_json::Value| {
            r["route"] == s.route && r["tenant"] == s.tenant.as_str() && r["status"] == s.expect
        };
        let body_hex = fnv::hex(s.body_fnv);
        let exact = records
            .iter()
            .enumerate()
            .find(|(i, r)| !used[*i] && candidate(r) && r["body_fnv"] == body_hex.as_str());
        let found = match exact {
            Some((i, _)) if s.expect != 200 => Some((Match::Refused, i)),
            Some((i, _)) => Some((Match::Body, i)),
            None if !s.raw_fnvs.is_empty() => {
                let want: Vec<String> = s.raw_fnvs.iter().map(|f| fnv::hex(*f)).collect();
                records
                    .iter()
                    .enumerate()
                    .find(|(i, r)| !used[*i] && candidate(r) && record_raw_fnvs(r) == want)
                    .map(|(i, _)| (Match::RawProfile, i))
            }
            None => None,
        };
        match found {
            Some((m, i)) => {
                used[i] = true;
                out.push((m, Some(i)));
            }
            None => out.push((Match::Missing, None)),
        }
    }
    out
}

/// The decoded `name` query parameter of a request target.
pub fn name_param(target: &str) -> Option<String> {
    let q = target.split_once('?')?.1;
    query::parse(q).get("name").map(str::to_owned)
}

fn labels_text(pairs: &serde_json::Value) -> String {
    match pairs {
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|p| Some(format!("{}={}", p[0].as_str()?, p[1].as_str()?)))
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "-".into(),
    }
}

fn sink_letter(i: usize) -> char {
    char::from(b'A' + i as u8)
}

fn accepted(sink: &Sink) -> u64 {
    sink.stats_json(false)["totals"]["accepted"]
        .as_u64()
        .unwrap_or(0)
}

/// Runs the demo, printing to `out`; `Ok(true)` when every check passed.
pub fn run(cfg: &DemoConfig, out: &mut dyn Write) -> Result<bool, String> {
    cfg.validate()?;
    let mut ok = true;
    let gateway_bin = process::sibling_binary("pyrogate", cfg.gateway.as_deref())?;

    // --- 1. sinks and gateway ---
    let sinks: Vec<Sink> = (0..cfg.sinks)
        .map(|_| {
            Sink::start(SinkConfig {
                workers: 1,
                ..SinkConfig::default()
            })
        })
        .collect::<Result<_, _>>()?;
    let urls: Vec<String> = sinks
        .iter()
        .map(|s| format!("http://{}", s.local_addr))
        .collect();
    let mut gw = Gateway::start(&GatewayOpts {
        bin: gateway_bin.clone(),
        driver: cfg.driver.clone(),
        workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
        forward_to: urls.clone(),
        extra: Vec::new(),
        spawn: SpawnOpts::default(),
    })?;
    let _ = writeln!(
        out,
        "pyrogate demo: Pyroscope agent traffic through the gateway, on loopback\n"
    );
    for (i, s) in sinks.iter().enumerate() {
        let _ = writeln!(
            out,
            "  sink {}     {} (pyrogate-load sink: Pyroscope's framing checks, records every request)",
            sink_letter(i),
            s.local_addr
        );
    }
    let _ = writeln!(
        out,
        "  gateway    {} (pid {}) on {}, {} driver, forwarding to {} (ack = all)",
        gateway_bin.display(),
        gw.proc.pid(),
        gw.addr,
        gw.driver,
        (0..cfg.sinks)
            .map(|i| format!("sink {}", sink_letter(i)))
            .collect::<Vec<_>>()
            .join(" and ")
    );

    // --- 2. the generated corpus, then the captured one if given ---
    let target = payload::parse_target(&gw.url())?;
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut outgoing = generated(&target.host, now_s);
    let n_generated = outgoing.len();
    let _ = writeln!(
        out,
        "  corpus     generated by the project (seed {SEED}): {n_generated} requests, every route \
         and format, tenants {TENANT:?}, \"team-b\" and none"
    );
    match &cfg.fixtures {
        Some(dir) => {
            let more = captured(&target, dir, now_s)?;
            let _ = writeln!(
                out,
                "  captured   {} ({} requests)",
                dir.display(),
                more.len()
            );
            outgoing.extend(more);
        }
        None => {
            let _ = writeln!(
                out,
                "  captured   none (--fixtures DIR adds a directory of captured requests)"
            );
        }
    }
    let _ = out.flush();
    let mut sent = Vec::with_capacity(outgoing.len());
    let mut client = Client::connect(gw.addr, IO_TIMEOUT)?;
    for o in &outgoing {
        let status = match client.send(&o.bytes) {
            Ok(a) => {
                if a.close {
                    client = Client::connect(gw.addr, IO_TIMEOUT)?;
                }
                a.status
            }
            Err(e) => {
                let _ = writeln!(out, "  {}: request failed: {e}", o.kind);
                client = Client::connect(gw.addr, IO_TIMEOUT)?;
                0
            }
        };
        sent.push(expected(o, status));
    }

    // --- 3. what arrived ---
    let docs: Vec<serde_json::Value> = sinks.iter().map(|s| s.stats_json(true)).collect();
    let records: Vec<Vec<serde_json::Value>> = docs
        .iter()
        .map(|d| d["records"].as_array().cloned().unwrap_or_default())
        .collect();
    let matches: Vec<Vec<(Match, Option<usize>)>> =
        records.iter().map(|r| match_records(&sent, r)).collect();
    let _ = writeln!(
        out,
        "\n1. Agent requests sent through the gateway ({} kinds)",
        sent.len()
    );
    let mut cols: Vec<(String, bool)> = vec![
        ("kind".into(), true),
        ("sent as".into(), true),
        ("tenant".into(), true),
        ("gateway".into(), false),
    ];
    for i in 0..cfg.sinks {
        cols.push((format!("at sink {}", sink_letter(i)), true));
    }
    let col_refs: Vec<(&str, bool)> = cols.iter().map(|(t, l)| (t.as_str(), *l)).collect();
    let mut t = Table::new(&col_refs);
    for (k, s) in sent.iter().enumerate() {
        if s.status != s.expect {
            ok = false;
        }
        let mut row = vec![
            s.kind.clone(),
            described(&s.kind),
            s.tenant.clone(),
            if s.status == s.expect {
                s.status.to_string()
            } else {
                format!("✗ {} (want {})", s.status, s.expect)
            },
        ];
        for m in &matches {
            let (what, _) = m[k];
            if what == Match::Missing {
                ok = false;
            }
            row.push(what.text().to_owned());
        }
        t.row(row);
    }
    let _ = write!(out, "{}", indent(&t.render()));

    let _ = writeln!(out, "\n2. What each sink counted (per route and tenant)");
    let mut t = Table::new(&[
        ("sink", true),
        ("route", true),
        ("tenant", true),
        ("requests", false),
        ("accepted", false),
        ("profiles", false),
        ("bytes", false),
    ]);
    for (i, d) in docs.iter().enumerate() {
        if let Some(tenants) = d["tenants"].as_object() {
            for (tenant, routes) in tenants {
                for route in ["push", "ingest"] {
                    let c = &routes[route];
                    if c["requests"].as_u64().unwrap_or(0) == 0 {
                        continue;
                    }
                    t.row(vec![
                        sink_letter(i).to_string(),
                        route.into(),
                        tenant.clone(),
                        c["requests"].to_string(),
                        c["accepted"].to_string(),
                        c["profiles"].to_string(),
                        c["bytes"].to_string(),
                    ]);
                }
            }
        }
    }
    let _ = write!(out, "{}", indent(&t.render()));

    let _ = writeln!(
        out,
        "\n3. Decoded at sink A (tenant {TENANT:?}): labels, the rebuilt `name`, checksums"
    );
    for (k, s) in sent.iter().enumerate().filter(|(_, s)| s.tenant == TENANT) {
        let _ = writeln!(out, "  [{}] {}", s.kind, described(&s.kind));
        let Some(r) = matches[0][k].1.and_then(|i| records[0].get(i)) else {
            let _ = writeln!(out, "      ✗ not found at sink A");
            continue;
        };
        if s.route == "push" {
            let _ = writeln!(
                out,
                "      arrived as  {} {} ({} protocol, {} codec), X-Scope-OrgID {}",
                r["method"].as_str().unwrap_or(""),
                r["target"].as_str().unwrap_or(""),
                r["protocol"].as_str().unwrap_or("?"),
                r["codec"].as_str().unwrap_or("?"),
                r["tenant"].as_str().unwrap_or("?")
            );
            for series in r["series"].as_array().into_iter().flatten() {
                let _ = writeln!(out, "      labels      {}", labels_text(&series["labels"]));
                for x in series["samples"].as_array().into_iter().flatten() {
                    let _ = writeln!(
                        out,
                        "      sample      ID {} raw_profile {} B{} fnv {}",
                        x["id"].as_str().unwrap_or(""),
                        x["raw_len"],
                        if x["raw_gzip"] == true { " (gzip)" } else { "" },
                        x["raw_fnv"].as_str().unwrap_or("")
                    );
                }
            }
            let sent_raw: Vec<String> = s.raw_fnvs.iter().map(|f| fnv::hex(*f)).collect();
            let _ = writeln!(
                out,
                "      checksum    body {} (sent {}); raw_profile sent {} → {}",
                r["body_fnv"].as_str().unwrap_or("-"),
                fnv::hex(s.body_fnv),
                sent_raw.join(","),
                matches[0][k].0.text()
            );
        } else {
            let target = r["target"].as_str().unwrap_or("");
            let _ = writeln!(
                out,
                "      arrived as  POST {} format={} ({} body), X-Scope-OrgID {}",
                target.split('?').next().unwrap_or(""),
                r["format"].as_str().unwrap_or("?"),
                r["framing"].as_str().unwrap_or("?"),
                r["tenant"].as_str().unwrap_or("?")
            );
            let _ = writeln!(
                out,
                "      name sent   {}",
                name_param(&s.target).unwrap_or_else(|| "-".into())
            );
            let _ = writeln!(
                out,
                "      name now    {}  (rebuilt by the gateway)",
                name_param(target).unwrap_or_else(|| "-".into())
            );
            let _ = writeln!(out, "      labels      {}", labels_text(&r["name"]));
            for p in r["parts"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    out,
                    "      part        {} ({}) {} B fnv {}",
                    p["name"].as_str().unwrap_or(""),
                    p["content_type"].as_str().unwrap_or("no content type"),
                    p["len"],
                    p["fnv"].as_str().unwrap_or("")
                );
            }
            let _ = writeln!(
                out,
                "      checksum    body {} B fnv {} (sent {}) {}",
                r["body_len"],
                r["body_fnv"].as_str().unwrap_or("-"),
                fnv::hex(s.body_fnv),
                matches[0][k].0.text()
            );
        }
    }
    let _ = out.flush();

    // --- 4. a short load run: direct, then through the gateway ---
    let _ = writeln!(
        out,
        "\n4. Load: {:.0} s closed loop per path, {} connections, all six kinds in turn",
        cfg.duration.as_secs_f64(),
        cfg.connections
    );
    let _ = out.flush();
    let run_cfg = |url: &str| RunConfig {
        target: url.to_owned(),
        protocol: Protocol::Mix,
        connections: cfg.connections,
        rate: None,
        duration: Some(cfg.duration),
        requests: None,
        timeout: IO_TIMEOUT,
        source: Source::Generated,
        seed: SEED,
        tenant: Some("demo-load".into()),
        driver: pyrogate::config::DriverChoice::Auto,
        threads: None,
        progress: false,
        reconnect_every: None,
        tls: Default::default(),
    };
    let before: Vec<u64> = sinks.iter().map(accepted).collect();
    let direct = load::run(&run_cfg(&urls[0]), &mut std::io::sink())?;
    let mid: Vec<u64> = sinks.iter().map(accepted).collect();
    let cpu0 = procfs::cpu_seconds(gw.proc.pid());
    let via = load::run(&run_cfg(&gw.url()), &mut std::io::sink())?;
    let cpu1 = procfs::cpu_seconds(gw.proc.pid());
    let after: Vec<u64> = sinks.iter().map(accepted).collect();
    let gw_cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => crate::bench::stats::cpu_ms_per_1k(b - a, via.requests),
        _ => None,
    };
    let mut t = Table::new(&[
        ("path", true),
        ("requests", false),
        ("req/s", false),
        ("ok", false),
        ("p50 ms", false),
        ("p90 ms", false),
        ("p99 ms", false),
        ("max ms", false),
        ("MB/s sent", false),
        ("gateway CPU-s/1k req", false),
    ]);
    for (name, r, cpu) in [
        ("direct → sink A", &direct, None),
        ("through pyrogate → all sinks", &via, gw_cpu),
    ] {
        t.row(vec![
            name.into(),
            table::thousands(r.requests),
            table::rate(Some(r.achieved_rate)),
            format!("{:.2}%", r.success_ratio * 100.0),
            table::num(Some(r.latency.p50_ms), 3),
            table::num(Some(r.latency.p90_ms), 3),
            table::num(Some(r.latency.p99_ms), 3),
            table::num(Some(r.latency.max_ms), 3),
            table::num(Some(r.bytes_sent as f64 / r.duration_s.max(1e-9) / 1e6), 1),
            table::num(cpu.map(|m| m / 1000.0), 4),
        ]);
    }
    let _ = write!(out, "{}", indent(&t.render()));
    for r in [&direct, &via] {
        if r.ok != r.requests || r.requests == 0 {
            ok = false;
            let _ = writeln!(
                out,
                "  ✗ {}: {} of {} requests failed (status {:?}, errors {:?})",
                r.target, r.failed, r.requests, r.status, r.errors
            );
        }
    }
    // Every sink got every profile the gateway acknowledged (ack = all).
    for i in 0..cfg.sinks {
        let got = after[i] - mid[i];
        let direct_got = mid[i] - before[i];
        if got < via.ok || (i == 0 && direct_got < direct.ok) {
            ok = false;
            let _ = writeln!(
                out,
                "  ✗ sink {} accepted {got} profiles through the gateway for {} acknowledged requests",
                sink_letter(i),
                via.ok
            );
        }
    }
    let _ = writeln!(
        out,
        "  every sink accepted each of the {} profiles the gateway acknowledged: {}",
        table::thousands(via.ok),
        if (0..cfg.sinks).all(|i| after[i] - mid[i] >= via.ok) {
            "yes"
        } else {
            "NO"
        }
    );

    // --- 5. stop ---
    let status = gw.proc.stop();
    match status {
        Some(s) if s.success() => {
            let _ = writeln!(out, "\n  gateway stopped cleanly on SIGTERM (exit 0)");
        }
        other => {
            ok = false;
            let _ = writeln!(
                out,
                "\n  ✗ gateway did not exit cleanly on SIGTERM ({other:?}):\n{}",
                gw.proc.tail()
            );
        }
    }
    let _ = writeln!(
        out,
        "\nresult: {}",
        if ok {
            "OK — every request got Pyroscope's answer and every accepted profile arrived intact at every sink"
        } else {
            "FAILED (see ✗ above)"
        }
    );
    let _ = out.flush();
    Ok(ok)
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sent(kind: &str, route: &'static str, body_fnv: u64, raw_fnvs: Vec<u64>) -> Sent {
        Sent {
            kind: kind.into(),
            corpus: "generated",
            route,
            tenant: "t".into(),
            status: 200,
            expect: 200,
            target: "/x".into(),
            body_fnv,
            raw_fnvs,
        }
    }

    #[test]
    fn records_are_matched_once_preferring_exact_bodies() {
        let raw = fnv::fnv1a64(b"raw");
        let sent = vec![
            sent("push-python", "push", 1, vec![raw]),
            sent("push-grpc-web", "push", 2, vec![raw]),
            sent("ingest-node-pprof-wall", "ingest", 3, vec![]),
        ];
        let sample = json!([{"raw_fnv": fnv::hex(raw)}]);
        // Sink order: the re-encoded gRPC-Web push first, then the verbatim one.
        let records = vec![
            json!({"route": "push", "tenant": "t", "status": 200, "body_fnv": fnv::hex(9), "series": [{"samples": sample}]}),
            json!({"route": "push", "tenant": "t", "status": 200, "body_fnv": fnv::hex(1), "series": [{"samples": sample}]}),
            json!({"route": "ingest", "tenant": "other", "status": 200, "body_fnv": fnv::hex(3)}),
        ];
        let m = match_records(&sent, &records);
        assert_eq!(m[0], (Match::Body, Some(1)));
        assert_eq!(m[1], (Match::RawProfile, Some(0)));
        // Wrong tenant: not found.
        assert_eq!(m[2], (Match::Missing, None));
        // A rejected copy does not count for a request Pyroscope accepts…
        let rejected =
            vec![json!({"route": "ingest", "tenant": "t", "status": 422, "body_fnv": fnv::hex(3)})];
        assert_eq!(match_records(&sent[2..], &rejected)[0].0, Match::Missing);
        // …and is what a request Pyroscope refuses must find.
        let mut refused = sent[2].clone();
        refused.expect = 422;
        assert_eq!(match_records(&[refused], &rejected)[0].0, Match::Refused);
    }

    #[test]
    fn names_from_targets() {
        assert_eq!(
            name_param("/ingest?format=pprof&name=app%7Benv%3Dprod%7D&from=1").as_deref(),
            Some("app{env=prod}")
        );
        assert_eq!(name_param("/ingest"), None);
    }

    #[test]
    fn generated_phase_covers_every_kind_with_expectations() {
        let all = generated("127.0.0.1:1", 1_795_312_305);
        assert!(all.len() >= 20);
        for o in &all {
            assert!(!described(&o.kind).is_empty(), "{}: no description", o.kind);
            let s = expected(o, o.expect);
            assert!(s.target.starts_with('/'), "{}", s.target);
            assert_eq!(s.route == "push", !s.raw_fnvs.is_empty(), "{}", o.kind);
        }
        assert!(all.iter().any(|o| o.expect == 422));
        assert!(all.iter().any(|o| o.tenant.is_none()));
    }
}
