//! HTTP/2 cleartext (h2c) on the real binary's listener:
//! - independent clients end to end to two sinks: curl by prior knowledge and by
//!   `Upgrade: h2c`, Python grpcio calling Push over gRPC (with gzip and a deadline);
//! - the shutdown paths: GOAWAY on drain and on `max_connection_age`;
//! - hostile peers, each spoken byte by byte by the small frame writer below: rapid reset,
//!   CONTINUATION flood, an HPACK table-size overflow, an HPACK "bomb" (a header list that
//!   decodes far larger than it is sent), a zero window, a SETTINGS flood. Each must end
//!   as HTTP/2 says, keep memory flat, and leave other connections served.
//!
//! `scripts/test.sh` installs grpcio (pip) and curl (apt).

mod common;
mod sinks;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Gateway, cpu_pprof_gz, push_proto};
use sinks::{Sink, fnv};

const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");

on_both_drivers!(
    curl_prior_knowledge_and_upgrade_reach_both_sinks,
    grpc_push_from_grpcio,
    otlp_export_over_grpc
);

fn gateway(driver: &str, a: &Sink, b: &Sink, extra: &[&str]) -> Gateway {
    let mut args = vec![
        "--driver",
        driver,
        "--forward-to",
        a.url().leak(),
        "--forward-to",
        b.url().leak(),
    ];
    args.extend_from_slice(extra);
    Gateway::start(&args)
}

/// Profile records a sink answered 200 on `route`.
fn accepted(s: &Sink, route: &str, n: usize) -> Vec<serde_json::Value> {
    s.wait_records(n, Duration::from_secs(10))
        .into_iter()
        .filter(|r| r["route"] == route && r["status"] == 200)
        .collect()
}

