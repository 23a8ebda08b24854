//! pyrogate: an edge gateway for continuous-profiling traffic.
pub mod protocol;
