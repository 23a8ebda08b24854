//! `/ingest` body formats other than raw pprof (`docs/ingest.md` §6): multipart forms in the
//! Go and OkHttp layouts, `sample_type_config`, JFR-shaped recordings with their
//! `LabelsSnapshot`, folded and `lines` text, trie and tree binaries, and speedscope JSON.
//! Stack text is drawn from the same kind of call graph as [`crate::pprof`].

use std::collections::BTreeMap;

use prost::Message as _;

use crate::gz::gzip_level;
use crate::pprof::{Kind, Spec, stack_names};
use crate::rng::Rng;
use crate::wire::{Context, LabelsSnapshot};

// === multipart ===

/// One part to write.
#[derive(Debug, Clone, Copy)]
pub struct Part<'a> {
    pub name: &'a str,
    pub filename: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub data: &'a [u8],
}

/// Which client's byte layout to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Go `mime/multipart.Writer` (pyroscope-go): `Content-Disposition`, `Content-Type`.
    Go,
    /// OkHttp `MultipartBody` (pyroscope-java): `Content-Disposition`, `Content-Type` when
    /// set, then `Content-Length`.
    OkHttp,
}

/// The request `Content-Type` for `boundary`.
pub fn multipart_content_type(boundary: &str) -> String {
    format!("multipart/form-data; boundary={boundary}")
}

