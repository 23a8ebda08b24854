//! `ack = "durable"` (docs/spool.md) through the real binary: a 200 means the profile is on
//! disk. Crashes (`kill -9`) under load with a destination down lose nothing that was
//! acknowledged; damaged segments cost only their damaged records; a full spool answers
//! 429 with `Retry-After` and keeps memory flat; records older than `spool.max_age` are
//! dropped and counted; `spool inspect` and `--check-config` report on the directory.

mod common;
mod sinks;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Conn, Gateway, free_port, poll_until, td, temp_path, write_temp};
use sinks::{Sink, fnv};

const WAIT: Duration = Duration::from_secs(40);

/// A fresh, empty spool directory.
fn spool_dir(what: &str) -> PathBuf {
    let d = temp_path(what);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

/// A gateway configuration: durable ack over `urls`, quick backoff so a returning
/// destination is retried within a fraction of a second.
fn config(dir: &Path, urls: &[String], spool_extra: &str) -> PathBuf {
    let mut s = format!(
        "[forward]\nack = \"durable\"\n\n[spool]\ndir = \"{}\"\n{spool_extra}\n",
        dir.display()
    );
    for u in urls {
        s.push_str(&format!(
            "\n[[endpoint]]\nurl = \"{u}\"\nmin_backoff_period = \"20ms\"\nmax_backoff_period = \"200ms\"\nremote_timeout = \"2s\"\n"
        ));
    }
    write_temp("spool.toml", &s)
}

fn gateway(cfg: &Path, workers: &str) -> Gateway {
    gateway_on("auto", cfg, workers)
}

fn gateway_on(driver: &str, cfg: &Path, workers: &str) -> Gateway {
    Gateway::on(
        driver,
        &[
            "--config",
            cfg.to_str().expect("utf-8"),
            "--workers",
            workers,
        ],
    )
}

/// Request `i`: alternately a pyroscope-io Push and a Go `/ingest`, each body unique.
fn request(i: u64) -> td::sdk::Request {
    if i.is_multiple_of(2) {
        td::sdk::python_push(1000 + i)
    } else {
        td::sdk::go_ingest(1000 + i, 1_700_000_000 + i, td::pprof::Kind::Cpu, false)
    }
}

fn send(c: &mut Conn, r: &td::sdk::Request) -> std::io::Result<common::conn::Response> {
    let headers: Vec<(&str, &str)> = r
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    c.request(&r.method, &r.target, &headers, &r.body)
}

/// Body checksums each sink received, with how many times.
fn received(s: &Sink) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in s.answered() {
        if r["status"] == 200
            && let Some(f) = r["body_fnv"].as_str()
        {
            *out.entry(f.to_string()).or_insert(0) += 1;
        }
    }
    out
}

/// Waits until `sink` has every checksum of `acked`; returns the duplicates it got.
fn wait_all(sink: &Sink, acked: &BTreeSet<String>, what: &str) -> usize {
    let got = poll_until(WAIT, || {
        let r = received(sink);
        acked.iter().all(|f| r.contains_key(f)).then_some(r)
    });
    let Some(got) = got else {
        let r = received(sink);
        let missing: Vec<&String> = acked.iter().filter(|f| !r.contains_key(*f)).collect();
        panic!(
            "{what}: {} of {} acknowledged requests never arrived: {missing:?}",
            missing.len(),
            acked.len()
        );
    };
    got.values().map(|n| n - 1).sum()
}

/// Clients sending unique requests until the gateway dies; the checksums answered 200.
fn load_until_killed(
    addr: std::net::SocketAddr,
    clients: u64,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<String>>> {
    (0..clients)
        .map(|c| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let Ok(mut conn) = Conn::connect(addr) else {
                    return acked;
                };
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let r = request(i);
                    i += clients;
                    match send(&mut conn, &r) {
                        Ok(resp) if resp.status == 200 => acked.push(fnv(&r.body)),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                acked
            })
        })
        .collect()
}

