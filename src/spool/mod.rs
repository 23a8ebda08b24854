//! The spool: a write-ahead log on disk behind `ack = "durable"` (docs/spool.md).
//!
//! ```text
//!  worker ─ append ─▶ open batch ─ group commit (write + fdatasync) ─▶ 200 to the clients
//!                                    │
//!                                    ├─▶ destinations that are caught up: in memory
//!                                    └─▶ the others read their backlog from disk later
//!  SPOOL_DIR/core-N/<first seq>.seg   one log per receiving worker, append-only segments
//!  SPOOL_DIR/core-N/<n>.spare         the next segment, prepared (preallocated, synced) ahead
//!  SPOOL_DIR/core-N/cursor-<id>       per destination: everything before it is acknowledged
//! ```
//!
//! The spool knows records, positions and cursors; what a record means (an envelope) and
//! where it goes is the forwarding stage's business.

pub mod commit;
pub mod inspect;
pub mod log;
pub mod metrics;
pub mod record;
pub mod segment;

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

pub use log::{DestId, Log, Place};
use metrics::SpoolMetrics;

use crate::config::spool::SpoolConfig;

/// How often cursors are persisted, acknowledged segments deleted and gauges updated.
/// A crash re-delivers at most this much acknowledged traffic (duplicates, not losses).
const MAINTENANCE_EVERY: Duration = Duration::from_millis(200);
/// Directory of one log.
const LOG_DIR_PREFIX: &str = "core-";
const LOCK_FILE: &str = "LOCK";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("spool {0} is in use by another process")]
    Locked(PathBuf),
    #[error("cannot register spool metrics: {0}")]
    Metrics(String),
}

