//! The `distributor` suite: what the edge distributor costs on the forwarding path. The
//! forwarding case at fan-out 1 runs through pyrogate twice per driver and round, as a
//! pass-through (no configuration) and with `[distributor] validate = true, normalize =
//! true` ([`gateway_config::DISTRIBUTOR`]), on the same requests; the table gives pyrogate's requests per
//! CPU-second for both and the validating gateway's share of the pass-through figure.
//!
//! The profiles are the synthetic ones of the other suites (a generated CPU profile of the
//! chosen gzip'd size, with zero-valued and duplicate samples, so normalisation rewrites
//! every one), but stamped with the current time before each run: the generator's fixed
//! timestamp would fall outside the ingestion window (now − 1 h … now + 10 min) and the
//! validating gateway would refuse every request. The bodies are written in the layout of
//! a captured corpus and sent as [`Source::Captured`] (`--protocol push` or
//! `ingest-pprof`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pyrogate_testdata::gz::gzip;
use pyrogate_testdata::pprof::{self, Kind};
use pyrogate_testdata::push;

use super::BenchConfig;
use super::gateway_config;
use super::runner::{Cell, Ctx, Sinks, Variant};
use super::stats::{self, median_opt, round_ratio};
use super::suites::{self, CellReport};
use super::table::{self, Table};
use crate::load::payload::{self, Options, Protocol, Source};
use crate::probe;
use crate::process::SpawnOpts;
use crate::process::children::{Gateway, GatewayOpts};

/// Seed of the generated profiles (the other suites' synthetic payloads use 1 too).
const SEED: u64 = 1;

/// Service name of the Push series (the Push payload of the other suites uses it too).
const SERVICE: &str = "loadtest.python.app";

/// The requests of one profile size, re-stamped with the current time on demand.
struct Fresh {
    sized: pprof::Sized,
    dir: PathBuf,
}

impl Fresh {
    fn new(tmp: &Path, size: usize) -> Result<Self, String> {
        let sized = pprof::sized(size, SEED, Kind::Cpu).map_err(|e| e.to_string())?;
        let dir = tmp.join(format!("distributor-payload-{size}"));
        std::fs::create_dir_all(dir.join("clients"))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Self { sized, dir })
    }

    /// Writes the bodies with the profile's `time_nanos` set to now: a pyroscope-io Push
    /// (gzip'd request, plain `raw_profile`, as the synthetic Push payload) and a Node.js
    /// `/ingest` body (the gzip'd profile).
    fn source(&self) -> Result<Source, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?;
        let nanos = i64::try_from(now.as_nanos()).map_err(|e| e.to_string())?;
        let plain = self.sized.spec.clone().time(nanos).plain();
        let mut series = push::python_series(SEED, SERVICE);
        series.samples[0].raw_profile = plain.clone();
        let write = |rel: &str, bytes: Vec<u8>| {
            let path = self.dir.join(rel);
            std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))
        };
        write(
            "clients/pyroscope-io-1.4.0-push.bin",
            gzip(&push::encode(&[series])),
        )?;
        write(
            "clients/pyroscope-nodejs-0.6.4-ingest-wall.bin",
            gzip(&plain),
        )?;
        Ok(Source::Captured(self.dir.clone()))
    }
}