/// Push and `/ingest` traffic with one destination down, `kill -9` mid-stream, restart with
/// the destination back: every acknowledged request reaches both destinations. Five kill
/// points, over both drivers and every file-I/O and fsync mode (`fsync = "never"` is
/// safe against the process dying, which is what `kill -9` does).
#[test]
fn crash_under_load_loses_nothing_acknowledged() {
    let rounds = [
        (120u64, "io_uring", ""),
        (260, "legacy", ""),
        (400, "io_uring", "io = \"thread\""),
        (550, "io_uring", "fsync = \"always\""),
        (700, "legacy", "fsync = \"never\""),
    ];
    for (round, (kill_after_ms, driver, spool_extra)) in rounds.into_iter().enumerate() {
        if !common::driver_available(driver) {
            eprintln!("SKIPPED round {round}: the {driver} driver is not available here");
            continue;
        }
        let dir = spool_dir("spool-crash");
        let up = Sink::start(&["--records", "100000"]);
        let down_addr = format!("127.0.0.1:{}", free_port());
        let cfg = config(
            &dir,
            &[up.url(), format!("http://{down_addr}")],
            spool_extra,
        );
        let mut g = gateway_on(driver, &cfg, "2");
        let stop = Arc::new(AtomicBool::new(false));
        let clients = load_until_killed(g.addr, 4, &stop);
        std::thread::sleep(Duration::from_millis(kill_after_ms));
        g.signal(libc::SIGKILL);
        let _ = g.wait_exit(Duration::from_secs(5));
        stop.store(true, Ordering::Relaxed);
        let acked: BTreeSet<String> = clients
            .into_iter()
            .flat_map(|h| h.join().expect("client thread"))
            .collect();
        assert!(
            acked.len() >= 10,
            "round {round}: only {} requests acknowledged before the kill",
            acked.len()
        );
        let down = Sink::start_on(&down_addr, &["--records", "100000"]);
        let g2 = gateway_on(driver, &cfg, "2");
        let dup_down = wait_all(&down, &acked, "the destination that was down");
        let dup_up = wait_all(&up, &acked, "the destination that was up");
        let m = g2.metrics();
        eprintln!(
            "round {round} ({driver}, {spool_extra:?}): killed after {kill_after_ms} ms: {} acknowledged, all delivered to both; duplicates {dup_up} (up) / {dup_down} (down); replayed {}",
            acked.len(),
            m.value("pyrogate_spool_replayed_records_total", &[])
        );
        assert!(m.value("pyrogate_spool_replayed_records_total", &[]) >= acked.len() as f64 * 0.5);
        drop(g2);
    }
}

/// Record boundaries of a segment file: (offset, length) of each record.
fn records_of(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 28;
    // A zero magic starts the preallocated, never written tail.
    while at + 28 <= bytes.len() && bytes[at..at + 4] != [0; 4] {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        out.push((at, 28 + len));
        at += 28 + len;
    }
    out
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for log in std::fs::read_dir(dir).expect("spool dir").flatten() {
        if !log.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(log.path()).expect("log dir").flatten() {
            if f.path().extension().is_some_and(|e| e == "seg") {
                out.push(f.path());
            }
        }
    }
    out.sort();
    out
}

/// Truncate the last segment inside its last record and corrupt a CRC in the middle: the
/// restart delivers every intact record and counts the two bad ones.
#[test]
fn torn_tail_and_bad_crc_cost_only_the_damaged_records() {
    torn_tail_and_bad_crc(false);
}

/// The same with the torn record's rest zeroed instead of cut off (a preallocated
/// segment keeps its length): still exactly the two bad records.
#[test]
fn a_torn_record_in_a_preallocated_segment_is_counted_once() {
    torn_tail_and_bad_crc(true);
}

