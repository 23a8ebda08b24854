//! `[server.tls]`: TLS on the listener, with the attribute names of Alloy's `http.tls` block
//! (which are those of the Prometheus exporter-toolkit's `tls_server_config`), and its error
//! messages where it has them (docs/security.md §1).
//!
//! The files are read and the rustls server configuration is built here, at load time: a
//! missing file, a key that does not match its certificate or an unknown cipher fails
//! `--check-config`, the start, or a reload (which then keeps the running certificates).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme, SupportedCipherSuite,
};
use serde::Deserialize;

use super::ConfigError;

/// The only application protocol the listener speaks over TLS.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert_file: Option<PathBuf>,
    pub cert_pem: Option<String>,
    pub key_file: Option<PathBuf>,
    pub key_pem: Option<String>,
    pub client_ca_file: Option<PathBuf>,
    pub client_ca: Option<String>,
    pub client_auth_type: Option<String>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub cipher_suites: Option<Vec<String>>,
}

/// Go's `tls.ClientAuthType`, by the names the exporter-toolkit accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    /// Asked for, not required, not verified.
    RequestClientCert,
    /// Required, not verified.
    RequireAnyClientCert,
    /// Verified against the client CAs when sent.
    VerifyClientCertIfGiven,
    /// Required and verified.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    /// # Errors
    /// An unknown name, with the exporter-toolkit's message.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "" | "NoClientCert" => Self::NoClientCert,
            "RequestClientCert" => Self::RequestClientCert,
            // The exporter-toolkit keeps the old name as an alias.
            "RequireAnyClientCert" | "RequireClientCert" => Self::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => Self::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => Self::RequireAndVerifyClientCert,
            _ => return Err(format!("invalid ClientAuth: {s}")),
        })
    }

    /// Whether a presented certificate is checked against the client CAs: only then can
    /// it identify a client (a tenant).
    pub fn verifies(self) -> bool {
        matches!(
            self,
            Self::VerifyClientCertIfGiven | Self::RequireAndVerifyClientCert
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::NoClientCert => "NoClientCert",
            Self::RequestClientCert => "RequestClientCert",
            Self::RequireAnyClientCert => "RequireAnyClientCert",
            Self::VerifyClientCertIfGiven => "VerifyClientCertIfGiven",
            Self::RequireAndVerifyClientCert => "RequireAndVerifyClientCert",
        }
    }
}

/// A TLS protocol version rustls speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// # Errors
    /// An unknown name (the exporter-toolkit's message), or TLS 1.0/1.1, which rustls does
    /// not implement.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "TLS12" => Ok(Self::Tls12),
            "TLS13" => Ok(Self::Tls13),
            "TLS10" | "TLS11" => Err(format!(
                "{s} is not supported: only TLS12 and TLS13 are (rustls implements no older version)"
            )),
            _ => Err(format!("unknown TLS version: {s}")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Tls12 => "TLS12",
            Self::Tls13 => "TLS13",
        }
    }
}

/// The rustls server configuration, compared by identity: every load builds a new one.
#[derive(Clone)]
pub struct Acceptor(pub Arc<rustls::ServerConfig>);

impl PartialEq for Acceptor {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Acceptor")
    }
}

/// `[server.tls]`, resolved: files read, rustls configuration built.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerTls {
    pub client_auth: ClientAuth,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// TLS 1.2 suites allowed (Go names); empty = rustls's defaults. TLS 1.3 suites are not
    /// configurable, as in Go.
    pub cipher_suites: Vec<String>,
    /// Where the certificate came from, for messages and the summary.
    pub cert_source: String,
    pub acceptor: Acceptor,
}

/// Go's names of the TLS 1.2 suites rustls implements (Go also accepts the `_SHA256`-less
/// ChaCha20 aliases).
const TLS12_SUITES: [(&str, &str, rustls::CipherSuite); 8] = [
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    // TLS 1.3 names are accepted and change nothing (Go does not let them be chosen).
    (
        "TLS_AES_128_GCM_SHA256",
        "",
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_AES_256_GCM_SHA384",
        "",
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
    ),
];

