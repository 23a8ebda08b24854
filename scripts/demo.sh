#!/usr/bin/env bash
# The README's main job: build the workspace, then run `pyrogate-load demo`, which starts two
# Pyroscope-compatible sinks and the freshly built `pyrogate` in front of them on loopback,
# sends the project's own agent-shaped requests (every route and format, several tenants;
# generated, see docs/testing.md) through it, prints what arrived (per route and tenant,
# decoded labels, the rebuilt `name`, checksums against the sent bodies), then a short
# throughput/latency run, and stops everything it started. Needs only cargo. Extra arguments go to the demo (`--help` lists them, e.g. `--fixtures DIR`,
# `--driver legacy`, `--duration 5s`). Exits non-zero if any check failed.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --bins
exec "${CARGO_TARGET_DIR:-target}/release/pyrogate-load" demo "$@"