/// Runs curl; returns (HTTP version it used, status).
fn curl(mode: &str, url: &str, body: &Path) -> (String, u16) {
    let out = Command::new("curl")
        .args([
            "-sS",
            mode,
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
        ])
        .arg(format!("@{}", body.display()))
        .arg(url)
        .output()
        .expect("curl runs (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (v, s) = text.split_once(' ').unwrap_or(("", "0"));
    (
        v.to_string(),
        s.trim()
            .parse()
            .unwrap_or_else(|_| panic!("curl said {text:?} {out:?}")),
    )
}

fn curl_prior_knowledge_and_upgrade_reach_both_sinks(driver: &str) {
    let (a, b) = (Sink::start(&[]), Sink::start(&[]));
    let gw = gateway(driver, &a, &b, &[]);
    let body = cpu_pprof_gz();
    let big = common::td::pprof::sized(100 << 10, 7, common::td::pprof::Kind::Cpu)
        .expect("100 KiB profile")
        .gzip;
    let small_path = common::temp_path("h2-small.pb.gz");
    let big_path = common::temp_path("h2-big.pb.gz");
    std::fs::write(&small_path, &body).expect("write");
    std::fs::write(&big_path, &big).expect("write");
    let url = format!(
        "http://{}/ingest?name=h2.app.cpu&format=pprof&from=1&until=2",
        gw.addr
    );
    assert_eq!(
        curl("--http2-prior-knowledge", &url, &small_path),
        ("2".into(), 200)
    );
    assert_eq!(curl("--http2", &url, &small_path), ("2".into(), 200));
    // Too big to replay as stream 1 before our SETTINGS: answered over HTTP/1.1 (RFC 9110
    // §7.8 lets a server ignore Upgrade), still delivered.
    assert_eq!(curl("--http2", &url, &big_path), ("1.1".into(), 200));
    assert_eq!(
        curl("--http2-prior-knowledge", &url, &big_path),
        ("2".into(), 200)
    );
    for s in [&a, &b] {
        let recs = accepted(s, "ingest", 4);
        let sums: Vec<&str> = recs.iter().filter_map(|r| r["body_fnv"].as_str()).collect();
        assert_eq!(sums.len(), 4, "{recs:?}");
        assert_eq!(
            sums.iter().filter(|s| **s == fnv(&body)).count(),
            2,
            "{sums:?}"
        );
        assert_eq!(
            sums.iter().filter(|s| **s == fnv(&big)).count(),
            2,
            "{sums:?}"
        );
    }
    let m = gw.metrics();
    let conns = |setup: &str| m.value("pyrogate_http2_connections_total", &[("setup", setup)]);
    assert_eq!(conns("prior_knowledge"), 2.0);
    assert_eq!(conns("upgrade"), 1.0);
    assert_eq!(m.value("pyrogate_http2_streams_total", &[]), 3.0);
    assert_eq!(
        m.value(
            "pyrogate_http2_limit",
            &[("name", "max_concurrent_streams")]
        ),
        100.0
    );
}

fn grpc(gw: &Gateway, message: &Path, compression: &str, timeout: &str, tenant: &str) -> String {
    common::run_client(
        "python3",
        &[
            "python/grpc_push.py",
            &gw.addr.to_string(),
            message.to_str().expect("utf-8 path"),
            compression,
            timeout,
            tenant,
        ],
        Path::new(CLIENTS),
        &[],
        Duration::from_secs(30),
    )
}

fn grpc_push_from_grpcio(driver: &str) {
    let (a, b) = (Sink::start(&[]), Sink::start(&[]));
    let gw = gateway(driver, &a, &b, &[]);
    let message = push_proto();
    let path = common::temp_path("grpc-push.pb");
    std::fs::write(&path, &message).expect("write");
    assert_eq!(grpc(&gw, &path, "none", "7", "").trim(), "OK 0");
    assert_eq!(grpc(&gw, &path, "gzip", "7", "team-a").trim(), "OK 0");
    let decoded = <pyrogate::protocol::proto::PushRequest as prost::Message>::decode(&message[..])
        .expect("fixture decodes");
    for s in [&a, &b] {
        let recs = accepted(s, "push", 2);
        assert_eq!(recs.len(), 2, "{recs:?}");
        for r in &recs {
            // The downstream gets a Connect Push carrying the same series and profiles.
            let got = sinks::series_labels(r);
            let want: Vec<(String, String)> = decoded.series[0]
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            for pair in &want {
                assert!(got.contains(pair), "{pair:?} missing in {got:?}");
            }
            // grpc-timeout (7 s) became the downstream attempt's Connect deadline.
            let t: u64 = sinks::header(r, "connect-timeout-ms")
                .first()
                .and_then(|v| v.parse().ok())
                .expect("connect-timeout-ms");
            assert!((1..=7000).contains(&t), "connect-timeout-ms {t}");
        }
        let tenants: Vec<&str> = recs
            .iter()
            .flat_map(|r| sinks::header(r, "x-scope-orgid"))
            .collect();
        assert_eq!(tenants, vec!["team-a"], "{recs:?}");
        // The message inside the gRPC frame goes on as the Connect body, as sent: byte for
        // byte uncompressed, still gzip'd when grpcio compressed it.
        for r in &recs {
            let gzipped = !sinks::header(r, "content-encoding").is_empty();
            let tenant = !sinks::header(r, "x-scope-orgid").is_empty();
            assert_eq!(gzipped, tenant, "{r}");
            assert_eq!(sinks::header(r, "content-type"), vec!["application/proto"]);
            if !gzipped {
                assert_eq!(r["body_fnv"], fnv(&message), "{r}");
            }
        }
    }
    // A message that is not a PushRequest: gRPC status in the trailers-only answer.
    let junk = common::temp_path("grpc-junk.pb");
    std::fs::write(&junk, [0xff, 0xff, 0xff, 0x01, 0x02]).expect("write");
    let out = grpc(&gw, &junk, "none", "5", "");
    assert!(out.starts_with("ERR INVALID_ARGUMENT"), "{out}");
    let m = gw.metrics();
    assert_eq!(
        m.value(
            "pyrogate_requests_total",
            &[("route", "push_v1_pusherservice"), ("status_code", "200")]
        ),
        3.0
    );
}

// ---------------------------------------------------------------------------------------
// A frame-level HTTP/2 client, to be the hostile peer.

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const GOAWAY: u8 = 7;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;
const CANCEL: u32 = 8;
const NO_ERROR: u32 = 0;
const PROTOCOL_ERROR: u32 = 1;
const COMPRESSION_ERROR: u32 = 9;
const ENHANCE_YOUR_CALM: u32 = 11;

struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

struct Peer {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Peer {
    /// Connects and sends the preface with `settings`.
    fn connect(addr: SocketAddr, settings: &[(u16, u32)]) -> Peer {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_write_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut p = Peer { s, buf: Vec::new() };
        p.write(PREFACE);
        let mut payload = Vec::new();
        for (id, v) in settings {
            payload.extend_from_slice(&id.to_be_bytes());
            payload.extend_from_slice(&v.to_be_bytes());
        }
        p.frame(SETTINGS, 0, 0, &payload);
        p
    }

    /// Writes; false once the server stopped reading or closed.
    fn write(&mut self, b: &[u8]) -> bool {
        self.s.write_all(b).is_ok()
    }

    fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> bool {
        let mut f = Vec::with_capacity(9 + payload.len());
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        f.push(kind);
        f.push(flags);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        self.write(&f)
    }

    fn request(&mut self, stream: u32, method: &str, path: &str, end_stream: bool) -> bool {
        let block = block(&[
            (":method", method),
            (":scheme", "http"),
            (":authority", "gw"),
            (":path", path),
        ]);
        let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
        self.frame(HEADERS, flags, stream, &block)
    }

    /// The next frame, `None` on close or when `deadline` passes.
    fn read_frame(&mut self, deadline: Instant) -> Option<Frame> {
        loop {
            if self.buf.len() >= 9 {
                let len = (usize::from(self.buf[0]) << 16)
                    | (usize::from(self.buf[1]) << 8)
                    | usize::from(self.buf[2]);
                if self.buf.len() >= 9 + len {
                    let f = Frame {
                        kind: self.buf[3],
                        flags: self.buf[4],
                        stream: u32::from_be_bytes([
                            self.buf[5],
                            self.buf[6],
                            self.buf[7],
                            self.buf[8],
                        ]) & 0x7fff_ffff,
                        payload: self.buf[9..9 + len].to_vec(),
                    };
                    self.buf.drain(..9 + len);
                    return Some(f);
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.s
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok()?;
            let mut chunk = [0u8; 16384];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads until a GOAWAY; returns its error code (`None`: none came in time).
    fn goaway(&mut self, within: Duration) -> Option<u32> {
        let deadline = Instant::now() + within;
        while let Some(f) = self.read_frame(deadline) {
            if f.kind == GOAWAY && f.payload.len() >= 8 {
                return Some(u32::from_be_bytes([
                    f.payload[4],
                    f.payload[5],
                    f.payload[6],
                    f.payload[7],
                ]));
            }
        }
        None
    }

    /// Whether the server closed the connection within `within` (frames are skipped).
    fn closed(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.read_frame(deadline).is_some() {}
        // `read_frame` returns None on close or timeout: tell them apart.
        let mut b = [0u8; 1];
        self.s
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        matches!(self.s.read(&mut b), Ok(0)) || Instant::now() < deadline
    }
}

/// An HPACK header block of literals without indexing (RFC 7541 §6.2.2).
fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in fields {
        out.push(0);
        hpack_string(&mut out, n.as_bytes());
        hpack_string(&mut out, v.as_bytes());
    }
    out
}

fn hpack_string(out: &mut Vec<u8>, s: &[u8]) {
    hpack_int(out, s.len(), 7, 0);
    out.extend_from_slice(s);
}

fn hpack_int(out: &mut Vec<u8>, mut v: usize, bits: u32, first: u8) {
    let max = (1usize << bits) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// The gateway still answers a plain HTTP/1.1 client.
fn others_served(gw: &Gateway) {
    let r = gw.request("GET", "/-/ready", &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
}

fn hostile_gateway(extra: &[&str]) -> Gateway {
    let mut args = vec!["--workers", "1"];
    args.extend_from_slice(extra);
    Gateway::start(&args)
}

#[test]
fn rapid_reset_flood_ends_with_enhance_your_calm() {
    let gw = hostile_gateway(&[]);
    let rss0 = gw.rss_kib();
    let mut p = Peer::connect(gw.addr, &[]);
    let mut sent = 0;
    for i in 0..20_000u32 {
        let id = 2 * i + 1;
        if !p.request(id, "POST", "/ingest?name=a", false)
            || !p.frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes())
        {
            break;
        }
        sent += 1;
    }
    assert_eq!(
        p.goaway(Duration::from_secs(10)),
        Some(ENHANCE_YOUR_CALM),
        "after {sent} resets"
    );
    assert!(p.closed(Duration::from_secs(5)), "connection not closed");
    others_served(&gw);
    let rss1 = gw.rss_kib();
    assert!(rss1 < rss0 + 20 * 1024, "RSS {rss0} -> {rss1} KiB");
    let m = gw.metrics();
    assert!(
        m.value(
            "pyrogate_http2_goaways_total",
            &[("code", "enhance_your_calm")]
        ) >= 1.0,
        "goaway not counted"
    );
}

#[test]
fn continuation_flood_is_cut_off() {
    let gw = hostile_gateway(&[]);
    let rss0 = gw.rss_kib();
    let mut p = Peer::connect(gw.addr, &[]);
    let first = block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/ingest"),
    ]);
    assert!(p.frame(HEADERS, 0, 1, &first));
    let junk = block(&[("x-flood", &"a".repeat(16_000))]);
    let mut frames = 0;
    // 40 MB of header block if nobody stops it.
    while frames < 2_500 && p.frame(CONTINUATION, 0, 1, &junk) {
        frames += 1;
    }
    let code = p.goaway(Duration::from_secs(10));
    assert!(
        code.is_some_and(|c| c != NO_ERROR),
        "GOAWAY {code:?} after {frames} frames"
    );
    assert!(frames < 2_500, "the server read the whole flood");
    assert!(p.closed(Duration::from_secs(5)), "connection not closed");
    others_served(&gw);
    let rss1 = gw.rss_kib();
    assert!(rss1 < rss0 + 20 * 1024, "RSS {rss0} -> {rss1} KiB");
}

#[test]
fn hpack_table_size_above_ours_is_a_connection_error() {
    let gw = hostile_gateway(&[]);
    let mut p = Peer::connect(gw.addr, &[]);
    // A dynamic table size update (RFC 7541 §6.3) to 1 MiB, above the 4,096 we advertise.
    let mut b = Vec::new();
    hpack_int(&mut b, 1 << 20, 5, 0x20);
    b.extend_from_slice(&block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/-/ready"),
    ]));
    assert!(p.frame(HEADERS, END_HEADERS | END_STREAM, 1, &b));
    // RFC 9113 §4.3: an HPACK decoding error is a connection error COMPRESSION_ERROR.
    let code = p.goaway(Duration::from_secs(5));
    assert_eq!(code, Some(COMPRESSION_ERROR));
    assert!(p.closed(Duration::from_secs(5)));
    others_served(&gw);
}

#[test]
fn hpack_bomb_is_refused_within_the_header_list_limit() {
    let gw = hostile_gateway(&["--max-header-bytes", "16KiB"]);
    let rss0 = gw.rss_kib();
    let mut p = Peer::connect(gw.addr, &[]);
    let mut open = 0;
    for i in 0..200u32 {
        // One 4 KiB header put in the dynamic table (literal with incremental indexing),
        // then referenced 2,000 times by its one-byte index (62): 8 MB decoded from ~6 KB.
        let mut b = block(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/-/ready"),
        ]);
        if i == 0 {
            b.push(0x40);
            hpack_string(&mut b, b"x-bomb");
            hpack_string(&mut b, "b".repeat(4000).as_bytes());
        }
        b.extend(std::iter::repeat_n(0x80 | 62, 2000));
        if !p.frame(HEADERS, END_HEADERS | END_STREAM, 2 * i + 1, &b) {
            break;
        }
        open += 1;
    }
    // Each stream is refused (431 or a reset) or the connection is ended; never served,
    // never held.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut refused = 0;
    let mut goaway = None;
    while let Some(f) = p.read_frame(deadline) {
        match f.kind {
            HEADERS | RST_STREAM if f.stream != 0 => refused += 1,
            GOAWAY => {
                goaway = Some(f.payload.get(7).copied());
                break;
            }
            _ => {}
        }
        if refused >= open {
            break;
        }
    }
    assert!(
        refused > 0 || goaway.is_some(),
        "no refusal for {open} bombs"
    );
    others_served(&gw);
    let rss1 = gw.rss_kib();
    assert!(rss1 < rss0 + 20 * 1024, "RSS {rss0} -> {rss1} KiB");
    assert_eq!(
        gw.metrics().value(
            "pyrogate_requests_total",
            &[("route", "ready"), ("status_code", "200")]
        ),
        2.0,
        "only the two HTTP/1.1 readiness checks were served"
    );
}

#[test]
fn zero_window_peer_is_reset_then_closed() {
    let gw = hostile_gateway(&[
        "--server-write-timeout",
        "1s",
        "--server-idle-timeout",
        "2s",
    ]);
    // SETTINGS_INITIAL_WINDOW_SIZE = 0: we may send no DATA until a WINDOW_UPDATE that
    // never comes.
    let mut p = Peer::connect(gw.addr, &[(0x4, 0)]);
    assert!(p.request(1, "GET", "/metrics", true));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    let (mut reset, mut data, mut goaway) = (None, 0, None);
    while let Some(f) = p.read_frame(deadline) {
        match f.kind {
            DATA => data += f.payload.len(),
            RST_STREAM if f.stream == 1 => {
                reset = Some(u32::from_be_bytes([
                    f.payload[0],
                    f.payload[1],
                    f.payload[2],
                    f.payload[3],
                ]))
            }
            GOAWAY => {
                goaway = Some(u32::from_be_bytes([
                    f.payload[4],
                    f.payload[5],
                    f.payload[6],
                    f.payload[7],
                ]));
                break;
            }
            _ => {}
        }
    }
    assert_eq!(data, 0, "DATA sent into a zero window");
    assert_eq!(
        reset,
        Some(CANCEL),
        "stream not reset after the write timeout"
    );
    assert_eq!(
        goaway,
        Some(NO_ERROR),
        "idle connection not closed with GOAWAY"
    );
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(p.closed(Duration::from_secs(5)));
    others_served(&gw);
    assert_eq!(
        gw.metrics().value(
            "pyrogate_http2_stream_resets_total",
            &[("reason", "write_timeout")]
        ),
        1.0
    );
}

#[test]
fn settings_flood_keeps_memory_flat() {
    let gw = hostile_gateway(&[]);
    let rss0 = gw.rss_kib();
    let mut p = Peer::connect(gw.addr, &[]);
    let one = [0u8, 0, 0, SETTINGS, 0, 0, 0, 0, 0];
    let burst: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * 10_000)
        .collect();
    let started = Instant::now();
    let mut sent = 0;
    // The peer never reads our ACKs: the server must stop reading rather than queue them.
    while sent < 100 && started.elapsed() < Duration::from_secs(10) && p.write(&burst) {
        sent += 1;
    }
    others_served(&gw);
    let rss1 = gw.rss_kib();
    assert!(
        rss1 < rss0 + 20 * 1024,
        "RSS {rss0} -> {rss1} KiB after {sent}0k SETTINGS"
    );
}

