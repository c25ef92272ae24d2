"""Loyalty bulk endpoints of the sandbox: revokeEnrolAndEarn and enrolAndEarn."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from capillary_sandbox import Sandbox
from tests.unit.sandbox.helpers import huck, loyalty_body, tom

REVOKE = "/v2/promotion/bulk/revokeEnrolAndEarn"
ENROL = "/v2/promotion/bulk/enrolAndEarn"
DIRECT = {"programId": 2714, "promoIdentifier": "1d9e540d-ae2c-443f-9d0d-7ac146bf93f2"}


def codes(body: dict[str, Any]) -> list[int | None]:
    """The first error code of each item, None for successes."""
    return [item["errors"][0]["code"] if item["errors"] else None for item in body["response"]]


async def test_revoke_earn_with_earn_ids_revokes_only_those(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    response = await client.post(REVOKE, json=loyalty_body("REVOKE_EARN", [tom(earnIds=[974])]))

    assert response.status_code == 200
    body = response.json()
    assert body["response"][0]["result"] == {
        "entityType": "CUSTOMER",
        "entityId": 555567088,
        "promotionId": 202779,
        "programId": 2714,
        "revokedEarnIds": [974],
    }
    assert (body["totalCount"], body["failureCount"]) == (1, 0)
    assert sandbox.state.loyalty_earns[974].revoked
    assert not sandbox.state.loyalty_earns[975].revoked


async def test_revoke_earn_twice_answers_8903(client: httpx.AsyncClient) -> None:
    request = loyalty_body("REVOKE_EARN", [tom(earnIds=[974])])
    await client.post(REVOKE, json=request)

    again = (await client.post(REVOKE, json=request)).json()

    assert codes(again) == [8903]
    assert "result" not in again["response"][0]
    assert again["response"][0]["errors"][0]["message"] == (
        "Earn IDs passed are either invalid or already revoked"
    )


async def test_revoke_earn_with_some_invalid_ids_revokes_and_lists_only_the_valid_ones(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    # 957 is Tom's earn of the direct promotion, not of 202779; 959 is Becky's; 12345 unknown.
    request = loyalty_body("REVOKE_EARN", [tom(earnIds=[12345, 974, 957, 959, 974])])
    body = (await client.post(REVOKE, json=request)).json()

    assert codes(body) == [None]
    assert body["response"][0]["result"]["revokedEarnIds"] == [974]
    assert (body["totalCount"], body["failureCount"]) == (1, 0)
    earns = sandbox.state.loyalty_earns
    assert (earns[974].revoked, earns[975].revoked) == (True, False)
    assert (earns[957].revoked, earns[959].revoked) == (False, False)


async def test_revoke_earn_repeated_with_one_new_id_lists_only_the_new_one(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    await client.post(REVOKE, json=loyalty_body("REVOKE_EARN", [tom(earnIds=[974])]))

    body = (
        await client.post(REVOKE, json=loyalty_body("REVOKE_EARN", [tom(earnIds=[974, 975])]))
    ).json()

    assert body["response"][0]["result"]["revokedEarnIds"] == [975]
    assert sandbox.state.loyalty_earns[975].revoked


async def test_revoke_earn_with_no_valid_id_answers_8903_and_revokes_nothing(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    body = (
        await client.post(REVOKE, json=loyalty_body("REVOKE_EARN", [tom(earnIds=[957, 12345])]))
    ).json()

    assert codes(body) == [8903]
    assert "result" not in body["response"][0]
    assert not any(e.revoked for e in sandbox.state.loyalty_earns.values())


async def test_revoke_earn_with_empty_earn_ids_revokes_every_earn_like_no_list(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    body = (await client.post(REVOKE, json=loyalty_body("REVOKE_EARN", [tom(earnIds=[])]))).json()

    assert body["response"][0]["result"]["revokedEarnIds"] == [974, 975]
    assert not sandbox.state.loyalty_earns[957].revoked  # another promotion's earn stays
    again = (await client.post(REVOKE, json=loyalty_body("REVOKE_EARN", [tom(earnIds=[])]))).json()
    assert codes(again) == [8903]


async def test_revoke_earn_without_earn_ids_revokes_all_active_earns(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    body = (await client.post(REVOKE, json=loyalty_body("REVOKE_EARN", [tom()]))).json()

    assert body["response"][0]["result"]["revokedEarnIds"] == [974, 975]
    again = (await client.post(REVOKE, json=loyalty_body("REVOKE_EARN", [tom()]))).json()
    assert codes(again) == [8903]


async def test_revoke_earn_by_promo_identifier_echoes_identifier(client: httpx.AsyncClient) -> None:
    body = (
        await client.post(REVOKE, json=loyalty_body("REVOKE_EARN", [tom()], promotion=DIRECT))
    ).json()

    result = body["response"][0]["result"]
    assert result["promoIdentifier"] == DIRECT["promoIdentifier"]
    assert "promotionId" not in result
    assert result["revokedEarnIds"] == [957]


async def test_bulk_results_match_customers_by_position(client: httpx.AsyncClient) -> None:
    customers = [
        {"identifierValue": "999", "source": "INSTORE"},
        tom(earnIds=[975]),
        {"identifierValue": "555567089", "source": "INSTORE"},
        {"identifierValue": "555567090", "source": ""},
    ]
    body = (await client.post(REVOKE, json=loyalty_body("REVOKE_EARN", customers))).json()

    # Huck (555567089) is enrolled but has no earns: nothing to revoke.
    assert codes(body) == [8015, None, 8903, 11013]
    assert body["response"][1]["result"]["entityId"] == 555567088
    assert (body["totalCount"], body["failureCount"]) == (4, 3)


@pytest.mark.parametrize(
    ("identifier_name", "value"),
    [("mobile", "11223569865"), ("email", "TOM.SAWYER@example.com"), ("id", "555567088")],
)
async def test_customer_is_found_by_each_identifier_name(
    client: httpx.AsyncClient, identifier_name: str, value: str
) -> None:
    request = loyalty_body(
        "REVOKE_EARN",
        [{"identifierValue": value, "source": "instore", "earnIds": [974]}],
        identifier_name=identifier_name,
    )
    body = (await client.post(REVOKE, json=request)).json()

    assert body["response"][0]["result"]["entityId"] == 555567088


async def test_source_other_than_registration_source_is_customer_not_found(
    client: httpx.AsyncClient,
) -> None:
    body = (
        await client.post(REVOKE, json=loyalty_body("REVOKE_EARN", [tom(source="FACEBOOK")]))
    ).json()

    assert codes(body) == [8015]


@pytest.mark.parametrize(
    ("promotion", "code"),
    [
        ({"programId": 9999, "promotionId": "202779"}, 1101),
        ({"programId": 2714, "promotionId": "1"}, 8874),
        ({"programId": 2714, "promoIdentifier": "no-such-identifier"}, 8874),
        ({"programId": 2714}, 8881),
        ({"promotionId": "202779"}, 8881),
        ({"programId": 2714, "promotionId": "202091"}, 8892),
    ],
)
async def test_call_level_error_is_repeated_for_every_customer(
    client: httpx.AsyncClient, promotion: dict[str, Any], code: int
) -> None:
    request = loyalty_body("REVOKE_EARN", [tom(), huck()], promotion=promotion)
    body = (await client.post(REVOKE, json=request)).json()

    assert codes(body) == [code, code]
    assert (body["totalCount"], body["failureCount"]) == (2, 2)


async def test_entity_type_other_than_customer_answers_8901(client: httpx.AsyncClient) -> None:
    request = loyalty_body("REVOKE_EARN", [tom()], entity_type="USER_GROUP")
    body = (await client.post(REVOKE, json=request)).json()

    assert codes(body) == [8901]


async def test_revoke_enrol_on_direct_promotion_answers_8902(client: httpx.AsyncClient) -> None:
    body = (
        await client.post(REVOKE, json=loyalty_body("REVOKE_ENROL", [tom()], promotion=DIRECT))
    ).json()

    assert codes(body) == [8902]


async def test_enrol_on_direct_promotion_answers_8902(client: httpx.AsyncClient) -> None:
    body = (await client.post(ENROL, json=loyalty_body("ENROL", [tom()], promotion=DIRECT))).json()

    assert codes(body) == [8902]


@pytest.mark.parametrize(
    "customer",
    [
        {"identifierValue": "", "source": "INSTORE"},
        {"identifierValue": "555567088", "source": ""},
        {"identifierValue": "555567088"},
    ],
)
async def test_empty_identifier_value_or_source_answers_11013(
    client: httpx.AsyncClient, customer: dict[str, Any]
) -> None:
    body = (await client.post(REVOKE, json=loyalty_body("REVOKE_EARN", [customer]))).json()

    assert codes(body) == [11013]


async def test_unsupported_identifier_name_answers_11013(client: httpx.AsyncClient) -> None:
    request = loyalty_body("REVOKE_EARN", [tom()], identifier_name="externalId")
    body = (await client.post(REVOKE, json=request)).json()

    assert codes(body) == [11013]


async def test_more_than_100_customers_is_rejected_with_400(client: httpx.AsyncClient) -> None:
    response = await client.post(REVOKE, json=loyalty_body("REVOKE_EARN", [tom()] * 101))

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == 400


async def test_exactly_100_customers_are_all_answered(client: httpx.AsyncClient) -> None:
    customers = [{"identifierValue": str(n), "source": "INSTORE"} for n in range(100)]
    response = await client.post(REVOKE, json=loyalty_body("REVOKE_EARN", customers))

    assert response.status_code == 200
    assert len(response.json()["response"]) == 100


async def test_bulk_action_of_the_other_endpoint_is_rejected_with_400(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(REVOKE, json=loyalty_body("EARN", [tom()]))

    assert response.status_code == 400


async def test_revoke_enrol_with_active_earns_answers_8896_then_succeeds_after_revoke_earn(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    first = (await client.post(REVOKE, json=loyalty_body("REVOKE_ENROL", [tom()]))).json()
    assert codes(first) == [8896]
    assert first["response"][0]["errors"][0]["message"] == (
        "Error occurred while issuing promotion to the customer"
    )
    assert (202779, 555567088) in sandbox.state.enrolments

    await client.post(REVOKE, json=loyalty_body("REVOKE_EARN", [tom()]))
    second = (await client.post(REVOKE, json=loyalty_body("REVOKE_ENROL", [tom()]))).json()

    assert second["response"][0]["result"]["issualId"] == "847"
    assert "revokedIssualId" not in second["response"][0]["result"]
    third = (await client.post(REVOKE, json=loyalty_body("REVOKE_ENROL", [tom()]))).json()
    assert codes(third) == [8903]


async def test_enrol_then_earn_issues_new_string_earned_id(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    becky = {"identifierValue": "555567090", "source": "WEB_ENGAGE"}
    enrol = (await client.post(ENROL, json=loyalty_body("ENROL", [becky]))).json()
    issual = enrol["response"][0]["result"]["issualId"]

    earn = (await client.post(ENROL, json=loyalty_body("EARN", [becky]))).json()
    result = earn["response"][0]["result"]

    assert isinstance(result["earnedId"], str)
    assert result["issualId"] == issual
    earned = sandbox.state.loyalty_earns[int(result["earnedId"])]
    assert (earned.customer_id, earned.promotion_id, earned.revoked) == (555567090, 202779, False)
    second = (await client.post(ENROL, json=loyalty_body("EARN", [becky]))).json()
    assert second["response"][0]["result"]["earnedId"] != result["earnedId"]


async def test_enrol_of_enrolled_customer_answers_existing_issual(
    client: httpx.AsyncClient,
) -> None:
    body = (await client.post(ENROL, json=loyalty_body("ENROL", [tom()]))).json()

    assert body["response"][0]["result"]["issualId"] == "847"


async def test_earn_without_enrolment_answers_8896(client: httpx.AsyncClient) -> None:
    becky = {"identifierValue": "555567090", "source": "WEB_ENGAGE"}
    body = (await client.post(ENROL, json=loyalty_body("EARN", [becky]))).json()

    assert codes(body) == [8896]


async def test_direct_earn_answers_dummy_issual_and_new_earn(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    body = (await client.post(ENROL, json=loyalty_body("EARN", [tom()], promotion=DIRECT))).json()

    result = body["response"][0]["result"]
    assert isinstance(result["issualId"], str)
    assert sandbox.state.loyalty_earns[int(result["earnedId"])].promotion_id == 202090


async def test_earn_after_revoke_can_be_revoked_by_its_new_id(client: httpx.AsyncClient) -> None:
    await client.post(REVOKE, json=loyalty_body("REVOKE_EARN", [tom(earnIds=[974])]))
    issued = (await client.post(ENROL, json=loyalty_body("EARN", [tom()]))).json()
    new_id = int(issued["response"][0]["result"]["earnedId"])

    body = (
        await client.post(REVOKE, json=loyalty_body("REVOKE_EARN", [tom(earnIds=[new_id])]))
    ).json()

    assert body["response"][0]["result"]["revokedEarnIds"] == [new_id]


DIRECT_202090 = {"programId": 2714, "promotionId": "202090"}
UNKNOWN = {"identifierValue": "123", "source": "INSTORE"}
BECKY = {"identifierValue": "555567090", "source": "WEB_ENGAGE"}


def entity_ids(body: dict[str, Any]) -> list[int | None]:
    """Each item's entityId, None for an item without a result."""
    return [item["result"]["entityId"] if "result" in item else None for item in body["response"]]


