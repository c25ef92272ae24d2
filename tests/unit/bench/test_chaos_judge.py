"""The chaos run's judge: harm counts from the outcomes, the records published and the
sandbox's ledger and state."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from chaos import HARMS, Seen, judge
from chaos_world import (
    CANCELLATION,
    CANCELLED_RETURN,
    REPLAY,
    SECOND_CANCELLATION,
    UNKNOWN_CANCELLATION,
    ChaosWorld,
    Outgoing,
    build_world,
)


def _world() -> ChaosWorld:
    return build_world(300, random.Random("judge"), "run-1")


def _published(world: ChaosWorld) -> list[Outgoing]:
    return [*world.stream, *world.late]


def _answers(world: ChaosWorld) -> list[Seen]:
    """What a service that does everything right answers."""
    status = {UNKNOWN_CANCELLATION: "return_unknown"}
    reports = {SECOND_CANCELLATION: frozenset({"already_cancelled"})}
    seen = [
        Seen(e, status.get(kind, "completed"), None, reports.get(kind, frozenset()))
        for e, kind in world.kinds.items()
    ]
    for record in _published(world):
        if record.kind == REPLAY:
            kind = world.kinds[record.event_id]
            held = frozenset({"cancelled_since"}) if record.replayed == CANCELLED_RETURN else None
            answer = Seen(
                record.event_id,
                status.get(kind, "completed"),
                record.replay_id,
                held or reports.get(kind, frozenset()),
            )
            seen.append(answer)
    return seen


def _pairs(counts: dict[tuple[int, int], int]) -> list[dict[str, int]]:
    return [
        {"promotion_id": p, "customer_id": c, "count": n} for (p, c), n in sorted(counts.items())
    ]


def _ledger(world: ChaosWorld) -> dict[str, Any]:
    """The sandbox's ledger after a run that did everything right."""
    return {
        "revoked": dict.fromkeys(sorted(world.due_revoked), 1),
        "earns_issued": _pairs(world.due_earns),
        "enrolments": _pairs(dict.fromkeys(world.due_enrolments, 1)),
        "deactivations": {},
        "deactivations_repeated": 0,
    }


def _state(world: ChaosWorld) -> dict[str, Any]:
    """The sandbox's final state after a run that did everything right (the given-back
    earns and enrolments are new ones: they do not matter here)."""
    gone = world.due_revoked
    seed = world.seed
    return {
        "loyalty_earns": [
            {"earn_id": e.earn_id, "revoked": e.revoked or f"loyalty_earn:{e.earn_id}" in gone}
            for e in seed.loyalty_earns
        ],
        "enrolments": [
            {
                "issual_id": e.issual_id,
                "active": e.active and f"loyalty_enrolment:{e.issual_id}" not in gone,
            }
            for e in seed.enrolments
        ],
        "cart_earns": [
            {"id": e.id, "revoked": e.revoked or f"cart_earn:{e.id}" in gone}
            for e in seed.cart_earns
        ],
        "coupons": [
            {"id": c.id, "revoked": c.revoked or f"coupon:{c.id}" in gone} for c in seed.coupons
        ],
    }


def _harms(result: dict[str, Any]) -> dict[str, int]:
    return {name: result[name] for name in HARMS if result[name]}


def _customer_of(world: ChaosWorld, kind: str) -> tuple[str, int]:
    event_id = next(e for e, k in world.kinds.items() if k == kind)
    return event_id, int(world.original(event_id).key)


def test_judge_finds_no_harm_when_everything_was_done_once() -> None:
    world = _world()

    result = judge(world, _answers(world), _published(world), _ledger(world), _state(world))

    assert _harms(result) == {}
    assert result["harm_free"]
    replays = sum(1 for r in _published(world) if r.kind == REPLAY)
    assert result["replays_published"] == replays
    assert result["committed_outcomes"] == result["expected_outcomes"] == 300 + replays
    assert result["checks"] == dict.fromkeys(result["checks"], 0)
    assert result["outcomes_by_status"]["return_unknown"] > 0


def test_judge_counts_an_earn_given_back_for_a_return_before_the_run() -> None:
    world = _world()
    ledger = _ledger(world)
    _, customer = _customer_of(world, UNKNOWN_CANCELLATION)
    ledger["earns_issued"].append({"promotion_id": 202779, "customer_id": customer, "count": 1})

    result = judge(world, _answers(world), _published(world), ledger, _state(world))

    assert _harms(result) == {"earns_issued_never_revoked": 1}
    assert result["earns_issued_never_revoked_pairs"] == [[202779, customer]]


