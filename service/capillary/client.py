"""The async Capillary client: one shared connection pool, the five endpoints by family.

Every public method answers a list of ``ItemResult`` (one per thing asked) and never
raises for what Capillary refuses. The call loop (``call.py``) limits, authenticates,
retries and judges each HTTP answer; each family (``loyalty.py``, ``cart.py``,
``coupons.py``, ``deactivate.py``) builds its requests and reads its answers item by item.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import httpx

from service.capillary.auth import Authenticator, build_authenticator
from service.capillary.call import Call, CallLoop, HttpPools, Sleep
from service.capillary.cart import CartCalls
from service.capillary.codes import Endpoint
from service.capillary.config import CapillaryConfig
from service.capillary.coupons import CouponCalls
from service.capillary.deactivate import DeactivateCalls
from service.capillary.limits import AdaptiveLimiter, RateLimiters
from service.capillary.loyalty import LoyaltyCalls
from service.capillary.models import (
    Attribution,
    CartEarnsRef,
    CouponCustomer,
    IdentifierName,
    LoyaltyCustomer,
    LoyaltyCustomerEarns,
    LoyaltyPromotionRef,
)
from service.capillary.results import ItemResult
from service.capillary.retry import RetryPolicy
from service.capillary.transport import AiohttpTransport
from service.clock import Clock, SystemClock
from service.logging import get_logger
from service.observe.metrics import Metrics
from service.observe.tracing import Tracing

log = get_logger(__name__)

PROBE_REQUEST: dict[str, Any] = {}
"""A coupon revoke naming nothing (no codes, customer or series): the coupon page answers
it 756 "No coupon code or customer info is passed", so it changes nothing. The probe's
only request: the api_gateway endpoints (cart revoke, deactivate) document no request
that is both harmless and answered, so that host is not probed (``{}`` to cart
revokeEarn is a malformed write, refused 400)."""

PROBE_CODE = 756


def probe_verdict(call: Call) -> str | None:
    """``None`` if ``call`` got the coupon page's 756 refusal, else what it got instead."""
    where = Endpoint.COUPON_REVOKE.value
    if call.failure is not None:
        return f"{where}: {call.failure.message}"
    errors = call.body.get("errors") if isinstance(call.body, dict) else None
    codes = [e.get("code") for e in errors or [] if isinstance(e, dict)]
    if PROBE_CODE in codes:
        return None
    # A proxy's JSON 404, a 403 or a changed API would otherwise read as "up" and send
    # every paused event down the retry path.
    return (
        f"{where}: HTTP {call.status} with codes {codes} to a revoke naming nothing, "
        f"not the documented {PROBE_CODE}"
    )


CONNECTIONS_PER_POOL = 8
"""Connections of one pool of httpx's own transport; ``max_connections`` is spread over as
many as it takes."""