async def test_mixed_revoke_answers_items_in_request_order(client: httpx.AsyncClient) -> None:
    # Not sorted by id: Becky (959) first, Tom (957) third; Huck has no earn there.
    customers = [BECKY, UNKNOWN, tom(), huck()]
    request = loyalty_body("REVOKE_EARN", customers, promotion=DIRECT_202090)
    body = (await client.post(REVOKE, json=request)).json()

    assert codes(body) == [None, 8015, None, 8903]
    assert entity_ids(body) == [555567090, None, 555567088, None]
    assert [i["result"]["revokedEarnIds"] for i in body["response"] if "result" in i] == [
        [959],
        [957],
    ]
    assert (body["totalCount"], body["failureCount"]) == (4, 2)


async def test_mixed_enrol_answers_items_in_request_order(client: httpx.AsyncClient) -> None:
    body = (
        await client.post(ENROL, json=loyalty_body("ENROL", [BECKY, UNKNOWN, huck(), tom()]))
    ).json()

    assert codes(body) == [None, 8015, None, None]
    assert entity_ids(body) == [555567090, None, 555567089, 555567088]
    issuals = [i["result"]["issualId"] if "result" in i else None for i in body["response"]]
    assert issuals[1:] == [None, "848", "847"]
    assert issuals[0] not in (None, "847", "848")
    assert "entityId" not in body["response"][1]


