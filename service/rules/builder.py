"""Collects a plan's actions in order, keeping action ids unique and calls before reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypedDict

from service.actions import Action, Report, ReportKind


class Reasoned(Protocol):
    """Anything that says why an action is planned: a judgement, a group, a :class:`Why`."""

    @property
    def reason_code(self) -> str: ...

    @property
    def reason(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Why:
    """A reason written where the action is planned."""

    reason_code: str
    reason: str


class ActionHead(TypedDict):
    """The fields every action starts with: which it is, and why."""

    action_id: str
    reason_code: str
    reason: str


class PlanBuilder:
    """Calls in the order they are added, then reports; ids unique within the plan."""

    def __init__(self) -> None:
        self.calls: list[Action] = []
        self.reports: list[Action] = []
        self._taken: dict[str, int] = {}

    def _next_id(self, base: str) -> str:
        """A unique action id built on ``base``."""
        # Two entries of an event can name the same item (a promotion listed twice); a
        # numbered suffix keeps ids unique while staying the same for the same event.
        seen = self._taken.get(base, 0) + 1
        self._taken[base] = seen
        return base if seen == 1 else f"{base}#{seen}"

    def head(self, base: str, why: Reasoned) -> ActionHead:
        """An action's first fields: an id built on ``base``, unique in the plan, and why."""
        return {
            "action_id": self._next_id(base),
            "reason_code": why.reason_code,
            "reason": why.reason,
        }

    def call(self, action: Action) -> None:
        """Add a call (its head taken from :meth:`head`)."""
        self.calls.append(action)

    def report(self, kind: ReportKind, item: str, reason_code: str, reason: str) -> Report:
        """Add a report: an item named in the outcome with why no call is made."""
        action = Report(
            **self.head(f"report:{item}", Why(reason_code, reason)), report_kind=kind, item=item
        )
        self.reports.append(action)
        return action

    @property
    def actions(self) -> list[Action]:
        """Every action, calls first."""
        return [*self.calls, *self.reports]


def dedupe(items: list[str], *, fold_case: bool = False) -> list[str]:
    """``items`` without repeats, first spelling and first position kept."""
    seen: set[str] = set()
    kept: list[str] = []
    for item in items:
        key = item.casefold() if fold_case else item
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept
