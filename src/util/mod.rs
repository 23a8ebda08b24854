//! Small primitives shared across layers: concurrency (mailbox, notify, coarse timer,
//! shared deadlines),
//! rate-limited logs, jitter, calendar arithmetic, a fast hash.
pub mod calendar;
pub mod coarse_timer;
pub mod deadline;
pub mod fxhash;
pub mod lograte;
pub mod mailbox;
pub mod notify;
pub mod rand;
pub mod x509;

/// A single-threaded runtime with timers, for unit tests of the primitives here.
#[cfg(test)]
pub(crate) fn test_runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime")
}
