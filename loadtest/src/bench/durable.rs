//! The `durable` suite: what `ack = "durable"` costs (the spool's write-ahead log: each
//! request appended to its worker's log and answered after the group commit, write +
//! `fdatasync`, then delivered). At fan-out 2 and 16 KiB profiles, for two payloads (the
//! synthetic `/ingest` pprof and the Push of the other suites, whatever `--protocol` says),
//! pyrogate runs on the first driver (io_uring when the kernel allows it) with
//!
//! * `ack = "all"` (answer after both sinks) and `"enqueue"` (answer once queued in memory;
//!   the baseline of the goals),
//! * `ack = "durable"` with `fsync = "batch"`, file I/O on the worker's io_uring (`io =
//!   "uring"`) and on a plain thread per log (`io = "thread"`),
//! * `ack = "durable"` with `fsync = "always"` (one `fdatasync` per request),
//!
//! and on the epoll driver (when io_uring is the first) with `ack = "enqueue"` and durable
//! batch (thread, the only file I/O there). Closed loop first (requests per CPU-second of
//! the gateway, the ratio to enqueue on the same driver and payload in the same round),
//! interleaved over the rounds; then an open loop at half the enqueue saturation rate just
//! measured (median of the rounds), p50/p99 and the p99 added over enqueue in the same
//! round. The goals: durable batch ≥ 0.7× enqueue's requests per CPU-second, and
//! p99 added ≤ 2 ms at half saturation.
//!
//! Every durable run gets a fresh spool in a scratch directory under the benchmark's temp
//! dir ([`runner::Scratch`]), removed after the run; the table says which filesystem and
//! disk that is, and a direct measurement of `fdatasync` after a 16 KiB write there
//! ([`Disk`]). The gateway's `pyrogate_spool_*` metrics are read before and after each
//! measured run: `fdatasync` calls per request and their duration (mean, p99 from the
//! histogram's buckets). After a run of a gateway that answers before delivering, the suite
//! waits (≤ 3 s) for the sinks to receive every copy, and reports the share they got.
//!
//! With [`BASELINE_ENV`] naming another `pyrogate` binary (an older build), its durable
//! `io = "uring"` cells (batch and always, closed loop; batch, open loop) run too,
//! interleaved in the same rounds and labelled `(baseline)`, for a before/after
//! comparison under the same conditions (their ×enqueue is against this binary's
//! enqueue in the same round: the enqueue path does not depend on the spool).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::BenchConfig;
use super::gateway_config::{Ack, Fsync, SpoolIo};
use super::runner::{self, Cell, Ctx, Sample, Sinks, Variant};
use super::stats::{self, median, median_opt, round_ratio};
use super::suites::{self, CellReport};
use super::table::{self, Table};
use crate::load::payload::{Protocol, Source};
use crate::load::{self, RunConfig};
use crate::process;

/// Profile size (gzip'd) of both payloads.
pub const SIZE: usize = 16 * 1024;
/// Sinks every request goes to.
pub const FANOUT: usize = 2;
/// The payloads: the synthetic `/ingest` pprof and the synthetic Push.
pub const PROTOCOLS: [Protocol; 2] = [Protocol::IngestPprof, Protocol::Push];
/// Durable batch's requests per CPU-second ÷ enqueue's, at least (issue).
pub const GOAL_RATIO: f64 = 0.7;
/// Durable batch's p99 − enqueue's at half the enqueue saturation, at most (issue).
pub const GOAL_ADDED_P99_MS: f64 = 2.0;
/// Runs per round, for the estimate (two payloads × (7 closed + 5 open-loop cells) with
/// both drivers).
pub const RUNS_PER_ROUND: usize = PROTOCOLS.len() * (7 + 5);
/// The gateway metrics read around each measured run.
const SCRAPED: [&str; 1] = ["pyrogate_spool_"];
const FSYNC: &str = "pyrogate_spool_fsync_duration_seconds";
/// `fdatasync` calls of the direct disk measurement.
const DISK_PROBES: usize = 100;
/// An open-loop run that achieved less than this share of its target rate was over capacity.
const OVER_CAPACITY: f64 = 0.95;
/// Environment variable naming a baseline `pyrogate` binary (see the module docs): an
/// environment variable rather than a flag, because only this suite uses it.
pub const BASELINE_ENV: &str = "PYROGATE_BENCH_DURABLE_BASELINE";
/// Label suffix of the baseline binary's cells.
const BASELINE_LABEL: &str = " (baseline)";
/// The spool's other syncs and the segments created, per measured run.
const META_SYNC: &str = "pyrogate_spool_metadata_sync_duration_seconds";
const SEGMENTS: &str = "pyrogate_spool_segments_created_total";

