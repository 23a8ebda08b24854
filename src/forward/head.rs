//! The request head of one attempt: the endpoint's base path and static headers, the
//! payload's own headers in order, the attempt's protocol headers ([`Kind`]) and the
//! tenant.

use std::time::Duration;

use bytes::Bytes;

use super::destination::Destination;
use super::envelope::Envelope;
use crate::http::response::push_u64;

/// The request head for one attempt. Alloy's header order on `/ingest`: endpoint headers,
/// then the caller's `Content-Type` values (the first replacing a configured one).
pub fn build(env: &Envelope, d: &Destination, budget: Duration, forward_tenant: bool) -> Bytes {
    let mut h: Vec<u8> = Vec::with_capacity(512 + env.path_and_query.len());
    h.extend_from_slice(b"POST ");
    h.extend_from_slice(d.cfg.url.base_path.as_bytes());
    h.extend_from_slice(env.path_and_query.as_bytes());
    h.extend_from_slice(b" HTTP/1.1\r\n");
    h.extend_from_slice(&d.static_headers);
    h.extend_from_slice(b"Content-Length: ");
    push_u64(&mut h, env.body_len as u64);
    h.extend_from_slice(b"\r\n");
    let mut has_ct = false;
    for (name, value) in &env.headers {
        has_ct |= name.eq_ignore_ascii_case("content-type");
        h.extend_from_slice(name.as_bytes());
        h.extend_from_slice(b": ");
        h.extend_from_slice(value);
        h.extend_from_slice(b"\r\n");
    }
    if !has_ct && let Some(ct) = &d.custom_content_type {
        h.extend_from_slice(b"Content-Type: ");
        h.extend_from_slice(ct.as_bytes());
        h.extend_from_slice(b"\r\n");
    }
    env.kind.write_attempt_headers(&mut h, budget);
    if d.cfg.tenant_id.is_none()
        && forward_tenant
        && let Some(t) = &env.tenant
    {
        h.extend_from_slice(b"X-Scope-OrgID: ");
        h.extend_from_slice(t);
        h.extend_from_slice(b"\r\n");
    }
    h.extend_from_slice(b"\r\n");
    Bytes::from(h)
}
