"""Events a second and latency against the bound on events in flight and the offered rate.

    PYTHONPATH=. .venv/bin/python bench/chart.py sweep [--bounds 1,10,100,1000]
        [--events 4000] [--latency-ms 50] [--rate 1200]
        [--rates 600,900,1200,1500,2000] [--events-per-rate 50000] [--warmup-per-rate 10000]
    PYTHONPATH=. .venv/bin/python bench/chart.py draw [--data bench/results/bounds.json]

``sweep`` (``make bench-chart``) runs ``throughput.py`` once per point, each in its own
process with fresh topics, a fresh sandbox and service, and no naive loop. ``draw`` draws a
PNG again from a sweep's JSON (which sweep it was, the JSON says).

The bounds (``--bounds``; the only sweep when neither ``--bounds`` nor ``--rates`` is given):
one run per bound at ``--rate`` offered, every point in ``bench/results/bounds.json``, the
chart in ``bench/results/in-flight.png``. A small bound cannot go fast (one event at a time
is a few events a second at 50 ms a call), so each point gets about ``--seconds-per-point``
seconds of events at the rate such a bound can carry (bound / (3 calls x latency)), at
least 200 and at most ``--events``: the whole sweep stays within a few minutes.

The offered rates (``--rates``): one run per rate at the service's default bound, each
``--events-per-rate`` measured events after ``--warmup-per-rate`` unmeasured ones (as ``make
bench``), each run's result in ``bench/results/rates/``, every point in
``bench/results/rates.json`` (``--rates-data``), the chart in ``docs/offered-rate.png``
(the documentation's picture: a tiny trial run should pass ``--rates-png`` elsewhere).
50,000 events are 83 s of publishing at 600/s, about two minutes a point with the warm-up,
the start and the stop; faster rates take less while the service keeps up. Where it stops
keeping up (the knee), events/s leaves the diagonal and p99 climbs: past it, p99 measures
the backlog, which grows with the events a point publishes.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display here; must come before pyplot is imported

import matplotlib.pyplot as plt
from matplotlib.axis import Axis
from matplotlib.ticker import FuncFormatter, NullFormatter

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs"
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
RATE_KEYS = (
    "events",
    "events_per_second",
    "offered_events_per_second",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "service_cpu_ms_per_event",
    "service_cpu_seconds",
    "service_peak_rss_mb",
    "seconds_to_clear",
    "complete",
    "run",
)
CALLS_PER_EVENT = 3
"""Roughly the calls one event of the mix makes without coalescing (for sizing only)."""
DEFAULT_BOUNDS = "1,10,100,1000"


def say(message: str) -> None:
    """Progress on stderr."""
    print(f"chart: {message}", file=sys.stderr, flush=True)


def events_for(bound: int, latency_ms: float, seconds: float, most: int) -> int:
    """Events that a service with this bound can clear in about ``seconds``."""
    per_call = max(latency_ms, 5.0) / 1000
    capacity = bound / (CALLS_PER_EVENT * per_call)
    return int(min(most, max(200, capacity * seconds)))


def numbers(text: str) -> list[int]:
    """``"600, 900,1200"`` as ``[600, 900, 1200]``."""
    return [int(item) for item in text.split(",") if item.strip()]


def run_point(command: Sequence[str], out: Path, what: str) -> dict[str, Any]:
    """One ``throughput.py`` run (its progress hidden) and its result; exit if it could not run.

    An incomplete run (exit 1) still gives a point: the chart marks it.
    """
    code = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, check=False).returncode
    if code == 2 or not out.exists():
        raise SystemExit(f"chart: the run at {what} could not run (exit {code})")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def sweep_bounds(args: argparse.Namespace) -> dict[str, Any]:
    """One throughput run per bound; the points as a JSON-ready dict."""
    bounds = numbers(args.bounds)
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
        result = run_point(command, out, f"bound {bound}")
        point = {"bound": bound} | {k: result.get(k) for k in POINT_KEYS}
        points.append(point)
        say(
            f"bound {bound}: {point['events_per_second']} events/s, p99 {point['p99_ms']} ms"
            + ("" if point["complete"] else " (INCOMPLETE)")
        )
    return {
        "sweep": "bounds",
        "latency_ms": args.latency_ms,
        "offered_rate": args.rate,
        "seconds": round(time.monotonic() - began, 1),
        "points": points,
    }


def rate_point(rate: int, result: dict[str, Any]) -> dict[str, Any]:
    """A rate sweep's point: the rate asked for and what the chart and the notes need of the
    run's result (missing keys as None)."""
    return {"rate": rate} | {key: result.get(key) for key in RATE_KEYS}


