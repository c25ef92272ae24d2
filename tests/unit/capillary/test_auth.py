"""OAuth token caching, refresh, single flight, 401 handling; secrets never leak."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from structlog.testing import capture_logs

from service.capillary.models import Attribution, AttributionEntityType
from service.capillary.requests import CartRevoke
from service.capillary.results import ResultClass
from service.errors import ConfigurationError
from tests.unit.capillary.helpers import (
    CART,
    CART_OK,
    EARN,
    OAUTH_SECRET,
    PASSWORD,
    TOKEN_PATH,
    FakeCapillary,
    basic_config,
    make_harness,
    oauth_config,
    reply,
)


class TokenServer:
    """Issues tok-1, tok-2, ... and counts requests."""

    def __init__(self, ttl: int = 3600) -> None:
        self.count = 0
        self.ttl = ttl
        self.bodies: list[object] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        self.bodies.append(json.loads(request.content))
        return reply(
            200,
            {
                "data": {"accessToken": f"tok-SECRET-{self.count}", "ttlSeconds": self.ttl},
                "errors": None,
            },
        )


def _cart_fake(tokens: TokenServer) -> FakeCapillary:
    fake = FakeCapillary()
    fake.script(TOKEN_PATH, tokens)
    fake.script(CART, reply(200, CART_OK))
    return fake


async def test_oauth_token_is_fetched_once_and_sent_in_configured_header() -> None:
    tokens = TokenServer()
    fake = _cart_fake(tokens)
    h = make_harness(fake, config=oauth_config(oauth_header_name="CAP-API-ACCESS-TOKEN"))
    async with h.client:
        await h.client.revoke_cart_earns(CartRevoke(5, EARN))
        await h.client.revoke_cart_earns(CartRevoke(5, EARN))
    assert tokens.count == 1
    assert tokens.bodies == [{"key": "key-1", "secret": OAUTH_SECRET}]
    assert [c.headers["CAP-API-ACCESS-TOKEN"] for c in fake.calls(CART)] == ["tok-SECRET-1"] * 2
    assert all("Authorization" not in c.headers for c in fake.calls(CART))


async def test_oauth_token_is_refreshed_before_expiry_by_the_clock() -> None:
    tokens = TokenServer(ttl=600)
    fake = _cart_fake(tokens)
    h = make_harness(fake, config=oauth_config(token_refresh_margin=60))
    async with h.client:
        await h.client.revoke_cart_earns(CartRevoke(5, EARN))
        h.clock.advance(539)
        await h.client.revoke_cart_earns(CartRevoke(5, EARN))
        h.clock.advance(2)  # 541 s: inside the 60 s margin of a 600 s token
        await h.client.revoke_cart_earns(CartRevoke(5, EARN))
    assert [c.headers["X-CAP-API-OAUTH-TOKEN"] for c in fake.calls(CART)] == [
        "tok-SECRET-1",
        "tok-SECRET-1",
        "tok-SECRET-2",
    ]


async def test_oauth_ttl_over_an_hour_is_capped() -> None:
    tokens = TokenServer(ttl=86400)
    fake = _cart_fake(tokens)
    h = make_harness(fake, config=oauth_config(token_refresh_margin=0))
    async with h.client:
        await h.client.revoke_cart_earns(CartRevoke(5, EARN))
        h.clock.advance(3601)
        await h.client.revoke_cart_earns(CartRevoke(5, EARN))
    assert tokens.count == 2


async def test_oauth_concurrent_calls_share_one_token_request() -> None:
    gate = asyncio.Event()
    tokens = TokenServer()

    async def slow_token(request: httpx.Request) -> httpx.Response:
        await gate.wait()
        return tokens(request)

    fake = FakeCapillary()
    fake.script(TOKEN_PATH, slow_token)
    fake.script(CART, reply(200, CART_OK))
    h = make_harness(fake, config=oauth_config())

    entered: list[int] = []

    async def release() -> None:
        # Tasks run first-in first-out: by now every caller has asked for a token.
        entered.append(len(fake.calls(TOKEN_PATH)))
        gate.set()

    async with h.client:
        tasks = [
            asyncio.create_task(h.client.revoke_cart_earns(CartRevoke(5, EARN))) for _ in range(20)
        ]
        releaser = asyncio.create_task(release())
        results = await asyncio.gather(*tasks)
        await releaser
    assert entered == [1]
    assert tokens.count == 1
    assert all(r[0].result_class is ResultClass.DONE for r in results)


async def test_oauth_401_refreshes_token_once_and_retries() -> None:
    tokens = TokenServer()
    fake = FakeCapillary()
    fake.script(TOKEN_PATH, tokens)
    fake.script(CART, reply(401), reply(200, CART_OK))
    h = make_harness(fake, config=oauth_config())
    async with h.client:
        [result] = await h.client.revoke_cart_earns(CartRevoke(5, EARN))
    assert result.result_class is ResultClass.DONE
    assert tokens.count == 2
    assert [c.headers["X-CAP-API-OAUTH-TOKEN"] for c in fake.calls(CART)] == [
        "tok-SECRET-1",
        "tok-SECRET-2",
    ]


async def test_oauth_second_401_is_request_error_naming_the_settings() -> None:
    tokens = TokenServer()
    fake = FakeCapillary()
    fake.script(TOKEN_PATH, tokens)
    fake.script(CART, reply(401))
    h = make_harness(fake, config=oauth_config())
    async with h.client:
        [result] = await h.client.revoke_cart_earns(CartRevoke(5, EARN))
    assert result.result_class is ResultClass.UNAVAILABLE
    assert result.code == 401
    assert "OAUTH_SECRET" in (result.next_step or "")
    assert len(fake.calls(CART)) == 2
    assert tokens.count == 2


async def test_basic_401_is_not_retried() -> None:
    fake = FakeCapillary()
    fake.script(CART, reply(401))
    h = make_harness(fake)
    async with h.client:
        [result] = await h.client.revoke_cart_earns(CartRevoke(5, EARN))
    assert result.result_class is ResultClass.UNAVAILABLE
    assert "PASSWORD" in (result.next_step or "")
    assert len(fake.calls(CART)) == 1


async def test_token_refused_is_request_error_without_secret() -> None:
    fake = FakeCapillary()
    fake.script(
        TOKEN_PATH, reply(400, {"data": None, "errors": [{"code": 1, "message": "bad key"}]})
    )
    fake.script(CART, reply(200, CART_OK))
    h = make_harness(fake, config=oauth_config())
    async with h.client:
        [result] = await h.client.revoke_cart_earns(CartRevoke(5, EARN))
    assert result.result_class is ResultClass.UNAVAILABLE
    assert fake.calls(CART) == []
    assert OAUTH_SECRET not in result.model_dump_json()


async def test_attribution_headers_are_sent_with_oauth_only() -> None:
    who = Attribution(entity_type=AttributionEntityType.TILL, entity_id="till-042")
    oauth = make_harness(_cart_fake(TokenServer()), config=oauth_config())
    basic = make_harness(_cart_fake(TokenServer()))
    for h in (oauth, basic):
        async with h.client:
            await h.client.revoke_cart_earns(CartRevoke(5, EARN, attribution=who))
    [sent] = oauth.fake.calls(CART)
    assert sent.headers["X-CAP-API-ATTRIBUTION-ENTITY-TYPE"] == "TILL"
    assert sent.headers["X-CAP-API-ATTRIBUTION-ENTITY-ID"] == "till-042"
    [plain] = basic.fake.calls(CART)
    assert "X-CAP-API-ATTRIBUTION-ENTITY-TYPE" not in plain.headers
    assert plain.headers["Authorization"].startswith("Basic ")


async def test_secrets_never_appear_in_logs_results_reprs_or_errors() -> None:
    tokens = TokenServer()
    fake = FakeCapillary()
    fake.script(TOKEN_PATH, tokens)
    fake.script(CART, reply(401), reply(503), reply(200, CART_OK))
    secrets = [PASSWORD, OAUTH_SECRET, "tok-SECRET-1", "tok-SECRET-2"]
    oauth = oauth_config(password=PASSWORD, username="u")
    h = make_harness(fake, config=oauth)
    with capture_logs() as logs:
        async with h.client:
            results = await h.client.revoke_cart_earns(CartRevoke(5, EARN))
    basic = make_harness(FakeCapillary(), config=basic_config())
    await basic.client.aclose()
    texts = [
        repr(logs),
        str(logs),
        repr(oauth),
        str(oauth),
        oauth.model_dump_json(),
        repr(basic_config()),
        repr(results),
        *(r.model_dump_json() for r in results),
        repr(h.client),
        repr(h.client.authenticator),
        repr(basic.client.authenticator),
    ]
    with pytest.raises(ConfigurationError) as caught:
        basic_config(password="", username="u")
    texts.append(str(caught.value))
    assert any(e["event"] == "capillary_call_finished" for e in logs)
    for secret in secrets:
        assert not any(secret in text for text in texts), secret