/// Go suites rustls does not implement (CBC, RSA key exchange, 3DES, RC4): named in the error
/// so an operator knows the name is right but the suite unavailable.
fn go_only_suite(name: &str) -> bool {
    name.starts_with("TLS_") && (name.contains("_CBC_") || name.contains("_RC4_"))
        || name.starts_with("TLS_RSA_WITH_")
}

fn suite_by_name(name: &str) -> Result<rustls::CipherSuite, String> {
    if name == "TLS_CHACHA20_POLY1305_SHA256" {
        return Ok(rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
    }
    TLS12_SUITES
        .iter()
        .find(|(n, alias, _)| *n == name || (!alias.is_empty() && *alias == name))
        .map(|s| s.2)
        .ok_or_else(|| {
            if go_only_suite(name) {
                format!(
                    "cipher {name} is not available (rustls implements only AEAD suites with ECDHE)"
                )
            } else {
                format!("unknown cipher: {name}")
            }
        })
}

fn read_file(path: &Path, key: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| {
        ConfigError::new(
            format!("server.tls.{key}"),
            format!("failed to read {key} ({}): {e}", path.display()),
        )
    })
}

/// One of a `_file` / `_pem` pair.
fn pem_source(
    file: &Option<PathBuf>,
    pem: &Option<String>,
    file_key: &str,
    pem_key: &str,
) -> Result<Option<(Vec<u8>, String)>, ConfigError> {
    match (file, pem) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            format!("server.tls.{file_key}"),
            format!("{file_key} and {pem_key} are mutually exclusive"),
        )),
        (Some(p), None) => Ok(Some((read_file(p, file_key)?, p.display().to_string()))),
        (None, Some(text)) => Ok(Some((text.clone().into_bytes(), pem_key.to_owned()))),
        (None, None) => Ok(None),
    }
}

fn certs(pem: &[u8], key: &str, source: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| ConfigError::new(format!("server.tls.{key}"), format!("{source}: {e}")))?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            format!("server.tls.{key}"),
            format!("{source}: no PEM certificate in it"),
        ));
    }
    Ok(certs)
}

