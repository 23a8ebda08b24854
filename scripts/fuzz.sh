#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600) on the stable toolchain:
# cargo-fuzz with RUSTC_BOOTSTRAP=1 and no sanitizer (`-s none`), coverage-guided.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Seeds come from the project's generators (fuzz/seeds, rewritten first by
# `cargo run -p pyrogate-testdata --example fuzz_seeds`); the grown corpus goes to
# fuzz/corpus/TARGET and is minimised into fuzz/corpus-min/TARGET at the end (commit that).
# A crash stops the run with the input in fuzz/artifacts/TARGET; turn it into a regression
# test (tests/parser_props.rs or the module's unit tests) once fixed.
# Prints one summary line per target: executions, exec/s, coverage (edges), features, corpus.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${1:-600}
shift || true
ALL=(http_head chunked labelset query push_decode multipart pprof spool_record x509_identity)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

cargo run -q --release -p pyrogate-testdata --example fuzz_seeds -- fuzz/seeds

# Largest input per target: big enough for a real request of its kind.
max_len() {
  case "$1" in
    pprof) echo 65536 ;;
    push_decode|multipart) echo 16384 ;;
    x509_identity) echo 8192 ;; # one client certificate (real ones are 0.5-2 KB); reaches every count bound
    *) echo 4096 ;;
  esac
}

LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pyrogate-fuzz.XXXXXX")
summary=()
cd fuzz
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "corpus-min/$t" "seeds/$t"
  log="$LOG_DIR/$t.log"
  echo "fuzz.sh: $t for ${SECONDS_PER_TARGET}s (log $log)" >&2
  if ! cargo fuzz run "$t" -s none -O "corpus/$t" "seeds/$t" -- \
      -max_total_time="$SECONDS_PER_TARGET" -max_len="$(max_len "$t")" -print_final_stats=1 >"$log" 2>&1; then
    echo "fuzz.sh: $t FAILED; see $log and fuzz/artifacts/$t" >&2
    tail -40 "$log" >&2
    exit 1
  fi
  done_line=$(grep -E "^#[0-9]+[[:space:]]+DONE" "$log" | tail -1 || true)
  execs=$(grep -E "stat::number_of_executed_units" "$log" | awk '{print $2}' | tail -1)
  rate=$(grep -E "stat::average_exec_per_sec" "$log" | awk '{print $2}' | tail -1)
  cov=$(sed -E -n 's/.*cov: ([0-9]+).*/\1/p' <<<"$done_line")
  ft=$(sed -E -n 's/.*ft: ([0-9]+).*/\1/p' <<<"$done_line")
  # Minimise the grown corpus into corpus-min (committed).
  rm -rf "corpus-min/$t" && mkdir -p "corpus-min/$t"
  cargo fuzz run "$t" -s none -O "corpus-min/$t" "corpus/$t" -- -merge=1 >/dev/null 2>&1 || true
  n=$(find "corpus-min/$t" -type f | wc -l)
  summary+=("$(printf '%-13s %12s execs %9s exec/s  cov %6s  ft %6s  corpus-min %5s files' "$t" "$execs" "$rate" "$cov" "$ft" "$n")")
done
echo
echo "fuzz.sh: ${SECONDS_PER_TARGET}s per target, no failure"
printf '%s\n' "${summary[@]}"