#[test]
fn goaway_on_drain_and_on_max_connection_age() {
    let gw = hostile_gateway(&["--max-connection-age", "1s"]);
    let mut p = Peer::connect(gw.addr, &[]);
    assert!(p.request(1, "GET", "/-/ready", true));
    let started = Instant::now();
    assert_eq!(p.goaway(Duration::from_secs(5)), Some(NO_ERROR));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(p.closed(Duration::from_secs(5)));

    let mut gw = hostile_gateway(&[]);
    let mut p = Peer::connect(gw.addr, &[]);
    assert!(p.request(1, "GET", "/-/ready", true));
    let deadline = Instant::now() + Duration::from_secs(5);
    // The answer first (the connection is idle after it).
    while let Some(f) = p.read_frame(deadline) {
        if f.kind == HEADERS && f.stream == 1 {
            break;
        }
    }
    gw.signal(libc::SIGTERM);
    assert_eq!(p.goaway(Duration::from_secs(5)), Some(NO_ERROR));
    assert!(p.closed(Duration::from_secs(5)));
    assert!(gw.wait_exit(Duration::from_secs(10)).is_some());
}

/// The idle timeout counts from the end of the last stream: a connection kept busy past
/// its first idle deadline stays open, and closes with GOAWAY `NO_ERROR` once it has been
/// idle for the timeout.
#[test]
fn idle_timeout_counts_from_the_last_stream() {
    let gw = hostile_gateway(&["--server-idle-timeout", "2s"]);
    let mut p = Peer::connect(gw.addr, &[]);
    let started = Instant::now();
    let mut id = 1;
    // A request every 0.5 s for 3.5 s: never idle for 2 s.
    while started.elapsed() < Duration::from_millis(3500) {
        assert!(p.request(id, "GET", "/-/ready", true), "stream {id}");
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let f = p
                .read_frame(deadline)
                .expect("an answer, not a GOAWAY or close");
            assert_ne!(
                f.kind,
                GOAWAY,
                "GOAWAY on a busy connection after {:?}",
                started.elapsed()
            );
            if f.stream == id && f.flags & END_STREAM != 0 {
                break;
            }
        }
        id += 2;
        std::thread::sleep(Duration::from_millis(500));
    }
    let last = Instant::now();
    assert_eq!(p.goaway(Duration::from_secs(5)), Some(NO_ERROR));
    let after = last.elapsed();
    assert!(
        after >= Duration::from_millis(1200) && after < Duration::from_secs(4),
        "GOAWAY {after:?} after the last answer (idle timeout 2 s)"
    );
    assert!(p.closed(Duration::from_secs(5)));
}

