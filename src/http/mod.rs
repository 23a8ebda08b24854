//! HTTP/1.1: inbound framing and connection loop on our own parser (httparse), responses,
//! and the outbound client used by the forwarding stage.
pub mod chunked;
pub mod client;
pub mod date;
pub mod h2;
pub mod head;
pub mod response;
pub mod response_head;
pub mod server;
pub mod service;
pub mod tls;
pub mod transport;

pub use head::{BodyFraming, HeadError, Method, RequestHead};
pub use response::Response;
pub use server::{Admission, ConnEnv, ConnLimits, Request, Service, serve_conn};
