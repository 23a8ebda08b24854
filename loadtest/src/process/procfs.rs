//! What the benchmarks read from `/proc`: a process's CPU time (`/proc/PID/stat`), its
//! memory (`/proc/PID/status`), the machine's CPU steal (`/proc/stat`) and the kernel's TCP
//! socket memory (`/proc/net/sockstat`).
//!
//! The parsers are pure functions of the file's text (unit-tested with captured samples);
//! the readers around them return `None` when a file cannot be read (the process is gone,
//! `/proc` is not mounted), so a benchmark can say "n/a" instead of failing.

use std::path::Path;

/// `(utime, stime)` in clock ticks from the text of `/proc/PID/stat` (all threads of the
/// process; children are not included).
///
/// The command name (field 2) is in parentheses and may itself contain spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat_cpu_ticks(text: &str) -> Option<(u64, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    // After the name: state (3), ppid (4), … utime (14), stime (15).
    let mut fields = rest.split_ascii_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`, …), in bytes.
pub fn parse_status_kb(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if k != key {
            return None;
        }
        let kb: u64 = v.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

/// The aggregate `cpu` line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Every column (user … steal; guest time is already inside user/nice).
    pub total: u64,
    pub steal: u64,
    pub idle: u64,
}

/// Parses the first (`cpu `) line of `/proc/stat`.
pub fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    if v.len() < 8 {
        return None;
    }
    Some(CpuTimes {
        total: v[..8].iter().sum(),
        steal: v[7],
        idle: v[3] + v[4],
    })
}

impl CpuTimes {
    /// Steal as a percentage of all CPU time between `self` (earlier) and `later`.
    pub fn steal_pct(&self, later: &CpuTimes) -> f64 {
        let total = later.total.saturating_sub(self.total);
        if total == 0 {
            return 0.0;
        }
        later.steal.saturating_sub(self.steal) as f64 * 100.0 / total as f64
    }

    /// Busy (non-idle) share of all CPU time between `self` and `later`, in percent.
    pub fn busy_pct(&self, later: &CpuTimes) -> f64 {
        let total = later.total.saturating_sub(self.total);
        if total == 0 {
            return 0.0;
        }
        let idle = later.idle.saturating_sub(self.idle);
        (total.saturating_sub(idle)) as f64 * 100.0 / total as f64
    }
}

/// The `TCP:` line of `/proc/net/sockstat`: sockets in use and the pages of socket buffer
/// memory the kernel has charged to TCP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpSockstat {
    pub inuse: u64,
    pub mem_pages: u64,
}

pub fn parse_sockstat(text: &str) -> Option<TcpSockstat> {
    let line = text.lines().find(|l| l.starts_with("TCP:"))?;
    let mut it = line.split_ascii_whitespace().skip(1);
    let mut out = TcpSockstat::default();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        let v: u64 = v.parse().ok()?;
        match k {
            "inuse" => out.inuse = v,
            "mem" => out.mem_pages = v,
            _ => {}
        }
    }
    Some(out)
}

// === readers ===

fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// `utime + stime` of `pid` in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_user_sys(pid).map(|(u, s)| u + s)
}

/// `(utime, stime)` of `pid` in seconds.
pub fn cpu_user_sys(pid: u32) -> Option<(f64, f64)> {
    let (u, s) = parse_stat_cpu_ticks(&read(format!("/proc/{pid}/stat"))?)?;
    let hz = clock_ticks() as f64;
    Some((u as f64 / hz, s as f64 / hz))
}

/// A `kB` field of `/proc/PID/status`, in bytes.
pub fn status_bytes(pid: u32, key: &str) -> Option<u64> {
    parse_status_kb(&read(format!("/proc/{pid}/status"))?, key)
}

pub fn cpu_times() -> Option<CpuTimes> {
    parse_proc_stat(&read("/proc/stat")?)
}

pub fn tcp_sockstat() -> Option<TcpSockstat> {
    parse_sockstat(&read("/proc/net/sockstat")?)
}

/// Direct children of `pid` (from `/proc/PID/task/*/children`).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Some(text) = read(t.path().join("children")) {
            out.extend(
                text.split_ascii_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_ticks_counts_from_the_last_parenthesis() {
        // A real line of a process whose name holds spaces and a parenthesis.
        let line = "31542 (nginx: (worker) x) S 31541 31541 29666 0 -1 4194624 1220 0 0 0 \
                    42 83 0 0 20 0 1 0 460153 19234816 2311 18446744073709551615 1 1 0 0 0 0 \
                    0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat_cpu_ticks(line), Some((42, 83)));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
        assert_eq!(parse_stat_cpu_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn status_fields() {
        let text = "Name:\tpyrogate\nVmPeak:\t  123 kB\nVmHWM:\t   17300 kB\nVmRSS:\t    9244 kB\n";
        assert_eq!(parse_status_kb(text, "VmHWM"), Some(17300 * 1024));
        assert_eq!(parse_status_kb(text, "VmRSS"), Some(9244 * 1024));
        assert_eq!(parse_status_kb(text, "VmSwap"), None);
    }

    #[test]
    fn steal_and_busy_between_two_samples() {
        let a = parse_proc_stat("cpu  100 0 50 800 10 0 5 35 0 0\ncpu0 1 2 3 4 5 6 7 8\n")
            .expect("valid");
        assert_eq!(
            a,
            CpuTimes {
                total: 1000,
                steal: 35,
                idle: 810
            }
        );
        let b = parse_proc_stat("cpu  300 0 100 900 10 0 5 85 0 0\n").expect("valid");
        // 400 ticks passed, 50 of them stolen, 100 idle.
        assert!((a.steal_pct(&b) - 12.5).abs() < 1e-9);
        assert!((a.busy_pct(&b) - 75.0).abs() < 1e-9);
        assert_eq!(a.steal_pct(&a), 0.0);
        assert!(parse_proc_stat("cpu  1 2 3\n").is_none());
        assert!(parse_proc_stat("intr 1 2\n").is_none());
    }

    #[test]
    fn sockstat_tcp_line() {
        let text = "sockets: used 213\nTCP: inuse 10007 orphan 0 tw 12 alloc 10010 mem 1250\n\
                    UDP: inuse 2 mem 1\n";
        assert_eq!(
            parse_sockstat(text),
            Some(TcpSockstat {
                inuse: 10007,
                mem_pages: 1250
            })
        );
        assert_eq!(parse_sockstat("UDP: inuse 2\n"), None);
    }

    #[test]
    fn readers_see_this_process() {
        let me = std::process::id();
        assert!(cpu_seconds(me).is_some());
        assert!(cpu_user_sys(me).is_some_and(|(u, s)| u >= 0.0 && s >= 0.0));
        assert!(status_bytes(me, "VmRSS").unwrap_or(0) > 0);
        assert!(cpu_times().is_some_and(|c| c.total > 0));
        assert!(clock_ticks() > 0);
    }
}
