"""429s teach an endpoint's pace: halve it, hold every caller for Retry-After, climb back."""

from __future__ import annotations

import asyncio

import pytest

from service.capillary.codes import Endpoint
from service.capillary.config import CapillaryPacingSettings, CapillaryRateLimits
from service.capillary.limits import FLOOR_PER_MINUTE, AdaptiveLimiter, RateLimiters, pacing
from service.capillary.requests import CartRevoke
from service.clock import FakeClock
from service.observe.metrics import Metrics
from tests.unit.capillary.helpers import (
    CART,
    CART_OK,
    EARN,
    FakeCapillary,
    basic_config,
    make_harness,
    no_jitter_policy,
    reply,
)

SETTINGS = CapillaryPacingSettings()


class _Time:
    """A fake clock and the sleep that moves it, with every wait written down."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(seconds)

    def limiter(self, limit: int, settings: CapillaryPacingSettings = SETTINGS) -> AdaptiveLimiter:
        return AdaptiveLimiter(limit, settings, clock=self.clock, sleep=self.sleep)

    async def grants(self, limiter: AdaptiveLimiter, count: int) -> list[float]:
        """When each of ``count`` permits taken one after another is granted."""
        granted: list[float] = []
        for _ in range(count):
            await limiter.acquire()
            granted.append(self.clock.monotonic())
        return granted


async def test_without_429s_the_pace_is_the_configured_limit() -> None:
    time = _Time()
    limiter = time.limiter(300)
    granted = await time.grants(limiter, 7)
    paced = pacing(300)
    # A burst of one second's worth, then the drip of pacing(300).
    assert granted[:5] == [0.0] * 5
    assert granted[5] == pytest.approx(1 / paced.per_second)
    assert granted[6] == pytest.approx(2 / paced.per_second)
    assert limiter.pace == 300


async def test_a_429_halves_the_pace_and_holds_every_caller_for_retry_after() -> None:
    time = _Time()
    limiter = time.limiter(300)
    await limiter.acquire()
    limiter.throttled(10.0, sent_at=0.0)
    assert limiter.pace == 150
    assert not limiter.has_capacity()
    granted = await time.grants(limiter, 3)
    # One request as soon as the server said, then the drip of the lower pace.
    assert granted[0] == 10.0
    assert granted[1] == pytest.approx(10.0 + 1 / pacing(150).per_second)
    assert granted[2] == pytest.approx(10.0 + 2 / pacing(150).per_second)


async def test_a_caller_already_waiting_is_held_by_a_429_that_arrives_meanwhile() -> None:
    clock = FakeClock()
    asked: asyncio.Queue[float] = asyncio.Queue()
    wake = asyncio.Event()

    async def sleep(seconds: float) -> None:
        asked.put_nowait(seconds)
        await wake.wait()
        wake.clear()
        clock.advance(seconds)

    limiter = AdaptiveLimiter(1, SETTINGS, clock=clock, sleep=sleep)
    await limiter.acquire()
    waiting = asyncio.create_task(limiter.acquire())
    # It sleeps for the drip of one a minute (and the margin) ...
    assert await asked.get() == 61.0
    limiter.throttled(120.0, sent_at=0.0)
    wake.set()
    # ... wakes at 61 s, sees the Retry-After that came meanwhile and sleeps on.
    assert await asked.get() == 59.0
    wake.set()
    await waiting
    assert clock.monotonic() == 120.0


async def test_answers_climb_back_a_share_of_the_limit_each_up_to_the_limit() -> None:
    time = _Time()
    limiter = time.limiter(300, CapillaryPacingSettings(decrease=0.5, increase=0.01))
    limiter.throttled(None, sent_at=0.0)
    assert limiter.pace == 150
    for _ in range(10):
        limiter.answered()
    assert limiter.pace == pytest.approx(180)
    for _ in range(100):
        limiter.answered()
    assert limiter.pace == 300


async def test_refusals_of_requests_sent_before_the_decrease_do_not_lower_it_again() -> None:
    time = _Time()
    limiter = time.limiter(300)
    time.clock.advance(1.0)
    limiter.throttled(None, sent_at=0.5)
    # Sent at the old pace, answered after the decrease: the same signal again.
    limiter.throttled(None, sent_at=0.6)
    assert limiter.pace == 150
    time.clock.advance(1.0)
    # Sent at the lower pace and still refused: lower again.
    limiter.throttled(None, sent_at=1.5)
    assert limiter.pace == 75


async def test_the_pace_never_drops_below_the_floor() -> None:
    time = _Time()
    limiter = time.limiter(10)
    for step in range(20):
        time.clock.advance(1.0)
        limiter.throttled(None, sent_at=time.clock.monotonic() - 0.5)
        assert limiter.pace >= FLOOR_PER_MINUTE, step
    assert limiter.pace == FLOOR_PER_MINUTE
    await limiter.acquire()
    await limiter.acquire()
    # One a minute, and the jitter margin.
    assert time.sleeps == [pytest.approx(61.0)]


async def test_a_longer_retry_after_extends_the_hold_and_a_shorter_one_does_not_cut_it() -> None:
    time = _Time()
    limiter = time.limiter(300)
    limiter.hold(5.0)
    limiter.hold(30.0)
    limiter.hold(2.0)
    assert limiter.paused_until == 30.0
    assert limiter.pace == 300  # a hold alone (a 503) does not lower the pace
    await limiter.acquire()
    assert time.sleeps == [30.0]


def test_each_endpoint_reports_its_pace() -> None:
    reported: dict[str, float] = {}
    time = _Time()
    limiters = RateLimiters(
        CapillaryRateLimits(cart_revoke=250),
        SETTINGS,
        clock=time.clock,
        sleep=time.sleep,
        report=reported.__setitem__,
    )
    assert reported["cart_revoke"] == 250
    assert reported["oauth_token"] == 60
    limiters.for_endpoint(Endpoint.CART_REVOKE).throttled(None, sent_at=0.0)
    assert reported["cart_revoke"] == 125
    assert reported["coupon_revoke"] == 300


async def test_a_429_through_the_client_lowers_the_pace_metric_and_an_answer_raises_it() -> None:
    fake = FakeCapillary()
    fake.script(CART, reply(429, headers={"Retry-After": "7"}), reply(200, CART_OK))
    metrics = Metrics()
    h = make_harness(fake, metrics=metrics)
    async with h.client:
        await h.client.revoke_cart_earns(CartRevoke(5, EARN))
    limiter = h.client.limiter(Endpoint.CART_REVOKE)
    assert limiter.paused_until == 7.0
    # Halved by the 429, one step (1% of 300) back for the answer after it.
    assert limiter.pace == pytest.approx(153)
    gauge = metrics.registry.get_sample_value(
        "return_handler_capillary_pace_per_minute", {"endpoint": "cart_revoke"}
    )
    assert gauge == pytest.approx(153)
    assert metrics.registry.get_sample_value(
        "return_handler_capillary_pace_per_minute", {"endpoint": "coupon_revoke"}
    ) == pytest.approx(300)


async def test_a_retry_after_past_the_setting_is_cut_to_it() -> None:
    fake = FakeCapillary()
    fake.script(CART, reply(429, headers={"Retry-After": "3600"}), reply(200, CART_OK))
    policy = no_jitter_policy(total_timeout=120.0)
    h = make_harness(fake, basic_config(pacing={"retry_after_max": 20.0}), policy)
    async with h.client:
        await h.client.revoke_cart_earns(CartRevoke(5, EARN))
    assert h.sleeps == [20.0]
    assert h.client.limiter(Endpoint.CART_REVOKE).paused_until == 20.0


# --- one brand limit shared by the replicas ------------------------------------------------


def _limiters(time: _Time, **limits: int) -> RateLimiters:
    return RateLimiters(CapillaryRateLimits(**limits), SETTINGS, clock=time.clock, sleep=time.sleep)


def test_a_replica_paces_at_its_partitions_share_rounded_down() -> None:
    limiters = _limiters(_Time(), cart_revoke=300, loyalty_revoke=100)
    limiters.share(2, 3)
    assert limiters.for_endpoint(Endpoint.CART_REVOKE).ceiling == 200
    assert limiters.for_endpoint(Endpoint.CART_REVOKE).pace == 200
    assert limiters.for_endpoint(Endpoint.LOYALTY_REVOKE).pace == 66  # not 66.7
    limiters.share(3, 3)
    assert limiters.for_endpoint(Endpoint.LOYALTY_REVOKE).pace == 100


def test_the_shares_of_replicas_that_split_the_partitions_never_add_up_past_the_limit() -> None:
    for limit in (1, 7, 60, 100, 299, 300, 1500):
        for total in range(1, 13):
            for first in range(total + 1):
                owned = [o for o in (first, total - first) if o]
                paces = []
                for own in owned:
                    limiters = _limiters(_Time(), cart_revoke=limit)
                    limiters.share(own, total)
                    paces.append(limiters.for_endpoint(Endpoint.CART_REVOKE).pace)
                # One a minute each is the floor: a limit below the replicas cannot be split.
                assert sum(paces) <= max(limit, len(owned)), (limit, total, first)


def test_a_replica_owning_no_partition_keeps_one_request_a_minute() -> None:
    limiters = _limiters(_Time(), cart_revoke=300)
    limiters.share(0, 3)
    assert limiters.for_endpoint(Endpoint.CART_REVOKE).pace == FLOOR_PER_MINUTE


def test_a_share_outside_the_partitions_is_refused() -> None:
    limiters = _limiters(_Time())
    with pytest.raises(ValueError, match="4 of 3"):
        limiters.share(4, 3)
    with pytest.raises(ValueError, match="1 of 0"):
        limiters.share(1, 0)


async def test_a_share_keeps_what_429s_taught_and_climbs_back_only_to_the_share() -> None:
    time = _Time()
    limiter = time.limiter(300, CapillaryPacingSettings(decrease=0.5, increase=0.01))
    limiter.throttled(None, sent_at=0.0)
    assert limiter.pace == 150
    limiter.set_ceiling(150)  # half the partitions now
    assert limiter.pace == 75  # still half of what it may send
    for _ in range(200):
        limiter.answered()
    assert limiter.pace == 150
    limiter.set_ceiling(300)  # alone again
    assert limiter.pace == 300


async def test_a_shared_limit_drips_at_the_shares_pace() -> None:
    time = _Time()
    limiter = time.limiter(300)
    limiter.set_ceiling(100)
    granted = await time.grants(limiter, 3)
    assert granted[0] == 0.0  # a burst of one second's worth of 100 a minute: one
    assert granted[1] == pytest.approx(1 / pacing(100).per_second)
    assert granted[2] == pytest.approx(2 / pacing(100).per_second)


def test_the_window_the_limits_count_is_a_setting() -> None:
    # A sandbox counting 60 requests a 3 s window, the service told the same.
    paced = pacing(60, window_seconds=3.0, jitter_seconds=0.5)
    assert paced.burst == 20
    assert paced.most_in(3.0) <= 60
    assert paced.most_in(3.5 - 1e-6) <= 60
    settings = CapillaryPacingSettings(window_seconds=3.0, jitter_seconds=0.5)
    limiter = _Time().limiter(60, settings)
    assert limiter.has_capacity()


async def test_the_client_shares_its_limits_and_reports_the_share() -> None:
    fake = FakeCapillary()
    metrics = Metrics()
    h = make_harness(fake, metrics=metrics)
    assert metrics.registry.get_sample_value("return_handler_capillary_limit_share") == 1
    async with h.client:
        h.client.share_limits(1, 4)
    assert h.client.limiter(Endpoint.CART_REVOKE).pace == 75
    assert metrics.registry.get_sample_value("return_handler_capillary_limit_share") == 0.25
    assert metrics.registry.get_sample_value(
        "return_handler_capillary_pace_per_minute", {"endpoint": "cart_revoke"}
    ) == pytest.approx(75)