impl SpoolError {
    fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

pub struct Spool {
    pub cfg: SpoolConfig,
    pub dests: Vec<DestId>,
    logs: RwLock<Vec<Arc<Log>>>,
    next_log: AtomicU32,
    pub metrics: Arc<SpoolMetrics>,
    /// Largest record accepted when reading (bounded by the request body limit).
    pub max_record: u32,
    _lock: File,
    stop: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The log directories under `dir`, by log number.
pub(crate) fn log_dirs(dir: &Path) -> io::Result<Vec<(u32, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        if let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_prefix(LOG_DIR_PREFIX))
            .and_then(|n| n.parse::<u32>().ok())
        {
            out.push((n, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

impl Spool {
    /// Opens the spool in `cfg.dir` for `dests` (creating it), replays what is there and
    /// starts the maintenance thread. Every record a destination has not acknowledged is
    /// its backlog, delivered from disk.
    ///
    /// # Errors
    /// The directory cannot be created or read, another process holds it, or the metrics
    /// cannot be registered.
    pub fn open(
        cfg: &SpoolConfig,
        dests: Vec<DestId>,
        max_record: u32,
        registry: &prometheus::Registry,
    ) -> Result<Arc<Self>, SpoolError> {
        let dir = &cfg.dir;
        std::fs::create_dir_all(dir).map_err(|e| SpoolError::io(dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::create(&lock_path).map_err(|e| SpoolError::io(&lock_path, e))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(SpoolError::Locked(dir.clone()));
        }
        let metrics = Arc::new(
            SpoolMetrics::register(registry).map_err(|e| SpoolError::Metrics(e.to_string()))?,
        );
        let mut logs = Vec::new();
        for (n, path) in log_dirs(dir).map_err(|e| SpoolError::io(dir, e))? {
            let (log, corrupt) =
                Log::open(n, &path, &dests, max_record).map_err(|e| SpoolError::io(&path, e))?;
            metrics.corrupt.inc_by(corrupt);
            if corrupt > 0 {
                tracing::warn!(log = %path.display(), corrupt, "spool: skipped damaged records");
            }
            for i in 0..dests.len() {
                metrics.replayed.inc_by(log.pending_records(i));
            }
            logs.push(Arc::new(log));
        }
        let spool = Arc::new(Self {
            cfg: cfg.clone(),
            dests,
            logs: RwLock::new(logs),
            next_log: AtomicU32::new(0),
            metrics,
            max_record,
            _lock: lock,
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        spool.maintain();
        let s = spool.clone();
        let t = std::thread::Builder::new()
            .name("pyrogate-spool".into())
            .spawn(move || {
                while !s.stop.load(Ordering::Acquire) {
                    std::thread::park_timeout(MAINTENANCE_EVERY);
                    s.maintain();
                }
            })
            .map_err(|e| SpoolError::io(dir, e))?;
        if let Ok(mut g) = spool.thread.lock() {
            *g = Some(t);
        }
        Ok(spool)
    }

    /// Every log, replayed or created.
    pub fn logs(&self) -> Vec<Arc<Log>> {
        match self.logs.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// A log for a new appending thread (one per receiving worker): the logs left by a
    /// previous run are taken first, so their numbering continues.
    ///
    /// # Errors
    /// The log's directory cannot be created.
    pub fn claim_log(&self) -> Result<Arc<Log>, SpoolError> {
        let id = self.next_log.fetch_add(1, Ordering::AcqRel);
        if let Some(l) = self.logs().into_iter().find(|l| l.id == id) {
            return Ok(l);
        }
        let path = self.cfg.dir.join(format!("{LOG_DIR_PREFIX}{id}"));
        let (log, _) = Log::open(id, &path, &self.dests, self.max_record)
            .map_err(|e| SpoolError::io(&path, e))?;
        let log = Arc::new(log);
        match self.logs.write() {
            Ok(mut g) => g.push(log.clone()),
            Err(p) => p.into_inner().push(log.clone()),
        }
        Ok(log)
    }

    /// Bytes destination `i` has not had acknowledged, over every log.
    pub fn pending_bytes(&self, i: usize) -> u64 {
        self.logs().iter().map(|l| l.pending_bytes(i)).sum()
    }

    /// Whether `add` more bytes would take any destination past `spool.max_bytes`.
    pub fn would_overflow(&self, add: u64) -> bool {
        let logs = self.logs();
        (0..self.dests.len()).any(|i| {
            let pending: u64 = logs.iter().map(|l| l.pending_bytes(i)).sum();
            pending > 0 && pending + add > self.cfg.max_bytes
        })
    }

    /// Persists moved cursors, deletes acknowledged segments, updates the gauges.
    pub fn maintain(&self) {
        let logs = self.logs();
        let now_ms = commit::unix_ms();
        for (i, d) in self.dests.iter().enumerate() {
            let (mut bytes, mut records, mut oldest) = (0u64, 0u64, None::<u64>);
            for l in &logs {
                bytes += l.pending_bytes(i);
                records += l.pending_records(i);
                let o = l.dests[i]
                    .oldest_inflight_ms()
                    .into_iter()
                    .chain(l.backlog_first_ms(i))
                    .min();
                oldest = match (oldest, o) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let t = std::time::Instant::now();
                let persisted = l.dests[i].persist();
                if matches!(persisted, Ok(true)) {
                    self.metrics.observe_sync(log::SYNC_CURSOR, t.elapsed());
                }
                if let Err(e) = persisted {
                    crate::util::lograte::warn_limited("spool-cursor", |suppressed| {
                        tracing::error!(suppressed, error = %e, "spool: cannot write a cursor file");
                    });
                }
            }
            let label = [d.url.as_str()];
            self.metrics
                .bytes
                .with_label_values(&label)
                .set(bytes as i64);
            self.metrics
                .records
                .with_label_values(&label)
                .set(records as i64);
            let age = oldest.map_or(0.0, |ms| now_ms.saturating_sub(ms) as f64 / 1000.0);
            self.metrics.oldest_age.with_label_values(&label).set(age);
        }
        for l in &logs {
            l.delete_acknowledged();
        }
    }

    /// Stops the maintenance thread after a last pass (cursors persisted).
    pub fn close(&self) {
        self.stop.store(true, Ordering::Release);
        let t = self.thread.lock().ok().and_then(|mut g| g.take());
        if let Some(t) = t {
            t.thread().unpark();
            let _ = t.join();
        }
        self.maintain();
    }
}

/// `--check-config`: the directory exists or can be created, a file in it can be written
/// and `fdatasync`ed.
///
/// # Errors
/// What failed, for the operator.
pub fn check_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let probe = dir.join(".pyrogate-check");
    let r = (|| {
        use std::io::Write as _;
        let mut f = File::create(&probe)?;
        f.write_all(b"pyrogate spool check\n")?;
        f.sync_data()?;
        File::open(dir)?.sync_all()
    })();
    let _ = std::fs::remove_file(&probe);
    r.map_err(|e| {
        format!(
            "{} is not writable with fsync ({e}); the spool needs a local filesystem that supports fsync",
            dir.display()
        )
    })
}
