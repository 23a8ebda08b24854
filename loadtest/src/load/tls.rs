//! The client side of an `https://` target: rustls (ring provider, TLS 1.2 and 1.3, ALPN
//! `http/1.1`, as the gateway's `[server.tls]`) through `monoio-rustls` on the load thread's
//! runtime. The configuration is built once per run; every connection of the run gets its
//! own copy with its own session cache ([`TlsClient::for_connection`]), like an agent process
//! with one connection: when it reconnects it resumes its previous session (a TLS 1.3 ticket
//! from its last handshake) unless `--tls-no-resume` is given. (One cache shared by many
//! connections would cap resumption: rustls keeps at most 8 tickets per server, and each
//! resumption uses one.)
//!
//! Trust: the CA of `--tls-ca` (PEM, one or more certificates), or none with
//! `--tls-insecure`, where the server's certificate is not checked but its handshake
//! signature still is (so the client does the same cryptography either way).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use monoio::net::TcpStream;
use monoio_rustls::{ClientTlsStream, TlsConnector};
use rustls::ClientConfig;
use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, HandshakeKind, SignatureScheme};

use super::client::{ClientError, Conn, tcp_connect, with_deadline};

/// Servers a connection's session cache remembers (it only ever talks to one).
const CONNECTION_SESSIONS: usize = 4;

/// The client stream of a TLS connection.
pub type TlsStream = ClientTlsStream<TcpStream>;

/// `run`'s TLS flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Trust the certificates of this PEM file (`--tls-ca`).
    pub ca: Option<PathBuf>,
    /// Do not verify the server's certificate (`--tls-insecure`).
    pub insecure: bool,
    /// Server name to send (SNI) and verify (`--tls-server-name`; default: the target's
    /// host).
    pub server_name: Option<String>,
    /// No session resumption: every connection makes a full handshake (`--tls-no-resume`).
    pub no_resume: bool,
}

impl TlsOptions {
    /// Whether any TLS flag was given (they need an `https://` target).
    pub fn any(&self) -> bool {
        self.ca.is_some() || self.insecure || self.server_name.is_some() || self.no_resume
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.ca.is_some() && self.insecure {
            return Err("give --tls-ca or --tls-insecure, not both".into());
        }
        if let Some(n) = &self.server_name {
            ServerName::try_from(n.as_str())
                .map_err(|e| format!("--tls-server-name {n:?}: {e}"))?;
        }
        Ok(())
    }

    /// How the server is verified, for reports.
    pub fn trust(&self) -> String {
        match (&self.ca, self.insecure) {
            (Some(ca), _) => format!("CA {}", ca.display()),
            (None, true) => "insecure (certificate not verified)".into(),
            (None, false) => "none".into(),
        }
    }
}

