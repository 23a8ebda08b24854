//! The configuration files the benchmark suites start pyrogate with. They live here, below
//! the suites and the runner, so that the runner can start any variant without importing
//! the suite that defines it.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// The validating gateway's configuration (the `distributor` suite). The per-tenant rate
/// limit stays on, set far above the load (Pyroscope's default of 4 MiB/s would refuse most
/// requests of a saturating load, and the suite measures the checks, not the refusals).
pub const DISTRIBUTOR: &str = "\
# pyrogate-load bench --suites distributor: the edge distributor on, as Pyroscope's distributor
[distributor]
validate = true
normalize = true
multitenancy_enabled = false

[limits]
ingestion_rate_mb = 1000000
ingestion_burst_size_mb = 1000000
";

const DISTRIBUTOR_FILE: &str = "distributor.toml";

/// Tokens per ring member (dskit's ingester default, `-ingester.num-tokens = 128`).
pub const RING_TOKENS: usize = 128;

/// Writes [`DISTRIBUTOR`] to `dir` (every time: cheap, and a removed file cannot break a
/// run).
pub fn write_distributor(dir: &Path) -> Result<PathBuf, String> {
    write(&dir.join(DISTRIBUTOR_FILE), DISTRIBUTOR)
}

/// The ring configuration of the `ring` suite: every URL a static member (`m0`, `m1`, …,
/// [`RING_TOKENS`] tokens derived from the id), replication factor `rf`.
pub fn ring(rf: usize, urls: &[String]) -> String {
    use std::fmt::Write as _;
    let mut s = format!(
        "# pyrogate-load bench --suites ring: ring mode over the sinks, RF {rf}\n\
         [forward]\nmode = \"ring\"\n\n[ring]\nreplication_factor = {rf}\n"
    );
    for (i, u) in urls.iter().enumerate() {
        let _ = write!(
            s,
            "\n[[ring.member]]\nid = \"m{i}\"\nurl = \"{u}\"\ntokens_count = {RING_TOKENS}\n"
        );
    }
    s
}

/// Writes [`ring`] to `dir`.
pub fn write_ring(dir: &Path, rf: usize, urls: &[String]) -> Result<PathBuf, String> {
    write(&dir.join(format!("ring-rf{rf}.toml")), &ring(rf, urls))
}

fn write(path: &Path, text: &str) -> Result<PathBuf, String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path.to_owned())
}

/// How a gateway of the `durable` suite answers its clients (`forward.ack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "ack", rename_all = "lowercase")]
pub enum Ack {
    /// After every destination accepted (the default).
    All,
    /// Once the request is queued in memory (`--ack enqueue`).
    Enqueue,
    /// After the group commit of the spool's write-ahead log ([`durable`]).
    Durable { fsync: Fsync, io: SpoolIo },
}

/// `spool.fsync` of the benchmarked spools (`never` is not benchmarked: it is `enqueue`
/// plus a write to the page cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    Batch,
    Always,
}

/// `spool.io`: the worker's io_uring or a plain thread per log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpoolIo {
    Uring,
    Thread,
}

impl Fsync {
    pub fn name(self) -> &'static str {
        match self {
            Fsync::Batch => "batch",
            Fsync::Always => "always",
        }
    }
}

impl SpoolIo {
    pub fn name(self) -> &'static str {
        match self {
            SpoolIo::Uring => "uring",
            SpoolIo::Thread => "thread",
        }
    }
}

impl Ack {
    /// `ack all`, `ack enqueue`, `durable batch io=uring`, …
    pub fn label(self) -> String {
        match self {
            Ack::All => "ack all".into(),
            Ack::Enqueue => "ack enqueue".into(),
            Ack::Durable { fsync, io } => format!("durable {} io={}", fsync.name(), io.name()),
        }
    }

    /// Whether the client's 200 comes before the destinations have the request.
    pub fn answers_before_delivery(self) -> bool {
        !matches!(self, Ack::All)
    }

