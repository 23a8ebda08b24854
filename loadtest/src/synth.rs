//! Synthetic pprof profiles of a chosen gzip'd size, for benchmarks that need payloads
//! bigger or more varied than the fixtures.
//!
//! "Realistic" means the properties that make real profiles cost what they cost downstream:
//! hundreds to thousands of distinct functions with long Go-style names and file paths,
//! stacks 4–40 frames deep that share prefixes (they are walks down one call graph), and
//! string sample labels (`thread_name`, `span_name`). The output is deterministic for a
//! (size, seed) pair on every machine: all randomness comes from [`Rng`], sample *i* is drawn
//! from its own sub-stream (so adding samples never changes earlier ones), and the gzip header
//! carries no timestamp.
//!
//! Size control: the function table is sized from the target, then the number of samples is
//! found by a secant search on the gzip'd size (which grows almost linearly with samples).

use std::io::Write as _;

use flate2::Compression;
use flate2::write::GzEncoder;
use prost::Message as _;
use pyrogate::protocol::proto::{
    Function, Label, Line, Location, Mapping, Profile, Sample, ValueType,
};

use crate::rng::Rng;

/// Smallest target: below this the fixed parts of any pprof (types, mapping, a few
/// functions) dominate and ±10% cannot be honoured.
pub const MIN_SIZE: usize = 1024;
/// Largest target. Pyroscope refuses profiles above 4 MiB inflated by default; 16 MiB
/// gzip'd leaves room for stress tests while bounding the generator's memory and time.
pub const MAX_SIZE: usize = 16 << 20;
/// Accepted deviation of the gzip'd size from the target.
pub const TOLERANCE: f64 = 0.10;
/// Fixed profile timestamp (2026-11-22, like the client captures), so equal seeds give equal
/// bytes.
pub const TIME_NANOS: i64 = 1_795_312_200_000_000_000;
/// `--profile-size` bytes per function in the generated table: about 40% of the gzip'd size
/// goes to the function/location/string tables, the rest to samples.
const BYTES_PER_FUNCTION: usize = 80;
/// Bounds on the function table.
const MIN_FUNCTIONS: usize = 8;
const MAX_FUNCTIONS: usize = 60_000;
/// Secant iterations before giving up (the size curve is nearly linear; 3–5 suffice).
const MAX_ITERATIONS: usize = 24;

const ROOTS: &[&str] = &["main.main", "runtime.goexit", "net/http.(*conn).serve"];
const MODULES: &[&str] = &[
    "github.com/acme/checkout",
    "github.com/acme/inventory",
    "github.com/acme/ledger",
    "github.com/acme/search",
    "github.com/acme/platform",
    "google.golang.org/grpc",
    "github.com/jackc/pgx/v5",
    "go.opentelemetry.io/otel/sdk",
];
const PACKAGES: &[&str] = &[
    "internal/api",
    "internal/store",
    "internal/cache",
    "internal/queue",
    "pkg/codec",
    "pkg/auth",
    "pkg/retry",
    "internal/pricing",
    "internal/index",
    "pkg/telemetry",
    "internal/session",
    "pkg/pool",
    "internal/worker",
    "pkg/ratelimit",
    "internal/render",
];
const TYPES: &[&str] = &[
    "Server",
    "Client",
    "Handler",
    "Store",
    "Cache",
    "Encoder",
    "Decoder",
    "Pool",
    "Batch",
    "Index",
    "Tokenizer",
    "Planner",
    "Executor",
    "Session",
    "Limiter",
    "Scheduler",
    "Ledger",
];
const VERBS: &[&str] = &[
    "Handle", "Serve", "Get", "Put", "Load", "Store", "Encode", "Decode", "Flush", "Lookup",
    "Merge", "Scan", "Compact", "Resolve", "Render", "Validate", "Apply", "Dispatch", "Collect",
];
const NOUNS: &[&str] = &[
    "Request", "Order", "Item", "Batch", "Page", "Row", "Key", "Token", "Span", "Event", "Account",
    "Query", "Result", "Snapshot", "Segment", "Message", "Entry", "Block",
];
const RUNTIME: &[&str] = &[
    "runtime.mallocgc",
    "runtime.memmove",
    "runtime.scanobject",
    "runtime.mapaccess2_faststr",
    "runtime.growslice",
    "runtime.futex",
    "syscall.Syscall",
    "runtime.findObject",
    "runtime.newobject",
    "runtime.gcDrain",
    "runtime.memclrNoHeapPointers",
    "runtime.selectgo",
];
const THREADS: usize = 8;
const SPANS: &[&str] = &[
    "GET /api/orders",
    "POST /api/checkout",
    "GET /api/items",
    "db.query",
    "cache.get",
    "grpc.Ledger/Apply",
    "queue.consume",
    "render.page",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SynthError {
    /// The target is outside [`MIN_SIZE`]..=[`MAX_SIZE`].
    OutOfRange(usize),
    /// The search did not land within ±10% (not expected; reported rather than hidden).
    NotConverged { target: usize, got: usize },
}

impl std::fmt::Display for SynthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SynthError::OutOfRange(n) => write!(
                f,
                "profile size {n} B is outside the supported range {MIN_SIZE} B..={} MiB",
                MAX_SIZE >> 20
            ),
            SynthError::NotConverged { target, got } => write!(
                f,
                "could not generate a profile of {target} B gzip'd (closest: {got} B)"
            ),
        }
    }
}

