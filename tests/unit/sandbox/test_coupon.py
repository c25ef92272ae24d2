"""Coupon revoke endpoint of the sandbox."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from capillary_sandbox import Sandbox, demo_seed
from capillary_sandbox.state import Coupon

REVOKE = "/v2/coupon/revoke"
SERIES = 415446
GENERIC_SERIES = 415500
EXPIRED_SERIES = 415600
TOM = 555567088
HUCK = 555567089
BECKY = 555567090
HUCKS_SALE20 = 1247326290


def coupon(sandbox: Sandbox, code: str, holder: int | None = None) -> Coupon:
    """The coupon of ``code`` (held by ``holder`` when a generic code has several)."""
    held = [
        c
        for c in sandbox.state.coupons_by_code[code.upper()]
        if holder is None or c.customer_id == holder
    ]
    assert len(held) == 1
    return held[0]


@pytest.fixture
def shared_generic(sandbox: Sandbox) -> None:
    """The demo's generic code SALE20 issued to Huck as well as to Tom."""
    seed = demo_seed()
    seed.coupons.append(
        Coupon(id=HUCKS_SALE20, code="SALE20", series_id=GENERIC_SERIES, customer_id=HUCK)
    )
    sandbox.load_seed(seed)


def top_code(response: httpx.Response) -> int:
    body = response.json()
    assert body["success"] is False
    return int(body["errors"][0]["code"])


def failures(response: httpx.Response) -> dict[int, list[str]]:
    return {f["errorCode"]: f["couponCodes"] for f in response.json()["entity"]["failedToRevoke"]}


