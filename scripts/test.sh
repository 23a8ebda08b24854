#!/usr/bin/env bash
# The project's test command (README "Tests"): formatting, lints, then every test of the
# workspace, unit and integration (integration tests start the real binaries on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --release --bins
cargo test --workspace --release
