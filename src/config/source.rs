//! Reading the TOML file, with parse errors located: the one-line message names the key by
//! its dotted path and line, which is what an operator needs.

use std::path::Path;

use super::ConfigError;
use super::file::FileConfig;

pub(super) fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new("--config", format!("cannot read {}: {e}", path.display()))
    })?;
    parse_toml(&text)
}

pub(super) fn parse_toml(text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| {
        // toml's message spans several lines with a source excerpt; the first line names the
        // problem and the key path, which is what an operator needs.
        let msg = e.message().to_string();
        let key = e
            .span()
            .map(|sp| locate_key(text, sp.start))
            .unwrap_or_else(|| "file".into());
        ConfigError::new(key, msg)
    })
}

/// Names the key at an error offset as its full dotted path (`server.conn_limt`, found from
/// the enclosing `[table]` header) plus the line, so the one-line message says which key.
fn locate_key(text: &str, offset: usize) -> String {
    let line = text[..offset.min(text.len())].matches('\n').count() + 1;
    let lines: Vec<&str> = text.lines().collect();
    let content = lines.get(line - 1).copied().unwrap_or("").trim();
    if content.starts_with('[') {
        let table = content.trim_matches(|c| c == '[' || c == ']').trim();
        return format!("{table} (line {line})");
    }
    let key = content.split('=').next().unwrap_or("").trim();
    if key.is_empty() {
        return format!("line {line}");
    }
    let table = lines[..(line - 1).min(lines.len())]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim());
    match table {
        Some(t) if !t.is_empty() => format!("{t}.{key} (line {line})"),
        _ => format!("{key} (line {line})"),
    }
}