/// A built client configuration and the name to connect with; cheap to clone.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    connector: TlsConnector,
    name: ServerName<'static>,
    resume: bool,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("name", &self.name)
            .finish()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client configuration of `opts` (also used by the benchmark's blocking
/// control-plane client).
pub fn client_config(opts: &TlsOptions) -> Result<Arc<rustls::ClientConfig>, String> {
    opts.validate()?;
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(|e| format!("TLS: {e}"))?;
    let mut config = match (&opts.ca, opts.insecure) {
        (Some(path), _) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<_, _>>())
                .map_err(|e| format!("--tls-ca {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "--tls-ca {}: no certificate in the file",
                    path.display()
                ));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| format!("--tls-ca {}: {e}", path.display()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        (None, true) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(
                provider.signature_verification_algorithms,
            )))
            .with_no_client_auth(),
        (None, false) => {
            return Err(
                "an https:// target needs --tls-ca FILE (the CA to trust) or --tls-insecure".into(),
            );
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if opts.no_resume {
        config.resumption = Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// The server name for `host` (a target's authority without the port; IPv6 in brackets),
/// unless `--tls-server-name` overrides it.
pub fn server_name(opts: &TlsOptions, host: &str) -> Result<ServerName<'static>, String> {
    let name = match &opts.server_name {
        Some(n) => n.clone(),
        None => host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned(),
    };
    ServerName::try_from(name.clone()).map_err(|e| format!("TLS server name {name:?}: {e}"))
}

impl TlsClient {
    pub fn new(opts: &TlsOptions, host: &str) -> Result<Self, String> {
        let config = client_config(opts)?;
        Ok(Self {
            connector: TlsConnector::from(config.clone()),
            config,
            name: server_name(opts, host)?,
            resume: !opts.no_resume,
        })
    }

    /// The client of one connection: the same configuration with a session cache of its own
    /// (none when resumption is off).
    pub fn for_connection(&self) -> Self {
        if !self.resume {
            return self.clone();
        }
        let mut c = ClientConfig::clone(&self.config);
        c.resumption = Resumption::in_memory_sessions(CONNECTION_SESSIONS);
        let config = Arc::new(c);
        Self {
            connector: TlsConnector::from(config.clone()),
            config,
            name: self.name.clone(),
            resume: true,
        }
    }

    /// TCP connect and TLS handshake, both under `deadline`.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        deadline: Instant,
    ) -> Result<Conn<TlsStream>, ClientError> {
        let tcp = tcp_connect(addr, deadline).await?;
        match with_deadline(deadline, self.connector.connect(self.name.clone(), tcp)).await {
            None => Err(ClientError::Timeout),
            Some(Err(e)) => Err(ClientError::Handshake(handshake_error(&e))),
            Some(Ok(s)) => Ok(Conn::new(s)),
        }
    }
}

/// Whether a finished connection's handshake resumed an earlier session.
pub fn resumed(stream: TlsStream) -> bool {
    let (_, session) = stream.into_parts();
    session.handshake_kind() == Some(HandshakeKind::Resumed)
}

/// A short, bounded description of a failed handshake for the report's error kinds.
fn handshake_error(e: &monoio_rustls::TlsError) -> String {
    let text = e.to_string();
    // rustls's messages are short; an I/O error's may carry an OS string. Bound it anyway:
    // the report keeps every distinct kind (up to a limit).
    let mut s: String = text.chars().take(120).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

/// `--tls-insecure`: any certificate, but the handshake signature is still verified with
/// the provider's algorithms.
#[derive(Debug)]
struct NoVerify(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let none = TlsOptions::default();
        assert!(!none.any());
        assert!(
            client_config(&none)
                .err()
                .is_some_and(|e| e.contains("--tls-insecure"))
        );
        let insecure = TlsOptions {
            insecure: true,
            ..TlsOptions::default()
        };
        let c = client_config(&insecure).expect("insecure config");
        assert_eq!(c.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let both = TlsOptions {
            insecure: true,
            ca: Some("/nonexistent".into()),
            ..TlsOptions::default()
        };
        assert!(both.validate().is_err());
        let missing = TlsOptions {
            ca: Some("/nonexistent/ca.pem".into()),
            ..TlsOptions::default()
        };
        assert!(
            client_config(&missing)
                .err()
                .is_some_and(|e| e.contains("/nonexistent/ca.pem"))
        );
        assert!(
            TlsOptions {
                server_name: Some("bad name!".into()),
                ..TlsOptions::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn server_names() {
        let o = TlsOptions::default();
        let ip = server_name(&o, "127.0.0.1").expect("ip");
        assert!(matches!(ip, ServerName::IpAddress(_)));
        let v6 = server_name(&o, "[::1]").expect("v6");
        assert!(matches!(v6, ServerName::IpAddress(_)));
        let dns = server_name(&o, "localhost").expect("dns");
        assert_eq!(dns, ServerName::try_from("localhost").expect("name"));
        let over = TlsOptions {
            server_name: Some("gw.example".into()),
            ..TlsOptions::default()
        };
        assert_eq!(
            server_name(&over, "127.0.0.1").expect("override"),
            ServerName::try_from("gw.example").expect("name")
        );
    }
}
