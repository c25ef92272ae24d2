"""Authentication, OAuth tokens and request ids of the sandbox."""

from __future__ import annotations

import httpx
import pytest

from capillary_sandbox import REQUEST_ID_HEADER, Sandbox, SandboxConfig
from tests.unit.sandbox.helpers import FakeClock

COUPON = "/v2/coupon/revoke"
TOKEN = "/v3/oauth/token/generate"
BODY = {"couponCodes": ["3138309782"]}


async def token(http: httpx.AsyncClient, key: str = "demo-key", secret: str = "demo-secret") -> str:
    response = await http.post(TOKEN, json={"key": key, "secret": secret})
    assert response.status_code == 200
    return str(response.json()["data"]["accessToken"])


async def test_request_without_credentials_answers_401_and_changes_nothing(
    anonymous: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    response = await anonymous.post(COUPON, json=BODY)

    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == 401
    assert not sandbox.state.coupons_by_code["3138309782"][0].revoked


async def test_wrong_basic_password_answers_401(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post(COUPON, json=BODY, auth=("demo", "wrong"))

    assert response.status_code == 401


async def test_valid_basic_credentials_are_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(COUPON, json=BODY)

    assert response.status_code == 200


@pytest.mark.parametrize("header", ["X-CAP-API-OAUTH-TOKEN", "x-cap-api-oauth-token"])
async def test_oauth_token_in_the_default_header_is_accepted(
    anonymous: httpx.AsyncClient, header: str
) -> None:
    response = await anonymous.post(COUPON, json=BODY, headers={header: await token(anonymous)})

    assert response.status_code == 200


async def test_oauth_token_under_the_other_name_answers_401_and_changes_nothing(
    anonymous: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    access = await token(anonymous)

    response = await anonymous.post(COUPON, json=BODY, headers={"CAP-API-ACCESS-TOKEN": access})

    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == 401
    assert not sandbox.state.coupons_by_code["3138309782"][0].revoked


def test_default_oauth_header_name() -> None:
    assert SandboxConfig().oauth_header_name == "X-CAP-API-OAUTH-TOKEN"


async def test_token_answer_has_documented_shape(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post(TOKEN, json={"key": "demo-key", "secret": "demo-secret"})

    body = response.json()
    assert body["errors"] is None
    assert body["data"]["ttlSeconds"] == 3600
    assert isinstance(body["data"]["accessToken"], str)


async def test_expired_token_answers_401(anonymous: httpx.AsyncClient, clock: FakeClock) -> None:
    access = await token(anonymous)
    clock.now += 3600

    response = await anonymous.post(COUPON, json=BODY, headers={"X-CAP-API-OAUTH-TOKEN": access})

    assert response.status_code == 401


async def test_unknown_token_answers_401(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post(COUPON, json=BODY, headers={"X-CAP-API-OAUTH-TOKEN": "forged"})

    assert response.status_code == 401


async def test_wrong_client_secret_gets_no_token(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post(TOKEN, json={"key": "demo-key", "secret": "nope"})

    assert response.status_code == 401
    assert response.json()["data"] is None


async def test_token_request_without_key_answers_400(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post(TOKEN, json={"secret": "demo-secret"})

    assert response.status_code == 400


async def test_configured_header_name_and_ttl_are_used(clock: FakeClock) -> None:
    config = SandboxConfig(port=0, oauth_header_name="CAP-API-ACCESS-TOKEN", token_ttl_seconds=60)
    async with (
        Sandbox(config, clock=clock) as sandbox,
        httpx.AsyncClient(base_url=sandbox.base_url) as http,
    ):
        access = await token(http)
        old_header = await http.post(COUPON, json=BODY, headers={"X-CAP-API-OAUTH-TOKEN": access})
        new_header = await http.post(COUPON, json=BODY, headers={"CAP-API-ACCESS-TOKEN": access})
        clock.now += 60
        expired = await http.post(COUPON, json=BODY, headers={"CAP-API-ACCESS-TOKEN": access})

    assert (old_header.status_code, new_header.status_code, expired.status_code) == (401, 200, 401)


async def test_every_response_carries_a_unique_request_id(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    responses = [
        await client.post(COUPON, json=BODY),
        await client.post(COUPON, json=BODY),
        await anonymous.post(COUPON, json=BODY),
        await client.get("/__admin/state"),
        await client.get("/no/such/path"),
    ]

    ids = [r.headers.get(REQUEST_ID_HEADER) for r in responses]
    assert all(ids)
    assert len(set(ids)) == len(ids)
