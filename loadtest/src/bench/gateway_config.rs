//! The configuration files the benchmark suites start pyrogate with. They live here, below
//! the suites and the runner, so that the runner can start any variant without importing
//! the suite that defines it.

use std::path::{Path, PathBuf};

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
