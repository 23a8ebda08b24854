//! The summary and the verdict.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use super::ledger::SinkLedger;
use super::monitor::{Sample, slope};
use super::proxy::ProxyCounts;
use super::{Ctl, GwState, LogCounts, READ_TIMEOUT, SoakConfig, Tally, lock};

const MIB: f64 = 1024.0 * 1024.0;
/// A slowloris connection must be cut within this (from its connect; a flood can make it
/// wait in the backlog first).
pub fn slowloris_bound() -> Duration {
    READ_TIMEOUT * 2 + Duration::from_secs(5)
}
/// Fewest samples a slope is computed from.
const MIN_FIT_SAMPLES: usize = 10;

pub struct GatewayInput {
    pub state: Arc<GwState>,
    pub logs: LogCounts,
    pub exit: String,
}

pub struct Input<'a> {
    pub cfg: &'a SoakConfig,
    pub gateways: Vec<GatewayInput>,
    pub ledgers: &'a [SinkLedger],
    pub faults: BTreeMap<String, u64>,
    pub proxies: Vec<ProxyCounts>,
    pub sink_stats: Vec<Option<serde_json::Value>>,
    pub drained_after: Option<Duration>,
    pub drain_limit: Duration,
    pub fatal: Vec<String>,
}

/// One line every 30 s on stderr.
pub fn progress(ctl: &Ctl, gws: &[Arc<GwState>], faults: &Tally) -> String {
    let mut s = format!("soak: t={:.0}s", ctl.t());
    for g in gws {
        let o = g.outcomes.snapshot();
        let sent: u64 = o
            .iter()
            .filter(|(k, _)| !k.contains(' '))
            .map(|(_, v)| v)
            .sum();
        let last = g.samples().last().copied().unwrap_or_default();
        s.push_str(&format!(
            " | ack {}: {} sent, {} ok, RSS {:.1} MiB, {} fds",
            g.name,
            sent,
            o.get("200").copied().unwrap_or(0),
            last.rss as f64 / MIB,
            last.fds
        ));
    }
    let f = faults.snapshot();
    s.push_str(&format!(
        " | reloads {}",
        f.get("SIGHUP reloads").copied().unwrap_or(0)
    ));
    s
}

/// Acknowledged bodies of every gateway not (yet) at some sink.
pub fn missing_total(gws: &[Arc<GwState>], ledgers: &[SinkLedger]) -> u64 {
    gws.iter()
        .map(|g| {
            lock(&g.acked)
                .iter()
                .map(|(sum, _)| {
                    ledgers
                        .iter()
                        .filter(|l| !l.accepted.contains_key(sum))
                        .count() as u64
                })
                .sum::<u64>()
        })
        .sum()
}

/// Per gateway and sink: how the acknowledged bodies fared.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    pub acked: u64,
    pub delivered: u64,
    pub missing: u64,
    /// Copies beyond the first of acknowledged bodies.
    pub duplicates: u64,
    /// Bodies a sink accepted whose request was not answered 200 (timeouts, errors).
    pub unacked_delivered: u64,
    /// Missing examples: `(kind, checksum)`.
    pub examples: Vec<String>,
}

pub fn delivery(g: &GwState, l: &SinkLedger) -> Delivery {
    let acked = lock(&g.acked);
    let mut d = Delivery {
        acked: acked.len() as u64,
        ..Delivery::default()
    };
    let mut acked_set = std::collections::HashSet::with_capacity(acked.len());
    for (sum, kind) in acked.iter() {
        acked_set.insert(*sum);
        match l.accepted.get(sum).copied().unwrap_or(0) {
            0 => {
                d.missing += 1;
                if d.examples.len() < 5 {
                    d.examples.push(format!("{} {:016x}", kind.name(), sum));
                }
            }
            n => {
                d.delivered += 1;
                d.duplicates += u64::from(n - 1);
            }
        }
    }
    d.unacked_delivered = lock(&g.sent)
        .iter()
        .filter(|s| !acked_set.contains(*s) && l.accepted.contains_key(*s))
        .count() as u64;
    d
}

/// Smallest rise over the fit window that can fail a run: in a short run (the 60-s CI
/// variant fits 30 s) the limit per minute is raised so that the window must see at least
/// this much growth; from a 4-minute window on (a 10-minute run fits about 5) the limit
/// itself applies.
pub const MIN_RISE_RSS_MIB: f64 = 4.0;
pub const MIN_RISE_FDS: f64 = 4.0;

