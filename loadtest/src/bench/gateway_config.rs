//! The configuration files the benchmark suites start pyrogate with. They live here, below
//! the suites and the runner, so that the runner can start any variant without importing
//! the suite that defines it.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// The validating gateway's configuration (the `distributor` suite). The per-tenant rate
/// limit stays on, set far above the load (Pyroscope's default of 4 MiB/s would refuse most
/// requests of a saturating load, and the suite measures the checks, not the refusals).
pub const DISTRIBUTOR: &str = "\
# pyrogate-load bench --suites distributor: the edge distributor on, as Pyroscope's distributor
[distributor]
validate = true
normalize = true
multitenancy_enabled = false

[limits]
ingestion_rate_mb = 1000000
ingestion_burst_size_mb = 1000000
";

const DISTRIBUTOR_FILE: &str = "distributor.toml";

/// Tokens per ring member (dskit's ingester default, `-ingester.num-tokens = 128`).
pub const RING_TOKENS: usize = 128;

/// Writes [`DISTRIBUTOR`] to `dir` (every time: cheap, and a removed file cannot break a
/// run).
pub fn write_distributor(dir: &Path) -> Result<PathBuf, String> {
    write(&dir.join(DISTRIBUTOR_FILE), DISTRIBUTOR)
}

/// The ring configuration of the `ring` suite: every URL a static member (`m0`, `m1`, …,
/// [`RING_TOKENS`] tokens derived from the id), replication factor `rf`.
pub fn ring(rf: usize, urls: &[String]) -> String {
    use std::fmt::Write as _;
    let mut s = format!(
        "# pyrogate-load bench --suites ring: ring mode over the sinks, RF {rf}\n\
         [forward]\nmode = \"ring\"\n\n[ring]\nreplication_factor = {rf}\n"
    );
    for (i, u) in urls.iter().enumerate() {
        let _ = write!(
            s,
            "\n[[ring.member]]\nid = \"m{i}\"\nurl = \"{u}\"\ntokens_count = {RING_TOKENS}\n"
        );
    }
    s
}

/// Writes [`ring`] to `dir`.
pub fn write_ring(dir: &Path, rf: usize, urls: &[String]) -> Result<PathBuf, String> {
    write(&dir.join(format!("ring-rf{rf}.toml")), &ring(rf, urls))
}

fn write(path: &Path, text: &str) -> Result<PathBuf, String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path.to_owned())
}

/// How a gateway of the `durable` suite answers its clients (`forward.ack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "ack", rename_all = "lowercase")]
pub enum Ack {
    /// After every destination accepted (the default).
    All,
    /// Once the request is queued in memory (`--ack enqueue`).
    Enqueue,
    /// After the group commit of the spool's write-ahead log ([`durable`]).
    Durable { fsync: Fsync, io: SpoolIo },
}

/// `spool.fsync` of the benchmarked spools (`never` is not benchmarked: it is `enqueue`
/// plus a write to the page cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    Batch,
    Always,
}

/// `spool.io`: the worker's io_uring or a plain thread per log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpoolIo {
    Uring,
    Thread,
}

impl Fsync {
    pub fn name(self) -> &'static str {
        match self {
            Fsync::Batch => "batch",
            Fsync::Always => "always",
        }
    }
}

impl SpoolIo {
    pub fn name(self) -> &'static str {
        match self {
            SpoolIo::Uring => "uring",
            SpoolIo::Thread => "thread",
        }
    }
}

impl Ack {
    /// `ack all`, `ack enqueue`, `durable batch io=uring`, …
    pub fn label(self) -> String {
        match self {
            Ack::All => "ack all".into(),
            Ack::Enqueue => "ack enqueue".into(),
            Ack::Durable { fsync, io } => format!("durable {} io={}", fsync.name(), io.name()),
        }
    }

    /// Whether the client's 200 comes before the destinations have the request.
    pub fn answers_before_delivery(self) -> bool {
        !matches!(self, Ack::All)
    }

    /// The gateway's flags for this policy; `scratch` is a fresh directory of this run
    /// (the spool and its configuration file go there).
    pub fn flags(self, scratch: Option<&Path>) -> Result<Vec<String>, String> {
        match self {
            Ack::All => Ok(Vec::new()),
            Ack::Enqueue => Ok(vec!["--ack".into(), "enqueue".into()]),
            Ack::Durable { fsync, io } => {
                let dir = scratch.ok_or("a durable gateway needs a scratch directory")?;
                let file = write_durable(dir, fsync, io)?;
                Ok(vec!["--config".into(), file.display().to_string()])
            }
        }
    }
}

/// Where [`write_durable`] puts the spool, inside the run's scratch directory.
pub const SPOOL_SUBDIR: &str = "spool";

/// The `durable` suite's configuration: `ack = "durable"` with the spool in `spool_dir`,
/// `fsync` and `io` as given, every other spool setting at its default (`fsync_interval =
/// 5ms`, 64 MiB segments, 10 GiB per destination).
pub fn durable(spool_dir: &Path, fsync: Fsync, io: SpoolIo) -> String {
    format!(
        "# pyrogate-load bench --suites durable: answer after the spool's group commit\n\
         [forward]\nack = \"durable\"\n\n[spool]\ndir = \"{}\"\nfsync = \"{}\"\nio = \"{}\"\n",
        toml_escape(&spool_dir.display().to_string()),
        fsync.name(),
        io.name()
    )
}

/// Writes [`durable`] to `scratch/durable.toml`, the spool in `scratch/`[`SPOOL_SUBDIR`].
pub fn write_durable(scratch: &Path, fsync: Fsync, io: SpoolIo) -> Result<PathBuf, String> {
    let text = durable(&scratch.join(SPOOL_SUBDIR), fsync, io);
    write(&scratch.join("durable.toml"), &text)
}

/// The inside of a TOML basic string.
fn toml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}
