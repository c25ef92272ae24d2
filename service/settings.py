"""Every setting of the service, in one pydantic-settings class.

Environment variables carry the prefix ``RETURN_HANDLER_`` and ``__`` between
a group and its field, e.g. ``RETURN_HANDLER_KAFKA__BOOTSTRAP_SERVERS``.
Build a ``Settings()`` where the process starts (the CLI) and pass it down;
nothing reads the environment at import time.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.capillary.config import CapillaryConfig


class KafkaSettings(BaseModel):
    """The broker, the consumer group and the five topics.

    The returns, retry and state topics must have the same number of partitions: partition
    p of each belongs to the same consumer, transaction and state.
    """

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated host:port list."
    )
    client_id: str = Field(default="return-handler", description="Prefix of Kafka client ids.")
    group_id: str = Field(default="return-handler", description="Consumer group of the service.")
    returns_topic: str = Field(default="returns", description="Input: return and refund events.")
    outcomes_topic: str = Field(default="return-outcomes", description="Output: one per event.")
    dead_letter_topic: str = Field(
        default="returns-dead-letter", description="Input messages that are not valid events."
    )
    retry_topic: str = Field(
        default="returns-retry",
        description="Events waiting to be tried again (an open cart); partitioned like returns.",
    )
    state_topic: str = Field(
        default="return-handler-state",
        description="Compacted: what each event id reached; partitioned like returns.",
    )
    group_instance_id: str | None = Field(
        default=None,
        description="Static group membership (the chart sets the pod name): a restarted "
        "instance gets its partitions back at once. Unique per running instance.",
    )
    transactional_id_prefix: str = Field(
        default="return-handler",
        description="Transactional ids are <prefix>-<group>-<partition>: one per input "
        "partition, so a new owner fences the old one.",
    )
    transaction_linger_ms: float = Field(
        default=10.0,
        ge=0,
        le=1000,
        description="How long a partition's next transaction waits for more to carry (start "
        "markers of events in flight, finished work): fewer transactions, less broker work.",
    )
    commit_interval_ms: int = Field(
        default=200, ge=1, le=60_000, description="Most time finished work waits for its commit."
    )
    max_poll_records: int = Field(
        default=200,
        ge=1,
        le=10_000,
        description="Most records one poll returns; at the in-flight bound, the most that wait.",
    )
    max_poll_interval_ms: int = Field(
        default=300_000, ge=10_000, description="Longer than the Capillary retry budget."
    )
    session_timeout_ms: int = Field(
        default=30_000,
        ge=6_000,
        description="Heartbeat silence before the group drops us; with static membership, "
        "how long a crashed instance's partitions wait for it before moving.",
    )
    fetch_timeout_ms: int = Field(default=500, ge=10, description="How long one poll waits.")
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest", description="Where a new consumer group starts."
    )


class ReliabilitySettings(BaseModel):
    """Deduplication, the retry path, pausing on outages and the dead-letter cap."""

    dedupe_window_days: float = Field(
        default=35.0, gt=0, description="How long an event id is remembered."
    )
    retry_max_attempts: int = Field(
        default=5, ge=1, le=100, description="Attempts of an event on the retry path."
    )
    retry_initial_delay_seconds: float = Field(
        default=30.0, ge=0, description="Wait before the first retry; doubles per attempt."
    )
    retry_max_delay_seconds: float = Field(
        default=900.0, ge=0, description="Longest wait between two retries."
    )
    probe_initial_seconds: float = Field(
        default=1.0, gt=0, description="First wait between probes while paused."
    )
    probe_max_seconds: float = Field(
        default=30.0, gt=0, description="Longest wait between probes while paused."
    )
    dead_letter_max_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of a minute's records that may be dead-lettered; beyond it the "
        "service stops.",
    )
    dead_letter_min_count: int = Field(
        default=20, ge=1, description="Dead letters a minute that never trip the cap."
    )


class ConcurrencySettings(BaseModel):
    """Events in flight across customers, and how long bulk calls wait for company."""

    events_in_flight: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Events taken and not finished; at the bound the consumer pauses. 1 "
        "handles one event at a time.",
    )
    linger_ms: float = Field(
        default=5.0,
        ge=0,
        le=10_000,
        description="How long a bulk call waits for other events' items to join it.",
    )


class ObservabilitySettings(BaseModel):
    """The HTTP port (health, readiness, metrics), tracing and the outputs' envelope."""

    host: str = Field(default="0.0.0.0", description="Address the HTTP port listens on.")
    port: int = Field(
        default=8080,
        ge=0,
        le=65_535,
        description="HTTP port of /healthz, /readyz and /metrics; 0 takes any free port "
        "(logged at start).",
    )
    stall_seconds: float = Field(
        default=300.0,
        gt=0,
        description="/healthz fails when the run loop has not turned, or no event in flight "
        "has finished, for this long; longer than a call may wait for an open cart (180 s).",
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP collector for traces, e.g. http://otel-collector:4318; unset: "
        "no export (trace context still goes into the outputs' headers).",
    )
    cloudevents_source: str = Field(
        default="/return-handler",
        min_length=1,
        description="ce_source header of outcomes and dead letters (a URI reference).",
    )


class Settings(BaseSettings):
    """Settings of return-handler. Defaults suit the local broker and sandbox."""

    model_config = SettingsConfigDict(
        env_prefix="RETURN_HANDLER_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    reliability: ReliabilitySettings = Field(default_factory=ReliabilitySettings)
    concurrency: ConcurrencySettings = Field(default_factory=ConcurrencySettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    capillary: CapillaryConfig | None = Field(
        default=None,
        description=(
            "Capillary client settings (RETURN_HANDLER_CAPILLARY__*); `run` needs at least "
            "the credentials of its auth mode."
        ),
    )
    policy_path: Path | None = Field(
        default=None, description="Rules policy YAML; the packaged default when unset."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: console on a terminal, JSON lines otherwise."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Lowest level written."
    )
    shutdown_grace_seconds: float = Field(
        default=30.0, gt=0, description="How long SIGTERM waits for in-flight events."
    )


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
