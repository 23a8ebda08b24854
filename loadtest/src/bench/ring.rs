//! The `ring` suite: what ring mode (`[forward] mode = "ring"`, docs/ring.md) costs against
//! fan-out to the same sinks. Per driver and round, interleaved, pyrogate runs
//!
//! * fanning out to 3 sinks (3 `--forward-to`; the baseline),
//! * in ring mode over the same 3 sinks with replication factor 3 ([`gateway_config::ring`]),
//! * in ring mode over them with replication factor 1,
//!
//! each twice: with one-series Pushes whose profiles carry no string sample labels, and with
//! the same Pushes whose samples carry string labels (`thread_name`, `span_name`), which makes
//! ring mode decode each profile, split the series by label set and re-encode each part.
//!
//! The requests are what pyroscope-io 1.4.0 sends (its headers, one series of its 8 labels,
//! one small plain pprof, the body gzip'd), with a ninth label `series` cycling over
//! [`SERIES`] values so that the ring places the series on every member. The load module
//! sends one fixed request per run, so this suite drives the gateway with its own closed-loop
//! client ([`closed_loop`]) over the [`SERIES`] distinct requests, the load module's
//! connection and tally underneath. The table gives pyrogate's requests per CPU-second and
//! the ratio to fan-out 3 in the same round (median over the rounds).
//!
//! Before anything is measured, every request of both payloads is sent once through each
//! path: all must be accepted, through RF 1 every member must receive some series and the
//! labelled series must arrive split; the requests and body bytes that reached the sinks are
//! tabulated ([`Traffic`]).
//!
//! `PYROGATE_BENCH_RING_PERF=PREFIX` also profiles, after the runs and under the same load
//! (first driver, `--duration` each), the split case (RF 3 with sample labels,
//! `PREFIX-split`), RF 3 and RF 1 without sample labels (`PREFIX-rf3-plain`,
//! `PREFIX-rf1-plain`) and fan-out 3 without them (`PREFIX-fanout-plain`) with `perf record
//! --call-graph dwarf`: `.perf.data`, the top symbols (`perf report --no-children`) in `.txt`,
//! and with `inferno-collapse-perf` and `inferno-flamegraph` on the `PATH`, `.folded` and
//! `.svg`.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pyrogate::runtime::driver::{self, DriverKind};
use pyrogate_testdata::gz::gzip;
use pyrogate_testdata::pprof::{Kind, Spec};
use pyrogate_testdata::push::{self, Series};
use pyrogate_testdata::sdk::{self, Request};
use serde::Serialize;

use super::BenchConfig;
use super::gateway_config::{self, RING_TOKENS};
use super::runner::{self, Cell, Ctx, Sinks, Variant};
use super::stats::{self, median_opt, round_ratio};
use super::suites::{self, CellReport};
use super::table::{self, Table};
use crate::load::RunConfig;
use crate::load::client::Conn;
use crate::load::payload::{self, Source};
use crate::load::report::{self, Report, Tally};
use crate::probe;
use crate::process::children::{Gateway, GatewayOpts};
use crate::process::{self, Managed, SpawnOpts};

/// Ring members (and sinks); fan-out goes to all of them.
pub const MEMBERS: usize = 3;
/// Distinct series the requests cycle over.
pub const SERIES: usize = 256;
/// Replication factors measured.
const RFS: [usize; 2] = [3, 1];
/// Runs per round and driver: (fan-out + 2 rings) × (with, without sample labels).
const CELLS_PER_DRIVER: usize = 6;
/// A rough count for the estimate (both drivers).
pub const CELLS_PER_ROUND: usize = 2 * CELLS_PER_DRIVER;
/// Service name of the series (the other suites' Push payload uses it too).
const SERVICE: &str = "loadtest.python.app";
const SEED: u64 = 1;
/// The per-round ratio goals of the issue, against fan-out 3, without sample labels.
const GOAL_RF1: f64 = 2.0;
const GOAL_RF3: f64 = 0.9;
/// Environment variable naming the output prefix of the profiles.
pub const PERF_ENV: &str = "PYROGATE_BENCH_RING_PERF";
const IO_URING_ENTRIES: u32 = 256;
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// Series `i`: pyroscope-io's labels plus `series = "s<i>"`, and one small plain
/// `cpu/nanoseconds` pprof (20 samples over 6 functions, as the agent's) with or without
/// string sample labels.
pub fn series(i: usize, sample_labels: bool) -> Series {
    let seed = SEED + i as u64;
    let raw = Spec::new(seed, Kind::CpuNanos)
        .samples(20)
        .functions(6)
        .depth(2, 6)
        .zeros(0)
        .duplicates(0)
        .labels(sample_labels, false)
        .plain();
    let mut labels = push::python_labels(SERVICE);
    labels.push(("series".into(), format!("s{i}")));
    Series {
        labels,
        samples: vec![push::Profile {
            raw_profile: raw,
            id: format!("00000000-0000-4000-8000-{i:012x}"),
        }],
        annotations: Vec::new(),
    }
}

