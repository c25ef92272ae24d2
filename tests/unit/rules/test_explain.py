"""The readable plan: one row per action in order, with what it touches and why."""

from __future__ import annotations

from service.plan_display import plan_to_text, render_plan
from service.policy_file import load_policy
from service.rules import describe, plan

from .builders import CART, DIRECT, GENERIC, NOW, event, policy, with_


def test_render_plan_has_one_row_per_action() -> None:
    result = plan(
        event("FULL", earned={"loyalty_promotions": [DIRECT], "cart_promotions": [CART]}),
        load_policy(None),
        NOW,
    )

    table = render_plan(result)

    assert table.row_count == len(result.actions) == 2


def test_plan_to_text_shows_targets_reasons_and_summary() -> None:
    result = plan(event("FULL", earned={"loyalty_promotions": [DIRECT]}), load_policy(None), NOW)

    text = plan_to_text(result, width=300)

    assert "revoke_loyalty_earn" in text
    assert "earns 957; customer id=555567088 (INSTORE)" in text
    assert "full return: everything the order earned goes back" in text
    assert result.summary in " ".join(text.split())  # the caption wraps to the table's width
    assert "Policy default-1" in text


def test_plan_to_text_marks_broad_actions() -> None:
    rules = policy(
        loyalty_promotions=[
            {"program_id": 2714, "promotion_id": 202090, "without_earn_ids": "revoke_all"}
        ]
    )
    result = plan(
        event("FULL", earned={"loyalty_promotions": [with_(DIRECT, earn_ids=[])]}), rules, NOW
    )

    text = plan_to_text(result, width=300)

    assert "BROAD" in text
    assert "ALL earns" in text


def test_plan_to_text_shows_reports_as_no_call() -> None:
    result = plan(event("FULL"), load_policy(None), NOW)

    text = plan_to_text(result, width=300)

    assert "report (no call)" in text
    assert "order:ORD-1 (nothing_earned)" in text


def test_describe_generic_code_names_series_and_customer() -> None:
    rules = policy(coupon_series=[{"series_id": 415500, "contains_generic_code": True}])
    result = plan(event("FULL", earned={"coupons": [GENERIC]}), rules, NOW)

    assert describe(result.actions[0]) == (
        "codes sale-hf-0001 (generic series 415500); customer id=555567088"
    )