/// Streams reset while their handler is forwarding (to a slow downstream) stop that work,
/// and count against the connection's reset budget: a client cannot make the gateway do
/// unbounded work by completing requests and cancelling them (the rapid-reset variant
/// that `h2`'s own pending-accept guard does not see, since every stream was accepted).
#[test]
fn resets_of_running_streams_are_budgeted() {
    let sink = Sink::start(&[]);
    sink.control("latency_ms=3000");
    let gw = hostile_gateway(&["--forward-to", sink.url().leak()]);
    let mut p = Peer::connect(gw.addr, &[]);
    let body = b"foo;bar 1\n";
    let mut sent = 0u32;
    let started = Instant::now();
    while sent < 400 && started.elapsed() < Duration::from_secs(20) {
        let id = 2 * sent + 1;
        if !p.request(
            id,
            "POST",
            "/ingest?name=reset.app.cpu&format=folded",
            false,
        ) || !p.frame(DATA, END_STREAM, id, body)
        {
            break;
        }
        // Let the gateway accept the stream and start forwarding it, then cancel.
        std::thread::sleep(Duration::from_millis(3));
        if !p.frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()) {
            break;
        }
        sent += 1;
    }
    assert_eq!(
        p.goaway(Duration::from_secs(10)),
        Some(ENHANCE_YOUR_CALM),
        "after {sent} cancelled requests"
    );
    assert!(
        sent < 400,
        "the connection took all {sent} cancelled requests"
    );
    let m = gw.metrics();
    let cancelled = m.value(
        "pyrogate_http2_stream_resets_total",
        &[("reason", "client_cancel")],
    );
    assert!(cancelled >= 200.0, "client_cancel {cancelled}");
    others_served(&gw);
}

