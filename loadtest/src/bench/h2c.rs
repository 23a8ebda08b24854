//! The `h2c` suite (issue 15): what gRPC over cleartext HTTP/2 costs the gateway against
//! Connect over HTTP/1.1. pyrogate (first driver: io_uring when the kernel allows it, one
//! worker pinned like the other suites) forwards synthetic Push requests to one sink, in three
//! cases interleaved over the rounds, per `--sizes`:
//!
//! * **HTTP/1.1 Connect Push**: `--connections` (32) keep-alive connections, the `push`
//!   protocol (`application/proto`, `Content-Encoding: gzip`), the baseline;
//! * **h2c gRPC Push**: the same number of concurrent streams over `--connections / 8` (4)
//!   prior-knowledge HTTP/2 connections, the same PushRequest as one uncompressed gRPC
//!   message (`run --h2c-connections`, [`crate::load::h2`]);
//! * **h2c gRPC Push, gzip**: the same with the gzip'd PushRequest (`grpc-encoding: gzip`),
//!   so the bytes the gateway receives and forwards are those of the Connect case;
//! * **nginx `grpc_pass`**, plain and gzip: the two gRPC loads sent to nginx (one worker,
//!   pinned like the gateway) proxying to the same sink over h2c, the peer for the
//!   gRPC case (run when nginx is installed, [`super::nginx::Mode::Grpc`]).
//!
//! Every figure is the gateway's: requests per CPU-second, the ratio to the HTTP/1.1 case
//! in the same round (median over the rounds), and the client's p50/p99 (closed loop). The
//! gateway's `pyrogate_http2_connections_total` is read around each measured run to show the
//! gRPC cases really were HTTP/2.

use serde::Serialize;

use super::BenchConfig;
use super::runner::{self, Cell, Ctx, Sample, Sinks, Variant};
use super::stats::{self, median_opt, round_ratio};
use super::suites::{self, CellReport};
use super::table::{self, Table};
use crate::load::h2::GrpcOptions;
use crate::load::payload::{Protocol, Source};
use crate::load::{self, RunConfig};
use crate::process;

/// Concurrent streams per HTTP/2 connection (32 streams over 4 connections).
pub const STREAMS_PER_CONNECTION: usize = 8;
/// Runs per round and size.
pub const RUNS_PER_ROUND: usize = CASES.len();
/// The gateway metrics read around each measured run.
const SCRAPED: [&str; 1] = ["pyrogate_http2_connections_total"];

/// One case of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Case {
    Http1Connect,
    /// The uncompressed Connect body: the baseline of the uncompressed gRPC message, which
    /// carries the same bytes.
    Http1ConnectPlain,
    H2cGrpc,
    H2cGrpcGzip,
    NginxGrpc,
    NginxGrpcGzip,
}

/// The cases, in their order within a round.
pub const CASES: [Case; 6] = [
    Case::Http1Connect,
    Case::Http1ConnectPlain,
    Case::H2cGrpc,
    Case::H2cGrpcGzip,
    Case::NginxGrpc,
    Case::NginxGrpcGzip,
];

impl Case {
    pub fn label(self) -> &'static str {
        match self {
            Case::Http1Connect => "HTTP/1.1 Connect Push",
            Case::Http1ConnectPlain => "HTTP/1.1 Connect Push (uncompressed)",
            Case::H2cGrpc => "h2c gRPC Push",
            Case::H2cGrpcGzip => "h2c gRPC Push (gzip)",
            Case::NginxGrpc => "nginx grpc_pass gRPC Push",
            Case::NginxGrpcGzip => "nginx grpc_pass gRPC Push (gzip)",
        }
    }

    pub fn is_nginx(self) -> bool {
        matches!(self, Case::NginxGrpc | Case::NginxGrpcGzip)
    }

    /// The pyrogate case an nginx case is the peer of.
    pub fn peer_of(self) -> Option<Case> {
        match self {
            Case::H2cGrpc => Some(Case::NginxGrpc),
            Case::H2cGrpcGzip => Some(Case::NginxGrpcGzip),
            _ => None,
        }
    }

    /// The HTTP/1.1 case carrying the same message bytes (`None` for the HTTP/1.1 cases).
    pub fn baseline(self) -> Option<Case> {
        match self {
            Case::H2cGrpc | Case::NginxGrpc => Some(Case::Http1ConnectPlain),
            Case::H2cGrpcGzip | Case::NginxGrpcGzip => Some(Case::Http1Connect),
            Case::Http1Connect | Case::Http1ConnectPlain => None,
        }
    }

    fn variant(self, driver: &'static str) -> Variant {
        if self.is_nginx() {
            Variant::NginxGrpc
        } else {
            Variant::Pyrogate { driver }
        }
    }

    /// How the load sends this case (`None`: HTTP/1.1).
    pub fn grpc(self, h2_connections: usize) -> Option<GrpcOptions> {
        match self {
            Case::Http1Connect | Case::Http1ConnectPlain => None,
            _ => Some(GrpcOptions {
                h2_connections,
                gzip: matches!(self, Case::H2cGrpcGzip | Case::NginxGrpcGzip),
            }),
        }
    }
}

