"""Fault injection and rate limiting of the sandbox."""

from __future__ import annotations

import random

import httpx
import pytest

from capillary_sandbox import FaultConfig, FaultRule, Faults, Sandbox, SandboxConfig
from capillary_sandbox.faults import RateLimiter
from tests.unit.sandbox.helpers import FakeClock

CART = "/api_gateway/v1/promotions/revokeEarn"
CART_BODY = {
    "customerId": 566881933,
    "earnRevokeDetails": [
        {"promotionId": "69117663b1cfc114606fd7fb", "earnIds": ["6911eaf1f57b486147effac0"]}
    ],
}
EARN = "6911eaf1f57b486147effac0"


async def test_fail_next_503_answers_503_and_leaves_state_untouched(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    sandbox.faults.fail_next("cart_revoke_earn", "error")

    failed = await client.post(CART, json=CART_BODY)

    assert failed.status_code == 503
    assert not sandbox.state.cart_earns[EARN].revoked
    retried = await client.post(CART, json=CART_BODY)
    assert retried.status_code == 200
    assert sandbox.state.cart_earns[EARN].revoked


async def test_fail_next_counts_down_per_endpoint(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    sandbox.faults.fail_next("cart_revoke_earn", "error", 2, status=500)

    other = await client.post("/v2/coupon/revoke", json={"couponCodes": ["3138309782"]})
    statuses = [(await client.post(CART, json=CART_BODY)).status_code for _ in range(3)]

    assert other.status_code == 200
    assert statuses == [500, 500, 200]


async def test_throttle_answers_429_with_retry_after(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    sandbox.faults.fail_next("*", "throttle", retry_after_seconds=7)

    response = await client.post(CART, json=CART_BODY)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert not sandbox.state.cart_earns[EARN].revoked


async def test_dropped_connection_is_a_transport_error_and_changes_nothing(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    sandbox.faults.fail_next("cart_revoke_earn", "drop")

    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(CART, json=CART_BODY)
    assert not sandbox.state.cart_earns[EARN].revoked
    assert sandbox.calls[-1].fault == "drop"


async def test_hung_request_times_out_the_client_and_stop_releases_it(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    sandbox.faults.fail_next("cart_revoke_earn", "hang")

    with pytest.raises(httpx.ReadTimeout):
        await client.post(CART, json=CART_BODY, timeout=0.2)
    assert not sandbox.state.cart_earns[EARN].revoked
    await sandbox.stop()  # must return although a handler is still waiting


async def test_latency_longer_than_client_timeout_times_out(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    sandbox.faults.configure(
        FaultConfig(endpoints={"cart_revoke_earn": FaultRule(latency_ms=30_000)})
    )

    with pytest.raises(httpx.ReadTimeout):
        await client.post(CART, json=CART_BODY, timeout=0.2)


def test_latency_and_jitter_stay_within_configured_bounds() -> None:
    faults = Faults(FaultConfig(default=FaultRule(latency_ms=100, jitter_ms=50)), random.Random(1))

    delays = [faults.decide("coupon_revoke").delay_seconds for _ in range(200)]

    assert all(0.1 <= d <= 0.15 for d in delays)
    assert len(set(delays)) > 1


def test_random_decisions_repeat_with_the_same_seed() -> None:
    config = FaultConfig(default=FaultRule(error_rate=0.5))

    def run() -> list[str | None]:
        faults = Faults(config, random.Random(42))
        return [faults.decide("deactivate").kind for _ in range(50)]

    first = run()
    assert first == run()
    assert {"error", None} == set(first)


async def test_error_rate_one_fails_business_calls_but_not_token_generation(
    anonymous: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    sandbox.faults.configure(FaultConfig(default=FaultRule(error_rate=1.0, error_status=502)))

    token = await anonymous.post(
        "/v3/oauth/token/generate", json={"key": "demo-key", "secret": "demo-secret"}
    )
    business = await anonymous.post(CART, json=CART_BODY, auth=("demo", "demo"))

    assert (token.status_code, business.status_code) == (200, 502)


async def test_rate_limit_answers_429_until_the_minute_passes(clock: FakeClock) -> None:
    config = SandboxConfig(port=0, rate_limit_per_minute={"coupon_revoke": 2})
    body = {"couponCodes": ["NOPE"]}
    async with (
        Sandbox(config, clock=clock) as sandbox,
        httpx.AsyncClient(base_url=sandbox.base_url, auth=("demo", "demo")) as http,
    ):
        allowed = [(await http.post("/v2/coupon/revoke", json=body)).status_code for _ in range(2)]
        clock.now += 20
        limited = await http.post("/v2/coupon/revoke", json=body)
        other = await http.post(CART, json=CART_BODY)
        clock.now += 40
        later = await http.post("/v2/coupon/revoke", json=body)

    assert allowed == [200, 200]
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "40"
    assert other.status_code == 200
    assert later.status_code == 200


def test_a_shorter_window_counts_the_limit_over_it(clock: FakeClock) -> None:
    limiter = RateLimiter({"cart_revoke_earn": 2}, clock, window_seconds=6.0)
    allowed = [limiter.check("cart_revoke_earn") for _ in range(2)]
    clock.now += 2.5
    refused = limiter.check("cart_revoke_earn")
    clock.now += 3.5
    again = limiter.check("cart_revoke_earn")

    assert allowed == [None, None]
    # Retry-After in whole seconds (3.5 rounded up), when the oldest leaves the window.
    assert refused == 4
    assert again is None


def test_a_cleared_limiter_counts_from_an_empty_window(clock: FakeClock) -> None:
    limiter = RateLimiter({"cart_revoke_earn": 2}, clock, window_seconds=6.0)
    allowed = [limiter.check("cart_revoke_earn") for _ in range(2)]
    refused = limiter.check("cart_revoke_earn")
    limiter.clear()
    after = [limiter.check("cart_revoke_earn") for _ in range(3)]

    assert allowed == [None, None]
    assert refused is not None
    # Two again, and the third refused: the limit still holds over the new window.
    assert after[:2] == [None, None]
    assert after[2] is not None


async def test_a_reset_empties_the_rate_windows(clock: FakeClock) -> None:
    config = SandboxConfig(port=0, rate_limit_per_minute={"coupon_revoke": 1})
    body = {"couponCodes": ["NOPE"]}
    async with (
        Sandbox(config, clock=clock) as sandbox,
        httpx.AsyncClient(base_url=sandbox.base_url, auth=("demo", "demo")) as http,
    ):
        first = await http.post("/v2/coupon/revoke", json=body)
        limited = await http.post("/v2/coupon/revoke", json=body)
        (await http.post("/__admin/reset")).raise_for_status()
        after = await http.post("/v2/coupon/revoke", json=body)
        limited_again = await http.post("/v2/coupon/revoke", json=body)

    assert [first.status_code, limited.status_code] == [200, 429]
    assert [after.status_code, limited_again.status_code] == [200, 429]
