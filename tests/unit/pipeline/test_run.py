"""run: transactions per partition over the finished prefix, pause on outages, drain on stop."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

from service.actions import Decision, Plan, RevokeCouponCodes
from service.capillary.requests import CouponCodesRevoke
from service.capillary.results import ItemResult, ResultClass
from service.clock import FakeClock
from service.errors import DeadLetterFloodError
from service.events import ReturnEvent
from service.ids import CountingIds
from service.kafka.partitioner import java_partition
from service.ledger import LedgerFacts
from service.observe.tracing import Tracing
from service.outcome import OutcomeEvent, OutcomeStatus, SourceRecord
from service.pipeline.execute import Executor
from service.pipeline.flood import DeadLetterCap
from service.pipeline.plan import Planner
from service.pipeline.process import Processor
from service.pipeline.records import Record, Routed, origin_headers, origin_in
from service.pipeline.retries import RetryPolicy
from service.pipeline.route import Router
from service.pipeline.run import Runner
from service.pipeline.state import PROGRESS_KEY, EventState, Progress, StateStore
from tests.factories import event_bytes
from tests.fakes import FakeCapillary, FakeCommitter, FakeSource, FakeStateReader


def _empty_plan(event: ReturnEvent, now: datetime, facts: LedgerFacts | None = None, /) -> Plan:
    return Plan(
        event_id=event.event_id,
        decision=Decision.NOTHING_TO_DO,
        summary="nothing",
        decided_at=now,
        policy_version="p",
    )


def _coupon_plan(event: ReturnEvent, now: datetime, facts: LedgerFacts | None = None, /) -> Plan:
    action = RevokeCouponCodes(
        action_id="c", reason_code="full_return", reason="r", series_id=1, codes=["A"]
    )
    return _empty_plan(event, now).model_copy(update={"actions": [action]})


def _records(partition: int, offsets: range) -> list[Record]:
    return [
        Record("returns", partition, o, None, event_bytes(event_id=f"e-{partition}-{o}"))
        for o in offsets
    ]


class _Probe:
    """Answers scripted probe results in order (the last one repeats)."""

    def __init__(self, *answers: str | None) -> None:
        self.answers = list(answers) or [None]
        self.calls = 0
        self.answered = asyncio.Event()
        """Set when a probe found Capillary answering."""

    async def __call__(self) -> str | None:
        self.calls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer is None:
            self.answered.set()
        return answer


class _UnavailableOnSecondCall(FakeCapillary):
    """The second coupon call gets no answer about its items, as in an outage."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    async def revoke_coupons_by_codes(self, request: CouponCodesRevoke) -> list[ItemResult]:
        results = await super().revoke_coupons_by_codes(request)
        if len(self.calls) == 2:
            unavailable = ResultClass.UNAVAILABLE
            return [ItemResult(item="coupon:A", result_class=unavailable, message=self.message)]
        return results


class _Setup:
    def __init__(
        self,
        source: FakeSource,
        *,
        planner: Planner = _empty_plan,
        api: FakeCapillary | None = None,
        probe: _Probe | None = None,
        grace: float = 5,
        cap: DeadLetterCap | None = None,
        bound: int = 100,
        commit_interval: float = 3600,
        tracing: Tracing | None = None,
        router: Router | None = None,
    ) -> None:
        self.clock = FakeClock()
        source.clock = self.clock
        self.source = source
        self.api = api or FakeCapillary()
        self.reader = FakeStateReader()
        self.state = StateStore(self.reader, window=timedelta(days=35))
        self.committer = FakeCommitter(state_topic=self.reader)
        self.probe = probe or _Probe()
        processor = Processor(
            planner=planner,
            executor=Executor(self.api),
            clock=self.clock,
            ids=CountingIds(),
            state=self.state,
            starts=self.committer,
            retry_policy=RetryPolicy(max_attempts=3, initial_delay_seconds=1, max_delay_seconds=8),
        )
        self.runner = Runner(
            source=source,
            committer=self.committer,
            processor=processor,
            state=self.state,
            probe=self.probe,
            dead_letter_cap=cap or DeadLetterCap(max_share=0.5, min_count=20),
            clock=self.clock,
            grace_seconds=grace,
            commit_interval_seconds=commit_interval,
            events_in_flight=bound,
            probe_initial_seconds=1,
            probe_max_seconds=4,
            tracing=tracing,
            router=router,
        )

    async def run_until_drained(self) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(self.runner.run(stop))
        await self.source.drained.wait()
        await self.runner.idle()
        stop.set()
        await task