/// HTTP/2 connections for `streams` concurrent streams.
pub fn h2_connections(streams: usize) -> usize {
    (streams / STREAMS_PER_CONNECTION).max(1)
}

/// One case at one size with its runs.
#[derive(Debug, Clone, Serialize)]
pub struct H2cCellReport {
    pub case: Case,
    #[serde(flatten)]
    pub report: CellReport,
}

/// The suite's result.
#[derive(Debug, Clone, Serialize)]
pub struct H2cResult {
    pub driver: String,
    /// HTTP/1.1 connections of the baseline, concurrent streams of the gRPC cases.
    pub streams: usize,
    pub h2_connections: usize,
    pub cells: Vec<H2cCellReport>,
}

/// Runs the suite: per size, the three cases interleaved over the rounds.
pub fn run(
    ctx: &Ctx<'_>,
    failures: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<H2cResult, String> {
    let cfg = ctx.cfg;
    let driver = *ctx.drivers.first().ok_or("no driver")?;
    let streams = cfg.connections;
    let h2 = h2_connections(streams);
    let sinks = Sinks::start(ctx, 1)?;
    eprintln!(
        "h2c: sink on {}; {streams} HTTP/1.1 connections vs {streams} streams over {h2} HTTP/2 connections",
        sinks.urls(1).join(", ")
    );
    if !matches!(cfg.protocol, Protocol::Push | Protocol::IngestPprof) {
        notes.push(format!(
            "h2c: --protocol {} ignored; the suite sends Push (Connect and gRPC)",
            cfg.protocol.name()
        ));
    }
    let cases: Vec<Case> = CASES
        .iter()
        .copied()
        .filter(|c| !c.is_nginx() || cfg.nginx_bin.is_some())
        .collect();
    if cases.len() < CASES.len() {
        notes.push("h2c: nginx is not installed; the grpc_pass peer was not measured".into());
    }
    let source = |c: &Cell| Ok(Source::Synthetic { size: c.size });
    let mut out = Vec::new();
    for &size in &cfg.sizes {
        let mut cells: Vec<H2cCellReport> = cases
            .iter()
            .map(|&case| H2cCellReport {
                case,
                report: CellReport {
                    label: case.label().to_owned(),
                    cell: Cell {
                        variant: case.variant(driver),
                        fanout: 1,
                        size,
                    },
                    samples: vec![None; cfg.runs],
                },
            })
            .collect();
        let mut rerun_budget = cases.len() * cfg.runs / 5 + 1;
        for (round, i) in stats::interleave(cases.len(), cfg.runs) {
            if process::interrupted() {
                failures.push("h2c: interrupted".into());
                out.extend(cells);
                return Ok(result(driver, streams, h2, out));
            }
            let case = cases[i];
            let cell = cells[i].report.cell.clone();
            let what = format!("h2c {} r{}", table::size(size), round + 1);
            let label = case.label();
            let load = |rc: &RunConfig| {
                let mut rc = rc.clone();
                rc.protocol = if case == Case::Http1ConnectPlain {
                    Protocol::PushPlain
                } else {
                    Protocol::Push
                };
                match case.grpc(h2) {
                    Some(g) => load::h2::run(&rc, &g, &mut std::io::sink()),
                    None => load::run(&rc, &mut std::io::sink()),
                }
            };
            let measure = || {
                runner::measure_scraped(
                    ctx,
                    &cell,
                    Some(&sinks),
                    None,
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
                        "{}  h2 connections {}",
                        runner::progress_line(&what, label, &s),
                        table::num(h2_connections_seen(&s), 0)
                    );
                    cells[i].report.samples[round] = Some(s);
                }
                Err(e) => {
                    eprintln!("  {what} {label}: FAILED: {e}");
                    failures.push(format!("{what} {label}: {e}"));
                }
            }
        }
        for c in &cells {
            let r = &c.report;
            if let Some(d) = r.med(|s| s.delivered)
                && d < 0.999
            {
                notes.push(format!(
                    "h2c {} {}: the sink received only {:.2}% of the expected profiles",
                    table::size(size),
                    r.label,
                    d * 100.0
                ));
            }
            let seen = r.med(h2_connections_seen);
            let want_h2 = c.case.grpc(1).is_some();
            if !c.case.is_nginx() && seen.is_some_and(|n| (n > 0.0) != want_h2) {
                notes.push(format!(
                    "h2c {} {}: the gateway counted {} HTTP/2 connection(s) in the measured run",
                    table::size(size),
                    r.label,
                    table::num(seen, 0)
                ));
            }
        }
        out.extend(cells);
    }
    Ok(result(driver, streams, h2, out))
}

