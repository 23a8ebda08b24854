//! Command line: `pyrogate-load sink …` and `pyrogate-load run …`. Every flag is validated
//! when the configuration is built, so a bad value fails at start-up with one line naming it.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pyrogate::config::DriverChoice;
use pyrogate::config::units::{parse_duration, parse_size};

use crate::bench::{BenchConfig, Layout, Suite};
use crate::demo::DemoConfig;
use crate::load::h2::GrpcOptions;
use crate::load::payload::{Protocol, Source};
use crate::load::tls::TlsOptions;
use crate::load::{MAX_DURATION, RunConfig};
use crate::sink::SinkConfig;
use crate::sink::check::Checks;
use crate::sink::faults::{FaultConfig, InjectedError};

#[derive(Debug, Parser)]
#[command(
    name = "pyrogate-load",
    version,
    about = "Load generator and Pyroscope-compatible sink for pyrogate"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a Pyroscope-compatible receiver (prints `listening on ADDR` once ready).
    Sink(SinkArgs),
    /// Drive a target with real Pyroscope traffic and report rate and latency.
    Run(RunArgs),
    /// Start sinks and the workspace's `pyrogate` in front of them, send real SDK traffic
    /// through it, show what arrived, then a short load run.
    Demo(DemoArgs),
    /// Compare pyrogate with nginx on this machine: forwarding, receive-only, latency at
    /// half saturation, idle-connection memory (see `scripts/bench.sh`).
    Bench(BenchArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Driver {
    Auto,
    #[value(name = "io_uring", alias = "iouring")]
    IoUring,
    #[value(alias = "epoll")]
    Legacy,
}

impl Driver {
    /// The value of pyrogate's and the sink's `--driver` flag.
    pub fn flag(self) -> &'static str {
        match self {
            Driver::Auto => "auto",
            Driver::IoUring => "io_uring",
            Driver::Legacy => "legacy",
        }
    }
}

