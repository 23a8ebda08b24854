//! HTTP/1.1 strictness on the real binary, point by point along RFC 9112 (message syntax)
//! and RFC 9110 (semantics): request line, request-target forms, `Host`, field syntax,
//! message body framing, chunked coding and persistence. One test per point, named after
//! its section; docs/security.md ("HTTP/1.1 strictness (RFC 9112)") has the same table.
//!
//! Every refusal must answer with correct framing, say `Connection: close`, close the
//! connection, and leave other clients unaffected ([`refused`] checks all four).

mod common;

use std::time::Duration;

use common::{Conn, Gateway, IO_TIMEOUT, Response, build_request, chunked};

const OK: &[u8] = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n";

fn gateway() -> Gateway {
    Gateway::start(&[])
}

fn show(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    if s.len() > 200 {
        format!("{}… ({} bytes)", &s[..200], raw.len())
    } else {
        s.into_owned()
    }
}

/// Sends `raw` on a new connection and reads the final response.
fn exchange(gw: &Gateway, raw: &[u8]) -> (Conn, Response) {
    let mut c = gw.connect();
    c.send(raw).unwrap();
    let r = c
        .read_final_response(IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("{}: {e}", show(raw)));
    r.assert_framing();
    (c, r)
}

/// `raw` is answered `status` with `Connection: close`, the connection is closed, and a
/// client that was connected before is still served afterwards.
fn refused(gw: &Gateway, raw: &[u8], status: u16) -> Response {
    let mut bystander = gw.connect();
    assert_eq!(bystander.get("/-/healthy").unwrap().status, 200);
    let (mut c, r) = exchange(gw, raw);
    assert_eq!(r.status, status, "{}: {r:?}", show(raw));
    assert!(r.closes(), "{}: a refusal must close: {r:?}", show(raw));
    assert!(
        c.wait_closed(IO_TIMEOUT),
        "{}: connection left open after a refusal",
        show(raw)
    );
    let again = bystander.get("/-/healthy").unwrap();
    assert_eq!(again.status, 200, "other client after {}", show(raw));
    assert_eq!(gw.request("GET", "/-/healthy", &[], b"").status, 200);
    r
}

/// `raw` is answered `status` on a connection that stays usable (a normal request on it is
/// answered next).
fn served(gw: &Gateway, raw: &[u8], status: u16) -> Response {
    let (mut c, r) = exchange(gw, raw);
    assert_eq!(r.status, status, "{}: {r:?}", show(raw));
    assert!(
        !r.closes(),
        "{}: should keep the connection: {r:?}",
        show(raw)
    );
    c.send(OK).unwrap();
    let next = c.read_response(IO_TIMEOUT).unwrap();
    assert_eq!(next.status, 200, "request after {}: {next:?}", show(raw));
    r
}

// === RFC 9112 §2.2: message parsing ===

