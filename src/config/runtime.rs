//! `[runtime]`: workers, per-core connection quotas, the I/O driver.

use super::choices::DriverChoice;
use super::file::FileConfig;
use super::{Cli, ConfigError};

/// io_uring submission queue entries per worker.
pub const DEFAULT_IO_URING_ENTRIES: u32 = 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    pub workers: usize,
    /// Resolved per-worker quotas; empty when `conn_limit` is 0 (unlimited).
    pub core_quotas: Vec<u64>,
    pub driver: DriverChoice,
    pub pin_cores: bool,
    pub io_uring_entries: u32,
}

pub(super) fn resolve(
    f: &FileConfig,
    cli: &Cli,
    conn_limit: u64,
) -> Result<RuntimeConfig, ConfigError> {
    let r = &f.runtime;
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = cli.workers.or(r.workers).unwrap_or(available);
    if workers == 0 || workers > 1024 {
        return Err(ConfigError::new(
            "runtime.workers",
            "must be between 1 and 1024",
        ));
    }
    let driver = cli.driver.or(r.driver).unwrap_or(DriverChoice::Auto);
    let mut given: Vec<Option<u64>> = vec![None; workers];
    if let Some(q) = &r.core_quotas {
        if q.len() > workers {
            return Err(ConfigError::new(
                "runtime.core_quotas",
                format!(
                    "{} quotas given but there are only {workers} workers",
                    q.len()
                ),
            ));
        }
        for (i, v) in q.iter().enumerate() {
            given[i] = Some(*v);
        }
    }
    for spec in &cli.core_quota {
        let (core, n) = spec
            .split_once('=')
            .and_then(|(c, n)| {
                Some((
                    c.trim().parse::<usize>().ok()?,
                    n.trim().parse::<u64>().ok()?,
                ))
            })
            .ok_or_else(|| ConfigError::new("--core-quota", format!("{spec:?} is not CORE=N")))?;
        if core >= workers {
            return Err(ConfigError::new(
                "--core-quota",
                format!(
                    "core {core} has no worker (workers = {workers}, cores 0..{})",
                    workers - 1
                ),
            ));
        }
        given[core] = Some(n);
    }
    let core_quotas = resolve_quotas(&given, conn_limit)?;
    Ok(RuntimeConfig {
        workers,
        core_quotas,
        driver,
        pin_cores: cli.pin_cores.or(r.pin_cores).unwrap_or(true),
        io_uring_entries: r
            .io_uring_entries
            .unwrap_or(DEFAULT_IO_URING_ENTRIES)
            .max(256),
    })
}

/// Quotas default to an even split of `conn_limit` (remainder to the first cores); cores with
/// an explicit quota keep it and the others share what is left. They always sum to
/// `conn_limit`, so the global limit stays exactly what the operator configured.
pub fn resolve_quotas(given: &[Option<u64>], conn_limit: u64) -> Result<Vec<u64>, ConfigError> {
    let key = "runtime.core_quotas";
    if conn_limit == 0 {
        if given.iter().any(Option::is_some) {
            return Err(ConfigError::new(
                key,
                "per-core quotas need a conn_limit (server.conn_limit = 0 means unlimited)",
            ));
        }
        return Ok(Vec::new());
    }
    let fixed: u64 = given.iter().flatten().sum();
    let free: Vec<usize> = (0..given.len()).filter(|i| given[*i].is_none()).collect();
    if let Some(i) = given.iter().position(|q| *q == Some(0)) {
        return Err(ConfigError::new(
            key,
            format!("the quota of core {i} is 0; every worker needs at least 1 connection"),
        ));
    }
    if free.is_empty() {
        if fixed != conn_limit {
            return Err(ConfigError::new(
                key,
                format!("quotas sum to {fixed} but server.conn_limit is {conn_limit}"),
            ));
        }
        return Ok(given.iter().map(|q| q.unwrap_or(0)).collect());
    }
    if fixed >= conn_limit {
        return Err(ConfigError::new(
            key,
            format!(
                "quotas sum to {fixed}, leaving nothing of server.conn_limit = {conn_limit} for \
                 the other {} cores",
                free.len()
            ),
        ));
    }
    let rest = conn_limit - fixed;
    let n = free.len() as u64;
    if rest < n {
        return Err(ConfigError::new(
            "server.conn_limit",
            format!("{conn_limit} is too small to give each of the {n} workers a connection"),
        ));
    }
    let mut out: Vec<u64> = given.iter().map(|q| q.unwrap_or(0)).collect();
    for (k, i) in free.iter().enumerate() {
        out[*i] = rest / n + u64::from((k as u64) < rest % n);
    }
    Ok(out)
}
