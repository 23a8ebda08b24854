//! Small primitives shared across layers: concurrency (mailbox, notify, coarse timer),
//! rate-limited logs, jitter, calendar arithmetic.
pub mod calendar;
pub mod coarse_timer;
pub mod lograte;
pub mod mailbox;
pub mod notify;
pub mod rand;
