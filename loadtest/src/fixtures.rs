//! Locating `../shared/fixtures` (the captured SDK requests and real profiles).

use std::path::{Path, PathBuf};

/// Environment variable that overrides the fixture directory.
pub const ENV: &str = "PYROGATE_FIXTURES";

/// Where the fixtures are: `explicit` if given, else `$PYROGATE_FIXTURES`, else
/// `../shared/fixtures` seen from the current directory (the project root, where the docs
/// say to run from), else the same directory seen from this crate's source tree.
pub fn dir(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return check(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(ENV) {
        return check(PathBuf::from(p));
    }
    let candidates = [
        PathBuf::from("../shared/fixtures"),
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures"
        )),
    ];
    for c in &candidates {
        if c.join("README.md").is_file() {
            return Ok(c.clone());
        }
    }
    Err(format!(
        "fixture directory not found (tried {}); pass --fixtures DIR or set {ENV}",
        candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn check(p: PathBuf) -> Result<PathBuf, String> {
    if p.is_dir() {
        Ok(p)
    } else {
        Err(format!("fixture directory {} does not exist", p.display()))
    }
}

/// Largest fixture file read (the biggest real one is ~51 KB).
const MAX_FIXTURE: u64 = 64 << 20;

/// Reads `rel` under `dir`, bounded.
pub fn read(dir: &Path, rel: &str) -> Result<Vec<u8>, String> {
    let path = dir.join(rel);
    let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > MAX_FIXTURE {
        return Err(format!(
            "{}: larger than {MAX_FIXTURE} bytes",
            path.display()
        ));
    }
    std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
}
