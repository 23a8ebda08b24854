//! Ring membership from etcd (docs/ring.md §4): the ring dskit keeps under a key (a
//! snappy-compressed `ring.Desc`), read and then watched through etcd's v3 JSON gateway
//! (`POST /v3/kv/range`, `POST /v3/watch`) on a thread of its own with blocking sockets.
//!
//! Every new value is decoded and published ([`Membership::publish`]); a value that does not
//! decode is reported and the ring in use is kept. When etcd cannot be reached the last ring
//! stays in use, `pyrogate_ring_store_up` drops to 0 and a warning is logged (rate-limited);
//! the thread retries with backoff over the configured endpoints.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use super::desc;
use super::membership::Membership;
use super::model::Ring;
use crate::config::EndpointUrl;
use crate::config::ring::EtcdConfig;

/// Longest range answer read (a ring of thousands of members is a few MB).
const MAX_RANGE_BODY: usize = 128 << 20;
/// Longest single watch message.
const MAX_WATCH_LINE: usize = 128 << 20;
/// A watch with no message for this long is re-established (it also re-reads the key).
const WATCH_IDLE: Duration = Duration::from_secs(60);
/// How a read that timed out on an idle watch is told apart from a failure.
const IDLE_MARK: &str = "(idle)";
/// Retry delays after a failure.
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Starts the watcher thread.
pub fn spawn(m: Arc<Membership>, cfg: EtcdConfig) {
    let started = std::thread::Builder::new()
        .name("pyrogate-etcd".into())
        .spawn(move || run(&m, &cfg));
    if let Err(e) = started {
        tracing::error!(error = %e, "cannot start the etcd watcher thread");
    }
}

fn run(m: &Membership, cfg: &EtcdConfig) {
    let mut backoff = MIN_BACKOFF;
    let mut i = 0usize;
    loop {
        let ep = &cfg.endpoints[i % cfg.endpoints.len()];
        match session(m, cfg, ep) {
            Ok(()) => backoff = MIN_BACKOFF,
            Err(e) => {
                let msg = format!("etcd {}: {e}", ep.authority);
                crate::util::lograte::warn_limited("ring-etcd", |suppressed| {
                    tracing::warn!(error = %msg, suppressed, "ring store unreachable; keeping the last ring");
                });
                m.store_status(Some(msg));
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                i += 1;
            }
        }
    }
}

/// Reads the key, publishes it, then follows the watch until it ends.
fn session(m: &Membership, cfg: &EtcdConfig, ep: &EndpointUrl) -> Result<(), String> {
    let key = base64::engine::general_purpose::STANDARD.encode(cfg.key.as_bytes());
    let body = format!("{{\"key\":\"{key}\"}}");
    let mut conn = Conn::open(ep, cfg.dial_timeout)?;
    conn.post(ep, "/v3/kv/range", &body)?;
    let mut text = conn.read_whole(MAX_RANGE_BODY)?;
    let range: RangeResponse = parse(&mut text)?;
    let revision = range
        .header
        .and_then(|h| h.revision)
        .and_then(|r| r.parse::<i64>().ok())
        .unwrap_or(0);
    let value = range
        .kvs
        .unwrap_or_default()
        .into_iter()
        .next()
        .and_then(|kv| kv.value);
    apply(m, value.as_deref())?;
    m.store_status(None);
    let watch = format!(
        "{{\"create_request\":{{\"key\":\"{key}\",\"start_revision\":\"{}\"}}}}",
        revision + 1
    );
    let mut conn = Conn::open(ep, cfg.dial_timeout)?;
    conn.stream.set_read_timeout(Some(WATCH_IDLE)).ok();
    conn.post(ep, "/v3/watch", &watch)?;
    conn.read_head()?;
    let mut lines = ChunkedLines::new(&mut conn.reader);
    loop {
        let mut line = match lines.next_line() {
            Ok(l) => l,
            // A quiet watch: re-establish it (and re-read the key) without alarm.
            Err(e) if e.contains(IDLE_MARK) => return Ok(()),
            Err(e) => return Err(e),
        };
        if line.trim_ascii().is_empty() {
            continue;
        }
        let msg: WatchMessage = parse(&mut line)?;
        let Some(result) = msg.result else {
            return Err("watch ended".into());
        };
        if result.canceled.unwrap_or(false) {
            return Err("watch canceled".into());
        }
        for ev in result.events.unwrap_or_default() {
            match ev.r#type.as_deref() {
                Some("DELETE") => apply(m, None)?,
                _ => apply(m, ev.kv.and_then(|kv| kv.value).as_deref())?,
            }
        }
    }
}

/// Publishes the ring in a stored value (base64 of the snappy'd `ring.Desc`); no value is
/// an empty ring. A value that does not decode keeps the ring in use.
fn apply(m: &Membership, value: Option<&str>) -> Result<(), String> {
    let ring = match value {
        None => Ring::default(),
        Some(v) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(v)
                .map_err(|e| format!("value is not base64: {e}"))?;
            match desc::decode(&raw) {
                Ok(d) => Ring::from_desc(&d),
                Err(e) => {
                    let msg = format!("the ring value does not decode: {e}");
                    tracing::warn!(error = %msg, "keeping the last ring");
                    m.store_status(Some(msg));
                    return Ok(());
                }
            }
        }
    };
    tracing::info!(members = ring.members.len(), "ring updated from etcd");
    m.publish(ring, "etcd")
}

