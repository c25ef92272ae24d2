"""Events a second and p99 latency against the service's bound on events in flight.

    PYTHONPATH=. .venv/bin/python bench/chart.py sweep [--bounds 1,10,100,1000]
        [--events 4000] [--latency-ms 50] [--rate 1200]
    PYTHONPATH=. .venv/bin/python bench/chart.py draw [--data bench/results/bounds.json]

``sweep`` (``make bench-chart``) runs ``throughput.py`` once per bound, each in its own
process with fresh topics, a fresh sandbox and service, and no naive loop; writes every
point to ``bench/results/bounds.json`` and draws ``bench/results/in-flight.png``. ``draw``
draws the PNG again from the JSON.

A small bound cannot go fast (one event at a time is a few events a second at 50 ms a
call), so each point gets about ``--seconds-per-point`` seconds of events at the rate such
a bound can carry (bound / (3 calls x latency)), at least 200 and at most ``--events``:
the whole sweep stays within a few minutes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display here; must come before pyplot is imported

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, NullFormatter

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
THROUGHPUT = ROOT / "bench" / "throughput.py"
POINT_KEYS = (
    "events",
    "events_per_second",
    "offered_events_per_second",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "api_calls_per_event",
    "service_cpu_seconds",
    "service_peak_rss_mb",
    "complete",
    "run",
)
CALLS_PER_EVENT = 3
"""Roughly the calls one event of the mix makes without coalescing (for sizing only)."""


def say(message: str) -> None:
    """Progress on stderr."""
    print(f"chart: {message}", file=sys.stderr, flush=True)


def events_for(bound: int, latency_ms: float, seconds: float, most: int) -> int:
    """Events that a service with this bound can clear in about ``seconds``."""
    per_call = max(latency_ms, 5.0) / 1000
    capacity = bound / (CALLS_PER_EVENT * per_call)
    return int(min(most, max(200, capacity * seconds)))


def sweep(args: argparse.Namespace) -> dict[str, Any]:
    """One throughput run per bound; the points as a JSON-ready dict."""
    bounds = [int(b) for b in str(args.bounds).split(",") if b.strip()]
    points: list[dict[str, Any]] = []
    began = time.monotonic()
    for bound in bounds:
        events = events_for(bound, args.latency_ms, args.seconds_per_point, args.events)
        out = RESULTS / "bounds" / f"bound-{bound}.json"
        command = [
            sys.executable,
            str(THROUGHPUT),
            f"--events={events}",
            f"--bound={bound}",
            f"--latency-ms={args.latency_ms}",
            f"--rate={args.rate}",
            "--naive-events=0",
            # A tenth of the point's events first, unmeasured: the broker and service warm.
            f"--warmup={max(20, events // 10)}",
            f"--timeout={args.timeout}",
            f"--out={out}",
        ]
        say(f"bound {bound}: {events} events")
        code = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, check=False).returncode
        if code == 2 or not out.exists():
            raise SystemExit(f"chart: the run at bound {bound} could not run (exit {code})")
        result = json.loads(out.read_text())
        point = {"bound": bound} | {k: result.get(k) for k in POINT_KEYS}
        points.append(point)
        say(
            f"bound {bound}: {point['events_per_second']} events/s, p99 {point['p99_ms']} ms"
            + ("" if point["complete"] else " (INCOMPLETE)")
        )
    return {
        "latency_ms": args.latency_ms,
        "offered_rate": args.rate,
        "seconds": round(time.monotonic() - began, 1),
        "points": points,
    }


def draw(data: dict[str, Any], png: Path) -> None:
    """One PNG: events/s (left axis) and p99 in seconds (right, log) against the bound."""
    points = sorted(data["points"], key=lambda p: p["bound"])
    bounds = [p["bound"] for p in points]
    rates = [p["events_per_second"] or 0 for p in points]
    p99s = [(p["p99_ms"] or 0) / 1000 for p in points]
    figure, left = plt.subplots(figsize=(8, 4.5), dpi=120)
    left.set_xscale("log")
    left.plot(bounds, rates, "o-", color="tab:blue", label="events/s")
    left.set_xlabel("events in flight (RETURN_HANDLER_CONCURRENCY__EVENTS_IN_FLIGHT)")
    left.set_ylabel("events/s", color="tab:blue")
    left.set_xticks(bounds, [str(b) for b in bounds])
    left.grid(True, which="both", alpha=0.3)
    right = left.twinx()
    right.set_yscale("log")
    right.plot(bounds, p99s, "s--", color="tab:red", label="p99 latency")
    right.set_ylabel("p99, publish to committed outcome (s)", color="tab:red")
    # Plain numbers on the log axis: matplotlib's default writes 1.3 as 1.3 x 10^0.
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    right.yaxis.set_major_formatter(plain)
    # Within one decade there is no major tick to label: label the minor ones then.
    positive = [p for p in p99s if p > 0]
    narrow = bool(positive) and max(positive) / min(positive) < 10
    right.yaxis.set_minor_formatter(plain if narrow else NullFormatter())
    left.set_ylim(bottom=0, top=max(rates, default=1) * 1.15 or 1)
    for bound, rate, p99 in zip(bounds, rates, p99s, strict=True):
        left.annotate(f"{rate:.0f}/s", (bound, rate), textcoords="offset points", xytext=(4, 6))
        right.annotate(f"{p99:.2f} s", (bound, p99), textcoords="offset points", xytext=(4, -12))
    left.set_title(
        "return-handler: events/s and p99 against the bound on events in flight\n"
        f"{data['latency_ms']:g} ms a call, offered {data['offered_rate']:g} events/s",
        fontsize=10,
    )
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    """``sweep`` runs the bench per bound and draws; ``draw`` only draws."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("sweep", help="run the bench per bound, then draw")
    run.add_argument("--bounds", default="1,10,100,1000", help="comma-separated bounds")
    run.add_argument("--events", type=int, default=4000, help="most events per point")
    run.add_argument("--seconds-per-point", type=float, default=20.0, help="sizing, see above")
    run.add_argument("--latency-ms", type=float, default=50.0, help="sandbox latency per call")
    run.add_argument("--rate", type=float, default=1200.0, help="offered events a second")
    run.add_argument("--timeout", type=float, default=300.0, help="most seconds per point")
    run.add_argument("--data", type=Path, default=RESULTS / "bounds.json")
    run.add_argument("--png", type=Path, default=RESULTS / "in-flight.png")
    only = commands.add_parser("draw", help="draw the PNG from the JSON")
    only.add_argument("--data", type=Path, default=RESULTS / "bounds.json")
    only.add_argument("--png", type=Path, default=RESULTS / "in-flight.png")
    args = parser.parse_args(argv)
    if args.command == "sweep":
        data = sweep(args)
        args.data.parent.mkdir(parents=True, exist_ok=True)
        args.data.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        say(f"points in {args.data}")
    else:
        data = json.loads(args.data.read_text(encoding="utf-8"))
    draw(data, args.png)
    say(f"chart in {args.png}")
    return 0 if all(p.get("complete") for p in data["points"]) else 1


if __name__ == "__main__":
    sys.exit(main())
