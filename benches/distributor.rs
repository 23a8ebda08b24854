//! Throughput of the edge distributor's per-profile work, in decoded (uncompressed) bytes
//! per second on one core, for profiles of about 10 KiB, 100 KiB and 1 MiB decoded:
//!
//! * `distributor_pipeline/full/SIZE`: what the gateway does to a gzip'd profile with
//!   `validate = true, normalize = true` — inflate and decode, `ValidateProfile`,
//!   normalise, validate the series label sets, re-encode and gzip (level 1);
//! * `distributor_pipeline/decode_validate/SIZE`: inflate, decode, `ValidateProfile` and the
//!   label sets only (`validate = true, normalize = false`: nothing is re-encoded);
//! * `distributor_stages/STAGE/SIZE`: each stage alone, to see where the time goes.
//!
//! The profiles are generated (`pyrogate_testdata::pprof::Spec`, fixed seeds) with 5 %
//! zero-valued and 20 % duplicate samples, so normalisation has work to do, and gzip'd at
//! the default level as agents send them.
//!
//! Run: `cargo bench --bench distributor`. With `PYROGATE_BENCH_DUMP=DIR` the three gzip'd
//! inputs are first written to `DIR` (plus `manifest.tsv`) for the Go comparison
//! (`scripts/bench-distributor.sh`, `benches/go/pipeline/main.go`); add `--list` to only
//! write them. Figures move with CPU steal: compare within one run (docs/benchmarking.md).

use std::hint::black_box;
use std::path::Path;

use bytes::Bytes;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};

use pyrogate::config::distributor::Limits;
use pyrogate::distributor::labels::{self, Pair};
use pyrogate::distributor::normalize::normalize;
use pyrogate::distributor::validate::validate_profile;
use pyrogate::distributor::{profile, series};
use pyrogate::protocol::gzip;
use pyrogate::protocol::pprof::{self, Profile};
use pyrogate_testdata::pprof::{Kind, Spec, TIME_NANOS};

/// The gateway's allocator, so allocation-heavy stages cost what they cost in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// "Now" for the ingestion window: 5 s after the profiles' timestamp.
const NOW_MS: i64 = TIME_NANOS / 1_000_000 + 5_000;

/// The decoded-size targets and their labels (also the dump's file names).
const TARGETS: [(&str, usize); 3] = [
    ("10KiB", 10 << 10),
    ("100KiB", 100 << 10),
    ("1MiB", 1 << 20),
];

/// Accepted deviation of the decoded size from its target.
const TOLERANCE: f64 = 0.10;

/// One benchmark input.
struct Input {
    label: &'static str,
    spec: Spec,
    /// The gzip'd profile, as an agent uploads it.
    gzip: Bytes,
    /// Its decoded (serialized, uncompressed) length: the throughput unit.
    plain_len: usize,
}

fn spec(seed: u64, functions: usize, samples: usize) -> Spec {
    Spec::new(seed, Kind::Cpu)
        .functions(functions)
        .samples(samples)
        .zeros(5)
        .duplicates(20)
}

/// A profile whose decoded size is within [`TOLERANCE`] of `target`: the function table
/// takes about a third of the bytes (~110 decoded bytes per function with its location and
/// strings), samples fill the rest (secant search on the sample count, which the size
/// follows almost linearly).
fn input(label: &'static str, target: usize, seed: u64) -> Input {
    let functions = (target / 3 / 110).clamp(12, 60_000);
    let size = |n: usize| spec(seed, functions, n).plain().len();
    let (mut n0, mut s0) = (0usize, size(0));
    let (mut n1, mut s1) = (32usize, size(32));
    for _ in 0..16 {
        if (s1 as f64 - target as f64).abs() <= target as f64 * TOLERANCE / 4.0 {
            break;
        }
        let slope = ((s1 as f64 - s0 as f64) / (n1 as f64 - n0 as f64)).max(1.0);
        let guess = n1 as f64 + (target as f64 - s1 as f64) / slope;
        let n = guess.clamp(0.0, (n1.max(32) * 8) as f64).round() as usize;
        if n == n1 {
            break;
        }
        (n0, s0) = (n1, s1);
        (n1, s1) = (n, size(n));
    }
    assert!(
        (s1 as f64 - target as f64).abs() <= target as f64 * TOLERANCE,
        "{label}: closest decoded size {s1} B for a target of {target} B"
    );
    let spec = spec(seed, functions, n1);
    let gzip = Bytes::from(spec.gzip());
    Input {
        label,
        plain_len: s1,
        spec,
        gzip,
    }
}

