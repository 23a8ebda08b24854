//! `https://` endpoints: a TLS downstream (rustls, self-signed certificate made with rcgen)
//! trusted through `tls_config.ca_file`, refused when untrusted, accepted with
//! `insecure_skip_verify`, and verified against `server_name` instead of the URL host.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Gateway, poll_until, write_temp};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// One request a TLS server received: request target and body.
type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A blocking HTTPS server on 127.0.0.1 answering every request with 200.
struct TlsServer {
    addr: SocketAddr,
    seen: Seen,
    ca_pem: String,
}

impl TlsServer {
    fn start(names: &[&str]) -> TlsServer {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let ck = rcgen::generate_simple_self_signed(names).expect("certificate");
        let ca_pem = ck.cert.pem();
        let cert = CertificateDer::from(ck.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server config");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen: Seen = Arc::default();
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let config = config.clone();
                let seen = s2.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
                    let Ok(conn) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let tls = rustls::StreamOwned::new(conn, stream);
                    serve(tls, &seen);
                });
            }
        });
        TlsServer { addr, seen, ca_pem }
    }

    fn requests(&self) -> Vec<(String, Vec<u8>)> {
        self.seen.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

/// Keep-alive HTTP/1.1 with Content-Length bodies; ends when the client closes or a
/// handshake fails.
fn serve<S: Read + Write>(stream: S, seen: &Seen) {
    let mut r = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let target = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        if let Ok(mut g) = seen.lock() {
            g.push((target, body));
        }
        let w = r.get_mut();
        if w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .is_err()
            || w.flush().is_err()
        {
            return;
        }
    }
}

fn gateway(url: &str, tls: &str) -> Gateway {
    let cfg = format!(
        "[[endpoint]]\nurl = \"{url}\"\nmax_backoff_retries = 1\nremote_timeout = \"3s\"\n{tls}\n"
    );
    let path = write_temp("tls.toml", &cfg);
    Gateway::start(&["--config", path.to_str().unwrap_or_default()])
}

const INGEST: &str = "/ingest?name=tls.app.cpu&format=pprof";

#[test]
fn https_endpoint_trusted_via_ca_file() {
    let server = TlsServer::start(&["127.0.0.1", "localhost"]);
    let ca = write_temp("ca.pem", &server.ca_pem);
    let gw = gateway(
        &format!("https://127.0.0.1:{}/base", server.addr.port()),
        &format!("tls_config = {{ ca_file = \"{}\" }}", ca.display()),
    );
    let body = common::cpu_pprof_gz();
    for _ in 0..3 {
        let r = gw.request("POST", INGEST, &[], &body);
        assert_eq!(r.status, 200, "{}\n{}", r.body_str(), gw.stderr());
    }
    let seen = server.requests();
    assert_eq!(seen.len(), 3);
    assert!(seen[0].0.starts_with("/base/ingest?"), "{}", seen[0].0);
    assert!(
        seen.iter().all(|(_, b)| *b == body),
        "bodies intact over TLS"
    );
}

#[test]
fn untrusted_certificate_is_refused_unless_verification_is_off() {
    let server = TlsServer::start(&["127.0.0.1"]);
    let url = format!("https://127.0.0.1:{}", server.addr.port());
    let gw = gateway(&url, "");
    let r = gw.request("POST", INGEST, &[], b"x");
    assert_eq!(r.status, 500, "self-signed, not trusted: {}", r.body_str());
    assert!(server.requests().is_empty());
    let logged = poll_until(Duration::from_secs(5), || {
        gw.stderr().contains("tls handshake").then_some(())
    });
    assert!(logged.is_some(), "{}", gw.stderr());
    drop(gw);
    let gw = gateway(&url, "tls_config = { insecure_skip_verify = true }");
    assert!(
        gw.stderr().contains("insecure_skip_verify"),
        "warned at start-up"
    );
    let r = gw.request("POST", INGEST, &[], b"x");
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn server_name_overrides_the_verified_name() {
    let server = TlsServer::start(&["pyrogate.test"]);
    let ca = write_temp("ca.pem", &server.ca_pem);
    let url = format!("https://127.0.0.1:{}", server.addr.port());
    // The certificate names pyrogate.test, not 127.0.0.1: refused by default.
    let gw = gateway(
        &url,
        &format!("tls_config = {{ ca_file = \"{}\" }}", ca.display()),
    );
    assert_eq!(gw.request("POST", INGEST, &[], b"x").status, 500);
    drop(gw);
    let gw = gateway(
        &url,
        &format!(
            "tls_config = {{ ca_file = \"{}\", server_name = \"pyrogate.test\" }}",
            ca.display()
        ),
    );
    let r = gw.request("POST", INGEST, &[], b"x");
    assert_eq!(r.status, 200, "{}", r.body_str());
}

#[test]
fn bad_tls_files_are_config_errors() {
    let out = common::run(
        &[
            "--listen",
            "127.0.0.1:0",
            "--config",
            write_temp(
                "badtls.toml",
                "[[endpoint]]\nurl = \"https://127.0.0.1:1\"\ntls_config = { ca_file = \"/nonexistent/ca.pem\" }\n",
            )
            .to_str()
            .unwrap_or_default(),
        ],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("endpoint[0].tls_config"), "{err}");
}