/// The filesystem and disk the spools were on.
#[derive(Debug, Clone, Serialize)]
pub struct Disk {
    /// The directory the per-run spools were created in.
    pub dir: String,
    /// `stat -f -c %T` (ext4 shows as `ext2/ext3`).
    pub fs_type: String,
    /// `findmnt -n -o SOURCE,FSTYPE,OPTIONS -T dir`.
    pub mount: String,
    /// `/sys/class/block/<dev>/queue/rotational` and `write_cache` of the mount's device.
    pub rotational: Option<String>,
    pub write_cache: Option<String>,
    /// `fdatasync` after a 16 KiB `pwrite` appending to a file there, [`DISK_PROBES`] times:
    /// median and p99, ms.
    pub fdatasync_p50_ms: Option<f64>,
    pub fdatasync_p99_ms: Option<f64>,
}

/// One payload's cells.
#[derive(Debug, Clone, Serialize)]
pub struct PayloadResult {
    pub protocol: String,
    pub size: usize,
    /// Closed loop.
    pub closed: Vec<CellReport>,
    /// Open-loop rate, and where it came from.
    pub rate: Option<f64>,
    pub rate_basis: String,
    pub latency: Vec<CellReport>,
}

/// The suite's result.
#[derive(Debug, Clone, Serialize)]
pub struct DurableResult {
    pub disk: Disk,
    pub payloads: Vec<PayloadResult>,
}

fn cell(driver: &'static str, ack: Ack) -> Cell {
    Cell {
        variant: Variant::PyrogateAck { driver, ack },
        fanout: FANOUT,
        size: SIZE,
    }
}

fn durable(fsync: Fsync, io: SpoolIo) -> Ack {
    Ack::Durable { fsync, io }
}

/// The cells of the first driver: all, enqueue, durable batch (each file I/O the driver
/// can do), durable always (the driver's default file I/O).
fn primary_cells(driver: &'static str) -> Vec<Cell> {
    let ios: &[SpoolIo] = if driver == "io_uring" {
        &[SpoolIo::Uring, SpoolIo::Thread]
    } else {
        &[SpoolIo::Thread]
    };
    let mut v = vec![cell(driver, Ack::All), cell(driver, Ack::Enqueue)];
    v.extend(
        ios.iter()
            .map(|io| cell(driver, durable(Fsync::Batch, *io))),
    );
    v.push(cell(driver, durable(Fsync::Always, ios[0])));
    v
}

/// Closed loop: [`primary_cells`] of the first driver, then enqueue and durable batch
/// (thread) of every other.
pub fn closed_cells(drivers: &[&'static str]) -> Vec<Cell> {
    let Some((first, rest)) = drivers.split_first() else {
        return Vec::new();
    };
    let mut v = primary_cells(first);
    for d in rest {
        v.push(cell(d, Ack::Enqueue));
        v.push(cell(d, durable(Fsync::Batch, SpoolIo::Thread)));
    }
    v
}

/// Open loop: [`primary_cells`] of the first driver.
pub fn latency_cells(drivers: &[&'static str]) -> Vec<Cell> {
    drivers
        .first()
        .map(|d| primary_cells(d))
        .unwrap_or_default()
}

/// The baseline binary's cells among `cells`: durable with `io = "uring"`.
fn baseline_cells(cells: &[Cell]) -> Vec<Cell> {
    cells
        .iter()
        .filter(|c| {
            matches!(
                ack_of(c),
                Some((
                    _,
                    Ack::Durable {
                        io: SpoolIo::Uring,
                        ..
                    }
                ))
            )
        })
        .cloned()
        .collect()
}

fn ack_of(c: &Cell) -> Option<(&'static str, Ack)> {
    match c.variant {
        Variant::PyrogateAck { driver, ack } => Some((driver, ack)),
        _ => None,
    }
}

fn is_batch(c: &Cell) -> bool {
    matches!(
        ack_of(c),
        Some((
            _,
            Ack::Durable {
                fsync: Fsync::Batch,
                ..
            }
        ))
    )
}

/// The enqueue cell of `c`'s driver in `cells`.
fn enqueue_of<'a>(cells: &'a [CellReport], c: &Cell) -> Option<&'a CellReport> {
    let (driver, _) = ack_of(c)?;
    cells
        .iter()
        .find(|b| ack_of(&b.cell) == Some((driver, Ack::Enqueue)))
}

/// Whether `r` is the enqueue cell itself (not a baseline cell equal to it).
fn is_base(r: &CellReport, base: &CellReport) -> bool {
    r.cell == base.cell && r.label == base.label
}