/// Runs the suite: per size, pass-through and validating pyrogate on every driver,
/// interleaved over the rounds, forwarding to one sink.
pub fn run(
    ctx: &Ctx<'_>,
    failures: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<Vec<CellReport>, String> {
    let cfg = ctx.cfg;
    if !matches!(cfg.protocol, Protocol::Push | Protocol::IngestPprof) {
        return Err(format!(
            "the distributor suite sends pprof profiles: use --protocol push or ingest-pprof (not {})",
            cfg.protocol.name()
        ));
    }
    let sinks = Sinks::start(ctx, 1)?;
    eprintln!("distributor: sink on {}", sinks.urls(1).join(", "));
    let mut payloads = BTreeMap::new();
    for &size in &cfg.sizes {
        let fresh = Fresh::new(ctx.tmp, size)?;
        check_rewrites(ctx, &sinks, &fresh)
            .map_err(|e| format!("distributor: the validating gateway does not work here: {e}"))?;
        payloads.insert(size, fresh);
    }
    let groups: Vec<Vec<Cell>> = cfg
        .sizes
        .iter()
        .map(|&size| {
            ctx.drivers
                .iter()
                .flat_map(|d| {
                    [
                        Variant::Pyrogate { driver: d },
                        Variant::PyrogateDistributor { driver: d },
                    ]
                })
                .map(|variant| Cell {
                    variant,
                    fanout: 1,
                    size,
                })
                .collect()
        })
        .collect();
    let payload = |c: &Cell| match payloads.get(&c.size) {
        Some(p) => p.source(),
        None => Err(format!("no payload of {} B", c.size)),
    };
    let cells = suites::run_groups_with(
        ctx,
        "distributor",
        groups,
        Some(&sinks),
        None,
        failures,
        &payload,
    );
    for c in &cells {
        if let Some(d) = c.med(|s| s.delivered)
            && d < 0.999
        {
            notes.push(format!(
                "distributor {} {}: the sink received only {:.2}% of the expected profiles",
                table::size(c.cell.size),
                c.label,
                d * 100.0
            ));
        }
    }
    Ok(cells)
}

/// One request through a validating gateway before anything is measured: it must be
/// accepted, and normalisation must have rewritten its profile (a refused or untouched
/// profile would make the comparison meaningless).
fn check_rewrites(ctx: &Ctx<'_>, sinks: &Sinks, fresh: &Fresh) -> Result<(), String> {
    let cfg = ctx.cfg;
    let config = gateway_config::write_distributor(ctx.tmp)?;
    let gw = Gateway::start(&GatewayOpts {
        bin: cfg.gateway_bin.clone(),
        driver: "legacy".into(),
        workers: 1,
        forward_to: sinks.urls(1),
        extra: vec!["--config".into(), config.display().to_string()],
        spawn: SpawnOpts {
            cpus: cfg.layout.gateway_cpus.clone(),
            nofile: None,
        },
    })?;
    let target = payload::parse_target(&gw.url())?;
    let opts = Options {
        source: fresh.source()?,
        seed: SEED,
        tenant: None,
        now_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let req = payload::prepare(cfg.protocol, &target, &opts)?;
    let raw = &req.first().ok_or("no request")?.bytes;
    let timeout = Duration::from_secs(10);
    let answer = probe::Client::connect(gw.addr, timeout)?.send(raw)?;
    if answer.status != 200 {
        return Err(format!(
            "{} answered {}: {}",
            cfg.protocol.name(),
            answer.status,
            String::from_utf8_lossy(&answer.body)
        ));
    }
    let metrics = probe::get(gw.addr, "/metrics", timeout)?;
    let normalized = String::from_utf8_lossy(&metrics.body)
        .lines()
        .find_map(|l| l.strip_prefix("pyrogate_normalized_profiles_total "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    if normalized != Some(1.0) {
        return Err(format!(
            "pyrogate_normalized_profiles_total is {normalized:?} after one request, expected 1"
        ));
    }
    Ok(())
}

/// The suite's table.
pub fn render(cfg: &BenchConfig, cells: &[CellReport]) -> String {
    let mut t = Table::new(&[
        ("size", true),
        ("path", true),
        ("req/s", false),
        ("CPU-s/1k req", false),
        ("req/CPU-s", false),
        ("×pass-through", false),
        ("user %", false),
        ("p50 ms", false),
        ("p99 ms", false),
        ("steal % med (max)", false),
        ("failed", false),
    ]);
    for c in cells {
        let cpu = c.values(|s| s.cpu_ms_per_1k);
        let base = match &c.cell.variant {
            Variant::PyrogateDistributor { driver } => cells.iter().find(|b| {
                b.cell.variant == Variant::Pyrogate { driver } && b.cell.size == c.cell.size
            }),
            _ => None,
        };
        // req/CPU-s ratio = inverse ratio of CPU per request, per round, then the median.
        let ratio = base.and_then(|b| round_ratio(&b.values(|s| s.cpu_ms_per_1k), &cpu));
        let cpu_med = median_opt(&cpu);
        t.row(vec![
            table::size(c.cell.size),
            c.label.clone(),
            table::rate(c.med(|s| Some(s.rps))),
            table::num(cpu_med.map(|m| m / 1000.0), 4),
            table::rate(cpu_med.and_then(stats::requests_per_cpu_s)),
            table::ratio(ratio),
            table::num(c.med(|s| s.cpu_user_pct), 0),
            table::num(c.med(|s| Some(s.p50_ms)), 3),
            table::num(c.med(|s| Some(s.p99_ms)), 3),
            suites::steal_text(c),
            c.failed().to_string(),
        ]);
    }
    format!(
        "\n== distributor: forwarding through pyrogate, pass-through vs validate + normalize (closed loop, {} connections, {}, fan-out 1) ==\n{}\
         +distributor: [distributor] validate = true, normalize = true (rate limit far above the load). Every\n\
         profile is stamped with the current time before each run and has zero-valued and duplicate samples, so\n\
         each one is decoded, validated, normalised and re-encoded. req/CPU-s is pyrogate's own CPU time;\n\
         ×pass-through = median over rounds of (validating req/CPU-s ÷ pass-through req/CPU-s), same driver\n\
         and size (goal ≥ 0.60).\n",
        cfg.connections,
        cfg.protocol.name(),
        t.render()
    )
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use pyrogate::protocol::pprof as decoder;
    use pyrogate_testdata::gz::gunzip;

    use super::*;

    /// Both bodies carry the same profile, stamped within the last minute.
    #[test]
    fn payloads_carry_the_current_time() {
        let tmp = std::env::temp_dir().join(format!("pyrogate-distributor-{}", std::process::id()));
        let fresh = Fresh::new(&tmp, 4096).expect("generates");
        let Source::Captured(dir) = fresh.source().expect("writes") else {
            panic!("a captured-layout source")
        };
        let read = |rel: &str| std::fs::read(dir.join(rel)).expect("written");
        let push = read("clients/pyroscope-io-1.4.0-push.bin");
        let series = push::decode(&gunzip(&push).expect("gzip")).expect("a PushRequest");
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].label("service_name"), Some(SERVICE));
        let raw = Bytes::from(series[0].samples[0].raw_profile.clone());
        let from_push = decoder::decode(raw, decoder::Limits::default()).expect("plain pprof");
        let ingest = Bytes::from(read("clients/pyroscope-nodejs-0.6.4-ingest-wall.bin"));
        let from_ingest =
            decoder::decode_bytes(&ingest, decoder::Limits::default()).expect("gzip'd pprof");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_nanos() as i64;
        for p in [&from_push, &from_ingest] {
            assert!(
                (0..60_000_000_000).contains(&(now - p.time_nanos)),
                "{}",
                p.time_nanos
            );
            assert_eq!(p.samples.len(), fresh.sized.spec.samples);
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
