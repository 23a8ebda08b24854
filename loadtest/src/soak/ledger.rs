//! What each sink received: its `/stats?records=1` read incrementally (only records newer
//! than the last one seen, by `seq`), kept as the count of accepted (2xx) copies per body
//! checksum. The sink's record ring only has to hold the records of one poll interval.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(15);
/// Largest `/stats` answer read.
const MAX_ANSWER: usize = 512 << 20;
/// Records asked for on the first try of a poll; more when they do not reach back far
/// enough.
const FIRST_LIMIT: u64 = 2_000;

/// `GET path` with `Connection: close`; the status and body (read to its
/// `Content-Length`, or to the end).
pub fn get(addr: SocketAddr, path: &str) -> Result<(u16, Vec<u8>), String> {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| e.to_string())?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| format!("{addr}{path}: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 256 * 1024];
    let end = Instant::now() + TIMEOUT;
    let mut want: Option<usize> = None;
    loop {
        if want.is_none()
            && let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let head = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            want = len.map(|l| p + 4 + l);
        }
        if want.is_some_and(|w| buf.len() >= w) {
            break;
        }
        if Instant::now() >= end || buf.len() > MAX_ANSWER {
            return Err(format!("{addr}{path}: answer not complete in time"));
        }
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{addr}{path}: {e}")),
        }
    }
    let p = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{addr}{path}: no answer head"))?;
    let status = String::from_utf8_lossy(&buf[..p])
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{addr}{path}: bad status line"))?;
    let body_end = want.unwrap_or(buf.len()).min(buf.len());
    Ok((status, buf[p + 4..body_end].to_vec()))
}

/// One sink's deliveries.
#[derive(Debug, Default)]
pub struct SinkLedger {
    pub addr: Option<SocketAddr>,
    /// Highest record `seq` read.
    last_seq: u64,
    /// Accepted copies per body checksum.
    pub accepted: HashMap<u64, u32>,
    /// Answers per status over every record read (`hang` for injected hangs).
    pub statuses: BTreeMap<String, u64>,
    /// Records that fell out of the sink's ring before they were read.
    pub lost: u64,
    pub polls: u64,
}

impl SinkLedger {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr: Some(addr),
            ..Self::default()
        }
    }

    /// Reads the records newer than the last one seen.
    pub fn poll(&mut self) -> Result<(), String> {
        let Some(addr) = self.addr else {
            return Ok(());
        };
        self.polls += 1;
        let mut limit = FIRST_LIMIT;
        for _ in 0..8 {
            let (status, body) = get(addr, &format!("/stats?records=1&limit={limit}"))?;
            if status != 200 {
                return Err(format!("{addr}/stats: status {status}"));
            }
            let doc: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| format!("{addr}/stats: {e}"))?;
            let records = doc["records"].as_array().cloned().unwrap_or_default();
            let first = records.first().and_then(|r| r["seq"].as_u64());
            let total = doc["records_total"].as_u64().unwrap_or(0);
            let reaches_back = first.is_none_or(|f| f <= self.last_seq + 1);
            let kept = doc["records_kept"].as_u64().unwrap_or(0);
            if !reaches_back && (records.len() as u64) < kept {
                // More were kept than asked for: ask for enough.
                limit = (total - self.last_seq).min(kept) + 100;
                continue;
            }
            if let Some(f) = first
                && f > self.last_seq + 1
            {
                self.lost += f - self.last_seq - 1;
            }
            for r in &records {
                let seq = r["seq"].as_u64().unwrap_or(0);
                if seq <= self.last_seq {
                    continue;
                }
                let st = r["status"].as_u64();
                let key = st.map_or_else(|| "hang".to_owned(), |s| s.to_string());
                *self.statuses.entry(key).or_default() += 1;
                if st.is_some_and(|s| (200..300).contains(&s))
                    && let Some(h) = r["body_fnv"].as_str()
                    && let Ok(v) = u64::from_str_radix(h, 16)
                {
                    *self.accepted.entry(v).or_default() += 1;
                }
            }
            if let Some(last) = records.last().and_then(|r| r["seq"].as_u64()) {
                self.last_seq = self.last_seq.max(last);
            }
            return Ok(());
        }
        Err(format!(
            "{addr}/stats: records kept arriving faster than they were read"
        ))
    }
}
