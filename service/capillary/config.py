"""Settings of the Capillary client: one nested group, ``Settings.capillary``.

Environment variables: ``RETURN_HANDLER_CAPILLARY__<FIELD>`` and, for the
sub-groups, ``RETURN_HANDLER_CAPILLARY__RETRY__ATTEMPTS`` and the like.
Secrets are ``SecretStr`` and may come from mounted files (``*_file``), which
is how Kubernetes secrets arrive.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from service.errors import ConfigurationError
from service.secret_files import read_secret_file

_PREFIX = "RETURN_HANDLER_CAPILLARY__"
_DEFAULT_URL = "http://127.0.0.1:8765"

Seconds = Annotated[float, Field(gt=0)]
"""A time in seconds, above zero: a timeout, window or budget of zero could never be met."""
Share = Annotated[float, Field(gt=0, le=1)]
"""A fraction of a whole: above nothing, at most all of it."""


class AuthMode(StrEnum):
    """How we prove who we are to Capillary."""

    BASIC = "basic"
    """The user and password on every request; attribution is not sent."""
    OAUTH = "oauth"
    """A token for the client key and secret, fetched, cached and refreshed before it
    expires; only this mode sends attribution."""


class CouponCodeCase(StrEnum):
    """``couponCodeCase`` query parameter of the coupon revoke call."""

    LOWER = "LOWER"
    UPPER = "UPPER"
    AS_IT_IS = "AS_IT_IS"


class CapillaryTimeouts(BaseModel):
    """httpx timeouts (each is inactivity on one phase) plus one overall deadline per attempt."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    connect: Seconds = 3.0
    """Seconds to open a connection."""
    read: Seconds = 10.0
    """Seconds of silence while reading."""
    write: Seconds = 10.0
    """Seconds of stall while sending."""
    pool: Seconds = 5.0
    """Seconds to wait for a free connection."""
    # A slow server can trickle bytes forever under a read timeout; this bounds one attempt.
    call_deadline: Seconds = 20.0
    """Overall seconds one HTTP attempt may take."""


class CapillaryRetrySettings(BaseModel):
    """Retry budget for transient failures; ``total_timeout`` stays under the poll interval."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    attempts: int = Field(default=5, ge=1, le=20)
    """Most attempts per call."""
    # Well under Kafka's default max.poll.interval.ms (300 s) even with several calls per event.
    total_timeout: Seconds = Field(default=45.0, le=120)
    """Most seconds one call may spend retrying."""
    wait_initial: float = Field(default=0.2, ge=0)
    """First backoff, seconds."""
    wait_max: float = Field(default=5.0, ge=0)
    """Longest backoff, seconds."""
    wait_jitter: float = Field(default=0.5, ge=0)
    """Random seconds added."""
    # 737 "open cart" lasts as long as the customer's cart does, not a server hiccup; the
    # consumer keeps polling while a batch runs, so this may exceed the budget above.
    open_cart_attempts: int = Field(default=10, ge=1, le=50)
    """Most attempts per call while the cart is open (737)."""
    open_cart_total_timeout: Seconds = Field(default=180.0, le=900)
    """Most seconds one call may wait for an open cart (737) to close."""


class CapillaryRateLimits(BaseModel):
    """Requests per minute per endpoint (the pages say "NA"; Capillary may allow only 100)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    loyalty_revoke: int = Field(default=300, ge=1)
    """Requests a minute."""
    loyalty_enrol: int = Field(default=300, ge=1)
    """Requests a minute."""
    cart_revoke: int = Field(default=300, ge=1)
    """Requests a minute."""
    coupon_revoke: int = Field(default=300, ge=1)
    """Requests a minute."""
    deactivate: int = Field(default=300, ge=1)
    """Requests a minute."""
    oauth_token: int = Field(default=60, ge=1)
    """Requests a minute."""