@pytest.mark.parametrize("path", [REVOKE, ENROL])
@pytest.mark.parametrize(
    "customer",
    [
        {"identifierValue": 555567088, "source": "INSTORE", "earnIds": [974]},
        {"identifierValue": 555567088.0, "source": "INSTORE", "earnIds": [974]},
        {"identifierValue": ["555567088"], "source": "INSTORE", "earnIds": [974]},
        {"identifierValue": "   ", "source": "INSTORE", "earnIds": [974]},
    ],
)
async def test_identifier_value_not_a_string_answers_11013(
    client: httpx.AsyncClient, sandbox: Sandbox, path: str, customer: dict[str, Any]
) -> None:
    action = "REVOKE_EARN" if path == REVOKE else "EARN"
    body = (
        await client.post(path, json=loyalty_body(action, [customer], promotion=DIRECT_202090))
    ).json()

    assert codes(body) == [11013]
    assert body["response"][0]["errors"][0]["message"] == (
        "identifierName, identifierValue, source can not be empty"
    )
    assert len(sandbox.state.loyalty_earns) == 4  # nothing issued
    assert not any(e.revoked for e in sandbox.state.loyalty_earns.values())


@pytest.mark.parametrize("path", [REVOKE, ENROL])
@pytest.mark.parametrize("source", ["POS", "STORE", "IN STORE", " INSTORE", "INSTORE ", "*", 1])
async def test_source_outside_the_pages_list_answers_11013(
    client: httpx.AsyncClient, path: str, source: object
) -> None:
    action = "REVOKE_EARN" if path == REVOKE else "ENROL"
    body = (await client.post(path, json=loyalty_body(action, [tom(source=source)]))).json()

    assert codes(body) == [11013]


