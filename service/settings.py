"""Every setting of the service, in one pydantic-settings class.

Environment variables carry the prefix ``RETURN_HANDLER_`` and ``__`` between
a group and its field, e.g. ``RETURN_HANDLER_KAFKA__BOOTSTRAP_SERVERS``.
Build a ``Settings()`` where the process starts (the CLI) and pass it down;
nothing reads the environment at import time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.capillary.config import CapillaryConfig, Seconds, Share
from service.errors import ConfigurationError
from service.secret_files import check_readable, read_secret_file

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

_KAFKA = "RETURN_HANDLER_KAFKA__"


class KafkaSettings(BaseModel):
    """The broker and how to reach it securely, the consumer group and the six topics.

    The returns, routed, retry and state topics must have the same number of partitions:
    partition p of each belongs to the same consumer, transaction and state. Security settings are
    checked together when the settings are built: credentials without a protocol that sends
    them, TLS files without TLS, a certificate without its key or a file that cannot be read
    each raise a :class:`ConfigurationError` naming the variable.
    """

    model_config = ConfigDict(use_attribute_docstrings=True)

    bootstrap_servers: str = Field(default="127.0.0.1:9092", min_length=1)
    """Comma-separated host:port list."""
    security_protocol: SecurityProtocol = "PLAINTEXT"
    """PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL: what the brokers' listener expects."""
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    """PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL_PLAINTEXT or SASL_SSL)."""
    sasl_username: str | None = None
    """SASL user."""
    sasl_username_file: Path | None = None
    """File holding the user."""
    sasl_password: SecretStr | None = None
    """SASL password."""
    sasl_password_file: Path | None = None
    """File holding it."""
    ssl_ca_file: Path | None = None
    """PEM CA certificate(s) that signed the brokers' certificates (SSL, SASL_SSL); the system's
    CAs when unset."""
    ssl_cert_file: Path | None = None
    """PEM client certificate, for brokers that ask for one; needs SSL_KEY_FILE."""
    ssl_key_file: Path | None = None
    """PEM private key of the client certificate."""
    ssl_key_password_file: Path | None = None
    """File holding the password of an encrypted SSL_KEY_FILE."""
    client_id: str = "return-handler"
    """Prefix of Kafka client ids."""
    group_id: str = "return-handler"
    """Consumer group of the service."""
    returns_topic: str = "returns"
    """Input: return and refund events."""
    outcomes_topic: str = "return-outcomes"
    """Output: one per event."""
    dead_letter_topic: str = "returns-dead-letter"
    """Input messages that are not valid events."""
    routed_topic: str = "returns-routed"
    """Internal: returns moved to their customer key's partition when their producer put them on
    another (CRC32 partitioners, no key); partitioned like returns."""
    retry_topic: str = "returns-retry"
    """Events waiting to be tried again (an open cart); partitioned like returns."""
    state_topic: str = "return-handler-state"
    """Compacted: what each event id reached; partitioned like returns."""
    group_instance_id: str | None = None
    """Static group membership (the chart sets the pod name): a restarted instance gets its
    partitions back at once. Unique per running instance."""
    transactional_id_prefix: str = "return-handler"
    """Transactional ids are <prefix>-<group>-<partition>: one per input partition, so a new
    owner fences the old one."""
    transaction_linger_ms: float = Field(default=10.0, ge=0, le=1000)
    """How long a partition's next transaction waits for more to carry (start markers of events
    in flight, finished work): fewer transactions, less broker work."""
    commit_interval_ms: int = Field(default=200, ge=1, le=60_000)
    """Most time finished work waits for its commit."""
    max_poll_records: int = Field(default=200, ge=1, le=10_000)
    """Most records one poll returns; at the in-flight bound, the most that wait."""
    max_poll_interval_ms: int = Field(default=300_000, ge=10_000)
    """Longer than the Capillary retry budget."""
    session_timeout_ms: int = Field(default=30_000, ge=6_000)
    """Heartbeat silence before the group drops us; with static membership, how long a crashed
    instance's partitions wait for it before moving."""
    fetch_timeout_ms: int = Field(default=500, ge=10)
    """How long one poll waits."""
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    """Where a new consumer group starts."""

    # Read from SSL_KEY_PASSWORD_FILE; a key's password has no variable of its own.
    _ssl_key_password: SecretStr | None = PrivateAttr(default=None)
    _sasl_password_from: str = PrivateAttr(default=f"{_KAFKA}SASL_PASSWORD")

    @property
    def ssl_key_password(self) -> SecretStr | None:
        """The password of the encrypted client key, from ``ssl_key_password_file``."""
        return self._ssl_key_password

    @property
    def sasl_password_variable(self) -> str:
        """The variable the SASL password came from: the one to fix when it is refused."""
        return self._sasl_password_from

    @property
    def uses_sasl(self) -> bool:
        """True when the protocol authenticates with SASL."""
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def uses_tls(self) -> bool:
        """True when the protocol encrypts with TLS."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    @model_validator(mode="after")
    def _check_security(self) -> KafkaSettings:
        protocol = f"{_KAFKA}SECURITY_PROTOCOL={self.security_protocol}"
        tls_files = {
            "SSL_CA_FILE": self.ssl_ca_file,
            "SSL_CERT_FILE": self.ssl_cert_file,
            "SSL_KEY_FILE": self.ssl_key_file,
            "SSL_KEY_PASSWORD_FILE": self.ssl_key_password_file,
        }
        if not self.uses_tls:
            _refuse_unused(tls_files, f"{protocol} does not use TLS", "SSL or SASL_SSL")
        if not self.uses_sasl:
            # Credentials that are never sent would look like authentication that is not there.
            _refuse_unused(
                {
                    "SASL_USERNAME": self.sasl_username,
                    "SASL_USERNAME_FILE": self.sasl_username_file,
                    "SASL_PASSWORD": self.sasl_password,
                    "SASL_PASSWORD_FILE": self.sasl_password_file,
                },
                f"{protocol} sends no credentials",
                "SASL_SSL (or SASL_PLAINTEXT)",
            )
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            given, missing = (
                ("SSL_CERT_FILE", "SSL_KEY_FILE")
                if self.ssl_key_file is None
                else ("SSL_KEY_FILE", "SSL_CERT_FILE")
            )
            raise ConfigurationError(
                f"{_KAFKA}{given} is set without {_KAFKA}{missing}: a client certificate "
                "needs both its certificate and its private key",
                setting=f"{_KAFKA}{missing}",
            )
        if self.ssl_key_password_file is not None and self.ssl_key_file is None:
            raise ConfigurationError(
                f"{_KAFKA}SSL_KEY_PASSWORD_FILE is set without {_KAFKA}SSL_KEY_FILE: set "
                "the key (and SSL_CERT_FILE) or unset the password file",
                setting=f"{_KAFKA}SSL_KEY_FILE",
            )
        for name, path in tls_files.items():
            if path is not None:
                check_readable(path, f"{_KAFKA}{name}")
        if self.ssl_key_password_file is not None:
            self._ssl_key_password = SecretStr(
                read_secret_file(self.ssl_key_password_file, f"{_KAFKA}SSL_KEY_PASSWORD_FILE")
            )
        if self.sasl_username is None and self.sasl_username_file is not None:
            self.sasl_username = read_secret_file(
                self.sasl_username_file, f"{_KAFKA}SASL_USERNAME_FILE"
            )
        if self.sasl_password is None and self.sasl_password_file is not None:
            self.sasl_password = SecretStr(
                read_secret_file(self.sasl_password_file, f"{_KAFKA}SASL_PASSWORD_FILE")
            )
            self._sasl_password_from = f"{_KAFKA}SASL_PASSWORD_FILE"
        if self.uses_sasl:
            if not self.sasl_username:
                raise ConfigurationError(
                    f"{protocol} needs a user: set {_KAFKA}SASL_USERNAME (or "
                    f"{_KAFKA}SASL_USERNAME_FILE)",
                    setting=f"{_KAFKA}SASL_USERNAME",
                )
            if self.sasl_password is None or not self.sasl_password.get_secret_value():
                raise ConfigurationError(
                    f"{protocol} needs a password: set {_KAFKA}SASL_PASSWORD (or "
                    f"{_KAFKA}SASL_PASSWORD_FILE)",
                    setting=f"{_KAFKA}SASL_PASSWORD",
                )
        return self


def _refuse_unused(values: Mapping[str, object], why: str, protocols: str) -> None:
    """Refuse Kafka settings given for a protocol that does not use them, naming them all."""
    given = [name for name, value in values.items() if value is not None]
    if given:
        raise ConfigurationError(
            f"{_KAFKA}{given[0]} is set but {why}: set the protocol to {protocols}, or unset "
            f"{', '.join(_KAFKA + n for n in given)}",
            setting=f"{_KAFKA}SECURITY_PROTOCOL",
        )


class ReliabilitySettings(BaseModel):
    """Deduplication, the retry path, pausing on outages and the dead-letter cap."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    dedupe_window_days: float = Field(default=35.0, gt=0)
    """How long an event id is remembered."""
    retry_max_attempts: int = Field(default=5, ge=1, le=100)
    """Attempts of an event on the retry path."""
    retry_initial_delay_seconds: float = Field(default=30.0, ge=0)
    """Wait before the first retry; doubles per attempt."""
    retry_max_delay_seconds: float = Field(default=900.0, ge=0)
    """Longest wait between two retries."""
    probe_initial_seconds: Seconds = 1.0
    """First wait between probes while paused."""
    probe_max_seconds: Seconds = 30.0
    """Longest wait between probes while paused."""
    dead_letter_max_share: Share = 0.5
    """Share of a minute's records that may be dead-lettered; beyond it the service stops."""
    dead_letter_min_count: int = Field(default=20, ge=1)
    """Dead letters a minute that never trip the cap."""


