//! The memory benchmark (issue 4): resident memory of a server holding many idle keep-alive
//! connections, each of which has completed one request (a 1 KiB `/ingest` profile, as an
//! SDK's connection looks between two uploads).
//!
//! `bytes per connection = (RSS with the connections − RSS before) / connections`, where
//! "before" is after start-up and one request. This is user-space memory only; the kernel's
//! share (socket structures, buffers) is not in the RSS and is shown separately from
//! `/proc/net/sockstat` (`TCP mem`, the pages charged to socket buffers; the ~5 KB of socket
//! structures per connection are not included there either).

use std::time::{Duration, Instant};

use serde::Serialize;

use super::BenchConfig;
use super::nginx::{self, Nginx};
use super::runner::{Ctx, free_port};
use super::table::{self, Table};
use crate::load::payload::{self, Options, Protocol, Source};
use crate::probe::Client;
use crate::process::children::{Gateway, GatewayOpts};
use crate::process::{self, SpawnOpts, procfs};

/// Body of the one request each connection makes.
const REQUEST_SIZE: usize = 1024;
/// Opening all connections must finish within this.
const OPEN_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause before reading the RSS, so the server has finished with the last requests.
const SETTLE: Duration = Duration::from_secs(1);
/// File descriptors kept free besides the connections.
const FD_MARGIN: usize = 1024;

#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryResult {
    pub server: String,
    /// Connections asked for and actually opened (each answered 200).
    pub conns: usize,
    pub opened: usize,
    pub rss_before: Option<u64>,
    pub rss_with: Option<u64>,
    pub rss_after_close: Option<u64>,
    pub bytes_per_conn: Option<f64>,
    /// Change of the kernel's TCP socket-buffer memory (bytes) and of TCP sockets in use.
    pub kernel_tcp_mem_delta: Option<i64>,
    pub sockets_delta: Option<i64>,
    pub open_s: f64,
    pub error: Option<String>,
}

enum Server {
    Gateway(Gateway),
    Nginx(Nginx),
}

impl Server {
    fn rss(&self) -> Option<u64> {
        let pids = match self {
            Server::Gateway(g) => vec![g.proc.pid()],
            Server::Nginx(n) => n.workers.clone(),
        };
        pids.iter().map(|p| procfs::status_bytes(*p, "VmRSS")).sum()
    }

    fn addr(&self) -> std::net::SocketAddr {
        match self {
            Server::Gateway(g) => g.addr,
            Server::Nginx(n) => n.addr,
        }
    }
}

