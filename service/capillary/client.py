"""The async Capillary client: one set of connection pools, the five endpoints by family.

Its calls (:class:`~service.capillary.api.CapillaryApi`) are its families' own methods:
each answers a list of ``ItemResult`` (one per thing asked) and never raises for what
Capillary refuses. The call loop (``call.py``) limits, authenticates and retries; each
family (``loyalty.py``, ``cart.py``, ``coupons.py``, ``deactivate.py``) builds its
requests and reads its answers item by item.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Self

import httpx

from service.capillary.auth import Authenticator, build_authenticator
from service.capillary.call import CallLoop, Sleep
from service.capillary.cart import CartCalls
from service.capillary.codes import Endpoint
from service.capillary.config import CapillaryConfig
from service.capillary.coupons import CouponCalls
from service.capillary.deactivate import DeactivateCalls
from service.capillary.judge import probe_verdict
from service.capillary.limits import AdaptiveLimiter, RateLimiters
from service.capillary.loyalty import LoyaltyCalls
from service.capillary.retry import RetryPolicy
from service.capillary.transport import HttpPools
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


class CapillaryClient:
    """One async client per process, over one set of connection pools.

    Its calls are the executor's (:class:`~service.capillary.api.CapillaryApi`), each its
    family's own method, documented there: ``loyalty`` (:meth:`LoyaltyCalls.bulk`),
    ``revoke_cart_earns``, ``revoke_coupons_by_codes``, ``revoke_coupons_by_customer``
    and ``deactivate_promotion``. ``clock``, ``metrics`` and ``tracing`` are those it was
    built with (defaults filled in), for what wraps it (the coalescer).
    """

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
        # Public: the coalescer over this client times, counts and traces with the same,
        # so the two cannot be given different ones.
        self.clock = clock = clock or SystemClock()
        self.metrics = metrics = metrics or Metrics()
        self.tracing = tracing = tracing or Tracing.off()
        # The limiters wait on the client's clock and sleep: a test's fake time paces them.
        limiters = rate_limiters or RateLimiters(
            config.rate_limits,
            config.pacing,
            clock=clock,
            sleep=sleep,
            report=lambda name, pace: metrics.capillary_pace.labels(name).set(pace),
        )
        self._pools = HttpPools.from_config(config, transport)
        # The token endpoint (OAuth) goes through a plain client on the first transport.
        self._http = httpx.AsyncClient(
            transport=self._pools.first,
            timeout=self._pools.timeout,
            headers={"Accept": "application/json"},
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
            tracing=tracing,
        )
        self._loop = loop
        self._limiters = limiters
        self.loyalty_calls = LoyaltyCalls(loop)
        self.cart_calls = CartCalls(loop)
        self.coupon_calls = CouponCalls(loop, config.coupon_code_case, metrics)
        # The calls the executor makes (CapillaryApi), each its family's own method.
        self.loyalty = self.loyalty_calls.bulk
        self.revoke_cart_earns = self.cart_calls.revoke_earns
        self.revoke_coupons_by_codes = self.coupon_calls.revoke_by_codes
        self.revoke_coupons_by_customer = self.coupon_calls.revoke_by_customer
        self.deactivate_promotion = DeactivateCalls(loop).deactivate

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
        self.metrics.capillary_limit_share.set(owned / total)
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


__all__ = ["PROBE_REQUEST", "CapillaryClient", "Sleep"]