/// Resolves `[server.tls]`; `None` when the block is absent.
///
/// # Errors
/// Missing or unreadable files, a key that does not match, unknown names, contradictory
/// settings; each message names its key.
pub fn resolve(s: Option<&TlsSection>) -> Result<Option<ServerTls>, ConfigError> {
    let Some(s) = s else { return Ok(None) };
    let err = |k: &str, m: String| ConfigError::new(format!("server.tls.{k}"), m);
    let cert = pem_source(&s.cert_file, &s.cert_pem, "cert_file", "cert_pem")?;
    let key = pem_source(&s.key_file, &s.key_pem, "key_file", "key_pem")?;
    let ((cert_pem, cert_source), (key_pem, key_source)) = match (cert, key) {
        (Some(c), Some(k)) => (c, k),
        (None, _) => {
            return Err(err(
                "cert_file",
                "missing one of cert_file or cert_pem".into(),
            ));
        }
        (_, None) => return Err(err("key_file", "missing one of key_file or key_pem".into())),
    };
    let chain = certs(&cert_pem, "cert_file", &cert_source)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        err(
            "key_file",
            format!("{key_source}: no usable private key: {e}"),
        )
    })?;

    let client_auth = ClientAuth::parse(s.client_auth_type.as_deref().unwrap_or(""))
        .map_err(|m| err("client_auth_type", m))?;
    let ca = pem_source(
        &s.client_ca_file,
        &s.client_ca,
        "client_ca_file",
        "client_ca",
    )?;
    if ca.is_some() && client_auth == ClientAuth::NoClientCert {
        return Err(err(
            "client_ca_file",
            "client CA's have been configured without a Client Auth Policy".into(),
        ));
    }
    let min_version = TlsVersion::parse(s.min_version.as_deref().unwrap_or("TLS12"))
        .map_err(|m| err("min_version", m))?;
    let max_version = TlsVersion::parse(s.max_version.as_deref().unwrap_or("TLS13"))
        .map_err(|m| err("max_version", m))?;
    if min_version > max_version {
        return Err(err(
            "min_version",
            format!(
                "{} is above max_version {}",
                min_version.name(),
                max_version.name()
            ),
        ));
    }
    let names = s.cipher_suites.clone().unwrap_or_default();
    let chosen: Vec<rustls::CipherSuite> = names
        .iter()
        .map(|n| suite_by_name(n))
        .collect::<Result<_, _>>()
        .map_err(|m| err("cipher_suites", m))?;

    let mut provider = rustls::crypto::ring::default_provider();
    if !chosen.is_empty() {
        provider.cipher_suites.retain(|cs| match cs {
            SupportedCipherSuite::Tls13(_) => true,
            SupportedCipherSuite::Tls12(_) => chosen.contains(&cs.suite()),
        });
        let tls12_left = provider
            .cipher_suites
            .iter()
            .any(|cs| matches!(cs, SupportedCipherSuite::Tls12(_)));
        if !tls12_left && min_version == TlsVersion::Tls12 {
            return Err(err(
                "cipher_suites",
                "no TLS 1.2 suite left: name one, or set min_version = \"TLS13\"".into(),
            ));
        }
    }
    let provider = Arc::new(provider);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| *v >= min_version && *v <= max_version)
    .map(|(_, p)| p)
    .collect();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| err("min_version", e.to_string()))?;

    let builder = match (client_auth, ca) {
        (ClientAuth::NoClientCert, _) => builder.with_no_client_auth(),
        (ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert, _) => builder
            .with_client_cert_verifier(Arc::new(AnyClientCert {
                mandatory: client_auth == ClientAuth::RequireAnyClientCert,
                provider: provider.clone(),
            })),
        (_, None) => {
            return Err(err(
                "client_auth_type",
                format!(
                    "{} verifies client certificates: set client_ca_file or client_ca",
                    client_auth.name()
                ),
            ));
        }
        (_, Some((ca_pem, ca_source))) => {
            let mut roots = RootCertStore::empty();
            for c in certs(&ca_pem, "client_ca_file", &ca_source)? {
                roots
                    .add(c)
                    .map_err(|e| err("client_ca_file", format!("{ca_source}: {e}")))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = if client_auth == ClientAuth::VerifyClientCertIfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| err("client_ca_file", format!("{ca_source}: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| err("key_file", format!("failed to load X509KeyPair: {e}")))?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    // Stateless resumption tickets: a returning agent skips the full handshake, and no
    // session cache (with its lock) is shared between the workers.
    config.ticketer = rustls::crypto::ring::Ticketer::new()
        .map_err(|e| err("cert_file", format!("session tickets: {e}")))?;
    Ok(Some(ServerTls {
        client_auth,
        min_version,
        max_version,
        cipher_suites: names,
        cert_source,
        acceptor: Acceptor(Arc::new(config)),
    }))
}

/// `RequestClientCert` / `RequireAnyClientCert`: a certificate is asked for (and required by
/// the second) but its chain is not verified, as in Go. Its signature over the handshake is
/// still checked, so the client holds the key of what it presented. Such a certificate
/// identifies nobody: tenants are taken only from verified ones.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pki {
        cert: String,
        key: String,
    }

    fn self_signed() -> Pki {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        Pki {
            cert: ck.cert.pem(),
            key: ck.signing_key.serialize_pem(),
        }
    }

    fn section(p: &Pki) -> TlsSection {
        TlsSection {
            cert_pem: Some(p.cert.clone()),
            key_pem: Some(p.key.clone()),
            ..TlsSection::default()
        }
    }

    fn msg(s: &TlsSection) -> String {
        match resolve(Some(s)) {
            Ok(_) => "ok".into(),
            Err(e) => format!("{}: {}", e.key, e.msg),
        }
    }

    #[test]
    fn defaults_are_go_s() {
        let p = self_signed();
        let t = resolve(Some(&section(&p))).expect("ok").expect("on");
        assert_eq!(t.client_auth, ClientAuth::NoClientCert);
        assert_eq!(
            (t.min_version, t.max_version),
            (TlsVersion::Tls12, TlsVersion::Tls13)
        );
        assert_eq!(t.acceptor.0.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(resolve(None).expect("none").is_none());
    }

    #[test]
    fn exporter_toolkit_messages() {
        let p = self_signed();
        let mut s = section(&p);
        s.client_auth_type = Some("Sometimes".into());
        assert_eq!(
            msg(&s),
            "server.tls.client_auth_type: invalid ClientAuth: Sometimes"
        );
        let mut s = section(&p);
        s.client_ca = Some(p.cert.clone());
        assert_eq!(
            msg(&s),
            "server.tls.client_ca_file: client CA's have been configured without a Client Auth Policy"
        );
        let mut s = section(&p);
        s.min_version = Some("TLS14".into());
        assert_eq!(
            msg(&s),
            "server.tls.min_version: unknown TLS version: TLS14"
        );
        let mut s = section(&p);
        s.cipher_suites = Some(vec!["TLS_FOO".into()]);
        assert_eq!(msg(&s), "server.tls.cipher_suites: unknown cipher: TLS_FOO");
        let mut s = section(&p);
        s.cert_pem = None;
        assert_eq!(
            msg(&s),
            "server.tls.cert_file: missing one of cert_file or cert_pem"
        );
    }

    #[test]
    fn contradictions_are_refused() {
        let p = self_signed();
        let mut s = section(&p);
        s.cert_file = Some("/nonexistent".into());
        assert!(msg(&s).contains("mutually exclusive"), "{}", msg(&s));
        let mut s = section(&p);
        s.client_auth_type = Some("RequireAndVerifyClientCert".into());
        assert!(msg(&s).contains("set client_ca_file"), "{}", msg(&s));
        let mut s = section(&p);
        s.min_version = Some("TLS13".into());
        s.max_version = Some("TLS12".into());
        assert!(msg(&s).contains("above max_version"), "{}", msg(&s));
        let mut s = section(&p);
        s.min_version = Some("TLS10".into());
        assert!(msg(&s).contains("not supported"), "{}", msg(&s));
        let mut s = section(&p);
        s.cipher_suites = Some(vec!["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA".into()]);
        assert!(msg(&s).contains("not available"), "{}", msg(&s));
        // A key that is not the certificate's.
        let other = self_signed();
        let mut s = section(&p);
        s.key_pem = Some(other.key);
        assert!(msg(&s).contains("X509KeyPair"), "{}", msg(&s));
        let mut s = section(&p);
        s.cert_pem = Some("not pem".into());
        assert!(msg(&s).contains("no PEM certificate"), "{}", msg(&s));
        let mut s = section(&p);
        s.key_file = None;
        s.key_pem = None;
        assert!(msg(&s).contains("missing one of key_file"), "{}", msg(&s));
    }

    #[test]
    fn cipher_suites_restrict_tls12_only() {
        let p = self_signed();
        let mut s = section(&p);
        s.cipher_suites = Some(vec!["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305".into()]);
        let t = resolve(Some(&s)).expect("ok").expect("on");
        let suites: Vec<_> = t
            .acceptor
            .0
            .crypto_provider()
            .cipher_suites
            .iter()
            .map(|c| c.suite())
            .collect();
        assert!(
            suites.contains(&rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)
        );
        assert!(!suites.contains(&rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256));
        assert!(suites.contains(&rustls::CipherSuite::TLS13_AES_128_GCM_SHA256));
    }

    #[test]
    fn every_client_auth_type_builds() {
        let p = self_signed();
        for name in [
            "NoClientCert",
            "RequestClientCert",
            "RequireAnyClientCert",
            "RequireClientCert",
            "VerifyClientCertIfGiven",
            "RequireAndVerifyClientCert",
        ] {
            let mut s = section(&p);
            s.client_auth_type = Some(name.into());
            if name != "NoClientCert" {
                s.client_ca = Some(p.cert.clone());
            }
            assert_eq!(msg(&s), "ok", "{name}");
        }
    }
}
