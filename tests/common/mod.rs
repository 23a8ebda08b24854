//! Test harness shared by the integration tests: it starts the real `pyrogate` binary on
//! 127.0.0.1 and speaks raw bytes to it.
//!
//! * [`Gateway`] spawns the binary (free loopback port, stderr captured to a temp file and
//!   printed when the test fails), waits until `GET /-/ready` answers 200, and kills the
//!   process when dropped.
//! * [`Conn`] is a raw TCP connection with a response reader that understands
//!   `Content-Length` framing, so keep-alive and pipelining can be checked byte for byte.
//! * [`Metrics`] is a parsed `/metrics` scrape.
//! * [`run`] runs the binary to completion (config errors, `--check-config`).
//!
//! Every wait is a bounded poll: nothing here sleeps "long enough" and hopes.
//!
//! Not every test file uses every helper.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The binary under test, built by cargo for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_pyrogate");

/// How long the gateway may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound for reading one response.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Poll interval of every bounded wait.
pub const POLL: Duration = Duration::from_millis(10);

/// Both monoio drivers, for tests that must pass on each.
pub const DRIVERS: [&str; 2] = ["io_uring", "legacy"];

/// Generates one `#[test]` per driver for each listed function `fn name(driver: &str)`:
/// `io_uring::name` and `legacy::name`.
#[macro_export]
macro_rules! on_both_drivers {
    ($($name:ident),* $(,)?) => {
        mod io_uring {
            $(
                #[test]
                fn $name() {
                    if $crate::common::driver_available("io_uring") {
                        super::$name("io_uring");
                    }
                }
            )*
        }
        mod legacy {
            $(
                #[test]
                fn $name() {
                    super::$name("legacy");
                }
            )*
        }
    };
}

/// Whether the binary can run on `driver` here. io_uring is often blocked in containers
/// (seccomp, `kernel.io_uring_disabled`); then the io_uring variants report the reason and
/// pass, unless `PYROGATE_REQUIRE_IO_URING=1` asks for a hard failure (set it in CI on
/// machines that have io_uring).
pub fn driver_available(driver: &str) -> bool {
    if driver != "io_uring" {
        return true;
    }
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    let probe = PROBE.get_or_init(|| {
        let out = run(
            &[
                "--check-config",
                "--driver",
                "io_uring",
                "--listen",
                "127.0.0.1:0",
            ],
            Duration::from_secs(10),
        );
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    });
    match probe {
        Ok(()) => true,
        Err(why) => {
            assert!(
                std::env::var("PYROGATE_REQUIRE_IO_URING").as_deref() != Ok("1"),
                "io_uring is required (PYROGATE_REQUIRE_IO_URING=1) but unavailable: {why}"
            );
            eprintln!("SKIPPED io_uring variant: io_uring unavailable here: {why}");
            false
        }
    }
}

/// A unique path in the temp dir for this test process.
pub fn temp_path(what: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("pyrogate-test-{}-{n}-{what}", std::process::id()))
}

/// Writes `text` to a fresh temp file and returns its path (removed by the caller or left
/// in the temp dir).
pub fn write_temp(what: &str, text: &str) -> PathBuf {
    let p = temp_path(what);
    std::fs::write(&p, text).expect("write temp file");
    p
}

/// A free loopback port (bound then released; [`Gateway::start`] retries on the rare
/// collision with another test).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Polls `f` every [`POLL`] until it returns `Some`, at most `timeout`.
pub fn poll_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

// === the process ===

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

// === raw HTTP/1.1 ===

/// A parsed HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Whether the server announced it closes the connection.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }

    /// Asserts the framing every response must have: `Date` and `Content-Length` matching
    /// the body (unless `head_only`).
    pub fn assert_framing(&self) {
        assert!(self.header("date").is_some(), "no Date header: {self:?}");
        let cl: usize = self
            .header("content-length")
            .unwrap_or_else(|| panic!("no Content-Length: {self:?}"))
            .parse()
            .expect("numeric Content-Length");
        assert_eq!(cl, self.body.len(), "Content-Length vs body: {self:?}");
    }
}