/// A fit over the last half of the samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fit {
    /// Per minute.
    pub slope: Option<f64>,
    pub samples: usize,
    pub windows: usize,
    pub window_s: f64,
    /// Minutes from the first to the last sample fitted.
    pub span_min: f64,
}

impl Fit {
    /// `limit` per minute, raised for short windows (see [`MIN_RISE_RSS_MIB`]).
    pub fn limit(&self, limit: f64, min_rise: f64) -> f64 {
        if self.span_min > 0.0 {
            limit.max(min_rise / self.span_min)
        } else {
            limit
        }
    }
}

/// Least-squares slope per minute of the floor of `value` over the last half of the
/// samples: samples taken during a flood are left out, the rest are cut into windows
/// (span/30, within 2–10 s) and each window is represented by its minimum. A leak raises
/// the floor; floods, outages and queue bursts raise the peaks.
pub fn late_fit(samples: &[Sample], value: impl Fn(&Sample) -> f64) -> Fit {
    let half: Vec<&Sample> = samples[samples.len() / 2..]
        .iter()
        .filter(|s| !s.flood)
        .collect();
    let (Some(first), Some(last)) = (half.first(), half.last()) else {
        return Fit::default();
    };
    let span = last.t - first.t;
    let w = (span / 30.0).clamp(2.0, 10.0);
    let mut floors: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for s in &half {
        let k = ((s.t - first.t) / w) as u64;
        let v = value(s);
        let e = floors.entry(k).or_insert((s.t, v));
        if v < e.1 {
            *e = (s.t, v);
        }
    }
    let pts: Vec<(f64, f64)> = floors.values().map(|(t, v)| (t / 60.0, *v)).collect();
    Fit {
        slope: if half.len() >= MIN_FIT_SAMPLES {
            slope(&pts)
        } else {
            None
        },
        samples: half.len(),
        windows: pts.len(),
        window_s: w,
        span_min: span / 60.0,
    }
}

