"""The plan for people: a table of actions with their reasons (used by the CLI)."""

from __future__ import annotations

import io

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from service.actions import (
    Action,
    DeactivateCartPromotion,
    EnrolLoyalty,
    IssueLoyaltyEarn,
    LoyaltyTarget,
    Plan,
    Report,
    RevokeCartEarn,
    RevokeCouponCodes,
    RevokeCustomerCoupons,
    RevokeLoyaltyEarn,
    RevokeLoyaltyEnrolment,
)


def _customer(target: LoyaltyTarget) -> str:
    return f"{target.identifier_name}={target.identifier_value} ({target.source})"


def _promotion(target: LoyaltyTarget) -> str:
    ref = target.promotion_id if target.promotion_id is not None else target.promo_identifier
    return f"program {target.program_id} promotion {ref} [{target.promotion_type}]"


def describe(action: Action) -> str:
    """What one action touches, in a line or two."""
    match action:
        case RevokeLoyaltyEarn(target=target, earn_ids=earn_ids):
            ids = "ALL earns" if earn_ids is None else "earns " + ", ".join(map(str, earn_ids))
            return f"{_promotion(target)}: {ids}; customer {_customer(target)}"
        case RevokeLoyaltyEnrolment(target=target) | EnrolLoyalty(target=target):
            return f"{_promotion(target)}; customer {_customer(target)}"
        case IssueLoyaltyEarn(target=target, replaces_earn_id=replaces):
            return f"{_promotion(target)}: replaces earn {replaces}; customer {_customer(target)}"
        case RevokeCartEarn(promotion_id=promotion, earn_ids=earn_ids, customer_id=customer):
            return f"promotion {promotion}: earns {', '.join(earn_ids)}; customer {customer}"
        case DeactivateCartPromotion(promotion_id=promotion, earn_id=earn_id, customer_id=cust):
            what = f"earn {earn_id}" if earn_id is not None else "WHOLE participation"
            return f"promotion {promotion}: {what}; customer {cust}"
        case RevokeCouponCodes(series_id=series, codes=codes):
            where = f"series {series}" if series is not None else "no series id"
            return f"codes {', '.join(codes)} ({where})"
        case RevokeCustomerCoupons(customer=customer, series_id=series):
            who = ", ".join(f"{k}={v}" for k, v in customer.model_dump(exclude_none=True).items())
            return f"all unredeemed coupons of series {series}; customer {who}"
        case Report(report_kind=kind, item=item):
            return f"{item} ({kind})"
    raise AssertionError(f"unknown action {action!r}")  # pragma: no cover


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
        if getattr(action, "broad", False):
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