def test_judge_counts_an_earn_given_back_whose_earn_the_run_did_not_revoke() -> None:
    world = _world()
    ledger = _ledger(world)
    pair = next(iter(world.due_earns))
    earns = [e.earn_id for e in world.seed.loyalty_earns if (e.promotion_id, e.customer_id) == pair]
    ledger["revoked"].pop(f"loyalty_earn:{earns[0]}")

    result = judge(world, _answers(world), _published(world), ledger, _state(world))

    assert result["earns_issued_never_revoked"] == 1


def test_judge_counts_a_due_earn_not_issued_unless_the_outcome_flags_it() -> None:
    world = _world()
    ledger = _ledger(world)
    pair = next(iter(world.due_earns))
    ledger["earns_issued"] = [
        p for p in ledger["earns_issued"] if (p["promotion_id"], p["customer_id"]) != pair
    ]
    answers = _answers(world)

    silent = judge(world, answers, _published(world), ledger, _state(world))

    assert _harms(silent) == {"give_back_earns_not_issued_unflagged": world.due_earns[pair]}
    cancellations = set(world.cancellations[world.give_back_of[pair[1]]])
    flagged = [
        Seen(o.event_id, "needs_check", o.replay_id, o.reports)
        if o.event_id in cancellations
        else o
        for o in answers
    ]
    told = judge(world, flagged, _published(world), ledger, _state(world))
    assert _harms(told) == {}
    assert told["give_back_earns_not_issued_flagged"] == world.due_earns[pair]


def test_judge_counts_a_cancellation_of_a_run_return_answered_return_unknown_as_a_loss() -> None:
    world = _world()
    ledger = _ledger(world)
    cancellation = next(e for e, k in world.kinds.items() if k == CANCELLATION)
    returned = world.return_of[cancellation]
    customer = int(world.original(returned).key)
    lost = {pair: n for pair, n in world.due_earns.items() if pair[1] == customer}
    ledger["earns_issued"] = [p for p in ledger["earns_issued"] if p["customer_id"] != customer]
    answers = [
        Seen(o.event_id, "return_unknown", o.replay_id, frozenset({"return_unknown"}))
        if o.event_id in world.cancellations[returned]
        else o
        for o in _answers(world)
    ]

    result = judge(world, answers, _published(world), ledger, _state(world))

    assert _harms(result) == {"give_back_earns_not_issued_unflagged": sum(lost.values())}
    assert result["checks"]["run_return_cancellations_answered_return_unknown"] >= 1


def test_judge_counts_outcomes_per_delivery_and_per_replay() -> None:
    world = _world()
    answers = _answers(world)
    replay = next(o for o in answers if o.replay_id is not None)
    original = next(o for o in answers if o.replay_id is None)

    twice = judge(
        world,
        [*answers, Seen(original.event_id, "duplicate")],
        _published(world),
        _ledger(world),
        _state(world),
    )
    missing = judge(
        world, [o for o in answers if o != replay], _published(world), _ledger(world), _state(world)
    )

    assert _harms(twice) == {"events_with_more_than_one_outcome": 1}
    assert not twice["harm_free"]
    assert _harms(missing) == {"events_without_outcome": 1}


def test_judge_takes_repeated_deactivations_and_revokes_from_the_ledger() -> None:
    world = _world()
    ledger = _ledger(world)
    ledger["deactivations"] = {"deactivation:x/1/abc": 2, "deactivation:x/2/def": 1}
    ledger["deactivations_repeated"] = 1
    key = next(iter(sorted(world.due_revoked)))
    ledger["revoked"][key] = 2

    result = judge(world, _answers(world), _published(world), ledger, _state(world))

    assert _harms(result) == {"deactivations_repeated": 1, "benefits_revoked_more_than_once": 1}
    assert result["deactivations_repeated_targets"] == ["deactivation:x/1/abc"]


def test_judge_checks_what_second_cancellations_and_held_back_replays_answered() -> None:
    world = _world()
    plain = [Seen(o.event_id, o.status, o.replay_id) for o in _answers(world)]

    result = judge(world, plain, _published(world), _ledger(world), _state(world))

    assert _harms(result) == {}
    kinds = Counter(world.kinds.values())
    held = sum(1 for r in _published(world) if r.replayed == CANCELLED_RETURN)
    assert (
        result["checks"]["second_cancellations_not_already_cancelled"] == kinds[SECOND_CANCELLATION]
    )
    assert result["checks"]["cancelled_return_replays_not_held_back"] == held > 0


def test_judge_counts_a_given_back_benefit_revoked_again_as_harm() -> None:
    world = _world()
    ledger = _ledger(world)
    made_in_run = max(e.issual_id for e in world.seed.enrolments) + 1
    ledger["revoked"][f"loyalty_enrolment:{made_in_run}"] = 1

    result = judge(world, _answers(world), _published(world), ledger, _state(world))

    # A return run again after its cancellation took the re-enrolment back: money lost.
    assert _harms(result) == {"given_back_benefits_revoked_again": 1}
    assert result["benefits_revoked_not_due_count"] == 1