/// With `[server.http2] enabled = false` the preface is an HTTP/1.x request of an
/// unsupported version, as before HTTP/2 existed here.
#[test]
fn disabled_http2_answers_the_preface_with_505() {
    let cfg = common::write_temp("h2-off.toml", "[server.http2]\nenabled = false\n");
    let gw = Gateway::start(&["--config", cfg.to_str().expect("utf-8 path")]);
    let mut c = gw.connect();
    c.send(PREFACE).expect("send");
    let r = c
        .read_response(common::IO_TIMEOUT)
        .expect("an HTTP/1.1 answer");
    assert_eq!(r.status, 505, "{r:?}");
    let m = gw.metrics();
    let conns = m.get(
        "pyrogate_http2_connections_total",
        &[("setup", "prior_knowledge")],
    );
    assert_eq!(conns.unwrap_or(0.0), 0.0);
}

fn otlp_grpc(gw: &Gateway, message: &Path, compression: &str, tenant: &str) -> String {
    common::run_client(
        "python3",
        &[
            "python/otlp_grpc_export.py",
            &gw.addr.to_string(),
            message.to_str().expect("utf-8 path"),
            compression,
            tenant,
        ],
        Path::new(CLIENTS),
        &[],
        Duration::from_secs(30),
    )
}

/// OTLP profiles over gRPC: grpcio calls `ProfilesService/Export` with a message the
/// `opentelemetry-proto` package parsed and serialized; both sinks get it over OTLP/HTTP
/// byte for byte (the message as the client serialized it), the tenant travels, the
/// downstream's `partial_success` comes back in the gRPC response, and a message in the
/// older schema layout gets a gRPC error instead of being forwarded.
fn otlp_export_over_grpc(driver: &str) {
    let (a, b) = (Sink::start(&[]), Sink::start(&[]));
    let gw = gateway(driver, &a, &b, &[]);
    let spec = common::td::otlp::Spec::new(3, common::td::otlp::Layout::V1_10).samples(4);
    let path = common::temp_path("otlp-grpc.pb");
    std::fs::write(&path, common::td::otlp::request(&spec)).expect("write");
    assert_eq!(otlp_grpc(&gw, &path, "none", "team-o").trim(), "OK 0");
    let sent =
        std::fs::read(format!("{}.sent", path.display())).expect("client wrote what it sent");
    a.control("otlp_partial=2");
    b.control("otlp_partial=2");
    assert_eq!(otlp_grpc(&gw, &path, "gzip", "").trim(), "OK 2");
    for s in [&a, &b] {
        let recs = accepted(s, "otlp", 2);
        assert_eq!(recs.len(), 2, "{recs:?}");
        for r in &recs {
            assert_eq!(r["body_fnv"], fnv(&sent), "{r}");
            assert_eq!(
                sinks::header(r, "content-type"),
                vec!["application/x-protobuf"]
            );
        }
        let tenants: Vec<&str> = recs
            .iter()
            .flat_map(|r| sinks::header(r, "x-scope-orgid"))
            .collect();
        assert_eq!(tenants, vec!["team-o"]);
    }
    let old = common::td::otlp::Spec::new(4, common::td::otlp::Layout::V1_9).samples(4);
    let old_path = common::temp_path("otlp-grpc-v19.pb");
    std::fs::write(&old_path, common::td::otlp::request(&old)).expect("write");
    let out = otlp_grpc(&gw, &old_path, "none", "");
    assert!(out.starts_with("ERR INVALID_ARGUMENT"), "{out}");
    let m = gw.metrics();
    let route = "opentelemetry_proto_collector_profiles_v1development_profilesservice";
    assert_eq!(
        m.value(
            "pyrogate_requests_total",
            &[("route", route), ("status_code", "200")]
        ),
        3.0
    );
}

