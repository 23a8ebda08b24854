//! Locating `../shared/fixtures` (the captured SDK requests and real profiles).

use std::path::{Path, PathBuf};

/// Environment variable that overrides the fixture directory.
pub const ENV: &str = "PYROGATE_FIXTURES";

/// Where the fixtures are: `explicit` if given, else `$PYROGATE_FIXTURES`, else
/// `../shared/fixtures` next to the repository root, found from (in order) this crate's
/// source tree at build time, the running executable (`<repo>/target/<profile>/…`), and the
/// current directory (the project root, where the docs say to run from).
pub fn dir(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return check(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(ENV) {
        return check(PathBuf::from(p));
    }
    let candidates = candidates();
    for c in &candidates {
        if c.join("README.md").is_file() {
            return Ok(normalize(c));
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

fn candidates() -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures"
    ))];
    // <repo>/target/<profile>/pyrogate-load (or …/deps/<test binary>): try each ancestor as
    // the repository root.
    if let Ok(exe) = std::env::current_exe() {
        out.extend(
            exe.ancestors()
                .skip(2)
                .take(3)
                .map(|root| root.join("../shared/fixtures")),
        );
    }
    out.push(PathBuf::from("../shared/fixtures"));
    out
}

/// `a/b/../c` → `a/c` when the path exists (for readable messages); unchanged otherwise.
fn normalize(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
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
