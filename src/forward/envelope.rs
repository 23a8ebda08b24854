//! The envelope: one accepted profile request, prepared once on the receiving worker and
//! shared (by `Arc`) with every destination. Destinations add only their own request line
//! and headers; the body chunks are refcounted `Bytes`, never copied per destination.

use std::time::Instant;

use bytes::Bytes;

pub use super::kind::Kind;
use crate::protocol::connect::Code;

#[derive(Debug)]
pub struct Envelope {
    pub kind: Kind,
    /// Path and query appended to the endpoint's base path (`/ingest?...` or the Push path).
    pub path_and_query: String,
    /// Request headers that belong to the payload (Content-Type values, Content-Encoding of
    /// a verbatim Push, Connect-Protocol-Version), in order.
    pub headers: Vec<(&'static str, Bytes)>,
    /// Body chunks; their concatenation is the downstream body.
    pub body: Vec<Bytes>,
    pub body_len: usize,
    /// The caller's `X-Scope-OrgID`, forwarded when the endpoint sets no tenant.
    pub tenant: Option<Bytes>,
    /// When the caller must have its answer (server write timeout, or the caller's own
    /// Connect/gRPC timeout when shorter).
    pub deadline: Instant,
    pub received_at: Instant,
    /// Profiles in the request (Push: samples; /ingest: 1), for the sent/dropped metrics.
    pub profiles: u64,
    /// Profile bytes as Alloy counts them (Push: sum of raw_profile sizes; /ingest: body).
    pub profile_bytes: u64,
}

/// What the caller is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every destination the ack policy waits for accepted the profile.
    Accepted,
    /// A destination refused the profile for good (a 4xx that retrying cannot fix).
    Rejected {
        status: u16,
        /// The downstream's Connect error code, when it sent one.
        code: Option<Code>,
        message: String,
    },
    /// Retries were exhausted or the deadline is near: the caller may retry later.
    /// `last_status` is the last HTTP status a destination answered, if any (relayed to
    /// `/ingest` callers as Alloy does).
    Unavailable {
        last_status: Option<u16>,
        message: String,
    },
    /// A destination queue (or, with `ack = "durable"`, its spool) is full (load shedding);
    /// the caller should back off.
    Overloaded { retry_after_secs: u32, spool: bool },
}
