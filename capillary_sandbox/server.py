"""The sandbox HTTP server: Capillary's five endpoints, OAuth token generation, and an admin API.

Routes (API routes need HTTP Basic or a live OAuth token in the one configured header,
``SandboxConfig.oauth_header_name``, default ``X-CAP-API-OAUTH-TOKEN``; a token under any
other name, ``CAP-API-ACCESS-TOKEN`` included, is ignored, so the request answers 401
``{"errors": [{"status": false, "code": 401, "message": ...}]}``)::

    POST /v2/promotion/bulk/revokeEnrolAndEarn                       revoke_enrol_and_earn
    POST /v2/promotion/bulk/enrolAndEarn                             enrol_and_earn
    POST /api_gateway/v1/promotions/revokeEarn                       cart_revoke_earn
    POST /v2/coupon/revoke?couponCodeCase=                           coupon_revoke
    POST /api_gateway/v1/promotions/{promotionId}/deactivate?...     deactivate
    POST /v3/oauth/token/generate          (no auth)                 oauth_token

    GET  /__admin/health | /__admin/state | /__admin/calls[?endpoint=] | /__admin/faults
         | /__admin/ledger | /__admin/credentials
    POST /__admin/seed | /__admin/reset | /__admin/faults | /__admin/faults/fail_next
         | /__admin/credentials
    DELETE /__admin/calls

Both API families are served on one host; the client's per-family base URLs may both point
here. Every response, admin and 404s included, carries a unique ``X-CAP-REQUEST-ID``.

Order per API request: fault injection (see ``faults.py``; a faulted request touches no
state), then the per-endpoint rate limit (429 + ``Retry-After``), then authentication, then
the endpoint. ``/__admin/reset`` restores the seed the sandbox started with, or the one last
posted to ``/__admin/seed``, with an empty ledger and empty rate-limit windows; it keeps the
call log, faults, tokens and the credentials switch.

``POST /__admin/credentials {"refuse": true}`` refuses every credential, as a rotated secret
would: until ``{"refuse": false}``, every business call answers 401 (Basic credentials and
OAuth tokens alike, the request recorded with fault ``credentials_refused``) and every token
request answers 401 "Invalid key or secret". Tokens issued before stay valid afterwards, until
their TTL passes. Faults and the rate limit still come first. ``GET /__admin/credentials``
answers ``{"refuse": ...}``.

``GET /__admin/ledger`` answers what the state went through since the seed was loaded or
reset (``ledger.py``): per benefit, how many times it was successfully taken back, and per
(loyalty promotion, customer) how many enrolments and earns were issued.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import random
import secrets
import signal
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from capillary_sandbox import endpoints
from capillary_sandbox.endpoints import Reply
from capillary_sandbox.faults import FailNext, FaultConfig, Faults, RateLimiter
from capillary_sandbox.ledger import LedgerReport
from capillary_sandbox.state import SandboxSeed, SandboxState, demo_seed, load_seed_file

REQUEST_ID_HEADER = "X-CAP-REQUEST-ID"
_REQUEST_ID_KEY = web.RequestKey("request_id", str)


class SandboxConfig(BaseModel):
    """How to run the sandbox. Credentials here are sandbox-only demo values."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535, description="0 picks a free port")
    seed_path: Path | None = Field(None, description="seed JSON; None starts the demo brand")
    basic_users: dict[str, SecretStr] = Field(default_factory=lambda: {"demo": SecretStr("demo")})
    oauth_clients: dict[str, SecretStr] = Field(
        default_factory=lambda: {"demo-key": SecretStr("demo-secret")}
    )
    token_ttl_seconds: int = Field(3600, ge=1, le=3600)
    oauth_header_name: str = Field(
        "X-CAP-API-OAUTH-TOKEN",
        min_length=1,
        description="the one header that carries an OAuth token (Capillary's pages name it "
        "X-CAP-API-OAUTH-TOKEN in places, CAP-API-ACCESS-TOKEN in the overview; the client "
        "makes it a setting, and the sandbox accepts only the name configured here)",
    )
    faults: FaultConfig = Field(default_factory=FaultConfig)
    rate_limit_per_minute: dict[str, int | None] = Field(
        default_factory=dict,
        description="requests a minute per endpoint name ('*' for every business endpoint)",
    )
    rate_limit_window_seconds: float = Field(
        60.0,
        gt=0,
        description="the 'minute' the rate limits count over; shorter plays a case faster",
    )
    random_seed: int = 0
    access_log: bool = False
    call_log_limit: int = Field(10_000, ge=0, description="oldest calls are forgotten first")
    shutdown_timeout_seconds: float = Field(2.0, ge=0)


