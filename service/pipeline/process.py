"""The one place that puts the steps in order: validate, plan, execute, publish.

It writes one canonical log line per record (``event_processed`` or
``event_dead_lettered``) with everything an operator needs to find it again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime

from service import __version__
from service.actions import IssueLoyaltyEarn, Plan
from service.clock import Clock
from service.events import ReturnEvent
from service.logging import (
    add_event_context,
    bind_event_context,
    clear_event_context,
    get_logger,
)
from service.outcome import (
    ActionResult,
    EventIdentity,
    OutcomeEvent,
    OutcomeStatus,
    ServiceInfo,
    SourceRecord,
)
from service.pipeline.execute import Executor
from service.pipeline.history import AttemptHistory, RecentAttempts
from service.pipeline.records import DeadLetter, Record, ResultSink
from service.pipeline.validate import validate

log = get_logger(__name__)

Planner = Callable[[ReturnEvent, datetime], Plan]
"""The rules with the policy already bound: (event, now) -> plan. Pure."""

REISSUE_WARNING = (
    "This outcome re-issued loyalty earns. Capillary's EARN has no idempotency key: "
    "replaying this event issues them again. Check the earned ids below before any replay."
)


class Processor:
    """Handles one record from bytes to a published outcome (or dead letter)."""

    def __init__(
        self,
        *,
        planner: Planner,
        executor: Executor,
        sink: ResultSink,
        clock: Clock,
        history: AttemptHistory | None = None,
    ) -> None:
        self._planner = planner
        self._executor = executor
        self._sink = sink
        self._clock = clock
        self._history: AttemptHistory = history if history is not None else RecentAttempts()

    async def handle(self, record: Record) -> OutcomeEvent | DeadLetter:
        """Process one record; returns once its outcome or dead letter is acknowledged."""
        started = self._clock.monotonic()
        bind_event_context(topic=record.topic, partition=record.partition, offset=record.offset)
        try:
            parsed = validate(record)
            if isinstance(parsed, DeadLetter):
                return await self._dead_letter(parsed, started)
            return await self._process(record, parsed, started)
        finally:
            clear_event_context()

    async def _process(
        self, record: Record, event: ReturnEvent, started: float
    ) -> OutcomeEvent | DeadLetter:
        add_event_context(event_id=event.event_id, return_type=str(event.return_type))
        try:
            plan = self._planner(event, self._clock.now())
        except Exception as exc:  # a bug in the rules must not block the partition
            log.exception("rules_failed")
            return await self._dead_letter(
                DeadLetter(
                    record,
                    reason=f"the rules failed on this event ({type(exc).__name__}: {exc}); "
                    "file a bug with this message, then replay it",
                    error_type="rules_error",
                ),
                started,
            )
        tried_before = self._history.tried_before(event.event_id)
        self._history.record(event.event_id)
        results = await self._executor.execute(event, plan, tried_before=tried_before)
        outcome = build_outcome(
            event,
            plan,
            results,
            record=record,
            processed_at=self._clock.now(),
            duration_ms=(self._clock.monotonic() - started) * 1000,
        )
        await self._sink.publish_outcome(outcome, record.key)
        log.info(
            "event_processed",
            status=str(outcome.status),
            decision=str(outcome.decision),
            actions=len(outcome.actions),
            failed_actions=[a.action_id for a in outcome.actions if a.status.is_failure],
            statuses=dict(Counter(str(result.status) for result in results)),
            duration_ms=round(outcome.duration_ms, 1),
        )
        return outcome

    async def _dead_letter(self, dead: DeadLetter, started: float) -> DeadLetter:
        await self._sink.publish_dead_letter(dead)
        log.warning(
            "event_dead_lettered",
            reason=dead.reason,
            error_type=dead.error_type,
            duration_ms=round((self._clock.monotonic() - started) * 1000, 1),
        )
        return dead


def build_outcome(
    event: ReturnEvent,
    plan: Plan,
    results: list[ActionResult],
    *,
    record: Record | None,
    processed_at: datetime,
    duration_ms: float,
) -> OutcomeEvent:
    """Assemble the outcome event from the plan and its results."""
    failed = any(result.status.is_failure for result in results)
    reissued = any(isinstance(action, IssueLoyaltyEarn) for action in plan.actions)
    return OutcomeEvent(
        event=EventIdentity(
            event_id=event.event_id,
            return_type=event.return_type,
            occurred_at=event.occurred_at,
            order_id=event.order.order_id,
            transaction_id=event.order.transaction_id,
            customer_id=event.customer.id,
            customer_external_id=event.customer.external_id,
            record=(
                SourceRecord(topic=record.topic, partition=record.partition, offset=record.offset)
                if record is not None
                else None
            ),
        ),
        status=OutcomeStatus.FAILED if failed else OutcomeStatus.COMPLETED,
        decision=plan.decision,
        summary=plan.summary,
        policy_version=plan.policy_version,
        actions=results,
        processed_at=processed_at,
        duration_ms=duration_ms,
        service=ServiceInfo(version=__version__),
        replay_warning=REISSUE_WARNING if reissued else None,
    )
