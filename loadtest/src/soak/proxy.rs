//! A fault proxy in front of each sink, for the faults the sink's own `/control` cannot
//! make: connections reset (RST, mid-request or instead of the answer), slow reads (the
//! request taken from the gateway 256 bytes every 10 ms) and a sink that is down (every
//! connection reset at once). Thread per direction per connection; bounded in connections,
//! and every blocking call has a timeout, so [`Proxy::stop`] ends it within a second.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Live connections per proxy; more are reset at once (and counted).
const MAX_CONNS: usize = 400;
/// Every socket read wakes up this often to look at the kill flag.
const POLL: Duration = Duration::from_millis(200);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Slow read: this many bytes, then [`SLOW_PAUSE`] (25 KiB/s).
const SLOW_CHUNK: usize = 256;
const SLOW_PAUSE: Duration = Duration::from_millis(10);
const STACK: usize = 128 * 1024;

/// What the proxy does to connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Pass = 0,
    /// New connections: half are reset after a random number of request bytes, a quarter
    /// are reset when the sink's answer arrives (the sink took the profile, the gateway
    /// sees a reset: a retry and a duplicate). Live connections are reset on entry.
    Reset = 1,
    /// New connections pass the request on at 25 KiB/s.
    SlowRead = 2,
    /// Every connection is reset: live ones on entry, new ones on accept.
    Down = 3,
}

impl Mode {
    fn from_u8(v: u8) -> Mode {
        match v {
            1 => Mode::Reset,
            2 => Mode::SlowRead,
            3 => Mode::Down,
            _ => Mode::Pass,
        }
    }
}

/// What the proxy did, for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyCounts {
    pub accepted: u64,
    /// Connections reset by a fault (mid-request, instead of an answer, on entry to a
    /// reset/down phase, or refused while down).
    pub resets: u64,
    pub slow: u64,
    /// Reset because `MAX_CONNS` (400) were open.
    pub over_capacity: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    resets: AtomicU64,
    slow: AtomicU64,
    over_capacity: AtomicU64,
}

struct ConnFlag {
    kill: AtomicBool,
}

struct Shared {
    upstream: SocketAddr,
    mode: AtomicU8,
    stop: AtomicBool,
    live: Mutex<Vec<Arc<ConnFlag>>>,
    counts: Counters,
    rng: Mutex<u64>,
}

impl Shared {
    fn rand(&self) -> u64 {
        let mut s = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        *s = splitmix(*s);
        *s
    }
}