def sweep_rates(args: argparse.Namespace) -> dict[str, Any]:
    """One throughput run per offered rate, at the service's default bound; JSON-ready."""
    points: list[dict[str, Any]] = []
    began = time.monotonic()
    for rate in numbers(args.rates):
        # Beside the sweep's JSON: a trial sweep elsewhere leaves the real one's runs alone.
        out = args.rates_data.parent / "rates" / f"rate-{rate}.json"
        command = [
            sys.executable,
            str(THROUGHPUT),
            f"--events={args.events_per_rate}",
            f"--latency-ms={args.latency_ms}",
            f"--rate={rate}",
            "--naive-events=0",
            f"--warmup={args.warmup_per_rate}",
            f"--timeout={args.timeout}",
            f"--out={out}",
        ]
        say(f"{rate}/s offered: {args.events_per_rate} events")
        point = rate_point(rate, run_point(command, out, f"{rate}/s offered"))
        points.append(point)
        say(
            f"{rate}/s offered: {point['events_per_second']} events/s, p99 {point['p99_ms']} ms, "
            f"{point['service_cpu_ms_per_event']} ms CPU an event"
            + ("" if point["complete"] else " (INCOMPLETE)")
        )
    return {
        "sweep": "rates",
        "latency_ms": args.latency_ms,
        "events": args.events_per_rate,
        "warmup": args.warmup_per_rate,
        "seconds": round(time.monotonic() - began, 1),
        "points": points,
    }


@dataclass(frozen=True)
class RateSeries:
    """A rate sweep's points as the chart's lines, by offered rate ascending."""

    offered: list[float]
    """The publisher's measured rate (the asked one where the run measured none)."""
    events_per_second: list[float]
    p50_s: list[float | None]
    p99_s: list[float | None]
    cpu_ms_per_event: list[float | None]
    complete: list[bool]


def rate_series(data: dict[str, Any]) -> RateSeries:
    """The lines of ``draw_rates`` from a rate sweep's JSON."""

    def offered(point: dict[str, Any]) -> float:
        return float(point.get("offered_events_per_second") or point["rate"])

    def seconds(ms: Any) -> float | None:
        return None if ms is None else float(ms) / 1000

    points = sorted(data["points"], key=offered)
    return RateSeries(
        offered=[offered(p) for p in points],
        events_per_second=[float(p.get("events_per_second") or 0) for p in points],
        p50_s=[seconds(p.get("p50_ms")) for p in points],
        p99_s=[seconds(p.get("p99_ms")) for p in points],
        cpu_ms_per_event=[p.get("service_cpu_ms_per_event") for p in points],
        complete=[bool(p.get("complete")) for p in points],
    )


def _plain_log(axis: Axis, values: Sequence[float | None]) -> None:
    """Plain numbers on a log axis (matplotlib's default writes 1.3 as 1.3 x 10^0)."""
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axis.set_major_formatter(plain)
    # Within one decade there is no major tick to label: label the minor ones then.
    positive = [v for v in values if v is not None and v > 0]
    narrow = bool(positive) and max(positive) / min(positive) < 10
    axis.set_minor_formatter(plain if narrow else NullFormatter())


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
    _plain_log(right.yaxis, p99s)
    left.set_ylim(bottom=0, top=max(rates, default=1) * 1.15 or 1)
    for bound, rate, p99 in zip(bounds, rates, p99s, strict=True):
        left.annotate(f"{rate:.0f}/s", (bound, rate), textcoords="offset points", xytext=(4, 6))
        right.annotate(f"{p99:.2f} s", (bound, p99), textcoords="offset points", xytext=(4, -12))
    left.set_title(
        "return-handler: events/s and p99 against the bound on events in flight\n"
        f"{data['latency_ms']:g} ms a call, offered {data['offered_rate']:g} events/s",
        fontsize=10,
    )
    _save(figure, png)


def _save(figure: Any, png: Path) -> None:
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png)
    plt.close(figure)


