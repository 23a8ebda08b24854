//! HTTP/2 on the listener: cleartext (h2c) by prior knowledge or `Upgrade: h2c`, served by
//! our own server connection (`conn.rs`) over completion-based socket I/O (`io.rs`), each
//! stream handed to the same [`Service`] the HTTP/1.1 loop serves (docs/http2.md).
//!
//! What a hostile peer can make this connection hold is bounded:
//! - streams: `max_concurrent_streams` open streams, and as many running handlers (a stream
//!   the client resets stops its handler; a new stream beyond that is refused);
//! - rapid reset (CVE-2023-44487): client resets of streams still arriving
//!   (`max_pending_reset_streams`) and of running ones (`max_rapid_resets`) are budgeted in
//!   token buckets, as are refused streams and streams we reset for the client's protocol
//!   errors (`max_local_error_resets`), all ending in GOAWAY `ENHANCE_YOUR_CALM`;
//! - headers: `max_header_list_size` bounds a header block's encoded size (which stops
//!   CONTINUATION floods) and its decoded size (HPACK bombs: 431), and the HPACK table size;
//! - bodies: the flow-control windows, `max_request_body` per stream, the read timeout;
//! - responses to a peer that never opens its window: the write timeout resets the stream;
//! - output: reading stops while answers wait for a peer that does not read.

pub mod client;
mod conn;
pub mod frame;
pub mod hpack;
pub mod io;
pub mod limits;
mod stream;
pub mod upgrade;

use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;

use self::conn::Conn;
use self::io::Prefixed;
pub use self::limits::Http2Limits;
use super::service::{ConnEnv, Service};

/// How the connection became HTTP/2.
pub enum Setup {
    /// The client sent the connection preface first.
    PriorKnowledge,
    /// An HTTP/1.1 request asked for `Upgrade: h2c`: these frames replay it as stream 1.
    Upgrade(Bytes),
}

/// Serves an HTTP/2 connection until the client closes it, an error ends it, or a GOAWAY
/// we sent (drain, `max_connection_age`, idle timeout, abuse) has run its course.
/// `prefix` holds what the HTTP/1.1 loop already read from the socket.
pub async fn serve<S: Service>(
    sock: monoio::net::TcpStream,
    prefix: Bytes,
    setup: Setup,
    svc: Rc<S>,
    env: Rc<ConnEnv>,
    max_age_at: Option<Instant>,
) {
    let limits = env.limits.get();
    let Some(h2l) = limits.http2 else { return };
    let mut io = Prefixed::new(prefix, sock);
    let setup_label = match setup {
        Setup::PriorKnowledge => "prior_knowledge",
        Setup::Upgrade(frames) => {
            let deadline = Instant::now() + limits.read_timeout;
            if !upgrade::inject_after_preface(&mut io, frames, deadline).await {
                return;
            }
            "upgrade"
        }
    };
    let mut conn = Conn::new(io, svc, env.clone(), h2l, max_age_at);
    let mut counted = false;
    let mut drain = std::pin::pin!(env.drain.wait());
    poll_fn(|cx| {
        if !conn.closing() && drain.as_mut().poll(cx).is_ready() {
            conn.drain();
        }
        let r = conn.poll(cx);
        if !counted && conn.started() {
            counted = true;
            if let Some(m) = &env.http2_metrics {
                m.connections.with_label_values(&[setup_label]).inc();
            }
        }
        if r.is_pending() {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
}