/// Runs the suite: per payload, the closed-loop cells interleaved over the rounds, then
/// the open-loop cells at half the enqueue saturation just measured.
pub fn run(
    ctx: &Ctx<'_>,
    failures: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<DurableResult, String> {
    let cfg = ctx.cfg;
    let disk = Disk::probe(ctx.tmp);
    eprintln!(
        "durable: spools under {} ({}; {}); fdatasync of a 16 KiB write there: p50 {} ms, p99 {} ms",
        disk.dir,
        disk.fs_type,
        disk.mount,
        table::num(disk.fdatasync_p50_ms, 3),
        table::num(disk.fdatasync_p99_ms, 3)
    );
    let sinks = Sinks::start(ctx, FANOUT)?;
    eprintln!("durable: sinks on {}", sinks.urls(FANOUT).join(", "));
    let base_cfg = std::env::var_os(BASELINE_ENV).map(|b| BenchConfig {
        gateway_bin: PathBuf::from(b),
        ..cfg.clone()
    });
    let base_ctx = base_cfg.as_ref().map(|c| Ctx {
        cfg: c,
        tmp: ctx.tmp,
        drivers: ctx.drivers,
        sink_exe: ctx.sink_exe,
    });
    if let Some(c) = &base_cfg {
        eprintln!(
            "durable: baseline gateway {} ({BASELINE_ENV})",
            c.gateway_bin.display()
        );
    }
    if cfg.protocol != Protocol::IngestPprof {
        notes.push(format!(
            "durable: --protocol {} ignored; the suite sends both the /ingest pprof and the Push payload",
            cfg.protocol.name()
        ));
    }
    let mut payloads = Vec::new();
    for protocol in PROTOCOLS {
        if process::interrupted() {
            break;
        }
        let name = format!("durable {}", protocol.name());
        let closed_list = closed_cells(ctx.drivers);
        let closed_base = if base_ctx.is_some() {
            baseline_cells(&closed_list)
        } else {
            Vec::new()
        };
        let closed = run_cells(
            ctx,
            base_ctx.as_ref(),
            &name,
            protocol,
            &closed_list,
            &closed_base,
            &sinks,
            None,
            failures,
        );
        let lat_cells = latency_cells(ctx.drivers);
        let saturation = lat_cells
            .iter()
            .find(|c| matches!(ack_of(c), Some((_, Ack::Enqueue))))
            .and_then(|c| closed.iter().find(|r| r.cell == *c))
            .and_then(|r| r.med(|s| Some(s.rps)));
        let (rate, rate_basis) = match (cfg.latency_rate, saturation) {
            (Some(r), _) => (Some(r), "--latency-rate".to_owned()),
            (None, Some(sat)) => (
                Some((sat / 2.0).max(1.0)),
                format!(
                    "half of ack enqueue's saturation ({} req/s, closed loop, median of the rounds above)",
                    table::rate(Some(sat))
                ),
            ),
            (None, None) => (None, "no enqueue saturation measured".to_owned()),
        };
        let latency = match rate {
            Some(r) if !process::interrupted() => {
                eprintln!(
                    "{name}: open loop at {} req/s ({rate_basis})",
                    table::rate(Some(r))
                );
                let open_base: Vec<Cell> = if base_ctx.is_some() {
                    baseline_cells(&lat_cells)
                        .into_iter()
                        .filter(is_batch)
                        .collect()
                } else {
                    Vec::new()
                };
                run_cells(
                    ctx,
                    base_ctx.as_ref(),
                    &format!("{name} open"),
                    protocol,
                    &lat_cells,
                    &open_base,
                    &sinks,
                    Some(r),
                    failures,
                )
            }
            Some(_) => Vec::new(),
            None => {
                failures.push(format!("{name}: no open-loop runs ({rate_basis})"));
                Vec::new()
            }
        };
        for c in closed.iter().chain(&latency) {
            if let Some(d) = c.med(|s| s.delivered)
                && d < 0.999
            {
                notes.push(format!(
                    "{name} {}: the sinks received only {:.2}% of the expected copies (within 3 s of the run's end)",
                    c.label,
                    d * 100.0
                ));
            }
            if matches!(ack_of(&c.cell), Some((_, Ack::Durable { .. })))
                && c.med(fsyncs_per_request).is_none_or(|f| f <= 0.0)
            {
                notes.push(format!(
                    "{name} {}: no fdatasync counted (pyrogate_spool_fsync_duration_seconds_count did not move)",
                    c.label
                ));
            }
        }
        payloads.push(PayloadResult {
            protocol: protocol.name().to_owned(),
            size: SIZE,
            closed,
            rate,
            rate_basis,
            latency,
        });
    }
    Ok(DurableResult { disk, payloads })
}

/// `cells`, then `baseline` with the baseline binary (`base_ctx`), once per round,
/// interleaved, with `protocol`'s synthetic requests; a run with more steal than
/// `--max-steal` is run again once (within a fifth of the runs).
#[allow(clippy::too_many_arguments)]
fn run_cells(
    ctx: &Ctx<'_>,
    base_ctx: Option<&Ctx<'_>>,
    name: &str,
    protocol: Protocol,
    cells: &[Cell],
    baseline: &[Cell],
    sinks: &Sinks,
    rate: Option<f64>,
    failures: &mut Vec<String>,
) -> Vec<CellReport> {
    let cfg = ctx.cfg;
    let base_ctx = base_ctx.filter(|_| !baseline.is_empty());
    let runs: Vec<(&Cell, &Ctx<'_>, &str)> = cells
        .iter()
        .map(|c| (c, ctx, ""))
        .chain(
            base_ctx
                .into_iter()
                .flat_map(|b| baseline.iter().map(move |c| (c, b, BASELINE_LABEL))),
        )
        .collect();
    let mut reports: Vec<CellReport> = runs
        .iter()
        .map(|(c, _, suffix)| CellReport {
            label: format!("{}{suffix}", c.variant.label(c.fanout)),
            cell: (*c).clone(),
            samples: vec![None; cfg.runs],
        })
        .collect();
    let cells = &runs;
    let mut rerun_budget = cells.len() * cfg.runs / 5 + 1;
    let source = |c: &Cell| Ok(Source::Synthetic { size: c.size });
    let load = |rc: &RunConfig| {
        let mut rc = rc.clone();
        rc.protocol = protocol;
        load::run(&rc, &mut std::io::sink())
    };
    for (round, i) in stats::interleave(cells.len(), cfg.runs) {
        if process::interrupted() {
            failures.push(format!("{name}: interrupted"));
            break;
        }
        let (c, run_ctx, _) = cells[i];
        let what = format!("{name} r{}", round + 1);
        let label = reports[i].label.clone();
        let measure = || {
            runner::measure_scraped(
                run_ctx,
                c,
                Some(sinks),
                rate,
                round,
                &source,
                &load,
                &SCRAPED,
            )
        };
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
                eprintln!(
                    "{}{}",
                    runner::progress_line(&what, &label, &s),
                    fsyncs_per_request(&s)
                        .map(|f| format!("  fsync/req {f:.3}"))
                        .unwrap_or_default()
                );
                reports[i].samples[round] = Some(s);
            }
            Err(e) => {
                eprintln!("  {what} {label}: FAILED: {e}");
                failures.push(format!("{what} {label}: {e}"));
            }
        }
    }
    reports
}

