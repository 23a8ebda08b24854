#!/usr/bin/env python3
"""Compares two `pyrogate-load bench --json` reports cell by cell (scripts/bench.sh --compare).

Usage: bench-compare.py OLD.json NEW.json [--flag-below R] [--fail-below R]

A cell is any entry of the report with per-round `samples` (the forward, receive,
distributor, ring, durable, tls and latency suites), identified by its suite, its place in the
suite and its label; memory results are cells too, identified by their server. Each cell gets
one figure, the median over its rounds:

  * req/CPU-s  = 1000 / cpu_ms_per_1k, the server's own CPU per request (higher is better);
    cells without a CPU figure (the direct path to the sink) use req/s (whole machine);
  * B/conn     = bytes of RSS per idle connection (memory suite; lower is better).

For every cell present in both reports it prints old, new and the ratio new/old, and a
`gain` that is > 1 when the new report is better (new/old for higher-is-better figures,
old/new for lower-is-better ones). A cell whose gain is below --flag-below (default 0.95,
i.e. it lost more than 5 %) is marked LOST. With --fail-below R the exit status is 1 when
any cell's gain is below R. Exit status 2: unreadable input or no cell in common.
"""

import argparse
import json
import statistics
import sys

# Below this gain a cell is marked LOST: 5 % is about the spread of medians of 3 rounds on
# the project's 2-vCPU VM (docs/benchmarking.md §1), so smaller changes are not flagged.
DEFAULT_FLAG_BELOW = 0.95

# Fields that tell entries of one list apart (a cell's identity), in the order they are shown.
IDENTITY = ("payload", "protocol", "case", "sample_labels", "server", "label")


def describe_cell(cell):
    """The `cell` object of a CellReport beyond what its label says: the variant's options
    other than its kind and driver, the fan-out and the profile size."""
    variant = cell.get("variant", {})
    parts = [
        f"{k}={json.dumps(variant[k], sort_keys=True)}"
        for k in sorted(variant)
        if k not in ("kind", "driver")
    ]
    parts.append(f"fan-out {cell.get('fanout', '?')}")
    parts.append(size(cell.get("size")))
    return " ".join(parts)


def size(n):
    if not isinstance(n, int):
        return "?"
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def identity(entry):
    """A readable identity of one list entry, from its identifying fields."""
    parts = []
    for k in IDENTITY:
        if k in entry and not isinstance(entry[k], (dict, list)):
            parts.append(str(entry[k]) if k == "label" else f"{k}={entry[k]}")
    if isinstance(entry.get("cell"), dict):
        parts.append(describe_cell(entry["cell"]))
    return ", ".join(parts)


def median_of(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None


def figure(entry):
    """(name, median, higher_is_better) of a cell, or None when it has no usable figure."""
    samples = [s for s in entry.get("samples", []) if isinstance(s, dict)]
    if samples:
        cpu = median_of(
            # cpu_ms_per_1k: the server's CPU milliseconds per 1000 requests.
            [1e6 / s["cpu_ms_per_1k"] for s in samples if s.get("cpu_ms_per_1k")]
        )
        if cpu is not None:
            return ("req/CPU-s", cpu, True)
        rps = median_of([s.get("rps") for s in samples])
        if rps is not None:
            return ("req/s", rps, True)
        return None
    if "bytes_per_conn" in entry and isinstance(entry["bytes_per_conn"], (int, float)):
        return ("B/conn", float(entry["bytes_per_conn"]), False)
    return None


def cells(report):
    """{key: (figure name, value, higher_is_better)} of every cell in a report."""
    found = {}
    protocol = report.get("protocol", "?")

    def walk(node, path):
        if isinstance(node, dict):
            if ("samples" in node and isinstance(node["samples"], list)) or (
                "bytes_per_conn" in node
            ):
                f = figure(node)
                if f is not None:
                    found[" / ".join(path)] = f
                return
            for k, v in node.items():
                if k in ("machine", "notes", "failures"):
                    continue
                walk(v, path + [k])
        elif isinstance(node, list):
            for i, e in enumerate(node):
                ident = identity(e) if isinstance(e, dict) else ""
                walk(e, path[:-1] + [f"{path[-1]}[{ident or i}]"] if path else [str(i)])

    for suite, body in report.items():
        if suite in ("machine", "notes", "failures") or not isinstance(body, (dict, list)):
            continue
        walk(body, [f"{protocol}: {suite}"])
    return found


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        print(f"bench compare: {path}: {e}", file=sys.stderr)
        sys.exit(2)
    if not isinstance(report, dict):
        print(f"bench compare: {path}: not a bench report", file=sys.stderr)
        sys.exit(2)
    return report


def fmt(v):
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"


def main():
    p = argparse.ArgumentParser(description="Compare two pyrogate-load bench JSON reports.")
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--flag-below", type=float, default=DEFAULT_FLAG_BELOW)
    p.add_argument("--fail-below", type=float, default=None)
    a = p.parse_args()
    for name, v in (("--flag-below", a.flag_below), ("--fail-below", a.fail_below)):
        if v is not None and not v > 0:
            print(f"bench compare: {name} must be a positive ratio", file=sys.stderr)
            sys.exit(2)
    old, new = cells(load(a.old)), cells(load(a.new))
    common = [k for k in new if k in old and old[k][0] == new[k][0]]
    if not common:
        print(
            f"bench compare: no cell in common between {a.old} ({len(old)} cells) "
            f"and {a.new} ({len(new)} cells)",
            file=sys.stderr,
        )
        sys.exit(2)
    width = max(len(k) for k in common)
    print(f"bench compare: {a.new} (new) against {a.old} (old), {len(common)} cell(s) in both")
    header = f"{'cell':<{width}}  {'figure':<9}  {'old':>10}  {'new':>10}  new/old   gain"
    print(header)
    print("-" * len(header))
    lost, failed = [], []
    for k in common:
        name, o, higher = old[k]
        n = new[k][1]
        ratio = n / o if o else float("inf")
        gain = ratio if higher else (o / n if n else float("inf"))
        mark = ""
        if gain < a.flag_below:
            mark = "  LOST"
            lost.append(k)
        if a.fail_below is not None and gain < a.fail_below:
            failed.append(k)
        print(
            f"{k:<{width}}  {name:<9}  {fmt(o):>10}  {fmt(n):>10}  {ratio:6.3f}  {gain:6.3f}{mark}"
        )
    only_old = sorted(set(old) - set(common))
    only_new = sorted(set(new) - set(common))
    if only_old or only_new:
        print(f"({len(only_old)} cell(s) only in the old report, {len(only_new)} only in the new)")
    print(
        f"{len(lost)} cell(s) lost more than {(1 - a.flag_below) * 100:.0f} % "
        f"(gain < {a.flag_below}; gain > 1 = better)"
    )
    if failed:
        print(
            f"bench compare: FAILED: {len(failed)} cell(s) below --fail-below {a.fail_below}",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
