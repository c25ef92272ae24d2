"""The plan as a table for people: one row per action with what it touches and why.

Display code lives here, beside the CLI, so that the rules (``service/rules/``) stay free of
any display library; the plain-text line for one action is the rules' ``describe``.
"""

from __future__ import annotations

import io

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from service.actions import Plan, Report
from service.rules.explain import describe


def render_plan(plan: Plan) -> Table:
    """The plan as a rich table: one row per action, in execution order, with its reason."""
    table = Table(
        title=f"Plan for event {plan.event_id}: {plan.decision}",
        caption=f"{plan.summary}\nPolicy {plan.policy_version}, decided at "
        f"{plan.decided_at.isoformat()}",
        show_lines=True,
        expand=False,
    )
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("action", no_wrap=True)
    table.add_column("what", overflow="fold")
    table.add_column("why", overflow="fold")
    for number, action in enumerate(plan.actions, start=1):
        kind: str = action.kind if not isinstance(action, Report) else "report (no call)"
        if action.is_broad:
            kind = f"{kind}\nBROAD"
        why = Group(Text(action.reason), Text(action.reason_code, style="dim"))
        table.add_row(str(number), Text(kind), Text(describe(action)), why)
    return table


def plan_to_text(plan: Plan, width: int = 140) -> str:
    """The table rendered to plain text, for terminals without colour and for tests."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False)
    console.print(render_plan(plan))
    return buffer.getvalue()


__all__ = ["plan_to_text", "render_plan"]