async def test_run_commits_each_partition_in_one_transaction_past_its_finished_records() -> None:
    batch1 = _records(0, range(0, 3)) + _records(1, range(10, 12))
    batch2 = [*_records(0, range(3, 4)), Record("returns", 1, 12, None, b"junk")]
    s = _Setup(FakeSource(batches=[batch1, batch2]))

    await s.run_until_drained()

    # The commit interval (an hour here) never came: everything went in the final commit.
    assert sorted((p, len(f), o) for p, f, o in s.committer.commits) == [
        (0, 4, {"returns": 4}),
        (1, 3, {"returns": 13}),
    ]
    assert len(s.committer.outcomes) == 6
    assert len(s.committer.dead_letters) == 1
    stats = s.runner.stats
    assert (stats.records, stats.outcomes, stats.dead_letters) == (7, 6, 1)
    assert s.source.started
    assert s.source.stopped
    assert s.committer.stopped


async def test_run_remembers_what_it_committed_so_a_redelivery_is_a_duplicate() -> None:
    first = _records(0, range(0, 1))
    again = [Record("returns", 0, 5, None, first[0].value)]
    s = _Setup(FakeSource(batches=[first, again]))
    await s.run_until_drained()
    statuses = [o.status.value for o in s.committer.outcomes]
    assert statuses == ["completed", "duplicate"]


async def test_run_routes_a_record_off_its_keys_partition_and_handles_the_copy_there() -> None:
    key = b"555567088"
    home = java_partition(key, 3)
    elsewhere = (home + 1) % 3
    value = event_bytes(event_id="e-routed")
    misplaced = Record("returns", elsewhere, 7, key, value)
    source = FakeSource(batches=[[misplaced]])
    s = _Setup(source, planner=_coupon_plan, router=Router("returns"))
    await s.run_until_drained()

    # Nothing is called for the misplaced record: its copy goes to the key's partition, in
    # the transaction that commits its offset.
    [(partition, [finished], offsets)] = s.committer.commits
    assert (partition, offsets) == (elsewhere, {"returns": 8})
    assert finished.result == Routed(misplaced, home, key)
    assert s.api.calls == []
    assert s.runner.stats.routed == 1

    # The copy as the consumer reads it from the routed topic: handled, named by its original;
    # the same event arriving on its key's partition too is then a duplicate.
    headers = tuple(origin_headers(misplaced))
    copy = Record("routed", home, 0, key, value, headers, origin=origin_in(headers, "returns"))
    direct = Record("returns", home, 3, key, value)
    s2 = _Setup(
        FakeSource(batches=[[copy], [direct]]), planner=_coupon_plan, router=Router("returns")
    )
    await s2.run_until_drained()
    first, second = s2.committer.outcomes
    assert first.status is OutcomeStatus.COMPLETED
    assert first.event.record == SourceRecord(topic="returns", partition=elsewhere, offset=7)
    assert second.status is OutcomeStatus.DUPLICATE
    assert len(s2.api.calls) == 1