/// The requests of one payload: [`SERIES`] pyroscope-io Pushes of one series each.
#[derive(Debug, Clone)]
pub struct Payload {
    pub sample_labels: bool,
    pub requests: Vec<Request>,
    /// Mean gzip'd body and plain profile sizes, bytes.
    pub body_bytes: f64,
    pub profile_bytes: f64,
    /// Mean number of series per request once split by string sample labels.
    pub split_series: f64,
}

impl Payload {
    pub fn new(sample_labels: bool) -> Self {
        let mut requests = Vec::with_capacity(SERIES);
        let (mut body, mut prof, mut split) = (0usize, 0usize, 0usize);
        for i in 0..SERIES {
            let s = series(i, sample_labels);
            prof += s.profile_bytes();
            split += label_sets(&s.samples[0].raw_profile);
            let mut r = sdk::python_push(SEED);
            r.body = gzip(&push::encode(std::slice::from_ref(&s)));
            r.series = vec![s];
            body += r.body.len();
            requests.push(r);
        }
        let n = SERIES as f64;
        Self {
            sample_labels,
            requests,
            body_bytes: body as f64 / n,
            profile_bytes: prof as f64 / n,
            split_series: split as f64 / n,
        }
    }

    fn render(&self, host: &str) -> Vec<Bytes> {
        self.requests
            .iter()
            .map(|r| Bytes::from(r.render(host)))
            .collect()
    }
}

/// Distinct sets of string sample labels in a plain pprof (1 when there are none): the
/// series one profile becomes, counted independently of pyrogate's splitter.
fn label_sets(plain: &[u8]) -> usize {
    use prost::Message as _;
    let Ok(p) = pyrogate_testdata::wire::Profile::decode(plain) else {
        return 1;
    };
    let sets: BTreeSet<Vec<(i64, i64)>> = p
        .sample
        .iter()
        .map(|s| {
            let mut k: Vec<(i64, i64)> = s
                .label
                .iter()
                .filter(|l| l.str != 0)
                .map(|l| (l.key, l.str))
                .collect();
            k.sort_unstable();
            k
        })
        .collect();
    sets.len().max(1)
}

/// What every load thread reads.
struct Plan {
    addr: std::net::SocketAddr,
    requests: Vec<Bytes>,
    connections: usize,
    start: Instant,
    end: Instant,
    timeout: Duration,
}

/// A closed loop of `cfg.connections` keep-alive connections on `cfg.threads` threads for
/// `cfg.duration`, connection `c` sending request `(c·n/connections + k) mod n` as its
/// `k`-th, so that every connection walks through all of them. Latency is per request
/// (closed loop: no schedule to correct for).
pub fn closed_loop(cfg: &RunConfig, payload: &Payload) -> Result<Report, String> {
    cfg.validate()?;
    let target = payload::parse_target(&cfg.target)?;
    let decision = driver::choose(cfg.driver, IO_URING_ENTRIES)?;
    let threads = cfg.threads.unwrap_or(1).min(cfg.connections).max(1);
    let duration = cfg.duration.ok_or("the ring load needs a duration")?;
    // Connections are opened before the start.
    let start = Instant::now() + Duration::from_millis(100);
    let plan = Arc::new(Plan {
        addr: target.addr,
        requests: payload.render(&target.host),
        connections: cfg.connections,
        start,
        end: start + duration,
        timeout: cfg.timeout,
    });
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let conns: Vec<usize> = (t..cfg.connections).step_by(threads).collect();
        let plan = plan.clone();
        let kind = decision.kind;
        let h = std::thread::Builder::new()
            .name(format!("ring-load-{t}"))
            .spawn(move || {
                driver::block_on(kind, IO_URING_ENTRIES, move || thread_main(plan, conns))
                    .map_err(|e| format!("thread {t}: cannot build the runtime: {e}"))
            })
            .map_err(|e| format!("cannot spawn thread {t}: {e}"))?;
        handles.push(h);
    }
    let mut total = Tally::default();
    for h in handles {
        match h.join() {
            Ok(Ok(t)) => total.merge(&t),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("a load thread panicked".into()),
        }
    }
    let secs = total.end_ns as f64 / 1e9;
    Ok(Report {
        target: cfg.target.clone(),
        protocol: "push".into(),
        mode: "closed",
        connections: cfg.connections,
        threads,
        driver: match decision.kind {
            DriverKind::IoUring => "io_uring".to_owned(),
            DriverKind::Legacy => "legacy".to_owned(),
        },
        payload: if payload.sample_labels {
            "ring: series with string sample labels".into()
        } else {
            "ring: series without sample labels".into()
        },
        profile_size: Some(payload.body_bytes as u64),
        seed: SEED,
        duration_s: secs,
        target_rate: None,
        achieved_rate: report::rate(total.attempted, secs),
        requests: total.attempted,
        ok: total.ok,
        failed: total.failed(),
        success_ratio: report::success_ratio(total.ok, total.attempted),
        status: total
            .status
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        errors: total.errors.clone(),
        latency: total.latencies.summary(),
        schedule_lag: None,
        bytes_sent: total.bytes_sent,
        bytes_received: total.bytes_received,
        connects: Some(total.connects),
        reconnect_every: None,
        tls: None,
    })
}