fn inputs() -> Vec<Input> {
    TARGETS
        .iter()
        .zip(1u64..)
        .map(|(&(label, target), seed)| input(label, target, 0xd157 + seed))
        .collect()
}

/// The series labels of a pyroscope-io Push (sorted, `service_name` set), as the stage
/// sees them.
fn series_labels() -> Vec<Pair> {
    let mut ls: Vec<Pair> = pyrogate_testdata::push::python_labels("bench.distributor.app")
        .into_iter()
        .map(|(n, v)| (n.into_bytes(), v.into_bytes()))
        .collect();
    labels::ensure_service_name(&mut ls);
    ls
}

/// Largest decoded profile when the limit is off (the gateway's `hard_max_decoded` plays
/// this role; the default limit of 4 MiB applies here).
const HARD_MAX: usize = 64 << 20;

fn decode(limits: &Limits, raw: &Bytes) -> Profile {
    match profile::decode(raw, limits, HARD_MAX) {
        Ok(d) => d.profile,
        Err(e) => panic!("benchmark input does not decode: {e:?}"),
    }
}

/// Inflate, decode, `ValidateProfile`, the series label sets.
fn decode_validate(limits: &Limits, ls: &[Pair], raw: &Bytes) -> Profile {
    let mut p = decode(limits, raw);
    let size = pprof::encoded_len(&p);
    if let Err(e) = validate_profile(limits, &mut p, ls, size, NOW_MS) {
        panic!("benchmark input is invalid: {e:?}");
    }
    if let Err(e) = series::validate(limits, ls, &p) {
        panic!("benchmark labels are invalid: {e:?}");
    }
    p
}

/// The whole stage with `validate` and `normalize` on, as `distributor::profile::check`
/// runs it: the rewritten profile, gzip'd like the one that arrived.
fn full(limits: &Limits, ls: &[Pair], raw: &Bytes) -> Vec<u8> {
    let mut p = decode(limits, raw);
    let size = pprof::encoded_len(&p);
    if let Err(e) = validate_profile(limits, &mut p, ls, size, NOW_MS) {
        panic!("benchmark input is invalid: {e:?}");
    }
    let n = normalize(&mut p, NOW_MS * 1_000_000);
    assert!(n.changed && !p.samples.is_empty());
    if let Err(e) = series::validate(limits, ls, &p) {
        panic!("benchmark labels are invalid: {e:?}");
    }
    gzip::compress(&pprof::encode(&p))
}

/// Criterion's minimum sample count is 10; fewer samples keep the 1 MiB case within the
/// measurement time (every sample runs more iterations than the one before).
fn sample_size(plain_len: usize) -> usize {
    if plain_len > 512 << 10 { 10 } else { 30 }
}

fn bench_pipeline(c: &mut Criterion, inputs: &[Input], limits: &Limits, ls: &[Pair]) {
    let mut g = c.benchmark_group("distributor_pipeline");
    for i in inputs {
        g.throughput(Throughput::Bytes(i.plain_len as u64));
        g.sample_size(sample_size(i.plain_len));
        g.bench_with_input(BenchmarkId::new("full", i.label), &i.gzip, |b, raw| {
            b.iter(|| full(limits, ls, black_box(raw)))
        });
        g.bench_with_input(
            BenchmarkId::new("decode_validate", i.label),
            &i.gzip,
            |b, raw| b.iter(|| decode_validate(limits, ls, black_box(raw))),
        );
    }
    g.finish();
}

