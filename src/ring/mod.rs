//! Ring mode: shard series over a fleet on Pyroscope's consistent-hash ring, with
//! replication and quorum, membership from a static list or from dskit's ring in etcd
//! (docs/ring.md).

pub mod desc;
pub mod etcd;
pub mod membership;
pub mod metrics;
pub mod model;
pub mod page;
pub mod quorum;
pub mod route;
pub mod token;
