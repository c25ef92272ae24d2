"""Authentication to Capillary: Basic, or an OAuth token fetched, cached and refreshed.

Secrets stay in ``SecretStr`` until the moment a header is built; no log line, error or
repr here contains them.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Protocol

import httpx
import structlog
from pydantic import SecretStr, ValidationError

from service.capillary.config import AuthMode, CapillaryConfig
from service.capillary.limits import AdaptiveLimiter
from service.capillary.models import OAuthTokenRequest, OAuthTokenResponse
from service.clock import Clock
from service.errors import CapillaryAuthError, CapillaryTransientError

TOKEN_PATH = "/v3/oauth/token/generate"
MAX_TOKEN_TTL = 3600.0  # Capillary's tokens live at most 60 minutes.

_log = structlog.get_logger(__name__)


class Authenticator(Protocol):
    """Gives the headers that authenticate one request."""

    @property
    def refreshable(self) -> bool:
        """Whether a 401 can be cured by getting new credentials."""
        ...

    async def headers(self) -> dict[str, str]:
        """Headers to add to the next request (may fetch a token)."""
        ...

    def invalidate(self, headers: dict[str, str]) -> None:
        """Forget the credentials carried in ``headers`` (after a 401)."""
        ...


class BasicAuthenticator:
    """HTTP Basic with the configured username and password."""

    refreshable = False

    def __init__(self, username: str, password: SecretStr) -> None:
        raw = f"{username}:{password.get_secret_value()}".encode()
        # The same value on every call: encoded once. Kept as a secret so that no repr or
        # log of this object shows it.
        self._authorization = SecretStr("Basic " + base64.b64encode(raw).decode("ascii"))

    def __repr__(self) -> str:
        return "BasicAuthenticator()"

    async def headers(self) -> dict[str, str]:
        # A new dict each time: the call loop adds its per-call headers to it.
        return {"Authorization": self._authorization.get_secret_value()}

    def invalidate(self, headers: dict[str, str]) -> None:
        """Nothing to refresh: a refused password stays refused."""


@dataclass(slots=True)
class _Token:
    value: SecretStr
    refresh_at: float  # on the injected monotonic clock


class OAuthAuthenticator:
    """Fetches ``{key, secret}`` → token, caches it, refreshes it before it expires.

    One refresh at a time: concurrent callers wait on the same lock and then find the
    fresh token, so a burst of calls makes one token request.
    """

    refreshable = True

    def __init__(
        self,
        *,
        config: CapillaryConfig,
        http: httpx.AsyncClient,
        clock: Clock,
        limiter: AdaptiveLimiter | None = None,
    ) -> None:
        if config.oauth_key is None or config.oauth_secret is None:  # the config validator
            raise CapillaryAuthError("OAuth key and secret are not configured")
        self._request = OAuthTokenRequest(key=config.oauth_key, secret=config.oauth_secret)
        self._url = config.oauth_base_url + TOKEN_PATH
        self._header = config.oauth_header_name
        self._margin = config.token_refresh_margin
        self._http = http
        self._clock = clock
        self._limiter = limiter
        self._token: _Token | None = None
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    def __repr__(self) -> str:
        return f"OAuthAuthenticator(url={self._url!r})"

    async def headers(self) -> dict[str, str]:
        token = await self._current()
        return {self._header: token.get_secret_value()}

    def invalidate(self, headers: dict[str, str]) -> None:
        sent = headers.get(self._header)
        # Only drop the token that failed: another caller may already hold a fresh one.
        if self._token is not None and sent == self._token.value.get_secret_value():
            self._token = None

    async def _current(self) -> SecretStr:
        token = self._token
        if token is not None and self._clock.monotonic() < token.refresh_at:
            return token.value
        async with self._lock:
            token = self._token
            if token is not None and self._clock.monotonic() < token.refresh_at:
                return token.value
            self._token = await self._fetch()
            return self._token.value

    async def _fetch(self) -> _Token:
        self.fetch_count += 1
        if self._limiter is not None:
            await self._limiter.acquire()
        started = self._clock.monotonic()
        response = await self._http.post(self._url, json=self._request.wire())
        _log.info(
            "capillary_token_fetched",
            status=response.status_code,
            request_id=response.headers.get("X-CAP-REQUEST-ID"),
        )
        if response.status_code >= 500 or response.status_code == 429:
            raise CapillaryTransientError(
                "Capillary's token endpoint is unavailable", status=response.status_code
            )
        try:
            parsed = OAuthTokenResponse.model_validate_json(response.content)
        except ValidationError:
            parsed = None
        if response.status_code != 200 or parsed is None or parsed.data is None:
            codes = [e.code for e in (parsed.errors or [])] if parsed else []
            raise CapillaryAuthError(
                "Capillary did not issue an OAuth token",
                status=response.status_code,
                codes=codes,
            )
        ttl = min(float(parsed.data.ttl_seconds), MAX_TOKEN_TTL)
        margin = min(self._margin, ttl / 2)
        return _Token(value=parsed.data.access_token, refresh_at=started + ttl - margin)


def build_authenticator(
    config: CapillaryConfig,
    *,
    http: httpx.AsyncClient,
    clock: Clock,
    limiter: AdaptiveLimiter | None = None,
) -> Authenticator:
    """The authenticator the settings ask for."""
    if config.auth_mode is AuthMode.OAUTH:
        return OAuthAuthenticator(config=config, http=http, clock=clock, limiter=limiter)
    if config.username is None or config.password is None:  # the config validator forbids it
        raise CapillaryAuthError("Basic auth username and password are not configured")
    return BasicAuthenticator(config.username, config.password)
