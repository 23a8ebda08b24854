//! `[spool]`: the write-ahead log behind `ack = "durable"` (docs/spool.md).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::units::{Dur, Size};

/// Per destination: 10 GiB holds about 2.5 hours of a 1,000 requests/s fleet at 1 KiB per
/// request, longer than most downstream outages (docs/spool.md §5 has the arithmetic).
pub const DEFAULT_MAX_BYTES: u64 = 10 << 30;
/// Large enough that creating a segment (a file and a directory fsync) is rare, small
/// enough that an acknowledged segment frees disk soon.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// The longest a client waits for its group commit to start: the group grows while
/// requests keep arriving, up to this long.
pub const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_millis(5);
/// Pyroscope refuses profiles older than its ingestion window (1 h by default), so a
/// record older than this is dropped (and counted) instead of replayed.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
/// A segment smaller than this would rotate on nearly every batch.
const MIN_SEGMENT_BYTES: u64 = 64 << 10;

/// When the log is flushed to stable storage (`spool.fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// One `fdatasync` per group of records (group commit).
    Batch,
    /// One `fdatasync` per record.
    Always,
    /// Written to the page cache only: safe against the process dying, not the host.
    Never,
}

/// Who performs the log's file writes (`spool.io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SpoolIo {
    /// io_uring on the receiving worker when the worker runs io_uring, else a thread.
    Auto,
    /// The worker's own io_uring (needs the io_uring driver).
    #[serde(alias = "io_uring")]
    Uring,
    /// One plain thread per log doing blocking `pwrite` + `fdatasync`.
    Thread,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolSection {
    pub dir: Option<PathBuf>,
    pub max_bytes: Option<Size>,
    pub segment_bytes: Option<Size>,
    pub fsync: Option<FsyncPolicy>,
    pub fsync_interval: Option<Dur>,
    pub max_age: Option<Dur>,
    pub io: Option<SpoolIo>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub segment_bytes: u64,
    pub fsync: FsyncPolicy,
    pub fsync_interval: Duration,
    pub max_age: Duration,
    pub io: SpoolIo,
}

/// `None` when the file has no `[spool]` and no `--spool-dir` was given.
pub(super) fn resolve(
    s: Option<&SpoolSection>,
    cli_dir: Option<&PathBuf>,
) -> Result<Option<SpoolConfig>, ConfigError> {
    let empty = SpoolSection::default();
    let s = match (s, cli_dir) {
        (None, None) => return Ok(None),
        (s, _) => s.unwrap_or(&empty),
    };
    let dir = cli_dir
        .cloned()
        .or_else(|| s.dir.clone())
        .ok_or_else(|| ConfigError::new("spool.dir", "is required"))?;
    let max_bytes = s.max_bytes.map_or(DEFAULT_MAX_BYTES, |v| v.0);
    let segment_bytes = s.segment_bytes.map_or(DEFAULT_SEGMENT_BYTES, |v| v.0);
    if segment_bytes < MIN_SEGMENT_BYTES {
        return Err(ConfigError::new(
            "spool.segment_bytes",
            "must be at least 64KiB",
        ));
    }
    if max_bytes == 0 {
        return Err(ConfigError::new(
            "spool.max_bytes",
            "must be greater than 0",
        ));
    }
    let max_age = s.max_age.map_or(DEFAULT_MAX_AGE, |d| d.0);
    if max_age.is_zero() {
        return Err(ConfigError::new("spool.max_age", "must be greater than 0"));
    }
    Ok(Some(SpoolConfig {
        dir,
        max_bytes,
        segment_bytes,
        fsync: s.fsync.unwrap_or(FsyncPolicy::Batch),
        fsync_interval: s.fsync_interval.map_or(DEFAULT_FSYNC_INTERVAL, |d| d.0),
        max_age,
        io: s.io.unwrap_or(SpoolIo::Auto),
    }))
}