    /// The gateway's flags for this policy; `scratch` is a fresh directory of this run
    /// (the spool and its configuration file go there).
    pub fn flags(self, scratch: Option<&Path>) -> Result<Vec<String>, String> {
        match self {
            Ack::All => Ok(Vec::new()),
            Ack::Enqueue => Ok(vec!["--ack".into(), "enqueue".into()]),
            Ack::Durable { fsync, io } => {
                let dir = scratch.ok_or("a durable gateway needs a scratch directory")?;
                let file = write_durable(dir, fsync, io)?;
                Ok(vec!["--config".into(), file.display().to_string()])
            }
        }
    }
}

/// Where [`write_durable`] puts the spool, inside the run's scratch directory.
pub const SPOOL_SUBDIR: &str = "spool";

/// The `durable` suite's configuration: `ack = "durable"` with the spool in `spool_dir`,
/// `fsync` and `io` as given, every other spool setting at its default (`fsync_interval =
/// 5ms`, 64 MiB segments, 10 GiB per destination).
pub fn durable(spool_dir: &Path, fsync: Fsync, io: SpoolIo) -> String {
    format!(
        "# pyrogate-load bench --suites durable: answer after the spool's group commit\n\
         [forward]\nack = \"durable\"\n\n[spool]\ndir = \"{}\"\nfsync = \"{}\"\nio = \"{}\"\n",
        toml_escape(&spool_dir.display().to_string()),
        fsync.name(),
        io.name()
    )
}

/// Writes [`durable`] to `scratch/durable.toml`, the spool in `scratch/`[`SPOOL_SUBDIR`].
pub fn write_durable(scratch: &Path, fsync: Fsync, io: SpoolIo) -> Result<PathBuf, String> {
    let text = durable(&scratch.join(SPOOL_SUBDIR), fsync, io);
    write(&scratch.join("durable.toml"), &text)
}

/// The `tls` suite's files, in one directory: a CA, a server certificate it signed, the
/// server's key, and the gateway configuration naming them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub config: PathBuf,
}

/// The name the server certificate is issued to (and the load verifies).
pub const TLS_SERVER_NAME: &str = "localhost";

/// `[server.tls]` with the certificate and key files, everything else at its default
/// (TLS 1.2–1.3, no client certificates, rustls's cipher suites, resumption tickets on).
pub fn tls(cert: &Path, key: &Path) -> String {
    format!(
        "# pyrogate-load bench --suites tls: TLS on the listener\n\
         [server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        toml_escape(&cert.display().to_string()),
        toml_escape(&key.display().to_string())
    )
}

/// Makes the [`TlsFiles`] in `dir/tls/` once (later calls return the same files): a CA and
/// a server certificate for [`TLS_SERVER_NAME`] and 127.0.0.1 signed by it, both ECDSA P-256
/// (rcgen's default; the key type a modern deployment would pick, and the cheaper one to
/// sign handshakes with: an RSA 2048 key costs the server several times more per full
/// handshake).
pub fn tls_files(dir: &Path) -> Result<TlsFiles, String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let d = dir.join("tls");
    let files = TlsFiles {
        ca: d.join("ca.pem"),
        cert: d.join("server-cert.pem"),
        key: d.join("server-key.pem"),
        config: d.join("tls.toml"),
    };
    if [&files.ca, &files.cert, &files.key, &files.config]
        .iter()
        .all(|p| p.is_file())
    {
        return Ok(files);
    }
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    let e = |e: rcgen::Error| format!("generating the benchmark's certificates: {e}");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "pyrogate-load bench CA");
    let ca_key = KeyPair::generate().map_err(e)?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(e)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let mut params =
        CertificateParams::new(vec![TLS_SERVER_NAME.to_owned(), "127.0.0.1".to_owned()])
            .map_err(e)?;
    params
        .distinguished_name
        .push(DnType::CommonName, TLS_SERVER_NAME);
    let key = KeyPair::generate().map_err(e)?;
    let cert = params.signed_by(&key, &issuer).map_err(e)?;
    write(&files.ca, &ca_cert.pem())?;
    write(&files.cert, &cert.pem())?;
    write(&files.key, &key.serialize_pem())?;
    write(&files.config, &tls(&files.cert, &files.key))?;
    Ok(files)
}

/// The inside of a TOML basic string.
fn toml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}