/// A raw TCP connection to the gateway with a read buffer (bytes after one response stay
/// for the next, so pipelined responses can be read one by one).
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Sends a request: `method path HTTP/1.1`, `Host`, the given headers, a
    /// `Content-Length` unless the headers frame the body themselves, and the body.
    pub fn send_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<()> {
        let req = build_request(method, path, headers, body);
        self.send(&req)
    }

    /// Sends a request and reads its final response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        self.send_request(method, path, headers, body)?;
        self.read_final_response(IO_TIMEOUT)
    }

    pub fn get(&mut self, path: &str) -> io::Result<Response> {
        self.request("GET", path, &[], b"")
    }

    /// `/metrics` on this connection (useful when every connection slot is taken).
    pub fn metrics(&mut self) -> Metrics {
        let r = self.get("/metrics").expect("GET /metrics");
        assert_eq!(r.status, 200, "{r:?}");
        Metrics::parse(r.body_str())
    }

    fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "response timed out",
            ));
        }
        self.stream.set_read_timeout(Some(remaining))?;
        let mut chunk = [0u8; 64 * 1024];
        let n = match self.stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "response timed out",
                ));
            }
            Err(e) => return Err(e),
        };
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads the next response (an interim `100 Continue` included), with its body framed
    /// by `Content-Length`.
    pub fn read_response(&mut self, timeout: Duration) -> io::Result<Response> {
        self.read_response_inner(timeout, false)
    }

    /// Reads the next response to a `HEAD` request (no body follows the head).
    pub fn read_head_response(&mut self, timeout: Duration) -> io::Result<Response> {
        self.read_response_inner(timeout, true)
    }

    /// Reads responses until a final (non-1xx) one.
    pub fn read_final_response(&mut self, timeout: Duration) -> io::Result<Response> {
        let deadline = Instant::now() + timeout;
        for _ in 0..8 {
            let r = self.read_response(deadline.saturating_duration_since(Instant::now()))?;
            if r.status >= 200 {
                return Ok(r);
            }
        }
        Err(io::Error::other("too many interim responses"))
    }

    fn read_response_inner(&mut self, timeout: Duration, head_only: bool) -> io::Result<Response> {
        let deadline = Instant::now() + timeout;
        let (head_len, mut resp, content_length) = loop {
            let mut hs = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut hs);
            match r.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let headers: Vec<(String, String)> = r
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    let resp = Response {
                        status: r.code.unwrap_or(0),
                        reason: r.reason.unwrap_or("").to_string(),
                        headers,
                        body: Vec::new(),
                    };
                    let cl = resp
                        .header("content-length")
                        .map(|v| v.trim().parse::<usize>())
                        .transpose()
                        .map_err(|_| io::Error::other("bad Content-Length"))?;
                    break (n, resp, cl);
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => {
                    return Err(io::Error::other(format!(
                        "bad response head ({e}): {:?}",
                        String::from_utf8_lossy(&self.buf)
                    )));
                }
            }
            if self.fill(deadline)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed before a complete response head; got {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ),
                ));
            }
        };
        self.buf.drain(..head_len);
        let body_len = if head_only || resp.status < 200 || resp.status == 204 {
            0
        } else {
            content_length.ok_or_else(|| io::Error::other("response without Content-Length"))?
        };
        while self.buf.len() < body_len {
            if self.fill(deadline)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside the body",
                ));
            }
        }
        resp.body = self.buf.drain(..body_len).collect();
        Ok(resp)
    }

    /// Bytes received but not yet consumed by a response read.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Waits until the server closes the connection (EOF or reset), at most `timeout`.
    /// Returns false if it is still open then. Data received meanwhile is kept.
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return false,
                Err(_) => return true, // reset
            }
        }
    }

    /// Asserts that nothing arrives (and the connection stays open) for `window`.
    pub fn assert_silent(&mut self, window: Duration, what: &str) {
        let deadline = Instant::now() + window;
        match self.fill(deadline) {
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
            Ok(0) => panic!("{what}: connection closed, expected it to stay open and silent"),
            Ok(_) => panic!(
                "{what}: expected silence, got {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
            Err(e) => panic!("{what}: {e}"),
        }
    }

    /// Half-closes the write side.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// A request as bytes; adds `Host` and (unless the headers carry `Content-Length` or
/// `Transfer-Encoding`, or the body is empty) `Content-Length`.
pub fn build_request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut s = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        s.push_str("Host: 127.0.0.1\r\n");
    }
    let framed = headers.iter().any(|(n, _)| {
        n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
    });
    for (n, v) in headers {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    if !framed && !body.is_empty() {
        s.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    s.push_str("\r\n");
    let mut out = s.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Encodes `body` as chunked transfer coding with chunks of `chunk` bytes and optional
/// trailer lines (each without CRLF).
pub fn chunked(body: &[u8], chunk: usize, trailers: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    for t in trailers {
        out.extend_from_slice(t.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

// === /metrics ===

/// A parsed Prometheus text exposition: series key (`name{a="1",b="2"}`, labels sorted by
/// name; `name` alone without labels) → value.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub series: BTreeMap<String, f64>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut series = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad metrics line {line:?}"));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad metric value in {line:?}")),
            };
            series.insert(normalise_key(key), value);
        }
        Metrics { series }
    }

    /// The value of one series; `labels` in any order.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.series.get(&series_key(name, labels)).copied()
    }

    /// Like [`get`](Self::get) but panics with the scrape when the series is missing.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| {
            panic!(
                "series {} missing; scrape has:\n{}",
                series_key(name, labels),
                self.names_like(name)
            )
        })
    }

    /// Sum of every series of a metric (all label values).
    pub fn sum(&self, name: &str) -> f64 {
        self.series
            .iter()
            .filter(|(k, _)| k.as_str() == name || k.starts_with(&format!("{name}{{")))
            .map(|(_, v)| v)
            .sum()
    }

    fn names_like(&self, name: &str) -> String {
        self.series
            .iter()
            .filter(|(k, _)| k.starts_with(name))
            .map(|(k, v)| format!("  {k} {v}\n"))
            .collect()
    }
}

