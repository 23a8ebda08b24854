//! Small concurrency primitives shared by the runtime, the forwarding stage and the sink.
pub mod coarse_timer;
pub mod lograte;
pub mod mailbox;
pub mod notify;
pub mod rand;
