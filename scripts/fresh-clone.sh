#!/usr/bin/env bash
# Proves that the repository stands on its own: clones the committed tree into an empty
# temporary directory (no ../shared next to it, no $PYROGATE_FIXTURES), then runs the README's
# main job there in its short form (`scripts/demo.sh --duration 1s`, which must end with
# `result: OK`) and the unit tests of every crate. scripts/test.sh runs it last; run it alone
# with `scripts/fresh-clone.sh`. Only committed work is tested: commit first.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pyrogate-fresh.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
git clone --quiet "$repo" "$tmp/clone"
cd "$tmp/clone"
unset PYROGATE_FIXTURES
if [ -e ../shared ]; then
  echo "fresh-clone: $tmp/shared exists; the clone would not be alone" >&2
  exit 1
fi
export CARGO_TARGET_DIR="$tmp/target"
echo "fresh-clone: $(git log -1 --format='%h %s' | cut -c1-72) in $tmp/clone"
scripts/demo.sh --duration 1s | tee "$tmp/demo.log"
grep -q '^result: OK' "$tmp/demo.log" || { echo "fresh-clone: the demo did not end with 'result: OK'" >&2; exit 1; }
cargo test --release --workspace --lib
echo "fresh-clone: OK (demo and unit tests pass on a clone without ../shared)"