impl std::error::Error for SynthError {}

/// A generated profile.
#[derive(Debug, Clone)]
pub struct Synthetic {
    /// The gzip'd serialized `Profile` (what SDKs upload).
    pub gzip: Vec<u8>,
    /// The same profile uncompressed (what pyroscope-rs puts in `raw_profile`).
    pub plain: Vec<u8>,
    pub samples: usize,
    pub functions: usize,
}

/// The call graph and tables every sample of one (target, seed) draws from.
struct Universe {
    profile: Profile,
    /// Callees of each function (by index into `function`).
    callees: Vec<Vec<usize>>,
    roots: Vec<usize>,
    /// String-table indices of the label keys and values.
    thread_key: i64,
    thread_values: Vec<i64>,
    span_key: i64,
    span_values: Vec<i64>,
}

struct Strings(Vec<String>);

impl Strings {
    fn add(&mut self, s: String) -> i64 {
        self.0.push(s);
        (self.0.len() - 1) as i64
    }
}

impl Universe {
    fn new(functions: usize, seed: u64) -> Self {
        let mut rng = Rng::stream(seed, u64::MAX);
        let mut st = Strings(vec![String::new()]);
        let samples_t = st.add("samples".into());
        let count_u = st.add("count".into());
        let cpu_t = st.add("cpu".into());
        let ns_u = st.add("nanoseconds".into());
        let binary = st.add("/srv/app/bin/server".into());
        let build_id = st.add(format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64()));
        let thread_key = st.add("thread_name".into());
        let thread_values = (0..THREADS)
            .map(|i| st.add(format!("worker-{i}")))
            .collect();
        let span_key = st.add("span_name".into());
        let span_values = SPANS.iter().map(|s| st.add((*s).into())).collect();

        let n = functions.max(ROOTS.len() + 1);
        let mut function = Vec::with_capacity(n);
        let mut location = Vec::with_capacity(n);
        let mut files: Vec<i64> = Vec::new();
        for i in 0..n {
            let name = if let Some(root) = ROOTS.get(i) {
                (*root).to_owned()
            } else if rng.below(8) == 0 {
                format!("{}#{}", rng.pick(RUNTIME), i)
            } else {
                format!(
                    "{}/{}.(*{}{}).{}{}",
                    rng.pick(MODULES),
                    rng.pick(PACKAGES),
                    rng.pick(TYPES),
                    i,
                    rng.pick(VERBS),
                    rng.pick(NOUNS)
                )
            };
            // Several functions share a source file, as in real code.
            let file = if files.is_empty() || rng.below(4) == 0 {
                let f = st.add(format!(
                    "/srv/app/{}/{}_{}.go",
                    rng.pick(PACKAGES),
                    rng.pick(NOUNS).to_ascii_lowercase(),
                    files.len()
                ));
                files.push(f);
                f
            } else {
                files[rng.index(files.len())]
            };
            let id = (i + 1) as u64;
            let start_line = rng.range(10, 2000) as i64;
            function.push(Function {
                id,
                name: st.add(name),
                system_name: 0,
                filename: file,
                start_line,
            });
            location.push(Location {
                id,
                mapping_id: 1,
                address: 0x40_0000 + rng.below(0x80_0000),
                line: vec![Line {
                    function_id: id,
                    line: start_line + rng.range(1, 120) as i64,
                }],
                is_folded: false,
            });
        }
        // A layered call graph: callees always have a higher index, so every walk ends.
        let callees = (0..n)
            .map(|i| {
                let rest = n - i - 1;
                let k = rest.min(rng.range(1, 4) as usize);
                (0..k).map(|_| i + 1 + rng.index(rest)).collect()
            })
            .collect();
        let profile = Profile {
            sample_type: vec![
                ValueType {
                    r#type: samples_t,
                    unit: count_u,
                },
                ValueType {
                    r#type: cpu_t,
                    unit: ns_u,
                },
            ],
            sample: Vec::new(),
            mapping: vec![Mapping {
                id: 1,
                memory_start: 0x40_0000,
                memory_limit: 0xc0_0000,
                file_offset: 0,
                filename: binary,
                build_id,
                has_functions: true,
                has_filenames: true,
                has_line_numbers: true,
                has_inline_frames: false,
            }],
            location,
            function,
            string_table: st.0,
            drop_frames: 0,
            keep_frames: 0,
            time_nanos: TIME_NANOS,
            duration_nanos: 10_000_000_000,
            period_type: Some(ValueType {
                r#type: cpu_t,
                unit: ns_u,
            }),
            period: 10_000_000,
            comment: Vec::new(),
            default_sample_type: 0,
        };
        Self {
            profile,
            callees,
            roots: (0..ROOTS.len()).collect(),
            thread_key,
            thread_values,
            span_key,
            span_values,
        }
    }

    /// Sample `i`: a walk from a root down the call graph, leaf first.
    fn sample(&self, seed: u64, i: usize) -> Sample {
        let mut rng = Rng::stream(seed, i as u64);
        let depth = rng.range(4, 40) as usize;
        let mut stack = Vec::with_capacity(depth);
        let mut f = self.roots[rng.index(self.roots.len())];
        stack.push(f as u64 + 1);
        while stack.len() < depth {
            let next = &self.callees[f];
            if next.is_empty() {
                break;
            }
            f = next[rng.index(next.len())];
            stack.push(f as u64 + 1);
        }
        stack.reverse();
        let count = 1 + rng.below(20) as i64;
        let mut label = vec![Label {
            key: self.thread_key,
            str: self.thread_values[rng.index(self.thread_values.len())],
            num: 0,
            num_unit: 0,
        }];
        if rng.below(3) > 0 {
            label.push(Label {
                key: self.span_key,
                str: self.span_values[rng.index(self.span_values.len())],
                num: 0,
                num_unit: 0,
            });
        }
        Sample {
            location_id: stack,
            value: vec![count, count * 10_000_000],
            label,
        }
    }

    fn encode_with(&mut self, samples: &[Sample]) -> Vec<u8> {
        self.profile.sample = samples.to_vec();
        let out = self.profile.encode_to_vec();
        self.profile.sample.clear();
        out
    }
}

