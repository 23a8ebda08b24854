//! Start-up configuration errors and `--check-config`, on the real binary: an invalid
//! configuration exits non-zero with exactly one line on stderr that names the key.

mod common;

use std::net::TcpListener;
use std::process::Output;
use std::time::Duration;

use common::{run, run_with_env, write_temp};

const T: Duration = Duration::from_secs(10);

/// Asserts a start-up failure: non-zero exit, nothing on stdout, one line on stderr that
/// contains every `needle`. Returns the line.
fn assert_config_error(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got {:?}; stderr: {stderr}",
        out.status
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "config errors exit 2; stderr: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr, got:\n{stderr}");
    let line = lines[0];
    for n in needles {
        assert!(line.contains(n), "{line:?} should name {n:?}");
    }
    assert!(
        out.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    line.to_string()
}

fn with_file(toml: &str, extra: &[&str]) -> Output {
    let path = write_temp("config.toml", toml);
    let mut args = vec!["-c", path.to_str().unwrap(), "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let out = run(&args, T);
    let _ = std::fs::remove_file(path);
    out
}

#[test]
fn unknown_keys_are_rejected() {
    let out = with_file("[server]\nconn_limt = 5\n", &[]);
    assert_config_error(&out, &["server.conn_limt"]);
    let out = with_file("bogus = 1\n", &[]);
    assert_config_error(&out, &["bogus"]);
    let out = with_file("[runtime]\nworkerz = 2\n", &[]);
    assert_config_error(&out, &["runtime.workerz"]);
}

#[test]
fn quotas_must_sum_to_conn_limit() {
    let out = with_file(
        "[server]\nconn_limit = 100\n[runtime]\nworkers = 2\ncore_quotas = [10, 20]\n",
        &[],
    );
    let line = assert_config_error(&out, &["runtime.core_quotas", "30", "100"]);
    assert!(line.starts_with("pyrogate: config error:"), "{line}");
    // The same through flags.
    let out = run(
        &[
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--conn-limit",
            "4",
            "--core-quota",
            "0=1",
            "--core-quota",
            "1=1",
        ],
        T,
    );
    assert_config_error(&out, &["core_quotas", "4"]);
    // Explicit quotas that leave nothing for the other workers.
    let out = run(
        &[
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--conn-limit",
            "4",
            "--core-quota",
            "0=4",
        ],
        T,
    );
    assert_config_error(&out, &["core_quotas"]);
}

#[test]
fn quota_for_a_core_without_worker() {
    let out = run(
        &[
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--core-quota",
            "2=5",
        ],
        T,
    );
    assert_config_error(&out, &["--core-quota", "core 2"]);
    let out = with_file(
        "[server]\nconn_limit = 6\n[runtime]\nworkers = 2\ncore_quotas = [1, 2, 3]\n",
        &[],
    );
    assert_config_error(&out, &["runtime.core_quotas", "3 quotas", "2 workers"]);
}

#[test]
fn bad_durations_and_sizes_name_the_key() {
    let out = run(
        &[
            "--listen",
            "127.0.0.1:0",
            "--server-read-timeout",
            "30parsecs",
        ],
        T,
    );
    assert_config_error(&out, &["--server-read-timeout", "30parsecs"]);
    let out = with_file("[server]\nserver_idle_timeout = \"2 fortnights\"\n", &[]);
    assert_config_error(&out, &["server.server_idle_timeout"]);
    let out = with_file("[server]\ngraceful_shutdown_timeout = 30\n", &[]);
    assert_config_error(&out, &["server.graceful_shutdown_timeout"]);
    let out = run(
        &["--listen", "127.0.0.1:0", "--max-request-body", "12XB"],
        T,
    );
    assert_config_error(&out, &["--max-request-body"]);
    let out = run(
        &["--listen", "127.0.0.1:0", "--server-write-timeout", "0"],
        T,
    );
    assert_config_error(&out, &["server_write_timeout"]);
}

#[test]
fn bad_enums_and_counts_name_the_key() {
    let out = run(&["--listen", "127.0.0.1:0", "--on-conn-limit", "drop"], T);
    assert_config_error(&out, &["on_conn_limit", "drop"]);
    let out = run(&["--listen", "127.0.0.1:0", "--driver", "kqueue"], T);
    assert_config_error(&out, &["driver", "kqueue"]);
    let out = run(&["--listen", "127.0.0.1:0", "--workers", "0"], T);
    assert_config_error(&out, &["workers"]);
    let out = run(&["--listen", "localhost"], T);
    assert_config_error(&out, &["--listen"]);
    let out = run(&["-c", "/nonexistent/pyrogate.toml"], T);
    assert_config_error(&out, &["--config", "/nonexistent/pyrogate.toml"]);
}

#[test]
fn port_in_use_is_one_clear_line() {
    // A listener without SO_REUSEPORT owns its port exclusively.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&["--listen", &addr, "--driver", "legacy"], T);
    assert_config_error(&out, &["server.listen_port", &addr]);
    // --check-config finds it too.
    let out = run(&["--check-config", "--listen", &addr], T);
    assert_config_error(&out, &["server.listen_port", &addr]);
}

#[test]
fn check_config_success() {
    let toml = "external_labels = { env = \"prod\" }\n\
                [server]\nlisten_address = \"127.0.0.1\"\nlisten_port = 0\nconn_limit = 16384\n\
                on_conn_limit = \"reject\"\nserver_read_timeout = \"5s\"\nmax_request_body = \"16MiB\"\n\
                [runtime]\nworkers = 2\ncore_quotas = [4096, 12288]\ndriver = \"legacy\"\n";
    let path = write_temp("check.toml", toml);
    let out = run(&["--check-config", "-c", path.to_str().unwrap()], T);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for needle in [
        "configuration OK",
        "conn_limit=16384",
        "on_conn_limit=Reject",
        "read_timeout=5s",
        "core_quotas=[4096, 12288]",
        "driver: legacy",
    ] {
        assert!(
            stdout.contains(needle),
            "{needle:?} missing from:\n{stdout}"
        );
    }
    // The same file through PYROGATE_CONFIG, with a flag overriding it.
    let out = run_with_env(
        &[
            "--check-config",
            "--conn-limit",
            "100",
            "--core-quota",
            "0=40",
            "--core-quota",
            "1=60",
        ],
        &[("PYROGATE_CONFIG", path.to_str().unwrap())],
        T,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("conn_limit=100"), "{stdout}");
    assert!(stdout.contains("core_quotas=[40, 60]"), "{stdout}");
    let _ = std::fs::remove_file(path);
    // And a failing check exits non-zero.
    let out = run(&["--check-config", "--workers", "0"], T);
    assert_config_error(&out, &["workers"]);
}

/// `[distributor]` and `[limits]` under Pyroscope's names: `--check-config` prints them,
/// overrides included, and refuses bad values and unknown keys naming the key.
#[test]
fn check_config_distributor_and_limits() {
    let toml = "[distributor]\nvalidate = true\nnormalize = true\nmultitenancy_enabled = true\n\
                [limits]\ningestion_rate_mb = 8\nmax_label_names_per_series = 40\nreject_older_than = \"2h\"\n\
                [limits.overrides.\"tenant-a\"]\ningestion_rate_mb = 20\n";
    let path = write_temp("distributor.toml", toml);
    let out = run(&["--check-config", "-c", path.to_str().unwrap()], T);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for needle in [
        "distributor validate=true normalize=true multitenancy_enabled=true",
        "limits ingestion_rate_mb=8 ingestion_burst_size_mb=2 ",
        "max_label_names_per_series=40",
        "reject_older_than=2h",
        "limits tenant=\"tenant-a\" ingestion_rate_mb=20 ",
    ] {
        assert!(
            stdout.contains(needle),
            "{needle:?} missing from:\n{stdout}"
        );
    }
    for (bad, key) in [
        (
            "[limits]\ningestion_rate_mb = -1\n",
            "limits.ingestion_rate_mb",
        ),
        ("[limits]\nmax_label_names = 3\n", "max_label_names"),
        ("[distributor]\nvalidte = true\n", "validte"),
        (
            "[limits.overrides.\"t\"]\ningestion_burst_size_mb = 0\n",
            "ingestion_burst_size_mb",
        ),
    ] {
        let p = write_temp("bad-distributor.toml", bad);
        let out = run(&["--check-config", "-c", p.to_str().unwrap()], T);
        assert_config_error(&out, &[key]);
    }
}

/// `forward.mode = "ring"` and `[ring]`: printed by `--check-config`; ring mode with
/// endpoints, or without `[ring]`, is refused naming the key.
#[test]
fn check_config_ring() {
    let toml = "[forward]\nmode = \"ring\"\n[ring]\nreplication_factor = 3\n\
                [[ring.member]]\nid = \"a\"\nurl = \"http://127.0.0.1:4040\"\ntokens_count = 16\n\
                [[ring.member]]\nid = \"b\"\nurl = \"http://127.0.0.1:4041\"\n";
    let path = write_temp("ring.toml", toml);
    let out = run(&["--check-config", "-c", path.to_str().unwrap()], T);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for needle in [
        "forward mode=Ring",
        "ring replication_factor=3 zone_awareness=false heartbeat_timeout=1m push_path=/push.v1.PusherService/Push store=static members=a(16 tokens),b(128 tokens)",
    ] {
        assert!(
            stdout.contains(needle),
            "{needle:?} missing from:\n{stdout}"
        );
    }
    let out = run(
        &[
            "--check-config",
            "-c",
            path.to_str().unwrap(),
            "--forward-to",
            "http://127.0.0.1:1",
        ],
        T,
    );
    assert_config_error(&out, &["endpoint"]);
    let p = write_temp("ring-missing.toml", "[forward]\nmode = \"ring\"\n");
    let out = run(&["--check-config", "-c", p.to_str().unwrap()], T);
    assert_config_error(&out, &["forward.mode"]);
}
