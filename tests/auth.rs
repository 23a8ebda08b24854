//! `[server.auth]` (docs/security.md §2) through the real binary: `curl` and the real SDKs
//! (pyroscope-io with `basic_auth_*`, @pyroscope/nodejs with `authToken`) against bcrypt and
//! argon2 hashes; the credential's tenant is stamped on what reaches the sink; refusals are
//! 401 (Connect `unauthenticated` on Push) and counted; SIGHUP re-reads the files.

mod common;
mod sinks;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Gateway, poll_until, run_sdk, write_temp};
use sinks::{Sink, header};

const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");
const WAIT: Duration = Duration::from_secs(20);

fn argon2(secret: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(b"pyrogate-test-salt").expect("salt");
    argon2::Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .expect("argon2")
        .to_string()
}

fn bcrypt(secret: &str) -> String {
    bcrypt::hash(secret, 4).expect("bcrypt")
}

/// Credentials: alice (bcrypt) → team-a, bob (argon2) → bob; token tok-acme (argon2) →
/// acme, tok-beta (bcrypt) → beta.
fn files() -> (std::path::PathBuf, std::path::PathBuf) {
    let users = write_temp(
        "users",
        &format!(
            "# user:hash[:tenant]\nalice:{}:team-a\nbob:{}\n",
            bcrypt("alice-pw"),
            argon2("bob-pw")
        ),
    );
    let tokens = write_temp(
        "tokens",
        &format!("acme {}\nbeta {}\n", argon2("tok-acme"), bcrypt("tok-beta")),
    );
    (users, tokens)
}

fn config(sink: &Sink, users: &Path, tokens: &Path, client_tenant: &str) -> std::path::PathBuf {
    write_temp(
        "auth.toml",
        &format!(
            "[server.auth]\nusers_file = \"{}\"\ntokens_file = \"{}\"\nclient_tenant = \"{client_tenant}\"\n\n[[endpoint]]\nurl = \"{}\"\n",
            users.display(),
            tokens.display(),
            sink.url()
        ),
    )
}

/// `curl` a request; returns (status, headers+body).
fn curl(url: &str, args: &[&str]) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "--max-time", "10"]);
    if !args.iter().any(|a| a.starts_with("Content-Type")) {
        // What the SDKs send with a folded body.
        cmd.args(["-H", "Content-Type: binary/octet-stream"]);
    }
    let out = cmd
        .args(args)
        .arg(url)
        .output()
        .expect("curl (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn ingest_url(g: &Gateway) -> String {
    format!(
        "http://{}/ingest?name=authtest.cpu%7Benv%3Dci%7D&format=folded",
        g.addr
    )
}

fn push_url(g: &Gateway) -> String {
    format!("http://{}/push.v1.PusherService/Push", g.addr)
}

#[test]
fn credentials_are_required_checked_and_their_tenant_stamped() {
    let sink = Sink::start(&[]);
    let (users, tokens) = files();
    let cfg = config(&sink, &users, &tokens, "replace");
    let g = Gateway::start(&["--config", cfg.to_str().expect("utf-8")]);
    let body = "foo;bar 1\n";
    // No credentials, a wrong password, an unknown user, a wrong token: 401, plain on /ingest.
    for args in [
        vec![],
        vec!["-u", "alice:wrong"],
        vec!["-u", "mallory:alice-pw"],
        vec!["-H", "Authorization: Bearer tok-nope"],
        vec!["-H", "Authorization: Digest x"],
    ] {
        let mut a: Vec<&str> = args.clone();
        a.extend(["--data-binary", body]);
        let (status, text) = curl(&ingest_url(&g), &a);
        assert_eq!(status, 401, "{args:?}: {text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("www-authenticate: basic realm=\"pyrogate\""),
            "{text}"
        );
    }
    // Basic (bcrypt) with a client tenant that is replaced; bearer (argon2).
    let (status, text) = curl(
        &ingest_url(&g),
        &[
            "-u",
            "alice:alice-pw",
            "-H",
            "X-Scope-OrgID: evil",
            "--data-binary",
            body,
        ],
    );
    assert_eq!(status, 200, "{text}");
    let (status, text) = curl(
        &ingest_url(&g),
        &[
            "-H",
            "Authorization: Bearer tok-acme",
            "--data-binary",
            body,
        ],
    );
    assert_eq!(status, 200, "{text}");
    let (status, text) = curl(
        &ingest_url(&g),
        &["-u", "bob:bob-pw", "--data-binary", body],
    );
    assert_eq!(status, 200, "{text}");
    let recs = sink.wait_records(3, WAIT);
    let tenants: Vec<Vec<&str>> = recs.iter().map(|r| header(r, "x-scope-orgid")).collect();
    assert_eq!(tenants, vec![vec!["team-a"], vec!["acme"], vec!["bob"]]);
    // Push: Connect `unauthenticated` JSON without credentials, accepted with a token.
    let push = common::push_proto();
    let push_path = common::temp_path("push.bin");
    std::fs::write(&push_path, &push).expect("write push");
    let data = format!("@{}", push_path.display());
    let (status, text) = curl(
        &push_url(&g),
        &[
            "-H",
            "Content-Type: application/proto",
            "--data-binary",
            &data,
        ],
    );
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("\"code\":\"unauthenticated\""), "{text}");
    let (status, text) = curl(
        &push_url(&g),
        &[
            "-H",
            "Content-Type: application/proto",
            "-H",
            "Authorization: Bearer tok-beta",
            "--data-binary",
            &data,
        ],
    );
    assert_eq!(status, 200, "{text}");
    let recs = sink.wait_records(4, WAIT);
    assert_eq!(header(&recs[3], "x-scope-orgid"), vec!["beta"]);
    let m = g.metrics();
    assert_eq!(
        m.value("pyrogate_auth_failures_total", &[("reason", "missing")]),
        2.0
    );
    assert_eq!(
        m.value("pyrogate_auth_failures_total", &[("reason", "invalid")]),
        3.0
    );
    assert_eq!(
        m.value("pyrogate_auth_failures_total", &[("reason", "malformed")]),
        1.0
    );
    let refused: f64 = ["127.0.0.1"]
        .iter()
        .map(|ip| m.value("pyrogate_auth_failures_by_source_total", &[("source", ip)]))
        .sum();
    assert_eq!(refused, 6.0, "per-source counter");

    // SIGHUP re-reads the files: carol appears, alice's password changes.
    std::fs::write(
        &users,
        format!(
            "alice:{}:team-a\ncarol:{}:team-c\n",
            bcrypt("new-pw"),
            bcrypt("carol-pw")
        ),
    )
    .expect("rewrite users");
    g.signal(libc::SIGHUP);
    let reloaded = poll_until(WAIT, || {
        (curl(
            &ingest_url(&g),
            &["-u", "carol:carol-pw", "--data-binary", body],
        )
        .0 == 200)
            .then_some(())
    });
    assert!(reloaded.is_some(), "carol accepted after SIGHUP");
    assert_eq!(
        curl(
            &ingest_url(&g),
            &["-u", "alice:alice-pw", "--data-binary", body]
        )
        .0,
        401
    );
    assert_eq!(
        curl(
            &ingest_url(&g),
            &["-u", "alice:new-pw", "--data-binary", body]
        )
        .0,
        200
    );
}