/// `http2 = true` on an endpoint: requests go to it over h2c, concurrently on one
/// connection per worker, byte for byte, with the tenant; the sink (which serves h2c like
/// Pyroscope) sees HTTP/2 streams.
#[test]
fn http2_endpoints_get_requests_over_h2c() {
    let (a, b) = (Sink::start(&[]), Sink::start(&[]));
    let cfg = common::write_temp(
        "h2-endpoints.toml",
        &format!(
            "[runtime]\nworkers = 1\n\n[[endpoint]]\nurl = \"{}\"\nhttp2 = true\n\n[[endpoint]]\nurl = \"{}\"\nhttp2 = true\n",
            a.url(),
            b.url()
        ),
    );
    let gw = Gateway::start(&["--config", cfg.to_str().expect("utf-8 path")]);
    let body = cpu_pprof_gz();
    let push = push_proto();
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let addr = gw.addr;
            let (body, push) = (body.clone(), push.clone());
            std::thread::spawn(move || {
                let mut c = common::Conn::connect(addr).expect("connect");
                let path = format!(
                    "/ingest?name=h2out.app.cpu&format=pprof&from={i}&until={}",
                    i + 1
                );
                let r = c
                    .request("POST", &path, &[("X-Scope-OrgID", "team-h")], &body)
                    .expect("ingest");
                assert_eq!(r.status, 200, "{}", r.body_str());
                let r = c
                    .request(
                        "POST",
                        "/push.v1.PusherService/Push",
                        &[
                            ("Content-Type", "application/proto"),
                            ("X-Scope-OrgID", "team-h"),
                        ],
                        &push,
                    )
                    .expect("push");
                assert_eq!(r.status, 200, "{}", r.body_str());
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
    for s in [&a, &b] {
        let recs: Vec<_> = s
            .wait_records(16, Duration::from_secs(10))
            .into_iter()
            .filter(|r| r["status"] == 200)
            .collect();
        assert_eq!(recs.len(), 16, "{recs:?}");
        for r in &recs {
            assert_eq!(r["framing"], "http2", "{r}");
            assert_eq!(sinks::header(r, "x-scope-orgid"), vec!["team-h"], "{r}");
            let want = if r["route"] == "push" {
                fnv(&push)
            } else {
                fnv(&body)
            };
            assert_eq!(r["body_fnv"], want, "{r}");
        }
    }
}

/// An `https://` endpoint with `http2 = true` that does not negotiate ALPN `h2` is an
/// error that says so, not a silent downgrade.
#[test]
fn http2_endpoint_without_alpn_h2_is_reported() {
    // A TLS downstream that offers no ALPN protocol (an HTTP/1.1-only server).
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert = common::write_temp("h2-alpn-cert.pem", &ck.cert.pem());
    let der = rustls::pki_types::CertificateDer::from(ck.cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        ck.signing_key.serialize_der(),
    ));
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let server = std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![der], key)
            .expect("server config"),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten().take(8) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            if let Ok(mut conn) = rustls::ServerConnection::new(server.clone()) {
                while conn.is_handshaking() && conn.complete_io(&mut stream).is_ok() {}
            }
        }
    });
    let cfg = common::write_temp(
        "h2-alpn-up.toml",
        &format!(
            "[[endpoint]]\nurl = \"https://localhost:{}\"\nhttp2 = true\nmax_backoff_retries = 1\n\n[endpoint.tls_config]\nca_file = \"{}\"\n",
            port,
            cert.display()
        ),
    );
    let gw = Gateway::start(&["--config", cfg.to_str().expect("utf-8 path")]);
    let r = gw.request(
        "POST",
        "/ingest?name=alpn.app.cpu&format=pprof&from=1&until=2",
        &[],
        &cpu_pprof_gz(),
    );
    assert_ne!(r.status, 200, "{}", r.body_str());
    assert!(
        r.body_str().contains("ALPN h2") || gw.stderr().contains("ALPN h2"),
        "{} / {}",
        r.body_str(),
        gw.stderr()
    );
}

/// A TLS front that negotiates ALPN `h2` and relays the decrypted bytes to `backend`
/// (the sink, which speaks h2c): an `https://` HTTP/2 downstream for the test.
fn tls_h2_front(backend: SocketAddr) -> (u16, std::path::PathBuf) {
    use std::io::ErrorKind::WouldBlock;
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let ca = common::write_temp("h2-front-cert.pem", &ck.cert.pem());
    let der = rustls::pki_types::CertificateDer::from(ck.cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        ck.signing_key.serialize_der(),
    ));
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = std::sync::Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut tcp in listener.incoming().flatten().take(8) {
            let config = config.clone();
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
                let Ok(mut conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                while conn.is_handshaking() {
                    if conn.complete_io(&mut tcp).is_err() {
                        return;
                    }
                }
                let Ok(mut back) = TcpStream::connect(backend) else {
                    return;
                };
                let _ = tcp.set_nonblocking(true);
                let _ = back.set_nonblocking(true);
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut buf = vec![0u8; 16384];
                let write_all = |s: &mut TcpStream, mut b: &[u8]| -> bool {
                    while !b.is_empty() && Instant::now() < deadline {
                        match s.write(b) {
                            Ok(n) => b = &b[n..],
                            Err(e) if e.kind() == WouldBlock => {
                                std::thread::sleep(Duration::from_millis(1))
                            }
                            Err(_) => return false,
                        }
                    }
                    b.is_empty()
                };
                while Instant::now() < deadline {
                    let mut progressed = false;
                    match conn.read_tls(&mut tcp) {
                        Ok(0) => return,
                        Ok(_) => {
                            if conn.process_new_packets().is_err() {
                                return;
                            }
                            progressed = true;
                        }
                        Err(e) if e.kind() == WouldBlock => {}
                        Err(_) => return,
                    }
                    loop {
                        match conn.reader().read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => {
                                if !write_all(&mut back, &buf[..n]) {
                                    return;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                    match back.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            let _ = conn.writer().write_all(&buf[..n]);
                            progressed = true;
                        }
                        Err(e) if e.kind() == WouldBlock => {}
                        Err(_) => return,
                    }
                    while conn.wants_write() {
                        match conn.write_tls(&mut tcp) {
                            Ok(_) => {}
                            Err(e) if e.kind() == WouldBlock => {
                                std::thread::sleep(Duration::from_millis(1))
                            }
                            Err(_) => return,
                        }
                    }
                    if !progressed {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            });
        }
    });
    (port, ca)
}

