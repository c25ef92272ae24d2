"""Cart promotion endpoints of the sandbox: revokeEarn and deactivate."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from capillary_sandbox import Sandbox, demo_seed
from capillary_sandbox.state import CartEarn

REVOKE = "/api_gateway/v1/promotions/revokeEarn"
DISCOUNT = "69117663b1cfc114606fd7fb"
VOUCHER = "69058646b1cfc114606f7bbe"
POS = "68f9f2904a314550c4b46dc0"
CODE = "6905a1c2b1cfc114606f0c0d"
INACTIVE = "68e0c0ffeeb1cfc114606f00"
POLLY = 566881933
TOM = 555567088
JOE_WITH_OPEN_CART = 555567091


def revoke_body(*details: tuple[str, list[str]], customer_id: Any = POLLY) -> dict[str, Any]:
    return {
        "customerId": customer_id,
        "earnRevokeDetails": [{"promotionId": p, "earnIds": ids} for p, ids in details],
    }


def deactivate_url(promotion_id: str, customer_id: int | str, earn_id: str | None = None) -> str:
    query = f"customerId={customer_id}" + (f"&earnId={earn_id}" if earn_id is not None else "")
    return f"/api_gateway/v1/promotions/{promotion_id}/deactivate?{query}"


async def test_revoke_earn_of_page_example_succeeds_for_both_promotions(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    response = await client.post(
        REVOKE,
        json=revoke_body(
            (DISCOUNT, ["6911eaf1f57b486147effac0"]), (VOUCHER, ["68f869d94a314550c4b46047"])
        ),
    )

    assert response.status_code == 200
    assert response.json() == {
        "data": {
            "customerId": POLLY,
            "revokedDetails": [
                {
                    "promotionId": DISCOUNT,
                    "revokedEarnIds": ["6911eaf1f57b486147effac0"],
                    "status": "SUCCESS",
                },
                {
                    "promotionId": VOUCHER,
                    "revokedEarnIds": ["68f869d94a314550c4b46047"],
                    "status": "SUCCESS",
                },
            ],
        },
        "errors": [],
    }
    assert sandbox.state.cart_earns["6911eaf1f57b486147effac0"].revoked


async def test_repeated_revoke_of_revoked_earn_answers_731(client: httpx.AsyncClient) -> None:
    request = revoke_body((DISCOUNT, ["6911eaf1f57b486147effac0"]))
    await client.post(REVOKE, json=request)

    again = await client.post(REVOKE, json=request)

    assert again.status_code == 400
    assert [e["code"] for e in again.json()["errors"]] == [731]
    assert again.json()["data"]["revokedDetails"][0]["status"] == "FAILED"


async def test_redeemed_earn_answers_729(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    response = await client.post(REVOKE, json=revoke_body((DISCOUNT, ["6911eaf1f57b486147effac1"])))

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == 729
    assert not sandbox.state.cart_earns["6911eaf1f57b486147effac1"].revoked


@pytest.mark.parametrize(
    ("promotion", "earn"),
    [(POS, "68f9f2904a314550c4b46dc1"), (CODE, "6905a1c2b1cfc114606f0c0e")],
)
async def test_pos_and_code_promotions_answer_730(
    client: httpx.AsyncClient, promotion: str, earn: str
) -> None:
    response = await client.post(REVOKE, json=revoke_body((promotion, [earn])))

    assert response.json()["errors"][0]["code"] == 730


@pytest.mark.parametrize(
    "earn",
    [
        "000000000000000000000000",  # unknown
        "6911eaf1f57b486147effac2",  # Tom's, not Polly's
        "68f869d94a314550c4b46047",  # Polly's, but of the voucher promotion
    ],
)
async def test_earn_not_of_this_customer_and_promotion_answers_731(
    client: httpx.AsyncClient, earn: str
) -> None:
    response = await client.post(REVOKE, json=revoke_body((DISCOUNT, [earn])))

    assert response.json()["errors"][0]["code"] == 731


@pytest.mark.parametrize("promotion", ["aaaaaaaaaaaaaaaaaaaaaaaa", INACTIVE])
async def test_unknown_or_inactive_promotion_answers_404(
    client: httpx.AsyncClient, promotion: str
) -> None:
    response = await client.post(
        REVOKE, json=revoke_body((promotion, ["6911eaf1f57b486147effac0"]))
    )

    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == 404


async def test_unknown_customer_answers_404(client: httpx.AsyncClient) -> None:
    response = await client.post(
        REVOKE, json=revoke_body((DISCOUNT, ["6911eaf1f57b486147effac0"]), customer_id=1)
    )

    assert response.status_code == 404
    assert response.json() == {
        "data": None,
        "errors": [{"code": 404, "message": "Customer not found."}],
    }


async def test_partial_success_answers_200_with_errors(client: httpx.AsyncClient) -> None:
    response = await client.post(
        REVOKE,
        json=revoke_body((DISCOUNT, ["6911eaf1f57b486147effac0", "6911eaf1f57b486147effac1"])),
    )

    assert response.status_code == 200
    body = response.json()
    assert body["data"]["revokedDetails"] == [
        {
            "promotionId": DISCOUNT,
            "revokedEarnIds": ["6911eaf1f57b486147effac0"],
            "status": "PARTIAL_SUCCESS",
        }
    ]
    assert body["errors"] == [{"code": 729, "message": "Promotion earn instance already redeemed."}]


async def test_errors_carry_only_code_and_message_one_entry_per_code(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        REVOKE,
        json=revoke_body(
            (DISCOUNT, ["000000000000000000000000", "6911eaf1f57b486147effac0"]),
            (VOUCHER, ["000000000000000000000001", "68f869d94a314550c4b46047"]),
            ("aaaaaaaaaaaaaaaaaaaaaaaa", ["000000000000000000000002"]),
        ),
    )

    assert response.status_code == 200
    body = response.json()
    assert body["errors"] == [
        {"code": 731, "message": "Earn ID passed is not valid."},
        {"code": 404, "message": "Promotion, Earn, or Customer not found."},
    ]
    assert [d["revokedEarnIds"] for d in body["data"]["revokedDetails"]] == [
        ["6911eaf1f57b486147effac0"],
        ["68f869d94a314550c4b46047"],
        [],
    ]


@pytest.mark.parametrize(
    "body",
    [
        {
            "customerId": "566881933",
            "earnRevokeDetails": [{"promotionId": DISCOUNT, "earnIds": ["x"]}],
        },
        {"customerId": POLLY, "earnRevokeDetails": []},
        {"customerId": POLLY, "earnRevokeDetails": [{"promotionId": DISCOUNT}]},
        {"customerId": POLLY, "earnRevokeDetails": [{"promotionId": DISCOUNT, "earnIds": [1]}]},
        {"earnRevokeDetails": [{"promotionId": DISCOUNT, "earnIds": ["x"]}]},
    ],
)
async def test_invalid_request_answers_400(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post(REVOKE, json=body)

    assert response.status_code == 400
    assert response.json()["data"] is None


async def test_more_than_1000_earn_ids_in_total_answers_400_and_revokes_nothing(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    filler = [f"{n:024x}" for n in range(1000)]
    response = await client.post(
        REVOKE, json=revoke_body((DISCOUNT, filler), (VOUCHER, ["68f869d94a314550c4b46047"]))
    )

    assert response.status_code == 400
    assert not sandbox.state.cart_earns["68f869d94a314550c4b46047"].revoked


async def test_exactly_1000_earn_ids_are_processed(client: httpx.AsyncClient) -> None:
    ids = ["6911eaf1f57b486147effac0", *(f"{n:024x}" for n in range(999))]
    response = await client.post(REVOKE, json=revoke_body((DISCOUNT, ids)))

    assert response.status_code == 200
    assert response.json()["data"]["revokedDetails"][0]["revokedEarnIds"] == [ids[0]]


# ------------------------------------------------------------------------------ deactivate


async def test_deactivate_without_earn_id_ends_participation_and_revokes_earns(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    response = await client.post(deactivate_url(DISCOUNT, POLLY), content=b"")

    assert response.status_code == 200
    assert response.json() == {"data": True, "errors": []}
    assert (DISCOUNT, POLLY) in sandbox.state.deactivated
    assert sandbox.state.cart_earns["6911eaf1f57b486147effac0"].revoked
    assert not sandbox.state.cart_earns["6911eaf1f57b486147effac2"].revoked  # Tom's stays
    again = await client.post(deactivate_url(DISCOUNT, POLLY))
    assert again.json() == {"data": True, "errors": []}


async def test_deactivate_payment_voucher_with_earn_id_revokes_that_earn(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    response = await client.post(deactivate_url(VOUCHER, POLLY, "68f869d94a314550c4b46047"))

    assert response.json() == {"data": True, "errors": []}
    assert sandbox.state.cart_earns["68f869d94a314550c4b46047"].revoked
    again = await client.post(deactivate_url(VOUCHER, POLLY, "68f869d94a314550c4b46047"))
    assert again.json()["errors"][0]["code"] == 731


@pytest.mark.parametrize(
    ("promotion", "earn"),
    [(VOUCHER, None), (DISCOUNT, "6911eaf1f57b486147effac0"), (DISCOUNT, "null")],
)
async def test_deactivate_wrong_earn_id_and_mode_combination_answers_736(
    client: httpx.AsyncClient, promotion: str, earn: str | None
) -> None:
    response = await client.post(deactivate_url(promotion, POLLY, earn))

    assert response.status_code == 400
    assert response.json() == {
        "data": False,
        "errors": [
            {
                "code": 736,
                "message": "PROMO.UNSUPPORTED_PREFERENCE_CHANGE: Incorrect combination of "
                "earnId and promotion mode.",
            }
        ],
    }


@pytest.mark.parametrize(
    "earn",
    [
        "null",  # unknown
        "000000000000000000000000",  # unknown
        "68f869d94a314550c4b46048",  # Tom's voucher earn, not Polly's
        "6911eaf1f57b486147effac0",  # Polly's, but of the discount promotion
        "6911eaf1f57b486147effac1",  # ... and that one is redeemed: still not this promotion's
    ],
)
async def test_deactivate_invalid_earn_id_answers_731(client: httpx.AsyncClient, earn: str) -> None:
    response = await client.post(deactivate_url(VOUCHER, POLLY, earn))

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == 731


REDEEMED_VOUCHER = "68f869d94a314550c4b4604a"


@pytest.fixture
def redeemed_voucher(sandbox: Sandbox) -> str:
    """Polly holds a redeemed earn of the PAYMENT_VOUCHER promotion."""
    seed = demo_seed()
    seed.cart_earns.append(
        CartEarn(id=REDEEMED_VOUCHER, promotion_id=VOUCHER, customer_id=POLLY, redeemed=True)
    )
    sandbox.load_seed(seed)
    return REDEEMED_VOUCHER


async def test_deactivate_redeemed_payment_voucher_earn_answers_729(
    client: httpx.AsyncClient, sandbox: Sandbox, redeemed_voucher: str
) -> None:
    response = await client.post(deactivate_url(VOUCHER, POLLY, redeemed_voucher))

    assert response.status_code == 400
    assert response.json() == {
        "data": False,
        "errors": [{"code": 729, "message": "Promotion earn instance already redeemed."}],
    }
    assert not sandbox.state.cart_earns[redeemed_voucher].revoked
    again = await client.post(deactivate_url(VOUCHER, POLLY, redeemed_voucher))
    assert again.json()["errors"][0]["code"] == 729


async def test_deactivate_redeemed_voucher_of_another_customer_answers_731(
    client: httpx.AsyncClient, redeemed_voucher: str
) -> None:
    response = await client.post(deactivate_url(VOUCHER, TOM, redeemed_voucher))

    assert response.json()["errors"][0]["code"] == 731


@pytest.mark.parametrize("promotion", [POS, CODE])
async def test_deactivate_pos_or_code_promotion_answers_707(
    client: httpx.AsyncClient, promotion: str
) -> None:
    response = await client.post(deactivate_url(promotion, POLLY))

    assert response.json()["errors"][0]["code"] == 707


@pytest.mark.parametrize("promotion", ["aaaaaaaaaaaaaaaaaaaaaaaa", INACTIVE])
async def test_deactivate_unknown_or_inactive_promotion_answers_404(
    client: httpx.AsyncClient, promotion: str
) -> None:
    response = await client.post(deactivate_url(promotion, POLLY))

    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == 404


async def test_deactivate_with_open_cart_answers_737_and_changes_nothing(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    response = await client.post(deactivate_url(DISCOUNT, JOE_WITH_OPEN_CART))

    assert response.json()["errors"][0]["code"] == 737
    assert not sandbox.state.cart_earns["6911eaf1f57b486147effac3"].revoked


@pytest.mark.parametrize(
    "url",
    [
        f"/api_gateway/v1/promotions/{DISCOUNT}/deactivate",
        f"/api_gateway/v1/promotions/{DISCOUNT}/deactivate?customerId=abc",
        "/api_gateway/v1/promotions//deactivate?customerId=566881933&earnId=null",
        f"/api_gateway/v1/promotions/{DISCOUNT}/deactivate?customerId=1",
    ],
)
async def test_deactivate_missing_or_invalid_params_answer_400(
    client: httpx.AsyncClient, url: str
) -> None:
    response = await client.post(url)

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == 400