/// A complete multipart body.
pub fn multipart(boundary: &str, parts: &[Part<'_>], style: Style) -> Vec<u8> {
    let size: usize = parts.iter().map(|p| p.data.len() + 200).sum();
    let mut out = Vec::with_capacity(size + boundary.len() + 8);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"");
        push_escaped(&mut out, p.name);
        out.push(b'"');
        if let Some(f) = p.filename {
            out.extend_from_slice(b"; filename=\"");
            push_escaped(&mut out, f);
            out.push(b'"');
        }
        out.extend_from_slice(b"\r\n");
        if let Some(ct) = p.content_type {
            out.extend_from_slice(b"Content-Type: ");
            out.extend_from_slice(ct.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if style == Style::OkHttp {
            out.extend_from_slice(format!("Content-Length: {}\r\n", p.data.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(p.data);
    }
    if !parts.is_empty() {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
    out
}

/// Go's `escapeQuotes`.
fn push_escaped(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// A Go-style random boundary (60 hex characters).
pub fn go_boundary(rng: &mut Rng) -> String {
    (0..4)
        .map(|_| format!("{:016x}", rng.next_u64()))
        .collect::<String>()[..60]
        .to_owned()
}

/// The `sample_type_config` pyroscope-go sends with each profile kind.
pub fn sample_type_config(kind: Kind) -> &'static str {
    match kind {
        Kind::Goroutine => {
            r#"{"goroutine":{"units":"goroutines","aggregation":"average","display-name":"goroutines"}}"#
        }
        Kind::Heap => {
            r#"{"alloc_objects":{"units":"objects"},"alloc_space":{"units":"bytes"},"inuse_objects":{"units":"objects","aggregation":"average"},"inuse_space":{"units":"bytes","aggregation":"average"}}"#
        }
        Kind::Cpu | Kind::CpuNanos | Kind::Wall => {
            r#"{"cpu":{"units":"samples","display-name":"cpu"}}"#
        }
    }
}

// === JFR ===

/// JFR chunk magic.
pub const JFR_MAGIC: &[u8; 4] = b"FLR\0";

/// A JFR-shaped recording of about `size` bytes, uncompressed: the chunk header of a real
/// recording (magic, version 2.1, size, offsets, timestamps) followed by event records with
/// the repetitive structure that makes real recordings compress 5–10×. The gateway never
/// parses JFR; this exercises framing, chunking and byte-exact forwarding.
pub fn jfr(size: usize, seed: u64) -> Vec<u8> {
    let size = size.max(68);
    let mut rng = Rng::stream(seed, 0x1f2);
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(JFR_MAGIC);
    out.extend_from_slice(&2u16.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(size as i64).to_be_bytes()); // chunk size
    out.extend_from_slice(&((size * 3 / 4) as i64).to_be_bytes()); // constant pool offset
    out.extend_from_slice(&((size * 7 / 8) as i64).to_be_bytes()); // metadata offset
    out.extend_from_slice(&1_795_312_200_000_000_000i64.to_be_bytes()); // start nanos
    out.extend_from_slice(&10_000_000_000i64.to_be_bytes()); // duration
    out.extend_from_slice(&(rng.next_u64() as i64 & i64::MAX).to_be_bytes()); // start ticks
    out.extend_from_slice(&1_000_000_000i64.to_be_bytes()); // ticks per second
    out.extend_from_slice(&1u32.to_be_bytes()); // features
    // Event records: size, type id, timestamp delta, thread, stack trace id, state.
    let stacks: Vec<u64> = (0..64).map(|_| rng.below(1 << 20)).collect();
    while out.len() < size {
        let rec = [
            24u8,
            101 + rng.below(4) as u8,
            rng.below(128) as u8,
            1 + rng.below(8) as u8,
        ];
        out.extend_from_slice(&rec);
        out.extend_from_slice(&stacks[rng.index(stacks.len())].to_be_bytes());
        out.extend_from_slice(&(rng.below(4) as u32).to_be_bytes());
        out.extend_from_slice(&[0u8; 8]);
    }
    out.truncate(size);
    out
}

/// The Java agent's `LabelsSnapshot` for `contexts` contexts (ids 1..), each with a
/// `thread_name` and a `span_name`, serialized (uncompressed).
pub fn labels_snapshot(contexts: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::stream(seed, 0x1ab);
    let mut strings = BTreeMap::new();
    strings.insert(1, "thread_name".to_owned());
    strings.insert(2, "span_name".to_owned());
    let mut next = 3;
    let mut ctx = BTreeMap::new();
    for c in 1..=contexts as i64 {
        let thread = format!("pool-2-thread-{}", 1 + rng.below(8));
        let span = format!("POST /api/order/{}", rng.below(16));
        let mut labels = BTreeMap::new();
        for (key, value) in [(1, thread), (2, span)] {
            strings.insert(next, value);
            labels.insert(key, next);
            next += 1;
        }
        ctx.insert(c, Context { labels });
    }
    LabelsSnapshot {
        contexts: ctx,
        strings,
    }
    .encode_to_vec()
}

/// `data` gzip'd at level 1, as the Java agent compresses its parts.
pub fn java_gzip(data: &[u8]) -> Vec<u8> {
    gzip_level(data, 1)
}

// === stack text and trees ===

/// `(frames root first, count)` stacks drawn from a generated profile of about `n` samples.
pub fn stacks(n: usize, seed: u64) -> Vec<(Vec<String>, u64)> {
    let spec = Spec::new(seed, Kind::Cpu)
        .samples(n)
        .functions((n * 2).clamp(16, 4000))
        .depth(4, 30)
        .zeros(0)
        .labels(false, false);
    let p = spec.profile();
    p.sample
        .iter()
        .map(|s| {
            (
                stack_names(&p, s),
                s.value.first().copied().unwrap_or(1).max(1) as u64,
            )
        })
        .collect()
}

/// Folded ("collapsed") text of about `target` bytes: `a;b;c <count>` lines.
pub fn folded(target: usize, seed: u64) -> String {
    let mut out = String::with_capacity(target + 256);
    let mut n = (target / 400).max(4);
    loop {
        out.clear();
        for (frames, count) in stacks(n, seed) {
            out.push_str(&frames.join(";"));
            out.push(' ');
            out.push_str(&count.to_string());
            out.push('\n');
            if out.len() >= target {
                return out;
            }
        }
        n *= 2;
    }
}

/// `format=lines`: one stack per line (`a;b;c`), one line per event.
pub fn lines(events: usize, seed: u64) -> String {
    let mut out = String::new();
    for (frames, count) in stacks(events.div_ceil(4).max(1), seed) {
        for _ in 0..count.min(4) {
            out.push_str(&frames.join(";"));
            out.push('\n');
        }
    }
    out
}

fn push_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[derive(Default)]
struct Node {
    value: u64,
    children: BTreeMap<String, Node>,
}

fn call_tree(stacks: &[(Vec<String>, u64)]) -> Node {
    let mut root = Node::default();
    for (frames, count) in stacks {
        let mut node = &mut root;
        for f in frames {
            node = node.children.entry(f.clone()).or_default();
        }
        node.value += count;
    }
    root
}

/// `format=tree`: pre-order nodes `uvarint name_len, name, uvarint self, uvarint children`.
pub fn tree(n: usize, seed: u64) -> Vec<u8> {
    fn write(out: &mut Vec<u8>, name: &str, node: &Node) {
        push_uvarint(out, name.len() as u64);
        out.extend_from_slice(name.as_bytes());
        push_uvarint(out, node.value);
        push_uvarint(out, node.children.len() as u64);
        for (child, n) in &node.children {
            write(out, child, n);
        }
    }
    let root = call_tree(&stacks(n, seed));
    let mut out = Vec::new();
    write(&mut out, "", &root);
    out
}

/// `format=trie`: pre-order nodes `uvarint label_len, label (appended to the running
/// prefix), uvarint value, uvarint children`; frames are joined by `;`.
pub fn trie(n: usize, seed: u64) -> Vec<u8> {
    fn write(out: &mut Vec<u8>, label: &str, node: &Node) {
        push_uvarint(out, label.len() as u64);
        out.extend_from_slice(label.as_bytes());
        push_uvarint(out, node.value);
        push_uvarint(out, node.children.len() as u64);
        for (child, n) in &node.children {
            let l = if label.is_empty() {
                child.clone()
            } else {
                format!(";{child}")
            };
            write(out, &l, n);
        }
    }
    let root = call_tree(&stacks(n, seed));
    let mut out = Vec::new();
    write(&mut out, "", &root);
    out
}

/// A speedscope document with one `evented` and one `sampled` profile.
pub fn speedscope(n: usize, seed: u64) -> Vec<u8> {
    let stacks = stacks(n, seed);
    let mut frames: Vec<String> = Vec::new();
    let mut index = BTreeMap::new();
    let mut id = |f: &String, frames: &mut Vec<String>| -> usize {
        *index.entry(f.clone()).or_insert_with(|| {
            frames.push(f.clone());
            frames.len() - 1
        })
    };
    let mut samples = Vec::new();
    let mut weights = Vec::new();
    let mut events = Vec::new();
    let mut at = 0u64;
    for (stack, count) in &stacks {
        let ids: Vec<usize> = stack.iter().map(|f| id(f, &mut frames)).collect();
        for &i in &ids {
            events.push(serde_json::json!({"type": "O", "frame": i, "at": at}));
        }
        at += count;
        for &i in ids.iter().rev() {
            events.push(serde_json::json!({"type": "C", "frame": i, "at": at}));
        }
        samples.push(ids);
        weights.push(*count);
    }
    let doc = serde_json::json!({
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": frames.iter().map(|f| serde_json::json!({"name": f})).collect::<Vec<_>>()},
        "profiles": [
            {"type": "evented", "name": "one", "unit": "none", "startValue": 0, "endValue": at, "events": events},
            {"type": "sampled", "name": "two", "unit": "seconds", "startValue": 0, "endValue": at, "samples": samples, "weights": weights},
        ],
        "name": "pyrogate-testdata",
        "exporter": "pyrogate-testdata",
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uvarint(b: &[u8], i: &mut usize) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let x = b[*i];
            *i += 1;
            v |= u64::from(x & 0x7f) << shift;
            if x < 0x80 {
                return v;
            }
            shift += 7;
        }
    }

    /// Reads a tree back and returns the total of the self values (every sample counted).
    fn tree_total(b: &[u8], i: &mut usize) -> u64 {
        let len = uvarint(b, i) as usize;
        *i += len;
        let mut total = uvarint(b, i);
        for _ in 0..uvarint(b, i) {
            total += tree_total(b, i);
        }
        total
    }

    #[test]
    fn trees_keep_every_count() {
        let want: u64 = stacks(50, 2).iter().map(|(_, c)| c).sum();
        for bytes in [tree(50, 2), trie(50, 2)] {
            let mut i = 0;
            assert_eq!(tree_total(&bytes, &mut i), want);
            assert_eq!(i, bytes.len());
        }
    }

    #[test]
    fn folded_lines_parse() {
        let text = folded(4096, 3);
        assert!(
            text.len() >= 4096 && text.len() < 4096 + 4096,
            "{}",
            text.len()
        );
        for line in text.lines() {
            let (stack, count) = line.rsplit_once(' ').expect("space");
            assert!(count.parse::<u64>().is_ok(), "{line}");
            assert!(stack.split(';').count() >= 4);
        }
        assert_eq!(folded(4096, 3), text);
        assert!(lines(20, 1).lines().count() >= 5);
    }

    #[test]
    fn jfr_and_labels() {
        let j = jfr(10_000, 1);
        assert_eq!(j.len(), 10_000);
        assert!(j.starts_with(JFR_MAGIC));
        let snap = LabelsSnapshot::decode(labels_snapshot(4, 1).as_slice()).expect("decodes");
        assert_eq!(snap.contexts.len(), 4);
        assert_eq!(
            snap.strings.get(&1).map(String::as_str),
            Some("thread_name")
        );
    }

    #[test]
    fn speedscope_is_json() {
        let v: serde_json::Value = serde_json::from_slice(&speedscope(10, 1)).expect("json");
        assert_eq!(v["profiles"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn multipart_layouts() {
        let parts = [Part {
            name: "profile",
            filename: Some("profile.pprof"),
            content_type: Some("application/octet-stream"),
            data: b"abc",
        }];
        let go = multipart("b0undary", &parts, Style::Go);
        assert_eq!(
            go,
            b"--b0undary\r\nContent-Disposition: form-data; name=\"profile\"; filename=\"profile.pprof\"\r\nContent-Type: application/octet-stream\r\n\r\nabc\r\n--b0undary--\r\n"
        );
        let ok = multipart("b", &parts, Style::OkHttp);
        assert!(String::from_utf8_lossy(&ok).contains("Content-Length: 3\r\n\r\nabc"));
    }
}
