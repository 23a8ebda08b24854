#!/usr/bin/env bash
# End-to-end benchmark of pyrogate against nginx on this machine, in one run (issues 2, 3, 4):
#   forward  straight to a sink, through pyrogate (io_uring and epoll) and through nginx
#            (proxy_pass + mirror); fan-out 1 and 2; 1 KiB and 16 KiB profiles
#   receive  pyrogate with no endpoint vs nginx `return 200` and nginx reading the body (echo)
#   latency  p50/p99 added at half of pyrogate's saturation rate (open loop, fan-out 2, 16 KiB)
#   memory   RSS with 10,000 idle keep-alive connections, bytes per connection
# Prints requests/s, the server's CPU-seconds per 1000 requests, peak RSS, p50/p99, ratios to
# nginx (medians of 3 interleaved runs) and the CPU steal seen in each run. About 10 minutes;
# `--quick` is a 2-minute smoke test; `--help` lists every option (suites, sizes, runs, --json).
# Not run by default (`--suites NAME`): distributor, ring, durable (ack = "durable" with
# fsync batch/always and io uring/thread against ack enqueue and all, fan-out 2, 16 KiB /ingest
# and Push: requests per CPU-second, p99 at half of enqueue's saturation; a fresh spool per run
# under the benchmark's temp dir, removed after it; about 9 minutes; docs/benchmarking.md §8),
# and tls ([server.tls] vs plaintext forwarding 1 KiB /ingest to one sink: requests per
# CPU-second with keep-alive and the ratio TLS/plain, then a new connection per request with
# full and resumed handshakes: handshakes per CPU-second of the gateway; a CA and certificate
# made by the benchmark; about 2 minutes; docs/benchmarking.md §10), and h2c (gRPC Push over
# cleartext HTTP/2, 32 streams over 4 connections, plain and gzip'd messages, against Connect
# Push over 32 HTTP/1.1 connections, forwarding to one sink: requests per CPU-second of the
# gateway, the ratio to HTTP/1.1 and p99, per --sizes; about 2 minutes; docs/benchmarking.md §12).
#
# Regression guard: `--compare OLD.json` compares this run's JSON report with an earlier one
# (scripts/bench-compare.py: per cell the median req/CPU-s, or B/conn for memory, old, new,
# new/old, and cells that lost more than 5 % marked LOST; `--flag-below R` changes that 0.95);
# `--fail-below R` exits 1 when any cell's gain is below R. `--compare OLD.json --against
# NEW.json` only compares two reports (no build, no run). Cells are matched by protocol,
# suite, path, fan-out and size: run the new report with the same options as the old one
# (docs/benchmarking.md §11).
#
# Installs nginx and its echo module with apt when they are missing (root or sudo needed;
# without them the nginx columns are skipped). Every process the benchmark starts is stopped
# when it ends, fails, or is interrupted (Ctrl-C finishes the current run, then cleans up).
set -euo pipefail
cd "$(dirname "$0")/.."

# The regression-guard options are this script's; everything else goes to the benchmark.
compare_old= compare_new= compare_opts=() json_out= bench_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --compare | --against | --fail-below | --flag-below)
      [ $# -ge 2 ] || { echo "bench.sh: $1 needs a value" >&2; exit 2; }
      case "$1" in
        --compare) compare_old=$2 ;;
        --against) compare_new=$2 ;;
        *) compare_opts+=("$1" "$2") ;;
      esac
      shift 2
      ;;
    --json)
      [ $# -ge 2 ] || { echo "bench.sh: --json needs a value" >&2; exit 2; }
      json_out=$2
      bench_args+=("$1" "$2")
      shift 2
      ;;
    *)
      bench_args+=("$1")
      shift
      ;;
  esac
done
if [ -z "$compare_old" ] && { [ -n "$compare_new" ] || [ ${#compare_opts[@]} -gt 0 ]; }; then
  echo "bench.sh: --against, --fail-below and --flag-below go with --compare OLD.json" >&2
  exit 2
fi
compare() {
  command -v python3 >/dev/null 2>&1 || { echo "bench.sh: --compare needs python3" >&2; return 2; }
  python3 scripts/bench-compare.py "$compare_old" "$1" ${compare_opts[@]+"${compare_opts[@]}"}
}
if [ -n "$compare_new" ]; then
  # Only compare two existing reports.
  [ ${#bench_args[@]} -eq 0 ] || { echo "bench.sh: --against takes no benchmark options" >&2; exit 2; }
  compare "$compare_new"
  exit $?
fi
if [ -n "$compare_old" ] && [ ! -r "$compare_old" ]; then
  echo "bench.sh: --compare $compare_old: not readable" >&2
  exit 2
fi

ECHO_MODULE=/usr/lib/nginx/modules/ngx_http_echo_module.so
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -f "$ECHO_MODULE" ] || missing+=(libnginx-mod-http-echo)
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=
  [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "bench.sh: installing ${missing[*]}" >&2
  if $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null; then
    # The package may start the distribution's nginx service; the benchmark runs its own
    # nginx processes and does not want an extra one on the machine.
    if [[ " ${missing[*]} " == *" nginx "* ]] && command -v systemctl >/dev/null 2>&1; then
      $SUDO systemctl stop nginx >/dev/null 2>&1 || true
    fi
  else
    echo "bench.sh: could not install ${missing[*]}; the nginx variants will be skipped" >&2
  fi
fi

cargo build --release --workspace --bins

# The benchmark's temp files (generated nginx configs, copies of the binaries) go to a
# directory of our own, and the process groups of its children are listed in a file there,
# so that whatever is left if the benchmark is killed outright is removed on exit.
BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/pyrogate-bench.XXXXXX")
PGID_FILE="$BENCH_TMP/pgids"
keep=0
for a in ${bench_args[@]+"${bench_args[@]}"}; do [ "$a" = --keep-temp ] && keep=1; done
cleanup() {
  if [ -s "$PGID_FILE" ]; then
    while read -r g; do [ -n "$g" ] && kill -KILL -- "-$g" 2>/dev/null || true; done <"$PGID_FILE"
  fi
  if [ "$keep" = 1 ]; then
    echo "bench.sh: temp files kept in $BENCH_TMP" >&2
  else
    rm -rf "$BENCH_TMP"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ -n "$compare_old" ] && [ -z "$json_out" ]; then
  json_out="$BENCH_TMP/report.json"
  bench_args+=(--json "$json_out")
fi
TMPDIR="$BENCH_TMP" PYROGATE_BENCH_PGID_FILE="$PGID_FILE" target/release/pyrogate-load bench ${bench_args[@]+"${bench_args[@]}"}
if [ -n "$compare_old" ]; then
  compare "$json_out"
fi
