//! TLS for `https://` endpoints (rustls with the ring provider, via monoio-rustls).
//!
//! Trust: the Mozilla web PKI roots (webpki-roots) plus the endpoint's `ca_file`; optional
//! client certificate for mutual TLS; `server_name` overrides the name verified and sent as
//! SNI; `insecure_skip_verify` turns verification off (for tests and private networks only —
//! it is logged as a warning at start-up).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::{EndpointConfig, Scheme};

/// What a connection needs to start TLS with an endpoint.
#[derive(Clone)]
pub struct TlsClient {
    pub connector: monoio_rustls::TlsConnector,
    pub server_name: ServerName<'static>,
    /// The same configuration offering ALPN `h2`, for an endpoint with `http2 = true`.
    pub h2_config: Option<Arc<ClientConfig>>,
}

/// Builds the TLS client of an endpoint; `None` for `http://`.
pub fn client_for(cfg: &EndpointConfig) -> Result<Option<TlsClient>, String> {
    if cfg.url.scheme != Scheme::Https {
        return Ok(None);
    }
    let t = &cfg.tls;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?;
    let builder = if t.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(ca) = &t.ca_file {
            let certs = CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("tls_config.ca_file {}: {e}", ca.display()))?;
            let mut added = 0;
            for c in certs {
                let c = c.map_err(|e| format!("tls_config.ca_file {}: {e}", ca.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("tls_config.ca_file {}: {e}", ca.display()))?;
                added += 1;
            }
            if added == 0 {
                return Err(format!(
                    "tls_config.ca_file {}: no certificate",
                    ca.display()
                ));
            }
        }
        builder.with_root_certificates(roots)
    };
    let config = match (&t.cert_file, &t.key_file) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<_, _>>())
                .map_err(|e| format!("tls_config.cert_file {}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("tls_config.key_file {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("tls_config: client certificate: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    let name = t
        .server_name
        .clone()
        .unwrap_or_else(|| cfg.url.host.clone());
    let server_name =
        ServerName::try_from(name.clone()).map_err(|e| format!("tls server name {name:?}: {e}"))?;
    let h2_config = cfg.http2.then(|| {
        let mut h2 = config.clone();
        h2.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(h2)
    });
    Ok(Some(TlsClient {
        connector: monoio_rustls::TlsConnector::from(config),
        server_name,
        h2_config,
    }))
}

/// Accepts any certificate (still checks handshake signatures with the provider's algorithms).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