fn parse<'a, T: Deserialize<'a>>(text: &'a mut [u8]) -> Result<T, String> {
    simd_json::serde::from_slice(text).map_err(|e| format!("unexpected answer: {e}"))
}

#[derive(Deserialize)]
struct Header {
    revision: Option<String>,
}

#[derive(Deserialize)]
struct Kv {
    value: Option<String>,
}

#[derive(Deserialize)]
struct RangeResponse {
    header: Option<Header>,
    kvs: Option<Vec<Kv>>,
}

#[derive(Deserialize)]
struct WatchMessage {
    result: Option<WatchResult>,
}

#[derive(Deserialize)]
struct WatchResult {
    events: Option<Vec<Event>>,
    canceled: Option<bool>,
}

#[derive(Deserialize)]
struct Event {
    r#type: Option<String>,
    kv: Option<Kv>,
}

/// One HTTP/1.1 connection to etcd.
struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    chunked: bool,
    length: Option<usize>,
}

impl Conn {
    fn open(ep: &EndpointUrl, timeout: Duration) -> Result<Self, String> {
        let addrs = (ep.host.as_str(), ep.port)
            .to_socket_addrs()
            .map_err(|e| format!("resolve: {e}"))?;
        let mut last = String::from("no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => {
                    s.set_read_timeout(Some(timeout)).ok();
                    s.set_write_timeout(Some(timeout)).ok();
                    let reader = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
                    return Ok(Self {
                        stream: s,
                        reader,
                        chunked: false,
                        length: None,
                    });
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!("connect: {last}"))
    }

    fn post(&mut self, ep: &EndpointUrl, path: &str, body: &str) -> Result<(), String> {
        let req = format!(
            "POST {}{path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            ep.base_path,
            ep.authority,
            body.len()
        );
        self.stream
            .write_all(req.as_bytes())
            .map_err(|e| format!("write: {e}"))
    }

    /// Reads the status line and headers; an answer other than 200 is an error.
    fn read_head(&mut self) -> Result<(), String> {
        let mut line = String::new();
        let mut first = true;
        let mut total = 0usize;
        loop {
            line.clear();
            let n = self
                .reader
                .read_line(&mut line)
                .map_err(|e| format!("read: {e}"))?;
            total += n;
            if n == 0 || total > 64 * 1024 {
                return Err("malformed answer head".into());
            }
            let l = line.trim_end();
            if first {
                first = false;
                let status = l.split_whitespace().nth(1).unwrap_or("");
                if status != "200" {
                    return Err(format!("answered {l}"));
                }
                continue;
            }
            if l.is_empty() {
                return Ok(());
            }
            if let Some((k, v)) = l.split_once(':') {
                let v = v.trim();
                if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
                {
                    self.chunked = true;
                } else if k.eq_ignore_ascii_case("content-length") {
                    self.length = v.parse().ok();
                }
            }
        }
    }

    /// The whole body of a non-streaming answer.
    fn read_whole(&mut self, max: usize) -> Result<Vec<u8>, String> {
        self.read_head()?;
        if self.chunked {
            let mut out = Vec::new();
            let mut lines = ChunkedLines::new(&mut self.reader);
            while let Some(chunk) = lines.next_chunk()? {
                if out.len() + chunk.len() > max {
                    return Err("answer too large".into());
                }
                out.extend_from_slice(&chunk);
            }
            return Ok(out);
        }
        let mut out = Vec::new();
        let limit = self.length.unwrap_or(max).min(max) as u64;
        (&mut self.reader)
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| format!("read: {e}"))?;
        Ok(out)
    }
}

/// A chunked body read as chunks, or as newline-separated messages across chunks.
struct ChunkedLines<'a, R: BufRead> {
    r: &'a mut R,
    pending: Vec<u8>,
}

impl<'a, R: BufRead> ChunkedLines<'a, R> {
    fn new(r: &'a mut R) -> Self {
        Self {
            r,
            pending: Vec::new(),
        }
    }

    /// The next chunk's data; `None` after the last chunk.
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        let mut size = String::new();
        let n = self.r.read_line(&mut size).map_err(|e| {
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                format!("read: {e} {IDLE_MARK}")
            } else {
                format!("read: {e}")
            }
        })?;
        if n == 0 {
            return Err("connection closed".into());
        }
        let hex = size.trim().split(';').next().unwrap_or("");
        let len = usize::from_str_radix(hex, 16).map_err(|_| "bad chunk size".to_string())?;
        if len > MAX_WATCH_LINE {
            return Err("chunk too large".into());
        }
        let mut data = vec![0u8; len + 2];
        self.r
            .read_exact(&mut data)
            .map_err(|e| format!("read: {e}"))?;
        data.truncate(len);
        Ok((len > 0).then_some(data))
    }

    /// The next newline-terminated message (without the newline).
    fn next_line(&mut self) -> Result<Vec<u8>, String> {
        loop {
            if let Some(i) = self.pending.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.pending.drain(..=i).collect();
                line.pop();
                return Ok(line);
            }
            match self.next_chunk()? {
                Some(c) => {
                    if self.pending.len() + c.len() > MAX_WATCH_LINE {
                        return Err("watch message too large".into());
                    }
                    self.pending.extend_from_slice(&c);
                }
                None => return Err("watch ended".into()),
            }
        }
    }
}