class CapillaryPacingSettings(BaseModel):
    """How 429s teach an endpoint's pace: halve it, then climb back to the configured limit."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    # A Retry-After of hours would stall the endpoint that long; the probe covers outages.
    retry_after_max: Seconds = Field(default=60.0, le=600)
    """Longest Retry-After honoured, seconds: the endpoint waits at most this."""
    decrease: float = Field(default=0.5, gt=0, lt=1)
    """Share of its pace an endpoint keeps after a 429."""
    increase: Share = 0.01
    """Share of the configured limit the pace climbs back per answered call."""
    # Capillary counts a sliding minute. Only a test that plays time faster (a sandbox
    # counting a shorter window) sets these: the limits are then requests per window.
    window_seconds: Seconds = Field(default=60.0, le=3600)
    """Window the rate limits count, seconds."""
    jitter_seconds: float = Field(default=1.0, ge=0, le=60)
    """Margin for requests that arrive closer together than they were sent."""


class CapillaryConfig(BaseModel):
    """Everything the Capillary client needs; validated once at start-up."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    loyalty_base_url: str = _DEFAULT_URL
    """Host of /v2/..."""
    gateway_base_url: str = _DEFAULT_URL
    """Host of /api_gateway/v1/..."""

    auth_mode: AuthMode = AuthMode.BASIC
    """basic or oauth."""
    username: str | None = None
    """Basic auth user (till/API user)."""
    username_file: Path | None = None
    """File holding the user."""
    password: SecretStr | None = None
    """Basic auth password."""
    password_file: Path | None = None
    """File holding it."""

    oauth_base_url: str = _DEFAULT_URL
    """Host of /v3/oauth/token/generate"""
    oauth_key: str | None = None
    """OAuth client key."""
    oauth_key_file: Path | None = None
    """File holding it."""
    oauth_secret: SecretStr | None = None
    """OAuth client secret."""
    oauth_secret_file: Path | None = None
    """File holding it."""
    # Capillary names it X-CAP-API-OAUTH-TOKEN in places and CAP-API-ACCESS-TOKEN in its overview.
    oauth_header_name: str = Field(default="X-CAP-API-OAUTH-TOKEN", min_length=1)
    """Header carrying the token."""
    token_refresh_margin: float = Field(default=60.0, ge=0)
    """Refresh the token this many seconds before expiry."""

    timeouts: CapillaryTimeouts = CapillaryTimeouts()
    retry: CapillaryRetrySettings = CapillaryRetrySettings()
    rate_limits: CapillaryRateLimits = CapillaryRateLimits()
    pacing: CapillaryPacingSettings = CapillaryPacingSettings()
    # AS_IT_IS gives codes back as they were created, so answers match what we sent.
    coupon_code_case: CouponCodeCase = CouponCodeCase.AS_IT_IS
    """couponCodeCase sent on coupon revokes."""
    http_transport: Literal["aiohttp", "httpx"] = "aiohttp"
    """What carries the requests under httpx: aiohttp's pool (about a third of the CPU a request
    costs), or httpx's own in pools of 8."""
    max_connections: int = Field(default=64, ge=1, le=1000)
    """HTTP connections, and requests in flight at once (the rest wait their turn)."""

    @field_validator("loyalty_base_url", "gateway_base_url", "oauth_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ConfigurationError(
                "Capillary base URL must start with http:// or https://", value=value
            )
        return value.rstrip("/")

    @model_validator(mode="after")
    def _resolve_secrets(self) -> CapillaryConfig:
        if self.username is None and self.username_file is not None:
            self.username = read_secret_file(self.username_file, f"{_PREFIX}USERNAME_FILE")
        if self.password is None and self.password_file is not None:
            self.password = SecretStr(
                read_secret_file(self.password_file, f"{_PREFIX}PASSWORD_FILE")
            )
        if self.oauth_key is None and self.oauth_key_file is not None:
            self.oauth_key = read_secret_file(self.oauth_key_file, f"{_PREFIX}OAUTH_KEY_FILE")
        if self.oauth_secret is None and self.oauth_secret_file is not None:
            self.oauth_secret = SecretStr(
                read_secret_file(self.oauth_secret_file, f"{_PREFIX}OAUTH_SECRET_FILE")
            )
        if self.auth_mode is AuthMode.BASIC:
            _require(self.username, "USERNAME", "basic")
            _require(self.password, "PASSWORD", "basic")
        else:
            _require(self.oauth_key, "OAUTH_KEY", "oauth")
            _require(self.oauth_secret, "OAUTH_SECRET", "oauth")
        return self


def _require(value: str | SecretStr | None, name: str, mode: str) -> None:
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not text:
        raise ConfigurationError(
            f"Capillary auth_mode={mode} needs {_PREFIX}{name} (or {_PREFIX}{name}_FILE)",
            setting=f"{_PREFIX}{name}",
        )
