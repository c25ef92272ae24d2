"""The throughput bench, tiny: it runs end to end and writes every key, so it cannot rot.

Runs ``bench/throughput.py`` as a child process (it starts the sandbox and the service as
its own children and stops them again) with 40 events, no API latency, a naive loop of 10
and py-spy on the service (``--profile``), then draws the chart from a one-point sweep
file; and a one-rate sweep of ``bench/chart.py`` as ``make bench-chart`` runs it, as small.
No assertion on any number that depends on time: ``make bench`` measures, this only checks
the bench works. ``--misroute`` is checked where it differs, in its publisher (a second
whole run would double the time).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from service.kafka.partitioner import java_partition

ROOT = Path(__file__).resolve().parents[2]
# The bench scripts are not a package: they import each other from the bench folder.
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

from bench_world import build_mix  # noqa: E402
from throughput import parse_args, publish_paced  # noqa: E402

THROUGHPUT = ROOT / "bench" / "throughput.py"
CHART = ROOT / "bench" / "chart.py"
CONTRACT_KEYS = (
    "events",
    "events_per_second",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "api_calls",
    "api_calls_per_event",
    "service_cpu_seconds",
    "service_peak_rss_mb",
    "latency_ms",
    "rate_limit_per_minute",
    "naive_events_per_second",
    "ratio_to_naive",
    "seconds_to_clear",
    "http_429",
    "offered_events_per_second",
    "loyalty_calls_per_event",
    "bound",
)


def _run(command: list[str], env: dict[str, str], seconds: float) -> tuple[int, str]:
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        printed, _ = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        # SIGTERM lets the bench stop the sandbox and the service it started.
        proc.send_signal(signal.SIGTERM)
        printed, _ = proc.communicate(timeout=25)
        pytest.fail(f"{command[1]} took over {seconds} s:\n{printed.decode(errors='replace')}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, printed.decode(errors="replace")


@pytest.mark.timeout(90)
def test_tiny_bench_writes_every_key_and_every_event_gets_an_outcome(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    out = tmp_path / "latest.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env["KAFKA_PORT"] = bootstrap_servers.split(",")[0].rpartition(":")[2]
    code, text = _run(
        [
            sys.executable,
            str(THROUGHPUT),
            "--events=40",
            "--customers=30",
            "--latency-ms=0",
            "--naive-events=10",
            "--warmup=20",
            "--rate=400",
            "--timeout=40",
            "--profile=5",
            f"--out={out}",
        ],
        env,
        70,
    )
    assert out.exists(), f"the bench wrote no result (exit {code}):\n{text}"
    result = json.loads(out.read_text())
    missing = [key for key in CONTRACT_KEYS if key not in result]
    assert not missing, f"keys missing from the result: {missing}"
    assert result["complete"], f"not every event got one outcome: {result}"
    assert result["events"] == result["outcomes"] == 40
    assert result["events_without_outcome"] == 0
    assert result["naive"]["events"] == 10
    assert result["api_calls"] > 0
    assert result["http_429"] == 0
    # No run can make fewer calls than the bound; without a rate limit it has no time.
    bound = result["bound"]
    assert bound["fewest_calls"] > 0
    assert (bound["seconds"], bound["binding_endpoint"], bound["ratio"]) == (None, None, None)
    for name, endpoint in bound["by_endpoint"].items():
        assert endpoint["calls"] == result["api_calls_by_endpoint"].get(name, 0)
        assert endpoint["calls"] >= endpoint["fewest_calls"], name
    # aiokafka partitions keys as Java does: the service routes nothing.
    assert result["misrouted"] is False
    assert result["routed"]["metric_measured"] == 0
    assert result["routed"]["topic_records"] == 0
    # py-spy attached (root here; elsewhere it needs ptrace) and was stopped at the run's end,
    # well before its 5 s: a profile of 40 events may hold no sample, but it is there.
    profile = result["profile"]
    assert profile["py_spy_exit"] == 0, profile
    assert "error" not in profile
    assert profile["sampled_seconds"] < 5
    assert (ROOT / profile["path"]).exists()
    assert {"samples", "top_own", "top_total"} <= set(profile)
    assert code == 0, text

    # The chart draws from a sweep file; one point made of this run is enough to prove it.
    data = tmp_path / "bounds.json"
    data.write_text(
        json.dumps(
            {
                "latency_ms": 0,
                "offered_rate": 400,
                # A sweep point's "bound" is the in-flight bound, not the result's call bound.
                "points": [result | {"bound": 1000}],
            }
        )
    )
    png = tmp_path / "in-flight.png"
    code, text = _run(
        [sys.executable, str(CHART), "draw", f"--data={data}", f"--png={png}"], env, 30
    )
    assert code == 0, text
    assert png.read_bytes().startswith(b"\x89PNG")


@pytest.mark.timeout(60)
def test_a_one_rate_sweep_writes_its_points_and_the_rate_chart(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env["KAFKA_PORT"] = bootstrap_servers.split(",")[0].rpartition(":")[2]
    data, png = tmp_path / "rates.json", tmp_path / "offered-rate.png"
    code, text = _run(
        [
            sys.executable,
            str(CHART),
            "sweep",
            "--rates=400",
            "--events-per-rate=40",
            "--warmup-per-rate=20",
            "--latency-ms=0",
            "--timeout=40",
            f"--rates-data={data}",
            f"--rates-png={png}",
        ],
        env,
        50,
    )
    assert code == 0, text
    sweep = json.loads(data.read_text())
    assert "chart: bound" not in text  # --rates alone: no bound sweep
    assert (sweep["sweep"], sweep["events"], sweep["warmup"]) == ("rates", 40, 20)
    (point,) = sweep["points"]
    assert point["rate"] == 400
    assert point["complete"] is True
    for key in ("events_per_second", "offered_events_per_second", "p50_ms", "p99_ms"):
        assert point[key] > 0, key
    assert point["service_cpu_ms_per_event"] is not None
    # Each run's own result beside the sweep's, not in bench/results/.
    assert json.loads((tmp_path / "rates" / "rate-400.json").read_text())["events"] == 40
    assert png.read_bytes().startswith(b"\x89PNG")


@pytest.mark.timeout(30)
async def test_misrouted_publishing_puts_every_event_on_another_partition_than_its_keys(
    bootstrap_servers: str, fresh_topic: str
) -> None:
    world = build_mix(30, random.Random("misroute"), "smoke")
    await publish_paced(bootstrap_servers, fresh_topic, world, 0, {}, misroute_over=3)

    consumer = AIOKafkaConsumer(
        fresh_topic,
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    placed: dict[bytes, int] = {}
    try:
        while len(placed) < len(world.events):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                placed.update((r.value, r.partition) for r in records)
    finally:
        await consumer.stop()
    assert all(placed[value] == (java_partition(key, 3) + 1) % 3 for key, value in world.events)


def test_the_storm_mix_picks_its_defaults_and_its_result() -> None:
    loyalty = parse_args(["--storm"])
    assert (loyalty.mix, loyalty.events, loyalty.rate_limit) == ("loyalty", 10_000, 300)
    assert loyalty.out.name == "storm.json"
    realistic = parse_args(["--storm", "--mix", "realistic"])
    assert (realistic.mix, realistic.events, realistic.rate_limit) == ("realistic", 5_000, 1_500)
    assert (realistic.rate, realistic.warmup) == (0.0, 0)
    assert realistic.out.name == "storm-realistic.json"
    assert parse_args(["--storm", "--mix=realistic", "--misroute"]).out.name == (
        "storm-realistic-misrouted.json"
    )
    assert parse_args([]).mix == "realistic"
    with pytest.raises(SystemExit):
        parse_args(["--mix", "loyalty"])


def test_misroute_needs_two_partitions_and_writes_its_own_result() -> None:
    assert parse_args(["--misroute"]).out.name == "misrouted.json"
    assert parse_args(["--misroute", "--storm"]).out.name == "storm-misrouted.json"
    assert parse_args([]).misroute is False
    with pytest.raises(SystemExit):
        parse_args(["--misroute", "--partitions=1"])
