"""A scripted fake of Capillary on ``httpx.MockTransport``, and a client wired to it."""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from service.capillary.client import CapillaryClient
from service.capillary.config import CapillaryConfig
from service.capillary.models import CartEarnsRef
from service.capillary.retry import RetryPolicy
from service.clock import FakeClock
from service.observe.metrics import Metrics
from service.observe.tracing import Tracing

PASSWORD = "p4ss-w0rd-SECRET-7731"
OAUTH_SECRET = "oauth-SECRET-value-5512"
TOKEN = "tok-SECRET-0001"

LOYALTY_REVOKE = "/v2/promotion/bulk/revokeEnrolAndEarn"
LOYALTY_ENROL = "/v2/promotion/bulk/enrolAndEarn"
CART = "/api_gateway/v1/promotions/revokeEarn"
COUPON = "/v2/coupon/revoke"
TOKEN_PATH = "/v3/oauth/token/generate"

Responder = (
    httpx.Response
    | Exception
    | Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Awaitable[httpx.Response]]
)


# One successful cart revoke, as several test files need it.
EARN = [
    CartEarnsRef(promotion_id="69117663b1cfc114606fd7fb", earn_ids=["6911eaf1f57b486147effac0"])
]
CART_OK = {
    "data": {
        "customerId": 5,
        "revokedDetails": [
            {
                "promotionId": "69117663b1cfc114606fd7fb",
                "revokedEarnIds": ["6911eaf1f57b486147effac0"],
                "status": "SUCCESS",
            }
        ],
    },
    "errors": [],
}


def reply(
    status: int = 200, body: Any = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    """A response with a JSON body (or none)."""
    if body is None:
        return httpx.Response(status, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


def loyalty_ok(*results: dict[str, Any]) -> dict[str, Any]:
    """A loyalty bulk answer where every item succeeded."""
    return {
        "response": [{"result": r, "errors": [], "warnings": []} for r in results],
        "totalCount": len(results),
        "failureCount": 0,
    }


def loyalty_error(code: int, message: str = "refused") -> dict[str, Any]:
    """One failed loyalty bulk item."""
    return {"errors": [{"status": False, "message": message, "code": code}], "warnings": []}


@dataclass
class FakeCapillary:
    """Answers scripted per path (consumed in order, the last one repeats); records requests."""

    scripts: dict[str, list[Responder]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def script(self, path: str, *responders: Responder) -> None:
        self.scripts[path] = list(responders)

    def calls(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]

    def bodies(self, path: str) -> list[Any]:
        return [json.loads(r.content) for r in self.calls(path)]

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        script = self.scripts.get(path)
        if script is None:
            script = next((s for p, s in self.scripts.items() if path.endswith(p)), None)
        if not script:
            return httpx.Response(404, text="no script for " + path)
        responder = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(responder, Exception):
            raise responder
        if callable(responder):
            answer = responder(request)
            response = await answer if inspect.isawaitable(answer) else answer
        else:
            response = responder
        response.headers["X-CAP-REQUEST-ID"] = f"req-{len(self.requests)}"
        return response

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)


@dataclass
class Harness:
    """A client on the fake, with a fake clock and a sleep that only records and moves it."""

    fake: FakeCapillary
    clock: FakeClock
    sleeps: list[float]
    client: CapillaryClient


def basic_config(**overrides: Any) -> CapillaryConfig:
    values: dict[str, Any] = {"username": "api-user", "password": PASSWORD}
    values.update(overrides)
    return CapillaryConfig.model_validate(values)


def oauth_config(**overrides: Any) -> CapillaryConfig:
    values: dict[str, Any] = {
        "auth_mode": "oauth",
        "oauth_key": "key-1",
        "oauth_secret": OAUTH_SECRET,
    }
    values.update(overrides)
    return CapillaryConfig.model_validate(values)


def no_jitter_policy(**overrides: Any) -> RetryPolicy:
    values: dict[str, Any] = {
        "attempts": 3,
        "total_timeout": 30.0,
        "wait_initial": 0.5,
        "wait_max": 4.0,
        "wait_jitter": 0.0,
    }
    values.update(overrides)
    return RetryPolicy(**values)


# The open-cart (737) budget of the harness: more attempts and longer waits than the
# general one above, without jitter.
OPEN_CART_ATTEMPTS = 6


def open_cart_policy() -> RetryPolicy:
    return RetryPolicy(
        attempts=OPEN_CART_ATTEMPTS,
        total_timeout=300.0,
        wait_initial=2.0,
        wait_max=30.0,
        wait_jitter=0.0,
    )


def make_harness(
    fake: FakeCapillary | None = None,
    config: CapillaryConfig | None = None,
    policy: RetryPolicy | None = None,
    *,
    metrics: Metrics | None = None,
    tracing: Tracing | None = None,
) -> Harness:
    fake = fake or FakeCapillary()
    clock = FakeClock()
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    client = CapillaryClient(
        config or basic_config(),
        transport=fake.transport(),
        clock=clock,
        retry_policy=policy or no_jitter_policy(),
        open_cart_policy=open_cart_policy(),
        sleep=sleep,
        metrics=metrics,
        tracing=tracing,
    )
    return Harness(fake=fake, clock=clock, sleeps=sleeps, client=client)
