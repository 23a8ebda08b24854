//! Hostile clients, all during the fault phase only and each loop bounded in count and
//! time: bodies cut off mid-way (FIN or RST), slowloris connections (the head trickled a
//! byte at a time), oversized and malformed requests, and connection floods beyond
//! `conn_limit`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::proxy::{set_linger_zero, splitmix};
use super::traffic::{Bodies, Kind};
use super::{Ctl, GwState};
use crate::fnv;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Sleeps up to `d`, waking early when the phase ends; false when it ended.
fn nap(ctl: &Ctl, d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if !ctl.faults_on() {
            return false;
        }
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(100)));
    }
    ctl.faults_on()
}

fn head_len(bytes: &[u8]) -> usize {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(bytes.len(), |p| p + 4)
}

// === clients that disconnect mid-body ===

/// Every `every`: a tracked-shaped request with a unique body, cut off at a random point of
/// its body; every other one ends with a RST instead of a FIN. The checksum of each prefix
/// is kept: a sink that accepts one means the gateway forwarded a truncated body.
pub fn midbody_loop(
    ctl: Arc<Ctl>,
    gw: Arc<GwState>,
    bodies: Arc<Bodies>,
    every: Duration,
    max: u64,
) {
    let host = gw.addr.to_string();
    let mut rng = splitmix(gw.seed ^ 0x6d1d);
    for i in 0..max {
        if !nap(&ctl, every) {
            return;
        }
        // JFR is sent chunked: its prefix is not a body prefix; use the others.
        let kind = Kind::ALL[(i % 4) as usize];
        let made = bodies.make(kind, gw.unique_abuse(i), &host);
        let h = head_len(&made.bytes);
        rng = splitmix(rng);
        let body_len = made.bytes.len() - h;
        let cut = 1 + (rng as usize % body_len.saturating_sub(1).max(1));
        gw.note_prefix(fnv::fnv1a64(&made.body[..cut.min(made.body.len())]));
        let Ok(mut s) = TcpStream::connect_timeout(&gw.addr, CONNECT_TIMEOUT) else {
            gw.abuse.add("midbody: connect failed");
            continue;
        };
        let _ = s.set_write_timeout(Some(IO_TIMEOUT));
        if s.write_all(&made.bytes[..h + cut]).is_err() {
            gw.abuse.add("midbody: write failed");
            continue;
        }
        if i % 2 == 0 {
            set_linger_zero(&s);
            gw.abuse.add("midbody: cut, RST");
        } else {
            gw.abuse.add("midbody: cut, FIN");
        }
        drop(s);
    }
}

// === slowloris ===

/// The head a slowloris connection trickles; after it, `a` bytes of an endless header.
const SLOW_HEAD: &[u8] =
    b"POST /ingest?name=slowloris&format=folded HTTP/1.1\r\nHost: soak\r\nUser-Agent: slowloris\r\nX-Trickle: ";

struct Slow {
    s: TcpStream,
    opened: Instant,
    sent: usize,
}

/// Keeps `conns` connections each writing one byte of a never-ending head every `tick`.
/// Records how long the gateway let each one live (its `server_read_timeout` should cut
/// them); one still open after `give_up` is closed here and counted as not cut.
pub fn slowloris_loop(
    ctl: Arc<Ctl>,
    gw: Arc<GwState>,
    conns: usize,
    tick: Duration,
    give_up: Duration,
) {
    let mut open: Vec<Slow> = Vec::with_capacity(conns);
    let mut opened = 0u64;
    // At most one new connection per slot per tick: bounded by the phase's length.
    while ctl.faults_on() {
        while open.len() < conns {
            match TcpStream::connect_timeout(&gw.addr, CONNECT_TIMEOUT) {
                Ok(s) => {
                    if s.set_nonblocking(true).is_err() {
                        break;
                    }
                    opened += 1;
                    open.push(Slow {
                        s,
                        opened: Instant::now(),
                        sent: 0,
                    });
                }
                Err(_) => {
                    gw.abuse.add("slowloris: connect failed");
                    break;
                }
            }
        }
        let mut i = 0;
        while i < open.len() {
            let c = &mut open[i];
            let mut buf = [0u8; 512];
            let cut = match c.s.read(&mut buf) {
                Ok(_) => true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => false,
                Err(_) => true,
            };
            let held = c.opened.elapsed();
            let cut = cut || {
                let b = SLOW_HEAD.get(c.sent).copied().unwrap_or(b'a');
                match c.s.write(&[b]) {
                    Ok(1) => {
                        c.sent += 1;
                        false
                    }
                    Ok(_) => false,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => false,
                    Err(_) => true,
                }
            };
            if cut {
                gw.slowloris_cut(held);
                open.swap_remove(i);
            } else if held > give_up {
                gw.slowloris_survived(held);
                open.swap_remove(i);
            } else {
                i += 1;
            }
        }
        if !nap(&ctl, tick) {
            break;
        }
    }
    gw.abuse.add_n("slowloris: opened", opened);
    gw.abuse
        .add_n("slowloris: still open at the end", open.len() as u64);
}

