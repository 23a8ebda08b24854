//! Operations on the real binary: SIGHUP reload of endpoints, labels and the listen address
//! (two-phase, established connections kept, a bad file changes nothing), systemd
//! notifications (READY, RELOADING + MONOTONIC_USEC, STOPPING, WATCHDOG), JSON logs, the
//! io_uring → epoll fallback under a seccomp filter that denies `io_uring_setup`, the unit
//! file (`systemd-analyze verify`) and `scripts/install.sh`.

mod common;
mod sinks;

use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Conn, Gateway, free_port, poll_until, write_temp};
use sinks::Sink;

const WAIT: Duration = Duration::from_secs(10);

/// A gateway started from a config file only (no `--listen`), so that a reload can move it.
struct Proc {
    child: Child,
    stderr: PathBuf,
}

impl Proc {
    fn start(args: &[&str], env: &[(&str, &str)], wait_port: Option<u16>) -> Proc {
        let stderr = common::temp_path("ops-stderr");
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .env_remove("PYROGATE_CONFIG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn pyrogate");
        let p = Proc { child, stderr };
        if let Some(port) = wait_port {
            let ok = poll_until(WAIT, || ready(port).then_some(()));
            assert!(ok.is_some(), "not ready on {port}:\n{}", p.stderr());
        }
        p
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        poll_until(timeout, || self.child.try_wait().ok().flatten())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ready(port: u16) -> bool {
    Conn::connect(([127, 0, 0, 1], port).into())
        .and_then(|mut c| c.get("/-/ready"))
        .is_ok_and(|r| r.status == 200)
}

fn config_for(port: u16, sink: &Sink, extra_top: &str) -> String {
    format!(
        "{extra_top}\n[server]\nlisten_address = \"127.0.0.1\"\nlisten_port = {port}\n\
         [runtime]\nworkers = 2\n[[endpoint]]\nurl = \"{}\"\n",
        sink.url()
    )
}

#[test]
fn sighup_reloads_endpoints_labels_and_listen_address_keeping_connections() {
    let (a, b) = (Sink::start(&[]), Sink::start(&[]));
    let port = free_port();
    let cfg = write_temp("ops-reload.toml", &config_for(port, &a, ""));
    let p = Proc::start(&["-c", cfg.to_str().unwrap_or_default()], &[], Some(port));
    let mut kept = Conn::connect(([127, 0, 0, 1], port).into()).expect("connect");
    let body = common::cpu_pprof_gz();
    let send = |c: &mut Conn| c.request("POST", "/ingest?name=r.app&format=pprof", &[], &body);
    assert_eq!(send(&mut kept).expect("before").status, 200);
    assert_eq!(a.wait_records(1, WAIT).len(), 1);

    // New endpoint, an external label and a new port.
    let port2 = free_port();
    std::fs::write(
        &cfg,
        config_for(port2, &b, "external_labels = { reloaded = \"yes\" }"),
    )
    .expect("write config");
    p.signal(libc::SIGHUP);
    let moved = poll_until(WAIT, || ready(port2).then_some(()));
    assert!(
        moved.is_some(),
        "not listening on the new port:\n{}",
        p.stderr()
    );
    assert!(
        poll_until(WAIT, || (!ready(port)).then_some(())).is_some(),
        "old port still served"
    );
    // The connection established before the reload still works, with the new settings.
    assert_eq!(send(&mut kept).expect("after").status, 200);
    let rec = &b.wait_records(1, WAIT)[0];
    assert_eq!(rec["name"]["reloaded"], "yes");
    assert_eq!(
        a.records().len(),
        1,
        "the removed endpoint gets nothing new"
    );
    assert!(
        p.stderr().contains("configuration reloaded"),
        "{}",
        p.stderr()
    );

    // A bad file: rejected, the running configuration kept.
    std::fs::write(&cfg, "[server]\nlisten_port = \"nope\"\n").expect("write");
    p.signal(libc::SIGHUP);
    assert!(
        poll_until(WAIT, || p
            .stderr()
            .contains("reload rejected")
            .then_some(()))
        .is_some(),
        "{}",
        p.stderr()
    );
    assert_eq!(send(&mut kept).expect("still").status, 200);
    assert_eq!(b.wait_records(2, WAIT).len(), 2);

    // Changing the worker count needs a restart: rejected, nothing changes.
    std::fs::write(
        &cfg,
        config_for(port2, &a, "").replace("workers = 2", "workers = 1"),
    )
    .expect("write");
    p.signal(libc::SIGHUP);
    assert!(
        poll_until(WAIT, || p
            .stderr()
            .contains("changing the number of workers")
            .then_some(()))
        .is_some(),
        "{}",
        p.stderr()
    );
    assert_eq!(send(&mut kept).expect("still").status, 200);
    assert_eq!(
        b.wait_records(3, WAIT).len(),
        3,
        "endpoint b still in force"
    );
}

/// Collects datagrams sent to a NOTIFY_SOCKET.
fn notify_socket() -> (UnixDatagram, PathBuf) {
    let path = common::temp_path("notify.sock");
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    (sock, path)
}

fn wait_message(sock: &UnixDatagram, needle: &str, seen: &mut Vec<String>) -> bool {
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).to_string();
            seen.push(m.clone());
            if m.contains(needle) {
                return true;
            }
        }
    }
    false
}

