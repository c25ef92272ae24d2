"""Memory of the deduplication state: how much one million remembered events cost.

    PYTHONPATH=. .venv/bin/python bench/state_memory.py [--events 1000000]

Fills a ``StateStore`` the way a restore does (``done`` records of distinct event ids
spread over three partitions) and reports how long the restore took, the Python heap
the store holds afterwards (tracemalloc) and the process's peak RSS (which includes the
generated records themselves). Writes ``bench/results/state_memory.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
import tracemalloc
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from service.outcome import OutcomeStatus
from service.pipeline.state import EventState, OutcomeRef, StateStore

RESULTS = Path(__file__).parent / "results"
PARTITIONS = 3


class _Generated:
    """A state topic made up in advance, as a restore reads it."""

    def __init__(self, events: int, now: datetime) -> None:
        self._events = events
        self._now = now
        self._partitions = [list(self._records(p)) for p in range(PARTITIONS)]

    async def read(self, partition: int) -> Iterable[tuple[bytes, bytes | None]]:
        return self._partitions[partition]

    def _records(self, partition: int) -> Iterable[tuple[bytes, bytes | None]]:
        for n in range(partition, self._events, PARTITIONS):
            event_id = f"ret-2026{n:012d}-{n % 97:02d}"
            state = EventState(
                event_id=event_id,
                phase="done",
                at=self._now - timedelta(minutes=n % 10_000),
                input_partition=partition,
                input_offset=n // PARTITIONS,
                outcome=OutcomeRef(partition=n % 12, offset=n, status=OutcomeStatus.COMPLETED),
            )
            yield event_id.encode(), state.to_bytes()


async def main(events: int) -> dict[str, float]:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    topic = _Generated(events, now)
    timed = StateStore(topic, window=timedelta(days=35))
    started = time.perf_counter()
    for partition in range(PARTITIONS):
        await timed.restore(partition, now)
    restore_seconds = time.perf_counter() - started
    del timed
    store = StateStore(topic, window=timedelta(days=35))
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    for partition in range(PARTITIONS):
        await store.restore(partition, now)
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    held = after - before
    assert store.size() == events
    return {
        "events": events,
        "heap_mb": round(held / 2**20, 1),
        "bytes_per_event": round(held / events, 1),
        "restore_seconds": round(restore_seconds, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    result = asyncio.run(main(args.events))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "state_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