/// `http2 = true` on an `https://` endpoint: TLS with ALPN `h2`, then HTTP/2 streams.
#[test]
fn http2_endpoint_over_tls_negotiates_alpn_h2() {
    let sink = Sink::start(&[]);
    let (port, ca) = tls_h2_front(sink.addr);
    let cfg = common::write_temp(
        "h2-tls-up.toml",
        &format!(
            "[[endpoint]]\nurl = \"https://localhost:{port}\"\nhttp2 = true\n\n[endpoint.tls_config]\nca_file = \"{}\"\n",
            ca.display()
        ),
    );
    let gw = Gateway::start(&["--config", cfg.to_str().expect("utf-8 path")]);
    let body = cpu_pprof_gz();
    for i in 0..3 {
        let r = gw.request(
            "POST",
            &format!(
                "/ingest?name=tls.h2.app.cpu&format=pprof&from={i}&until={}",
                i + 1
            ),
            &[],
            &body,
        );
        assert_eq!(r.status, 200, "{}", r.body_str());
    }
    let recs = accepted(&sink, "ingest", 3);
    assert_eq!(recs.len(), 3, "{recs:?}");
    for r in &recs {
        assert_eq!(r["framing"], "http2", "{r}");
        assert_eq!(r["body_fnv"], fnv(&body), "{r}");
    }
}

/// Header blocks that keep decoding past the limit are refused one by one; a client that
/// keeps sending them loses the connection (GOAWAY `ENHANCE_YOUR_CALM` once
/// `max_local_error_resets`, here 50, is spent).
#[test]
fn hpack_bomb_flood_ends_the_connection() {
    let cfg = common::write_temp(
        "h2-local-resets.toml",
        "[server]\nmax_header_bytes = \"16KiB\"\n\n[server.http2]\nmax_local_error_resets = 50\n",
    );
    let gw = hostile_gateway(&["--config", cfg.to_str().expect("utf-8 path")]);
    let rss0 = gw.rss_kib();
    let mut p = Peer::connect(gw.addr, &[]);
    let mut sent = 0;
    for i in 0..3000u32 {
        let mut b = block(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/-/ready"),
        ]);
        if i == 0 {
            b.push(0x40);
            hpack_string(&mut b, b"x-bomb");
            hpack_string(&mut b, "b".repeat(4000).as_bytes());
        }
        b.extend(std::iter::repeat_n(0x80 | 62, 100));
        if !p.frame(HEADERS, END_HEADERS | END_STREAM, 2 * i + 1, &b) {
            break;
        }
        sent += 1;
    }
    let code = p.goaway(Duration::from_secs(10));
    assert_eq!(
        code,
        Some(ENHANCE_YOUR_CALM),
        "after {sent} oversized header blocks"
    );
    assert_eq!(
        gw.metrics().value(
            "pyrogate_http2_limit",
            &[("name", "max_local_error_resets")]
        ),
        50.0
    );
    assert!(p.closed(Duration::from_secs(5)));
    others_served(&gw);
    let rss1 = gw.rss_kib();
    assert!(rss1 < rss0 + 20 * 1024, "RSS {rss0} -> {rss1} KiB");
}

const PING: u8 = 6;
const WINDOW_UPDATE: u8 = 8;
const FLOW_CONTROL_ERROR: u32 = 3;
const FRAME_SIZE_ERROR: u32 = 6;
const ACK: u8 = 1;

/// The frames of `stream` until one ends it (END_STREAM or RST_STREAM), or `None`.
fn until_end(p: &mut Peer, stream: u32, within: Duration) -> Option<Vec<Frame>> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while let Some(f) = p.read_frame(deadline) {
        assert_ne!(f.kind, GOAWAY, "GOAWAY while waiting for stream {stream}");
        if f.stream != stream {
            continue;
        }
        let end = f.kind == RST_STREAM || f.flags & END_STREAM != 0;
        got.push(f);
        if end {
            return Some(got);
        }
    }
    None
}

fn rst_code(f: &Frame) -> Option<u32> {
    (f.kind == RST_STREAM)
        .then(|| u32::from_be_bytes([f.payload[0], f.payload[1], f.payload[2], f.payload[3]]))
}

/// PING is answered with the same payload; a frame longer than our
/// SETTINGS_MAX_FRAME_SIZE (1 MiB by default) ends the connection with FRAME_SIZE_ERROR
/// before its payload is read.
#[test]
fn ping_is_answered_and_oversized_frames_end_the_connection() {
    let gw = hostile_gateway(&[]);
    let mut p = Peer::connect(gw.addr, &[]);
    assert!(p.frame(PING, 0, 0, b"pyrogate"));
    let deadline = Instant::now() + Duration::from_secs(5);
    let ack = loop {
        let f = p.read_frame(deadline).expect("a PING ACK");
        if f.kind == PING {
            break f;
        }
    };
    assert_eq!((ack.flags, ack.payload.as_slice()), (ACK, &b"pyrogate"[..]));
    let len = (1u32 << 20) + 1;
    assert!(p.write(&[
        (len >> 16) as u8,
        (len >> 8) as u8,
        len as u8,
        DATA,
        0,
        0,
        0,
        0,
        1
    ]));
    assert_eq!(p.goaway(Duration::from_secs(5)), Some(FRAME_SIZE_ERROR));
    assert!(p.closed(Duration::from_secs(5)));
    others_served(&gw);
}