fn fmt_map(m: &BTreeMap<String, u64>, filter: impl Fn(&str) -> bool) -> String {
    m.iter()
        .filter(|(k, _)| filter(k))
        .map(|(k, v)| format!("{k} ×{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn max_of(samples: &[Sample], f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
    samples.iter().filter_map(f).reduce(f64::max)
}

fn opt(v: Option<f64>, scale: f64, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{:.*}", digits, v / scale))
}

/// Prints the summary; returns whether the run passed.
pub fn render(inp: &Input<'_>, out: &mut impl Write) -> std::io::Result<bool> {
    let cfg = inp.cfg;
    let mut fails: Vec<String> = inp.fatal.clone();

    writeln!(
        out,
        "\n== requests (tracked: agent-shaped, unique bodies, {} clients and ≤ {} req/s per gateway) ==",
        cfg.clients, cfg.rate
    )?;
    for g in &inp.gateways {
        let o = g.state.outcomes.snapshot();
        let sent: u64 = o
            .iter()
            .filter(|(k, _)| !k.contains(' '))
            .map(|(_, v)| v)
            .sum();
        writeln!(
            out,
            "ack {:<8} {sent} sent: {}",
            g.state.name,
            fmt_map(&o, |k| !k.contains(' '))
        )?;
        let by_kind: Vec<String> = super::traffic::Kind::ALL
            .iter()
            .map(|k| {
                let n: u64 = o
                    .iter()
                    .filter(|(key, _)| key.starts_with(&format!("{} ", k.name())))
                    .map(|(_, v)| v)
                    .sum();
                let ok = o.get(&format!("{} 200", k.name())).copied().unwrap_or(0);
                format!("{} {ok}/{n}", k.name())
            })
            .collect();
        writeln!(out, "             200s by kind: {}", by_kind.join(", "))?;
    }

    writeln!(out, "\n== faults injected ==")?;
    writeln!(
        out,
        "sink states: {}",
        fmt_map(&inp.faults, |k| !k.starts_with("SIGHUP")
            && !k.contains("failed"))
    )?;
    let p = inp
        .proxies
        .iter()
        .fold(ProxyCounts::default(), |a, c| ProxyCounts {
            accepted: a.accepted + c.accepted,
            resets: a.resets + c.resets,
            slow: a.slow + c.slow,
            over_capacity: a.over_capacity + c.over_capacity,
        });
    writeln!(
        out,
        "proxies: {} connections, {} reset, {} slow-read, {} refused over capacity",
        p.accepted, p.resets, p.slow, p.over_capacity
    )?;
    for (i, s) in inp.sink_stats.iter().enumerate() {
        if let Some(s) = s {
            writeln!(
                out,
                "sink {i}: injected errors {}, hangs {}, delayed {}; answers {}",
                s["injected"]["errors"],
                s["injected"]["hangs"],
                s["injected"]["delayed"],
                s["status"]
            )?;
        }
    }
    let sighups = inp.faults.get("SIGHUP reloads").copied().unwrap_or(0);
    writeln!(
        out,
        "SIGHUP: {sighups} sent; {}",
        inp.gateways
            .iter()
            .map(|g| format!(
                "ack {} reloaded {} rejected {}",
                g.state.name,
                g.logs.reloaded,
                g.logs.reload_rejected.len()
            ))
            .collect::<Vec<_>>()
            .join("; ")
    )?;
    let failed_ops = fmt_map(&inp.faults, |k| k.contains("failed"));
    if !failed_ops.is_empty() {
        writeln!(out, "soak's own failed operations: {failed_ops}")?;
    }
    for g in &inp.gateways {
        let a = g.state.abuse.snapshot();
        let fl = lock(&g.state.flood).clone();
        let sl = lock(&g.state.slow).clone();
        writeln!(out, "ack {}:", g.state.name)?;
        writeln!(
            out,
            "  mid-body disconnects: {}",
            fmt_map(&a, |k| k.starts_with("midbody")).replace("midbody: ", "")
        )?;
        writeln!(
            out,
            "  slowloris: {} opened, {} cut by the gateway (mean {:.1} s, max {:.1} s; server_read_timeout {} s), {} not cut; {}",
            a.get("slowloris: opened").copied().unwrap_or(0),
            sl.cut,
            if sl.cut > 0 {
                sl.hold_sum.as_secs_f64() / sl.cut as f64
            } else {
                0.0
            },
            sl.max_hold.as_secs_f64(),
            READ_TIMEOUT.as_secs(),
            sl.survived,
            fmt_map(&a, |k| k.starts_with("slowloris")
                && k != "slowloris: opened")
            .replace("slowloris: ", "")
        )?;
        writeln!(
            out,
            "  floods: {} × {} connections (limit {}): {} opened, {} health checks answered while held, {} connects failed",
            fl.floods, cfg.flood, cfg.conn_limit, fl.opened, fl.answered, fl.connect_failed
        )?;
        writeln!(
            out,
            "  malformed: {}",
            fmt_map(&a, |k| k.starts_with("malformed")).replace("malformed: ", "")
        )?;
        if sl.survived > 0 || sl.max_hold > slowloris_bound() {
            fails.push(format!(
                "ack {}: a slowloris connection lived {:.1} s (bound {} s), {} not cut at all",
                g.state.name,
                sl.max_hold.as_secs_f64(),
                slowloris_bound().as_secs(),
                sl.survived
            ));
        }
    }

    writeln!(out, "\n== samples (every second) ==")?;
    for g in &inp.gateways {
        let s = g.state.samples();
        let (first, last) = (
            s.first().copied().unwrap_or_default(),
            s.last().copied().unwrap_or_default(),
        );
        let max_rss = s.iter().map(|x| x.rss).max().unwrap_or(0);
        let max_fds = s.iter().map(|x| x.fds).max().unwrap_or(0);
        let max_conns = max_of(&s, |x| x.conns);
        writeln!(
            out,
            "ack {:<8} {} samples; RSS first {:.1} / last {:.1} / max {:.1} MiB; fds first {} / last {} / max {} (live TCP connections max {}); connections max {} (limit {}); queue max {} MiB; spool max {} MiB",
            g.state.name,
            s.len(),
            first.rss as f64 / MIB,
            last.rss as f64 / MIB,
            max_rss as f64 / MIB,
            first.fds,
            last.fds,
            max_fds,
            s.iter().map(|x| x.estab).max().unwrap_or(0),
            opt(max_conns, 1.0, 0),
            cfg.conn_limit,
            opt(max_of(&s, |x| x.queue), MIB, 1),
            opt(max_of(&s, |x| x.spool), MIB, 1),
        )?;
        let rss = late_fit(&s, |x| x.rss as f64 / MIB);
        let idle = late_fit(&s, |x| x.fds.saturating_sub(x.estab) as f64);
        let all_fds = late_fit(&s, |x| x.fds as f64);
        let rss_limit = rss.limit(cfg.max_rss_slope, MIN_RISE_RSS_MIB);
        let fd_limit = idle.limit(cfg.max_fd_slope, MIN_RISE_FDS);
        writeln!(
            out,
            "             slopes of the floor over the last half ({} samples, floods left out, minimum of each {:.0}-s window): RSS {} MiB/min (limit {rss_limit:.1}), fds not held by live connections {} /min (limit {fd_limit:.1}); all fds {} /min (not judged: live connections are bounded by the limits below)",
            rss.samples,
            rss.window_s,
            opt(rss.slope, 1.0, 3),
            opt(idle.slope, 1.0, 2),
            opt(all_fds.slope, 1.0, 2),
        )?;
        match (rss.slope, idle.slope) {
            (Some(r), Some(f)) => {
                if r > rss_limit {
                    fails.push(format!(
                        "ack {}: RSS grows {r:.3} MiB/min (limit {rss_limit:.1})",
                        g.state.name
                    ));
                }
                if f > fd_limit {
                    fails.push(format!(
                        "ack {}: open fds not held by live connections grow {f:.2}/min (limit {fd_limit:.1})",
                        g.state.name
                    ));
                }
            }
            _ => fails.push(format!(
                "ack {}: too few samples for the slopes ({})",
                g.state.name, rss.samples
            )),
        }
        let max_estab = s.iter().map(|x| x.estab).max().unwrap_or(0);
        let bound = super::established_bound(cfg.conn_limit);
        if max_estab > bound {
            fails.push(format!(
                "ack {}: {max_estab} live TCP connections at once, above conn_limit + the forwarding pools ({bound})",
                g.state.name
            ));
        }
        if let Some(c) = max_conns
            && c > cfg.conn_limit as f64
        {
            fails.push(format!(
                "ack {}: {c} connections accepted, above conn_limit {}",
                g.state.name, cfg.conn_limit
            ));
        }
        let h = lock(&g.state.health).clone();
        writeln!(
            out,
            "             health: {} checks ok (max {} ms), {} failed, {} fresh connections waited out a flood, {} scrapes failed",
            h.ok,
            h.max_latency.as_millis(),
            h.failures.len(),
            h.waited,
            h.scrape_failures
        )?;
        if !h.failures.is_empty() {
            let first: Vec<String> = h
                .failures
                .iter()
                .take(5)
                .map(|(t, w)| format!("t={t:.1}s {w}"))
                .collect();
            fails.push(format!(
                "ack {}: {} health checks failed (first: {})",
                g.state.name,
                h.failures.len(),
                first.join("; ")
            ));
        }
    }

    writeln!(out, "\n== acknowledged vs delivered ==")?;
    match inp.drained_after {
        Some(d) => writeln!(
            out,
            "every acknowledged body was at both sinks {:.1} s after the traffic stopped",
            d.as_secs_f64()
        )?,
        None => writeln!(
            out,
            "not every acknowledged body reached both sinks within {} s after the traffic stopped",
            inp.drain_limit.as_secs()
        )?,
    }
    for g in &inp.gateways {
        for (i, l) in inp.ledgers.iter().enumerate() {
            let d = delivery(&g.state, l);
            writeln!(
                out,
                "ack {:<8} sink {i}: acknowledged {}, delivered {}, missing {}, duplicate copies {}, delivered but not acknowledged {}",
                g.state.name, d.acked, d.delivered, d.missing, d.duplicates, d.unacked_delivered
            )?;
            if d.missing > 0 {
                fails.push(format!(
                    "ack {}: {} acknowledged bodies missing at sink {i} (e.g. {})",
                    g.state.name,
                    d.missing,
                    d.examples.join(", ")
                ));
            }
        }
        if lock(&g.state.acked).is_empty() {
            fails.push(format!("ack {}: no request was acknowledged", g.state.name));
        }
    }
    for (i, l) in inp.ledgers.iter().enumerate() {
        let (mut unknown, mut truncated) = (0u64, 0u64);
        for sum in l.accepted.keys() {
            let known = inp
                .gateways
                .iter()
                .any(|g| lock(&g.state.sent).contains(sum));
            if !known {
                unknown += 1;
                if inp
                    .gateways
                    .iter()
                    .any(|g| lock(&g.state.prefixes).contains(sum))
                {
                    truncated += 1;
                }
            }
        }
        writeln!(
            out,
            "sink {i}: {} records read in {} polls, answers {}; accepted bodies nobody sent whole: {unknown} (truncated prefixes: {truncated})",
            l.statuses.values().sum::<u64>(),
            l.polls,
            fmt_map(&l.statuses, |_| true),
        )?;
        if unknown > 0 {
            fails.push(format!("sink {i} accepted {unknown} bodies nobody sent whole ({truncated} truncated prefixes)"));
        }
        if l.lost > 0 {
            fails.push(format!(
                "sink {i}: {} records left its ring unread (raise --records)",
                l.lost
            ));
        }
    }

    writeln!(out, "\n== gateways ==")?;
    for g in &inp.gateways {
        writeln!(
            out,
            "ack {:<8} {}; {} log lines; warnings/errors: {}",
            g.state.name,
            g.exit,
            g.logs.lines,
            if g.logs.notable.is_empty() {
                "none".into()
            } else {
                fmt_map(&g.logs.notable, |_| true)
            }
        )?;
        if !g.exit.starts_with("exit 0") {
            fails.push(format!("ack {}: {}", g.state.name, g.exit));
        }
        if !g.logs.panics.is_empty() {
            fails.push(format!(
                "ack {}: panicked: {}",
                g.state.name, g.logs.panics[0]
            ));
        }
        if !g.logs.reload_rejected.is_empty() {
            fails.push(format!(
                "ack {}: {} reloads rejected ({})",
                g.state.name,
                g.logs.reload_rejected.len(),
                g.logs.reload_rejected[0]
            ));
        }
        if sighups > 0 && g.logs.reloaded == 0 {
            fails.push(format!("ack {}: no reload logged", g.state.name));
        }
        for p in lock(&g.state.problems).iter() {
            fails.push(format!("ack {}: {p}", g.state.name));
        }
    }

    writeln!(out)?;
    if fails.is_empty() {
        writeln!(out, "verdict: PASS")?;
        Ok(true)
    } else {
        writeln!(out, "verdict: FAIL")?;
        for f in &fails {
            writeln!(out, "  - {f}")?;
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, rss_mib: f64, flood: bool) -> Sample {
        Sample {
            t,
            rss: (rss_mib * MIB) as u64,
            flood,
            ..Sample::default()
        }
    }

    #[test]
    fn the_fit_follows_the_floor_and_skips_floods() {
        // 10 minutes: a flat floor of 30 MiB with bursts to 50 every 7 s and floods to 90.
        let flat: Vec<Sample> = (0..600)
            .map(|i| {
                let t = f64::from(i);
                match i {
                    _ if i % 20 < 3 => sample(t, 90.0, true),
                    _ if i % 7 == 0 => sample(t, 50.0, false),
                    _ => sample(t, 30.0, false),
                }
            })
            .collect();
        let fit = late_fit(&flat, |s| s.rss as f64 / MIB);
        assert!(fit.slope.expect("slope").abs() < 0.01, "{fit:?}");
        assert!((fit.window_s - 10.0).abs() < 0.5, "{fit:?}");
        assert!((fit.limit(1.0, MIN_RISE_RSS_MIB) - 1.0).abs() < 1e-9);
        // A leak of 2 MiB/min under the same bursts is seen.
        let leak: Vec<Sample> = flat
            .iter()
            .map(|s| sample(s.t, s.rss as f64 / MIB + 2.0 * s.t / 60.0, s.flood))
            .collect();
        let fit = late_fit(&leak, |s| s.rss as f64 / MIB);
        assert!((fit.slope.expect("slope") - 2.0).abs() < 0.1, "{fit:?}");
        // A 60-s run fits 2-s windows and needs 5 MiB over its half minute.
        let short: Vec<Sample> = (0..60).map(|i| sample(f64::from(i), 30.0, false)).collect();
        let fit = late_fit(&short, |s| s.rss as f64 / MIB);
        assert!((fit.window_s - 2.0).abs() < 1e-9);
        assert!(fit.limit(1.0, MIN_RISE_RSS_MIB) > 7.0);
        assert!(late_fit(&short[..8], |s| s.rss as f64).slope.is_none());
    }
}