#[test]
fn systemd_notifications_and_watchdog() {
    let (sock, path) = notify_socket();
    let port = free_port();
    let cfg = write_temp(
        "ops-notify.toml",
        &format!("[server]\nlisten_address = \"127.0.0.1\"\nlisten_port = {port}\n"),
    );
    let mut p = Proc::start(
        &["-c", cfg.to_str().unwrap_or_default()],
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap_or_default()),
            ("WATCHDOG_USEC", "2000000"),
        ],
        None,
    );
    let mut seen = Vec::new();
    assert!(wait_message(&sock, "READY=1", &mut seen), "{seen:?}");
    assert!(
        ready(port),
        "READY=1 is sent only once every worker listens"
    );
    assert!(wait_message(&sock, "WATCHDOG=1", &mut seen), "{seen:?}");
    p.signal(libc::SIGHUP);
    assert!(wait_message(&sock, "RELOADING=1", &mut seen), "{seen:?}");
    let reloading = seen.last().cloned().unwrap_or_default();
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .expect("MONOTONIC_USEC with RELOADING=1");
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let now = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000;
    assert!(
        usec <= now && now - usec < 10_000_000,
        "MONOTONIC_USEC {usec} vs {now}"
    );
    assert!(
        wait_message(&sock, "READY=1", &mut seen),
        "READY again after reload: {seen:?}"
    );
    p.signal(libc::SIGTERM);
    assert!(wait_message(&sock, "STOPPING=1", &mut seen), "{seen:?}");
    let st = p.wait(WAIT).expect("exits");
    assert!(st.success());
    let _ = std::fs::remove_file(&path);
}