#[test]
fn must_match_refuses_another_tenant() {
    let sink = Sink::start(&[]);
    let (users, tokens) = files();
    let cfg = config(&sink, &users, &tokens, "must_match");
    let g = Gateway::start(&["--config", cfg.to_str().expect("utf-8")]);
    let body = "foo;bar 1\n";
    let (status, text) = curl(
        &ingest_url(&g),
        &[
            "-u",
            "alice:alice-pw",
            "-H",
            "X-Scope-OrgID: other",
            "--data-binary",
            body,
        ],
    );
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("does not match"), "{text}");
    for extra in [vec!["-H", "X-Scope-OrgID: team-a"], vec![]] {
        let mut a = vec!["-u", "alice:alice-pw"];
        a.extend(extra);
        a.extend(["--data-binary", body]);
        assert_eq!(curl(&ingest_url(&g), &a).0, 200);
    }
    let recs = sink.wait_records(2, WAIT);
    assert!(
        recs.iter()
            .all(|r| header(r, "x-scope-orgid") == vec!["team-a"])
    );
    assert_eq!(
        g.metrics().value(
            "pyrogate_auth_failures_total",
            &[("reason", "tenant_mismatch")]
        ),
        1.0
    );
}

#[test]
fn pyroscope_io_with_basic_auth() {
    let sink = Sink::start(&[]);
    let (users, tokens) = files();
    let cfg = config(&sink, &users, &tokens, "replace");
    let g = Gateway::start(&["--config", cfg.to_str().expect("utf-8")]);
    let url = format!("http://{}", g.addr);
    let out = run_sdk(
        "python3",
        &["python/client.py", &url, "5", ""],
        Path::new(CLIENTS),
        &[
            ("PYROGATE_TEST_BASIC_USER", "alice"),
            ("PYROGATE_TEST_BASIC_PASSWORD", "alice-pw"),
        ],
    );
    let recs = sink.wait_records(1, WAIT);
    assert!(
        recs.iter()
            .all(|r| r["status"] == 200 && header(r, "x-scope-orgid") == vec!["team-a"]),
        "{recs:?}\n{out}"
    );
    // The same SDK with a wrong password is refused, and nothing more arrives.
    let before = sink.records().len();
    run_sdk(
        "python3",
        &["python/client.py", &url, "3", ""],
        Path::new(CLIENTS),
        &[
            ("PYROGATE_TEST_BASIC_USER", "alice"),
            ("PYROGATE_TEST_BASIC_PASSWORD", "nope"),
        ],
    );
    assert_eq!(sink.records().len(), before);
    assert!(
        g.metrics()
            .value("pyrogate_auth_failures_total", &[("reason", "invalid")])
            >= 1.0
    );
}

#[test]
fn pyroscope_nodejs_with_an_auth_token() {
    let node_dir = Path::new(CLIENTS).join("node");
    assert!(
        node_dir.join("node_modules/@pyroscope/nodejs").exists(),
        "@pyroscope/nodejs is not installed; run scripts/test.sh"
    );
    let sink = Sink::start(&[]);
    let (users, tokens) = files();
    let cfg = config(&sink, &users, &tokens, "replace");
    let g = Gateway::start(&["--config", cfg.to_str().expect("utf-8")]);
    let url = format!("http://{}", g.addr);
    let out = run_sdk(
        "node",
        &["client.js", &url, "5"],
        &node_dir,
        &[("PYROGATE_TEST_AUTH_TOKEN", "tok-acme")],
    );
    let recs = sink.wait_records(1, WAIT);
    assert!(
        recs.iter()
            .all(|r| r["status"] == 200 && header(r, "x-scope-orgid") == vec!["acme"]),
        "{recs:?}\n{out}"
    );
}
