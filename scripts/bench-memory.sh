#!/usr/bin/env bash
# Memory benchmark (issue 4): resident memory of pyrogate (io_uring and epoll; nginx as a
# reference) holding 10,000 idle keep-alive connections that each completed one request, and
# bytes per connection. About a minute. Options as for `scripts/bench.sh`, e.g.
# `--memory-conns 5000`.
exec "$(dirname "$0")/bench.sh" --memory "$@"