// === oversized and malformed requests ===

/// What a malformed request is, and whether a 2xx answer to it would be a bug.
struct Malformed {
    name: &'static str,
    bytes: Vec<u8>,
    must_refuse: bool,
}

fn malformed_set(max_body: u64, max_inflated: u64) -> Vec<Malformed> {
    let push_head = |len: usize, extra: &str| {
        format!(
            "POST /push.v1.PusherService/Push HTTP/1.1\r\nHost: soak\r\nContent-Type: application/proto\r\n{extra}Content-Length: {len}\r\n\r\n"
        )
        .into_bytes()
    };
    let with = |mut head: Vec<u8>, body: &[u8]| {
        head.extend_from_slice(body);
        head
    };
    let broken_gzip: Vec<u8> = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0xff]
        .into_iter()
        .chain((0..2000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8))
        .collect();
    let bomb = pyrogate_testdata::gz::gzip(&vec![0u8; (max_inflated + (1 << 20)) as usize]);
    let bad_proto = pyrogate_testdata::gz::gzip(&[0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02]);
    let over = max_body + 1024;
    let chunk = vec![b'x'; 64 * 1024];
    let mut chunked = b"POST /ingest?name=big&format=folded HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..=(max_body / chunk.len() as u64) + 1 {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let garbage: Vec<u8> = (0..300u32)
        .map(|i| (i.wrapping_mul(0x9e37_79b9) >> 7) as u8)
        .chain(*b"\r\n\r\n")
        .collect();
    let mut big_head = b"GET /-/healthy HTTP/1.1\r\nHost: soak\r\n".to_vec();
    for i in 0..400 {
        big_head.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "p".repeat(100)).as_bytes());
    }
    big_head.extend_from_slice(b"\r\n");
    vec![
        Malformed {
            name: "body over max_request_body (Content-Length)",
            bytes: format!(
                "POST /ingest?name=big&format=folded HTTP/1.1\r\nHost: soak\r\nContent-Length: {over}\r\n\r\n"
            )
            .into_bytes(),
            must_refuse: true,
        },
        Malformed {
            name: "body over max_request_body (chunked)",
            bytes: chunked,
            must_refuse: true,
        },
        // With `decode_push = "auto"` (the default) these Pushes go downstream unread: the
        // sink refuses them, so `ack = all` answers its 400, and with `ack = durable` a 200
        // (on disk, refused later, logged) is right, as for /ingest (docs/push.md §14.1).
        Malformed {
            name: "Push, broken gzip",
            bytes: with(push_head(broken_gzip.len(), "Content-Encoding: gzip\r\n"), &broken_gzip),
            must_refuse: false,
        },
        Malformed {
            name: "Push, gzip bomb",
            bytes: with(push_head(bomb.len(), "Content-Encoding: gzip\r\n"), &bomb),
            must_refuse: false,
        },
        Malformed {
            name: "Push, not a PushRequest",
            bytes: with(push_head(bad_proto.len(), "Content-Encoding: gzip\r\n"), &bad_proto),
            must_refuse: false,
        },
        Malformed {
            // Forwarded untouched (the sink refuses it); with ack = durable a 200 is right.
            name: "/ingest pprof, broken gzip",
            bytes: with(
                format!(
                    "POST /ingest?name=broken.app&format=pprof HTTP/1.1\r\nHost: soak\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                    broken_gzip.len()
                )
                .into_bytes(),
                &broken_gzip,
            ),
            must_refuse: false,
        },
        Malformed {
            name: "garbage head",
            bytes: garbage,
            must_refuse: true,
        },
        Malformed {
            name: "head over max_header_bytes",
            bytes: big_head,
            must_refuse: true,
        },
        Malformed {
            name: "bad chunk size",
            bytes: b"POST /ingest?name=x&format=folded HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n".to_vec(),
            must_refuse: true,
        },
        Malformed {
            name: "Content-Length and chunked",
            bytes: b"POST /ingest?name=x&format=folded HTTP/1.1\r\nHost: soak\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfoo 1\r\n0\r\n\r\n".to_vec(),
            must_refuse: true,
        },
        Malformed {
            name: "bad Content-Length",
            bytes: b"POST /ingest?name=x&format=folded HTTP/1.1\r\nHost: soak\r\nContent-Length: 12abc\r\n\r\nfoo;bar 1\n".to_vec(),
            must_refuse: true,
        },
    ]
}

