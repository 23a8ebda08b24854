//! Wire formats only: the `/ingest` query and label-set grammar, Alloy's label rules,
//! Connect Push (head, proto/JSON/gzip/gRPC-Web decode and encode, responses), Connect codes
//! and error bodies, multipart, OTLP profiles (`otlp/`), bounded gzip, pprof, Pyroscope's
//! label-set rendering, and the
//! prost messages. Nothing here knows
//! about forwarding, routing or the runtime.
pub mod connect;
pub mod goquote;
pub mod gzip;
pub mod ingest;
pub mod labels;
pub mod labelset;
pub mod labelstring;
pub mod multipart;
pub mod otlp;
pub mod pprof;
pub mod proto;
pub mod push;
pub mod query;
pub mod snappy;
