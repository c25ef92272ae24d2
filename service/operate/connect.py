"""How the operator's tools connect to Kafka: one seam for the connection arguments."""

from __future__ import annotations

from typing import Any

from service.pipeline.kafka_connection import connection_options
from service.settings import KafkaSettings


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """aiokafka's connection arguments for the tools' clients (bootstrap servers, TLS, SASL).

    Loads the CA, certificate and key files named by the settings; a command checks the
    first connection once (``kafka_connection.check_connection``) before its clients start.
    """
    return connection_options(kafka).kwargs()


__all__ = ["client_options"]
