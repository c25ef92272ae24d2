"""How the operator's tools connect to Kafka: one seam for the connection arguments."""

from __future__ import annotations

from typing import Any

from service.settings import KafkaSettings


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """aiokafka's connection arguments for the tools' clients (bootstrap servers, TLS, SASL)."""
    # The security settings (TLS, SASL) arrive with the Kafka security work; they are
    # added here, once, for every tool.
    return {"bootstrap_servers": kafka.bootstrap_servers}


__all__ = ["client_options"]
