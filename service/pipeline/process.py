"""Process: one valid event deduplicated, planned and executed, to a finished result.

The steps it runs are modules of their own: ``deduplicate`` (a read-again, a duplicate),
``plan`` (the rules, with the ledger's facts), ``execute`` (the calls), ``outcomes`` (the
outcome event assembled).

Processing publishes nothing: it returns a :class:`Finished` (an outcome, a dead letter
or a retry, and the state to remember), and the commit step writes those with the
offsets in one transaction. Before an event's calls, its ``started`` state is committed
on its own, and right before each give-back call the intent of that call with the results
so far, so a redelivery after a crash knows what the attempt confirmed and what it may have
issued.

The ledger (``service/ledger.py``) decides what is done again: a cancellation gives back
what its return took as the ledger says (and waits while that return is still in flight);
a repeat of an event does not make again what an earlier run made, and a replayed return
that was cancelled since takes nothing back unless the operator allowed it.

It writes one canonical log line per record (``event_processed`` or
``event_dead_lettered``) with everything an operator needs to find it again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from service import __version__
from service.actions import DeactivateCartPromotion, Plan, Report
from service.clock import Clock
from service.errors import CapillaryInterruptedError
from service.events import ReturnEvent, ReturnType
from service.ids import Ids
from service.ledger import LedgerEntry, LedgerFacts, Prior, entry_of
from service.logging import (
    add_event_context,
    bind_event_context,
    clear_event_context,
    get_logger,
)
from service.outcome import (
    ActionResult,
    OutcomeEvent,
    OutcomeStatus,
    ServiceInfo,
)
from service.pipeline.deduplicate import duplicate_outcome, finished_from, is_duplicate
from service.pipeline.done_before import Unrepeatable, results_from_ledger
from service.pipeline.execute import Executor
from service.pipeline.outcomes import build_outcome, identity
from service.pipeline.plan import Planner, cancelled_return, cancels
from service.pipeline.records import (
    AlreadyFinished,
    DeadLetter,
    Finished,
    Record,
    RetryLater,
)
from service.pipeline.replays import replay_of
from service.pipeline.retries import (
    RetryPolicy,
    exhausted,
    gave_back,
    retry_info,
    waits_on_open_cart,
)
from service.pipeline.state import EventState, Intent, StateStore
from service.pipeline.validate import validate

log = get_logger(__name__)


class StartRecorder(Protocol):
    """Commits an event's ``started`` state before its calls (the commit step)."""

    async def record_start(self, partition: int, state: EventState) -> None:
        """Commit ``state`` to state partition ``partition``."""


@dataclass(frozen=True, slots=True)
class NotDue:
    """A retry record that came up before its time: read it again at ``due_ms``."""

    record: Record
    due_ms: int


