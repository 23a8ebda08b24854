//! The `pyrogate` binary: parse flags, load and validate the configuration, start the
//! workers, then wait for signals (SIGTERM/SIGINT drain and exit, SIGHUP reloads).

use std::process::ExitCode;

use std::sync::Arc;

use pyrogate::config::{Cli, Config, LogFormat};
use pyrogate::forward::Forwarder;
use pyrogate::gateway::{self, Route};
use pyrogate::metrics::Metrics;
use pyrogate::runtime::signals::{self, Signal};
use pyrogate::runtime::{self, Server, Settings, driver, listener};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // First, so that the pages faulted while the configuration is parsed are small pages too
    // (startup RSS 14.5 MB -> 8.7 MB, docs/performance.md §6); `Server::start` calls it again
    // for embedders of the library.
    runtime::thp::disable();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("spool") {
        return spool_command(&args[2..]);
    }
    let cli = match Cli::parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pyrogate: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pyrogate: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        return check_config(&config);
    }
    init_logging(&config);
    // Block the handled signals before any thread starts, so that every thread inherits the
    // mask and only the main thread's sigwait sees them.
    if let Err(e) = signals::block() {
        eprintln!("pyrogate: cannot block signals: {e}");
        return ExitCode::FAILURE;
    }
    let driver = match driver::choose(config.runtime.driver, config.runtime.io_uring_entries) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("pyrogate: config error: {e}");
            return ExitCode::from(2);
        }
    };
    let metrics = Metrics::new(
        config.runtime.workers,
        config.server.conn_limit,
        &Route::LABELS,
    );
    let forwarder = match pyrogate::forward::start(&config, &metrics.registry, driver.kind) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("pyrogate: {e}");
            return ExitCode::from(2);
        }
    };
    let distributor = match pyrogate::distributor::Shared::new(&metrics.registry) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("pyrogate: {e}");
            return ExitCode::from(2);
        }
    };
    let ring = match (&config.ring, config.forward.mode) {
        (Some(ring_cfg), pyrogate::config::ForwardMode::Ring) => {
            match pyrogate::ring::membership::Membership::new(
                ring_cfg,
                forwarder.clone(),
                &metrics.registry,
            ) {
                Ok(m) => {
                    if let pyrogate::config::ring::RingStoreConfig::Etcd(etcd) = &ring_cfg.store {
                        pyrogate::ring::etcd::spawn(m.clone(), etcd.clone());
                    }
                    Some(m)
                }
                Err(e) => {
                    eprintln!("pyrogate: config error: ring: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        _ => None,
    };
    let auth_metrics = match gateway::auth::AuthMetrics::register(&metrics.registry) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("pyrogate: {e}");
            return ExitCode::from(2);
        }
    };
    let factory = gateway::Factory {
        auth_metrics: Some(auth_metrics),
        forwarder: forwarder.clone(),
        distributor,
        ring,
        config: Arc::new(config.clone()),
    };
    let server = match Server::start(Settings::from_config(&config), factory, metrics, driver) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pyrogate: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(why) = &server.driver.fallback_reason {
        tracing::warn!(reason = %why, "io_uring unavailable; running on the epoll (legacy) driver");
    }
    let endpoints: Vec<&str> = config
        .endpoints
        .iter()
        .map(|e| e.url_string.as_str())
        .collect();
    tracing::info!(
        listen = %server.local_addr(),
        driver = server.driver.kind.name(),
        workers = config.runtime.workers,
        core_quotas = ?config.runtime.core_quotas,
        conn_limit = config.server.conn_limit,
        on_conn_limit = ?config.server.on_conn_limit,
        ack = ?config.forward.ack,
        endpoints = ?endpoints,
        "pyrogate listening"
    );
    spawn_watchdog(server.shared().clone());
    pyrogate::runtime::notify::ready();
    let mut running = config;
    loop {
        match signals::wait() {
            Ok(Signal::Terminate) | Ok(Signal::Interrupt) => break,
            Ok(Signal::Hangup) => reload(&cli, &server, &forwarder, &mut running),
            Err(e) => {
                tracing::error!(error = %e, "sigwait failed; shutting down");
                break;
            }
        }
    }
    pyrogate::runtime::notify::stopping();
    let timeout = server.shared().settings().graceful_shutdown_timeout;
    tracing::info!(timeout = ?timeout, "draining: no new connections, finishing in-flight requests");
    let deadline = std::time::Instant::now() + timeout;
    // A second SIGTERM/SIGINT while draining forces the exit (the double Ctrl-C).
    let _ = std::thread::Builder::new()
        .name("pyrogate-signals".into())
        .spawn(|| {
            while let Ok(sig) = signals::wait() {
                if sig != Signal::Hangup {
                    eprintln!("pyrogate: second {sig:?} while draining; exiting now");
                    std::process::exit(130);
                }
            }
        });
    forwarder.begin_drain();
    server.drain();
    server.join();
    forwarder.shutdown(deadline);
    tracing::info!("pyrogate stopped");
    ExitCode::SUCCESS
}

fn reload(
    cli: &Cli,
    server: &Server<gateway::Factory>,
    forwarder: &Forwarder,
    running: &mut Config,
) {
    pyrogate::runtime::notify::reloading();
    let result = Config::load(cli)
        .map_err(|e| e.to_string())
        .and_then(|cfg| {
            if cfg.runtime.driver != running.runtime.driver {
                tracing::warn!("reload: runtime.driver applies at the next restart");
            }
            let cfg = Arc::new(cfg);
            server
                .reload(Settings::from_config(&cfg), cfg.clone(), || {
                    forwarder.reload(&cfg).map_err(|e| e.to_string())
                })
                .map_err(|e| e.to_string())?;
            Ok(cfg)
        });
    match result {
        Ok(cfg) => {
            let endpoints: Vec<&str> = cfg
                .endpoints
                .iter()
                .map(|e| e.url_string.as_str())
                .collect();
            tracing::info!(
                listen = %server.local_addr(),
                core_quotas = ?cfg.runtime.core_quotas,
                endpoints = ?endpoints,
                "configuration reloaded"
            );
            *running = (*cfg).clone();
        }
        Err(e) => {
            tracing::error!(error = %e, "reload rejected; keeping the running configuration");
        }
    }
    pyrogate::runtime::notify::ready();
}

/// Feeds systemd's watchdog (`WatchdogSec=`) at half the interval, but only while every
/// worker's event loop is alive: a stuck worker stops the pings and systemd restarts us.
fn spawn_watchdog(shared: std::sync::Arc<pyrogate::runtime::Shared>) {
    let Some(usec) = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid != std::process::id().to_string()
    {
        return;
    }
    let interval =
        std::time::Duration::from_micros(usec / 2).max(std::time::Duration::from_secs(1));
    let _ = std::thread::Builder::new()
        .name("pyrogate-watchdog".into())
        .spawn(move || {
            use std::sync::atomic::Ordering;
            let read = || -> Vec<u64> {
                shared
                    .heartbeats
                    .iter()
                    .map(|h| h.load(Ordering::Relaxed))
                    .collect()
            };
            let mut last = read();
            loop {
                std::thread::sleep(interval);
                let now = read();
                let alive = now.iter().zip(&last).all(|(n, l)| n != l);
                if alive {
                    pyrogate::runtime::notify::watchdog();
                } else {
                    tracing::error!("a worker stopped making progress; not feeding the watchdog");
                }
                last = now;
            }
        });
}

/// `pyrogate spool inspect DIR`: what a spool holds, per destination.
fn spool_command(args: &[String]) -> ExitCode {
    let usage = "usage: pyrogate spool inspect DIR";
    match args {
        [cmd, dir] if cmd == "inspect" => {
            let dir = std::path::Path::new(dir);
            if !dir.is_dir() {
                eprintln!(
                    "pyrogate: spool inspect: {} is not a directory",
                    dir.display()
                );
                return ExitCode::from(2);
            }
            match pyrogate::spool::inspect::summarize(dir) {
                Ok(s) => {
                    let now = pyrogate::spool::commit::unix_ms();
                    print!("{}", pyrogate::spool::inspect::render(dir, &s, now));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("pyrogate: spool inspect: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        [h] if h == "--help" || h == "-h" => {
            println!("{usage}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("pyrogate: {usage}");
            ExitCode::from(2)
        }
    }
}

/// `--check-config`: the configuration parses and validates, the listen address can be
/// bound, the driver choice can be honoured, and the spool directory (if any) is writable
/// with fsync.
fn check_config(config: &Config) -> ExitCode {
    if let Some(s) = &config.spool
        && let Err(e) = pyrogate::spool::check_dir(&s.dir)
    {
        eprintln!("pyrogate: config error: spool.dir: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = listener::bind_shards(
        config.server.listen,
        config.server.listen_any,
        1,
        config.server.listen_backlog,
    ) {
        eprintln!(
            "pyrogate: config error: server.listen_port: cannot listen on {}: {e}",
            config.server.listen
        );
        return ExitCode::from(2);
    }
    match pyrogate::runtime::driver::choose(config.runtime.driver, config.runtime.io_uring_entries)
    {
        Ok(d) => {
            print!("{}", config.summary());
            println!(
                "driver: {}{}",
                d.kind.name(),
                d.fallback_reason
                    .map(|r| format!(" (io_uring unavailable: {r})"))
                    .unwrap_or_default()
            );
            println!("configuration OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pyrogate: config error: {e}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(&config.log.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match config.log.format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}
