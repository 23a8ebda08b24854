//! Micro-benchmarks of the per-request hot paths: label-set parsing, HTTP head parsing, Push
//! decoding (proto, JSON, gzip), the canonical `name` rebuild, Push re-encoding, and the
//! envelope fan-out through the destination queues.
//!
//! Run: `cargo bench --bench hot_paths`. Compare runs side by side on the same machine; the
//! absolute numbers move with CPU steal (docs/benchmarking.md).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;

use pyrogate::config::EndpointConfig;
use pyrogate::forward::destination::{Destination, Job};
use pyrogate::forward::envelope::{Envelope, Kind};
use pyrogate::forward::metrics::ForwardMetrics;
use pyrogate::http::head::{RequestHead, find_head_end};
use pyrogate::protocol::push::encode as push_encode;
use pyrogate::protocol::push::{self as push_decode, Codec, Encoding};
use pyrogate::protocol::{labels, labelset, query};

/// A pyroscope-io style Push body (gzip'd, one series, a small plain pprof), generated.
fn python_push_gzip() -> Vec<u8> {
    pyrogate_testdata::sdk::python_push(1).body
}

const NODE_QUERY: &str = "format=pprof&from=1795312298&name=feas.node.app%7Botel.scope.name%3Dcom.grafana.pyroscope%2Fnodejs%2Cotel.scope.version%3D0.6.4%2Cprocess.runtime.name%3Dnodejs%2Cprocess.runtime.version%3D20.20.2%2Cenv%3Dfeas%2Cregion%3Dlocal%7D&spyName=nodespy&until=1795312309&sampleRate=17";

fn bench_labels(c: &mut Criterion) {
    let q = query::parse(NODE_QUERY);
    let name = q.get("name").unwrap_or_default().to_string();
    c.bench_function("labelset_parse_node_name", |b| {
        b.iter(|| labelset::parse(black_box(&name)))
    });
    let parsed = labelset::parse(&name).unwrap_or_default();
    let external: labelset::Labels = [("cluster".to_string(), "c1".to_string())].into();
    c.bench_function("ingest_name_rebuild_and_query_encode", |b| {
        b.iter(|| {
            let mut q = query::parse(black_box(NODE_QUERY));
            let n = labels::ingest_forward_name(&parsed, &external).unwrap_or_default();
            q.set("name", &n);
            q.encode()
        })
    });
}

fn bench_head(c: &mut Criterion) {
    let raw = format!(
        "POST /ingest?{NODE_QUERY} HTTP/1.1\r\nhost: 127.0.0.1:4040\r\nconnection: keep-alive\r\n\
         content-type: application/octet-stream\r\naccept: */*\r\naccept-language: *\r\n\
         sec-fetch-mode: cors\r\nuser-agent: node\r\naccept-encoding: gzip, deflate\r\n\
         content-length: 1879\r\n\r\n"
    );
    let bytes = Bytes::from(raw);
    let mut g = c.benchmark_group("http_head");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("find_end_and_parse_node_head", |b| {
        b.iter(|| {
            let end = find_head_end(black_box(&bytes), 0).unwrap_or(bytes.len());
            RequestHead::parse(bytes.slice(..end))
        })
    });
    g.finish();
}

fn bench_push(c: &mut Criterion) {
    let gz = Bytes::from(python_push_gzip());
    let plain = pyrogate::protocol::gzip::inflate_bounded(&gz, 1 << 20).unwrap_or_default();
    let req = pyrogate::protocol::proto::PushRequest::decode(plain.clone()).unwrap_or_default();
    let json = push_json(&req);
    let mut g = c.benchmark_group("push_decode");
    g.bench_function("proto", |b| {
        b.iter(|| {
            push_decode::decode(
                black_box(plain.clone()),
                Codec::Proto,
                Encoding::Identity,
                1 << 20,
            )
        })
    });
    g.bench_function("proto_gzip", |b| {
        b.iter(|| push_decode::decode(black_box(gz.clone()), Codec::Proto, Encoding::Gzip, 1 << 20))
    });
    g.bench_function("json", |b| {
        b.iter(|| {
            push_decode::decode(
                black_box(json.clone()),
                Codec::Json,
                Encoding::Identity,
                1 << 20,
            )
        })
    });
    g.finish();
    let external: labelset::Labels = [("env".to_string(), "prod".to_string())].into();
    c.bench_function("push_rewrite_and_encode_chunks", |b| {
        b.iter(|| {
            let mut r = req.clone();
            for s in &mut r.series {
                let pairs: Vec<(&str, &str)> = push_decode::series_labels(s).collect();
                s.labels = labels::push_rewrite(&pairs, &external)
                    .into_iter()
                    .map(|(name, value)| pyrogate::protocol::proto::LabelPair { name, value })
                    .collect();
            }
            push_encode::encode_chunks(black_box(&r))
        })
    });
}

fn push_json(req: &pyrogate::protocol::proto::PushRequest) -> Bytes {
    let b64 = base64::engine::general_purpose::STANDARD;
    let series: Vec<serde_json::Value> = req
        .series
        .iter()
        .map(|s| {
            serde_json::json!({
                "labels": s.labels.iter().map(|l| serde_json::json!({"name": l.name, "value": l.value})).collect::<Vec<_>>(),
                "samples": s.samples.iter().map(|x| serde_json::json!({"ID": x.id, "rawProfile": b64.encode(&x.raw_profile)})).collect::<Vec<_>>(),
            })
        })
        .collect();
    Bytes::from(serde_json::json!({ "series": series }).to_string())
}

/// The cost the receive worker pays per envelope for fan-out 2: reserve queue bytes on both
/// destinations (all or nothing), enqueue a job on each, and the writer side popping and
/// releasing them.
fn bench_fanout(c: &mut Criterion) {
    let registry = prometheus::Registry::new();
    let Ok(metrics) = ForwardMetrics::register(&registry) else {
        return;
    };
    let dests: Vec<Arc<Destination>> = ["http://127.0.0.1:1/a", "http://127.0.0.1:1/b"]
        .iter()
        .filter_map(|u| EndpointConfig::from_url(u, "bench").ok())
        .filter_map(|cfg| Destination::new(cfg, 256 << 20, &metrics).ok())
        .collect();
    let body = Bytes::from(vec![7u8; 16 * 1024]);
    c.bench_function("envelope_fanout_2_queues", |b| {
        b.iter(|| {
            let now = Instant::now();
            let env = Arc::new(Envelope {
                kind: Kind::Push,
                path_and_query: "/push.v1.PusherService/Push".into(),
                headers: Vec::new(),
                body: vec![body.clone()],
                body_len: body.len(),
                tenant: None,
                deadline: now + Duration::from_secs(10),
                received_at: now,
                profiles: 1,
                profile_bytes: body.len() as u64,
            });
            let n = body.len() as u64;
            for d in &dests {
                if d.try_reserve(n) {
                    d.push(Job {
                        env: env.clone(),
                        ack: None,
                        deadline: now,
                        caller_waiting: false,
                        reserved: n,
                        spooled: None,
                    });
                }
            }
            for d in &dests {
                if let Ok(job) = d.rx.try_recv() {
                    d.release(job.reserved);
                }
            }
        })
    });
}

criterion_group!(benches, bench_labels, bench_head, bench_push, bench_fanout);
criterion_main!(benches);