class CapillaryClient:
    """One async client per process, over one shared ``httpx.AsyncClient``."""

    def __init__(
        self,
        config: CapillaryConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        retry_policy: RetryPolicy | None = None,
        open_cart_policy: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        rate_limiters: RateLimiters | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._config = config
        clock = clock or SystemClock()
        metrics = metrics or Metrics()
        # The limiters wait on the client's clock and sleep: a test's fake time paces them.
        limiters = rate_limiters or RateLimiters(
            config.rate_limits,
            config.pacing,
            clock=clock,
            sleep=sleep,
            report=lambda name, pace: metrics.capillary_pace.labels(name).set(pace),
        )
        t = config.timeouts
        timeout = httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool)
        transports: list[httpx.AsyncBaseTransport]
        if transport is not None:  # tests: one given transport
            transports, per_pool = [transport], config.max_connections
        elif config.http_transport == "aiohttp":
            # aiohttp's pool under httpx's requests: see capillary/transport.py for why.
            transports = [AiohttpTransport(max_connections=config.max_connections)]
            per_pool = config.max_connections
        else:
            # httpx's own pool checks every one of its connections on each request
            # (encode/httpx#3215): several small pools keep that cost down.
            pools = max(1, math.ceil(config.max_connections / CONNECTIONS_PER_POOL))
            per_pool = math.ceil(config.max_connections / pools)
            limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
            transports = [httpx.AsyncHTTPTransport(limits=limits) for _ in range(pools)]
        self._pools = HttpPools(transports, per_pool, timeout)
        # The token endpoint (OAuth) goes through a plain client on the first transport.
        self._http = httpx.AsyncClient(
            transport=transports[0], timeout=timeout, headers={"Accept": "application/json"}
        )
        self._auth: Authenticator = build_authenticator(
            config,
            http=self._http,
            clock=clock,
            limiter=limiters.for_endpoint(Endpoint.OAUTH_TOKEN),
        )
        loop = CallLoop(
            config,
            http=self._pools,
            auth=self._auth,
            limiters=limiters,
            clock=clock,
            retry_policy=retry_policy or RetryPolicy.from_config(config.retry),
            open_cart_policy=open_cart_policy or RetryPolicy.open_cart_from_config(config.retry),
            sleep=sleep,
            metrics=metrics,
            tracing=tracing or Tracing.off(),
        )
        self._loop = loop
        self._limiters = limiters
        self._metrics = metrics
        self.loyalty = LoyaltyCalls(loop)
        self.cart = CartCalls(loop)
        self.coupons = CouponCalls(loop, config.coupon_code_case, metrics)
        self.deactivation = DeactivateCalls(loop)

    def __repr__(self) -> str:
        return f"CapillaryClient(auth_mode={self._config.auth_mode.value!r})"

    @property
    def authenticator(self) -> Authenticator:
        """The authenticator in use (for diagnostics and tests)."""
        return self._auth

    @property
    def sends_attribution(self) -> bool:
        """Whether attribution reaches Capillary (OAuth only): only then must calls that
        share a request share it."""
        return self._loop.sends_attribution

    def limiter(self, endpoint: Endpoint) -> AdaptiveLimiter:
        """The rate limiter of ``endpoint``, shared by every call to it."""
        return self._loop.limiter(endpoint)

    def share_limits(self, owned: int, total: int) -> None:
        """Pace at this replica's share of the brand's limits: ``owned`` of the returns
        topic's ``total`` partitions (see ``RateLimiters.share``)."""
        self._limiters.share(owned, total)
        self._metrics.capillary_limit_share.set(owned / total)
        log.info(
            "capillary_limits_shared",
            partitions_owned=owned,
            partitions=total,
            per_minute={e.value: self._limiters.for_endpoint(e).ceiling for e in Endpoint},
        )

    async def admit(self, endpoint: Endpoint) -> None:
        """Wait for and take one rate permit of ``endpoint``.

        For a caller that sends with ``admitted=True`` next (the coalescer): while it
        waits here, its batch keeps growing.
        """
        await self._loop.limiter(endpoint).acquire()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections (the token client shares the first transport)."""
        await self._http.aclose()
        await self._pools.aclose()

    async def probe(self) -> str | None:
        """Whether Capillary answers us: ``None`` if so, else why not.

        One attempt of :data:`PROBE_REQUEST` (with OAuth, the token call first when no
        token is held). Only the documented 756 proves the host is up and takes our
        credentials; any other answer, readable or not, is reported as down.
        """
        call = await self._loop.send(Endpoint.COUPON_REVOKE, json=PROBE_REQUEST, retry=False)
        return probe_verdict(call)

    # --- the flat surface the executor calls (each family also stands on its own) --------

    async def revoke_loyalty_earns(
        self,
        promotion: LoyaltyPromotionRef,
        identifier_name: IdentifierName,
        customers: Sequence[LoyaltyCustomerEarns],
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        """REVOKE_EARN; see :meth:`LoyaltyCalls.revoke_earns`."""
        return await self.loyalty.revoke_earns(promotion, identifier_name, customers, attribution)

    async def revoke_loyalty_enrolments(
        self,
        promotion: LoyaltyPromotionRef,
        identifier_name: IdentifierName,
        customers: Sequence[LoyaltyCustomer],
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        """REVOKE_ENROL; see :meth:`LoyaltyCalls.revoke_enrolments`."""
        return await self.loyalty.revoke_enrolments(
            promotion, identifier_name, customers, attribution
        )

    async def enrol(
        self,
        promotion: LoyaltyPromotionRef,
        identifier_name: IdentifierName,
        customers: Sequence[LoyaltyCustomer],
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        """ENROL; see :meth:`LoyaltyCalls.enrol`."""
        return await self.loyalty.enrol(promotion, identifier_name, customers, attribution)

    async def issue_earn(
        self,
        promotion: LoyaltyPromotionRef,
        identifier_name: IdentifierName,
        customers: Sequence[LoyaltyCustomer],
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        """EARN (not idempotent); see :meth:`LoyaltyCalls.issue_earn`."""
        return await self.loyalty.issue_earn(promotion, identifier_name, customers, attribution)

    async def revoke_cart_earns(
        self,
        customer_id: int,
        earns: Sequence[CartEarnsRef],
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        """Cart revokeEarn; see :meth:`CartCalls.revoke_earns`."""
        return await self.cart.revoke_earns(customer_id, earns, attribution)

    async def revoke_coupons_by_codes(
        self,
        codes: Sequence[str],
        series_id: int | None,
        attribution: Attribution | None = None,
        *,
        generic: bool = False,
        no_generic_code: bool = False,
        customer: CouponCustomer | None = None,
    ) -> list[ItemResult]:
        """Coupon revoke by codes; see :meth:`CouponCalls.revoke_by_codes`."""
        return await self.coupons.revoke_by_codes(
            codes,
            series_id,
            attribution,
            generic=generic,
            no_generic_code=no_generic_code,
            customer=customer,
        )

    async def revoke_coupons_by_customer(
        self,
        customer: CouponCustomer,
        series_id: int | None,
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        """Coupon revoke by customer; see :meth:`CouponCalls.revoke_by_customer`."""
        return await self.coupons.revoke_by_customer(customer, series_id, attribution)

    async def deactivate_promotion(
        self,
        promotion_id: str,
        customer_id: int,
        earn_id: str | None,
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        """Deactivate; see :meth:`DeactivateCalls.deactivate`."""
        return await self.deactivation.deactivate(promotion_id, customer_id, earn_id, attribution)


__all__ = ["PROBE_CODE", "PROBE_REQUEST", "CapillaryClient", "Sleep", "probe_verdict"]
