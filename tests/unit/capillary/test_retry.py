"""Retries: only named transient failures, backoff, caps on attempts and time, Retry-After."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from structlog.testing import capture_logs

from service.capillary.models import LoyaltyAction, LoyaltyCustomer, LoyaltyPromotionRef
from service.capillary.requests import CartRevoke, Deactivation, LoyaltyBulk
from service.capillary.results import ResultClass
from service.capillary.retry import RetryPolicy, parse_retry_after
from tests.unit.capillary.helpers import (
    CART,
    CART_OK,
    EARN,
    LOYALTY_ENROL,
    FakeCapillary,
    basic_config,
    make_harness,
    no_jitter_policy,
    reply,
)

PROMO = LoyaltyPromotionRef(program_id=469, promotion_id=57099)


async def test_client_503_then_success_is_done_after_two_attempts() -> None:
    fake = FakeCapillary()
    fake.script(CART, reply(503), reply(200, CART_OK))
    h = make_harness(fake)
    with capture_logs() as logs:
        async with h.client:
            [result] = await h.client.revoke_cart_earns(CartRevoke(5, EARN))
    assert result.result_class is ResultClass.DONE
    assert result.attempts == 2
    assert result.request_ids == ["req-1", "req-2"]
    assert h.sleeps == [0.5]
    lines = [e for e in logs if e["event"] == "capillary_call_finished"]
    assert [(e["status"], e["attempt"], e["request_id"]) for e in lines] == [
        (503, 1, "req-1"),
        (200, 2, "req-2"),
    ]
    assert all(e["endpoint"] == "cart_revoke" and "elapsed_ms" in e for e in lines)


@pytest.mark.parametrize("status", [429, 503])
async def test_client_retry_after_seconds_is_what_sleep_gets(status: int) -> None:
    fake = FakeCapillary()
    fake.script(CART, reply(status, headers={"Retry-After": "7"}), reply(200, CART_OK))
    h = make_harness(fake)
    async with h.client:
        [result] = await h.client.revoke_cart_earns(CartRevoke(5, EARN))
    assert h.sleeps == [7.0]
    assert result.result_class is ResultClass.DONE


async def test_client_retry_after_http_date_is_honoured() -> None:
    fake = FakeCapillary()
    h = make_harness(fake)
    when = format_datetime(h.clock.now() + timedelta(seconds=12), usegmt=True)
    fake.script(CART, reply(429, headers={"Retry-After": when}), reply(200, CART_OK))
    async with h.client:
        await h.client.revoke_cart_earns(CartRevoke(5, EARN))
    assert h.sleeps == [12.0]


async def test_client_persistent_503_stops_at_attempt_cap_as_transient() -> None:
    fake = FakeCapillary()
    fake.script(CART, reply(503))
    h = make_harness(fake, policy=no_jitter_policy(attempts=4))
    async with h.client:
        [result] = await h.client.revoke_cart_earns(CartRevoke(5, EARN))
    assert result.result_class is ResultClass.UNAVAILABLE
    assert result.code == 503
    assert result.attempts == 4
    assert len(fake.calls(CART)) == 4
    assert h.sleeps == [0.5, 1.0, 2.0]


async def test_client_stops_on_total_time_before_attempt_cap() -> None:
    fake = FakeCapillary()
    fake.script(CART, reply(503))
    policy = no_jitter_policy(attempts=10, total_timeout=3.0, wait_initial=1.0, wait_max=10.0)
    h = make_harness(fake, policy=policy)
    async with h.client:
        [result] = await h.client.revoke_cart_earns(CartRevoke(5, EARN))
    # one wait of 1 s; the next (2 s) would end at the 3 s budget, so it stops there
    assert h.sleeps == [1.0]
    assert result.attempts == 2
    assert result.result_class is ResultClass.UNAVAILABLE


async def test_client_retry_after_beyond_budget_gives_up_at_once() -> None:
    fake = FakeCapillary()
    fake.script(CART, reply(429, headers={"Retry-After": "120"}))
    h = make_harness(fake)
    async with h.client:
        [result] = await h.client.revoke_cart_earns(CartRevoke(5, EARN))
    assert h.sleeps == []
    assert result.result_class is ResultClass.UNAVAILABLE
    assert result.code == 429


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("cut")],
    ids=type,
)
async def test_client_transport_error_then_success_is_retried(error: Exception) -> None:
    fake = FakeCapillary()
    fake.script(CART, error, reply(200, CART_OK))
    h = make_harness(fake)
    async with h.client:
        [result] = await h.client.revoke_cart_earns(CartRevoke(5, EARN))
    assert result.result_class is ResultClass.DONE
    assert result.attempts == 2


async def test_client_business_refusal_is_not_retried() -> None:
    fake = FakeCapillary()
    fake.script(CART, reply(200, {"data": None, "errors": [{"code": 729, "message": "redeemed"}]}))
    h = make_harness(fake)
    async with h.client:
        [result] = await h.client.revoke_cart_earns(CartRevoke(5, EARN))
    assert result.result_class is ResultClass.REDEEMED
    assert len(fake.calls(CART)) == 1
    assert h.sleeps == []


async def test_client_open_cart_737_is_retried_then_done() -> None:
    fake = FakeCapillary()
    fake.script(
        "/deactivate",
        reply(200, {"data": False, "errors": [{"code": 737, "message": "cart"}]}),
        reply(200, {"data": True, "errors": []}),
    )
    h = make_harness(fake)
    async with h.client:
        [result] = await h.client.deactivate_promotion(Deactivation("p" * 24, 5, None))
    assert result.result_class is ResultClass.DONE
    assert result.attempts == 2


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("cut"), reply(500), reply(504)],
    ids=["read-timeout", "dropped", "500", "504"],
)
async def test_issue_earn_ambiguous_failure_is_not_repeated(failure: object) -> None:
    fake = FakeCapillary()
    fake.script(LOYALTY_ENROL, failure)  # type: ignore[arg-type]
    h = make_harness(fake)
    async with h.client:
        [result] = await h.client.loyalty(
            LoyaltyBulk(LoyaltyAction.EARN, PROMO, "id"),
            [LoyaltyCustomer(identifier_value="1", source="INSTORE")],
        )
    assert len(fake.calls(LOYALTY_ENROL)) == 1
    assert result.result_class is ResultClass.UNAVAILABLE
    assert "issue twice" in result.message


async def test_issue_earn_connect_error_is_retried_because_nothing_was_sent() -> None:
    fake = FakeCapillary()
    ok = {
        "response": [
            {
                "result": {"entityId": 1, "issualId": "9", "earnedId": "840"},
                "errors": [],
                "warnings": [],
            }
        ],
        "totalCount": 1,
        "failureCount": 0,
    }
    fake.script(LOYALTY_ENROL, httpx.ConnectError("refused"), reply(503), reply(200, ok))
    h = make_harness(fake)
    async with h.client:
        [result] = await h.client.loyalty(
            LoyaltyBulk(LoyaltyAction.EARN, PROMO, "id"),
            [LoyaltyCustomer(identifier_value="1", source="INSTORE")],
        )
    assert result.result_class is ResultClass.DONE
    assert result.detail["earned_id"] == "840"
    assert result.attempts == 3


def test_policy_backoff_is_exponential_jittered_and_capped() -> None:
    policy = RetryPolicy(
        attempts=10,
        total_timeout=100,
        wait_initial=1,
        wait_max=5,
        wait_jitter=0.5,
        random=lambda: 1.0,
    )
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [1.5, 2.5, 4.5, 5]


def test_policy_default_budget_fits_a_kafka_poll_interval() -> None:
    from service.capillary.config import CapillaryRetrySettings

    assert RetryPolicy.from_config(CapillaryRetrySettings()).total_timeout <= 60


def test_policies_from_settings_take_their_values() -> None:
    from service.capillary.config import CapillaryRetrySettings

    settings = CapillaryRetrySettings(
        attempts=3,
        total_timeout=30,
        wait_initial=0.1,
        wait_max=2,
        wait_jitter=0.25,
        open_cart_attempts=7,
        open_cart_total_timeout=100,
    )
    assert RetryPolicy.from_config(settings) == RetryPolicy(
        attempts=3, total_timeout=30, wait_initial=0.1, wait_max=2, wait_jitter=0.25
    )
    assert RetryPolicy.open_cart_from_config(settings) == RetryPolicy(
        attempts=7, total_timeout=100, wait_initial=2.0, wait_max=30.0, wait_jitter=0.25
    )
    # Built without settings, a policy has the settings' defaults.
    assert RetryPolicy() == RetryPolicy.from_config(CapillaryRetrySettings())


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:10 GMT", now) == 10.0
    assert parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


async def test_issue_earn_hanging_answer_hits_call_deadline_and_is_not_repeated() -> None:
    never = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        await never.wait()
        return reply(200, {})

    fake = FakeCapillary()
    fake.script(LOYALTY_ENROL, hang)
    config = basic_config(timeouts={"call_deadline": 0.01})
    h = make_harness(fake, config=config)
    async with h.client:
        [result] = await h.client.loyalty(
            LoyaltyBulk(LoyaltyAction.EARN, PROMO, "id"),
            [LoyaltyCustomer(identifier_value="1", source="INSTORE")],
        )
    assert result.result_class is ResultClass.UNAVAILABLE
    assert "issue twice" in result.message
    assert len(fake.calls(LOYALTY_ENROL)) == 1