class CredentialsSwitch(BaseModel):
    """Body of ``POST /__admin/credentials`` and answer of both its routes."""

    model_config = ConfigDict(extra="forbid")

    refuse: bool = Field(description="true: every credential answers 401 until set false")


class CallRecord(BaseModel):
    """One API request as the sandbox saw it (admin requests are not recorded)."""

    timestamp: datetime
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int | None = Field(description="None when the connection was dropped or hung")
    request_id: str
    endpoint: str
    fault: str | None = None


_Handler = Callable[[web.Request, Any], Reply]


class Sandbox:
    """A running sandbox server; use ``async with Sandbox(config) as sandbox``.

    ``state``, ``faults`` and ``calls`` are the same objects the HTTP API serves, so tests
    can arrange and inspect in-process.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        seed: SandboxSeed | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or SandboxConfig()
        if seed is None:
            path = self.config.seed_path
            seed = load_seed_file(path) if path is not None else demo_seed()
        self._seed = seed
        self._clock = clock
        self.state = SandboxState(seed)
        self.faults = Faults(self.config.faults, random.Random(self.config.random_seed))
        self._limiter = RateLimiter(
            self.config.rate_limit_per_minute, clock, self.config.rate_limit_window_seconds
        )
        self._calls: deque[CallRecord] = deque(maxlen=self.config.call_log_limit)
        self._tokens: dict[str, float] = {}
        self._refuse_credentials = False
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """``http://host:port`` with the real port; only while running."""
        if self._base_url is None:
            raise RuntimeError("the sandbox is not running")
        return self._base_url

    async def start(self) -> None:
        """Listen on the configured host and port."""
        self._stopping.clear()
        # access_log=None is aiohttp's switch for "no access log": a log line per request
        # costs more than the request itself here.
        extra: dict[str, Any] = {} if self.config.access_log else {"access_log": None}
        runner = web.AppRunner(
            self._build_app(),
            handle_signals=False,
            shutdown_timeout=self.config.shutdown_timeout_seconds,
            **extra,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        await site.start()
        self._runner = runner
        port = runner.addresses[0][1] if runner.addresses else self.config.port
        # A wildcard bind address is not something a client can connect to.
        host = "127.0.0.1" if self.config.host in ("", "0.0.0.0", "::") else self.config.host
        self._base_url = f"http://{host}:{port}"

    async def stop(self) -> None:
        """Release hung requests (their connections are dropped) and close the server."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None
        self._base_url = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ in-process admin

    @property
    def calls(self) -> list[CallRecord]:
        """The call log, oldest first."""
        return list(self._calls)

    def clear_calls(self) -> None:
        """Forget the call log."""
        self._calls.clear()

    def load_seed(self, seed: SandboxSeed) -> None:
        """Replace the state; later resets return to this seed (kept, so do not mutate it)."""
        self._seed = seed
        self.state.load(seed)

    def reset(self) -> None:
        """Back to the last loaded seed, with no request counted against the rate limits."""
        self.state.load(self._seed)
        self.clear_rate_windows()

    def clear_rate_windows(self) -> None:
        """Forget the requests the rate limit has counted, as if its window had passed."""
        self._limiter.clear()

    def expire_tokens(self) -> None:
        """Make every issued OAuth token invalid (as if its TTL passed)."""
        self._tokens.clear()

    @property
    def refusing_credentials(self) -> bool:
        """True while every credential is refused (see :meth:`refuse_credentials`)."""
        return self._refuse_credentials

    def refuse_credentials(self, refuse: bool) -> None:
        """Refuse every credential (401 on business and token requests) until called with False."""
        self._refuse_credentials = refuse

    def ledger(self) -> LedgerReport:
        """What the state went through since the seed was loaded."""
        return self.state.ledger.report()

    # ------------------------------------------------------------------ app

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[_request_id_middleware], client_max_size=64 * 2**20)
        api: list[tuple[str, str, _Handler]] = [
            (
                "/v2/promotion/bulk/revokeEnrolAndEarn",
                "revoke_enrol_and_earn",
                lambda _r, body: endpoints.loyalty_bulk(self.state, body, revoke=True),
            ),
            (
                "/v2/promotion/bulk/enrolAndEarn",
                "enrol_and_earn",
                lambda _r, body: endpoints.loyalty_bulk(self.state, body, revoke=False),
            ),
            (
                "/api_gateway/v1/promotions/revokeEarn",
                "cart_revoke_earn",
                lambda _r, body: endpoints.cart_revoke_earn(self.state, body),
            ),
            (
                "/v2/coupon/revoke",
                "coupon_revoke",
                lambda r, body: endpoints.coupon_revoke(
                    self.state, body, r.query.get("couponCodeCase")
                ),
            ),
            (
                "/api_gateway/v1/promotions/{promotion_id:[^/]*}/deactivate",
                "deactivate",
                lambda r, body: endpoints.deactivate(
                    self.state,
                    r.match_info["promotion_id"],
                    r.query.get("customerId"),
                    r.query.get("earnId"),
                    body,
                ),
            ),
            ("/v3/oauth/token/generate", "oauth_token", self._generate_token),
        ]
        for path, name, handler in api:
            app.router.add_post(path, self._api_route(name, handler))
        admin = "/__admin"
        app.router.add_get(f"{admin}/health", self._admin_health)
        app.router.add_get(f"{admin}/state", self._admin_state)
        app.router.add_post(f"{admin}/seed", self._admin_seed)
        app.router.add_post(f"{admin}/reset", self._admin_reset)
        app.router.add_get(f"{admin}/calls", self._admin_calls)
        app.router.add_delete(f"{admin}/calls", self._admin_clear_calls)
        app.router.add_get(f"{admin}/faults", self._admin_faults)
        app.router.add_post(f"{admin}/faults", self._admin_set_faults)
        app.router.add_post(f"{admin}/faults/fail_next", self._admin_fail_next)
        app.router.add_get(f"{admin}/credentials", self._admin_credentials)
        app.router.add_post(f"{admin}/credentials", self._admin_set_credentials)
        app.router.add_get(f"{admin}/ledger", self._admin_ledger)
        return app

    def _api_route(
        self, name: str, handler: _Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def route(request: web.Request) -> web.StreamResponse:
            raw = await request.read()
            body = _parse_json(raw)
            # model_construct: validating every record would cost more than the request.
            record = CallRecord.model_construct(
                fault=None,
                timestamp=datetime.now(UTC),
                method=request.method,
                path=request.path,
                query=dict(request.query),
                body=body if body is not _UNREADABLE else raw.decode("utf-8", "replace"),
                status=None,
                request_id=request[_REQUEST_ID_KEY],
                endpoint=name,
            )
            self._calls.append(record)
            decision = self.faults.decide(name)
            if decision.delay_seconds > 0 and await self._stopped_within(decision.delay_seconds):
                return _drop(request)
            if decision.kind is not None:
                record.fault = decision.kind
            if decision.kind == "hang":
                await self._hang(request)
                return _drop(request)
            if decision.kind == "drop":
                return _drop(request)
            if decision.kind == "error":
                reply = Reply(
                    decision.status,
                    {
                        "errors": [
                            {
                                "status": False,
                                "code": decision.status,
                                "message": "Injected failure (sandbox fault)",
                            }
                        ]
                    },
                )
                return self._respond(record, reply)
            if decision.kind == "throttle":
                return self._throttled(record, decision.retry_after_seconds, decision.status)
            retry_after = self._limiter.check(name)
            if retry_after is not None:
                record.fault = "rate_limit"
                return self._throttled(record, retry_after, 429)
            if name != "oauth_token" and not self._authorised(request):
                if self._refuse_credentials:
                    record.fault = "credentials_refused"
                reply = Reply(
                    401,
                    {
                        "errors": [
                            {
                                "status": False,
                                "code": 401,
                                "message": "Unauthorized: valid Basic credentials or OAuth "
                                "token required",
                            }
                        ]
                    },
                )
                return self._respond(record, reply, {"WWW-Authenticate": 'Basic realm="sandbox"'})
            reply = handler(request, body)
            if decision.kind == "unmatched":
                reply = _unmatched(reply)
            return self._respond(record, reply)

        return route

    async def _stopped_within(self, seconds: float) -> bool:
        """Wait out injected latency; True if the server began stopping meanwhile."""
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            return False
        return True

    async def _hang(self, request: web.Request) -> None:
        """Hold the request until the client goes away or the server stops."""
        # aiohttp does not cancel a handler whose client left, so look now and then.
        while not await self._stopped_within(0.25):
            transport = request.transport
            if transport is None or transport.is_closing():
                return

    def _respond(
        self, record: CallRecord, reply: Reply, headers: dict[str, str] | None = None
    ) -> web.Response:
        """Send ``reply`` and note its status in the call log."""
        record.status = reply.status
        return web.json_response(reply.body, status=reply.status, headers=headers)

    def _throttled(self, record: CallRecord, retry_after: int, status: int) -> web.Response:
        reply = Reply(
            status,
            {"errors": [{"status": False, "code": status, "message": "Too many requests"}]},
        )
        return self._respond(record, reply, {"Retry-After": str(retry_after)})

    def _authorised(self, request: web.Request) -> bool:
        if self._refuse_credentials:
            return False
        header = request.headers.get("Authorization", "")
        if header[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            user, sep, password = decoded.partition(":")
            expected = self.config.basic_users.get(user)
            if (
                sep
                and expected is not None
                and hmac.compare_digest(password.encode(), expected.get_secret_value().encode())
            ):
                return True
        token = request.headers.get(self.config.oauth_header_name)
        if token:
            expiry = self._tokens.get(token)
            if expiry is not None and expiry > self._clock():
                return True
        return False

    def _generate_token(self, _request: web.Request, body: Any) -> Reply:
        key = body.get("key") if isinstance(body, dict) else None
        secret = body.get("secret") if isinstance(body, dict) else None
        if not isinstance(key, str) or not isinstance(secret, str) or not key or not secret:
            return Reply(
                400,
                {"data": None, "errors": [{"code": 400, "message": "key and secret are required"}]},
            )
        expected = self.config.oauth_clients.get(key)
        if (
            self._refuse_credentials
            or expected is None
            or not hmac.compare_digest(secret.encode(), expected.get_secret_value().encode())
        ):
            return Reply(
                401, {"data": None, "errors": [{"code": 401, "message": "Invalid key or secret"}]}
            )
        now = self._clock()
        self._tokens = {t: e for t, e in self._tokens.items() if e > now}
        token = secrets.token_urlsafe(32)
        ttl = self.config.token_ttl_seconds
        self._tokens[token] = now + ttl
        return Reply(200, {"data": {"accessToken": token, "ttlSeconds": ttl}, "errors": None})

    # ------------------------------------------------------------------ admin routes

    async def _admin_health(self, _request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _admin_state(self, _request: web.Request) -> web.Response:
        return web.json_response(self.state.data.model_dump(mode="json"))

    async def _admin_seed(self, request: web.Request) -> web.Response:
        try:
            seed = SandboxSeed.model_validate_json(await request.read())
        except ValidationError as error:
            return _admin_invalid(error)
        self.load_seed(seed)
        return web.json_response({"ok": True})

    async def _admin_reset(self, _request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _admin_calls(self, request: web.Request) -> web.Response:
        wanted = request.query.get("endpoint")
        calls = [c for c in self._calls if wanted is None or c.endpoint == wanted]
        return web.json_response([c.model_dump(mode="json") for c in calls])

    async def _admin_clear_calls(self, _request: web.Request) -> web.Response:
        self.clear_calls()
        return web.json_response({"ok": True})

    async def _admin_faults(self, _request: web.Request) -> web.Response:
        return web.json_response(self.faults.current().model_dump(mode="json"))

    async def _admin_set_faults(self, request: web.Request) -> web.Response:
        try:
            config = FaultConfig.model_validate_json(await request.read())
        except ValidationError as error:
            return _admin_invalid(error)
        self.faults.configure(config)
        return web.json_response(self.faults.current().model_dump(mode="json"))

    async def _admin_credentials(self, _request: web.Request) -> web.Response:
        return web.json_response({"refuse": self._refuse_credentials})

    async def _admin_set_credentials(self, request: web.Request) -> web.Response:
        try:
            switch = CredentialsSwitch.model_validate_json(await request.read())
        except ValidationError as error:
            return _admin_invalid(error)
        self.refuse_credentials(switch.refuse)
        return web.json_response({"refuse": self._refuse_credentials})

    async def _admin_ledger(self, _request: web.Request) -> web.Response:
        return web.json_response(self.ledger().model_dump(mode="json"))

    async def _admin_fail_next(self, request: web.Request) -> web.Response:
        try:
            entry = FailNext.model_validate_json(await request.read())
        except ValidationError as error:
            return _admin_invalid(error)
        self.faults.fail_next(
            entry.endpoint,
            entry.kind,
            entry.count,
            status=entry.status,
            retry_after_seconds=entry.retry_after_seconds,
        )
        return web.json_response(self.faults.current().model_dump(mode="json"))


_UNREADABLE = object()


def _parse_json(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _UNREADABLE


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without an answer: the client sees a transport error."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    # aiohttp needs a response object; it cannot be written to the closed socket.
    return web.Response(status=499)


def _admin_invalid(error: ValidationError) -> web.Response:
    return web.json_response(
        {"ok": False, "errors": json.loads(error.json(include_url=False))}, status=400
    )


@web.middleware
async def _request_id_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    request_id = uuid.uuid4().hex
    request[_REQUEST_ID_KEY] = request_id
    try:
        response = await handler(request)
    except web.HTTPException as error:
        error.headers[REQUEST_ID_HEADER] = request_id
        raise
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


async def serve_forever(
    config: SandboxConfig, *, on_ready: Callable[[str], None] | None = None
) -> None:
    """Run the sandbox until SIGTERM or SIGINT; ``on_ready`` gets the URL once listening."""
    log = structlog.get_logger("capillary_sandbox")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Sandbox(config) as sandbox:
            log.info(
                "sandbox_listening",
                url=sandbox.base_url,
                basic_users=sorted(config.basic_users),
                oauth_keys=sorted(config.oauth_clients),
                seed=str(config.seed_path) if config.seed_path else "demo",
            )
            if on_ready is not None:
                on_ready(sandbox.base_url)
            await stop.wait()
            log.info("sandbox_stopping", url=sandbox.base_url)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def _unmatched(reply: Reply) -> Reply:
    """The ``unmatched`` fault: the request was carried out; its item list loses its last item.

    What a client must survive on the loyalty bulk endpoints (items are matched to customers
    by position, and ``totalCount`` is not reliable): an answer it cannot match.
    """
    body = reply.body
    if isinstance(body, dict) and isinstance(body.get("response"), list) and body["response"]:
        return Reply(reply.status, {**body, "response": body["response"][:-1]})
    return reply
