"""Plan: the rules (pure, the policy bound), the ledger's facts they are given, what they
decided."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from service.actions import Plan, Report, ReportKind
from service.events import ReturnEvent
from service.ledger import LedgerFacts, ReturnRecord
from service.pipeline.state import StateStore


class Planner(Protocol):
    """The rules with the policy already bound: (event, now, ledger facts) -> plan. Pure."""

    def __call__(
        self, event: ReturnEvent, now: datetime, facts: LedgerFacts | None = None, /
    ) -> Plan: ...


_UNDECIDED = frozenset(
    {
        ReportKind.RETURN_UNKNOWN,
        ReportKind.ALREADY_CANCELLED,
        ReportKind.CUSTOMER_MISMATCH,
        ReportKind.MISSING_IDENTIFIER,
    }
)
"""A cancellation planned with one of these gave nothing back for reasons of its own (the
return unknown or cancelled already, the event naming the wrong customer or too little of
one): a later, corrected cancellation of the same return may still give back."""


def cancels(event: ReturnEvent, plan: Plan) -> str | None:
    """The return a cancellation was decided against (its ledger, or a trusted claim)."""
    if event.cancelled_return is None:
        return None
    if any(isinstance(a, Report) and a.report_kind in _UNDECIDED for a in plan.actions):
        return None
    return event.cancelled_return.return_event_id


async def cancelled_return(
    state: StateStore, partition: int, event: ReturnEvent, now: datetime, commit_wait: float
) -> tuple[str | None, LedgerFacts]:
    """What the ledger says of the return a cancellation undoes; or why to wait for it.

    The return's records and the cancellation's share a customer key, so they meet on
    this partition. A return still in flight (on the retry path) has no final ledger
    yet: the cancellation waits for it rather than give back what may change.
    ``commit_wait``: how long to wait for the return's outcome to be committed.
    """
    assert event.cancelled_return is not None
    returned = event.cancelled_return.return_event_id
    known = state.lookup(partition, returned, now)
    if known is None:
        return None, LedgerFacts()
    if known.phase != "done":
        return f"its return {returned} has no outcome yet ({known.phase})", LedgerFacts()
    # Finished, maybe not committed yet: a crash now would run the return again, after
    # what this cancellation gives back. Its partition's next transaction commits it.
    if not await state.committed(partition, returned, commit_wait):
        return f"its return {returned} has no committed outcome yet", LedgerFacts()
    entry = await state.entry(partition, returned)
    if entry is None or entry.ledger is None:
        # Handled before the ledger existed: what it took is not known.
        return None, LedgerFacts()
    first = state.cancellation_of(partition, returned)
    return None, LedgerFacts(
        returned=ReturnRecord.of(
            entry.ledger, cancelled_by=first if first != event.event_id else None
        )
    )


__all__ = ["Planner", "cancelled_return", "cancels"]
