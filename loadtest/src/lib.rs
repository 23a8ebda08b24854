//! `pyrogate-load`: the load generator (`run`) and the Pyroscope-compatible sink (`sink`)
//! that ship with pyrogate, plus the pure pieces both are built from.
//!
//! The tree follows the two data paths:
//! * sink: [`sink`] (workers, accept loop) → [`sink::service`] (routes, faults) →
//!   [`sink::check`] (Pyroscope framing rules) → [`sink::stats`] (counters, record ring);
//! * run: [`load::payload`] (what real SDKs send) → [`load::client`] (keep-alive HTTP/1.1) →
//!   [`load::schedule`] (open/closed loop, coordinated omission) → [`load::report`].
//!
//! * demo: [`demo`] (sinks + the `pyrogate` binary + the generated corpus, and captured
//!   traffic when given, + a short load);
//! * bench: [`bench`] (suites → [`bench::runner`] (one measured run) → [`bench::stats`] →
//!   [`bench::table`]), with [`process`] (child processes, `/proc`) and [`probe`] (a
//!   blocking control-plane client).
//!
//! * soak: [`soak`] (two real gateways, ack all and ack durable, under flapping sinks,
//!   hostile clients, reloads and floods; growth, delivery and health verdict).
//!
//! Shared helpers: [`fnv`] (body checksums), [`multipart`] (the parser of the sink's
//! checks), [`fixtures`] (reading a directory of captured requests). Payloads come from the
//! `pyrogate-testdata` crate.
pub mod bench;
pub mod cli;
pub mod demo;
pub mod fixtures;
pub mod fnv;
pub mod load;
pub mod probe;
pub mod process;
pub mod sink;
pub mod soak;