@pytest.mark.parametrize("source", ["INSTORE", "instore", "InStore", "ALL", "all"])
async def test_listed_source_in_any_case_is_accepted(
    client: httpx.AsyncClient, source: str
) -> None:
    body = (
        await client.post(REVOKE, json=loyalty_body("REVOKE_EARN", [tom(source=source)]))
    ).json()

    assert entity_ids(body) == [555567088]


@pytest.mark.parametrize("source", ["FACEBOOK", "web_engage", "ECOMMERCE", "LINE"])
async def test_listed_source_other_than_registration_source_is_8015(
    client: httpx.AsyncClient, source: str
) -> None:
    body = (await client.post(ENROL, json=loyalty_body("ENROL", [tom(source=source)]))).json()

    assert codes(body) == [8015]


async def test_mobile_in_the_pages_form_is_found(client: httpx.AsyncClient) -> None:
    request = loyalty_body(
        "ENROL",
        [{"identifierValue": "919986000586", "source": "INSTORE"}],
        identifier_name="mobile",
    )
    body = (await client.post(ENROL, json=request)).json()

    assert entity_ids(body) == [555567089]
    assert body["response"][0]["result"]["issualId"] == "848"


@pytest.mark.parametrize(
    ("identifier_name", "value"),
    [
        ("mobile", "+919986000586"),
        ("mobile", "91 9986000586"),
        ("mobile", "91-9986000586"),
        ("mobile", "9986000586"),  # without the country code
        ("mobile", "0919986000586"),
        ("mobile", " 919986000586"),
        ("mobile", "919986000586 "),
        ("id", " 555567089"),
        ("id", "0555567089"),
        ("id", "+555567089"),
        ("email", " huck.finn@example.com"),
    ],
)
async def test_identifier_value_in_another_form_is_customer_not_found(
    client: httpx.AsyncClient, sandbox: Sandbox, identifier_name: str, value: str
) -> None:
    request = loyalty_body(
        "EARN",
        [{"identifierValue": value, "source": "INSTORE"}],
        identifier_name=identifier_name,
    )
    body = (await client.post(ENROL, json=request)).json()

    assert codes(body) == [8015]
    assert len(sandbox.state.loyalty_earns) == 4  # nothing issued