/// Gzips `data` at the default level with a timestamp-free header (deterministic bytes).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(data.len() / 3 + 64),
        Compression::default(),
    );
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// Generates a profile whose gzip'd size is within ±10% of `target` bytes.
///
/// # Errors
/// [`SynthError::OutOfRange`] for targets outside the supported range.
pub fn generate(target: usize, seed: u64) -> Result<Synthetic, SynthError> {
    if !(MIN_SIZE..=MAX_SIZE).contains(&target) {
        return Err(SynthError::OutOfRange(target));
    }
    let mut functions = (target / BYTES_PER_FUNCTION).clamp(MIN_FUNCTIONS, MAX_FUNCTIONS);
    let mut uni = Universe::new(functions, seed);
    // Shrink the table until it leaves room for samples.
    while gzip(&uni.encode_with(&[])).len() > target * 6 / 10 && functions > MIN_FUNCTIONS {
        functions = (functions / 2).max(MIN_FUNCTIONS);
        uni = Universe::new(functions, seed);
    }
    let mut samples: Vec<Sample> = Vec::new();
    let mut size_at = |uni: &mut Universe, n: usize| -> usize {
        while samples.len() < n {
            samples.push(uni.sample(seed, samples.len()));
        }
        gzip(&uni.encode_with(&samples[..n])).len()
    };
    let (mut n0, mut s0) = (0usize, size_at(&mut uni, 0));
    let (mut n1, mut s1) = (16usize, size_at(&mut uni, 16));
    let mut best = if s0.abs_diff(target) <= s1.abs_diff(target) {
        (n0, s0)
    } else {
        (n1, s1)
    };
    for _ in 0..MAX_ITERATIONS {
        if within(best.1, target, TOLERANCE / 4.0) {
            break;
        }
        let slope = (s1 as f64 - s0 as f64) / (n1 as f64 - n0 as f64);
        let slope = if slope.is_finite() && slope > 0.5 {
            slope
        } else {
            8.0
        };
        let guess = n1 as f64 + (target as f64 - s1 as f64) / slope;
        // Never jump more than 8× at once, never below zero.
        let n = guess.clamp(0.0, (n1.max(16) * 8) as f64).round() as usize;
        if n == n1 {
            break;
        }
        let s = size_at(&mut uni, n);
        if s.abs_diff(target) < best.1.abs_diff(target) {
            best = (n, s);
        }
        (n0, s0, n1, s1) = (n1, s1, n, s);
    }
    let (n, got) = best;
    if !within(got, target, TOLERANCE) {
        return Err(SynthError::NotConverged { target, got });
    }
    while samples.len() < n {
        samples.push(uni.sample(seed, samples.len()));
    }
    let plain = uni.encode_with(&samples[..n]);
    let gz = gzip(&plain);
    Ok(Synthetic {
        gzip: gz,
        plain,
        samples: n,
        functions,
    })
}

