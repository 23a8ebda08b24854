//! `pyrogate-load`: the load generator (`run`) and the Pyroscope-compatible sink (`sink`)
//! that ship with pyrogate, plus the pure pieces both are built from.
//!
//! The tree follows the two data paths:
//! * sink: [`sink`] (workers, accept loop) → [`sink::service`] (routes, faults) →
//!   [`sink::check`] (Pyroscope framing rules) → [`sink::stats`] (counters, record ring);
//! * run: [`load::payload`] (what real SDKs send) → [`load::client`] (keep-alive HTTP/1.1) →
//!   [`load::schedule`] (open/closed loop, coordinated omission) → [`load::report`].
//!
//! Shared helpers: [`fnv`] (body checksums), [`multipart`], [`synth`] (synthetic pprof),
//! [`rng`] (repeatable randomness), [`fixtures`].
pub mod cli;
pub mod fixtures;
pub mod fnv;
pub mod load;
pub mod multipart;
pub mod rng;
pub mod sink;
pub mod synth;