@pytest.mark.parametrize(
    ("identifier_name", "customers"),
    [
        ("id", [tom(earnIds=[974]), tom(earnIds=[975])]),
        ("id", [tom(), huck(), {"identifierValue": "555567088", "source": "ALL"}]),
        (
            "email",
            [
                {"identifierValue": "tom.sawyer@example.com", "source": "INSTORE"},
                {"identifierValue": "TOM.SAWYER@example.com", "source": "INSTORE"},
            ],
        ),
        ("id", [UNKNOWN, UNKNOWN]),
        ("id", [tom(), {"identifierValue": "555567088", "source": "nowhere"}]),
    ],
)
async def test_one_customer_twice_refuses_the_whole_revoke(
    client: httpx.AsyncClient,
    sandbox: Sandbox,
    identifier_name: str,
    customers: list[dict[str, Any]],
) -> None:
    request = loyalty_body("REVOKE_EARN", customers, identifier_name=identifier_name)
    response = await client.post(REVOKE, json=request)

    assert response.status_code == 400
    body = response.json()
    assert body["response"] == []
    assert [e["code"] for e in body["errors"]] == [400]
    assert (body["totalCount"], body["failureCount"]) == (0, 0)
    assert not any(e.revoked for e in sandbox.state.loyalty_earns.values())


async def test_one_customer_twice_refuses_the_whole_enrol(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    response = await client.post(ENROL, json=loyalty_body("ENROL", [BECKY, UNKNOWN, BECKY]))

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == 400
    assert (202779, 555567090) not in sandbox.state.enrolments


async def test_entries_without_readable_identifier_are_not_taken_for_repeats(
    client: httpx.AsyncClient,
) -> None:
    customers = [{"identifierValue": 555567088, "source": "INSTORE"}, tom()]
    body = (await client.post(REVOKE, json=loyalty_body("REVOKE_EARN", customers))).json()

    assert codes(body) == [11013, None]
