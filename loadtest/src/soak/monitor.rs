//! What is watched every second: the gateway's RSS and open fds (`/proc`), its connections,
//! forward queue and spool bytes (`/metrics`), and `/-/healthy` on connections that reach
//! every worker. Plus the arithmetic of the verdict (least-squares slope).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Ctl, GwState};
use crate::probe::Client;
use crate::process::procfs;

/// A health check or scrape slower than this is a failure.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
pub const TICK: Duration = Duration::from_secs(1);
/// Health connections opened before the traffic starts (more if a worker has none).
pub const HEALTH_CONNS: usize = 8;
const MAX_HEALTH_CONNS: usize = 64;

const HEALTHY: &[u8] = b"GET /-/healthy HTTP/1.1\r\nHost: soak\r\n\r\n";
const METRICS: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: soak\r\n\r\n";

/// One sample.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Seconds since the start of the traffic.
    pub t: f64,
    pub rss: u64,
    pub fds: u64,
    /// Of the fds: TCP sockets in state ESTABLISHED (live connections, bounded by
    /// `conn_limit` and the forwarding pools).
    pub estab: u64,
    /// `pyroscope_receive_http_tcp_connections`.
    pub conns: Option<f64>,
    /// `pyrogate_forward_queue_bytes`, summed over the destinations.
    pub queue: Option<f64>,
    /// `pyrogate_spool_bytes`, summed over the destinations.
    pub spool: Option<f64>,
    /// Taken while a connection flood was on (left out of the slopes).
    pub flood: bool,
}

/// Sum of every sample of metric `name` (exact name, any labels).
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let Some(v) = rest
            .rsplit(' ')
            .next()
            .and_then(|v| v.trim().parse::<f64>().ok())
        else {
            continue;
        };
        *found.get_or_insert(0.0) += v;
    }
    found
}

/// `(label value, sample)` of metric `name` per value of `label`.
pub fn metric_by_label(text: &str, name: &str, label: &str) -> Vec<(String, f64)> {
    let key = format!("{label}=\"");
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, value) = rest.split_once('}')?;
            let v: f64 = value.trim().parse().ok()?;
            let start = labels.find(&key)? + key.len();
            let end = labels[start..].find('"')? + start;
            Some((labels[start..end].to_owned(), v))
        })
        .collect()
}

/// Least-squares slope of `(x, y)` (units of y per unit of x); `None` below 3 points.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    Some(sxy / sxx)
}

/// `pid`'s open fds, and how many of them are TCP sockets in state ESTABLISHED (from
/// `/proc/net/tcp{,6}`), from one listing of `/proc/PID/fd`.
pub fn fds_and_established(pid: u32) -> Option<(u64, u64)> {
    let mut inodes = std::collections::HashSet::new();
    let mut fds = 0;
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        fds += 1;
        if let Ok(l) = std::fs::read_link(e.path())
            && let Some(n) = l
                .to_str()
                .and_then(|s| s.strip_prefix("socket:["))
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse::<u64>().ok())
        {
            inodes.insert(n);
        }
    }
    // A row can show up twice while the kernel walks its tables: count inodes, not rows.
    let mut live = std::collections::HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            live.extend(established_inodes(&text, &inodes));
        }
    }
    Some((fds, live.len() as u64))
}

/// Inodes of the rows of a `/proc/net/tcp` table in state `01` (ESTABLISHED) that are in
/// `inodes`.
pub fn established_inodes(
    table: &str,
    inodes: &std::collections::HashSet<u64>,
) -> std::collections::HashSet<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_ascii_whitespace().collect();
            let inode = f.get(9)?.parse::<u64>().ok()?;
            (f[3] == "01" && inodes.contains(&inode)).then_some(inode)
        })
        .collect()
}

/// Opens health connections until every worker core holds at least one (read from
/// `pyrogate_core_connections` before any other traffic). Fails when it cannot.
pub fn open_health_conns(addr: SocketAddr, workers: usize) -> Result<Vec<Client>, String> {
    let mut conns = Vec::new();
    while conns.len() < MAX_HEALTH_CONNS {
        for _ in 0..HEALTH_CONNS {
            conns.push(Client::connect(addr, HEALTH_TIMEOUT)?);
        }
        // Let the workers accept them before counting.
        std::thread::sleep(Duration::from_millis(100));
        let Some(first) = conns.first_mut() else {
            continue;
        };
        let a = first.send(METRICS)?;
        let text = String::from_utf8_lossy(&a.body);
        let per_core = metric_by_label(&text, "pyrogate_core_connections", "core");
        let covered = per_core.iter().filter(|(_, v)| *v >= 1.0).count();
        if per_core.len() >= workers && covered >= workers {
            return Ok(conns);
        }
    }
    Err(format!(
        "{MAX_HEALTH_CONNS} connections to {addr} did not reach all {workers} workers"
    ))
}