class ConcurrencySettings(BaseModel):
    """Events in flight across customers, and how long bulk calls wait for company."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    events_in_flight: int = Field(default=1000, ge=1, le=100_000)
    """Events taken and not finished; at the bound the consumer pauses. 1 handles one event at a
    time."""
    linger_ms: float = Field(default=5.0, ge=0, le=10_000)
    """How long a bulk call waits for other events' items to join it."""


class ObservabilitySettings(BaseModel):
    """The HTTP port (health, readiness, metrics, schemas), tracing and the outputs' envelope."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    host: str = "0.0.0.0"
    """Address the HTTP port listens on."""
    port: int = Field(default=8080, ge=0, le=65_535)
    """HTTP port of /healthz, /readyz and /metrics; 0 takes any free port (logged at start)."""
    stall_seconds: Seconds = 300.0
    """/healthz fails when the run loop has not turned, or no event in flight has finished, for
    this long; longer than a call may wait for an open cart (180 s)."""
    otlp_endpoint: str | None = None
    """OTLP/HTTP collector for traces, e.g. http://otel-collector:4318; unset: no export (trace
    context still goes into the outputs' headers)."""
    cloudevents_source: str | None = Field(default=None, min_length=1)
    """ce_source header of outcomes and dead letters (a URI reference); unset:
    /return-handler/{Kafka cluster id}/{group id}, so no two deployments share one."""
    schemas_url: str | None = None
    """Base URL where consumers fetch the published schemas; an outcome's ce_dataschema is it
    plus outcome-event.v1.json. Unset: http://{host name}:{port}/schemas/, served by the
    service itself."""
    created_series: bool = False
    """Also export the creation-time series (names ending in _created) of every counter and
    histogram; off, as they double those series for a value rarely used."""

    @field_validator("schemas_url")
    @classmethod
    def _absolute_base(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if not parts.scheme or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(
                "must be an absolute URL without query or fragment, the folder holding "
                "outcome-event.v1.json, e.g. https://schemas.example.com/return-handler/"
            )
        # A base without its slash would lose its last segment when a file name is joined on.
        return url if url.endswith("/") else url + "/"


class Settings(BaseSettings):
    """Settings of return-handler. Defaults suit the local broker and sandbox."""

    model_config = SettingsConfigDict(
        env_prefix="RETURN_HANDLER_",
        env_nested_delimiter="__",
        extra="ignore",
        use_attribute_docstrings=True,
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    reliability: ReliabilitySettings = Field(default_factory=ReliabilitySettings)
    concurrency: ConcurrencySettings = Field(default_factory=ConcurrencySettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    capillary: CapillaryConfig | None = None
    """Capillary client settings (RETURN_HANDLER_CAPILLARY__*); `run` needs at least the
    credentials of its auth mode."""
    policy_path: Path | None = None
    """Rules policy YAML; the packaged default when unset."""
    log_format: Literal["auto", "json", "console"] = "auto"
    """auto: console on a terminal, JSON lines otherwise."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Lowest level written."""
    shutdown_grace_seconds: Seconds = 30.0
    """How long SIGTERM waits for in-flight events."""


def describe_settings() -> list[tuple[str, str, str]]:
    """Every setting as (environment variable, default, description), nested groups flattened."""
    rows: list[tuple[str, str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            env = f"{prefix}{name.upper()}"
            annotation = _model_in(field.annotation)
            if annotation is not None:
                walk(annotation, f"{env}__")
                continue
            default = field.get_default(call_default_factory=True)
            shown = "(unset)" if default is None else _show(default)
            rows.append((env, shown, (field.description or "").replace("\n", " ")))

    walk(Settings, "RETURN_HANDLER_")
    return rows


def setting_errors(exc: ValidationError) -> list[str]:
    """One line per bad setting: its variable, pydantic's message, and the value unless secret.

    ``invalid setting RETURN_HANDLER_KAFKA__SESSION_TIMEOUT_MS: Input should be greater than
    or equal to 6000 (got '5')``. Values of secret fields, of unknown variables (a misspelt
    password variable is still a password) and of whole groups are never shown.
    """
    lines = []
    for error in exc.errors(include_url=False):
        unknown = error["type"] == "extra_forbidden"
        env, secret = _variable_of(error["loc"], unknown=unknown)
        given = error.get("input")
        shown = not (secret or unknown) and isinstance(given, str | int | float | bool)
        lines.append(
            f"invalid setting {env}: {error['msg']}" + (f" (got {given!r})" if shown else "")
        )
    return lines


def _variable_of(loc: tuple[int | str, ...], *, unknown: bool) -> tuple[str, bool]:
    """The environment variable of an error location, and whether its field is a secret."""
    parts: list[str] = []
    model: type[BaseModel] | None = Settings
    secret = False
    for part in loc:
        fields = model.model_fields if model is not None else {}
        field = fields.get(part) if isinstance(part, str) else None
        if field is None:
            if unknown:  # the variable as it was spelt
                parts.append(str(part).upper())
            break
        parts.append(str(part).upper())
        secret = SecretStr in (get_args(field.annotation) or (field.annotation,))
        model = _model_in(field.annotation)
    return "RETURN_HANDLER_" + "__".join(parts), secret


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The settings group in an annotation such as ``Group`` or ``Group | None``."""
    candidates = get_args(annotation) or (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _show(value: object) -> str:
    if isinstance(value, SecretStr):
        return "(secret)" if value.get_secret_value() else "(empty)"
    if isinstance(value, StrEnum):
        return str(value.value)
    if isinstance(value, dict | list):
        return json.dumps(value, default=str) if value else "(none)"
    return str(value)