/// One step of SplitMix64: a small, seedable generator for fault decisions.
pub fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A running proxy.
pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl Proxy {
    /// Listens on `127.0.0.1:0` and forwards to `upstream`.
    pub fn start(upstream: SocketAddr, seed: u64) -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("proxy: bind: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("proxy: local_addr: {e}"))?;
        let shared = Arc::new(Shared {
            upstream,
            mode: AtomicU8::new(Mode::Pass as u8),
            stop: AtomicBool::new(false),
            live: Mutex::new(Vec::new()),
            counts: Counters::default(),
            rng: Mutex::new(seed),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("soak-proxy".into())
            .stack_size(STACK)
            .spawn(move || accept_loop(listener, s))
            .map_err(|e| format!("proxy: thread: {e}"))?;
        Ok(Self {
            addr,
            shared,
            accept: Mutex::new(Some(accept)),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn mode(&self) -> Mode {
        Mode::from_u8(self.shared.mode.load(Ordering::SeqCst))
    }

    /// Switches the mode; entering [`Mode::Reset`] or [`Mode::Down`] resets every live
    /// connection. Returns how many were reset.
    pub fn set_mode(&self, m: Mode) -> u64 {
        self.shared.mode.store(m as u8, Ordering::SeqCst);
        if matches!(m, Mode::Reset | Mode::Down) {
            let live = self.shared.live.lock().unwrap_or_else(|p| p.into_inner());
            for c in live.iter() {
                c.kill.store(true, Ordering::SeqCst);
            }
            let n = live.len() as u64;
            self.shared.counts.resets.fetch_add(n, Ordering::Relaxed);
            n
        } else {
            0
        }
    }

    pub fn counts(&self) -> ProxyCounts {
        let c = &self.shared.counts;
        ProxyCounts {
            accepted: c.accepted.load(Ordering::Relaxed),
            resets: c.resets.load(Ordering::Relaxed),
            slow: c.slow.load(Ordering::Relaxed),
            over_capacity: c.over_capacity.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting and ends every connection (within 200 ms).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let live = self.shared.live.lock().unwrap_or_else(|p| p.into_inner());
            for c in live.iter() {
                c.kill.store(true, Ordering::SeqCst);
            }
        }
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        let h = self.accept.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = h {
            let _ = h.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `SO_LINGER` 0: the last close of the socket sends a RST instead of a FIN.
pub fn set_linger_zero(s: &TcpStream) {
    let lg = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a properly sized linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&lg as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn accept_loop(listener: TcpListener, s: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept() else {
            if s.stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        if s.stop.load(Ordering::SeqCst) {
            return;
        }
        s.counts.accepted.fetch_add(1, Ordering::Relaxed);
        let mode = Mode::from_u8(s.mode.load(Ordering::SeqCst));
        let flag = {
            let mut live = s.live.lock().unwrap_or_else(|p| p.into_inner());
            live.retain(|c| Arc::strong_count(c) > 1);
            if live.len() >= MAX_CONNS {
                s.counts.over_capacity.fetch_add(1, Ordering::Relaxed);
                None
            } else {
                let f = Arc::new(ConnFlag {
                    kill: AtomicBool::new(false),
                });
                live.push(f.clone());
                Some(f)
            }
        };
        let Some(flag) = flag else {
            set_linger_zero(&client);
            continue;
        };
        if mode == Mode::Down {
            s.counts.resets.fetch_add(1, Ordering::Relaxed);
            set_linger_zero(&client);
            continue;
        }
        let plan = match mode {
            Mode::Reset => {
                let r = s.rand();
                match r % 4 {
                    0 | 1 => Plan {
                        reset_after: Some((r >> 8) % 16_384),
                        ..Plan::default()
                    },
                    2 => Plan {
                        drop_response: true,
                        ..Plan::default()
                    },
                    _ => Plan::default(),
                }
            }
            Mode::SlowRead => {
                s.counts.slow.fetch_add(1, Ordering::Relaxed);
                Plan {
                    slow: true,
                    ..Plan::default()
                }
            }
            _ => Plan::default(),
        };
        let s2 = s.clone();
        let spawned = std::thread::Builder::new()
            .name("soak-proxy-conn".into())
            .stack_size(STACK)
            .spawn(move || connection(client, s2, flag, plan));
        if spawned.is_err() {
            s.counts.over_capacity.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Plan {
    /// Reset after this many request bytes.
    reset_after: Option<u64>,
    /// Reset when the first answer bytes arrive, instead of passing them on.
    drop_response: bool,
    slow: bool,
}

fn setup(s: &TcpStream) -> bool {
    s.set_read_timeout(Some(POLL)).is_ok()
        && s.set_write_timeout(Some(WRITE_TIMEOUT)).is_ok()
        && s.set_nodelay(true).is_ok()
}

/// Ends both sockets with a RST (the other direction's thread sees the kill flag).
fn reset(a: &TcpStream, b: &TcpStream, flag: &ConnFlag, shared: &Shared) {
    set_linger_zero(a);
    set_linger_zero(b);
    if !flag.kill.swap(true, Ordering::SeqCst) {
        shared.counts.resets.fetch_add(1, Ordering::Relaxed);
    }
}

fn connection(client: TcpStream, s: Arc<Shared>, flag: Arc<ConnFlag>, plan: Plan) {
    let Ok(upstream) = TcpStream::connect_timeout(&s.upstream, CONNECT_TIMEOUT) else {
        set_linger_zero(&client);
        return;
    };
    if !setup(&client) || !setup(&upstream) {
        return;
    }
    let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let (s2, f2) = (s.clone(), flag.clone());
    let down = std::thread::Builder::new()
        .name("soak-proxy-down".into())
        .stack_size(STACK)
        .spawn(move || pump_down(u2, c2, &s2, &f2, plan.drop_response));
    pump_up(&client, &upstream, &s, &flag, plan);
    if let Ok(h) = down {
        let _ = h.join();
    }
}

/// Gateway → sink.
fn pump_up(client: &TcpStream, upstream: &TcpStream, s: &Shared, flag: &ConnFlag, plan: Plan) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut sent = 0u64;
    let (mut from, mut to) = (client, upstream);
    loop {
        if flag.kill.load(Ordering::SeqCst) || s.stop.load(Ordering::SeqCst) {
            reset(client, upstream, flag, s);
            return;
        }
        let want = if plan.slow { SLOW_CHUNK } else { buf.len() };
        let n = match from.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let mut n = n;
        if let Some(limit) = plan.reset_after
            && sent + n as u64 >= limit
        {
            n = (limit - sent) as usize;
            let _ = to.write_all(&buf[..n]);
            reset(client, upstream, flag, s);
            return;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
        if plan.slow {
            std::thread::sleep(SLOW_PAUSE);
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.shutdown(Shutdown::Both);
}

/// Sink → gateway.
fn pump_down(upstream: TcpStream, client: TcpStream, s: &Shared, flag: &ConnFlag, drop: bool) {
    let mut buf = vec![0u8; 16 * 1024];
    let (mut from, mut to) = (&upstream, &client);
    loop {
        if flag.kill.load(Ordering::SeqCst) || s.stop.load(Ordering::SeqCst) {
            reset(&client, &upstream, flag, s);
            return;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if drop {
            reset(&client, &upstream, flag, s);
            return;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_server() -> (SocketAddr, JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let h = std::thread::spawn(move || {
            for _ in 0..3 {
                let Ok((mut s, _)) = l.accept() else { return };
                std::thread::spawn(move || {
                    let mut b = [0u8; 1024];
                    while let Ok(n) = s.read(&mut b) {
                        if n == 0 || s.write_all(&b[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, h)
    }

    #[test]
    fn passes_resets_and_refuses() {
        let (up, _h) = echo_server();
        let p = Proxy::start(up, 7).expect("proxy");
        let mut c = TcpStream::connect(p.addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        c.write_all(b"hello").expect("write");
        let mut b = [0u8; 5];
        c.read_exact(&mut b).expect("echo");
        assert_eq!(&b, b"hello");
        // Entering Down resets the live connection.
        assert_eq!(p.set_mode(Mode::Down), 1);
        let mut rest = [0u8; 8];
        let r = c.read(&mut rest);
        assert!(
            matches!(r, Ok(0)) || r.is_err_and(|e| e.kind() == ErrorKind::ConnectionReset),
            "closed"
        );
        // While down, new connections are reset at once.
        let mut d = TcpStream::connect(p.addr).expect("connect");
        d.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let _ = d.write_all(b"x");
        assert!(!matches!(d.read(&mut rest), Ok(n) if n > 0));
        assert!(p.counts().resets >= 2, "{:?}", p.counts());
        p.set_mode(Mode::Pass);
        p.stop();
    }
}