/// Every second until monitoring stops: `GET /-/healthy` on every health connection. A
/// failure on an established connection is a verdict failure; a fresh connection that
/// waits during a flood (in the listen backlog, as `on_conn_limit = wait` intends) is not.
pub fn health_loop(ctl: Arc<Ctl>, gw: Arc<GwState>, conns: Vec<Client>) {
    let mut conns: Vec<(Option<Client>, bool)> =
        conns.into_iter().map(|c| (Some(c), false)).collect();
    let mut next = Instant::now();
    while ctl.monitoring() {
        for (slot, fresh) in conns.iter_mut() {
            let t0 = Instant::now();
            let r = match slot.as_mut() {
                Some(c) => c.send(HEALTHY).and_then(|a| {
                    if a.status == 200 {
                        Ok(())
                    } else {
                        Err(format!("status {}", a.status))
                    }
                }),
                None => Err("not connected".into()),
            };
            let took = t0.elapsed();
            match r {
                Ok(()) if took <= HEALTH_TIMEOUT => {
                    gw.health_ok(took);
                    *fresh = false;
                }
                other => {
                    let why = match other {
                        Ok(()) => format!("answered after {took:?}"),
                        Err(e) => e,
                    };
                    let t = ctl.t();
                    if *fresh && gw.in_flood(t) {
                        gw.health_waited();
                    } else {
                        gw.health_failed(t, why);
                    }
                    *slot = Client::connect(gw.addr, HEALTH_TIMEOUT).ok();
                    *fresh = true;
                }
            }
        }
        next += TICK;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}

/// Every second until monitoring stops: one [`Sample`].
pub fn sampler_loop(ctl: Arc<Ctl>, gw: Arc<GwState>) {
    let mut conn: Option<Client> = None;
    let mut next = Instant::now();
    while ctl.monitoring() {
        let t = ctl.t();
        let (fds, estab) = fds_and_established(gw.pid).unwrap_or((0, 0));
        let mut s = Sample {
            t,
            rss: procfs::status_bytes(gw.pid, "VmRSS").unwrap_or(0),
            fds,
            estab,
            flood: gw.in_flood(t),
            ..Sample::default()
        };
        if conn.is_none() {
            conn = Client::connect(gw.addr, HEALTH_TIMEOUT).ok();
        }
        match conn.as_mut().map(|c| c.send(METRICS)) {
            Some(Ok(a)) if a.status == 200 => {
                let text = String::from_utf8_lossy(&a.body);
                s.conns = metric_sum(&text, "pyroscope_receive_http_tcp_connections");
                s.queue = metric_sum(&text, "pyrogate_forward_queue_bytes");
                s.spool = metric_sum(&text, "pyrogate_spool_bytes");
            }
            _ => {
                gw.scrape_failed();
                conn = None;
            }
        }
        if s.rss > 0 {
            gw.push_sample(s);
        }
        next += TICK;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_summed_by_exact_name() {
        let text = "# HELP x\npyroscope_receive_http_tcp_connections{protocol=\"http\"} 12\n\
                    pyroscope_receive_http_tcp_connections_limit{protocol=\"http\"} 512\n\
                    pyrogate_forward_queue_bytes{endpoint=\"a\"} 100\n\
                    pyrogate_forward_queue_bytes{endpoint=\"b\"} 50\n\
                    pyrogate_core_connections{core=\"0\"} 3\npyrogate_core_connections{core=\"1\"} 0\n";
        assert_eq!(
            metric_sum(text, "pyroscope_receive_http_tcp_connections"),
            Some(12.0)
        );
        assert_eq!(
            metric_sum(text, "pyrogate_forward_queue_bytes"),
            Some(150.0)
        );
        assert_eq!(metric_sum(text, "pyrogate_spool_bytes"), None);
        assert_eq!(
            metric_by_label(text, "pyrogate_core_connections", "core"),
            vec![("0".to_owned(), 3.0), ("1".to_owned(), 0.0)]
        );
    }

    #[test]
    fn established_rows_by_inode() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            0: 0100007F:B3D9 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 11 1 0 100 0 0 10 0\n\
            1: 0100007F:B3D9 0100007F:AF23 01 00000000:00000000 00:00000000 00000000     0        0 12 1 0 100 0 0 10 0\n\
            2: 0100007F:B3D9 0100007F:AF24 01 00000000:00000000 00:00000000 00000000     0        0 13 1 0 100 0 0 10 0\n\
            3: 0100007F:B3D9 0100007F:AF25 08 00000000:00000000 00:00000000 00000000     0        0 14 1 0 100 0 0 10 0\n";
        let mine: std::collections::HashSet<u64> = [11, 12, 14].into_iter().collect();
        assert_eq!(established_inodes(table, &mine).len(), 1);
        // The same row twice counts once.
        let twice = format!("{table}{}\n", table.lines().nth(2).unwrap_or(""));
        assert_eq!(established_inodes(&twice, &mine).len(), 1);
        let (fds, estab) = fds_and_established(std::process::id()).expect("this process");
        assert!(fds >= 3 && estab <= fds);
    }

    #[test]
    fn slope_of_a_line_and_of_noise() {
        let line: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 3.0 * i as f64 + 1.0)).collect();
        assert!((slope(&line).expect("slope") - 3.0).abs() < 1e-9);
        let flat: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, (i % 2) as f64)).collect();
        assert!(slope(&flat).expect("slope").abs() < 0.1);
        assert_eq!(slope(&line[..2]), None);
    }
}