#[test]
fn json_logs_with_startup_line() {
    let gw = Gateway::start(&[
        "--log-format",
        "json",
        "--workers",
        "2",
        "--core-quota",
        "0=100",
    ]);
    // The workers answer /-/ready a moment before the main thread logs the startup line.
    let line = poll_until(WAIT, || {
        gw.stderr()
            .lines()
            .find(|l| l.contains("pyrogate listening"))
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no startup line:\n{}", gw.stderr()));
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    assert_eq!(v["level"], "INFO");
    assert!(v["driver"].as_str().is_some(), "{v}");
    assert_eq!(v["workers"], 2);
    assert!(
        v["core_quotas"]
            .as_str()
            .unwrap_or_default()
            .contains("100"),
        "{v}"
    );
    assert!(v["endpoints"].is_string(), "{v}");
}

/// A seccomp filter that makes `io_uring_setup` fail with EPERM, as a container runtime or
/// systemd's `SystemCallFilter=~io_uring_setup` would. x86_64 and aarch64 syscall numbers
/// are the same (425).
fn deny_io_uring(cmd: &mut Command) {
    #[repr(C)]
    struct SockFilter {
        code: u16,
        jt: u8,
        jf: u8,
        k: u32,
    }
    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const SockFilter,
    }
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JEQ_K: u16 = 0x15;
    const BPF_RET_K: u16 = 0x06;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    const SECCOMP_MODE_FILTER: libc::c_ulong = 2;
    // SAFETY: the closure runs in the child between fork and exec and only calls prctl on
    // data it owns.
    unsafe {
        cmd.pre_exec(|| {
            let filter = [
                SockFilter {
                    code: BPF_LD_W_ABS,
                    jt: 0,
                    jf: 0,
                    k: 0,
                },
                SockFilter {
                    code: BPF_JMP_JEQ_K,
                    jt: 0,
                    jf: 1,
                    k: libc::SYS_io_uring_setup as u32,
                },
                SockFilter {
                    code: BPF_RET_K,
                    jt: 0,
                    jf: 0,
                    k: SECCOMP_RET_ERRNO | libc::EPERM as u32,
                },
                SockFilter {
                    code: BPF_RET_K,
                    jt: 0,
                    jf: 0,
                    k: SECCOMP_RET_ALLOW,
                },
            ];
            let prog = SockFprog {
                len: filter.len() as u16,
                filter: filter.as_ptr(),
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(
                libc::PR_SET_SECCOMP,
                SECCOMP_MODE_FILTER,
                &prog as *const SockFprog,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn io_uring_denied_by_seccomp_falls_back_or_fails_clearly() {
    // auto: runs on epoll, warns once, serves.
    let port = free_port();
    let stderr = common::temp_path("seccomp-stderr");
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--driver",
        "auto",
        "--workers",
        "2",
    ])
    .env("NO_COLOR", "1")
    .env_remove("RUST_LOG")
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&stderr).expect("stderr"));
    deny_io_uring(&mut cmd);
    let mut child = cmd.spawn().expect("spawn under seccomp");
    let up = poll_until(WAIT, || ready(port).then_some(()));
    // Workers answer before the main thread has logged its start-up lines (the fallback
    // warning comes first, then "pyrogate listening"): wait for the last one.
    let log = poll_until(WAIT, || {
        let log = std::fs::read_to_string(&stderr).unwrap_or_default();
        log.contains("pyrogate listening").then_some(log)
    })
    .unwrap_or_else(|| std::fs::read_to_string(&stderr).unwrap_or_default());
    let _ = child.kill();
    let _ = child.wait();
    assert!(up.is_some(), "did not serve under seccomp:\n{log}");
    assert_eq!(
        log.matches("io_uring unavailable").count(),
        1,
        "exactly one fallback warning:\n{log}"
    );
    assert!(log.contains("denied"), "the reason is named:\n{log}");
    assert!(log.contains("driver=\"legacy (epoll)\""), "{log}");

    // io_uring required: a clear error, non-zero exit.
    let mut cmd = Command::new(BIN);
    cmd.args(["--listen", "127.0.0.1:0", "--driver", "io_uring"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    deny_io_uring(&mut cmd);
    let out = cmd.output().expect("run under seccomp");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("runtime.driver") && err.contains("io_uring cannot be used"),
        "{err}"
    );
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn systemd_unit_verifies_cleanly() {
    let unit = std::fs::read_to_string(repo().join("systemd/pyrogate.service")).expect("unit");
    for needed in [
        "Type=notify",
        "ExecStartPre=/usr/local/bin/pyrogate --check-config",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "LimitNOFILE=",
        "LimitMEMLOCK=",
        "SystemCallFilter=@system-service",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "Restart=on-failure",
        "WatchdogSec=",
        "StateDirectory=pyrogate",
    ] {
        assert!(unit.contains(needed), "unit lacks {needed}");
    }
    let dir = common::temp_path("unit");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("pyrogate.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/pyrogate", BIN)).expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (scripts/test.sh installs it)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.trim().is_empty(),
        "warnings from systemd-analyze verify:\n{err}"
    );
    // The example config it points at validates.
    let out = common::run(
        &[
            "--config",
            repo()
                .join("systemd/pyrogate.toml")
                .to_str()
                .unwrap_or_default(),
            "--check-config",
            "--listen",
            "127.0.0.1:0",
        ],
        WAIT,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn install_script_is_idempotent_and_uninstalls() {
    let root = common::temp_path("destdir");
    let run = |args: &[&str]| {
        let out = Command::new(repo().join("scripts/install.sh"))
            .args(args)
            .env("DESTDIR", &root)
            .env("PYROGATE_BIN", BIN)
            .output()
            .expect("run install.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let bin = root.join("usr/local/bin/pyrogate");
    let unit = root.join("etc/systemd/system/pyrogate.service");
    let conf = root.join("etc/pyrogate/pyrogate.toml");
    run(&["--no-build"]);
    assert!(bin.exists() && unit.exists() && conf.exists());
    std::fs::write(&conf, "# operator's edit\n").expect("edit config");
    let second = run(&["--no-build"]);
    assert!(second.contains("kept existing"), "{second}");
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap_or_default(),
        "# operator's edit\n"
    );
    run(&["--uninstall"]);
    assert!(!bin.exists() && !unit.exists());
    assert!(conf.exists(), "config kept without --purge");
    run(&["--uninstall", "--purge"]);
    assert!(!conf.exists());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_second_gateway_on_the_same_port_is_refused() {
    // Both would set SO_REUSEPORT; without the exclusivity check the second one would
    // silently take half of the first one's connections.
    let first = Gateway::start(&["--workers", "1"]);
    let out = common::run(&["--listen", &first.addr.to_string()], WAIT);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.listen_port") && err.contains("in use"),
        "{err}"
    );
    assert!(ready(first.addr.port()), "the first one keeps serving");
}

fn endpoints_config(port: u16, sinks: &[&Sink], remote_timeout: &str) -> String {
    let mut s = format!(
        "[server]\nlisten_address = \"127.0.0.1\"\nlisten_port = {port}\n[runtime]\nworkers = 1\n"
    );
    for (i, sink) in sinks.iter().enumerate() {
        s += &format!(
            "[[endpoint]]\nname = \"e{i}\"\nurl = \"{}\"\nremote_timeout = \"{remote_timeout}\"\n",
            sink.url()
        );
    }
    s
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn accepted(sink: &Sink) -> u64 {
    sink.stats()["totals"]["accepted"].as_u64().unwrap_or(0)
}

/// Regression: pools were keyed by the destination's address, so after reloads that rebuilt
/// the endpoints a new destination could inherit a freed one's pooled connections (profiles
/// meant for one sink went to the other while `ack = all` answered 200), and the pools of
/// removed destinations were never closed (a file-descriptor leak per reload).
#[test]
fn repeated_reloads_keep_each_endpoint_on_its_own_connections() {
    const ROUNDS: usize = 12;
    const CONNS: usize = 4;
    const PER_CONN: usize = 25;
    let (a, b) = (Sink::start(&[]), Sink::start(&[]));
    let port = free_port();
    let cfg = write_temp("ops-pools.toml", &endpoints_config(port, &[&a, &b], "4s"));
    let p = Proc::start(&["-c", cfg.to_str().unwrap_or_default()], &[], Some(port));
    let pid = p.child.id();
    let body = common::cpu_pprof_gz();
    let mut fds_after_first = 0;
    for round in 0..ROUNDS {
        std::thread::scope(|s| {
            for _ in 0..CONNS {
                s.spawn(|| {
                    let mut c = Conn::connect(([127, 0, 0, 1], port).into()).expect("connect");
                    for _ in 0..PER_CONN {
                        let r = c
                            .request("POST", "/ingest?name=pools.app&format=pprof", &[], &body)
                            .expect("response");
                        assert_eq!(r.status, 200);
                    }
                });
            }
        });
        if round == 0 {
            fds_after_first = open_fds(pid);
        }
        let timeout = if round % 2 == 0 { "5s" } else { "4s" };
        std::fs::write(&cfg, endpoints_config(port, &[&a, &b], timeout)).expect("write");
        let before = p.stderr().matches("configuration reloaded").count();
        p.signal(libc::SIGHUP);
        let reloaded = poll_until(WAIT, || {
            (p.stderr().matches("configuration reloaded").count() > before).then_some(())
        });
        assert!(reloaded.is_some(), "{}", p.stderr());
    }
    let sent = (ROUNDS * CONNS * PER_CONN) as u64;
    let counts = poll_until(WAIT, || {
        let c = (accepted(&a), accepted(&b));
        (c.0 >= sent && c.1 >= sent).then_some(c)
    });
    assert_eq!(
        counts,
        Some((sent, sent)),
        "each endpoint gets every profile, no more: a {} b {}",
        accepted(&a),
        accepted(&b)
    );
    // Pools of replaced destinations are closed at the next prune (every 500 ms) that a
    // delivery triggers.
    std::thread::sleep(Duration::from_millis(700));
    let mut c = Conn::connect(([127, 0, 0, 1], port).into()).expect("connect");
    let r = c
        .request("POST", "/ingest?name=pools.app&format=pprof", &[], &body)
        .expect("response");
    assert_eq!(r.status, 200);
    let fds = poll_until(WAIT, || {
        let n = open_fds(pid);
        (n <= fds_after_first + 4).then_some(n)
    });
    assert!(
        fds.is_some(),
        "file descriptors grew across {ROUNDS} reloads: {fds_after_first} → {}",
        open_fds(pid)
    );
    let _ = std::fs::remove_file(cfg);
}