/// "A server SHOULD ignore at least one empty line (CRLF) received prior to the
/// request-line"; an LF alone may terminate a line.
#[test]
fn rfc9112_2_2_empty_lines_before_request_line_are_ignored() {
    let gw = gateway();
    for prefix in ["\r\n", "\r\n\r\n", "\n", "\n\n\r\n"] {
        let mut raw = prefix.as_bytes().to_vec();
        raw.extend_from_slice(OK);
        served(&gw, &raw, 200);
    }
    // An old client's CRLF after a body, before the next pipelined request.
    let mut c = gw.connect();
    let mut raw = build_request("POST", "/ingest?name=app", &[], b"abc");
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(OK);
    c.send(&raw).unwrap();
    assert_eq!(c.read_response(IO_TIMEOUT).unwrap().status, 200);
    assert_eq!(c.read_response(IO_TIMEOUT).unwrap().status, 200);
    // The empty line arriving alone, then the request: still one request.
    let mut c = gw.connect();
    c.send(b"\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    c.send(OK).unwrap();
    assert_eq!(c.read_response(IO_TIMEOUT).unwrap().status, 200);
    c.assert_silent(Duration::from_millis(200), "after one request");
    // LF-only line endings are accepted (RFC 9112 §2.2 MAY).
    served(&gw, b"GET /-/healthy HTTP/1.1\nHost: x\n\n", 200);
}

/// "A recipient of such a bare CR MUST consider that element to be invalid".
#[test]
fn rfc9112_2_2_bare_cr_is_400() {
    let gw = gateway();
    for raw in [
        &b"GET /-/healthy\rX HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET /-/healthy HTTP/1.1\rHost: x\r\n\r\n",
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
        b"\rGET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        refused(&gw, raw, 400);
    }
}

/// Whitespace-preceded lines between the start-line and the first field are rejected.
#[test]
fn rfc9112_2_2_whitespace_before_first_field_is_400() {
    let gw = gateway();
    refused(&gw, b"GET /-/healthy HTTP/1.1\r\n Host: x\r\n\r\n", 400);
    refused(
        &gw,
        b"GET /-/healthy HTTP/1.1\r\n\tX-A: b\r\nHost: x\r\n\r\n",
        400,
    );
}

// === RFC 9112 §2.3, RFC 9110 §2.5: HTTP version ===

/// HTTP/1.x with a higher minor version is processed as HTTP/1.1 (RFC 9110 §2.5); another
/// major version is 505; anything not `HTTP/DIGIT.DIGIT` is 400.
#[test]
fn rfc9112_2_3_http_version() {
    let gw = gateway();
    let r = served(&gw, b"GET /-/healthy HTTP/1.2\r\nHost: x\r\n\r\n", 200);
    assert_eq!(r.body_str(), "healthy\n");
    served(&gw, b"GET /-/healthy HTTP/1.9\r\nHost: x\r\n\r\n", 200);
    // Processed as 1.1: Host is required.
    refused(&gw, b"GET /-/healthy HTTP/1.2\r\n\r\n", 400);
    for v in ["HTTP/2.0", "HTTP/3.0", "HTTP/0.9", "HTTP/9.9"] {
        let raw = format!("GET /-/healthy {v}\r\nHost: x\r\n\r\n");
        refused(&gw, raw.as_bytes(), 505);
    }
    for v in [
        "HTTP/1.10",
        "HTTP/11",
        "http/1.1",
        "HTTP/1",
        "HTTP/1.x",
        "HTTPS/1.1",
        "HTTP/1.1 x",
    ] {
        let raw = format!("GET /-/healthy {v}\r\nHost: x\r\n\r\n");
        refused(&gw, raw.as_bytes(), 400);
    }
    // HTTP/0.9 simple request (no version).
    refused(&gw, b"GET /-/healthy\r\n\r\n", 400);
    // The HTTP/2 prior-knowledge preface starts HTTP/2 (the server's SETTINGS frame comes
    // back); with `[server.http2] enabled = false` it is answered 505 (tests/http2.rs).
    let mut s = std::net::TcpStream::connect(gw.addr).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    std::io::Write::write_all(&mut s, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").expect("send");
    let mut frame = [0u8; 9];
    std::io::Read::read_exact(&mut s, &mut frame).expect("a frame header");
    assert_eq!(frame[3], 4, "SETTINGS expected, got {frame:?}");
}

// === RFC 9112 §3: request line ===

/// request-line = method SP request-target SP HTTP-version: method a token, single SP, no
/// leading or trailing whitespace.
#[test]
fn rfc9112_3_request_line_grammar() {
    let gw = gateway();
    for raw in [
        &b"GET  /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET /-/healthy  HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET\t/-/healthy HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /-/healthy\tHTTP/1.1\r\nHost: x\r\n\r\n",
        b" GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\tGET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /-/healthy HTTP/1.1 \r\nHost: x\r\n\r\n",
        b"G(T /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /-/he\x00lthy HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /-/he lthy HTTP/1.1\r\nHost: x\r\n\r\n",
        b"/-/healthy HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        refused(&gw, raw, 400);
    }
    // Methods are case-sensitive tokens: `get` is a valid, unknown method (405, not 400).
    served(&gw, b"get /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n", 405);
}

/// origin-form: absolute-path [ "?" query ]. Raw `{}` in the query are tolerated (agents
/// send `name=app{env=prod}` unencoded).
#[test]
fn rfc9112_3_2_1_origin_form() {
    let gw = gateway();
    served(
        &gw,
        b"GET /-/healthy?x=1&y HTTP/1.1\r\nHost: x\r\n\r\n",
        200,
    );
    let raw = build_request("POST", "/ingest?name=app{env=prod}&from=1", &[], b"abc");
    served(&gw, &raw, 200);
}

/// absolute-form must be accepted by servers (§3.2.2); the path routes, the Host comes from
/// the target. userinfo, an empty host, or another scheme is refused.
#[test]
fn rfc9112_3_2_2_absolute_form() {
    let gw = gateway();
    served(
        &gw,
        b"GET http://example.com/-/healthy HTTP/1.1\r\nHost: other.example\r\n\r\n",
        200,
    );
    served(
        &gw,
        b"GET HTTP://EXAMPLE.COM:8080/-/ready?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        200,
    );
    served(
        &gw,
        b"GET https://[::1]:443/-/healthy HTTP/1.1\r\nHost: [::1]:443\r\n\r\n",
        200,
    );
    let raw = b"POST http://gw.example/ingest?name=app HTTP/1.1\r\nHost: gw.example\r\n\
                Content-Length: 3\r\n\r\nabc";
    served(&gw, raw, 200);
    // An empty path is "/", which is no route here.
    served(
        &gw,
        b"GET http://example.com HTTP/1.1\r\nHost: x\r\n\r\n",
        404,
    );
    for raw in [
        &b"GET http://user@example.com/-/healthy HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET http:///-/healthy HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://exa mple/-/healthy HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET ftp://example.com/-/healthy HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http:/example.com/-/healthy HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://example.com:80x/-/healthy HTTP/1.1\r\nHost: x\r\n\r\n",
        // §3.2: Host is still required on HTTP/1.1.
        b"GET http://example.com/-/healthy HTTP/1.1\r\n\r\n",
    ] {
        refused(&gw, raw, 400);
    }
}

/// authority-form is only for CONNECT (which pyrogate does not tunnel: no route, 404), and
/// CONNECT only takes authority-form.
#[test]
fn rfc9112_3_2_3_authority_form_only_for_connect() {
    let gw = gateway();
    served(
        &gw,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        404,
    );
    for raw in [
        &b"GET example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"CONNECT /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n",
        b"CONNECT example.com HTTP/1.1\r\nHost: x\r\n\r\n",
        b"CONNECT example.com: HTTP/1.1\r\nHost: x\r\n\r\n",
        b"CONNECT http://example.com:443/ HTTP/1.1\r\nHost: x\r\n\r\n",
        b"CONNECT u@example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        refused(&gw, raw, 400);
    }
}

/// asterisk-form is only for OPTIONS (no route for `*` here: 404).
#[test]
fn rfc9112_3_2_4_asterisk_form_only_for_options() {
    let gw = gateway();
    served(&gw, b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 404);
    refused(&gw, b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    refused(
        &gw,
        b"POST * HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        400,
    );
    refused(&gw, b"OPTIONS *x HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

/// A request line longer than the head limit is 414 (URI Too Long); a short request line
/// with too many field bytes is 431.
#[test]
fn rfc9112_3_long_request_line_is_414_large_fields_431() {
    let gw = Gateway::start(&["--max-header-bytes", "8KiB"]);
    let long = format!(
        "GET /-/healthy?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(10_000)
    );
    refused(&gw, long.as_bytes(), 414);
    // Arriving without its end: the limit is hit inside the request line.
    let mut c = gw.connect();
    c.send(format!("GET /{}", "b".repeat(9000)).as_bytes())
        .unwrap();
    let r = c.read_response(IO_TIMEOUT).unwrap();
    assert_eq!(r.status, 414, "{r:?}");
    assert!(r.closes());
    let big = format!(
        "GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "c".repeat(10_000)
    );
    refused(&gw, big.as_bytes(), 431);
    // Just under the limit is fine.
    let fits = format!(
        "GET /-/healthy?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "d".repeat(7000)
    );
    served(&gw, fits.as_bytes(), 200);
}

// === RFC 9112 §3.2: Host ===

/// "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1 request
/// message that lacks a Host header field".
#[test]
fn rfc9112_3_2_missing_host_is_400() {
    let gw = gateway();
    let r = refused(&gw, b"GET /-/healthy HTTP/1.1\r\n\r\n", 400);
    assert_eq!(r.body_str(), "missing required Host header\n");
    refused(
        &gw,
        b"POST /ingest?name=app HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        400,
    );
    // The Push route answers in its own protocol, still 400 and close.
    let r = refused(
        &gw,
        b"POST /push.v1.PusherService/Push HTTP/1.1\r\nContent-Type: application/proto\r\n\
          Content-Length: 0\r\n\r\n",
        400,
    );
    assert!(!r.body.is_empty());
}

/// "... and to any request message that contains more than one Host header field line".
#[test]
fn rfc9112_3_2_duplicate_host_is_400() {
    let gw = gateway();
    let r = refused(
        &gw,
        b"GET /-/healthy HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        400,
    );
    assert_eq!(r.body_str(), "too many Host headers\n");
    refused(
        &gw,
        b"GET /-/healthy HTTP/1.1\r\nHost: a\r\nX-A: b\r\nhost: b\r\n\r\n",
        400,
    );
    refused(
        &gw,
        b"GET /-/healthy HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
    );
}

/// "... or a Host header field with an invalid field value" (Host = uri-host [ ":" port ]).
#[test]
fn rfc9112_3_2_invalid_host_is_400() {
    let gw = gateway();
    for host in [
        "exa mple.com",
        "a/b",
        "user@example.com",
        "[::1",
        "::1",
        "example.com:8o",
        "example.com:80:90",
        "a,b c",
        "%zz",
        "exa\"mple",
    ] {
        let raw = format!("GET /-/healthy HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let r = refused(&gw, raw.as_bytes(), 400);
        assert_eq!(r.body_str(), "malformed Host header\n", "{host}");
    }
    for host in [
        "example.com",
        "example.com:8080",
        "127.0.0.1:4040",
        "[::1]:80",
        "[fe80::1%25eth0]",
        "my_host.internal",
        "xn--bcher-kva.example",
        "ex%41mple",
        "host:",
        "",
    ] {
        let raw = format!("GET /-/healthy HTTP/1.1\r\nHost: {host}\r\n\r\n");
        served(&gw, raw.as_bytes(), 200);
    }
}

/// Host is required of HTTP/1.1 only: HTTP/1.0 without it is served.
#[test]
fn rfc9112_3_2_http10_without_host_is_allowed() {
    let gw = gateway();
    let (mut c, r) = exchange(&gw, b"GET /-/healthy HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(c.wait_closed(IO_TIMEOUT));
    let (_, r) = exchange(
        &gw,
        b"POST /ingest?name=app HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(r.status, 200, "{r:?}");
}

// === RFC 9112 §5 / RFC 9110 §5: fields ===

/// "No whitespace is allowed between the field name and colon ... A server MUST reject,
/// with a response status code of 400 (Bad Request), any received request message that
/// contains whitespace between a header field name and colon."
#[test]
fn rfc9112_5_1_whitespace_before_colon_is_400() {
    let gw = gateway();
    refused(
        &gw,
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n",
        400,
    );
    refused(
        &gw,
        b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length\t: 3\r\n\r\nabc",
        400,
    );
    refused(&gw, b"GET /-/healthy HTTP/1.1\r\nHost : x\r\n\r\n", 400);
}

/// "A server that receives an obs-fold in a request message ... MUST either reject the
/// message by sending a 400 (Bad Request) ... or replace each received obs-fold with one
/// or more SP": pyrogate rejects.
#[test]
fn rfc9112_5_2_obs_fold_is_400() {
    let gw = gateway();
    refused(
        &gw,
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n",
        400,
    );
    refused(
        &gw,
        b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\t3\r\n\r\nabc",
        400,
    );
}

/// Field values are VCHAR / obs-text with SP/HTAB inside; NUL, CR, LF and other controls
/// are invalid (RFC 9110 §5.5); field names are tokens.
#[test]
fn rfc9110_5_5_invalid_field_bytes_are_400() {
    let gw = gateway();
    for raw in [
        &b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"[..],
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n",
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nX(A): b\r\n\r\n",
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n: b\r\n\r\n",
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n",
    ] {
        refused(&gw, raw, 400);
    }
    // obs-text (bytes >= 0x80) in values is allowed.
    served(
        &gw,
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-A: caf\xc3\xa9\r\n\r\n",
        200,
    );
}

// === RFC 9112 §6: message body ===

/// Transfer-Encoding with Content-Length: "A server MAY reject a request that contains both
/// ... Regardless, the server MUST close the connection": pyrogate rejects (400, close).
#[test]
fn rfc9112_6_1_te_and_cl_is_400_and_close() {
    let gw = gateway();
    for raw in [
        &b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\
           Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
        b"POST /ingest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
          Content-Length: 0\r\n\r\n0\r\n\r\n",
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
          Content-Length: 5\r\n\r\n0\r\n\r\n",
    ] {
        refused(&gw, raw, 400);
    }
}

/// "A server or client that receives an HTTP/1.0 message containing a Transfer-Encoding
/// header field MUST treat the message as if the framing is faulty ... and close the
/// connection": 400, close.
#[test]
fn rfc9112_6_1_te_on_http10_is_400_and_close() {
    let gw = gateway();
    refused(
        &gw,
        b"POST /ingest HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
    refused(
        &gw,
        b"POST /ingest HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
        400,
    );
}

/// "If a Transfer-Encoding header field is present in a request and the chunked transfer
/// coding is not the final encoding ... the server MUST respond with the 400 (Bad Request)
/// status code and then close the connection" (§6.3); chunked applied twice is invalid
/// (§6.1).
#[test]
fn rfc9112_6_3_chunked_not_final_is_400() {
    let gw = gateway();
    for te in [
        "gzip",
        "chunked, gzip",
        "identity",
        "chunked, chunked",
        "",
        "chunked;x=1",
    ] {
        let raw = format!(
            "POST /ingest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {te}\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        );
        refused(&gw, raw.as_bytes(), 400);
    }
    refused(
        &gw,
        b"POST /ingest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
    refused(
        &gw,
        b"POST /ingest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
          Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n",
        400,
    );
}

/// "A server that receives a request message with a transfer coding it does not
/// understand SHOULD respond with 501 (Not Implemented)" (chunked final, another coding
/// before it).
#[test]
fn rfc9112_6_1_unknown_coding_is_501() {
    let gw = gateway();
    for te in ["gzip, chunked", "identity, chunked", "x-custom, chunked"] {
        let raw =
            format!("POST /ingest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n");
        refused(&gw, raw.as_bytes(), 501);
    }
    // Case-insensitive coding names and empty list elements are fine.
    let raw = b"POST /ingest?name=app HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: , CHUNKED\r\n\r\n\
                3\r\nabc\r\n0\r\n\r\n";
    served(&gw, raw, 200);
}

/// An invalid Content-Length is an unrecoverable framing error: 400 and close (§6.3 item 5).
#[test]
fn rfc9112_6_3_invalid_content_length_is_400() {
    let gw = gateway();
    for cl in [
        "abc",
        "-1",
        "+5",
        "0x10",
        "",
        "5 5",
        "1e3",
        "5,",
        "18446744073709551616",
        "99999999999999999999",
    ] {
        let raw = format!("POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: {cl}\r\n\r\nabcde");
        refused(&gw, raw.as_bytes(), 400);
    }
}

/// Differing Content-Length values (two lines or a list) are 400 and close.
#[test]
fn rfc9112_6_3_differing_content_lengths_are_400() {
    let gw = gateway();
    refused(
        &gw,
        b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
    );
    refused(
        &gw,
        b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\nabcd",
        400,
    );
}

/// Identical repeated values ("5, 5" or two lines of 5) may be accepted (RFC 9110 §8.6);
/// pyrogate accepts them as one length (the forwarded request carries its own).
#[test]
fn rfc9110_8_6_identical_content_lengths_are_one_length() {
    let gw = gateway();
    for raw in [
        &b"POST /ingest?name=app HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello"[..],
        b"POST /ingest?name=app HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\
          Content-Length: 5\r\n\r\nhello",
    ] {
        // `served` pipelines a GET right after: the body must have been exactly 5 bytes.
        served(&gw, raw, 200);
    }
}

/// chunk-size is 1*HEXDIG; a size that overflows 64 bits is 400, one beyond the body limit
/// 413; leading zeros are fine.
#[test]
fn rfc9112_7_1_chunk_size_overflow_is_400() {
    let gw = gateway();
    let head = "POST /ingest?name=app HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for body in [
        "10000000000000000\r\n",
        "fffffffffffffffff0\r\n",
        "-5\r\nhello\r\n0\r\n\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        " 5\r\nhello\r\n0\r\n\r\n",
    ] {
        refused(&gw, format!("{head}{body}").as_bytes(), 400);
    }
    refused(&gw, format!("{head}ffffffffffffffff\r\n").as_bytes(), 413);
    served(
        &gw,
        format!("{head}00000000000000000000005\r\nhello\r\n0\r\n\r\n").as_bytes(),
        200,
    );
}

/// Chunk lines end in CRLF; a bare LF or anything else after chunk data is 400 (the
/// lenient forms are request-smuggling vectors behind proxies that read them differently).
#[test]
fn rfc9112_7_1_chunk_lines_end_in_crlf() {
    let gw = gateway();
    let head = "POST /ingest?name=app HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for body in [
        "5\nhello\r\n0\r\n\r\n",
        "5\r\nhello\n0\r\n\r\n",
        "5\r\nhelloXX0\r\n\r\n",
        "5\r\nhello\r\n0\n\r\n",
        "5\r\nhello\r\n0\r\n\n",
        "5\rhello\r\n0\r\n\r\n",
    ] {
        refused(&gw, format!("{head}{body}").as_bytes(), 400);
    }
}

/// chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ): valid
/// extensions are ignored; malformed ones, one longer than 1 KiB, or more than 16 KiB of
/// them in one body are 400.
#[test]
fn rfc9112_7_1_1_chunk_extensions_are_checked_and_bounded() {
    let gw = gateway();
    let head = "POST /ingest?name=app HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for body in [
        "5;a\r\nhello\r\n0\r\n\r\n",
        "5;a=b;c=\"q \\\" d\"\r\nhello\r\n0;last\r\n\r\n",
        "5 ; a = b\r\nhello\r\n0\r\n\r\n",
    ] {
        served(&gw, format!("{head}{body}").as_bytes(), 200);
    }
    for body in [
        "5;\r\nhello\r\n0\r\n\r\n",
        "5 \r\nhello\r\n0\r\n\r\n",
        "5;a b\r\nhello\r\n0\r\n\r\n",
        "5;a=\"open\r\nhello\r\n0\r\n\r\n",
        "5;a=b\nc\r\nhello\r\n0\r\n\r\n",
        "5;a\x00\r\nhello\r\n0\r\n\r\n",
        "5x\r\nhello\r\n0\r\n\r\n",
    ] {
        refused(&gw, format!("{head}{body}").as_bytes(), 400);
    }
    let long = format!("{head}5;a={}\r\nhello\r\n0\r\n\r\n", "x".repeat(2000));
    refused(&gw, long.as_bytes(), 400);
    // 40 one-byte chunks with 500-byte extensions each: 20 KiB of extensions.
    let mut many = head.to_string();
    for _ in 0..40 {
        many.push_str(&format!("1;e={}\r\nx\r\n", "y".repeat(500)));
    }
    many.push_str("0\r\n\r\n");
    refused(&gw, many.as_bytes(), 400);
}

/// Trailer fields are field lines (name ":" value), read and discarded, at most 16 KiB.
#[test]
fn rfc9112_7_1_2_trailers_are_checked_and_bounded() {
    let gw = gateway();
    let head = "POST /ingest?name=app HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let ok = format!("{head}5\r\nhello\r\n0\r\nX-T: 1\r\nX-U:\r\n\r\n");
    served(&gw, ok.as_bytes(), 200);
    for trailer in ["no colon", " X-T: folded", "X T: 1", "X-T: a\x00b", ": v"] {
        let raw = format!("{head}5\r\nhello\r\n0\r\n{trailer}\r\n\r\n");
        refused(&gw, raw.as_bytes(), 400);
    }
    let big = format!(
        "{head}5\r\nhello\r\n0\r\nX-T: {}\r\n\r\n",
        "t".repeat(20_000)
    );
    refused(&gw, big.as_bytes(), 400);
}

// === RFC 9110 semantics that framing depends on ===

/// "Although request message framing is independent of the method used, content received
/// in a GET request has no generally defined semantics": the body is read (bounded) and
/// the connection stays in sync.
#[test]
fn rfc9110_9_3_1_get_with_body_is_read() {
    let gw = gateway();
    served(
        &gw,
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        200,
    );
    let raw = build_request(
        "GET",
        "/-/healthy",
        &[("Transfer-Encoding", "chunked")],
        &chunked(b"some bytes", 3, &[]),
    );
    served(&gw, &raw, 200);
    // A GET body beyond 64 KiB is refused.
    let big = build_request("GET", "/-/healthy", &[], &vec![b'g'; 70_000]);
    let (_, r) = exchange(&gw, &big);
    assert_eq!(r.status, 413, "{r:?}");
}

/// Expect: 100-continue gets a 100 on HTTP/1.1, and is ignored on HTTP/1.0 (RFC 9110
/// §10.1.1); another expectation is 417.
#[test]
fn rfc9110_10_1_1_expect_100_continue() {
    let gw = gateway();
    let mut c = gw.connect();
    c.send(
        b"POST /ingest?name=app HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\
          Content-Length: 5\r\n\r\n",
    )
    .unwrap();
    let cont = c.read_response(IO_TIMEOUT).unwrap();
    assert_eq!(cont.status, 100, "{cont:?}");
    c.send(b"hello").unwrap();
    assert_eq!(c.read_response(IO_TIMEOUT).unwrap().status, 200);
    // HTTP/1.0: no interim response; the final one comes once the body is sent.
    let mut c = gw.connect();
    c.send(b"POST /ingest?name=app HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .unwrap();
    c.assert_silent(Duration::from_millis(300), "HTTP/1.0 with Expect");
    c.send(b"hello").unwrap();
    assert_eq!(c.read_response(IO_TIMEOUT).unwrap().status, 200);
    refused(
        &gw,
        b"POST /ingest HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx",
        417,
    );
}

// === RFC 9112 §9: connection management ===

/// HTTP/1.1 connections persist by default; `Connection: close` from the client makes the
/// response carry `close` and ends the connection, and a request pipelined after it is not
/// answered (§9.6).
#[test]
fn rfc9112_9_6_connection_close_is_honoured() {
    let gw = gateway();
    let mut c = gw.connect();
    for _ in 0..3 {
        let r = c.get("/-/healthy").unwrap();
        assert_eq!(r.status, 200);
        assert!(!r.closes(), "{r:?}");
    }
    for conn in ["close", "Close", "keep-alive, close", "TE, close"] {
        let mut c = gw.connect();
        let mut raw = build_request("GET", "/-/healthy", &[("Connection", conn)], b"");
        raw.extend_from_slice(OK);
        c.send(&raw).unwrap();
        let r = c.read_response(IO_TIMEOUT).unwrap();
        assert_eq!(r.status, 200);
        assert!(r.closes(), "Connection: {conn}: {r:?}");
        assert!(c.wait_closed(IO_TIMEOUT), "Connection: {conn}");
        assert!(c.buffered().is_empty(), "pipelined request answered");
    }
}

/// HTTP/1.0 closes after each response unless the client sent `Connection: keep-alive`,
/// which the response then confirms (§9.3, §C.2.2).
#[test]
fn rfc9112_9_3_http10_persistence() {
    let gw = gateway();
    let (mut c, r) = exchange(&gw, b"GET /-/healthy HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(r.closes(), "{r:?}");
    assert!(c.wait_closed(IO_TIMEOUT));
    let mut c = gw.connect();
    for _ in 0..3 {
        c.send(b"GET /-/healthy HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap();
        let r = c.read_response(IO_TIMEOUT).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("connection")
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("keep-alive"),
            "{r:?}"
        );
    }
    c.send(b"GET /-/healthy HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n")
        .unwrap();
    assert!(c.read_response(IO_TIMEOUT).unwrap().closes());
    assert!(c.wait_closed(IO_TIMEOUT));
}

/// Refusals are counted as `bad_request` (and the rest of the rejected reasons) so an
/// operator sees them.
#[test]
fn refusals_are_counted() {
    let gw = gateway();
    let before = gw.metrics().sum("pyrogate_rejected_total");
    refused(&gw, b"GET /-/healthy HTTP/1.1\r\n\r\n", 400);
    refused(&gw, b"GET /-/healthy HTTP/2.0\r\nHost: x\r\n\r\n", 505);
    let m = gw.metrics();
    assert_eq!(m.sum("pyrogate_rejected_total") - before, 2.0);
    assert!(
        m.get("pyrogate_rejected_total", &[("reason", "bad_request")])
            .is_some_and(|v| v >= 2.0)
    );
}