async def test_two_codes_with_series_are_revoked(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    response = await client.post(
        REVOKE, json={"couponSeriesId": SERIES, "couponCodes": ["3138309782", "3636820421"]}
    )

    assert response.status_code == 200
    assert response.json() == {
        "entity": {
            "totalCount": 2,
            "failedCount": 0,
            "revokedCoupons": [
                {"couponId": 1239817475, "couponCode": "3138309782", "issuedToUserId": TOM},
                {"couponId": 1239817476, "couponCode": "3636820421", "issuedToUserId": TOM},
            ],
            "failedToRevoke": [],
        },
        "warnings": [],
        "errors": [],
        "success": True,
    }
    assert coupon(sandbox, "3138309782").revoked


async def test_single_code_needs_no_series(client: httpx.AsyncClient) -> None:
    response = await client.post(REVOKE, json={"couponCodes": ["3138309782"]})

    assert response.json()["entity"]["revokedCoupons"][0]["couponCode"] == "3138309782"


async def test_more_than_one_code_without_series_is_rejected(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    response = await client.post(REVOKE, json={"couponCodes": ["3138309782", "3636820421"]})

    assert response.status_code == 400
    assert top_code(response) == 400
    assert not coupon(sandbox, "3138309782").revoked


async def test_more_than_50_codes_are_rejected_and_50_are_processed(
    client: httpx.AsyncClient,
) -> None:
    codes = ["3138309782", *(f"NOPE{n}" for n in range(49))]
    at_limit = await client.post(REVOKE, json={"couponSeriesId": SERIES, "couponCodes": codes})
    over = await client.post(
        REVOKE, json={"couponSeriesId": SERIES, "couponCodes": [*codes, "NOPE-X"]}
    )

    assert at_limit.status_code == 200
    assert at_limit.json()["entity"]["failedCount"] == 49
    assert over.status_code == 400
    assert top_code(over) == 400


async def test_redeemed_code_fails_with_405_and_unknown_with_682(client: httpx.AsyncClient) -> None:
    response = await client.post(
        REVOKE,
        json={"couponSeriesId": SERIES, "couponCodes": ["3138309782", "5500675094", "CODE123"]},
    )

    body = response.json()["entity"]
    assert (body["totalCount"], body["failedCount"]) == (3, 2)
    assert failures(response) == {405: ["5500675094"], 682: ["CODE123"]}


async def test_repeated_revoke_answers_682(client: httpx.AsyncClient) -> None:
    await client.post(REVOKE, json={"couponCodes": ["3138309782"]})

    again = await client.post(REVOKE, json={"couponCodes": ["3138309782"]})

    assert again.status_code == 200
    assert failures(again) == {682: ["3138309782"]}


async def test_code_of_another_series_answers_682(client: httpx.AsyncClient) -> None:
    response = await client.post(
        REVOKE, json={"couponSeriesId": SERIES, "couponCodes": ["3138309782", "SPRING25A"]}
    )

    assert failures(response) == {682: ["SPRING25A"]}


async def test_code_not_issued_to_given_customer_answers_404(client: httpx.AsyncClient) -> None:
    response = await client.post(
        REVOKE,
        json={
            "couponSeriesId": SERIES,
            "couponCodes": ["3138309782", "1017790881"],
            "customer": {"id": str(TOM)},
        },
    )

    assert failures(response) == {404: ["1017790881"]}


@pytest.mark.parametrize(
    "body",
    [
        {"couponCodes": ["SALE20"]},
        {"couponCodes": ["sale20"], "couponSeriesId": GENERIC_SERIES},
        {"couponCodes": ["sale-hf-0001"]},
    ],
)
async def test_single_generic_code_without_customer_answers_108(
    client: httpx.AsyncClient, sandbox: Sandbox, body: dict[str, Any]
) -> None:
    response = await client.post(REVOKE, json=body)

    assert response.status_code == 400
    assert top_code(response) == 108
    assert not any(c.revoked for c in sandbox.state.coupons_by_series[GENERIC_SERIES])


@pytest.mark.parametrize("series", [{}, {"couponSeriesId": GENERIC_SERIES}])
@pytest.mark.parametrize("customer", [{"id": str(HUCK)}, {"mobile": "919986000586"}])
async def test_generic_code_with_customer_revokes_only_that_customers_coupon(
    client: httpx.AsyncClient,
    sandbox: Sandbox,
    shared_generic: None,
    series: dict[str, Any],
    customer: dict[str, str],
) -> None:
    body = {"couponCodes": ["SALE20"], "customer": customer, **series}
    response = await client.post(REVOKE, json=body)

    assert response.status_code == 200
    assert response.json()["entity"] == {
        "totalCount": 1,
        "failedCount": 0,
        "revokedCoupons": [
            {"couponId": HUCKS_SALE20, "couponCode": "SALE20", "issuedToUserId": HUCK}
        ],
        "failedToRevoke": [],
    }
    assert coupon(sandbox, "SALE20", HUCK).revoked
    assert not coupon(sandbox, "SALE20", TOM).revoked
    again = await client.post(REVOKE, json=body)
    assert failures(again) == {682: ["SALE20"]}
    assert not coupon(sandbox, "SALE20", TOM).revoked


async def test_generic_code_with_customer_who_does_not_hold_it_answers_404(
    client: httpx.AsyncClient, sandbox: Sandbox, shared_generic: None
) -> None:
    response = await client.post(
        REVOKE, json={"couponCodes": ["SALE20"], "customer": {"id": str(BECKY)}}
    )

    assert response.status_code == 200
    assert failures(response) == {404: ["SALE20"]}
    assert response.json()["entity"]["revokedCoupons"] == []
    assert not any(c.revoked for c in sandbox.state.coupons_by_series[GENERIC_SERIES])


@pytest.mark.parametrize("customer", [{}, {"customer": {"id": str(TOM)}}])
async def test_several_generic_codes_with_series_revoke_whole_series_customer_or_not(
    client: httpx.AsyncClient,
    sandbox: Sandbox,
    shared_generic: None,
    customer: dict[str, Any],
) -> None:
    # sale-hf-0001 is Huck's, not Tom's: it goes with the series all the same.
    body = {
        "couponSeriesId": GENERIC_SERIES,
        "couponCodes": ["sale-hf-0001", "SALE20", "NOT-THERE"],
        **customer,
    }
    response = await client.post(REVOKE, json=body)

    entity = response.json()["entity"]
    revoked = [(c["couponCode"], c["issuedToUserId"]) for c in entity["revokedCoupons"]]
    assert revoked == [
        ("SALE-HF-0001", HUCK),
        ("SALE20", TOM),
        ("SALE20", HUCK),
        ("SALE-BT-0002", BECKY),
    ]
    assert failures(response) == {682: ["NOT-THERE"]}
    assert (entity["totalCount"], entity["failedCount"]) == (5, 1)
    assert all(c.revoked for c in sandbox.state.coupons_by_series[GENERIC_SERIES])


async def test_codes_of_generic_series_with_series_id_revoke_whole_series(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    response = await client.post(
        REVOKE,
        json={"couponSeriesId": GENERIC_SERIES, "couponCodes": ["sale-hf-0001", "NOT-THERE"]},
    )

    revoked = {c["couponCode"] for c in response.json()["entity"]["revokedCoupons"]}
    assert revoked == {"SALE-HF-0001", "SALE20", "SALE-BT-0002"}
    assert all(c.revoked for c in sandbox.state.coupons_by_series[GENERIC_SERIES])


@pytest.mark.parametrize(
    "body",
    [
        {"couponSeriesId": EXPIRED_SERIES, "couponCodes": ["SPRING25A", "X"]},
        {"couponCodes": ["SPRING25A"]},
        {"couponSeriesId": EXPIRED_SERIES, "customer": {"id": TOM}},
    ],
)
async def test_expired_series_answers_712(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post(REVOKE, json=body)

    assert top_code(response) == 712


@pytest.mark.parametrize(
    "body", [{}, {"couponSeriesId": SERIES}, {"couponCodes": [], "customer": {}}]
)
async def test_neither_codes_nor_customer_answers_756(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await client.post(REVOKE, json=body)

    assert response.status_code == 400
    assert top_code(response) == 756


@pytest.mark.parametrize(
    "customer",
    [
        {"mobile": "11223569865"},
        {"email": "tom.sawyer@example.com"},
        {"externalId": "000003873472"},
        {"id": "555567088"},
    ],
)
async def test_revoke_by_customer_takes_unredeemed_coupons_of_series(
    client: httpx.AsyncClient, sandbox: Sandbox, customer: dict[str, str]
) -> None:
    response = await client.post(REVOKE, json={"couponSeriesId": SERIES, "customer": customer})

    revoked = [c["couponCode"] for c in response.json()["entity"]["revokedCoupons"]]
    assert revoked == ["3138309782", "3636820421"]
    assert not coupon(sandbox, "5500675094").revoked  # redeemed stays
    assert not coupon(sandbox, "SALE20").revoked  # other series stays


async def test_revoke_by_customer_without_series_skips_expired_series(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(REVOKE, json={"customer": {"id": TOM}})

    revoked = {c["couponCode"] for c in response.json()["entity"]["revokedCoupons"]}
    assert revoked == {"3138309782", "3636820421", "SALE20"}


async def test_unknown_customer_answers_404_at_top_level(client: httpx.AsyncClient) -> None:
    response = await client.post(REVOKE, json={"customer": {"mobile": "000"}})

    assert top_code(response) == 404


async def test_more_than_100_unredeemed_coupons_by_customer_is_rejected(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    seed = demo_seed()
    seed.coupons.extend(
        Coupon(id=9_000_000 + n, code=f"BULK{n:04d}", series_id=SERIES, customer_id=TOM)
        for n in range(99)
    )
    sandbox.load_seed(seed)  # 2 + 99 = 101 unredeemed in the series

    response = await client.post(REVOKE, json={"couponSeriesId": SERIES, "customer": {"id": TOM}})

    assert response.status_code == 400
    assert top_code(response) == 400
    assert not coupon(sandbox, "BULK0000").revoked


async def test_exactly_100_unredeemed_coupons_by_customer_are_revoked(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    seed = demo_seed()
    seed.coupons.extend(
        Coupon(id=9_000_000 + n, code=f"BULK{n:04d}", series_id=SERIES, customer_id=TOM)
        for n in range(98)
    )
    sandbox.load_seed(seed)

    response = await client.post(REVOKE, json={"couponSeriesId": SERIES, "customer": {"id": TOM}})

    assert response.json()["entity"]["totalCount"] == 100


@pytest.mark.parametrize(
    ("case", "shown"),
    [
        (None, "SALE-HF-0001"),
        ("UPPER", "SALE-HF-0001"),
        ("LOWER", "sale-hf-0001"),
        ("AS_IT_IS", "sale-hf-0001"),
    ],
)
async def test_coupon_code_case_controls_returned_codes(
    client: httpx.AsyncClient, case: str | None, shown: str
) -> None:
    params = {"couponCodeCase": case} if case else {}
    response = await client.post(
        REVOKE,
        params=params,
        json={"customer": {"id": 555567089}, "couponSeriesId": GENERIC_SERIES},
    )

    assert [c["couponCode"] for c in response.json()["entity"]["revokedCoupons"]] == [shown]


async def test_unknown_coupon_code_case_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post(
        REVOKE, params={"couponCodeCase": "TITLE"}, json={"couponCodes": ["3138309782"]}
    )

    assert top_code(response) == 400
