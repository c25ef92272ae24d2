"""The chaos world: deterministic for a seed, every kind of record, cancellations after their
return, and what each cancellation is due to give back."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from chaos_world import (
    CANCELLATION,
    CANCELLED_RETURN,
    ENROL_PROMOTION,
    OTHER_PARTITION_CANCELLATION,
    REPLAY,
    RETURN,
    SECOND_CANCELLATION,
    UNKNOWN_CANCELLATION,
    ChaosWorld,
    Outgoing,
    build_world,
)

from service.kafka.partitioner import java_partition
from service.pipeline.records import Record
from service.pipeline.replays import replay_of


def _world(count: int = 400, seed: str = "7", **options: Any) -> ChaosWorld:
    return build_world(count, random.Random(seed), "run-1", **options)


def _event(record: Outgoing) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(record.value)
    return value


def _shape(world: ChaosWorld) -> list[tuple[Any, ...]]:
    """Everything of the records but the timestamps (the run's)."""
    shape: list[tuple[Any, ...]] = []
    for record in (*world.stream, *world.late):
        event = _event(record)
        event.pop("occurred_at")
        event["order"].pop("ordered_at")
        shape.append((record.event_id, record.kind, record.key, record.headers, record.after))
        shape.append((record.at_progress, record.partition(3), json.dumps(event, sort_keys=True)))
    return shape


def test_build_world_same_seed_gives_the_same_world() -> None:
    assert _shape(_world(seed="7")) == _shape(_world(seed="7"))
    assert _shape(_world(seed="7")) != _shape(_world(seed="8"))


def test_build_world_counts_every_event_once_and_holds_every_kind() -> None:
    world = _world()

    assert len(world.event_ids) == len(set(world.event_ids)) == 400
    originals = [r.event_id for r in (*world.stream, *world.late) if r.kind != REPLAY]
    assert sorted(originals) == sorted(world.event_ids)
    kinds = {r.kind for r in (*world.stream, *world.late)}
    assert kinds == {
        RETURN,
        CANCELLATION,
        SECOND_CANCELLATION,
        OTHER_PARTITION_CANCELLATION,
        UNKNOWN_CANCELLATION,
        REPLAY,
    }


def test_build_world_puts_each_cancellation_after_its_return_in_the_stream() -> None:
    world = _world()
    position = {r.event_id: n for n, r in enumerate(world.stream) if r.kind != REPLAY}

    for returned, cancellations in world.cancellations.items():
        in_stream = [c for c in cancellations if c in position]
        assert all(position[returned] < position[c] for c in in_stream)
        assert in_stream == sorted(in_stream, key=position.__getitem__)
        assert all(world.original(c).key == world.original(returned).key for c in cancellations)


def test_build_world_publishes_other_partition_cancellations_late_elsewhere() -> None:
    world = _world()
    moved = [r for r in world.late if r.kind == OTHER_PARTITION_CANCELLATION]

    assert moved
    for record in moved:
        assert record.after == (world.return_of[record.event_id],)
        for partitions in (2, 3, 6):
            elsewhere = record.partition(partitions)
            assert elsewhere is not None
            assert elsewhere != java_partition(record.key, partitions)
        assert record.at_progress <= 0.85 * len(world.event_ids)
    assert all(r.partition(3) is None for r in world.stream)


def test_build_world_with_one_partition_keeps_every_cancellation_in_the_stream() -> None:
    world = _world(partitions=1)

    assert world.count(OTHER_PARTITION_CANCELLATION) == 0
    assert world.count(CANCELLATION) > 0


def test_build_world_is_due_to_give_back_each_earn_a_cancelled_return_lists() -> None:
    world = _world()
    due: dict[tuple[int, int], int] = {}
    enrolments = set()
    for returned in world.cancellations:
        event = _event(world.original(returned))
        customer = event["customer"]["id"]
        assert world.give_back_of[customer] == returned
        for entry in event["earned"]["loyalty_promotions"]:
            promotion = entry.get("promotion_id", 202090)
            due[(promotion, customer)] = due.get((promotion, customer), 0) + len(entry["earn_ids"])
            if promotion == ENROL_PROMOTION:
                enrolments.add((promotion, customer))

    assert due == world.due_earns
    assert enrolments == world.due_enrolments
    for cancellation, returned in world.return_of.items():
        cancelled = _event(world.original(cancellation))["cancelled_return"]
        assert cancelled["return_event_id"] == returned


def test_build_world_owes_nothing_for_cancellations_of_returns_before_the_run() -> None:
    world = _world()
    unknown = [e for e, kind in world.kinds.items() if kind == UNKNOWN_CANCELLATION]

    assert unknown
    for event_id in unknown:
        event = _event(world.original(event_id))
        assert event["cancelled_return"]["return_event_id"] not in world.kinds
        assert event["customer"]["id"] not in world.give_back_of
        assert not any(customer == event["customer"]["id"] for _, customer in world.due_earns)


def test_build_world_replays_carry_replay_headers_and_wait_where_they_must() -> None:
    world = _world()
    replays = [r for r in (*world.stream, *world.late) if r.kind == REPLAY]

    assert len({r.replay_id for r in replays}) == len(replays) == 16
    for record in replays:
        read = Record("returns", 0, 0, record.key, record.value, headers=record.headers)
        replay = replay_of(read)
        assert replay is not None
        assert replay.replay_id == record.replay_id
        assert record.value == world.original(record.event_id).value
    held = [r for r in replays if r.replayed == CANCELLED_RETURN]
    assert held
    for record in held:
        assert set(record.after) == {record.event_id, *world.cancellations[record.event_id]}
        assert record in world.late
    # A replay in the stream comes right behind the event it re-drives.
    position = {r.event_id: n for n, r in enumerate(world.stream) if r.kind != REPLAY}
    for n, record in enumerate(world.stream):
        if record.kind == REPLAY:
            assert position[record.event_id] < n


@pytest.mark.parametrize("count", [1, 2, 3, 10])
def test_build_world_small_counts_are_exact(count: int) -> None:
    assert len(_world(count).event_ids) == count
