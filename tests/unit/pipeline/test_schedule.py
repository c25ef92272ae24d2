"""schedule: one key's jobs in order, different keys at once, counted against the bound."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

from service.events import ReturnEvent
from service.pipeline.records import Record
from service.pipeline.schedule import Job, Scheduler, ordering_key
from tests.factories import event, event_bytes


def _job(offset: int, key: Hashable, partition: int = 0) -> Job:
    record = Record("returns", partition, offset, None, b"{}")
    return Job(record, event(event_id=f"e-{offset}"), key)


class _Gated:
    """A run function whose jobs wait at their own gate; it notes starts and ends."""

    def __init__(self) -> None:
        self.gates: dict[int, asyncio.Event] = {}
        self.started: list[int] = []
        self.ended: list[int] = []
        self.changed = asyncio.Event()

    def gate(self, offset: int) -> asyncio.Event:
        return self.gates.setdefault(offset, asyncio.Event())

    async def __call__(self, job: Job) -> None:
        self.started.append(job.record.offset)
        self._poke()
        await self.gate(job.record.offset).wait()
        self.ended.append(job.record.offset)
        self._poke()

    def _poke(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    async def until(self, condition: object, seconds: float = 5.0) -> None:
        async with asyncio.timeout(seconds):
            while not condition():  # type: ignore[operator]
                await self.changed.wait()


async def test_different_keys_run_at_once_and_one_keys_jobs_wait_in_order() -> None:
    run = _Gated()
    scheduler = Scheduler(bound=10, run=run)
    for offset, key in [(0, "a"), (1, "b"), (2, "a"), (3, "c"), (4, "a")]:
        scheduler.submit(_job(offset, key))

    await run.until(lambda: len(run.started) == 3)
    assert run.started == [0, 1, 3]  # 2 and 4 wait behind 0: same key
    assert (scheduler.in_flight, scheduler.running) == (5, 3)

    run.gate(1).set()  # another key finishing starts nothing of "a"
    await run.until(lambda: 1 in run.ended)
    assert run.started == [0, 1, 3]
    run.gate(0).set()
    await run.until(lambda: len(run.started) == 4)
    assert run.started[-1] == 2
    for gate in (2, 3, 4):
        run.gate(gate).set()
    await scheduler.drain()
    assert run.started == [0, 1, 3, 2, 4]
    assert scheduler.in_flight == 0
    assert scheduler.peak == 5


async def test_full_at_the_bound_and_room_when_a_job_finishes() -> None:
    run = _Gated()
    scheduler = Scheduler(bound=2, run=run)
    scheduler.submit(_job(0, "a"))
    assert not scheduler.full
    scheduler.submit(_job(1, "a"))  # waiting behind its key counts too
    assert scheduler.full
    room = asyncio.create_task(scheduler.wait_for_room())
    await run.until(lambda: run.started == [0])
    assert not room.done()
    run.gate(0).set()
    async with asyncio.timeout(5):
        await room
    assert not scheduler.full


async def test_held_scheduler_starts_nothing_and_withdraw_takes_back_the_waiting() -> None:
    run = _Gated()
    scheduler = Scheduler(bound=10, run=run)
    scheduler.submit(_job(0, "a", partition=0))
    scheduler.submit(_job(1, "a", partition=0))
    scheduler.submit(_job(2, "b", partition=1))
    scheduler.submit(_job(3, "b", partition=1))
    await run.until(lambda: len(run.started) == 2)
    scheduler.hold()
    run.gate(0).set()
    await run.until(lambda: 0 in run.ended)
    assert run.started == [0, 2]  # 1 is free to start but held

    taken = scheduler.withdraw(partitions={0})
    assert [job.record.offset for job in taken] == [1]
    assert scheduler.in_flight == 2  # 2 running, 3 waiting: partition 1 is untouched
    drained = asyncio.create_task(scheduler.drain(partitions={0}))
    async with asyncio.timeout(5):
        await drained  # nothing of partition 0 is left

    scheduler.resume()
    run.gate(2).set()
    run.gate(3).set()
    async with asyncio.timeout(5):
        await scheduler.drain()
    assert run.started == [0, 2, 3]


async def test_cancel_stops_running_jobs_and_drops_waiting_ones() -> None:
    run = _Gated()
    scheduler = Scheduler(bound=10, run=run)
    scheduler.submit(_job(0, "a"))
    scheduler.submit(_job(1, "a"))
    await run.until(lambda: run.started == [0])
    await scheduler.cancel()
    assert scheduler.in_flight == 0
    assert run.ended == []


def _parsed(**overrides: object) -> ReturnEvent:
    return ReturnEvent.model_validate_json(event_bytes(**overrides))


def test_ordering_key_is_the_customer_key_whichever_identifiers_the_events_carry() -> None:
    by_id = _parsed(customer={"id": 42, "mobile": "11223569865"})
    by_mobile = _parsed(customer={"mobile": "11223569865"})
    keyed = Record("returns", 3, 7, b"42", b"{}")
    unkeyed = Record("returns", 3, 8, None, b"{}")

    # One producer keyed both by the customer: one key, whatever each event names.
    assert ordering_key(keyed, by_id) == ordering_key(keyed, by_mobile) == b"42"
    # Without a Kafka key: the key the router gives the record (the customer's id first).
    assert ordering_key(unkeyed, by_id) == b"42"
    assert ordering_key(unkeyed, by_mobile) == b"11223569865"