fn torn_tail_and_bad_crc(zero_tail: bool) {
    let dir = spool_dir(if zero_tail {
        "spool-torn-zero"
    } else {
        "spool-torn"
    });
    let down_addr = format!("127.0.0.1:{}", free_port());
    let cfg = config(&dir, &[format!("http://{down_addr}")], "");
    let mut g = gateway(&cfg, "1");
    let mut c = g.connect();
    let reqs: Vec<td::sdk::Request> = (0..40).map(request).collect();
    for r in &reqs {
        let resp = send(&mut c, r).expect("request");
        assert_eq!(resp.status, 200, "{}", resp.body_str());
    }
    g.signal(libc::SIGKILL);
    let _ = g.wait_exit(Duration::from_secs(5));
    let segs = segments(&dir);
    assert_eq!(segs.len(), 1, "{segs:?}");
    let mut bytes = std::fs::read(&segs[0]).expect("segment");
    let recs = records_of(&bytes);
    assert_eq!(recs.len(), 40);
    // Which request each damaged record holds: its body is the record's tail.
    let body_of = |(at, len): (usize, usize)| {
        let rec = &bytes[at..at + len];
        reqs.iter()
            .map(|r| fnv(&r.body))
            .zip(&reqs)
            .find(|(_, r)| rec.ends_with(&r.body))
            .map(|(f, _)| f)
            .expect("a request's body")
    };
    let crc_victim = body_of(recs[17]);
    let torn_victim = body_of(recs[39]);
    bytes[recs[17].0 + 9] ^= 0x5a;
    let cut = recs[39].0 + 1 + (recs[39].1 * 7 / 13);
    if zero_tail {
        // Torn inside a preallocated segment: the rest of the record never reached the
        // disk and reads as zeros, up to the file's (preallocated) end.
        bytes[cut..].fill(0);
    } else {
        bytes.truncate(cut);
    }
    std::fs::write(&segs[0], &bytes).expect("write damaged segment");

    let down = Sink::start_on(&down_addr, &[]);
    let g2 = gateway(&cfg, "1");
    let intact: BTreeSet<String> = reqs
        .iter()
        .map(|r| fnv(&r.body))
        .filter(|f| *f != crc_victim && *f != torn_victim)
        .collect();
    assert_eq!(intact.len(), 38);
    wait_all(&down, &intact, "after the damage");
    let got = received(&down);
    assert!(!got.contains_key(&crc_victim) && !got.contains_key(&torn_victim));
    assert_eq!(got.len(), 38, "exactly the intact records: {got:?}");
    let m = g2.metrics();
    assert_eq!(m.value("pyrogate_spool_corrupt_records_total", &[]), 2.0);
}

/// A small `max_bytes` with the destination down: 429 with `Retry-After`, the refusals
/// counted, memory flat while refusing, and everything acknowledged arrives once the
/// destination is back.
#[test]
fn a_full_spool_answers_429_and_drops_nothing() {
    let dir = spool_dir("spool-full");
    let down_addr = format!("127.0.0.1:{}", free_port());
    let cfg = config(
        &dir,
        &[format!("http://{down_addr}")],
        "max_bytes = \"512KiB\"\nsegment_bytes = \"128KiB\"",
    );
    let g = gateway(&cfg, "1");
    let mut c = g.connect();
    let mut acked = BTreeSet::new();
    let mut refused = None;
    for i in 0..2000 {
        let r = request(i);
        let resp = send(&mut c, &r).expect("request");
        match resp.status {
            200 => {
                acked.insert(fnv(&r.body));
            }
            429 => {
                refused = Some((r, resp));
                break;
            }
            s => panic!("unexpected {s}: {}", resp.body_str()),
        }
    }
    let (refused_req, refused) = refused.expect("the spool filled up");
    assert_eq!(refused.header("retry-after"), Some("5"));
    assert!(acked.len() > 20, "{}", acked.len());
    let rss_full = g.rss_kib();
    let mut more = 0;
    for _ in 0..1500 {
        let resp = send(&mut c, &refused_req).expect("request");
        assert_eq!(
            resp.status, 429,
            "the spool stays full while the destination is down"
        );
        more += 1;
    }
    let rss_after = g.rss_kib();
    // Push says which buffer is full (Connect resource_exhausted).
    let mut push = None;
    for i in 0..200 {
        let r = request(2 * i);
        let resp = send(&mut c, &r).expect("push");
        if resp.status != 200 {
            push = Some(resp);
            break;
        }
        acked.insert(fnv(&r.body));
    }
    let push = push.expect("a Push refused once the small ones fill the last bytes");
    assert_eq!(push.status, 429);
    assert!(
        push.body_str().contains("resource_exhausted")
            && push
                .body_str()
                .contains("pyrogate: spool full, retry later"),
        "{}",
        push.body_str()
    );
    // The gauges are refreshed every 200 ms.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        rss_after < rss_full + 8 * 1024,
        "memory grew from {rss_full} KiB to {rss_after} KiB over {more} refused requests"
    );
    let m = g.metrics();
    assert!(
        m.value(
            "pyrogate_spool_rejected_requests_total",
            &[("reason", "full")]
        ) >= 1501.0
    );
    let bytes = m.value(
        "pyrogate_spool_bytes",
        &[("endpoint", &format!("http://{down_addr}"))],
    );
    let limit = 512.0 * 1024.0;
    assert!(
        bytes <= limit && bytes + refused_req.body.len() as f64 > limit,
        "{bytes} pending, {} refused",
        refused_req.body.len()
    );
    let down = Sink::start_on(&down_addr, &[]);
    wait_all(&down, &acked, "after the outage");
    // Drained: the spool takes requests again and frees its segments.
    let resp = send(&mut c, &request(9999)).expect("request");
    assert_eq!(resp.status, 200);
    let gone = poll_until(WAIT, || (segments(&dir).len() <= 2).then_some(()));
    assert!(
        gone.is_some(),
        "acknowledged segments are deleted: {:?}",
        segments(&dir)
    );
}