impl From<Driver> for DriverChoice {
    fn from(d: Driver) -> Self {
        match d {
            Driver::Auto => DriverChoice::Auto,
            Driver::IoUring => DriverChoice::IoUring,
            Driver::Legacy => DriverChoice::Legacy,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PayloadKind {
    /// The project's own agent-shaped requests, sized like the agents' (default).
    Generated,
    /// A generated pprof of `--profile-size` bytes in every profile body.
    Synthetic,
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

fn size(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

fn addr(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .map_err(|e| format!("{s:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{s:?} resolves to nothing"))
}

#[derive(Debug, Args)]
pub struct SinkArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:4040", value_parser = addr)]
    pub listen: SocketAddr,
    /// Worker threads (each with its own runtime and accept shard).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    #[arg(long, value_enum, default_value_t = Driver::Auto)]
    pub driver: Driver,
    /// `full`: decode and check bodies like Pyroscope; `none`: accept unread (benchmarks).
    #[arg(long, value_enum, default_value_t = Checks::Full)]
    pub checks: Checks,
    /// Do not checksum bodies (`body_fnv` null, `checksum_sum` 0): FNV-1a costs ~1.8 ns per
    /// byte, most of the sink's CPU at 16 KiB bodies; for throughput benchmarks.
    #[arg(long)]
    pub no_checksum: bool,
    /// Delay every answer on the profile routes by this much.
    #[arg(long, default_value = "0", value_parser = duration)]
    pub latency: Duration,
    /// Fraction of profile requests answered with --error-status.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    #[arg(long, default_value_t = 503)]
    pub error_status: u16,
    /// Fraction of profile requests never answered (until --hang-for passes).
    #[arg(long, default_value_t = 0.0)]
    pub hang_rate: f64,
    /// How long a hung request is held before the sink gives up on it (503, close).
    #[arg(long, default_value = "300s", value_parser = duration)]
    pub hang_for: Duration,
    /// Largest request body.
    #[arg(long, default_value = "64MiB", value_parser = size)]
    pub max_body: u64,
    /// Largest inflated pprof/JFR (Pyroscope's max_profile_size_bytes).
    #[arg(long, default_value = "4MiB", value_parser = size)]
    pub max_profile_size: u64,
    /// Request records kept for /stats?records=1 (0 disables).
    #[arg(long, default_value_t = crate::sink::DEFAULT_RECORDS)]
    pub records: usize,
    /// Memory budget of the record ring.
    #[arg(long, default_value = "64MiB", value_parser = size)]
    pub records_max_bytes: u64,
    /// Open connections across all workers; more wait in the listen backlog.
    #[arg(long, default_value_t = crate::sink::DEFAULT_MAX_CONNS)]
    pub max_conns: usize,
    /// Close keep-alive connections idle this long.
    #[arg(long, default_value = "120s", value_parser = duration)]
    pub idle_timeout: Duration,
    /// Exit after this long (a safety net for scripts).
    #[arg(long, value_parser = duration)]
    pub exit_after: Option<Duration>,
    /// Write every profile received to DIR/<fnv1a64>.pprof (tests inspect what arrived).
    #[arg(long, value_name = "DIR")]
    pub keep_profiles: Option<std::path::PathBuf>,
}

impl SinkArgs {
    pub fn config(&self) -> Result<SinkConfig, String> {
        let cfg = SinkConfig {
            listen: self.listen,
            workers: self.workers,
            driver: self.driver.into(),
            checks: self.checks,
            checksum: !self.no_checksum,
            faults: FaultConfig {
                latency: self.latency,
                error_rate: self.error_rate,
                error: InjectedError::new(self.error_status),
                hang_rate: self.hang_rate,
            },
            hang_for: self.hang_for,
            max_body: self.max_body,
            max_profile: usize::try_from(self.max_profile_size).map_err(|e| e.to_string())?,
            records: self.records,
            records_max_bytes: usize::try_from(self.records_max_bytes)
                .map_err(|e| e.to_string())?,
            max_conns: self.max_conns,
            idle_timeout: self.idle_timeout,
            ..SinkConfig::default()
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Base URL, e.g. http://127.0.0.1:4040 or https://localhost:4040 (paths /ingest and
    /// /push.v1… are appended).
    #[arg(long)]
    pub target: String,
    #[arg(long, value_enum, default_value_t = Protocol::Push)]
    pub protocol: Protocol,
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Total requests per second (open loop, latency from intended send times); closed loop
    /// when absent.
    #[arg(long)]
    pub rate: Option<f64>,
    /// How long to run (at most 1h).
    #[arg(long, value_parser = duration)]
    pub duration: Option<Duration>,
    /// How many requests to send.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Per-request timeout.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub timeout: Duration,
    #[arg(long, value_enum, default_value_t = PayloadKind::Generated)]
    pub payload: PayloadKind,
    /// Size of the synthetic gzip'd pprof (implies --payload synthetic).
    #[arg(long, value_parser = size)]
    pub profile_size: Option<u64>,
    /// Seed for synthetic payloads, IDs and boundaries.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// X-Scope-OrgID to send.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Send captured requests from this directory (`clients/`, `pprof/`, `jfr/`) instead
    /// of generated ones.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["payload", "profile_size"])]
    pub fixtures: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Driver::Auto)]
    pub driver: Driver,
    /// Threads (default: min(cores, connections)).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No per-second progress lines.
    #[arg(long)]
    pub quiet: bool,
    /// Open a new connection after every N responses (1: one connection, and with TLS one
    /// handshake, per request); default: keep connections open.
    #[arg(long, value_name = "N")]
    pub reconnect_every: Option<u64>,
    /// https:// target: trust the CA certificate(s) of this PEM file.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// https:// target: do not verify the server's certificate (benchmarks; the handshake
    /// signature is still checked).
    #[arg(long, conflicts_with = "tls_ca")]
    pub tls_insecure: bool,
    /// https:// target: the name to send (SNI) and verify (default: the target's host).
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// https:// target: no TLS session resumption (every new connection makes a full
    /// handshake).
    #[arg(long)]
    pub tls_no_resume: bool,
    /// Send Push as gRPC (`/push.v1.PusherService/Push`, `application/grpc`) over this many
    /// cleartext HTTP/2 connections; `--connections` is then the number of concurrent
    /// streams, spread over them. Needs `--protocol push` and an http:// target.
    #[arg(long, value_name = "N")]
    pub h2c_connections: Option<usize>,
    /// With `--h2c-connections`: send the gzip'd PushRequest (`grpc-encoding: gzip`) instead
    /// of the plain one.
    #[arg(long, requires = "h2c_connections")]
    pub grpc_gzip: bool,
}

impl RunArgs {
    /// The gRPC-over-h2c options (`--h2c-connections`), checked against `cfg`.
    pub fn grpc(&self, cfg: &RunConfig) -> Result<Option<GrpcOptions>, String> {
        let Some(n) = self.h2c_connections else {
            return Ok(None);
        };
        let g = GrpcOptions {
            h2_connections: n,
            gzip: self.grpc_gzip,
        };
        g.validate(cfg)?;
        Ok(Some(g))
    }
}

/// Default synthetic size when `--payload synthetic` is given without `--profile-size`.
pub const DEFAULT_PROFILE_SIZE: u64 = 16 * 1024;

impl RunArgs {
    pub fn config(&self) -> Result<RunConfig, String> {
        let source = match (&self.fixtures, self.payload, self.profile_size) {
            (Some(dir), _, _) => {
                crate::fixtures::check_dir(dir)?;
                Source::Captured(dir.clone())
            }
            (None, PayloadKind::Generated, None) => Source::Generated,
            (None, _, size) => Source::Synthetic {
                size: usize::try_from(size.unwrap_or(DEFAULT_PROFILE_SIZE))
                    .map_err(|e| e.to_string())?,
            },
        };
        let cfg = RunConfig {
            target: self.target.clone(),
            protocol: self.protocol,
            connections: self.connections,
            rate: self.rate,
            duration: self.duration,
            requests: self.requests,
            timeout: self.timeout,
            source,
            seed: self.seed,
            tenant: self.tenant.clone(),
            driver: self.driver.into(),
            threads: self.threads,
            progress: !self.quiet,
            reconnect_every: self.reconnect_every,
            tls: TlsOptions {
                ca: self.tls_ca.clone(),
                insecure: self.tls_insecure,
                server_name: self.tls_server_name.clone(),
                no_resume: self.tls_no_resume,
            },
        };
        cfg.validate()?;
        if cfg.duration.is_none() {
            eprintln!(
                "run: no --duration; the run stops after {} requests or {} s",
                cfg.requests.unwrap_or(0),
                MAX_DURATION.as_secs()
            );
        }
        Ok(cfg)
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Also send the captured requests of this directory (`clients/`, `pprof/`, `jfr/`),
    /// after the project's own generated corpus.
    #[arg(long, value_name = "DIR")]
    pub fixtures: Option<PathBuf>,
    /// The gateway binary (default: `pyrogate` next to this executable).
    #[arg(long)]
    pub gateway: Option<PathBuf>,
    /// The gateway's I/O driver.
    #[arg(long, value_enum, default_value_t = Driver::Auto)]
    pub driver: Driver,
    /// Downstream sinks (fan-out), 1–4.
    #[arg(long, default_value_t = 2)]
    pub sinks: usize,
    /// Length of each of the two load runs (direct, through the gateway), at most 60 s.
    #[arg(long, default_value = "3s", value_parser = duration)]
    pub duration: Duration,
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
}

impl DemoArgs {
    pub fn config(&self) -> Result<DemoConfig, String> {
        let cfg = DemoConfig {
            fixtures: self.fixtures.clone(),
            gateway: self.gateway.clone(),
            driver: self.driver.flag().to_owned(),
            sinks: self.sinks,
            duration: self.duration,
            connections: self.connections,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Smoke test: one short run per cell, 1,000 idle connections (about 2 minutes).
    #[arg(long)]
    pub quick: bool,
    /// Only the memory benchmark (same as `--suites memory`).
    #[arg(long)]
    pub memory: bool,
    /// Suites to run, comma-separated (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub suites: Vec<Suite>,
    /// Runs per cell (default 3; 1 with --quick).
    #[arg(long)]
    pub runs: Option<usize>,
    /// Measured length of each run (default 5s; 1.5s with --quick).
    #[arg(long, value_parser = duration)]
    pub duration: Option<Duration>,
    /// Load before each measured run, on the fresh server (default 1s; 0.5s with --quick).
    #[arg(long, value_parser = duration)]
    pub warmup: Option<Duration>,
    /// Client connections (closed loop) and open-loop connections.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Synthetic profile sizes, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = size, default_value = "1KiB,16KiB")]
    pub sizes: Vec<u64>,
    /// Fan-outs of the forwarding suite, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub fanouts: Vec<usize>,
    /// Profile size of the latency suite.
    #[arg(long, value_parser = size, default_value = "16KiB")]
    pub latency_size: u64,
    /// Open-loop rate of the latency suite (default: half of pyrogate's measured saturation).
    #[arg(long)]
    pub latency_rate: Option<f64>,
    /// What the load sends.
    #[arg(long, value_enum, default_value_t = Protocol::IngestPprof)]
    pub protocol: Protocol,
    /// The gateway binary (default: `pyrogate` next to this executable).
    #[arg(long)]
    pub gateway: Option<PathBuf>,
    /// The nginx binary (default: `nginx` on PATH or /usr/sbin/nginx).
    #[arg(long)]
    pub nginx: Option<PathBuf>,
    /// Leave nginx out.
    #[arg(long)]
    pub no_nginx: bool,
    /// nginx's echo module (default: the Debian/Fedora package paths).
    #[arg(long)]
    pub echo_module: Option<PathBuf>,
    /// Do not pin: every process may run on every CPU, one server worker per CPU.
    #[arg(long)]
    pub no_pin: bool,
    /// Driver of the load generator.
    #[arg(long, value_enum, default_value_t = Driver::Auto)]
    pub load_driver: Driver,
    /// Driver of the sinks.
    #[arg(long, value_enum, default_value_t = Driver::Auto)]
    pub sink_driver: Driver,
    /// Idle connections of the memory benchmark (default 10000; 1000 with --quick).
    #[arg(long)]
    pub memory_conns: Option<usize>,
    /// A run with more CPU steal than this (percent) is run again once.
    #[arg(long, default_value_t = 20.0)]
    pub max_steal: f64,
    /// Write every run's figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Keep the temp dir (generated nginx configs and logs).
    #[arg(long)]
    pub keep_temp: bool,
}

impl BenchArgs {
    pub fn config(&self) -> Result<BenchConfig, String> {
        let q = self.quick;
        let suites = if self.memory {
            vec![Suite::Memory]
        } else if self.suites.is_empty() {
            vec![
                Suite::Forward,
                Suite::Receive,
                Suite::Latency,
                Suite::Memory,
            ]
        } else {
            self.suites.clone()
        };
        let to_usize = |v: u64| usize::try_from(v).map_err(|e| e.to_string());
        let cpus = crate::process::allowed_cpus();
        let layout = if self.no_pin {
            Layout::shared(cpus.len())
        } else {
            Layout::pinned(&cpus)
        };
        let (nginx_bin, echo_module) = if self.no_nginx {
            (None, None)
        } else {
            let bin = crate::bench::nginx::find_binary(self.nginx.as_deref());
            if self.nginx.is_some() && bin.is_none() {
                return Err("--nginx: no such file".into());
            }
            let echo = crate::bench::nginx::find_echo_module(self.echo_module.as_deref());
            if self.echo_module.is_some() && echo.is_none() {
                return Err("--echo-module: no such file".into());
            }
            (bin.clone(), bin.and(echo))
        };
        let cfg = BenchConfig {
            suites,
            runs: self.runs.unwrap_or(if q { 1 } else { 3 }),
            duration: self
                .duration
                .unwrap_or(Duration::from_millis(if q { 1500 } else { 5000 })),
            warmup: self
                .warmup
                .unwrap_or(Duration::from_millis(if q { 500 } else { 1000 })),
            connections: self.connections,
            sizes: self
                .sizes
                .iter()
                .map(|s| to_usize(*s))
                .collect::<Result<_, _>>()?,
            fanouts: self.fanouts.clone(),
            latency_size: to_usize(self.latency_size)?,
            latency_rate: self.latency_rate,
            protocol: self.protocol,
            gateway_bin: crate::process::sibling_binary("pyrogate", self.gateway.as_deref())?,
            nginx_bin,
            echo_module,
            layout,
            load_driver: self.load_driver.into(),
            sink_driver: self.sink_driver.flag().to_owned(),
            memory_conns: self.memory_conns.unwrap_or(if q { 1000 } else { 10_000 }),
            max_steal: self.max_steal,
            json: self.json.clone(),
            keep_temp: self.keep_temp,
            quick: q,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("pyrogate-load").chain(args.iter().copied()))
    }

    #[test]
    fn sink_flags() {
        let cli = parse(&[
            "sink",
            "--listen",
            "127.0.0.1:0",
            "--latency",
            "5ms",
            "--error-rate",
            "0.5",
            "--error-status",
            "429",
            "--driver",
            "legacy",
        ])
        .expect("parses");
        let Command::Sink(a) = cli.command else {
            panic!("sink")
        };
        let cfg = a.config().expect("valid");
        assert_eq!(cfg.listen.port(), 0);
        assert_eq!(cfg.faults.latency, Duration::from_millis(5));
        assert_eq!(cfg.faults.error.status, 429);
        assert_eq!(cfg.driver, DriverChoice::Legacy);
        let cli = parse(&["sink", "--error-rate", "1.5"]).expect("parses");
        let Command::Sink(a) = cli.command else {
            panic!("sink")
        };
        assert!(a.config().is_err());
    }

    #[test]
    fn run_flags() {
        let cli = parse(&[
            "run",
            "--target",
            "http://127.0.0.1:1",
            "--protocol",
            "ingest-jfr",
            "--duration",
            "2s",
            "--profile-size",
            "16KiB",
            "--rate",
            "100",
        ])
        .expect("parses");
        let Command::Run(a) = cli.command else {
            panic!("run")
        };
        let cfg = a.config().expect("valid");
        assert_eq!(cfg.protocol, Protocol::IngestJfr);
        assert_eq!(cfg.source, Source::Synthetic { size: 16384 });
        assert_eq!(cfg.rate, Some(100.0));
        // Unbounded runs are refused.
        let cli = parse(&["run", "--target", "http://127.0.0.1:1"]).expect("parses");
        let Command::Run(a) = cli.command else {
            panic!("run")
        };
        assert!(a.config().is_err());
        let cli = parse(&["run", "--target", "http://x:1", "--duration", "2h"]).expect("parses");
        let Command::Run(a) = cli.command else {
            panic!("run")
        };
        assert!(a.config().is_err());
        assert!(parse(&["run", "--target", "x", "--protocol", "bogus"]).is_err());
    }

    #[test]
    fn tls_and_reconnect_flags() {
        let run = |args: &[&str]| -> Result<RunConfig, String> {
            let cli = parse(args).map_err(|e| e.to_string())?;
            let Command::Run(a) = cli.command else {
                panic!("run")
            };
            a.config()
        };
        let cfg = run(&[
            "run",
            "--target",
            "https://127.0.0.1:1",
            "--requests",
            "10",
            "--tls-ca",
            "/tmp/ca.pem",
            "--tls-server-name",
            "localhost",
            "--tls-no-resume",
            "--reconnect-every",
            "1",
        ])
        .expect("valid");
        assert_eq!(cfg.reconnect_every, Some(1));
        assert_eq!(
            cfg.tls.ca.as_deref(),
            Some(std::path::Path::new("/tmp/ca.pem"))
        );
        assert_eq!(cfg.tls.server_name.as_deref(), Some("localhost"));
        assert!(cfg.tls.no_resume && !cfg.tls.insecure);
        // TLS flags need an https:// target; --reconnect-every 0 makes no sense.
        let plain = ["run", "--target", "http://127.0.0.1:1", "--requests", "1"];
        assert!(run(&[&plain[..], &["--tls-insecure"]].concat()).is_err());
        assert!(run(&[&plain[..], &["--reconnect-every", "0"]].concat()).is_err());
        assert!(run(&[&plain[..], &["--reconnect-every", "3"]].concat()).is_ok());
        // --tls-ca and --tls-insecure exclude each other.
        assert!(
            parse(&[
                "run",
                "--target",
                "https://x:1",
                "--tls-ca",
                "a",
                "--tls-insecure"
            ])
            .is_err()
        );
    }
}
