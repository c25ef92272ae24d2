"""The chaos run, short: 300 events (cancellations among them: second ones, some on another
partition, some of returns never handled; replays), one SIGKILL of the service, 5 s of 503s;
nothing lost, nothing twice.

Runs ``bench/chaos.py`` as a child process (it starts the sandbox and the service as its own
children and stops them again) against the test broker, and asserts on the JSON it writes.
The full run is ``make chaos``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHAOS = ROOT / "bench" / "chaos.py"
HARM_COUNTS = (
    "events_with_more_than_one_outcome",
    "events_without_outcome",
    "benefits_revoked_more_than_once",
    "earns_issued_more_than_once",
    "earns_issued_never_revoked",
    "deactivations_repeated",
    "benefits_due_not_revoked",
    "give_back_earns_not_issued_unflagged",
    "given_back_benefits_revoked_again",
    "failed_outcomes",
)


@pytest.mark.timeout(180)
def test_short_chaos_run_loses_nothing_and_does_nothing_twice(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    out = tmp_path / "chaos-short.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env["KAFKA_PORT"] = bootstrap_servers.split(",")[0].rpartition(":")[2]
    command = [
        sys.executable,
        str(CHAOS),
        "--events=300",
        "--kills=1",
        "--no-broker-restart",
        "--error-window=5",
        "--auth-window=0",
        "--seed=20261120",
        "--timeout=60",
        # A restarted member without static membership waits for the old one's session to
        # end; 10 s (the service's default is longer) keeps this test near a minute.
        "--session-timeout-ms=10000",
        f"--out={out}",
    ]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        printed, _ = proc.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        # SIGTERM lets the run stop the sandbox and the service it started.
        proc.send_signal(signal.SIGTERM)
        printed, _ = proc.communicate(timeout=25)
        pytest.fail(f"the chaos run took over 150 s:\n{printed.decode(errors='replace')}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = printed.decode(errors="replace")
    print(text)
    assert out.exists(), f"the chaos run wrote no result (exit {proc.returncode}):\n{text}"
    result = json.loads(out.read_text())

    harms = {name: result[name] for name in HARM_COUNTS if result[name]}
    assert result["harm_free"], (
        f"harm found: {harms}; {result['committed_outcomes']} committed outcomes for "
        f"{result['events_in']} events and {result['replays_published']} replays; by status "
        f"{result['outcomes_by_status']}; logs in {result['logs']}"
    )
    assert result["events_in"] == 300
    assert result["committed_outcomes"] == result["expected_outcomes"] > 300
    # The seed's world holds every kind of record the run is about.
    published = result["published"]
    assert published["second_cancellations"] > 0
    assert published["other_partition_cancellations"] > 0
    assert published["unknown_return_cancellations"] > 0
    assert {"cancellation", "cancelled_return", "return"} <= set(published["replays"])
    assert proc.returncode == 0