class Processor:
    """Handles one record at a time; returns what the commit step is to write."""

    def __init__(
        self,
        *,
        planner: Planner,
        executor: Executor,
        clock: Clock,
        ids: Ids,
        state: StateStore,
        starts: StartRecorder,
        retry_policy: RetryPolicy,
        commit_wait_seconds: float = 10.0,
    ) -> None:
        self._planner = planner
        self._executor = executor
        self._clock = clock
        self._ids = ids
        """Makes each outcome's ``outcome_id``."""
        self._state = state
        self._starts = starts
        self._retry = retry_policy
        self._commit_wait = commit_wait_seconds
        """How long a cancellation waits for its return's outcome to be committed, before it
        takes the retry path instead (a failed transaction, a broken partition)."""

    async def handle(self, record: Record) -> Finished | NotDue:
        """Process one record start to end (the run loop takes the steps one by one)."""
        due_ms = self.not_due(record)
        if due_ms is not None:
            return NotDue(record, due_ms)
        prepared = self.prepare(record)
        if isinstance(prepared, Finished):
            return prepared
        return await self.process(record, prepared)

    def not_due(self, record: Record) -> int | None:
        """When a retry record that came up before its time is due (epoch ms), else ``None``."""
        retry = retry_info(record)
        now_ms = int(self._clock.now().timestamp() * 1000)
        if retry is not None and retry.not_before_ms > now_ms:
            return retry.not_before_ms
        return None

    def prepare(self, record: Record) -> ReturnEvent | Finished:
        """The valid event, or the record finished as a dead letter."""
        started = self._clock.monotonic()
        bind_event_context(topic=record.topic, partition=record.partition, offset=record.offset)
        try:
            parsed = validate(record)
            if isinstance(parsed, DeadLetter):
                return self._dead_letter(parsed, started)
            return parsed
        finally:
            clear_event_context()

    async def process(self, record: Record, event: ReturnEvent) -> Finished:
        """Deduplicate, plan and execute one valid event.

        Raises only what the run loop must handle for the whole pipeline: Capillary being
        unavailable, or Kafka refusing the event's start marker (or a state record).
        """
        started = self._clock.monotonic()
        bind_event_context(topic=record.topic, partition=record.partition, offset=record.offset)
        try:
            retry = retry_info(record)
            attempt = retry.attempt if retry is not None else 1
            return await self._process(record, event, started, attempt)
        finally:
            clear_event_context()

    async def _process(
        self, record: Record, event: ReturnEvent, started: float, attempt: int
    ) -> Finished:
        add_event_context(
            event_id=event.event_id, return_type=str(event.return_type), attempt=attempt
        )
        now = self._clock.now()
        partition = record.partition
        known = self._state.lookup(partition, event.event_id, now)
        if known is not None and finished_from(known, record.source, attempt):
            log.info("event_already_finished", phase=known.phase)
            return Finished(record, AlreadyFinished(record, event.event_id))
        replay = replay_of(record)
        if replay is not None:
            add_event_context(replay_id=replay.replay_id)
        elif known is not None and is_duplicate(known, attempt):
            return self._duplicate(record, event, known, started)
        # What earlier runs of this event did: a crashed or interrupted attempt, the retry
        # path, an outcome a replay re-drives.
        earlier = await self._state.entry(partition, event.event_id) if known else None
        ledger = earlier.ledger if earlier is not None else None
        facts = LedgerFacts()
        if event.return_type is ReturnType.CANCELLED:
            waiting, facts = await cancelled_return(
                self._state, partition, event, now, self._commit_wait
            )
            if waiting is not None:
                return self._wait_for_return(record, event, known, ledger, attempt, waiting)
        elif replay is not None and not replay.allow_cancelled:
            facts = LedgerFacts(cancelled_by=self._state.cancellation_of(partition, event.event_id))
        try:
            plan = self._planner(event, now, facts)
        except Exception as exc:  # a bug in the rules must not block the partition
            log.exception("rules_failed")
            return self._dead_letter(
                DeadLetter(
                    record,
                    reason=f"the rules failed on this event ({type(exc).__name__}: {exc}); "
                    "file a bug with this message, then replay it",
                    error_type="rules_error",
                ),
                started,
            )
        prior = Prior.of(
            ledger,
            # An outcome of this event id was committed already (a replay re-drives it).
            published=known is not None and known.phase == "done",
            intents=[intent.action_id for intent in known.intents] if known else (),
            issued=replay.issued if replay is not None else (),
            allow_reissue=replay is not None and replay.allow_reissue,
            # A started state without an outcome: an earlier attempt crashed mid-way.
            tried_before=known is not None or attempt > 1 or replay is not None,
        )
        cancelled = cancels(event, plan)

        def ledger_of(results: list[ActionResult]) -> LedgerEntry:
            return entry_of(
                event, plan, results, attempt=attempt, cancels=cancelled, earlier=ledger
            )

        # A first attempt has nothing to carry before its calls, unless it cancels a return
        # (a second cancellation must find it while it runs).
        carried = ledger_of([]) if ledger is not None or cancelled is not None else None

        state = _started(event, record, known, attempt, carried, now)
        if any(not isinstance(a, Report) for a in plan.actions):
            await self._starts.record_start(partition, state)
            self._state.remember(partition, state)

        async def record_intent(action: Unrepeatable, so_far: list[ActionResult]) -> None:
            # Committed right before the call: a crash after it finds the intent (and what
            # the calls before it did), a crash before it finds none and makes the call.
            nonlocal state
            state = state.model_copy(
                update={"intents": [*state.intents, _intent(action)], "ledger": ledger_of(so_far)}
            )
            await self._starts.record_start(partition, state)
            self._state.remember(partition, state)

        try:
            results = await self._executor.execute(
                event, plan, prior=prior, attempt=attempt, before_unrepeatable=record_intent
            )
        except CapillaryInterruptedError as exc:
            before = set(prior.intents)
            interrupted = state.model_copy(
                update={
                    # Give-backs of this attempt that did not reach Capillary: the next one
                    # makes them; what finished is kept.
                    "intents": [
                        i
                        for i in state.intents
                        if i.action_id in before or i.action_id in exc.reached
                    ],
                    "ledger": ledger_of(list(exc.done)),
                }
            )
            if interrupted != state:
                await self._starts.record_start(partition, interrupted)
                self._state.remember(partition, interrupted)
            raise
        if waits_on_open_cart(results) and not gave_back(results):
            delay = self._retry.delay_ms(attempt + 1)
            if delay is not None:
                # Every call of this attempt was answered: the ledger has it, no intent waits.
                waiting_state = state.model_copy(
                    update={"ledger": ledger_of(results), "intents": []}
                )
                return self._retry_later(record, event, waiting_state, attempt, delay)
            results = [exhausted(result, attempt) for result in results]
        outcome = self._outcome(event, plan, results, record, started, attempt)
        self._log_processed(outcome, results)
        done = state.model_copy(
            update={
                "phase": "done",
                "at": self._clock.now(),
                "intents": [],
                "ledger": ledger_of(results),
            }
        )
        # Known at once, not only once committed: a duplicate taken before the commit is
        # recognised. A failed commit makes the run loop restore the partition from Kafka.
        self._state.remember(partition, done)
        return Finished(record, outcome, done)

    def _wait_for_return(
        self,
        record: Record,
        event: ReturnEvent,
        known: EventState | None,
        ledger: LedgerEntry | None,
        attempt: int,
        why: str,
    ) -> Finished:
        """A cancellation whose return is in flight: the retry path, nothing given back."""
        state = _started(event, record, known, attempt, ledger, self._clock.now())
        delay = self._retry.delay_ms(attempt + 1)
        if delay is not None:
            return self._retry_later(record, event, state, attempt, delay, f"waiting: {why}")
        now = self._clock.now()
        plan = self._planner(event, now)
        outcome = OutcomeEvent(
            outcome_id=self._ids(),
            event=identity(event, record),
            status=OutcomeStatus.FAILED,
            decision=plan.decision,
            summary=f"Nothing was given back: {why} after {attempt} attempts. Replay this event "
            "once the return has its outcome.",
            policy_version=plan.policy_version,
            processed_at=now,
            duration_ms=0.0,
            service=ServiceInfo(version=__version__),
            attempt=attempt,
            replay=replay.info() if (replay := replay_of(record)) is not None else None,
        )
        self._log_processed(outcome, [])
        done = state.model_copy(update={"phase": "done", "intents": []})
        self._state.remember(record.partition, done)
        return Finished(record, outcome, done)

    async def retry_alone(self, record: Record, reason: str) -> Finished:
        """This event's calls failed while Capillary answered others: the retry path.

        Its ``started`` state was committed before the calls, with its intents and what the
        interrupted attempt did; both travel on, so no attempt repeats a give-back that may
        have been made, and the last outcome lists what every attempt did.
        """
        started = self._clock.monotonic()
        bind_event_context(topic=record.topic, partition=record.partition, offset=record.offset)
        try:
            event = validate(record)
            if isinstance(event, DeadLetter):  # pragma: no cover - it was valid a moment ago
                return self._dead_letter(event, started)
            add_event_context(event_id=event.event_id)
            retry = retry_info(record)
            attempt = retry.attempt if retry is not None else 1
            now = self._clock.now()
            known = self._state.lookup(record.partition, event.event_id, now)
            earlier = await self._state.entry(record.partition, event.event_id) if known else None
            ledger = earlier.ledger if earlier is not None else None
            state = _started(event, record, known, attempt, ledger, now)
            delay = self._retry.delay_ms(attempt + 1)
            if delay is not None:
                return self._retry_later(record, event, state, attempt, delay, reason)
            plan = self._planner(event, now)
            results = results_from_ledger(
                plan,
                ledger,
                attempt=attempt,
                missing=f"not done: Capillary kept failing for this event alone through "
                f"{attempt} attempts ({reason})",
                intents=frozenset(i.action_id for i in state.intents),
            )
            outcome = self._outcome(event, plan, results, record, started, attempt, now)
            outcome = outcome.model_copy(
                update={
                    "summary": f"Capillary kept failing for this event alone through {attempt} "
                    f"attempts ({reason}); the actions say what each attempt did. Replay it "
                    "once the cause is found."
                }
            )
            self._log_processed(outcome, results)
            done = state.model_copy(update={"phase": "done", "intents": []})
            self._state.remember(record.partition, done)
            return Finished(record, outcome, done)
        finally:
            clear_event_context()

    def _outcome(
        self,
        event: ReturnEvent,
        plan: Plan,
        results: list[ActionResult],
        record: Record,
        started: float,
        attempt: int,
        processed_at: datetime | None = None,
    ) -> OutcomeEvent:
        replay = replay_of(record)
        return build_outcome(
            event,
            plan,
            results,
            outcome_id=self._ids(),
            record=record,
            processed_at=processed_at or self._clock.now(),
            duration_ms=(self._clock.monotonic() - started) * 1000,
            attempt=attempt,
            replay=replay.info() if replay is not None else None,
        )

    def _duplicate(
        self, record: Record, event: ReturnEvent, known: EventState, started: float
    ) -> Finished:
        # What the rules would decide without the ledger: nothing is done either way.
        plan = self._planner(event, self._clock.now())
        outcome = duplicate_outcome(
            record,
            event,
            known,
            plan,
            outcome_id=self._ids(),
            processed_at=self._clock.now(),
            duration_ms=(self._clock.monotonic() - started) * 1000,
        )
        self._log_processed(outcome, [])
        return Finished(record, outcome, None)

    def _retry_later(
        self,
        record: Record,
        event: ReturnEvent,
        state: EventState,
        attempt: int,
        delay_ms: int,
        reason: str = "the customer's cart is open (737)",
    ) -> Finished:
        not_before = int(self._clock.now().timestamp() * 1000) + delay_ms
        log.info(
            "event_retry_scheduled",
            next_attempt=attempt + 1,
            delay_ms=delay_ms,
            reason=reason,
        )
        retrying = state.model_copy(
            update={"phase": "retrying", "attempt": attempt + 1, "at": self._clock.now()}
        )
        later = RetryLater(record, event.event_id, attempt + 1, not_before, reason)
        self._state.remember(record.partition, retrying)
        return Finished(record, later, retrying)

    def _dead_letter(self, dead: DeadLetter, started: float) -> Finished:
        log.warning(
            "event_dead_lettered",
            reason=dead.reason,
            error_type=dead.error_type,
            duration_ms=round((self._clock.monotonic() - started) * 1000, 1),
        )
        return Finished(dead.record, dead, None)

    def _log_processed(self, outcome: OutcomeEvent, results: list[ActionResult]) -> None:
        log.info(
            "event_processed",
            status=str(outcome.status),
            decision=str(outcome.decision),
            actions=len(outcome.actions),
            failed_actions=[a.action_id for a in outcome.actions if a.status.is_failure],
            statuses=dict(Counter(str(result.status) for result in results)),
            duration_ms=round(outcome.duration_ms, 1),
        )


def _started(
    event: ReturnEvent,
    record: Record,
    known: EventState | None,
    attempt: int,
    ledger: LedgerEntry | None,
    now: datetime,
) -> EventState:
    """The ``started`` state of an attempt: the intents of earlier ones travel on."""
    source = record.source
    return EventState(
        event_id=event.event_id,
        phase="started",
        at=now,
        input_partition=source.partition,
        input_offset=source.offset,
        intents=list(known.intents) if known is not None else [],
        attempt=attempt,
        ledger=ledger,
    )


def _intent(action: Unrepeatable) -> Intent:
    if isinstance(action, DeactivateCartPromotion):
        return Intent(
            action_id=action.action_id,
            kind=action.kind,
            customer=f"id:{action.customer_id}",
            promotion=action.promotion_id,
        )
    target = action.target
    # Kept in Kafka: a numeric id, never a mobile or an e-mail.
    who = target.identifier_value if target.identifier_name == "id" else "(masked)"
    promotion = target.promotion_id or target.promo_identifier
    return Intent(
        action_id=action.action_id,
        kind=action.kind,
        customer=f"{target.identifier_name}:{who}",
        promotion=f"{target.program_id}/{promotion}",
    )