/// An answer larger than the client's window waits for its WINDOW_UPDATEs: exactly the
/// window's bytes first, the rest (and END_STREAM) once the client opens it.
#[test]
fn answers_wait_for_the_client_window() {
    let gw = hostile_gateway(&[]);
    let mut p = Peer::connect(gw.addr, &[(0x4, 10)]);
    assert!(p.request(1, "GET", "/metrics", true));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut data = 0;
    let mut headers = false;
    // Everything the window allows, then nothing for a while.
    while let Some(f) = p.read_frame(deadline.min(Instant::now() + Duration::from_millis(500))) {
        match f.kind {
            HEADERS if f.stream == 1 => headers = true,
            DATA if f.stream == 1 => {
                assert_eq!(
                    f.flags & END_STREAM,
                    0,
                    "the whole of /metrics in 10 bytes?"
                );
                data += f.payload.len();
            }
            _ => {}
        }
    }
    assert!(headers, "no HEADERS");
    assert_eq!(data, 10, "DATA beyond the 10-byte window");
    assert!(p.frame(WINDOW_UPDATE, 0, 1, &(1u32 << 24).to_be_bytes()));
    assert!(p.frame(WINDOW_UPDATE, 0, 0, &(1u32 << 24).to_be_bytes()));
    let rest = until_end(&mut p, 1, Duration::from_secs(5)).expect("the rest of the answer");
    let last = rest.last().expect("frames");
    assert_eq!((last.kind, last.flags & END_STREAM), (DATA, END_STREAM));
    let more: usize = rest.iter().map(|f| f.payload.len()).sum();
    assert!(more > 1000, "only {more} more bytes of /metrics");
}

/// Malformed requests (RFC 9113 §8.1.1) and DATA beyond a stream's window are stream
/// errors: that stream is reset, the connection and its other streams go on.
#[test]
fn malformed_streams_are_reset_alone() {
    let cfg = common::write_temp(
        "h2-small-window.toml",
        "[server.http2]\ninitial_stream_window_size = \"1KiB\"\n",
    );
    let gw = hostile_gateway(&["--config", cfg.to_str().expect("utf-8 path")]);
    let mut p = Peer::connect(gw.addr, &[]);
    // An upper-case field name.
    let mut b = block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/-/ready"),
    ]);
    b.extend_from_slice(&block(&[("X-Upper", "1")]));
    assert!(p.frame(HEADERS, END_HEADERS | END_STREAM, 1, &b));
    let f = until_end(&mut p, 1, Duration::from_secs(5)).expect("an answer on stream 1");
    assert_eq!(
        f.last().and_then(rst_code),
        Some(PROTOCOL_ERROR),
        "upper-case name"
    );
    // A body shorter than its content-length.
    let b = block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/ingest?name=a&format=folded"),
        ("content-length", "50"),
    ]);
    assert!(p.frame(HEADERS, END_HEADERS, 3, &b));
    assert!(p.frame(DATA, END_STREAM, 3, b"foo 1\n"));
    let f = until_end(&mut p, 3, Duration::from_secs(5)).expect("an answer on stream 3");
    assert_eq!(
        f.last().and_then(rst_code),
        Some(PROTOCOL_ERROR),
        "content-length"
    );
    // A DATA frame larger than the stream window (1 KiB here, in force once the client
    // acknowledged our SETTINGS).
    assert!(p.frame(SETTINGS, ACK, 0, &[]));
    assert!(p.request(5, "POST", "/ingest?name=a&format=folded", false));
    assert!(p.frame(DATA, 0, 5, &[b'a'; 2000]));
    let f = until_end(&mut p, 5, Duration::from_secs(5)).expect("an answer on stream 5");
    assert_eq!(
        f.last().and_then(rst_code),
        Some(FLOW_CONTROL_ERROR),
        "window"
    );
    // The connection still serves.
    assert!(p.request(7, "GET", "/-/ready", true));
    let f = until_end(&mut p, 7, Duration::from_secs(5)).expect("an answer on stream 7");
    assert_eq!(f[0].kind, HEADERS);
    assert_eq!(f.last().and_then(rst_code), None);
    let m = gw.metrics();
    assert_eq!(
        m.value(
            "pyrogate_http2_stream_resets_total",
            &[("reason", "protocol_error")]
        ),
        2.0
    );
    assert_eq!(
        m.value(
            "pyrogate_http2_stream_resets_total",
            &[("reason", "flow_control_error")]
        ),
        1.0
    );
}

/// CPU seconds (user + system) the process has used, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which ends with the last ')'): utime is the 12th.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// A client that closes its sending side with a request still being forwarded gets its
/// answer, then the connection closes; the gateway does not spin meanwhile (the idle
/// timeout passing while the connection waits on a handler).
#[test]
fn half_closed_client_gets_its_answer_then_the_close() {
    let sink = Sink::start(&[]);
    sink.control("latency_ms=2500");
    let gw = hostile_gateway(&[
        "--forward-to",
        sink.url().leak(),
        "--server-idle-timeout",
        "1s",
    ]);
    let mut p = Peer::connect(gw.addr, &[]);
    assert!(p.request(1, "POST", "/ingest?name=half.app.cpu&format=folded", false));
    assert!(p.frame(DATA, END_STREAM, 1, b"foo;bar 1\n"));
    p.s.shutdown(std::net::Shutdown::Write).expect("half-close");
    let cpu0 = cpu_seconds(gw.pid());
    let started = Instant::now();
    let answer = until_end(&mut p, 1, Duration::from_secs(8)).expect("the answer");
    assert_eq!(answer[0].kind, HEADERS, "{:?}", answer[0].kind);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "answered before the sink did"
    );
    assert!(
        p.closed(Duration::from_secs(5)),
        "not closed after the answer"
    );
    let spent = cpu_seconds(gw.pid()) - cpu0;
    assert!(spent < 0.5, "{spent:.2} CPU-s while waiting ~2.5 s");
}
