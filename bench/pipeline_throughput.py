"""Events per second through the whole pipeline: real broker, sandbox in a child process.

    PYTHONPATH=. .venv/bin/python bench/pipeline_throughput.py [--events 1000] [--rate-limit N]

Needs the local broker (``make kafka-up``). Publishes N full returns (three Capillary
calls each: loyalty, cart, coupons; after the first, Capillary answers "already
revoked", which costs the same round trips), runs the service in this process until
every outcome is on the outcomes topic, and prints events/s and the per-event latency
percentiles that the outcomes report. A measurement, not a test: nothing asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import socket
import statistics
import subprocess
import sys
import time
import uuid

from aiokafka import AIOKafkaProducer

from service.capillary.config import CapillaryConfig
from service.settings import KafkaSettings, Settings
from service.tools import ensure_topics, read_topic
from service.wiring import build_service
from tests.factories import event_dict


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _wait_for_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.1)
    raise SystemExit(f"sandbox did not listen on {port} within {seconds} s")


_ENDPOINTS = ("loyalty_revoke", "loyalty_enrol", "cart_revoke", "coupon_revoke", "deactivate")


async def main(events: int, bootstrap: str, rate_limit: int, port: int) -> None:
    run = uuid.uuid4().hex[:8]
    await _wait_for_port(port, 30)
    url = f"http://127.0.0.1:{port}"
    kafka = KafkaSettings(
        bootstrap_servers=bootstrap,
        returns_topic=f"bench-{run}-returns",
        outcomes_topic=f"bench-{run}-outcomes",
        dead_letter_topic=f"bench-{run}-dead",
        retry_topic=f"bench-{run}-retry",
        state_topic=f"bench-{run}-state",
        group_id=f"bench-{run}",
        fetch_timeout_ms=100,
    )
    await ensure_topics(kafka, partitions=3)
    capillary = CapillaryConfig(
        loyalty_base_url=url,
        gateway_base_url=url,
        oauth_base_url=url,
        username="demo",
        password="demo",
        # The default 300 requests a minute per endpoint would be what is measured.
        rate_limits={name: rate_limit for name in _ENDPOINTS},
    )
    settings = Settings(kafka=kafka, capillary=capillary)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for n in range(events):
            value = json.dumps(event_dict(event_id=f"bench-{run}-{n}")).encode()
            await producer.send(kafka.returns_topic, value=value, key=str(n % 64).encode())
        await producer.flush()
    finally:
        await producer.stop()

    service = build_service(settings)
    stop = asyncio.Event()
    started = time.monotonic()
    task = asyncio.create_task(service.runner.run(stop))
    outcomes = await read_topic(bootstrap, kafka.outcomes_topic, count=events, wait_seconds=600)
    elapsed = time.monotonic() - started
    stop.set()
    await task
    await service.aclose()

    durations = sorted(json.loads(r.value)["duration_ms"] for r in outcomes)
    q = statistics.quantiles(durations, n=100)
    print(
        f"{len(outcomes)} events in {elapsed:.1f} s: {len(outcomes) / elapsed:.0f} events/s "
        f"(3 Capillary calls each); per-event latency p50 {q[49]:.1f} ms, "
        f"p99 {q[98]:.1f} ms, max {durations[-1]:.1f} ms; "
        f"max RSS of this process (service + load generator) "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument(
        "--rate-limit", type=int, default=1_000_000, help="Requests a minute per endpoint."
    )
    args = parser.parse_args()
    sandbox_port = _free_port()
    # The sandbox gets its own process so it does not share the service's event loop.
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "capillary_sandbox", "--port", str(sandbox_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        asyncio.run(main(args.events, args.bootstrap, args.rate_limit, sandbox_port))
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
