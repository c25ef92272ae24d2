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
    """The broker, the consumer group and the three topics."""

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
    max_poll_records: int = Field(
        default=200, ge=1, le=10_000, description="Most records taken in one batch."
    )
    max_poll_interval_ms: int = Field(
        default=300_000, ge=10_000, description="Longer than the Capillary retry budget."
    )
    session_timeout_ms: int = Field(
        default=45_000, ge=6_000, description="Heartbeat silence before the group drops us."
    )
    fetch_timeout_ms: int = Field(default=500, ge=10, description="How long one poll waits.")
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest", description="Where a new consumer group starts."
    )


class Settings(BaseSettings):
    """Settings of return-handler. Defaults suit the local broker and sandbox."""

    model_config = SettingsConfigDict(
        env_prefix="RETURN_HANDLER_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
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