/// `name{k="v",...}` with labels sorted by name.
pub fn series_key(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let mut l: Vec<_> = labels.to_vec();
    l.sort();
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

fn normalise_key(key: &str) -> String {
    let Some((name, rest)) = key.split_once('{') else {
        return key.to_string();
    };
    let inner = rest.strip_suffix('}').unwrap_or(rest);
    // Label values in our metrics never contain `",`; split on it.
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut s = inner;
    while !s.is_empty() {
        let (k, after) = s.split_once("=\"").expect("label =\"");
        let end = after.find('"').expect("closing quote");
        pairs.push((k.to_string(), after[..end].to_string()));
        s = after[end + 1..].trim_start_matches(',');
    }
    pairs.sort();
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

// === payloads ===

pub use pyrogate_testdata as td;

/// A pyroscope-io 1.4.0 style Push (gzip'd `PushRequest` of one series with eight unsorted
/// labels and a plain pprof, sent with `Content-Encoding: gzip`), generated.
pub fn python_push() -> td::sdk::Request {
    td::sdk::python_push(1)
}

/// Its body.
pub fn push_gzip() -> Vec<u8> {
    python_push().body
}

/// The same Push body, gunzipped: plain protobuf.
pub fn push_proto() -> Vec<u8> {
    gunzip(&push_gzip())
}

/// A gzip'd Go CPU profile (two sample types, deep stacks, labels).
pub fn cpu_pprof_gz() -> Vec<u8> {
    td::pprof::Spec::new(1, td::pprof::Kind::Cpu).gzip()
}

pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

// === a downstream sink (for forwarding tests) ===

/// One request received by a [`Sink`].
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked when it was sent chunked.
    pub body: Vec<u8>,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 server on 127.0.0.1 standing in for a Pyroscope endpoint: it records
/// every request and answers each with the next status of its script (the last one
/// repeats), keep-alive, empty body. A thread per connection; stopped on drop.
pub struct Sink {
    pub addr: SocketAddr,
    captured: std::sync::Arc<std::sync::Mutex<Vec<Captured>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Sink {
    /// A sink answering 200 to everything.
    pub fn start() -> Sink {
        Self::with_statuses(&[200])
    }

    /// A sink answering the given statuses in order (the last repeats).
    pub fn with_statuses(statuses: &[u16]) -> Sink {
        use std::sync::atomic::AtomicBool;
        use std::sync::{Arc, Mutex};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind sink");
        listener.set_nonblocking(true).expect("nonblocking sink");
        let addr = listener.local_addr().expect("sink addr");
        let captured = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let script = Arc::new(Mutex::new((statuses.to_vec(), 0usize)));
        let (cap, stp) = (captured.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stp.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (cap, stp, script) = (cap.clone(), stp.clone(), script.clone());
                        std::thread::spawn(move || sink_conn(s, &cap, &stp, &script));
                    }
                    Err(_) => std::thread::sleep(POLL),
                }
            }
        });
        Sink {
            addr,
            captured,
            stop,
        }
    }

    /// `http://127.0.0.1:PORT`, for `--forward-to`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Captured> {
        self.captured.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Waits until at least `n` requests arrived, at most `timeout`.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Captured> {
        poll_until(timeout, || {
            let r = self.requests();
            (r.len() >= n).then_some(r)
        })
        .unwrap_or_else(|| panic!("sink got {} of {n} requests", self.requests().len()))
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn sink_conn(
    mut s: TcpStream,
    captured: &std::sync::Mutex<Vec<Captured>>,
    stop: &std::sync::atomic::AtomicBool,
    script: &std::sync::Mutex<(Vec<u16>, usize)>,
) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        // Parse as many complete requests as the buffer holds.
        loop {
            let mut hs = [httparse::EMPTY_HEADER; 128];
            let mut req = httparse::Request::new(&mut hs);
            let Ok(httparse::Status::Complete(head_len)) = req.parse(&buf) else {
                break;
            };
            let headers: Vec<(String, String)> = req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let find = |n: &str| {
                headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(n))
                    .map(|(_, v)| v.clone())
            };
            let chunked = find("transfer-encoding").is_some_and(|v| v.contains("chunked"));
            let body_and_len = if chunked {
                dechunk(&buf[head_len..])
            } else {
                let n: usize = find("content-length")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                (buf.len() >= head_len + n).then(|| (buf[head_len..head_len + n].to_vec(), n))
            };
            let Some((body, used)) = body_and_len else {
                break;
            };
            let c = Captured {
                method: req.method.unwrap_or("").to_string(),
                target: req.path.unwrap_or("").to_string(),
                headers,
                body,
            };
            buf.drain(..head_len + used);
            if let Ok(mut g) = captured.lock() {
                g.push(c);
            }
            let status = match script.lock() {
                Ok(mut g) => {
                    let (list, next) = &mut *g;
                    let st = list[(*next).min(list.len() - 1)];
                    *next += 1;
                    st
                }
                Err(_) => 500,
            };
            let resp = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
            if s.write_all(resp.as_bytes()).is_err() {
                return;
            }
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// Decodes a complete chunked body at the start of `b`: (body, bytes used), or `None` when
/// more input is needed.
fn dechunk(b: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut i = 0;
    loop {
        let line_end = b[i..].windows(2).position(|w| w == b"\r\n")? + i;
        let size_str = std::str::from_utf8(&b[i..line_end]).ok()?;
        let size = usize::from_str_radix(size_str.split(';').next()?.trim(), 16).ok()?;
        i = line_end + 2;
        if size == 0 {
            // Trailers until an empty line.
            loop {
                let e = b[i..].windows(2).position(|w| w == b"\r\n")? + i;
                let empty = e == i;
                i = e + 2;
                if empty {
                    return Some((body, i));
                }
            }
        }
        if b.len() < i + size + 2 {
            return None;
        }
        body.extend_from_slice(&b[i..i + size]);
        i += size + 2;
    }
}
