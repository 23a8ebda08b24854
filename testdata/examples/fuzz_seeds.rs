//! Writes the fuzz targets' seed inputs, made from the project's generated requests:
//! `cargo run -p pyrogate-testdata --example fuzz_seeds -- fuzz/seeds`.
//!
//! Each seed starts with its target's control byte, as described at the top of each target
//! in `fuzz/fuzz_targets/`.

use std::path::Path;

use pyrogate_testdata::corpus::{self, FIXED_NOW_S};
use pyrogate_testdata::gz::gzip;
use pyrogate_testdata::pprof::Kind;
use pyrogate_testdata::{push, sdk};

fn write(dir: &Path, target: &str, name: &str, control: u8, data: &[u8]) -> std::io::Result<()> {
    let d = dir.join(target);
    std::fs::create_dir_all(&d)?;
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(control);
    bytes.extend_from_slice(data);
    std::fs::write(d.join(name), bytes)
}

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: fuzz_seeds DIR");
        std::process::exit(2);
    };
    let dir = Path::new(&dir);
    // Push decode: byte 0 = mode (bit 0 JSON, bit 1 gzip body, bit 2 gRPC-Web, bit 3
    // grpc-encoding gzip).
    let series = vec![push::python_series(1, "seed.app")];
    let proto = push::encode(&series);
    let json = push::json(&series);
    write(dir, "push_decode", "proto", 0, &proto)?;
    write(dir, "push_decode", "proto_gzip", 2, &gzip(&proto))?;
    write(dir, "push_decode", "json", 1, &json)?;
    write(
        dir,
        "push_decode",
        "grpc_web",
        4,
        &push::grpc_frame(0, &proto),
    )?;
    write(
        dir,
        "push_decode",
        "grpc_web_gzip",
        4 | 8,
        &push::grpc_frame(1, &gzip(&proto)),
    )?;
    // pprof: byte 0 = mode (bit 0 normalise, bit 1 tight limits); generated profiles of
    // every kind, plain and gzip'd, and one of each broken kind.
    for (i, kind) in Kind::ALL.into_iter().enumerate() {
        let spec = pyrogate_testdata::pprof::Spec::new(i as u64, kind)
            .samples(30)
            .functions(30);
        write(dir, "pprof", &format!("{kind:?}_plain"), 1, &spec.plain())?;
        write(dir, "pprof", &format!("{kind:?}_gzip"), 3, &spec.gzip())?;
    }
    for b in pyrogate_testdata::invalid::all(31, 6) {
        let name = format!("{b:?}").replace(['(', ')'], "_");
        let bytes = pyrogate_testdata::invalid::profile(b, 1, pyrogate_testdata::pprof::TIME_NANOS);
        write(dir, "pprof", &name, 1, &bytes)?;
    }
    // HTTP head: byte 0 = read step; the head of an agent's request (body cut off).
    let head = |r: &sdk::Request| {
        let bytes = r.render("127.0.0.1:4040");
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(bytes.len(), |i| i + 4);
        bytes[..end].to_vec()
    };
    write(
        dir,
        "http_head",
        "python_push",
        64,
        &head(&sdk::python_push(1)),
    )?;
    write(
        dir,
        "http_head",
        "node_ingest",
        17,
        &head(&sdk::node_ingest(1, FIXED_NOW_S, Kind::Wall)),
    )?;
    write(
        dir,
        "http_head",
        "java_jfr_chunked",
        5,
        &head(&sdk::java_jfr(1, FIXED_NOW_S, 4096)),
    )?;
    // Label sets: the `name` of every generated /ingest request (no control byte).
    let d = dir.join("labelset");
    std::fs::create_dir_all(&d)?;
    for case in corpus::every_route_and_format(1, FIXED_NOW_S) {
        let Some(q) = case.request.query() else {
            continue;
        };
        let Some(name) = q.split('&').find_map(|kv| kv.strip_prefix("name=")) else {
            continue;
        };
        std::fs::write(d.join(case.name()), unescape(name))?;
    }
    // Queries: the raw query of every generated /ingest request (no control byte).
    // Multipart: byte 0 = boundary length, then the boundary and the body.
    let dq = dir.join("query");
    std::fs::create_dir_all(&dq)?;
    for case in corpus::every_route_and_format(1, FIXED_NOW_S) {
        if let Some(q) = case.request.query() {
            std::fs::write(dq.join(case.name()), q)?;
        }
        let boundary = case
            .request
            .header("content-type")
            .and_then(|ct| ct.split("boundary=").nth(1))
            .map(|b| b.trim_matches('"').to_owned());
        if let Some(b) = boundary.filter(|b| !b.is_empty() && b.len() <= 70) {
            let mut data = b.clone().into_bytes();
            data.extend_from_slice(&case.request.body);
            write(dir, "multipart", case.name(), b.len() as u8, &data)?;
        }
    }
    // X.509 identity: raw DER (no control byte), certificates shaped like mTLS agents'.
    let x509 = dir.join("x509_identity");
    std::fs::create_dir_all(&x509)?;
    for (name, der) in certificates().map_err(std::io::Error::other)? {
        std::fs::write(x509.join(name), der)?;
    }
    Ok(())
}

/// Deterministic certificates: a fixed Ed25519 key (Ed25519 signatures are deterministic),
/// fixed serials, rcgen's fixed default validity.
fn certificates() -> Result<Vec<(&'static str, Vec<u8>)>, rcgen::Error> {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType, SerialNumber};
    // PKCS#8 v1 wrapping of the Ed25519 seed 0x01 0x02 … 0x20.
    let mut pkcs8 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    pkcs8.extend(1..=32u8);
    let key = KeyPair::try_from(pkcs8.as_slice())?;
    let make = |serial: u64, dn: &[(DnType, &str)], sans: Vec<SanType>| {
        let mut p = CertificateParams::default();
        p.serial_number = Some(SerialNumber::from(serial));
        p.distinguished_name = DistinguishedName::new();
        for (t, v) in dn {
            p.distinguished_name.push(t.clone(), *v);
        }
        p.subject_alt_names = sans;
        p.self_signed(&key).map(|c| c.der().to_vec())
    };
    Ok(vec![
        (
            "agent_subject",
            make(
                1,
                &[
                    (DnType::CountryName, "DE"),
                    (DnType::OrganizationName, "Team A, Inc."),
                    (DnType::OrganizationalUnitName, "ops"),
                    (DnType::CommonName, "agent-1"),
                ],
                vec![],
            )?,
        ),
        (
            "spiffe_san",
            make(
                2,
                &[(DnType::CommonName, "workload")],
                vec![
                    SanType::URI("spiffe://prod/ns/default/sa/agent".try_into()?),
                    SanType::DnsName("agent.prod.svc".try_into()?),
                    SanType::Rfc822Name("ops@example.com".try_into()?),
                    SanType::IpAddress([127, 0, 0, 1].into()),
                    SanType::IpAddress(std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)),
                ],
            )?,
        ),
        (
            "empty_subject",
            make(3, &[], vec![SanType::DnsName("localhost".try_into()?)])?,
        ),
    ])
}

/// `%XX` and `+` decoding of a query value (enough for the generated names).
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}