def draw_rates(data: dict[str, Any], png: Path) -> None:
    """One PNG, two panels over the offered rate: events/s against the diagonal (a service
    that keeps up is on it), then p99 and p50 in seconds (log)."""
    series = rate_series(data)
    offered, rates = series.offered, series.events_per_second
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 7), dpi=120, sharex=True, height_ratios=(3, 2)
    )
    most = max([*offered, *rates, 1.0]) * 1.15
    top.plot([0, most], [0, most], ":", color="grey", label="keeps up (events/s = offered)")
    top.plot(offered, rates, "o-", color="tab:blue", label="events/s, publish to last outcome")
    top.set_xlim(0, most)
    top.set_ylim(0, most)
    top.set_ylabel("events/s", color="tab:blue")
    top.grid(True, alpha=0.3)
    top.legend(loc="upper left", fontsize=8)
    for x, rate in zip(offered, rates, strict=True):
        top.annotate(f"{rate:.0f}/s", (x, rate), textcoords="offset points", xytext=(4, -14))
    bottom.set_yscale("log")
    # A run without outcomes has no latency: its point is left out of the line, not drawn at 0.
    bottom.plot(offered, [v or math.nan for v in series.p99_s], "s--", color="tab:red")
    bottom.plot(offered, [v or math.nan for v in series.p50_s], "o:", color="tab:orange")
    bottom.legend(["p99", "p50"], loc="upper left", fontsize=8)
    bottom.set_ylabel("latency, publish to committed outcome (s)")
    bottom.set_xlabel(
        "offered events/s (the publisher's measured rate), and the service's CPU an event"
    )
    bottom.grid(True, which="both", alpha=0.3)
    latencies = [v for v in (*series.p99_s, *series.p50_s) if v]
    if latencies:
        # Room above the top label, a log axis's worth.
        bottom.set_ylim(min(latencies) / 1.5, max(latencies) * 2)
    _plain_log(bottom.yaxis, latencies)
    for x, p99 in zip(offered, series.p99_s, strict=True):
        if p99:
            bottom.annotate(f"{p99:.2f} s", (x, p99), textcoords="offset points", xytext=(4, 6))
    # The CPU an event under each rate: a note per point would crowd the points together.
    ticks = [
        f"{x:.0f}"
        + (f"\n{cpu:.2f} ms" if cpu is not None else "")
        + ("" if done else "\nINCOMPLETE")
        for x, cpu, done in zip(offered, series.cpu_ms_per_event, series.complete, strict=True)
    ]
    bottom.set_xticks(offered, ticks)
    top.set_title(
        "return-handler: events/s and latency against the offered rate\n"
        f"{data['latency_ms']:g} ms a call, {data['events']:,} events a point "
        f"after {data['warmup']:,} unmeasured, the default in-flight bound",
        fontsize=10,
    )
    _save(figure, png)


def _write(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    say(f"points in {path}")


def _draw(data: dict[str, Any], png: Path | None) -> None:
    """The chart of the sweep ``data`` is of, into ``png`` or that sweep's default file."""
    if data.get("sweep") == "rates":
        png = png or DOCS / "offered-rate.png"
        draw_rates(data, png)
    else:
        # Bound sweeps written before the "sweep" key have none.
        png = png or RESULTS / "in-flight.png"
        draw(data, png)
    say(f"chart in {png}")


def main(argv: Sequence[str] | None = None) -> int:
    """``sweep`` runs the bench per bound and per rate and draws; ``draw`` only draws."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("sweep", help="run the bench per bound and per rate, then draw")
    run.add_argument("--bounds", help=f"comma-separated bounds ({DEFAULT_BOUNDS} without --rates)")
    run.add_argument("--events", type=int, default=4000, help="most events per bound")
    run.add_argument("--seconds-per-point", type=float, default=20.0, help="sizing, see above")
    run.add_argument("--latency-ms", type=float, default=50.0, help="sandbox latency per call")
    run.add_argument("--rate", type=float, default=1200.0, help="offered events a second (bounds)")
    run.add_argument("--timeout", type=float, default=300.0, help="most seconds per point")
    run.add_argument("--data", type=Path, default=RESULTS / "bounds.json")
    run.add_argument("--png", type=Path, default=RESULTS / "in-flight.png")
    run.add_argument("--rates", help="comma-separated offered events a second (none)")
    run.add_argument("--events-per-rate", type=int, default=50_000, help="measured, per rate")
    run.add_argument("--warmup-per-rate", type=int, default=10_000, help="unmeasured, per rate")
    run.add_argument("--rates-data", type=Path, default=RESULTS / "rates.json")
    run.add_argument("--rates-png", type=Path, default=DOCS / "offered-rate.png")
    only = commands.add_parser("draw", help="draw a sweep's PNG from its JSON")
    only.add_argument("--data", type=Path, default=RESULTS / "bounds.json")
    only.add_argument(
        "--png", type=Path, help="in-flight.png for bounds, docs/offered-rate.png for rates"
    )
    args = parser.parse_args(argv)
    if args.command == "draw":
        data = json.loads(args.data.read_text(encoding="utf-8"))
        _draw(data, args.png)
        return 0 if all(p.get("complete") for p in data["points"]) else 1
    if args.bounds is None and args.rates is None:
        args.bounds = DEFAULT_BOUNDS
    if not (args.bounds or args.rates):
        parser.error("nothing to sweep: give --bounds or --rates")
    sweeps: list[dict[str, Any]] = []
    if args.bounds:
        sweeps.append(bounds := sweep_bounds(args))
        _write(bounds, args.data)
        _draw(bounds, args.png)
    if args.rates:
        sweeps.append(rates := sweep_rates(args))
        _write(rates, args.rates_data)
        _draw(rates, args.rates_png)
    return 0 if all(p.get("complete") for data in sweeps for p in data["points"]) else 1


if __name__ == "__main__":
    sys.exit(main())