fn within(got: usize, target: usize, tol: f64) -> bool {
    (got as f64 - target as f64).abs() <= target as f64 * tol
}

/// Folded ("collapsed") stack text of about `target` bytes, lines `a;b;c <count>`, drawn
/// from the same kind of call graph (for `/ingest` folded payloads).
pub fn folded(target: usize, seed: u64) -> String {
    let target = target.clamp(64, MAX_SIZE);
    let functions = (target / 200).clamp(MIN_FUNCTIONS, 4096);
    let uni = Universe::new(functions, seed);
    let name = |loc: u64| -> &str {
        let f = uni.profile.function.get(loc as usize - 1);
        f.and_then(|f| uni.profile.string_table.get(f.name as usize))
            .map_or("?", String::as_str)
    };
    let mut out = String::with_capacity(target + 256);
    let mut i = 0;
    while out.len() < target {
        let s = uni.sample(seed, i);
        i += 1;
        for (k, loc) in s.location_id.iter().rev().enumerate() {
            if k > 0 {
                out.push(';');
            }
            out.push_str(name(*loc));
        }
        out.push(' ');
        out.push_str(&s.value[0].to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyrogate::protocol::gzip::{inflate_bounded, is_gzip};

    fn decode(gz: &[u8]) -> Profile {
        assert!(is_gzip(gz));
        let raw = inflate_bounded(gz, 64 << 20).expect("valid gzip");
        Profile::decode(raw).expect("valid pprof")
    }

    #[test]
    fn sizes_within_tolerance_and_decodable() {
        for target in [MIN_SIZE, 4096, 16 * 1024, 100_000] {
            let s = generate(target, 42).expect("generates");
            let got = s.gzip.len();
            assert!(
                within(got, target, TOLERANCE),
                "target {target}: got {got} ({} samples, {} functions)",
                s.samples,
                s.functions
            );
            let p = decode(&s.gzip);
            assert_eq!(p.sample.len(), s.samples);
            assert_eq!(p.string_table[0], "");
            assert_eq!(p.sample_type.len(), 2);
            assert_eq!(gzip(&s.plain), s.gzip);
            // Every reference resolves.
            let nstr = p.string_table.len() as i64;
            for f in &p.function {
                assert!(f.name > 0 && f.name < nstr && f.filename < nstr);
            }
            for smp in &p.sample {
                assert_eq!(smp.value.len(), 2);
                assert!(
                    smp.location_id
                        .iter()
                        .all(|l| *l >= 1 && *l <= p.location.len() as u64)
                );
                assert!(smp.label.iter().all(|l| l.key < nstr && l.str < nstr));
            }
        }
    }

    #[test]
    fn realistic_shape() {
        let s = generate(16 * 1024, 1).expect("generates");
        let p = decode(&s.gzip);
        assert!(p.function.len() >= 100, "{} functions", p.function.len());
        let distinct: std::collections::HashSet<&Vec<u64>> =
            p.sample.iter().map(|s| &s.location_id).collect();
        assert!(distinct.len() >= 50, "{} distinct stacks", distinct.len());
        assert!(p.sample.iter().all(|s| !s.label.is_empty()));
        let max_depth = p
            .sample
            .iter()
            .map(|s| s.location_id.len())
            .max()
            .unwrap_or(0);
        assert!(max_depth >= 10, "max depth {max_depth}");
        assert_eq!(p.time_nanos, TIME_NANOS);
    }

    #[test]
    fn deterministic_per_seed() {
        let a = generate(8 * 1024, 7).expect("generates");
        let b = generate(8 * 1024, 7).expect("generates");
        let c = generate(8 * 1024, 8).expect("generates");
        assert_eq!(a.gzip, b.gzip);
        assert_ne!(a.gzip, c.gzip);
    }

    #[test]
    fn out_of_range() {
        assert_eq!(
            generate(10, 1).map(|s| s.samples),
            Err(SynthError::OutOfRange(10))
        );
        assert!(generate(MAX_SIZE + 1, 1).is_err());
    }

    #[test]
    fn folded_lines() {
        let text = folded(4096, 3);
        assert!(
            text.len() >= 4096 && text.len() < 4096 + 4096,
            "{}",
            text.len()
        );
        for line in text.lines() {
            let (stack, count) = line.rsplit_once(' ').expect("space");
            assert!(count.parse::<u64>().is_ok(), "{line}");
            assert!(stack.split(';').count() >= 1);
        }
        assert_eq!(folded(4096, 3), text);
    }
}
