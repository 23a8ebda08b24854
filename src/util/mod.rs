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
