"""Every example in examples/events is a valid event, and the rules explain it as intended.

The examples are the demo: they are published in file-name order against the sandbox's demo
seed (examples/sandbox-seed.json), so they must also name what that seed holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service.actions import Decision
from service.events import ReturnEvent
from service.ledger import LedgerFacts, ReturnRecord
from service.plan_display import plan_to_text
from service.policy_file import load_policy
from service.rules import plan

from .builders import NOW, ledger_of, shape

ROOT = Path(__file__).resolve().parents[3]
EVENTS = ROOT / "examples" / "events"
POLICY = ROOT / "examples" / "policy.yaml"
SEED = ROOT / "examples" / "sandbox-seed.json"

DIRECT_REF = "1d9e540d-ae2c-443f-9d0d-7ac146bf93f2"
SHOES = "69117663b1cfc114606fd7fb"
VOUCHER = "69058646b1cfc114606f7bbe"

EXPECTED: dict[str, tuple[Decision, list[tuple[str, str, str]]]] = {
    "01-full-return.json": (
        Decision.TAKE_BACK,
        [
            ("revoke_loyalty_earn", "revoke_loyalty_earn:2714/202779:974,975", "full_return"),
            ("revoke_loyalty_earn", f"revoke_loyalty_earn:2714/{DIRECT_REF}:957", "full_return"),
            (
                "revoke_loyalty_enrolment",
                "revoke_loyalty_enrolment:2714/202779",
                "revoke_enrolment_after_earn",
            ),
            (
                "revoke_cart_earn",
                f"revoke_cart_earn:{SHOES}:6911eaf1f57b486147effac2",
                "full_return",
            ),
            ("revoke_coupon_codes", "revoke_coupon_codes:415446:3138309782", "full_return"),
        ],
    ),
    "02-partial-return-still-deserved.json": (
        Decision.NOTHING_TO_DO,
        [
            ("report/still_deserved", "loyalty_promotion:2714/202090", "spend_threshold_met"),
            ("report/still_deserved", "coupon_series:415500", "quantity_threshold_met"),
        ],
    ),
    "03-partial-return-threshold-lost.json": (
        Decision.TAKE_BACK,
        [
            (
                "revoke_coupon_codes",
                "revoke_coupon_codes:415446:1017790881",
                "spend_threshold_lost",
            ),
            ("report/still_deserved", "coupon_series:415500", "quantity_threshold_met"),
        ],
    ),
    "04-refund-without-return.json": (
        Decision.TAKE_BACK,
        [
            (
                "revoke_cart_earn",
                f"revoke_cart_earn:{SHOES}:6911eaf1f57b486147effac0",
                "spend_threshold_lost",
            ),
        ],
    ),
    "05-exchange.json": (
        Decision.NOTHING_TO_DO,
        [("report/still_deserved", f"cart_promotion:{SHOES}", "exchange_value_kept")],
    ),
    "06-payment-voucher.json": (
        Decision.TAKE_BACK,
        [
            (
                "deactivate_cart_promotion",
                f"deactivate_cart_promotion:{VOUCHER}:68f869d94a314550c4b46047",
                "full_return",
            ),
        ],
    ),
    "07-pos-code-promotions.json": (
        Decision.NOTHING_TO_DO,
        [
            (
                "report/not_revocable",
                "cart_promotion:68f9f2904a314550c4b46dc0",
                "pos_code_not_revocable",
            ),
            (
                "report/not_revocable",
                "cart_promotion:6905a1c2b1cfc114606f0c0d",
                "pos_code_not_revocable",
            ),
        ],
    ),
    "08-redeemed-coupon.json": (
        Decision.TAKE_BACK,
        [("revoke_coupon_codes", "revoke_coupon_codes:415446:5500675094", "full_return")],
    ),
    "09-cancelled-return.json": (
        Decision.GIVE_BACK,
        [
            ("enrol_loyalty", "enrol_loyalty:2714/202779", "give_back_enrolment"),
            ("issue_loyalty_earn", "issue_loyalty_earn:2714/202779:974", "give_back_earn"),
            ("issue_loyalty_earn", "issue_loyalty_earn:2714/202779:975", "give_back_earn"),
            ("issue_loyalty_earn", f"issue_loyalty_earn:2714/{DIRECT_REF}:957", "give_back_earn"),
            ("report/not_restorable", f"cart_promotion:{SHOES}", "cart_not_restorable"),
            ("report/not_restorable", "coupon_series:415446", "coupon_not_restorable"),
        ],
    ),
    "10-missing-customer-id.json": (
        Decision.TAKE_BACK,
        [
            ("revoke_loyalty_earn", "revoke_loyalty_earn:2714/202090:959", "full_return"),
            (
                "report/missing_identifier",
                f"cart_promotion:{VOUCHER}",
                "numeric_customer_id_missing",
            ),
        ],
    ),
    "11-outside-return-window.json": (
        Decision.NOTHING_TO_DO,
        [
            (
                "report/outside_return_window",
                "loyalty_promotion:2714/202090",
                "outside_return_window",
            ),
        ],
    ),
    "12-no-earn-details.json": (
        Decision.TAKE_BACK,
        [
            (
                "revoke_loyalty_earn",
                "revoke_loyalty_earn:2714/202090:all",
                "policy_revoke_all_earns",
            ),
        ],
    ),
}


def _load(name: str) -> ReturnEvent:
    return ReturnEvent.model_validate_json((EVENTS / name).read_text(encoding="utf-8"))


def test_examples_folder_holds_exactly_the_expected_files_headline_first() -> None:
    names = sorted(path.name for path in EVENTS.glob("*.json"))

    assert names == sorted(EXPECTED)
    assert names[0] == "01-full-return.json"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_plan_explains_the_case(name: str) -> None:
    decision, expected = EXPECTED[name]

    rules = load_policy(POLICY)
    # The demo publishes the cancellation after its return: the ledger knows what 01 took.
    facts = (
        LedgerFacts(returned=ReturnRecord.of(ledger_of(_load("01-full-return.json"), rules)))
        if name == "09-cancelled-return.json"
        else None
    )
    result = plan(_load(name), rules, NOW, facts)
    text = plan_to_text(result, width=400)

    assert shape(result) == expected
    assert result.decision is decision
    assert result.policy_version == "demo-1"
    for action in result.actions:
        assert action.reason_code in text
        assert action.reason.split(";")[0] in text


def _seed() -> dict[str, Any]:
    seed: dict[str, Any] = json.loads(SEED.read_text(encoding="utf-8"))
    return seed


def _customer_id(seed: dict[str, Any], event: ReturnEvent) -> int:
    ref = event.customer
    for customer in seed["customers"]:
        if ref.id == customer["id"] or (ref.id is None and ref.mobile == customer["mobile"]):
            return int(customer["id"])
    raise AssertionError(f"{event.event_id}: customer not in the seed")


@pytest.mark.skipif(not SEED.exists(), reason="examples/sandbox-seed.json is not written yet")
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_names_what_the_demo_seed_holds(name: str) -> None:
    seed = _seed()
    event = _load(name)
    owner = _customer_id(seed, event)
    earned = event.cancelled_return.taken_back if event.cancelled_return else event.earned
    promotions = {p["id"]: p for p in seed["loyalty_promotions"]}
    by_ref = {p["promo_identifier"]: p for p in seed["loyalty_promotions"]}

    for earn in earned.loyalty_promotions:
        promo = promotions.get(earn.promotion_id) or by_ref[str(earn.promo_identifier)]
        assert promo["program_id"] == earn.program_id
        owned = {
            e["earn_id"]
            for e in seed["loyalty_earns"]
            if e["promotion_id"] == promo["id"] and e["customer_id"] == owner
        }
        assert set(earn.earn_ids) <= owned, f"{name}: loyalty earns not the customer's"
    for cart in earned.cart_promotions:
        mode = next(p["mode"] for p in seed["cart_promotions"] if p["id"] == cart.promotion_id)
        assert mode == cart.mode
        owned_cart = {
            e["id"]
            for e in seed["cart_earns"]
            if e["promotion_id"] == cart.promotion_id and e["customer_id"] == owner
        }
        assert set(cart.earn_ids) <= owned_cart, f"{name}: cart earns not the customer's"
    for issued in earned.coupons:
        owned_codes = {
            c["code"]
            for c in seed["coupons"]
            if c["series_id"] == issued.series_id and c["customer_id"] == owner
        }
        assert set(issued.codes) <= owned_codes, f"{name}: coupons not the customer's"
