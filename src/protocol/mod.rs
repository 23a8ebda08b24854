//! Pyroscope endpoints and wire formats: the `/ingest` query and label-set grammar, Connect
//! Push (proto, JSON, gzip), Connect codes and error bodies, and the prost messages.
pub mod connect;
pub mod gzip;
pub mod ingest;
pub mod labels;
pub mod labelset;
pub mod multipart;
pub mod proto;
pub mod push;
pub mod push_decode;
pub mod push_encode;
pub mod query;
