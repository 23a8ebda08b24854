//! `scripts/bench.sh --compare OLD.json --against NEW.json` (the regression guard of
//! scripts/bench-compare.py) on two small hand-made reports: the ratios it prints, the cells
//! it marks as lost, and its exit status with and without `--fail-below`. No benchmark runs.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// One forward/receive cell: `cpu_ms_per_1k` per round (`None`: no CPU figure, the direct
/// path), `rps` per round.
fn cell(label: &str, kind: &str, fanout: u64, cpu: &[Option<f64>], rps: f64) -> Value {
    let samples: Vec<Value> = cpu
        .iter()
        .enumerate()
        .map(|(round, c)| json!({"round": round, "rps": rps, "cpu_ms_per_1k": c, "steal_pct": 0.1}))
        .collect();
    json!({
        "cell": {"variant": {"kind": kind, "driver": "io_uring"}, "fanout": fanout, "size": 1024},
        "label": label,
        "samples": samples,
    })
}

/// A report with the forward suite's pyrogate and nginx cells, a receive cell, a failed run
/// (`null` sample) and a memory result.
fn report(pyrogate_cpu: f64, nginx_cpu: f64, bytes_per_conn: f64, extra: bool) -> Value {
    let mut forward = vec![
        cell(
            "pyrogate io_uring",
            "pyrogate",
            2,
            &[
                Some(pyrogate_cpu * 1.1),
                Some(pyrogate_cpu),
                Some(pyrogate_cpu * 0.9),
            ],
            9000.0,
        ),
        cell("nginx", "nginx_proxy", 2, &[Some(nginx_cpu); 3], 8000.0),
        cell("direct → sink", "direct", 1, &[None, None, None], 50_000.0),
    ];
    forward[1]["samples"][2] = Value::Null;
    if extra {
        forward.push(cell("pyrogate epoll", "pyrogate", 2, &[Some(10.0); 3], 1.0));
    }
    json!({
        "machine": {"cpus": [0, 1]},
        "protocol": "push",
        "forward": forward,
        "receive": [cell("pyrogate io_uring", "pyrogate", 0, &[Some(10.0); 3], 1.0)],
        "latency": null,
        "memory": [{"server": "pyrogate io_uring", "conns": 1000, "bytes_per_conn": bytes_per_conn}],
        "ring": [],
        "notes": ["ignored"],
        "failures": [],
    })
}

fn write(name: &str, v: &Value) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "pyrogate-bench-compare-{}-{name}.json",
        std::process::id()
    ));
    std::fs::write(&p, serde_json::to_vec_pretty(v).expect("serializable")).expect("write");
    p
}

fn compare(old: &PathBuf, new: &PathBuf, extra: &[&str]) -> (Output, String) {
    let out = Command::new("bash")
        .arg(repo().join("scripts/bench.sh"))
        .arg("--compare")
        .arg(old)
        .arg("--against")
        .arg(new)
        .args(extra)
        .output()
        .expect("run scripts/bench.sh");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, text)
}

/// The line of a cell: (new/old, gain, marked lost).
fn row(text: &str, starts: &str) -> (f64, f64, bool) {
    let line = text
        .lines()
        .find(|l| l.starts_with(starts))
        .unwrap_or_else(|| panic!("no row {starts:?} in:\n{text}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    let lost = cols.last() == Some(&"LOST");
    let n = cols.len() - usize::from(lost);
    let num = |s: &str| {
        s.parse::<f64>()
            .unwrap_or_else(|_| panic!("{s:?} in {line:?}"))
    };
    (num(cols[n - 2]), num(cols[n - 1]), lost)
}

#[test]
fn prints_ratios_flags_losses_and_fails_below_the_threshold() {
    // pyrogate: 20 µs → 25 µs of CPU per request (req/CPU-s × 0.8); nginx 40 → 32 µs
    // (× 1.25); memory 1000 → 1250 B/conn (worse: gain 0.8); an extra cell only in the new.
    let old = write("old", &report(20.0, 40.0, 1000.0, false));
    let new = write("new", &report(25.0, 32.0, 1250.0, true));
    let (out, text) = compare(&old, &new, &[]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let close = |a: f64, b: f64| (a - b).abs() < 0.002;
    let (ratio, gain, lost) = row(&text, "push: forward[pyrogate io_uring, fan-out 2 1 KiB]");
    assert!(close(ratio, 0.8) && close(gain, 0.8) && lost, "{text}");
    // nginx's third round failed (null): the median of the other two.
    let (ratio, gain, lost) = row(&text, "push: forward[nginx, fan-out 2 1 KiB]");
    assert!(close(ratio, 1.25) && close(gain, 1.25) && !lost, "{text}");
    // The direct path has no CPU figure: compared by req/s, unchanged.
    let (ratio, _, lost) = row(&text, "push: forward[direct → sink, fan-out 1 1 KiB]");
    assert!(close(ratio, 1.0) && !lost, "{text}");
    // Lower is better for memory: new/old 1.25, gain 0.8.
    let (ratio, gain, lost) = row(&text, "push: memory[server=pyrogate io_uring]");
    assert!(close(ratio, 1.25) && close(gain, 0.8) && lost, "{text}");
    assert!(text.contains("5 cell(s) in both"), "{text}");
    assert!(
        text.contains("(0 cell(s) only in the old report, 1 only in the new)"),
        "{text}"
    );
    assert!(text.contains("2 cell(s) lost more than 5 %"), "{text}");
    // --fail-below: exit 1 when a cell is below it, 0 when none is.
    let (out, text) = compare(&old, &new, &["--fail-below", "0.9"]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 cell(s) below --fail-below 0.9"));
    let (out, text) = compare(&old, &new, &["--fail-below", "0.75"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // --flag-below moves the LOST mark only.
    let (out, text) = compare(&old, &new, &["--flag-below", "0.7"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("LOST"), "{text}");
    for p in [old, new] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn reports_without_a_common_cell_or_unreadable_are_an_error() {
    let old = write("proto-old", &report(20.0, 40.0, 1000.0, false));
    let mut other = report(20.0, 40.0, 1000.0, false);
    other["protocol"] = json!("ingest-pprof");
    let new = write("proto-new", &other);
    let (out, _) = compare(&old, &new, &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "another protocol: no cell in common"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no cell in common"));
    let missing = std::env::temp_dir().join("pyrogate-bench-compare-missing.json");
    let (out, _) = compare(&old, &missing, &[]);
    assert_eq!(out.status.code(), Some(2));
    // The guard's own options need --compare.
    let out = Command::new("bash")
        .arg(repo().join("scripts/bench.sh"))
        .args(["--fail-below", "0.9"])
        .output()
        .expect("run scripts/bench.sh");
    assert_eq!(out.status.code(), Some(2));
    for p in [old, new] {
        let _ = std::fs::remove_file(p);
    }
}
