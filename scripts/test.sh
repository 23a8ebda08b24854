#!/usr/bin/env bash
# The project's test command (README "Quick start"). On a fresh machine it first installs
# what the tests need — the real Pyroscope SDKs the client tests drive (pyroscope-io from
# PyPI, @pyroscope/nodejs from npm), Go with Google's pprof package, etcd, curl and systemd-analyze — then runs formatting, lints and
# every test of the workspace (integration tests start the real binaries on 127.0.0.1), and
# last the fresh-clone check (scripts/fresh-clone.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# --- set-up (idempotent) ---
if ! command -v systemd-analyze >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null) \
    || echo "test.sh: could not install systemd-analyze" >&2
fi
# Go and Google's pprof package check normalised profiles with a second, independent decoder
# (tests/go/pprofcheck); Debian packages them, so no Go module download is needed.
if { ! command -v go >/dev/null 2>&1 || [ ! -d /usr/share/gocode/src/github.com/google/pprof/profile ]; } \
   && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go golang-github-google-pprof-dev >/dev/null) \
    || echo "test.sh: could not install golang-go / golang-github-google-pprof-dev" >&2
fi
# etcd (Debian's etcd-server) for ring mode's membership tests (tests/ring.rs starts its own).
if ! command -v etcd >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null) \
    || echo "test.sh: could not install etcd-server" >&2
fi
# curl for the authentication and HTTP/2 tests (tests/auth.rs, tests/http2.rs), as an
# independent HTTP client (Debian's curl is built with nghttp2: --http2, --http2-prior-knowledge).
if ! command -v curl >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null) \
    || echo "test.sh: could not install curl" >&2
fi
if ! python3 -c 'import pyroscope' >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check pyroscope-io==1.4.0
fi
# grpcio: an independent gRPC client over HTTP/2 cleartext (tests/http2.rs).
if ! python3 -c 'import grpc' >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check grpcio==1.85.3
fi
# opentelemetry-proto: an independent encoder of OTLP profiles (tests/otlp_python.rs). 1.45.2
# is generated from opentelemetry-proto v1.10.0, the layout Pyroscope 2.1 reads (pip 1.40–1.42
# carry v1.9.0, whose Sample field numbers differ; docs/otlp.md §4).
if ! python3 -c 'import importlib.metadata as m, sys; sys.exit(m.version("opentelemetry-proto") != "1.45.2")' >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check opentelemetry-proto==1.45.2
fi
if [ ! -d tests/clients/node/node_modules/@pyroscope/nodejs ]; then
  (cd tests/clients/node && npm install --no-audit --no-fund --loglevel=error)
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# --- checks and tests ---
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --release --bins
cargo test --workspace --release
# The repository stands on its own: the demo and the unit tests on a clone of the committed
# tree, with no ../shared next to it.
scripts/fresh-clone.sh
