//! The binary under test as a process: start it on a free loopback port and wait until it
//! is ready, run it to completion, read its memory.
#![allow(dead_code)]

use std::fs::File;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// A running `pyrogate`. Killed (SIGKILL) on drop if still alive; when the test is failing,
/// its stderr is printed.
pub struct Gateway {
    child: Child,
    pub addr: SocketAddr,
    pub args: Vec<String>,
    stderr_path: PathBuf,
    exit: Option<ExitStatus>,
}

impl Gateway {
    /// Starts `pyrogate --listen 127.0.0.1:<free port> <args>` and waits until it is ready.
    pub fn start(args: &[&str]) -> Gateway {
        Self::start_with_env(args, &[])
    }

    /// Like [`start`](Self::start) on the given driver.
    pub fn on(driver: &str, args: &[&str]) -> Gateway {
        let mut v = vec!["--driver", driver];
        v.extend_from_slice(args);
        Self::start(&v)
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            match Self::try_start(port, args, env) {
                Ok(g) => return g,
                Err(e) => {
                    // Another process may have taken the port between free_port and bind.
                    let retry = e.contains("cannot listen");
                    last_err = e;
                    if !retry {
                        break;
                    }
                }
            }
        }
        panic!("pyrogate did not start: {last_err}");
    }

    fn try_start(port: u16, args: &[&str], env: &[(&str, &str)]) -> Result<Gateway, String> {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let stderr_path = temp_path("stderr");
        let stderr = File::create(&stderr_path).map_err(|e| e.to_string())?;
        let listen = addr.to_string();
        let mut all: Vec<String> = vec!["--listen".into(), listen];
        all.extend(args.iter().map(|s| s.to_string()));
        let mut cmd = Command::new(BIN);
        cmd.args(&all)
            .env("NO_COLOR", "1")
            .env_remove("PYROGATE_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|e| format!("spawn {BIN}: {e}"))?;
        let mut g = Gateway {
            child,
            addr,
            args: all,
            stderr_path,
            exit: None,
        };
        let ready = poll_until(READY_TIMEOUT, || {
            if let Ok(Some(st)) = g.child.try_wait() {
                g.exit = Some(st);
                return Some(false);
            }
            let ok = Conn::connect(addr)
                .and_then(|mut c| c.get("/-/ready"))
                .is_ok_and(|r| r.status == 200);
            ok.then_some(true)
        });
        match ready {
            Some(true) => Ok(g),
            Some(false) => Err(format!(
                "exited with {:?} before ready; stderr:\n{}",
                g.exit,
                g.stderr()
            )),
            None => Err(format!(
                "not ready within {READY_TIMEOUT:?}; stderr:\n{}",
                g.stderr()
            )),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// A new raw connection.
    pub fn connect(&self) -> Conn {
        Conn::connect(self.addr).expect("connect to pyrogate")
    }

    /// Scrapes `/metrics` on a new connection.
    pub fn metrics(&self) -> Metrics {
        self.connect().metrics()
    }

    /// Scrapes `/metrics` on a new connection; `None` when the scrape is not answered 200
    /// (e.g. refused at the connection limit in `reject` mode).
    pub fn try_metrics(&self) -> Option<Metrics> {
        let mut c = Conn::connect(self.addr).ok()?;
        let r = c.get("/metrics").ok()?;
        (r.status == 200).then(|| Metrics::parse(r.body_str()))
    }

    /// One request on a new connection.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        self.connect()
            .request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Resident set size of the process in KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// Sends a signal (`libc::SIGTERM`, `libc::SIGHUP`, ...).
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.pid());
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exit.is_some() {
            return self.exit;
        }
        let child = &mut self.child;
        let st = poll_until(timeout, || child.try_wait().ok().flatten());
        self.exit = st;
        st
    }

    /// SIGTERM, then wait for the exit; returns the status and how long it took.
    pub fn terminate(&mut self, timeout: Duration) -> (Option<ExitStatus>, Duration) {
        let t = Instant::now();
        self.signal(libc::SIGTERM);
        (self.wait_exit(timeout), t.elapsed())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.exit.is_none() && matches!(self.child.try_wait(), Ok(None))
    }

    /// Polls until a new connection is refused (every shard closed its listener).
    pub fn wait_refusing(&self, timeout: Duration) -> bool {
        poll_until(timeout, || {
            match TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)) {
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Some(()),
                _ => None,
            }
        })
        .is_some()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- pyrogate {:?} stderr ----\n{}---- end of stderr ----",
                self.args,
                self.stderr()
            );
        }
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

/// `VmRSS` of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Runs the binary to completion (at most `timeout`, then it is killed and the test fails).
pub fn run(args: &[&str], timeout: Duration) -> Output {
    run_with_env(args, &[], timeout)
}

/// [`run`] with extra environment variables.
pub fn run_with_env(args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env_remove("PYROGATE_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn pyrogate");
    // Drain both pipes while waiting, so a chatty child can never block on a full pipe.
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let out_t = drain(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err_t = drain(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let status = poll_until(timeout, || child.try_wait().ok().flatten());
    let status = match status {
        Some(st) => st,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let err = err_t.join().unwrap_or_default();
            panic!(
                "pyrogate {args:?} did not exit within {timeout:?}; stderr:\n{}",
                String::from_utf8_lossy(&err)
            );
        }
    };
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

/// Runs a real SDK client program (at most 60 s) in `dir` and returns its output; fails the
/// test when it fails.
pub fn run_sdk(
    program: &str,
    args: &[&str],
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> String {
    run_client(program, args, dir, env, Duration::from_secs(60))
}

/// Runs a client program in `dir` to completion, at most `limit`, and returns its output;
/// fails the test when it fails or overruns.
pub fn run_client(
    program: &str,
    args: &[&str],
    dir: &std::path::Path,
    env: &[(&str, &str)],
    limit: Duration,
) -> String {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{program} not runnable ({e}); run scripts/test.sh to set up"));
    let done = poll_until(limit, || child.try_wait().ok().flatten());
    if done.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        done.is_some() && out.status.success(),
        "{program} failed:\n{text}"
    );
    text
}
