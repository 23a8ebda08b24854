//! Test data for pyrogate, made by the project itself and deterministic from a seed:
//!
//! * [`pprof`]: realistic profiles (several sample types, deep shared stacks, string and
//!   numeric labels, zero-valued and duplicate samples), by spec or by gzip'd size;
//! * [`push`]: Connect Push bodies (protobuf, protojson, gRPC-Web frames), one or many series;
//! * [`formats`]: the other `/ingest` formats (multipart, JFR-shaped, folded, lines, trie,
//!   tree, speedscope);
//! * [`sdk`]: complete requests shaped like each real agent's;
//! * [`invalid`]: profiles that each break one of Pyroscope's profile checks;
//! * [`otlp`]: OpenTelemetry profiles requests (v1.10.0 or v1.9.0 layout);
//! * [`corpus`]: every route and format at once, broken variants with their expected
//!   answers, and the lookup of the optional captured corpus.
//!
//! The crate has its own protobuf definitions ([`wire`]) and does not depend on the
//! gateway, so the data is an independent reference for the gateway's decoders.
pub mod corpus;
pub mod formats;
pub mod gz;
pub mod invalid;
pub mod otlp;
pub mod pprof;
pub mod push;
pub mod rng;
pub mod sdk;
pub mod wire;