/// Writes `bytes` on a fresh connection (a write that fails part-way is fine: the gateway
/// may answer and close early) and reads the status line of the answer.
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> Result<u16, &'static str> {
    let mut s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|_| "connect failed")?;
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let _ = s.set_write_timeout(Some(IO_TIMEOUT));
    let _ = s.write_all(bytes);
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let end = Instant::now() + IO_TIMEOUT;
    loop {
        if let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..line_end]).into_owned();
            return line
                .split_ascii_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or("bad status line");
        }
        if Instant::now() >= end || buf.len() > 64 * 1024 {
            return Err("no answer");
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err("closed without an answer"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err("no answer");
            }
            Err(_) => return Err("reset without an answer"),
        }
    }
}

/// Every `every`, the next malformed request; answers tallied by kind and status.
pub fn malformed_loop(
    ctl: Arc<Ctl>,
    gw: Arc<GwState>,
    every: Duration,
    max: u64,
    max_body: u64,
    max_inflated: u64,
) {
    let set = malformed_set(max_body, max_inflated);
    for i in 0..max {
        if !nap(&ctl, every) {
            return;
        }
        let m = &set[(i % set.len() as u64) as usize];
        match exchange(gw.addr, &m.bytes) {
            Ok(status) => {
                gw.abuse.add(&format!("malformed: {} → {status}", m.name));
                if m.must_refuse && (200..300).contains(&status) {
                    gw.problem(format!("{} was answered {status}", m.name));
                }
            }
            Err(e) => gw.abuse.add(&format!("malformed: {} → {e}", m.name)),
        }
    }
}

// === connection floods ===

/// Every `period` (first after `offset`): opens `n` connections, each sending a health
/// check, holds them `hold`, counts how many were answered meanwhile, closes them all.
pub fn flood_loop(
    ctl: Arc<Ctl>,
    gw: Arc<GwState>,
    n: usize,
    period: Duration,
    offset: Duration,
    hold: Duration,
) {
    if !nap(&ctl, offset) {
        return;
    }
    loop {
        let started = Instant::now();
        let window_start = ctl.t();
        gw.flood_begin(window_start);
        let mut socks = Vec::with_capacity(n);
        let mut failed = 0u64;
        for _ in 0..n {
            if !ctl.faults_on() {
                break;
            }
            match TcpStream::connect_timeout(&gw.addr, Duration::from_secs(1)) {
                Ok(mut s) => {
                    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
                    let _ = s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: flood\r\n\r\n");
                    socks.push(s);
                }
                Err(_) => failed += 1,
            }
        }
        std::thread::sleep(hold.min(ctl.remaining_faults()));
        let mut answered = 0u64;
        for s in &mut socks {
            let _ = s.set_nonblocking(true);
            let mut b = [0u8; 64];
            if let Ok(k) = s.read(&mut b)
                && b[..k].starts_with(b"HTTP/1.1 200")
            {
                answered += 1;
            }
        }
        let opened = socks.len() as u64;
        drop(socks);
        gw.flood_end(ctl.t() + 2.0, opened, answered, failed);
        let next = started + period;
        if !nap(&ctl, next.saturating_duration_since(Instant::now())) {
            return;
        }
    }
}
