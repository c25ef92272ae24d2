"""Refusing every credential for a while (POST /__admin/credentials), as a rotated secret would."""

from __future__ import annotations

import httpx

from capillary_sandbox import Sandbox

COUPON = "/v2/coupon/revoke"
TOKEN = "/v3/oauth/token/generate"
BODY = {"couponCodes": ["3138309782"]}
CREDENTIALS = "/__admin/credentials"


async def test_refused_credentials_answer_401_to_business_calls_and_change_nothing(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    switched = await client.post(CREDENTIALS, json={"refuse": True})

    response = await client.post(COUPON, json=BODY)

    assert switched.json() == {"refuse": True}
    assert (await client.get(CREDENTIALS)).json() == {"refuse": True}
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == 401
    assert not sandbox.state.coupons_by_code["3138309782"][0].revoked
    assert sandbox.calls[-1].fault == "credentials_refused"


async def test_refused_credentials_issue_no_token_and_refuse_issued_ones(
    anonymous: httpx.AsyncClient,
) -> None:
    issued = await anonymous.post(TOKEN, json={"key": "demo-key", "secret": "demo-secret"})
    access = issued.json()["data"]["accessToken"]
    await anonymous.post(CREDENTIALS, json={"refuse": True})

    refused_token = await anonymous.post(TOKEN, json={"key": "demo-key", "secret": "demo-secret"})
    refused_call = await anonymous.post(
        COUPON, json=BODY, headers={"X-CAP-API-OAUTH-TOKEN": access}
    )

    assert refused_token.status_code == 401
    assert refused_token.json()["data"] is None
    assert refused_call.status_code == 401


async def test_credentials_work_again_once_switched_back(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    issued = await anonymous.post(TOKEN, json={"key": "demo-key", "secret": "demo-secret"})
    access = issued.json()["data"]["accessToken"]
    await client.post(CREDENTIALS, json={"refuse": True})
    await client.post(CREDENTIALS, json={"refuse": False})

    by_basic = await client.post(COUPON, json=BODY)
    by_old_token = await anonymous.post(
        COUPON, json={"couponCodes": ["3636820421"]}, headers={"X-CAP-API-OAUTH-TOKEN": access}
    )
    new_token = await anonymous.post(TOKEN, json={"key": "demo-key", "secret": "demo-secret"})

    assert (await client.get(CREDENTIALS)).json() == {"refuse": False}
    assert (by_basic.status_code, by_old_token.status_code, new_token.status_code) == (
        200,
        200,
        200,
    )


async def test_faults_come_before_refused_credentials(
    client: httpx.AsyncClient,
) -> None:
    await client.post(CREDENTIALS, json={"refuse": True})
    await client.post("/__admin/faults/fail_next", json={"endpoint": "coupon_revoke"})

    faulted = await client.post(COUPON, json=BODY)
    refused = await client.post(COUPON, json=BODY)

    assert (faulted.status_code, refused.status_code) == (503, 401)


async def test_invalid_credentials_switch_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(CREDENTIALS, json={"refuse": "sometimes", "extra": 1})

    assert response.status_code == 400
    assert (await client.get(CREDENTIALS)).json() == {"refuse": False}
