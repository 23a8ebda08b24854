//! Shared helpers of the loadtest integration tests: start the real `pyrogate-load sink`
//! binary on 127.0.0.1, speak raw HTTP/1.1 to it, read its `/stats`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pyrogate_load::load::client::{Framing, parse_head};

pub const BIN: &str = env!("CARGO_BIN_EXE_pyrogate-load");
/// Every socket operation in a test is bounded by this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A running sink process; killed (and reaped) on drop.
pub struct Sink {
    child: Child,
    pub addr: SocketAddr,
}

impl Sink {
    pub fn start(extra: &[&str]) -> Sink {
        let mut child = Command::new(BIN)
            .args(["sink", "--listen", "127.0.0.1:0", "--exit-after", "120s"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pyrogate-load sink");
        let stdout = child.stdout.take().expect("stdout");
        // Read the one `listening on` line on a helper thread so a sink that never prints
        // cannot hang the test.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut sink = Sink {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = rx
            .recv_timeout(IO_TIMEOUT)
            .expect("sink printed its address in time");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        sink.addr = addr.parse().expect("socket address");
        sink
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// `GET /stats[?records=1]`.
    pub fn stats(&self, records: bool) -> serde_json::Value {
        let path = if records {
            "/stats?records=1"
        } else {
            "/stats"
        };
        let r = self
            .connect()
            .request(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes());
        assert_eq!(r.status, 200);
        serde_json::from_slice(&r.body).expect("stats JSON")
    }

    pub fn control(&self, query: &str) -> Response {
        self.connect().request(
            format!("POST /control?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                .as_bytes(),
        )
    }

    pub fn reset_stats(&self) {
        let r = self
            .connect()
            .request(b"POST /stats/reset HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(r.status, 200);
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a response header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A blocking keep-alive HTTP/1.1 connection.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn set_read_timeout(&self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).expect("timeout");
    }

    /// Sends raw request bytes and reads one response.
    pub fn request(&mut self, raw: &[u8]) -> Response {
        self.try_request(raw).expect("response")
    }

    pub fn try_request(&mut self, raw: &[u8]) -> std::io::Result<Response> {
        self.stream.write_all(raw)?;
        self.read_response()
    }

    pub fn read_response(&mut self) -> std::io::Result<Response> {
        let deadline = Instant::now() + IO_TIMEOUT;
        let head = loop {
            if let Some(h) =
                parse_head(&self.buf).map_err(|e| std::io::Error::other(format!("{e:?}")))?
            {
                if (100..200).contains(&h.status) {
                    self.buf.drain(..h.len);
                    continue;
                }
                break h;
            }
            self.fill(deadline)?;
        };
        let head_text = String::from_utf8_lossy(&self.buf[..head.len]).into_owned();
        self.buf.drain(..head.len);
        let body = match head.framing {
            Framing::Length(n) => {
                while self.buf.len() < n {
                    self.fill(deadline)?;
                }
                self.buf.drain(..n).collect()
            }
            Framing::None => Vec::new(),
            Framing::UntilClose => {
                while self.fill(deadline).is_ok() {}
                std::mem::take(&mut self.buf)
            }
            Framing::Chunked => return Err(std::io::Error::other("chunked response not expected")),
        };
        Ok(Response {
            status: head.status,
            head: head_text,
            body,
        })
    }

    fn fill(&mut self, deadline: Instant) -> std::io::Result<()> {
        if Instant::now() > deadline {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// A `POST` with a `Content-Length` body.
pub fn post(path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("POST {path} HTTP/1.1\r\nHost: sink\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A `POST` with a chunked body (chunks of `chunk` bytes).
pub fn post_chunked(path: &str, headers: &[(&str, &str)], body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = format!("POST {path} HTTP/1.1\r\nHost: sink\r\nTransfer-Encoding: chunked\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    for c in body.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// The records of `/stats?records=1`.
pub fn records(stats: &serde_json::Value) -> Vec<serde_json::Value> {
    stats["records"].as_array().cloned().unwrap_or_default()
}

/// The gateway binary of this build profile. `cargo test -p pyrogate-load` alone does not
/// build other packages' binaries, so it is built here when missing or older than this
/// package's binary (which links the gateway's library, so it is rebuilt whenever the
/// gateway's sources change); `cargo test --workspace` and `scripts/test.sh` build it first.
pub fn gateway() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(BIN)
        .parent()
        .expect("binary directory")
        .to_path_buf();
    let p = dir.join("pyrogate");
    let mtime = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if mtime(&p).is_none() || mtime(&p) < mtime(std::path::Path::new(BIN)) {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "-p", "pyrogate", "--bin", "pyrogate"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("run cargo build");
        assert!(st.success(), "cargo build of the gateway failed");
    }
    assert!(p.is_file(), "{} missing after the build", p.display());
    p
}

/// Runs `cmd` to completion with captured output, killing it after `timeout` (the test then
/// fails with what it printed).
pub fn output_within(cmd: &mut Command, timeout: Duration) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Drain both pipes on helper threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let end = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            let (o, e) = (
                t_out.join().unwrap_or_default(),
                t_err.join().unwrap_or_default(),
            );
            panic!(
                "{cmd:?} did not finish within {timeout:?}:\n{}\n{}",
                String::from_utf8_lossy(&o),
                String::from_utf8_lossy(&e)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::process::Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}
