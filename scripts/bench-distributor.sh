#!/usr/bin/env bash
# Edge distributor throughput on one core: pyrogate's stage (benches/distributor.rs) against
# the same work in Go with github.com/google/pprof/profile (benches/go/pipeline/main.go), on
# the same three generated profiles (~10 KiB, ~100 KiB, ~1 MiB decoded, gzip'd as agents send
# them), side by side in one run:
#   full             inflate + decode + validate + normalise (drop zero samples, merge
#                    duplicates, drop unreferenced) + re-encode + gzip
#   decode_validate  inflate + decode + validate
# Both programs are pinned to the same CPU (taskset; Go with GOMAXPROCS=1), so MiB/s is per
# core. Rounds are interleaved (Rust then Go, Go then Rust, ...); the table shows medians over
# the rounds and the median of the per-round ratios, and the CPU steal of each round.
#
# Usage: scripts/bench-distributor.sh [--rounds N (1-5, default 3)] [--cpu N (default 0)]
#                                     [--seconds S (1-10, measured seconds per case, default 3)]
# About 1 minute per round plus the build; every step runs under `timeout`.
#
# Needs: cargo, go and Debian's golang-github-google-pprof-dev
# (apt-get install golang-go golang-github-google-pprof-dev), taskset (util-linux).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=3
CPU=0
SECS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --cpu) CPU=${2:?}; shift 2 ;;
    --seconds) SECS=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "bench-distributor.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$ROUNDS" =~ ^[1-5]$ ]] || { echo "--rounds must be 1..5" >&2; exit 2; }
[[ "$CPU" =~ ^[0-9]+$ ]] || { echo "--cpu must be a CPU number" >&2; exit 2; }
[[ "$SECS" =~ ^([1-9]|10)$ ]] || { echo "--seconds must be 1..10" >&2; exit 2; }

GOPATH_PPROF=/usr/share/gocode
for tool in cargo go taskset timeout; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench-distributor.sh: $tool not found" >&2; exit 1; }
done
if [ ! -d "$GOPATH_PPROF/src/github.com/google/pprof/profile" ]; then
  echo "bench-distributor.sh: github.com/google/pprof not found under $GOPATH_PPROF" >&2
  echo "  apt-get install golang-github-google-pprof-dev" >&2
  exit 1
fi
taskset -c "$CPU" true 2>/dev/null || { echo "bench-distributor.sh: cannot pin to CPU $CPU" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pyrogate-bench-distributor.XXXXXX")
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building (cargo bench --no-run, go build)..." >&2
build_log=$(timeout 900 cargo bench --bench distributor --no-run 2>&1) || {
  echo "$build_log" >&2
  exit 1
}
exe=$(sed -n 's/.*Executable benches\/distributor\.rs (\(.*\))$/\1/p' <<<"$build_log" | tail -n 1)
[ -n "$exe" ] && [ -x "$exe" ] || { echo "bench-distributor.sh: bench executable not found" >&2; exit 1; }
# Run copies, so that rebuilds during the run cannot mix binaries.
cp "$exe" "$TMP/distributor"
GO111MODULE=off GOPATH="$GOPATH_PPROF" timeout 300 go build -o "$TMP/pipeline" ./benches/go/pipeline

PYROGATE_BENCH_DUMP="$TMP/inputs" timeout 120 "$TMP/distributor" --bench --list >/dev/null 2>"$TMP/dump.log" || {
  cat "$TMP/dump.log" >&2
  exit 1
}
LABELS=$(awk 'NR > 1 { print $1 }' "$TMP/inputs/manifest.tsv")
decoded_of() { awk -v l="$1" '$1 == l { print $2 }' "$TMP/inputs/manifest.tsv"; }

# /proc/stat: "steal total" jiffies of all CPUs.
cpu_jiffies() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print $9, t; exit }' /proc/stat; }
steal_pct() { # before-steal before-total after-steal after-total
  awk -v s0="$1" -v t0="$2" -v s1="$3" -v t1="$4" 'BEGIN { d = t1 - t0; printf "%.1f", (d > 0 ? (s1 - s0) * 100 / d : 0) }'
}

RESULTS="$TMP/results.tsv" # round impl variant label MiB/s
: >"$RESULTS"

