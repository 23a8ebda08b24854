//! Reading a directory of captured requests and real profiles (`--fixtures DIR`), laid out
//! like the project's optional captured corpus (`clients/`, `pprof/`, `jfr/`).

use std::path::Path;

/// Largest file read (real captures are below 100 KB).
const MAX_FIXTURE: u64 = 64 << 20;

/// Checks that `dir` is a directory.
pub fn check_dir(dir: &Path) -> Result<(), String> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(format!(
            "fixture directory {} does not exist",
            dir.display()
        ))
    }
}

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
