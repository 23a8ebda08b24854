#!/usr/bin/env bash
# Chaos soak of the real gateway (not run by CI; CI runs the 60-second variant in
# loadtest/tests/soak.rs). Builds the release binaries, then runs `pyrogate-load soak` for
# DURATION (default 10m): two gateways (ack all, ack durable with a spool) behind which two
# sinks flap, while clients disconnect mid-body, slowloris connections trickle, malformed
# and oversized requests arrive, floods exceed conn_limit and every 10 s a SIGHUP reloads.
# Exits non-zero when RSS or fds grow, an acknowledged profile is lost or a health check
# fails. Further arguments go to the soak (`pyrogate-load soak --help`), e.g.
#   scripts/soak.sh 10m --samples /tmp/soak.csv
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10m}"
shift || true
cargo build --release --workspace --bins
exec "${CARGO_TARGET_DIR:-target}/release/pyrogate-load" soak --duration "$duration" "$@"