// === the spool's figures from the gateway's metrics ===

fn metric(s: &Sample, series: &str) -> Option<f64> {
    s.gateway_metrics.get(series).copied()
}

/// `fdatasync` calls of the spool per acknowledged request during the measured run.
pub fn fsyncs_per_request(s: &Sample) -> Option<f64> {
    let n = metric(s, &format!("{FSYNC}_count"))?;
    (s.ok > 0).then(|| n / s.ok as f64)
}

/// Mean `fdatasync` duration during the measured run, ms.
pub fn fsync_mean_ms(s: &Sample) -> Option<f64> {
    let n = metric(s, &format!("{FSYNC}_count"))?;
    let sum = metric(s, &format!("{FSYNC}_sum"))?;
    (n > 0.0).then(|| sum / n * 1000.0)
}

/// Quantile `q` of the `fdatasync` durations during the measured run, ms, from the
/// histogram's buckets (linear within a bucket, as Prometheus' `histogram_quantile`).
pub fn fsync_quantile_ms(s: &Sample, q: f64) -> Option<f64> {
    let prefix = format!("{FSYNC}_bucket{{le=\"");
    let mut buckets: Vec<(f64, f64)> = s
        .gateway_metrics
        .iter()
        .filter_map(|(k, v)| {
            let le = k.strip_prefix(&prefix)?.strip_suffix("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, *v))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    histogram_quantile(&buckets, q).map(|x| x * 1000.0)
}

/// Quantile `q` of a histogram given as `(upper bound, cumulative count)` sorted by bound
/// (the last one `+Inf`); in the `+Inf` bucket, the largest finite bound.
pub fn histogram_quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = (q * total).max(f64::MIN_POSITIVE);
    let (mut lo, mut below) = (0.0, 0.0);
    for &(le, cum) in buckets {
        if cum >= rank {
            if le.is_infinite() {
                return Some(lo);
            }
            return Some(lo + (le - lo) * (rank - below) / (cum - below));
        }
        (lo, below) = (le, cum);
    }
    None
}

/// The spool's segment and cursor syncs (count, and their mean in ms) and the segments
/// created inline during the measured run (medians over the rounds), e.g.
/// `seg 2×4.1 ms, cur 50×0.9 ms, inline 0`; `-` for a gateway without these metrics.
fn other_syncs_text(c: &CellReport) -> String {
    let count = |kind: &str| c.med(|s| metric(s, &format!("{META_SYNC}_count{{kind=\"{kind}\"}}")));
    let mean = |kind: &str| {
        c.med(|s| {
            let n = metric(s, &format!("{META_SYNC}_count{{kind=\"{kind}\"}}"))?;
            let sum = metric(s, &format!("{META_SYNC}_sum{{kind=\"{kind}\"}}"))?;
            (n > 0.0).then(|| sum / n * 1000.0)
        })
    };
    let inline =
        c.med(|s| Some(metric(s, &format!("{SEGMENTS}{{how=\"inline\"}}")).unwrap_or(0.0)));
    if count("segment").is_none() && count("cursor").is_none() {
        return "-".into();
    }
    let part = |kind: &str, short: &str| {
        format!(
            "{short} {}×{} ms",
            table::num(count(kind), 0),
            table::num(mean(kind), 1)
        )
    };
    format!(
        "{}, {}, inline {}",
        part("segment", "seg"),
        part("cursor", "cur"),
        table::num(inline, 0)
    )
}

// === the disk ===

impl Disk {
    /// What `dir` is on, and how long `fdatasync` takes there.
    pub fn probe(dir: &Path) -> Self {
        let mount = command_line("findmnt", &["-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T"], dir);
        let device = mount
            .as_deref()
            .and_then(|m| m.split_whitespace().next())
            .and_then(|s| s.strip_prefix("/dev/"))
            .map(str::to_owned);
        let queue = |f: &str| -> Option<String> {
            let dev = device.as_deref()?;
            let base = Path::new("/sys/class/block").join(dev);
            // A partition's queue is its disk's.
            [base.join("queue").join(f), base.join("../queue").join(f)]
                .iter()
                .find_map(|p| std::fs::read_to_string(p).ok())
                .map(|s| s.trim().to_owned())
        };
        let times = fdatasync_times(dir, DISK_PROBES).unwrap_or_default();
        let q = |p: f64| -> Option<f64> {
            let mut v = times.clone();
            if v.is_empty() {
                return None;
            }
            v.sort_by(f64::total_cmp);
            let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
            Some(v[i])
        };
        Self {
            dir: dir.display().to_string(),
            fs_type: command_line("stat", &["-f", "-c", "%T"], dir).unwrap_or_else(|| "?".into()),
            mount: mount.unwrap_or_else(|| "?".into()),
            rotational: queue("rotational"),
            write_cache: queue("write_cache"),
            fdatasync_p50_ms: median(&times),
            fdatasync_p99_ms: q(0.99),
        }
    }
}

/// The first line of `program args dir`, when it succeeds.
fn command_line(program: &str, args: &[&str], dir: &Path) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .arg(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8_lossy(&out.stdout);
    let line = s.lines().next()?;
    Some(line.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Milliseconds of `n` `fdatasync` calls, each after appending 16 KiB to a file in `dir`
/// (removed afterwards).
fn fdatasync_times(dir: &Path, n: usize) -> std::io::Result<Vec<f64>> {
    use std::os::unix::fs::FileExt as _;
    let path = dir.join("fdatasync-probe");
    let f = std::fs::File::create(&path)?;
    let block = vec![0x5au8; 16 * 1024];
    let mut out = Vec::with_capacity(n);
    let r = (|| {
        for i in 0..n {
            f.write_all_at(&block, (i * block.len()) as u64)?;
            let t = Instant::now();
            f.sync_data()?;
            out.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        Ok(())
    })();
    drop(f);
    let _ = std::fs::remove_file(&path);
    r.map(|()| out)
}

// === tables ===

fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{:.1}%", x * 100.0))
}

fn goal_text(met: Option<bool>, goal: &str) -> String {
    match met {
        Some(true) => format!("{goal} met"),
        Some(false) => format!("{goal} NOT met"),
        None => "-".into(),
    }
}

/// The suite's tables.
pub fn render(cfg: &BenchConfig, r: &DurableResult) -> String {
    let mut closed = Table::new(&[
        ("payload", true),
        ("path", true),
        ("req/s", false),
        ("CPU-s/1k req", false),
        ("req/CPU-s", false),
        ("×enqueue", false),
        ("goal", true),
        ("fsync/req", false),
        ("fsync mean ms", false),
        ("fsync p99 ms", false),
        ("seg/cursor syncs, inline segs", true),
        ("delivered", false),
        ("p50 ms", false),
        ("p99 ms", false),
        ("steal % med (max)", false),
        ("failed", false),
    ]);
    let mut open = Table::new(&[
        ("payload", true),
        ("path", true),
        ("target req/s", false),
        ("achieved", false),
        ("p50 ms", false),
        ("p99 ms", false),
        ("p99.9 ms", false),
        ("p99 added ms", false),
        ("goal", true),
        ("fsync/req", false),
        ("fsync p99 ms", false),
        ("CPU-s/1k req", false),
        ("gen lag p99 ms", false),
        ("steal % med (max)", false),
        ("failed", false),
    ]);
    for p in &r.payloads {
        for c in &p.closed {
            let cpu = c.values(|s| s.cpu_ms_per_1k);
            let base = enqueue_of(&p.closed, &c.cell).filter(|b| !is_base(c, b));
            // req/CPU-s ratio = inverse ratio of CPU per request, per round, then the median.
            let ratio = base.and_then(|b| round_ratio(&b.values(|s| s.cpu_ms_per_1k), &cpu));
            let goal = if is_batch(&c.cell) {
                goal_text(
                    ratio.map(|x| x >= GOAL_RATIO),
                    &format!("≥ {GOAL_RATIO:.2}×"),
                )
            } else {
                "-".into()
            };
            let cpu_med = median_opt(&cpu);
            closed.row(vec![
                p.protocol.clone(),
                c.label.clone(),
                table::rate(c.med(|s| Some(s.rps))),
                table::num(cpu_med.map(|m| m / 1000.0), 4),
                table::rate(cpu_med.and_then(stats::requests_per_cpu_s)),
                table::ratio(ratio),
                goal,
                table::num(c.med(fsyncs_per_request), 3),
                table::num(c.med(fsync_mean_ms), 2),
                table::num(c.med(|s| fsync_quantile_ms(s, 0.99)), 2),
                other_syncs_text(c),
                percent(c.med(|s| s.delivered)),
                table::num(c.med(|s| Some(s.p50_ms)), 3),
                table::num(c.med(|s| Some(s.p99_ms)), 3),
                suites::steal_text(c),
                c.failed().to_string(),
            ]);
        }
        let base = p
            .latency
            .iter()
            .find(|b| matches!(ack_of(&b.cell), Some((_, Ack::Enqueue))));
        for c in &p.latency {
            let is_base = base.is_some_and(|b| is_base(c, b));
            let added = base.filter(|_| !is_base).and_then(|b| {
                let diffs: Vec<f64> = c
                    .samples
                    .iter()
                    .zip(&b.samples)
                    .filter_map(|(a, e)| Some(a.as_ref()?.p99_ms - e.as_ref()?.p99_ms))
                    .collect();
                median(&diffs)
            });
            let goal = if is_batch(&c.cell) {
                goal_text(
                    added.map(|x| x <= GOAL_ADDED_P99_MS),
                    &format!("≤ {GOAL_ADDED_P99_MS:.0} ms"),
                )
            } else {
                "-".into()
            };
            let achieved = c.med(|s| Some(s.rps));
            let over = match (achieved, p.rate) {
                (Some(a), Some(t)) if a < t * OVER_CAPACITY => " (over capacity)",
                _ => "",
            };
            open.row(vec![
                p.protocol.clone(),
                c.label.clone(),
                table::rate(p.rate),
                format!("{}{over}", table::rate(achieved)),
                table::num(c.med(|s| Some(s.p50_ms)), 3),
                table::num(c.med(|s| Some(s.p99_ms)), 3),
                table::num(c.med(|s| Some(s.p999_ms)), 3),
                table::num(added, 3),
                goal,
                table::num(c.med(fsyncs_per_request), 3),
                table::num(c.med(|s| fsync_quantile_ms(s, 0.99)), 2),
                table::num(c.med(|s| s.cpu_ms_per_1k).map(|m| m / 1000.0), 4),
                table::num(c.med(|s| s.schedule_lag_p99_ms), 3),
                suites::steal_text(c),
                c.failed().to_string(),
            ]);
        }
    }
    let d = &r.disk;
    let rates: Vec<String> = r
        .payloads
        .iter()
        .map(|p| {
            format!(
                "{}: {} req/s, {}",
                p.protocol,
                table::rate(p.rate),
                p.rate_basis
            )
        })
        .collect();
    format!(
        "\n== durable: ack = \"durable\" vs \"enqueue\" and \"all\" (fan-out {FANOUT}, {} profiles, {} connections) ==\n\
         spool: a fresh directory per run under {} (removed after the run); filesystem {} (stat -f), mount {};\n\
         rotational {}, write cache {}; fdatasync after a 16 KiB append there, measured directly ({DISK_PROBES}×): p50 {} ms, p99 {} ms\n\
         \nClosed loop:\n{}\
         req/CPU-s is pyrogate's own CPU time; ×enqueue = median over rounds of (req/CPU-s ÷ ack enqueue's on the same\n\
         driver and payload). Goal: durable batch ≥ {GOAL_RATIO:.2}×. fsync/req = fdatasync calls per acknowledged request,\n\
         fsync mean/p99 from pyrogate_spool_fsync_duration_seconds over the measured run (p99 interpolated in its buckets).\n\
         delivered = copies the sinks received ÷ (requests × {FANOUT}), waiting ≤ 3 s after the run.\n\
         \nOpen loop ({}):\n{}\
         Latency from each request's intended send time (coordinated omission corrected); p99 added = median over rounds\n\
         of (p99 − ack enqueue's p99) in the same round. Goal: durable batch ≤ {GOAL_ADDED_P99_MS:.0} ms.\n",
        table::size(SIZE),
        cfg.connections,
        d.dir,
        d.fs_type,
        d.mount,
        d.rotational.as_deref().unwrap_or("?"),
        d.write_cache.as_deref().unwrap_or("?"),
        table::num(d.fdatasync_p50_ms, 3),
        table::num(d.fdatasync_p99_ms, 3),
        closed.render(),
        rates.join("; "),
        open.render(),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pyrogate::config::spool::{FsyncPolicy, SpoolIo as Io};
    use pyrogate::config::{AckPolicy, Config};

    use super::super::gateway_config;
    use super::*;

    /// The gateway's own configuration loader accepts every durable file of the suite,
    /// with the spool where the run's scratch directory says.
    #[test]
    fn durable_configs_parse() {
        let scratch = Path::new("/tmp/pyrogate-bench \"x\"/run-7");
        let cases = [
            (Fsync::Batch, SpoolIo::Uring, FsyncPolicy::Batch, Io::Uring),
            (
                Fsync::Batch,
                SpoolIo::Thread,
                FsyncPolicy::Batch,
                Io::Thread,
            ),
            (
                Fsync::Always,
                SpoolIo::Uring,
                FsyncPolicy::Always,
                Io::Uring,
            ),
            (
                Fsync::Always,
                SpoolIo::Thread,
                FsyncPolicy::Always,
                Io::Thread,
            ),
        ];
        for (fsync, io, want_fsync, want_io) in cases {
            let text =
                gateway_config::durable(&scratch.join(gateway_config::SPOOL_SUBDIR), fsync, io);
            let c = Config::from_toml(&text).expect("valid configuration");
            assert_eq!(c.forward.ack, AckPolicy::Durable);
            let spool = c.spool.expect("[spool]");
            assert_eq!(spool.dir, scratch.join("spool"));
            assert_eq!(spool.fsync, want_fsync);
            assert_eq!(spool.io, want_io);
            assert_eq!(spool.fsync_interval, Duration::from_millis(5));
        }
    }

    /// The flags of each policy; the durable file is written into the scratch directory.
    #[test]
    fn flags_per_policy() {
        assert!(Ack::All.flags(None).expect("no flags").is_empty());
        assert_eq!(
            Ack::Enqueue.flags(None).expect("flags"),
            vec!["--ack".to_owned(), "enqueue".to_owned()]
        );
        let d = durable(Fsync::Batch, SpoolIo::Uring);
        assert!(d.flags(None).is_err());
        let dir = std::env::temp_dir().join(format!("pyrogate-durable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let flags = d.flags(Some(&dir)).expect("written");
        assert_eq!(flags[0], "--config");
        let text = std::fs::read_to_string(&flags[1]).expect("file");
        let c = Config::from_toml(&text).expect("valid");
        assert_eq!(c.spool.expect("[spool]").dir, dir.join("spool"));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(d.label(), "durable batch io=uring");
        assert!(d.answers_before_delivery() && !Ack::All.answers_before_delivery());
    }

    #[test]
    fn cells_per_driver() {
        let both = closed_cells(&["io_uring", "legacy"]);
        let labels: Vec<String> = both.iter().map(|c| c.variant.label(c.fanout)).collect();
        assert_eq!(
            labels,
            [
                "pyrogate io_uring ack all",
                "pyrogate io_uring ack enqueue",
                "pyrogate io_uring durable batch io=uring",
                "pyrogate io_uring durable batch io=thread",
                "pyrogate io_uring durable always io=uring",
                "pyrogate epoll ack enqueue",
                "pyrogate epoll durable batch io=thread",
            ]
        );
        assert!(both.iter().all(|c| c.fanout == FANOUT && c.size == SIZE));
        assert_eq!(
            both.len() + latency_cells(&["io_uring", "legacy"]).len(),
            RUNS_PER_ROUND / PROTOCOLS.len()
        );
        // Without io_uring: thread file I/O only.
        let epoll = closed_cells(&["legacy"]);
        assert_eq!(epoll.len(), 4);
        assert!(epoll.iter().all(|c| !matches!(
            ack_of(c),
            Some((
                _,
                Ack::Durable {
                    io: SpoolIo::Uring,
                    ..
                }
            ))
        )));
    }

    /// The baseline binary runs the durable io=uring cells only; the column of the other
    /// syncs reads the labelled series, and says `-` for a binary without them.
    #[test]
    fn baseline_cells_and_other_syncs() {
        let base = baseline_cells(&closed_cells(&["io_uring", "legacy"]));
        let labels: Vec<String> = base.iter().map(|c| c.variant.label(c.fanout)).collect();
        assert_eq!(
            labels,
            [
                "pyrogate io_uring durable batch io=uring",
                "pyrogate io_uring durable always io=uring",
            ]
        );
        let text = "\
pyrogate_spool_metadata_sync_duration_seconds_sum{kind=\"segment\"} 0.006
pyrogate_spool_metadata_sync_duration_seconds_count{kind=\"segment\"} 3
pyrogate_spool_metadata_sync_duration_seconds_sum{kind=\"cursor\"} 0.05
pyrogate_spool_metadata_sync_duration_seconds_count{kind=\"cursor\"} 50
pyrogate_spool_segments_created_total{how=\"prepared\"} 3
";
        let sample = Sample {
            ok: 10,
            gateway_metrics: runner::parse_metrics(text, &SCRAPED),
            ..Sample::default()
        };
        let mut r = CellReport {
            cell: base[0].clone(),
            label: "x".into(),
            samples: vec![Some(sample)],
        };
        assert_eq!(
            other_syncs_text(&r),
            "seg 3×2.0 ms, cur 50×1.0 ms, inline 0"
        );
        r.samples = vec![Some(Sample::default())];
        assert_eq!(other_syncs_text(&r), "-");
    }

    #[test]
    fn fsync_figures_from_metric_deltas() {
        let text = "\
# HELP pyrogate_spool_fsync_duration_seconds Duration of the spool's fdatasync calls.
# TYPE pyrogate_spool_fsync_duration_seconds histogram
pyrogate_spool_fsync_duration_seconds_bucket{le=\"0.001\"} 0
pyrogate_spool_fsync_duration_seconds_bucket{le=\"0.0025\"} 50
pyrogate_spool_fsync_duration_seconds_bucket{le=\"0.005\"} 100
pyrogate_spool_fsync_duration_seconds_bucket{le=\"+Inf\"} 100
pyrogate_spool_fsync_duration_seconds_sum 0.25
pyrogate_spool_fsync_duration_seconds_count 100
pyrogate_spool_bytes{endpoint=\"http://127.0.0.1:1\"} 0
pyrogate_requests_total 5
";
        let m = runner::parse_metrics(text, &SCRAPED);
        assert_eq!(m.len(), 7);
        assert!(!m.contains_key("pyrogate_requests_total"));
        let s = Sample {
            ok: 400,
            gateway_metrics: m,
            ..Sample::default()
        };
        assert_eq!(fsyncs_per_request(&s), Some(0.25));
        assert!((fsync_mean_ms(&s).expect("mean") - 2.5).abs() < 1e-9);
        // Rank 99 of 100 lies in (2.5 ms, 5 ms], 49/50 of the way.
        let p99 = fsync_quantile_ms(&s, 0.99).expect("p99");
        assert!((p99 - 4.95).abs() < 1e-9, "{p99}");
        let p50 = fsync_quantile_ms(&s, 0.5).expect("p50");
        assert!((p50 - 2.5).abs() < 1e-9, "{p50}");
        assert_eq!(fsync_quantile_ms(&Sample::default(), 0.99), None);
        assert_eq!(
            histogram_quantile(&[(1.0, 3.0), (f64::INFINITY, 10.0)], 0.9),
            Some(1.0)
        );
        assert_eq!(histogram_quantile(&[(1.0, 0.0)], 0.5), None);
    }
}