async fn thread_main(plan: Arc<Plan>, conns: Vec<usize>) -> Tally {
    let tally = Rc::new(RefCell::new(Tally::default()));
    let mut tasks = Vec::with_capacity(conns.len());
    for c in conns {
        let (plan, tally) = (plan.clone(), tally.clone());
        tasks.push(monoio::spawn(async move {
            conn_loop(&plan, &tally, c).await;
        }));
    }
    for t in tasks {
        t.await;
    }
    std::mem::take(&mut *tally.borrow_mut())
}

async fn conn_loop(plan: &Plan, tally: &RefCell<Tally>, index: usize) {
    let n = plan.requests.len();
    let mut next = index * n / plan.connections.max(1);
    let mut conn = Conn::connect(plan.addr, Instant::now() + plan.timeout)
        .await
        .ok();
    if conn.is_some() {
        tally.borrow_mut().connects += 1;
    }
    monoio::time::sleep(plan.start.saturating_duration_since(Instant::now())).await;
    let elapsed = || {
        Instant::now()
            .saturating_duration_since(plan.start)
            .as_nanos() as u64
    };
    loop {
        let sent = Instant::now();
        if sent >= plan.end {
            return;
        }
        let req = plan.requests[next % n].clone();
        next += 1;
        let deadline = sent + plan.timeout;
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Conn::connect(plan.addr, deadline).await {
                Ok(c) => {
                    tally.borrow_mut().connects += 1;
                    conn.insert(c)
                }
                Err(e) => {
                    {
                        let mut t = tally.borrow_mut();
                        t.error(e.kind(), 0);
                        t.end_ns = t.end_ns.max(elapsed());
                    }
                    monoio::time::sleep(CONNECT_BACKOFF).await;
                    continue;
                }
            },
        };
        let len = req.len() as u64;
        let res = c.send(req, deadline).await;
        let mut t = tally.borrow_mut();
        match res {
            Ok(info) => {
                let ns = sent.elapsed().as_nanos() as u64;
                t.response(ns, info.status, len, info.bytes_read as u64);
                if info.close {
                    conn = None;
                }
            }
            Err(e) => {
                t.error(e.kind(), len);
                conn = None;
            }
        }
        t.end_ns = t.end_ns.max(elapsed());
    }
}

/// One cell of the table with its runs.
#[derive(Debug, Clone, Serialize)]
pub struct RingCellReport {
    pub sample_labels: bool,
    #[serde(flatten)]
    pub report: CellReport,
}

/// The suite's result.
#[derive(Debug, Clone, Serialize)]
pub struct RingResult {
    pub cells: Vec<RingCellReport>,
    /// (sample labels, mean gzip'd body bytes, mean plain profile bytes, mean series after
    /// the split) per payload.
    pub payloads: Vec<(bool, f64, f64, f64)>,
    /// What each path sent the sinks for the requests of each payload, sent once.
    pub traffic: Vec<Traffic>,
    /// Where the profiles went (`PYROGATE_BENCH_RING_PERF`).
    pub profiles: Vec<String>,
}