fn result(driver: &str, streams: usize, h2: usize, cells: Vec<H2cCellReport>) -> H2cResult {
    H2cResult {
        driver: driver.to_owned(),
        streams,
        h2_connections: h2,
        cells,
    }
}

/// HTTP/2 connections the gateway accepted during the measured run.
pub fn h2_connections_seen(s: &Sample) -> Option<f64> {
    let mut seen = false;
    let n = s
        .gateway_metrics
        .iter()
        .filter(|(k, _)| k.starts_with(SCRAPED[0]))
        .map(|(_, v)| {
            seen = true;
            *v
        })
        .sum();
    seen.then_some(n)
}

/// The suite's table.
pub fn render(cfg: &BenchConfig, r: &H2cResult) -> String {
    let mut t = Table::new(&[
        ("size", true),
        ("case", true),
        ("req/s", false),
        ("CPU-s/1k req", false),
        ("req/CPU-s", false),
        ("×HTTP/1.1", false),
        ("×nginx grpc_pass", false),
        ("user %", false),
        ("p50 ms", false),
        ("p99 ms", false),
        ("p99 ×HTTP/1.1", false),
        ("steal % med (max)", false),
        ("failed", false),
    ]);
    for c in &r.cells {
        let rep = &c.report;
        let cpu = rep.values(|s| s.cpu_ms_per_1k);
        let p99 = rep.values(|s| Some(s.p99_ms));
        // Each case against the HTTP/1.1 case with the same message bytes; the HTTP/1.1
        // cases against themselves (1.00×).
        let base_case = c.case.baseline().unwrap_or(c.case);
        let base = r
            .cells
            .iter()
            .find(|b| b.case == base_case && b.report.cell.size == rep.cell.size);
        // req/CPU-s ratio = inverse ratio of CPU per request, per round, then the median.
        let ratio = base.and_then(|b| round_ratio(&b.report.values(|s| s.cpu_ms_per_1k), &cpu));
        let p99_ratio = base.and_then(|b| round_ratio(&p99, &b.report.values(|s| Some(s.p99_ms))));
        // pyrogate's gRPC case against nginx carrying the same gRPC load.
        let vs_nginx = c.case.peer_of().and_then(|peer| {
            let n = r
                .cells
                .iter()
                .find(|b| b.case == peer && b.report.cell.size == rep.cell.size)?;
            round_ratio(&n.report.values(|s| s.cpu_ms_per_1k), &cpu)
        });
        let cpu_med = median_opt(&cpu);
        t.row(vec![
            table::size(rep.cell.size),
            rep.label.clone(),
            table::rate(rep.med(|s| Some(s.rps))),
            table::num(cpu_med.map(|m| m / 1000.0), 4),
            table::rate(cpu_med.and_then(stats::requests_per_cpu_s)),
            table::ratio(ratio),
            table::ratio(vs_nginx),
            table::num(rep.med(|s| s.cpu_user_pct), 0),
            table::num(rep.med(|s| Some(s.p50_ms)), 3),
            table::num(median_opt(&p99), 3),
            table::ratio(p99_ratio),
            suites::steal_text(rep),
            rep.failed().to_string(),
        ]);
    }
    format!(
        "\n== h2c: gRPC Push over h2c vs Connect Push over HTTP/1.1, pyrogate {} forwarding to one sink (closed loop, medians of {} rounds) ==\n{}\
         HTTP/1.1: {} keep-alive connections, Connect Push (application/proto, gzip'd or uncompressed). h2c: {}\n\
         concurrent streams over {} prior-knowledge HTTP/2 connections, the same PushRequest as one gRPC message,\n\
         uncompressed or gzip'd (grpc-encoding: gzip, the Connect body's bytes). req/CPU-s is the gateway's own CPU\n\
         time; ×HTTP/1.1 = median over rounds of (req/CPU-s ÷ the HTTP/1.1 case carrying the same bytes: uncompressed\n\
         against uncompressed, gzip'd against gzip'd), p99 ×HTTP/1.1 likewise for p99 latency (< 1.00: lower);\n\
         ×nginx grpc_pass = the same for pyrogate's gRPC case ÷ nginx (its worker's CPU) carrying the same gRPC load to\n\
         the sink over h2c (goals: h2c ≥ 0.90× HTTP/1.1, ≥ 1.20× nginx). A gRPC request is OK when HTTP 200 with\n\
         grpc-status 0.\n",
        runner::driver_name(&r.driver),
        cfg.runs,
        t.render(),
        r.streams,
        r.streams,
        r.h2_connections,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        assert_eq!(h2_connections(32), 4);
        assert_eq!(h2_connections(4), 1);
        assert_eq!(Case::Http1Connect.grpc(4), None);
        assert_eq!(
            Case::H2cGrpc.grpc(4),
            Some(GrpcOptions {
                h2_connections: 4,
                gzip: false
            })
        );
        assert_eq!(Case::H2cGrpcGzip.grpc(4).map(|g| g.gzip), Some(true));
        assert_eq!(Case::NginxGrpcGzip.grpc(4).map(|g| g.gzip), Some(true));
        assert_eq!(Case::NginxGrpc.grpc(4).map(|g| g.gzip), Some(false));
        assert_eq!(Case::H2cGrpc.peer_of(), Some(Case::NginxGrpc));
        assert_eq!(Case::H2cGrpcGzip.peer_of(), Some(Case::NginxGrpcGzip));
        assert_eq!(Case::Http1Connect.peer_of(), None);
        assert_eq!(Case::Http1ConnectPlain.grpc(4), None);
        assert_eq!(Case::H2cGrpc.baseline(), Some(Case::Http1ConnectPlain));
        assert_eq!(Case::H2cGrpcGzip.baseline(), Some(Case::Http1Connect));
        assert_eq!(Case::NginxGrpc.baseline(), Some(Case::Http1ConnectPlain));
        assert_eq!(Case::Http1Connect.baseline(), None);
        assert_eq!(Case::NginxGrpc.variant("io_uring"), Variant::NginxGrpc);
        assert_eq!(
            Case::H2cGrpc.variant("io_uring"),
            Variant::Pyrogate { driver: "io_uring" }
        );
        let mut labels: Vec<&str> = CASES.iter().map(|c| c.label()).collect();
        labels.dedup();
        assert_eq!(labels.len(), CASES.len());
    }

    #[test]
    fn http2_connections_from_metric_deltas() {
        let text = "pyrogate_http2_connections_total{setup=\"prior_knowledge\"} 4\n\
                    pyrogate_http2_connections_total{setup=\"upgrade\"} 0\n\
                    pyrogate_requests_total 9\n";
        let m = runner::parse_metrics(text, &SCRAPED);
        let s = Sample {
            gateway_metrics: m,
            ..Sample::default()
        };
        assert_eq!(h2_connections_seen(&s), Some(4.0));
        assert_eq!(h2_connections_seen(&Sample::default()), None);
    }
}