/// Records older than `spool.max_age` are dropped and counted, never replayed.
#[test]
fn records_past_max_age_are_dropped_and_counted() {
    let dir = spool_dir("spool-age");
    let down_addr = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{down_addr}");
    let cfg = config(&dir, std::slice::from_ref(&url), "max_age = \"1s\"");
    let g = gateway(&cfg, "1");
    let mut c = g.connect();
    for i in 0..10 {
        assert_eq!(send(&mut c, &request(i)).expect("request").status, 200);
    }
    let expired = poll_until(Duration::from_secs(10), || {
        let v = g.metrics().get(
            "pyrogate_spool_expired_records_total",
            &[("endpoint", &url)],
        )?;
        (v >= 10.0).then_some(v)
    });
    assert_eq!(expired, Some(10.0));
    let down = Sink::start_on(&down_addr, &[]);
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        received(&down).is_empty(),
        "expired records must not be replayed"
    );
    let m = g.metrics();
    assert_eq!(
        m.value("pyrogate_spool_records", &[("endpoint", &url)]),
        0.0
    );
}

/// `spool inspect` reports per destination what is pending; `--check-config` checks the
/// directory.
#[test]
fn inspect_and_check_config_report_on_the_directory() {
    let dir = spool_dir("spool-inspect");
    let up = Sink::start(&[]);
    let down_addr = format!("127.0.0.1:{}", free_port());
    let cfg = config(&dir, &[up.url(), format!("http://{down_addr}")], "");
    let mut g = gateway(&cfg, "2");
    let mut c = g.connect();
    let mut profiles = 0;
    for i in 0..12 {
        let r = request(i);
        profiles += 1;
        assert_eq!(send(&mut c, &r).expect("request").status, 200);
    }
    wait_all(&up, &(0..12).map(|i| fnv(&request(i).body)).collect(), "up");
    let (status, _) = g.terminate(Duration::from_secs(10));
    assert!(status.is_some());
    let out = common::run(
        &["spool", "inspect", dir.to_str().expect("utf-8")],
        Duration::from_secs(20),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = |url: &str| {
        text.lines()
            .find(|l| l.contains(url))
            .unwrap_or_else(|| panic!("no line for {url}:\n{text}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let down_line = line(&format!("http://{down_addr}"));
    assert_eq!(
        down_line[3], "12",
        "records pending for the down destination:\n{text}"
    );
    assert_eq!(down_line[4], profiles.to_string(), "{text}");
    assert!(down_line[5].ends_with('s'), "{text}");
    let up_line = line(&up.url());
    assert_eq!(
        up_line[2], "0",
        "nothing pending for the destination that was up:\n{text}"
    );

    let ok = common::run(
        &["--config", cfg.to_str().expect("utf-8"), "--check-config"],
        Duration::from_secs(20),
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains(&format!("spool dir={}", dir.display())));
    let bad = config(Path::new("/proc/pyrogate-spool"), &[up.url()], "");
    let out = common::run(
        &["--config", bad.to_str().expect("utf-8"), "--check-config"],
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("spool.dir"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let noconf = common::run(
        &[
            "--ack",
            "durable",
            "--forward-to",
            &up.url(),
            "--check-config",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(noconf.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&noconf.stderr).contains("[spool]"));
}

/// A second gateway on the same spool directory is refused.
#[test]
fn a_spool_directory_has_one_owner() {
    let dir = spool_dir("spool-lock");
    let up = Sink::start(&[]);
    let cfg = config(&dir, &[up.url()], "");
    let _g = gateway(&cfg, "1");
    let out = common::run(
        &[
            "--config",
            cfg.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
        ],
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use by another process"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