/// The cells of one driver: fan-out 3, ring RF 3, ring RF 1.
fn variants(driver: &'static str) -> Vec<Cell> {
    let mut v = vec![Cell {
        variant: Variant::Pyrogate { driver },
        fanout: MEMBERS,
        size: 0,
    }];
    for rf in RFS {
        v.push(Cell {
            variant: Variant::PyrogateRing { driver, rf },
            fanout: rf,
            size: 0,
        });
    }
    v
}

fn label_of(cell: &Cell) -> String {
    match &cell.variant {
        Variant::PyrogateRing { driver, rf } => {
            format!("ring RF {rf} ({})", runner::driver_name(driver))
        }
        Variant::Pyrogate { driver } => {
            format!("fan-out {} ({})", cell.fanout, runner::driver_name(driver))
        }
        v => v.label(cell.fanout),
    }
}

/// Runs the suite: every cell of every driver and payload once per round (interleaved),
/// forwarding to [`MEMBERS`] sinks.
pub fn run(
    ctx: &Ctx<'_>,
    failures: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<RingResult, String> {
    let cfg = ctx.cfg;
    let sinks = Sinks::start(ctx, MEMBERS)?;
    eprintln!("ring: sinks on {}", sinks.urls(MEMBERS).join(", "));
    let payloads = [Payload::new(false), Payload::new(true)];
    let traffic = check_traffic(ctx, &sinks, &payloads)
        .map_err(|e| format!("ring: ring mode does not work here: {e}"))?;
    let mut cells: Vec<(usize, Cell)> = Vec::new();
    for (p, _) in payloads.iter().enumerate() {
        for d in ctx.drivers {
            cells.extend(variants(d).into_iter().map(|c| (p, c)));
        }
    }
    let mut reports: Vec<RingCellReport> = cells
        .iter()
        .map(|(p, c)| RingCellReport {
            sample_labels: payloads[*p].sample_labels,
            report: CellReport {
                cell: c.clone(),
                label: label_of(c),
                samples: vec![None; cfg.runs],
            },
        })
        .collect();
    let mut rerun_budget = cells.len() * cfg.runs / 5 + 1;
    let source = |_: &Cell| Ok(Source::Generated);
    for (round, i) in stats::interleave(cells.len(), cfg.runs) {
        if process::interrupted() {
            failures.push("ring: interrupted".into());
            break;
        }
        let (p, cell) = &cells[i];
        let payload = &payloads[*p];
        let load = |rc: &RunConfig| closed_loop(rc, payload);
        let what = format!(
            "ring {} r{}",
            if payload.sample_labels {
                "+labels"
            } else {
                "plain"
            },
            round + 1
        );
        let label = reports[i].report.label.clone();
        let measure = || runner::measure_full(ctx, cell, Some(&sinks), None, round, &source, &load);
        let mut result = measure();
        if let Ok(s) = &result
            && s.steal_pct > cfg.max_steal
            && rerun_budget > 0
        {
            rerun_budget -= 1;
            eprintln!(
                "  {what}: steal {:.1}% > {:.0}%, running it again",
                s.steal_pct, cfg.max_steal
            );
            if let Ok(mut again) = measure() {
                again.rerun = true;
                if again.steal_pct < s.steal_pct {
                    result = Ok(again);
                }
            }
        }
        match result {
            Ok(s) => {
                eprintln!("{}", runner::progress_line(&what, &label, &s));
                reports[i].report.samples[round] = Some(s);
            }
            Err(e) => {
                eprintln!("  {what} {label}: FAILED: {e}");
                failures.push(format!("ring {what} {label}: {e}"));
            }
        }
    }
    for r in &reports {
        let c = &r.report;
        let fan_out = matches!(c.cell.variant, Variant::Pyrogate { .. });
        // Fan-out and RF 3 (= every member) reach each sink once per request.
        if (fan_out || c.cell.fanout == MEMBERS)
            && let Some(d) = c.med(|s| s.delivered)
            && d < 0.999
        {
            notes.push(format!(
                "ring {} {}: the sinks received only {:.2}% of the expected requests",
                if r.sample_labels { "+labels" } else { "plain" },
                c.label,
                d * 100.0
            ));
        }
    }
    let profiles = match std::env::var_os(PERF_ENV) {
        Some(prefix) if !process::interrupted() => {
            match profile_cases(ctx, &sinks, &payloads, Path::new(&prefix)) {
                Ok(p) => p,
                Err(e) => {
                    failures.push(format!("ring: profiling: {e}"));
                    Vec::new()
                }
            }
        }
        _ => Vec::new(),
    };
    Ok(RingResult {
        cells: reports,
        payloads: payloads
            .iter()
            .map(|p| {
                (
                    p.sample_labels,
                    p.body_bytes,
                    p.profile_bytes,
                    p.split_series,
                )
            })
            .collect(),
        traffic,
        profiles,
    })
}

/// `(accepted requests, body bytes received)` of each sink so far.
fn counters(sinks: &Sinks) -> Result<Vec<(u64, u64)>, String> {
    sinks
        .procs
        .iter()
        .map(|s| {
            let st = s.stats()?;
            let t = &st["totals"];
            match (t["accepted"].as_u64(), t["bytes_received"].as_u64()) {
                (Some(a), Some(b)) => Ok((a, b)),
                _ => Err("sink stats without totals.accepted / bytes_received".to_string()),
            }
        })
        .collect()
}

/// Fan-out to every sink (`rf = None`) or a ring over them with replication factor `rf`.
fn gateway(
    ctx: &Ctx<'_>,
    sinks: &Sinks,
    rf: Option<usize>,
    driver: &str,
) -> Result<Gateway, String> {
    let cfg = ctx.cfg;
    let (forward_to, extra) = match rf {
        None => (sinks.urls(MEMBERS), Vec::new()),
        Some(rf) => {
            let file = gateway_config::write_ring(ctx.tmp, rf, &sinks.urls(MEMBERS))?;
            (
                Vec::new(),
                vec!["--config".to_owned(), file.display().to_string()],
            )
        }
    };
    Gateway::start(&GatewayOpts {
        bin: cfg.gateway_bin.clone(),
        driver: driver.to_owned(),
        workers: cfg.layout.gateway_workers,
        forward_to,
        extra,
        spawn: SpawnOpts {
            cpus: cfg.layout.gateway_cpus.clone(),
            nofile: None,
        },
    })
}

fn path_name(rf: Option<usize>) -> String {
    match rf {
        None => format!("fan-out {MEMBERS}"),
        Some(rf) => format!("ring RF {rf}"),
    }
}

/// What one path sends downstream for the [`SERIES`] requests of one payload, each sent
/// once.
#[derive(Debug, Clone, Serialize)]
pub struct Traffic {
    pub path: String,
    pub sample_labels: bool,
    /// Requests the sinks accepted, per member.
    pub per_member: Vec<u64>,
    /// Body bytes the sinks received per client request.
    pub bytes_per_request: f64,
    /// Client request body bytes (gzip'd) per request, for comparison.
    pub client_bytes_per_request: f64,
}

/// Every request of both payloads once through fan-out 3, ring RF 3 and ring RF 1: each must
/// be accepted; through RF 1 every member must get some series, and the labelled payload
/// must reach the sinks as more requests than it had series (its parts go to different
/// members). Returns what reached the sinks.
fn check_traffic(
    ctx: &Ctx<'_>,
    sinks: &Sinks,
    payloads: &[Payload],
) -> Result<Vec<Traffic>, String> {
    let timeout = Duration::from_secs(10);
    let mut out = Vec::new();
    for rf in [None, Some(3), Some(1)] {
        let gw = gateway(ctx, sinks, rf, "legacy")?;
        let host = gw.addr.to_string();
        let mut client = probe::Client::connect(gw.addr, timeout)?;
        for p in payloads {
            let before = counters(sinks)?;
            for (i, raw) in p.render(&host).iter().enumerate() {
                let a = client.send(raw)?;
                if a.status != 200 {
                    return Err(format!(
                        "{}: series {i} answered {}: {}",
                        path_name(rf),
                        a.status,
                        String::from_utf8_lossy(&a.body)
                    ));
                }
            }
            // RF 3 answers at the quorum: the third copies may still be on their way.
            std::thread::sleep(Duration::from_millis(200));
            let after = counters(sinks)?;
            let per: Vec<(u64, u64)> = after
                .iter()
                .zip(&before)
                .map(|(a, b)| (a.0.saturating_sub(b.0), a.1.saturating_sub(b.1)))
                .collect();
            let per_member: Vec<u64> = per.iter().map(|x| x.0).collect();
            let total: u64 = per_member.iter().sum();
            let bytes: u64 = per.iter().map(|x| x.1).sum();
            if rf == Some(1) && per_member.contains(&0) {
                return Err(format!(
                    "ring RF 1: a member received nothing from {SERIES} series: {per_member:?}"
                ));
            }
            if rf == Some(1) && p.sample_labels && total <= SERIES as u64 {
                return Err(format!(
                    "ring RF 1: {SERIES} series with sample labels reached the sinks as only {total} requests: not split?"
                ));
            }
            out.push(Traffic {
                path: path_name(rf),
                sample_labels: p.sample_labels,
                per_member,
                bytes_per_request: bytes as f64 / SERIES as f64,
                client_bytes_per_request: p.body_bytes,
            });
        }
    }
    Ok(out)
}

/// The cases `PYROGATE_BENCH_RING_PERF` profiles: file suffix, replication factor (`None`
/// = fan-out), with sample labels.
const PROFILED: [(&str, Option<usize>, bool); 4] = [
    ("split", Some(3), true),
    ("rf3-plain", Some(3), false),
    ("rf1-plain", Some(1), false),
    ("fanout-plain", None, false),
];

/// Profiles the gateway (first driver) under the suite's load with `perf record` for each
/// of [`PROFILED`], and summarises each profile next to `PREFIX-<case>`.
fn profile_cases(
    ctx: &Ctx<'_>,
    sinks: &Sinks,
    payloads: &[Payload],
    prefix: &Path,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (name, rf, labels) in PROFILED {
        if process::interrupted() {
            break;
        }
        let payload = payloads
            .iter()
            .find(|p| p.sample_labels == labels)
            .ok_or("no payload")?;
        let mut s = prefix.as_os_str().to_owned();
        s.push(format!("-{name}"));
        let made = profile_one(ctx, sinks, rf, payload, Path::new(&s))?;
        out.push(format!(
            "{} {} sample labels: {made}",
            path_name(rf),
            if labels { "with" } else { "without" }
        ));
    }
    Ok(out)
}

/// One profile: warm-up, then `perf record --call-graph dwarf` of the gateway for
/// `--duration` while the load runs; `perf report --no-children` top symbols in
/// `PREFIX.txt`, a flame graph when inferno is installed.
fn profile_one(
    ctx: &Ctx<'_>,
    sinks: &Sinks,
    rf: Option<usize>,
    payload: &Payload,
    prefix: &Path,
) -> Result<String, String> {
    let cfg = ctx.cfg;
    let driver = ctx.drivers.first().copied().unwrap_or("legacy");
    let with = |ext: &str| {
        let mut s = prefix.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    let (data, top) = (with(".perf.data"), with(".txt"));
    let gw = gateway(ctx, sinks, rf, driver)?;
    let run = |d: Duration| {
        closed_loop(
            &runner::load_config(ctx, &gw.url(), Source::Generated, None, d),
            payload,
        )
    };
    eprintln!(
        "ring: profiling {} {} sample labels ({}) for {:.1} s",
        path_name(rf),
        if payload.sample_labels {
            "with"
        } else {
            "without"
        },
        runner::driver_name(driver),
        cfg.duration.as_secs_f64()
    );
    run(cfg.warmup.max(Duration::from_millis(500)))?;
    let mut cmd = std::process::Command::new("perf");
    cmd.args(["record", "-F", "997", "--call-graph", "dwarf,16384", "-o"])
        .arg(&data)
        .args(["-p", &gw.proc.pid().to_string(), "--", "sleep"])
        .arg(format!("{:.1}", cfg.duration.as_secs_f64()));
    let spawn = SpawnOpts {
        cpus: cfg.layout.load_cpus.clone(),
        nofile: None,
    };
    let mut perf = Managed::spawn("perf record", cmd, &spawn)?;
    // perf needs a moment to attach; the load outlasts the recording.
    std::thread::sleep(Duration::from_millis(300));
    let report = run(cfg.duration + Duration::from_secs(1))?;
    let waited = Instant::now();
    let status = loop {
        if let Some(st) = perf.exited() {
            break st;
        }
        if waited.elapsed() > Duration::from_secs(30) {
            perf.stop();
            return Err(format!("perf record did not finish:\n{}", perf.tail()));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !status.success() {
        return Err(format!("perf record failed ({status}):\n{}", perf.tail()));
    }
    drop(gw);
    let text = command_output(
        "perf",
        &[
            "report",
            "-i",
            &data.display().to_string(),
            "--no-children",
            "--stdio",
            "--sort",
            "symbol",
            "-g",
            "none",
            "--percent-limit",
            "0.3",
        ],
    )?;
    std::fs::write(&top, &text).map_err(|e| format!("{}: {e}", top.display()))?;
    let mut made = vec![data.display().to_string(), top.display().to_string()];
    if let Some(svg) = flame_graph(&data, &with(".folded"), &with(".svg"))? {
        made.push(svg);
    }
    Ok(format!(
        "{} requests at {:.0} req/s while recording; {}",
        report.requests,
        report.achieved_rate,
        made.join(", ")
    ))
}

/// Stdout of a command that must succeed.
fn command_output(program: &str, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `perf script | inferno-collapse-perf | inferno-flamegraph`, when inferno is installed.
fn flame_graph(data: &Path, folded: &Path, svg: &Path) -> Result<Option<String>, String> {
    let have = |p: &str| {
        std::process::Command::new(p)
            .arg("--help")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok()
    };
    if !(have("inferno-collapse-perf") && have("inferno-flamegraph")) {
        return Ok(None);
    }
    let script = command_output("perf", &["script", "-i", &data.display().to_string()])?;
    let pipe = |program: &str, args: &[&str], input: &[u8]| -> Result<Vec<u8>, String> {
        use std::io::Write as _;
        let mut child = std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("{program}: {e}"))?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let input = input.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{program}: {e}"))?;
        let _ = writer.join();
        if !out.status.success() {
            return Err(format!("{program} failed ({})", out.status));
        }
        Ok(out.stdout)
    };
    let collapsed = pipe("inferno-collapse-perf", &[], script.as_bytes())?;
    std::fs::write(folded, &collapsed).map_err(|e| format!("{}: {e}", folded.display()))?;
    let title = "pyrogate ring mode RF 3, one-series Pushes with string sample labels";
    let drawn = pipe("inferno-flamegraph", &["--title", title], &collapsed)?;
    std::fs::write(svg, drawn).map_err(|e| format!("{}: {e}", svg.display()))?;
    Ok(Some(format!("{}, {}", folded.display(), svg.display())))
}

/// The suite's table.
pub fn render(cfg: &BenchConfig, r: &RingResult) -> String {
    let mut t = Table::new(&[
        ("sample labels", true),
        ("path", true),
        ("req/s", false),
        ("CPU-s/1k req", false),
        ("req/CPU-s", false),
        ("×fan-out 3", false),
        ("goal", true),
        ("sink req/req", false),
        ("user %", false),
        ("p50 ms", false),
        ("p99 ms", false),
        ("steal % med (max)", false),
        ("failed", false),
    ]);
    for rc in &r.cells {
        let c = &rc.report;
        let cpu = c.values(|s| s.cpu_ms_per_1k);
        let driver = match &c.cell.variant {
            Variant::PyrogateRing { driver, .. } | Variant::Pyrogate { driver } => *driver,
            _ => "",
        };
        let base = r.cells.iter().find(|b| {
            b.sample_labels == rc.sample_labels
                && b.report.cell.variant == Variant::Pyrogate { driver }
        });
        // req/CPU-s ratio = inverse ratio of CPU per request, per round, then the median.
        let ratio = match c.cell.variant {
            Variant::PyrogateRing { .. } => {
                base.and_then(|b| round_ratio(&b.report.values(|s| s.cpu_ms_per_1k), &cpu))
            }
            _ => None,
        };
        let goal = match (&c.cell.variant, rc.sample_labels) {
            (Variant::PyrogateRing { rf: 1, .. }, false) => goal_text(ratio, GOAL_RF1),
            (Variant::PyrogateRing { rf: 3, .. }, false) => goal_text(ratio, GOAL_RF3),
            _ => "-".into(),
        };
        let cpu_med = median_opt(&cpu);
        let fanout = c.cell.fanout as f64;
        t.row(vec![
            if rc.sample_labels { "yes" } else { "no" }.into(),
            c.label.clone(),
            table::rate(c.med(|s| Some(s.rps))),
            table::num(cpu_med.map(|m| m / 1000.0), 4),
            table::rate(cpu_med.and_then(stats::requests_per_cpu_s)),
            table::ratio(ratio),
            goal,
            table::num(c.med(|s| s.delivered.map(|d| d * fanout)), 2),
            table::num(c.med(|s| s.cpu_user_pct), 0),
            table::num(c.med(|s| Some(s.p50_ms)), 3),
            table::num(c.med(|s| Some(s.p99_ms)), 3),
            suites::steal_text(c),
            c.failed().to_string(),
        ]);
    }
    let payloads: Vec<String> = r
        .payloads
        .iter()
        .map(|(labels, body, prof, split)| {
            format!(
                "{}: {body:.0} B gzip'd body, {prof:.0} B plain pprof, {split:.1} series per request after the split",
                if *labels {
                    "with sample labels"
                } else {
                    "without"
                }
            )
        })
        .collect();
    let mut tt = Table::new(&[
        ("sample labels", true),
        ("path", true),
        ("sink requests (m0/m1/m2)", true),
        ("per request", false),
        ("sink bytes/req", false),
        ("×client body", false),
    ]);
    for x in &r.traffic {
        let total: u64 = x.per_member.iter().sum();
        tt.row(vec![
            if x.sample_labels { "yes" } else { "no" }.into(),
            x.path.clone(),
            x.per_member
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("/"),
            table::num(Some(total as f64 / SERIES as f64), 2),
            table::rate(Some(x.bytes_per_request)),
            table::num(
                Some(x.bytes_per_request / x.client_bytes_per_request.max(1.0)),
                1,
            ),
        ]);
    }
    let profiles: String = r
        .profiles
        .iter()
        .map(|p| format!("profile: {p}\n"))
        .collect();
    format!(
        "\n== ring: fan-out to {MEMBERS} sinks vs ring mode over them (closed loop, {} connections, one-series pyroscope-io Pushes over {SERIES} series) ==\n\
         payloads: {}\n{}\
         req/CPU-s is pyrogate's own CPU time; ×fan-out 3 = median over rounds of (ring req/CPU-s ÷ fan-out 3 req/CPU-s),\n\
         same driver and payload. Goals without sample labels: RF 1 ≥ {GOAL_RF1:.1}×, RF 3 ≥ {GOAL_RF3:.1}×. sink req/req = requests\n\
         the sinks accepted per client request ({MEMBERS} members, {RING_TOKENS} tokens each; RF 3 answers at the quorum of 2).\n\
         \nWhat reached the sinks when each of the {SERIES} requests was sent once (epoll, before the runs):\n{}{profiles}",
        cfg.connections,
        payloads.join("; "),
        t.render(),
        tt.render(),
    )
}

fn goal_text(ratio: Option<f64>, goal: f64) -> String {
    match ratio {
        Some(x) if x >= goal => format!("≥ {goal:.1}× met"),
        Some(_) => format!("≥ {goal:.1}× NOT met"),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gateway's own configuration loader accepts the file as a static ring.
    #[test]
    fn config_is_a_static_ring_of_every_sink() {
        use pyrogate::config::Config;
        use pyrogate::config::ring::RingStoreConfig;
        let urls: Vec<String> = (1..=3).map(|i| format!("http://127.0.0.1:{i}")).collect();
        for rf in RFS {
            let c =
                Config::from_toml(&gateway_config::ring(rf, &urls)).expect("valid configuration");
            assert!(c.endpoints.is_empty());
            let ring = c.ring.expect("[ring]");
            assert_eq!(ring.replication_factor, rf);
            let RingStoreConfig::Static(members) = ring.store else {
                panic!("a static ring")
            };
            assert_eq!(members.len(), MEMBERS);
            assert_eq!(members[2].id, "m2");
            assert_eq!(members[2].url, "http://127.0.0.1:3");
            assert!(members.iter().all(|m| m.tokens.len() == RING_TOKENS));
        }
    }

    #[test]
    fn payloads_vary_the_series_and_only_one_has_sample_labels() {
        let plain = Payload::new(false);
        let labelled = Payload::new(true);
        assert_eq!(plain.requests.len(), SERIES);
        assert!((plain.split_series - 1.0).abs() < f64::EPSILON);
        assert!(labelled.split_series > 2.0, "{}", labelled.split_series);
        let values: BTreeSet<&str> = plain
            .requests
            .iter()
            .filter_map(|r| r.series[0].label("series"))
            .collect();
        assert_eq!(values.len(), SERIES);
        for r in plain.requests.iter().chain(&labelled.requests) {
            assert_eq!(r.series.len(), 1);
            assert_eq!(r.series[0].labels.len(), 9);
            assert_eq!(r.header("content-encoding"), Some("gzip"));
            let body = pyrogate_testdata::gz::gunzip(&r.body).expect("gzip");
            assert_eq!(push::decode(&body).expect("PushRequest"), r.series);
        }
        assert!(plain.body_bytes < 1024.0, "{}", plain.body_bytes);
    }
}
