"""Give-backs: a cancellation gives back what the ledger says its return took, nothing more.

Each row is a cancellation, what the ledger knows of its return (built by planning the
return and answering its calls), the policy, and the expected plan as (kind, action id or
reported item, reason code).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from service.actions import Decision, EnrolLoyalty, IssueLoyaltyEarn
from service.events import ReturnEvent
from service.ledger import CustomerMark, LedgerFacts, ReturnRecord
from service.outcome import ActionStatus
from service.rules import Policy, plan

from .builders import (
    CART,
    COUPONS,
    DIRECT,
    EI,
    NOW,
    TOM,
    VOUCHER,
    event,
    ledger_of,
    policy,
    shape,
    with_,
)

CART_ID = "69117663b1cfc114606fd7fb"
VOUCHER_ID = "69058646b1cfc114606f7bbe"
TAKEN = {
    "loyalty_promotions": [EI, DIRECT],
    "cart_promotions": [CART, VOUCHER],
    "coupons": [COUPONS],
}
RETURN = event("FULL", event_id="ret-1", earned=TAKEN)
REVOKED = ActionStatus.REVOKED


def _cancel(**fields: Any) -> ReturnEvent:
    values: dict[str, Any] = {
        "event_id": "can-1",
        "amounts": {"before": "0", "after": "100"},
        "returned_lines": [],
        "cancelled_return": {
            "return_event_id": "ret-1",
            "taken_back": TAKEN,
            "enrolments_revoked": [with_(EI, earn_ids=[])],
        },
    }
    values.update(fields)
    return event("CANCELLED", **values)


def _knows(
    statuses: dict[str, tuple[ActionStatus, int | None]] | None = None,
    **record: Any,
) -> LedgerFacts:
    """The ledger knows ``ret-1``: its calls revoked everything but ``statuses``."""
    return LedgerFacts(
        returned=replace(ReturnRecord.of(ledger_of(RETURN, None, statuses)), **record)
    )


@dataclass
class Case:
    event: ReturnEvent
    facts: LedgerFacts | None
    decision: Decision
    expected: list[tuple[str, str, str]]
    policy: Policy = field(default_factory=policy)
    says: tuple[str, ...] = ()
    """Texts the reasons of the plan must hold."""


NOT_RESTORABLE = [
    ("report/not_restorable", f"cart_promotion:{CART_ID}", "cart_not_restorable"),
    ("report/not_restorable", f"cart_promotion:{VOUCHER_ID}", "cart_not_restorable"),
    ("report/not_restorable", f"cart_promotion:{VOUCHER_ID}", "cart_not_restorable"),
    ("report/not_restorable", "coupon_series:415446", "coupon_not_restorable"),
]

CASES: dict[str, Case] = {
    "gives_back_the_loyalty_the_return_revoked_and_names_the_rest": Case(
        _cancel(),
        _knows(),
        Decision.GIVE_BACK,
        [
            ("enrol_loyalty", "enrol_loyalty:2714/202779", "give_back_enrolment"),
            ("issue_loyalty_earn", "issue_loyalty_earn:2714/202779:974", "give_back_earn"),
            ("issue_loyalty_earn", "issue_loyalty_earn:2714/202779:975", "give_back_earn"),
            ("issue_loyalty_earn", "issue_loyalty_earn:2714/202090:957", "give_back_earn"),
            *NOT_RESTORABLE,
        ],
        says=("(the ledger)",),
    ),
    "an_earn_the_return_did_not_revoke_is_not_issued_and_says_why": Case(
        _cancel(),
        _knows({"loyalty_earn:975": (ActionStatus.NOT_FOUND, 8903)}),
        Decision.GIVE_BACK,
        [
            ("enrol_loyalty", "enrol_loyalty:2714/202779", "give_back_enrolment"),
            ("issue_loyalty_earn", "issue_loyalty_earn:2714/202779:974", "give_back_earn"),
            ("issue_loyalty_earn", "issue_loyalty_earn:2714/202090:957", "give_back_earn"),
            ("report/not_taken_back", "loyalty_earn:975", "not_taken_back"),
            *NOT_RESTORABLE,
        ],
        says=("did not revoke earn 975 (not_found, Capillary code 8903)",),
    ),
    "an_enrolment_the_return_kept_is_not_enrolled_again_and_only_the_earns_go": Case(
        _cancel(),
        _knows({"enrolment": (ActionStatus.KEPT, 8904)}),
        Decision.GIVE_BACK,
        [
            ("issue_loyalty_earn", "issue_loyalty_earn:2714/202779:974", "give_back_earn"),
            ("issue_loyalty_earn", "issue_loyalty_earn:2714/202779:975", "give_back_earn"),
            ("issue_loyalty_earn", "issue_loyalty_earn:2714/202090:957", "give_back_earn"),
            ("report/not_taken_back", "loyalty_enrolment:2714/202779", "not_taken_back"),
            *NOT_RESTORABLE,
        ],
        says=("the enrolment was not revoked, so only the earn is issued",),
    ),
    "an_ambiguous_answer_of_the_return_is_not_issued_but_checked": Case(
        _cancel(),
        _knows({"loyalty_earn:957": (ActionStatus.ALREADY_REVOKED, 8903)}),
        Decision.GIVE_BACK,
        [
            ("enrol_loyalty", "enrol_loyalty:2714/202779", "give_back_enrolment"),
            ("issue_loyalty_earn", "issue_loyalty_earn:2714/202779:974", "give_back_earn"),
            ("issue_loyalty_earn", "issue_loyalty_earn:2714/202779:975", "give_back_earn"),
            ("report/taken_back_unconfirmed", "loyalty_earn:957", "taken_back_unconfirmed"),
            *NOT_RESTORABLE,
        ],
    ),
    "a_return_that_revoked_nothing_gives_nothing_and_names_each_earn": Case(
        _cancel(
            cancelled_return={
                "return_event_id": "ret-1",
                "taken_back": {"loyalty_promotions": [DIRECT]},
            }
        ),
        LedgerFacts(
            returned=ReturnRecord.of(
                ledger_of(
                    event("FULL", event_id="ret-1", earned={"loyalty_promotions": [DIRECT]}),
                    None,
                    {"loyalty_earn:957": (ActionStatus.NOT_FOUND, 8903)},
                )
            )
        ),
        Decision.NOTHING_TO_DO,
        [
            ("report/nothing_earned", "return:ret-1", "nothing_taken_back"),
            ("report/not_taken_back", "loyalty_earn:957", "not_taken_back"),
        ],
    ),
    "an_earn_the_event_claims_and_the_ledger_lacks_is_not_issued": Case(
        _cancel(
            cancelled_return={
                "return_event_id": "ret-1",
                "taken_back": {"loyalty_promotions": [with_(DIRECT, earn_ids=[957, 958])]},
            }
        ),
        LedgerFacts(
            returned=ReturnRecord.of(
                ledger_of(event("FULL", event_id="ret-1", earned={"loyalty_promotions": [DIRECT]}))
            )
        ),
        Decision.GIVE_BACK,
        [
            ("issue_loyalty_earn", "issue_loyalty_earn:2714/202090:957", "give_back_earn"),
            ("report/not_taken_back", "loyalty_earn:958", "not_taken_back"),
        ],
        says=("the return's ledger has no such earn",),
    ),
    "a_return_the_ledger_does_not_know_gives_nothing_and_asks_an_operator": Case(
        _cancel(),
        None,
        Decision.NOTHING_TO_DO,
        [("report/return_unknown", "return:ret-1", "return_unknown")],
        says=("does not know the return ret-1",),
    ),
    "a_return_the_ledger_does_not_know_is_taken_at_its_claim_when_the_policy_trusts": Case(
        _cancel(),
        None,
        Decision.GIVE_BACK,
        [
            ("enrol_loyalty", "enrol_loyalty:2714/202779", "give_back_enrolment"),
            ("issue_loyalty_earn", "issue_loyalty_earn:2714/202779:974", "give_back_earn"),
            ("issue_loyalty_earn", "issue_loyalty_earn:2714/202779:975", "give_back_earn"),
            ("issue_loyalty_earn", "issue_loyalty_earn:2714/202090:957", "give_back_earn"),
            ("report/not_restorable", f"cart_promotion:{CART_ID}", "cart_not_restorable"),
            ("report/not_restorable", f"cart_promotion:{VOUCHER_ID}", "cart_not_restorable"),
            ("report/not_restorable", "coupon_series:415446", "coupon_not_restorable"),
        ],
        policy=policy(cancelled_return={"when_return_unknown": "trust_claim"}),
        says=("(its claim)",),
    ),
    "a_return_another_event_cancelled_first_gives_nothing_and_names_it": Case(
        _cancel(),
        _knows(cancelled_by="can-0"),
        Decision.NOTHING_TO_DO,
        [("report/already_cancelled", "return:ret-1", "already_cancelled")],
        says=("cancelled first by event can-0",),
    ),
    "a_cancellation_naming_another_customer_than_its_return_gives_nothing": Case(
        _cancel(customer={**TOM, "id": 555567099}),
        _knows(),
        Decision.NOTHING_TO_DO,
        [("report/customer_mismatch", "return:ret-1", "customer_mismatch")],
    ),
    "a_cancellation_without_a_loyalty_identifier_names_what_is_missing": Case(
        _cancel(customer={"external_id": "000003873472"}),
        _knows(customer=CustomerMark(external_id="000003873472")),
        Decision.NOTHING_TO_DO,
        [
            (
                "report/missing_identifier",
                "loyalty_promotion:2714/202779",
                "loyalty_identifier_missing",
            ),
            (
                "report/missing_identifier",
                "loyalty_promotion:2714/202090",
                "loyalty_identifier_missing",
            ),
            *NOT_RESTORABLE,
        ],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_give_back_for_case_matches_expected_actions(name: str) -> None:
    case = CASES[name]

    result = plan(case.event, case.policy, NOW, case.facts)

    assert shape(result) == case.expected
    assert result.decision is case.decision
    reasons = " ".join(action.reason for action in result.actions)
    for text in case.says:
        assert text in reasons


def test_each_earn_is_issued_once_to_replace_exactly_the_earn_the_return_revoked() -> None:
    result = plan(_cancel(), policy(), NOW, _knows())

    issued = [a for a in result.actions if isinstance(a, IssueLoyaltyEarn)]
    assert [a.replaces_earn_id for a in issued] == [974, 975, 957]
    enrol = next(a for a in result.actions if isinstance(a, EnrolLoyalty))
    assert (enrol.target.identifier_name, enrol.target.identifier_value) == ("id", "555567088")


def test_a_replayed_return_cancelled_since_takes_nothing_back() -> None:
    result = plan(RETURN, policy(), NOW, LedgerFacts(cancelled_by="can-1"))

    assert shape(result) == [("report/cancelled_since", "return:ret-1", "cancelled_since")]
    assert result.decision is Decision.NOTHING_TO_DO
    assert "can-1" in result.actions[0].reason


def test_a_ledger_promotion_named_by_both_keys_stops_the_plan_instead_of_calling() -> None:
    # No version writes such a ledger; one that a damaged or foreign state holds must not
    # become an EARN or ENROL for whichever key Capillary would read.
    returned = _knows().returned
    assert returned is not None
    items = tuple(
        item.model_copy(
            update={"loyalty": item.loyalty.model_copy(update={"promo_identifier": "x"})}
        )
        if item.loyalty is not None
        else item
        for item in returned.items
    )
    damaged = LedgerFacts(returned=replace(returned, items=items))

    with pytest.raises(ValueError, match="exactly one of promotion_id and promo_identifier"):
        plan(_cancel(), policy(), NOW, damaged)
