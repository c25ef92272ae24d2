"""Contract: every (repaired) JSON example of the pages goes through our wire models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from service.capillary import models as m

FIXTURES = Path(__file__).parents[2] / "fixtures" / "capillary"

MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("loyalty_revoke", "request"): m.LoyaltyBulkRequest,
    ("loyalty_revoke", "response"): m.LoyaltyBulkResponse,
    ("loyalty_enrol", "request"): m.LoyaltyBulkRequest,
    ("loyalty_enrol", "response"): m.LoyaltyBulkResponse,
    ("cart_revoke", "request"): m.CartRevokeRequest,
    ("cart_revoke", "response"): m.CartRevokeResponse,
    ("coupon_revoke", "request"): m.CouponRevokeRequest,
    ("coupon_revoke", "response"): m.CouponRevokeResponse,
    ("deactivate", "response"): m.DeactivateResponse,
    ("oauth_token", "request"): m.OAuthTokenRequest,
    ("oauth_token", "response"): m.OAuthTokenResponse,
}
FILES = sorted(FIXTURES.glob("*.json"))


def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_fixtures_cover_every_json_example_of_the_pages() -> None:
    # CI and every developer have ../shared beside the clone.
    pages = Path(__file__).resolve().parents[3].parent / "shared" / "capillary-api"
    if not pages.exists():
        pytest.skip("vendor pages not on this machine")
    fenced = sum(p.read_text().count("```json") for p in pages.glob("*.md"))
    # + 2 cart curl bodies, 1 cart and 1 deactivate response (not fenced on those pages)
    on_pages = fenced + 4
    assert len([f for f in FILES if not f.name.startswith("oauth_token.")]) == on_pages


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_fixture_parses_with_its_wire_model(path: Path) -> None:
    endpoint, direction, _ = path.name.split(".", 2)
    model = MODELS[(endpoint, direction)]
    parsed = model.model_validate(json.loads(path.read_text()))
    if direction == "request":
        # What we would send back out is accepted by the same model.
        again = model.model_validate(
            parsed.model_dump(mode="json", by_alias=True, exclude_none=True)
        )
        assert again == parsed


def test_loyalty_request_string_promotion_id_becomes_integer() -> None:
    req = m.LoyaltyBulkRequest.model_validate(
        _load("loyalty_revoke.request.single_customer_action_revoke_enrol.json")
    )
    assert req.promotion_details.promotion_id == 202779
    assert req.wire()["promotionDetails"] == {"programId": 2714, "promotionId": 202779}


def test_loyalty_revoke_enrol_response_reads_issual_id_where_table_says_revoked() -> None:
    res = m.LoyaltyBulkResponse.model_validate(
        _load("loyalty_revoke.response.response_issue_earn_action_revoke_enrol.json")
    )
    assert [i.result.issual_id for i in res.response if i.result] == ["847", "848", "849", "850"]


def test_loyalty_partial_success_failures_have_no_result_and_total_is_not_successes() -> None:
    res = m.LoyaltyBulkResponse.model_validate(
        _load("loyalty_revoke.response.response_with_partial_success.json")
    )
    successes = [i for i in res.response if not i.errors]
    assert len(successes) == 1
    assert res.total_count == 3
    assert res.response[1].result is None
    assert res.response[1].errors[0].code == 8015


def test_coupon_partial_success_without_entity_and_misspelled_codes() -> None:
    res = m.CouponRevokeResponse.model_validate(
        _load(
            "coupon_revoke.response.partial_success_coupon_not_found_and_coupon_code_redeemed.json"
        )
    )
    assert res.entity is not None
    assert [c.coupon_code for c in res.entity.revoked_coupons] == ["SDDSDSDS"]
    assert [(g.error_code, g.coupon_codes) for g in res.entity.failed_to_revoke] == [
        (404, ["CODE4", "CODE5"]),
        (405, ["CODE6", "CODE7"]),
    ]


def test_coupon_top_level_error_shape() -> None:
    res = m.CouponRevokeResponse.model_validate(
        _load("coupon_revoke.response.failure_generic_coupon_code_are_not_supported.json")
    )
    assert res.entity is None
    assert res.success is False
    assert res.errors[0].code == 108


def test_cart_response_earn_ids_are_strings() -> None:
    res = m.CartRevokeResponse.model_validate(_load("cart_revoke.response.example_response.json"))
    assert res.data is not None
    assert res.data.revoked_details[0].revoked_earn_ids == ["6911eaf1f57b486147effac0"]


def test_request_models_refuse_what_capillary_would_refuse() -> None:
    with pytest.raises(ValueError, match="couponSeriesId"):
        m.CouponRevokeRequest(coupon_codes=["A", "B"])
    with pytest.raises(ValueError, match="exactly one"):
        m.PromotionDetails(program_id=1)
    # An empty identifier names no promotion, alone or beside an id: on the wire as in what
    # callers hand the client, it is refused, never sent.
    for keys in (m.PromotionDetails, m.LoyaltyPromotionRef):
        for promotion_id in (None, 2):
            with pytest.raises(ValueError, match="at least 1 character"):
                keys(program_id=1, promotion_id=promotion_id, promo_identifier="")
    customer = m.LoyaltyBulkCustomer(identifier_value="1", source="INSTORE")
    with pytest.raises(ValueError, match="once per call"):
        m.LoyaltyBulkRequest(
            bulk_action="REVOKE_EARN",
            promotion_details=m.PromotionDetails(program_id=1, promotion_id=2),
            identifier_name="id",
            customers=[customer, customer],
        )
