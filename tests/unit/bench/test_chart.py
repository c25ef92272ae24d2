"""The rate sweep of ``bench/chart.py``: a run's result as a point, points as lines, the PNG."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from chart import RATE_KEYS, draw_rates, main, rate_point, rate_series


def _result(offered: float, per_second: float, p99_ms: float | None) -> dict[str, Any]:
    """The keys of a throughput result the sweep keeps, and one it does not."""
    return {
        "events": 1000,
        "events_per_second": per_second,
        "offered_events_per_second": offered,
        "p50_ms": None if p99_ms is None else p99_ms / 4,
        "p95_ms": None if p99_ms is None else p99_ms / 2,
        "p99_ms": p99_ms,
        "service_cpu_ms_per_event": 1.25,
        "service_cpu_seconds": 1.25,
        "service_peak_rss_mb": 120.0,
        "seconds_to_clear": 1000 / per_second if per_second else None,
        "complete": p99_ms is not None,
        "run": f"run-{offered:.0f}",
        "api_calls": 800,
    }


def _sweep() -> dict[str, Any]:
    # Out of order, one point without a measured offered rate and one without outcomes.
    points = [
        rate_point(1500, _result(1490.0, 1150.0, 9000.0)),
        rate_point(600, _result(599.5, 598.0, 800.0)),
        rate_point(900, _result(899.0, 897.0, 1100.0) | {"offered_events_per_second": None}),
        rate_point(2000, _result(1980.0, 0.0, None)),
    ]
    return {"sweep": "rates", "latency_ms": 50.0, "events": 1000, "warmup": 200, "points": points}


def test_a_point_is_the_rate_asked_and_the_results_keys_it_keeps() -> None:
    point = rate_point(600, _result(599.5, 598.0, 800.0))
    assert list(point) == ["rate", *RATE_KEYS]
    assert (point["rate"], point["p99_ms"], point["service_cpu_ms_per_event"]) == (600, 800.0, 1.25)
    assert "api_calls" not in point
    # A result without a key (an older throughput.py) gives None, not a KeyError.
    assert rate_point(600, {})["p99_ms"] is None


def test_the_lines_go_by_the_measured_offered_rate_in_seconds() -> None:
    series = rate_series(_sweep())
    assert series.offered == [599.5, 900.0, 1490.0, 1980.0]
    assert series.events_per_second == [598.0, 897.0, 1150.0, 0.0]
    assert series.p99_s == [0.8, 1.1, 9.0, None]
    assert series.p50_s[0] == 0.2
    assert series.complete == [True, True, True, False]


def test_the_rate_chart_is_a_png_from_given_points(tmp_path: Path) -> None:
    png = tmp_path / "sub" / "offered-rate.png"
    draw_rates(_sweep(), png)
    assert png.read_bytes().startswith(b"\x89PNG")
    assert png.stat().st_size > 20_000


def test_draw_picks_the_chart_by_the_sweep_the_json_holds(tmp_path: Path) -> None:
    data = tmp_path / "rates.json"
    data.write_text(json.dumps(_sweep()))
    png = tmp_path / "rates.png"
    # 1: a point is incomplete.
    assert main(["draw", f"--data={data}", f"--png={png}"]) == 1
    assert png.read_bytes().startswith(b"\x89PNG")


def test_one_point_draws_too(tmp_path: Path) -> None:
    data = _sweep()
    data["points"] = data["points"][1:2]
    png = tmp_path / "one.png"
    draw_rates(data, png)
    assert png.exists()
    assert not math.isnan(rate_series(data).offered[0])