/// Runs the memory benchmark for pyrogate on each driver and nginx `return 200` (reference).
pub fn run(
    ctx: &Ctx<'_>,
    failures: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Vec<MemoryResult> {
    let cfg = ctx.cfg;
    let conns = cfg.memory_conns;
    let need = (conns + FD_MARGIN) as u64;
    let have = process::raise_nofile(need);
    if have < need {
        notes.push(format!(
            "memory: RLIMIT_NOFILE is {have} (hard limit {}), below the {need} needed for {conns} connections; fewer will be opened",
            process::nofile_hard_limit()
        ));
    }
    let mut servers: Vec<(String, Option<&'static str>)> = ctx
        .drivers
        .iter()
        .map(|d| {
            (
                format!("pyrogate {}", if *d == "legacy" { "epoll" } else { d }),
                Some(*d),
            )
        })
        .collect();
    if cfg.nginx_bin.is_some() {
        servers.push(("nginx return 200 (reference)".into(), None));
    }
    let mut out = Vec::new();
    for (name, driver) in servers {
        if process::interrupted() {
            failures.push("memory: interrupted".into());
            break;
        }
        eprintln!("memory: {name}, {conns} idle keep-alive connections");
        let r = measure(ctx, &name, driver, conns);
        if let Some(e) = &r.error {
            failures.push(format!("memory {name}: {e}"));
        }
        eprintln!(
            "  {name}: {} opened, RSS {} → {} ({} B/conn)",
            r.opened,
            table::mib(r.rss_before),
            table::mib(r.rss_with),
            table::num(r.bytes_per_conn, 0)
        );
        out.push(r);
    }
    out
}

fn start(ctx: &Ctx<'_>, driver: Option<&'static str>, conns: usize) -> Result<Server, String> {
    let cfg = ctx.cfg;
    let spawn = SpawnOpts {
        cpus: cfg.layout.gateway_cpus.clone(),
        nofile: Some(((conns + FD_MARGIN) as u64).max(process::nofile_soft_limit())),
    };
    match driver {
        Some(d) => Ok(Server::Gateway(Gateway::start(&GatewayOpts {
            bin: cfg.gateway_bin.clone(),
            driver: d.to_owned(),
            workers: cfg.layout.gateway_workers,
            forward_to: Vec::new(),
            extra: vec![
                "--conn-limit".into(),
                (conns + FD_MARGIN).to_string(),
                "--server-idle-timeout".into(),
                "600s".into(),
            ],
            spawn,
        })?)),
        None => {
            let bin = cfg.nginx_bin.as_deref().ok_or("nginx is not installed")?;
            let conf = nginx::Conf {
                dir: ctx.tmp.join("nginx-memory"),
                port: free_port()?,
                workers: cfg.layout.gateway_workers,
                mode: nginx::Mode::Return200,
                max_conns: conns + FD_MARGIN,
                body_buffer: 256 * 1024,
                as_root: process::is_root(),
            };
            Ok(Server::Nginx(Nginx::start(bin, &conf, &spawn)?))
        }
    }
}

fn measure(ctx: &Ctx<'_>, name: &str, driver: Option<&'static str>, conns: usize) -> MemoryResult {
    let mut r = MemoryResult {
        server: name.to_owned(),
        conns,
        ..MemoryResult::default()
    };
    if let Err(e) = measure_into(ctx, driver, conns, &mut r) {
        r.error = Some(e);
    }
    r
}

fn measure_into(
    ctx: &Ctx<'_>,
    driver: Option<&'static str>,
    conns: usize,
    r: &mut MemoryResult,
) -> Result<(), String> {
    let server = start(ctx, driver, conns)?;
    let addr = server.addr();
    let target = payload::parse_target(&format!("http://{addr}"))?;
    let request = payload::prepare(
        Protocol::IngestPprof,
        &target,
        &Options {
            source: Source::Synthetic { size: REQUEST_SIZE },
            seed: 1,
            tenant: None,
            now_s: 1_795_312_305,
        },
    )?
    .into_iter()
    .next()
    .ok_or("no request rendered")?
    .bytes;
    let io = Duration::from_secs(5);
    // Warm-up: one request, so code paths and allocator arenas are in place.
    {
        let mut c = Client::connect(addr, io)?;
        let a = c.send(&request)?;
        if a.status != 200 {
            return Err(format!("warm-up request answered {}", a.status));
        }
    }
    std::thread::sleep(SETTLE);
    r.rss_before = server.rss();
    let sock0 = procfs::tcp_sockstat();
    let started = Instant::now();
    let mut clients = Vec::with_capacity(conns);
    let mut error = None;
    for i in 0..conns {
        if started.elapsed() > OPEN_TIMEOUT || process::interrupted() {
            error = Some(format!(
                "only {i} connections opened within {}s",
                OPEN_TIMEOUT.as_secs()
            ));
            break;
        }
        let res = Client::connect(addr, io).and_then(|mut c| {
            let a = c.send(&request)?;
            if a.status == 200 && !a.close {
                Ok(c)
            } else {
                Err(format!("answered {} (close: {})", a.status, a.close))
            }
        });
        match res {
            Ok(c) => clients.push(c),
            Err(e) => {
                error = Some(format!("connection {i}: {e}"));
                break;
            }
        }
    }
    r.open_s = started.elapsed().as_secs_f64();
    r.opened = clients.len();
    std::thread::sleep(SETTLE);
    r.rss_with = server.rss();
    let sock1 = procfs::tcp_sockstat();
    if let (Some(a), Some(b)) = (r.rss_before, r.rss_with) {
        r.bytes_per_conn = super::stats::bytes_per_conn(a, b, r.opened);
    }
    if let (Some(a), Some(b)) = (sock0, sock1) {
        r.kernel_tcp_mem_delta = Some((b.mem_pages as i64 - a.mem_pages as i64) * 4096);
        r.sockets_delta = Some(b.inuse as i64 - a.inuse as i64);
    }
    drop(clients);
    std::thread::sleep(SETTLE);
    r.rss_after_close = server.rss();
    drop(server);
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The memory table.
pub fn render(cfg: &BenchConfig, results: &[MemoryResult]) -> String {
    let mut t = Table::new(&[
        ("server", true),
        ("idle conns", false),
        ("RSS before", false),
        ("RSS with conns", false),
        ("bytes/conn", false),
        ("KiB/conn", false),
        ("RSS after close", false),
        ("kernel TCP buf Δ", false),
        ("TCP sockets Δ", false),
        ("open s", false),
    ]);
    for r in results {
        t.row(vec![
            r.server.clone(),
            if r.opened == r.conns {
                table::thousands(r.opened as u64)
            } else {
                format!("{}/{}", r.opened, r.conns)
            },
            table::mib(r.rss_before),
            table::mib(r.rss_with),
            table::num(r.bytes_per_conn, 0),
            table::num(r.bytes_per_conn.map(|b| b / 1024.0), 2),
            table::mib(r.rss_after_close),
            r.kernel_tcp_mem_delta
                .map_or("-".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0)),
            r.sockets_delta.map_or("-".into(), |n| n.to_string()),
            format!("{:.1}", r.open_s),
        ]);
    }
    format!(
        "\n== memory: {} idle keep-alive connections (each after one 1 KiB /ingest request) ==\n{}\
         bytes/conn = (RSS with − RSS before) / connections: user-space memory only (issue 14's target ≤ 600 B).\n\
         The kernel's share is outside RSS: socket buffers in `kernel TCP buf Δ` (/proc/net/sockstat),\n\
         plus roughly 5 KB of socket structures per connection, on both ends of loopback.\n",
        table::thousands(cfg.memory_conns as u64),
        t.render()
    )
}