fn bench_stages(c: &mut Criterion, inputs: &[Input], limits: &Limits, ls: &[Pair]) {
    let mut g = c.benchmark_group("distributor_stages");
    for i in inputs {
        g.throughput(Throughput::Bytes(i.plain_len as u64));
        g.sample_size(sample_size(i.plain_len));
        let plain = Bytes::from(i.spec.plain());
        let decoded = decode(limits, &i.gzip);
        let mut normal = decoded.clone();
        normalize(&mut normal, NOW_MS * 1_000_000);
        let encoded = pprof::encode(&normal);
        g.bench_with_input(BenchmarkId::new("inflate", i.label), &i.gzip, |b, raw| {
            b.iter(|| gzip::inflate_bounded(black_box(raw), 64 << 20))
        });
        g.bench_with_input(BenchmarkId::new("decode_plain", i.label), &plain, |b, p| {
            b.iter(|| pprof::decode(black_box(p.clone()), pprof::Limits::default()))
        });
        g.bench_with_input(
            BenchmarkId::new("validate_profile", i.label),
            &decoded,
            |b, p| {
                b.iter_batched_ref(
                    || p.clone(),
                    |p| {
                        let size = pprof::encoded_len(p);
                        validate_profile(limits, p, ls, size, NOW_MS)
                    },
                    BatchSize::LargeInput,
                )
            },
        );
        g.bench_with_input(
            BenchmarkId::new("series_validate", i.label),
            &decoded,
            |b, p| b.iter(|| series::validate(limits, ls, black_box(p))),
        );
        g.bench_with_input(BenchmarkId::new("normalize", i.label), &decoded, |b, p| {
            b.iter_batched_ref(
                || p.clone(),
                |p| normalize(p, NOW_MS * 1_000_000),
                BatchSize::LargeInput,
            )
        });
        g.bench_with_input(BenchmarkId::new("encode", i.label), &normal, |b, p| {
            b.iter(|| pprof::encode(black_box(p)))
        });
        g.bench_with_input(BenchmarkId::new("gzip", i.label), &encoded, |b, e| {
            b.iter(|| gzip::compress(black_box(e)))
        });
    }
    g.finish();
}

/// Writes the gzip'd inputs and `manifest.tsv` (label, decoded bytes, gzip'd bytes,
/// samples, functions) to `dir`.
fn dump(dir: &Path, inputs: &[Input]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut manifest = String::from("label\tdecoded_bytes\tgzip_bytes\tsamples\tfunctions\n");
    for i in inputs {
        std::fs::write(dir.join(format!("{}.pb.gz", i.label)), &i.gzip)?;
        manifest.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            i.label,
            i.plain_len,
            i.gzip.len(),
            i.spec.samples,
            i.spec.functions
        ));
    }
    std::fs::write(dir.join("manifest.tsv"), manifest)
}

fn main() {
    let inputs = inputs();
    if let Some(dir) = std::env::var_os("PYROGATE_BENCH_DUMP") {
        let dir = Path::new(&dir);
        if let Err(e) = dump(dir, &inputs) {
            panic!("PYROGATE_BENCH_DUMP={}: {e}", dir.display());
        }
        eprintln!("distributor bench: inputs written to {}", dir.display());
    }
    for i in &inputs {
        eprintln!(
            "distributor bench: {:>6}: {} B decoded, {} B gzip'd, {} samples, {} functions",
            i.label,
            i.plain_len,
            i.gzip.len(),
            i.spec.samples,
            i.spec.functions
        );
    }
    let limits = Limits::default();
    let ls = series_labels();
    // Every input goes through the whole stage before anything is timed.
    for i in &inputs {
        black_box(full(&limits, &ls, &i.gzip));
    }
    let mut c = Criterion::default().configure_from_args();
    bench_pipeline(&mut c, &inputs, &limits, &ls);
    bench_stages(&mut c, &inputs, &limits, &ls);
    c.final_summary();
}