run_rust() {
  local r=$1
  CRITERION_HOME="$TMP/criterion-$r" timeout 600 taskset -c "$CPU" "$TMP/distributor" --bench \
    --warm-up-time 1 --measurement-time "$SECS" --noplot 'distributor_pipeline/' \
    >"$TMP/rust-$r.log" 2>&1 || { cat "$TMP/rust-$r.log" >&2; return 1; }
  local v l f ns decoded
  for v in full decode_validate; do
    for l in $LABELS; do
      f="$TMP/criterion-$r/distributor_pipeline/$v/$l/new/estimates.json"
      ns=$(grep -oE '"median":\{"confidence_interval":\{[^}]*\},"point_estimate":[0-9.eE+-]+' "$f" | sed 's/.*"point_estimate"://')
      decoded=$(decoded_of "$l")
      awk -v r="$r" -v v="$v" -v l="$l" -v d="$decoded" -v ns="$ns" \
        'BEGIN { printf "%s\trust\t%s\t%s\t%.3f\n", r, v, l, d / ns * 1e9 / 1048576 }' >>"$RESULTS"
    done
  done
}

run_go() {
  local r=$1
  GOMAXPROCS=1 timeout 600 taskset -c "$CPU" "$TMP/pipeline" -dir "$TMP/inputs" \
    -duration "${SECS}s" >"$TMP/go-$r.log" 2>&1 || { cat "$TMP/go-$r.log" >&2; return 1; }
  awk -v r="$r" -F'\t' '$1 == "go" { printf "%s\tgo\t%s\t%s\t%s\n", r, $2, $3, $7 }' "$TMP/go-$r.log" >>"$RESULTS"
}

echo "inputs:" >&2
awk -F'\t' 'NR > 1 { printf "  %-7s %8d B decoded, %7d B gzip'"'"'d, %5d samples, %5d functions\n", $1, $2, $3, $4, $5 }' \
  "$TMP/inputs/manifest.tsv" >&2
STEALS=()
for r in $(seq 1 "$ROUNDS"); do
  read -r s0 t0 < <(cpu_jiffies)
  if [ $((r % 2)) = 1 ]; then
    echo "round $r/$ROUNDS: rust, then go (CPU $CPU)" >&2
    run_rust "$r"
    run_go "$r"
  else
    echo "round $r/$ROUNDS: go, then rust (CPU $CPU)" >&2
    run_go "$r"
    run_rust "$r"
  fi
  read -r s1 t1 < <(cpu_jiffies)
  STEALS+=("$(steal_pct "$s0" "$t0" "$s1" "$t1")")
  awk -F'\t' -v r="$r" '$1 == r { printf "  %-5s %-16s %-7s %9.2f MiB/s\n", $2, $3, $4, $5 }' "$RESULTS" >&2
  echo "  steal ${STEALS[-1]} %" >&2
done

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
value() { awk -F'\t' -v r="$1" -v i="$2" -v v="$3" -v l="$4" '$1 == r && $2 == i && $3 == v && $4 == l { print $5 }' "$RESULTS"; }
med_of() { for r in $(seq 1 "$ROUNDS"); do value "$r" "$1" "$2" "$3"; done | median; }
fmt1() { awk -v x="$1" 'BEGIN { if (x == "nan" || x == "") print "-"; else printf "%.1f", x }'; }
fmtx() { awk -v x="$1" 'BEGIN { if (x == "nan" || x == "") print "-"; else printf "%.2fx", x }'; }
ratio_of() { # rust variant, go variant, label: median over rounds of rust/go
  for r in $(seq 1 "$ROUNDS"); do
    awk -v a="$(value "$r" rust "$1" "$3")" -v b="$(value "$r" go "$2" "$3")" 'BEGIN { if (a != "" && b > 0) print a / b }'
  done | median
}

echo
echo "== edge distributor, one core (CPU $CPU), MiB/s of decoded profile bytes: medians of $ROUNDS interleaved round(s) =="
row() { printf '%-7s %9s | %9s %9s %8s | %9s %8s | %9s %9s %8s\n' "$@"; }
row "" "" "full" "" "" "full, Go" "gzip -1" "decode +" "validate" ""
row size decoded Rust Go Rust/Go Go Rust/Go Rust Go Rust/Go
for l in $LABELS; do
  row "$l" "$(decoded_of "$l")" \
    "$(fmt1 "$(med_of rust full "$l")")" "$(fmt1 "$(med_of go full "$l")")" "$(fmtx "$(ratio_of full full "$l")")" \
    "$(fmt1 "$(med_of go full_l1 "$l")")" "$(fmtx "$(ratio_of full full_l1 "$l")")" \
    "$(fmt1 "$(med_of rust decode_validate "$l")")" "$(fmt1 "$(med_of go decode_validate "$l")")" \
    "$(fmtx "$(ratio_of decode_validate decode_validate "$l")")"
done
echo "steal per round (%): ${STEALS[*]}"
echo "Rust: pyrogate's stage (gzip level 1 on output). Go: profile.Parse (runs CheckValid), drop all-zero"
echo "samples, Compact, Write (Go's default gzip level; the level-1 column gzips at BestSpeed)."
echo "Ratios are medians of the per-round ratios. Goal (issue): Rust ≥ 3× Go."
