"""The outage probe: one documented request that changes nothing, and what its answer means."""

from __future__ import annotations

import httpx
import pytest

from tests.unit.capillary.helpers import (
    CART,
    COUPON,
    TOKEN_PATH,
    make_harness,
    oauth_config,
    reply,
)

# The coupon page's "No coupon code or customer info is passed" example.
ANSWER_756 = {
    "warnings": [],
    "errors": [
        {"status": False, "code": 756, "message": "CouponCode/s or customer info is mandatory"}
    ],
    "success": False,
}


async def test_probe_sends_one_coupon_revoke_naming_nothing_and_reads_756_as_up() -> None:
    h = make_harness()
    h.fake.script(COUPON, reply(400, ANSWER_756))
    async with h.client:
        assert await h.client.probe() is None
    assert [(r.method, r.url.path) for r in h.fake.requests] == [("POST", COUPON)]
    assert h.fake.bodies(COUPON) == [{}]
    assert h.fake.calls(CART) == [], "no request to a write endpoint the pages do not document"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # A readable refusal that is not the documented one: a proxy, a wrong host, a change.
        (reply(404, {"errors": [{"code": 404, "message": "no route"}]}), "HTTP 404"),
        (reply(403, {"errors": [{"code": 403, "message": "forbidden"}]}), "HTTP 403"),
        (reply(200, {"entity": {"revokedCoupons": []}, "errors": [], "success": True}), "756"),
        (reply(401, {"errors": [{"code": 401, "message": "no"}]}), "401"),
        (reply(503, {"errors": [{"code": 503, "message": "down"}]}), "503"),
        (httpx.ConnectError("refused"), "could not connect"),
    ],
    ids=["json-404", "json-403", "200-without-756", "401", "503", "unreachable"],
)
async def test_probe_reads_anything_but_756_as_down(
    answer: httpx.Response | Exception, expected: str
) -> None:
    h = make_harness()
    h.fake.script(COUPON, answer)
    async with h.client:
        reason = await h.client.probe()
    assert reason is not None
    assert reason.startswith("coupon_revoke: ")
    assert expected in reason
    assert len(h.fake.requests) == 1, "one attempt: the runner's backoff paces probes"


async def test_probe_with_oauth_takes_a_token_then_sends_the_same_request() -> None:
    h = make_harness(config=oauth_config())
    h.fake.script(TOKEN_PATH, reply(200, {"data": {"accessToken": "t", "ttlSeconds": 3600}}))
    h.fake.script(COUPON, reply(400, ANSWER_756))
    async with h.client:
        assert await h.client.probe() is None
    assert [r.url.path for r in h.fake.requests] == [TOKEN_PATH, COUPON]
    assert h.fake.bodies(COUPON) == [{}]


async def test_probe_with_oauth_refused_token_is_down() -> None:
    h = make_harness(config=oauth_config())
    h.fake.script(TOKEN_PATH, reply(401, {"data": None, "errors": [{"code": 401}]}))
    async with h.client:
        reason = await h.client.probe()
    assert reason is not None
    assert "token" in reason
    assert h.fake.calls(COUPON) == [], "no business request without a token"