async def test_run_sets_up_assigned_partitions_and_settles_revoked_ones() -> None:
    s = _Setup(FakeSource(batches=[]))
    s.reader.put(
        1,
        EventState(
            event_id="x",
            phase="started",
            at=s.clock.now(),
            input_partition=1,
            input_offset=0,
        ),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(s.runner.run(stop))
    await s.source.drained.wait()
    assert sorted(s.committer.opened) == [0, 1, 2]
    assert s.state.size() == 1
    assert s.source.on_revoked is not None
    await s.source.on_revoked([1])
    assert s.committer.closed == [1]
    assert s.state.size() == 0
    stop.set()
    await task


async def test_run_stop_mid_batch_commits_the_processed_prefix_and_reads_the_rest_again() -> None:
    stop = asyncio.Event()

    class StopsOnSecondCall(FakeCapillary):
        async def revoke_coupons_by_codes(self, request: CouponCodesRevoke) -> list[ItemResult]:
            if len(self.calls) == 1:
                stop.set()
            return await super().revoke_coupons_by_codes(request)

    s = _Setup(
        FakeSource(batches=[_records(0, range(0, 5))]),
        planner=_coupon_plan,
        api=StopsOnSecondCall(),
    )
    await s.runner.run(stop)

    assert [(p, o) for p, _, o in s.committer.commits] == [(0, {"returns": 2})]
    # The rest is not taken: whoever reads the partition next starts at the committed 2.
    assert s.runner.stats.records == 2
    assert s.source.stopped


async def test_run_outcome_per_record_in_partition_order() -> None:
    s = _Setup(FakeSource(batches=[_records(2, range(5, 9))]))
    await s.run_until_drained()
    offsets = [o.event.record.offset for o in s.committer.outcomes if o.event.record]
    assert offsets == [5, 6, 7, 8]
    assert all(isinstance(o, OutcomeEvent) for o in s.committer.outcomes)


async def test_run_capillary_outage_commits_the_prefix_pauses_and_probes_until_it_answers() -> None:
    probe = _Probe(
        "coupon_revoke: HTTP 503", "coupon_revoke: HTTP 503", "coupon_revoke: HTTP 503", None
    )
    s = _Setup(
        FakeSource(batches=[_records(0, range(0, 3))]),
        planner=_coupon_plan,
        api=_UnavailableOnSecondCall("HTTP 503"),
        probe=probe,
    )
    stop = asyncio.Event()
    with capture_logs() as logs:
        task = asyncio.create_task(s.runner.run(stop))
        await probe.answered.wait()
        stop.set()
        await task

    # The first event is committed; nothing is published for the second or third.
    assert [(p, o) for p, _, o in s.committer.commits] == [(0, {"returns": 1})]
    assert s.runner.stats.failed_outcomes == 0
    assert s.source.pauses == 1
    assert s.source.seeks == [("returns", 0, 1)]
    assert not s.source.paused_all  # resumed once a probe succeeded
    events = [e["event"] for e in logs]
    assert events.count("capillary_probe_failed") == 2
    assert "capillary_outage_paused" in events
    assert "capillary_probe_succeeded" in events
    failed = [e for e in logs if e["event"] == "capillary_probe_failed"]
    assert failed[0]["reason"] == "coupon_revoke: HTTP 503"


async def test_run_one_event_failing_while_capillary_answers_takes_the_retry_path() -> None:
    s = _Setup(
        FakeSource(batches=[_records(0, range(0, 3))]),
        planner=_coupon_plan,
        api=_UnavailableOnSecondCall("HTTP 500"),
        probe=_Probe(None),
    )
    await s.run_until_drained()

    assert s.source.pauses == 0
    [retry] = s.committer.retries
    assert (retry.record.offset, retry.attempt) == (1, 2)
    assert [o.event.event_id for o in s.committer.outcomes] == ["e-0-0", "e-0-2"]
    assert s.committer.offsets() == {("returns", 0): 3}


async def test_run_failed_transaction_starts_the_partition_over_from_kafka() -> None:
    # The start marker of the second event fails: that partition's producer is reset, its
    # state read again from Kafka, and it is read again from its first uncommitted record.
    s = _Setup(FakeSource(batches=[_records(0, range(0, 3))]), planner=_coupon_plan)
    s.committer.fail_starts = 1
    s.reader.put(
        0,
        EventState(
            event_id="earlier", phase="started", at=s.clock.now(), input_partition=0,
            input_offset=0,
        ),
    )  # fmt: skip
    stop = asyncio.Event()
    with capture_logs() as logs:
        task = asyncio.create_task(s.runner.run(stop))
        await s.committer.reset_done.wait()
        await s.runner.idle()
        stop.set()
        await task
    assert s.committer.resets == [0]
    assert ("returns", 0, 0) in s.source.seeks
    assert "transaction_failed" in [e["event"] for e in logs]
    # Nothing of partition 0 was committed past the failure.
    assert s.committer.offsets() == {}


async def test_run_failed_final_commit_leaves_the_records_to_be_read_again() -> None:
    s = _Setup(FakeSource(batches=[_records(0, range(0, 2))]))
    s.committer.fail_next = 1
    await s.run_until_drained()
    assert s.committer.commits == []
    assert s.runner.stats.committed == {}


async def test_run_stops_when_dead_letters_flood() -> None:
    junk = [Record("returns", 0, o, None, b"junk") for o in range(0, 30)]
    s = _Setup(FakeSource(batches=[junk]), cap=DeadLetterCap(max_share=0.5, min_count=5))
    with pytest.raises(DeadLetterFloodError):
        await s.runner.run(asyncio.Event())
    # What was finished before the cap tripped is committed, nothing after it.
    assert s.committer.offsets() == {("returns", 0): 6}
    assert s.source.stopped


async def test_run_drain_past_the_grace_period_stops_cleanly_and_commits_nothing() -> None:
    call_started = asyncio.Event()

    class HangingCapillary(FakeCapillary):
        async def revoke_coupons_by_codes(self, request: CouponCodesRevoke) -> list[ItemResult]:
            call_started.set()
            await asyncio.Event().wait()  # Capillary never answers
            raise AssertionError("unreachable")

    s = _Setup(
        FakeSource(batches=[_records(0, range(0, 2))]),
        planner=_coupon_plan,
        api=HangingCapillary(),
        grace=0.05,
    )
    stop = asyncio.Event()
    with capture_logs() as logs:
        task = asyncio.create_task(s.runner.run(stop))
        await call_started.wait()
        stop.set()
        stats = await task

    assert s.committer.commits == []
    assert stats.committed == {}
    assert s.source.stopped
    assert "drain_timed_out" in [entry["event"] for entry in logs]


def _customer_records(partition: int, customers: list[int]) -> list[Record]:
    """One record per customer id, offsets from 0, each with its own event id."""
    return [
        Record(
            "returns",
            partition,
            offset,
            None,
            event_bytes(event_id=f"e-{offset}", customer={"id": customer}),
        )
        for offset, customer in enumerate(customers)
    ]


class _GatedCapillary(FakeCapillary):
    """Coupon calls wait at their event's gate; starts and ends are noted per event."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: dict[str, asyncio.Event] = {}
        self.active: set[str] = set()
        self.most_active = 0
        self.order: list[str] = []
        self.changed = asyncio.Event()

    def gate(self, event_id: str) -> asyncio.Event:
        return self.gates.setdefault(event_id, asyncio.Event())

    async def revoke_coupons_by_codes(self, request: CouponCodesRevoke) -> list[ItemResult]:
        [code] = request.codes
        self.active.add(code)
        self.most_active = max(self.most_active, len(self.active))
        self.order.append(code)
        self._poke()
        await self.gate(code).wait()
        self.active.discard(code)
        self._poke()
        return await super().revoke_coupons_by_codes(request)

    def _poke(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    async def until(self, condition: Any, seconds: float = 5.0) -> None:
        async with asyncio.timeout(seconds):
            while not condition():
                await self.changed.wait()


def _coupon_per_event(
    event: ReturnEvent, now: datetime, facts: LedgerFacts | None = None, /
) -> Plan:
    """One coupon call per event, its code the event id (so the fake knows whose call)."""
    action = RevokeCouponCodes(
        action_id="c", reason_code="full_return", reason="r", series_id=1, codes=[event.event_id]
    )
    return _empty_plan(event, now).model_copy(update={"actions": [action]})


async def test_run_different_customers_at_once_one_customers_events_in_order() -> None:
    api = _GatedCapillary()
    records = _customer_records(0, [1, 2, 1, 3])
    s = _Setup(FakeSource(batches=[records]), planner=_coupon_per_event, api=api)
    stop = asyncio.Event()
    task = asyncio.create_task(s.runner.run(stop))

    # Customers 1, 2 and 3 call at once; customer 1's second event waits for its first.
    await api.until(lambda: api.active == {"e-0", "e-1", "e-3"})
    api.gate("e-1").set()
    api.gate("e-3").set()
    await api.until(lambda: api.active == {"e-0"})
    assert "e-2" not in api.order
    api.gate("e-0").set()
    await api.until(lambda: "e-2" in api.active)
    api.gate("e-2").set()
    await s.runner.idle()
    stop.set()
    await task

    assert api.most_active == 3
    assert api.order.index("e-0") < api.order.index("e-2")
    assert s.runner.stats.in_flight_peak == 4
    assert s.committer.offsets() == {("returns", 0): 4}


async def test_run_offsets_stop_at_the_first_unfinished_event_outcomes_do_not() -> None:
    api = _GatedCapillary()
    records = _customer_records(0, [1, 2, 3])
    s = _Setup(
        FakeSource(batches=[records]), planner=_coupon_per_event, api=api, commit_interval=0.001
    )
    stop = asyncio.Event()
    task = asyncio.create_task(s.runner.run(stop))
    await api.until(lambda: len(api.active) == 3)
    api.gate("e-1").set()
    api.gate("e-2").set()
    async with asyncio.timeout(5):
        while sorted(o.event.event_id for o in s.committer.outcomes) != ["e-1", "e-2"]:
            await s.committer.committed.wait()

    # e-1 and e-2 are published; the offset cannot pass unfinished e-0, and the partition's
    # progress record says which records beyond it are finished.
    assert s.committer.offsets() == {}
    assert _progress(s.reader, 0) == {"returns": [1, 2]}
    api.gate("e-0").set()
    async with asyncio.timeout(5):
        while s.committer.offsets() != {("returns", 0): 3}:
            await s.committer.committed.wait()
    stop.set()
    await task
    assert sorted(o.event.event_id for o in s.committer.outcomes) == ["e-0", "e-1", "e-2"]


def _progress(reader: FakeStateReader, partition: int) -> dict[str, list[int]]:
    """The newest progress record of a state partition."""
    values = [v for k, v in reader.partitions.get(partition, []) if k == PROGRESS_KEY]
    return Progress.model_validate_json(values[-1] or b"{}").finished if values else {}


async def test_run_after_a_restart_publishes_nothing_for_records_its_progress_shows_finished() -> (
    None
):
    # Offset 1 was finished and committed before the crash, as its progress record says,
    # while offset 0 was not: both are read again. Offset 1's event was replayed since (its
    # state names another delivery), which its state alone could not tell.
    reader = FakeStateReader()
    reader.partitions[0] = [
        (PROGRESS_KEY, Progress(finished={"returns": [1]}).model_dump_json().encode())
    ]
    s = _Setup(FakeSource(batches=[_records(0, range(0, 2))]), planner=_coupon_plan)
    s.reader.partitions.update(reader.partitions)
    await s.run_until_drained()

    assert [o.event.event_id for o in s.committer.outcomes] == ["e-0-0"]
    assert len(s.api.calls) == 1
    assert s.runner.stats.read_again == 1
    assert s.committer.offsets() == {("returns", 0): 2}


async def test_run_at_the_bound_pauses_and_the_rest_of_the_fetch_waits_for_room() -> None:
    api = _GatedCapillary()
    records = _customer_records(0, [1, 2, 3, 4])
    s = _Setup(FakeSource(batches=[records]), planner=_coupon_per_event, api=api, bound=2)
    stop = asyncio.Event()
    task = asyncio.create_task(s.runner.run(stop))
    await api.until(lambda: len(api.active) == 2)

    # Two taken, the partitions paused, the other two kept (not fetched again).
    assert s.source.paused_all
    assert s.runner.in_flight == 2
    assert s.source.seeks == []
    api.gate("e-0").set()
    await api.until(lambda: api.active == {"e-1", "e-2"})  # room for one: the next goes
    for gate in ("e-1", "e-2", "e-3"):
        api.gate(gate).set()
    await s.runner.idle()
    stop.set()
    await task
    assert api.most_active == 2
    assert api.order == ["e-0", "e-1", "e-2", "e-3"]
    assert s.committer.offsets() == {("returns", 0): 4}


# --- what the health port and the metrics read ------------------------------------------------


async def test_run_is_not_ready_while_paused_for_an_outage_and_ready_again_after() -> None:
    seen: list[tuple[str | None, str | None]] = []

    class Watching(_Probe):
        async def __call__(self) -> str | None:
            seen.append((s.runner.paused_reason, s.runner.not_ready()))
            return await super().__call__()

    probe = Watching("coupon_revoke: HTTP 503", "coupon_revoke: HTTP 503", None)
    s = _Setup(
        FakeSource(batches=[_records(0, range(0, 3))]),
        planner=_coupon_plan,
        api=_UnavailableOnSecondCall("HTTP 503"),
        probe=probe,
    )
    assert s.runner.progress_at is None
    stop = asyncio.Event()
    task = asyncio.create_task(s.runner.run(stop))
    await probe.answered.wait()
    after = (s.runner.paused_reason, s.runner.not_ready())
    stop.set()
    await task

    # The first probe decides the outage; the ones while paused see the reason.
    paused = [entry for entry in seen if entry[0] is not None]
    assert paused
    assert all(reason == "capillary_outage" for reason, _ in paused)
    assert all("paused: Capillary is unavailable" in (why or "") for _, why in paused)
    assert after == (None, None)
    assert s.runner.progress_at is not None
    assert s.runner.not_ready() == "stopping"


async def test_run_outcomes_carry_the_trace_of_the_input() -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    record = Record(
        "returns", 0, 0, None, event_bytes(event_id="traced"), (("traceparent", parent.encode()),)
    )
    s = _Setup(FakeSource(batches=[[record]]))
    await s.run_until_drained()
    [(_, [finished], _)] = s.committer.commits
    # Tracing is off by default: the input's context goes on as it came.
    assert dict(finished.trace)["traceparent"].decode() == parent


async def test_run_with_an_exporter_outcomes_carry_the_events_own_span_in_the_inputs_trace() -> (
    None
):
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    record = Record(
        "returns", 0, 0, None, event_bytes(event_id="traced"), (("traceparent", parent.encode()),)
    )
    exporter = InMemorySpanExporter()
    s = _Setup(
        FakeSource(batches=[[record]]),
        tracing=Tracing.with_processor(SimpleSpanProcessor(exporter)),
    )
    await s.run_until_drained()
    [(_, [finished], _)] = s.committer.commits
    _, trace_id, span_id, _ = dict(finished.trace)["traceparent"].decode().split("-")
    [span] = exporter.get_finished_spans()
    assert trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span_id == format(span.context.span_id, "016x")
    assert dict(span.attributes or {})["return_handler.status"] == "completed"


async def test_run_lag_is_what_the_partition_holds_beyond_what_finished_and_committed() -> None:
    source = FakeSource(batches=[_records(0, range(0, 3))])
    source.ends = {("returns", 0): (10, 3), ("returns", 1): (4, 4)}
    s = _Setup(source)
    await s.run_until_drained()
    assert s.runner.lag() == {("returns", 0): 7, ("returns", 1): 0}
