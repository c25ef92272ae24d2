"""How the operator's tools connect to Kafka: one seam for the connection arguments."""

from __future__ import annotations

from typing import Any

from service.kafka.connection import checked_connection, connection_options
from service.settings import KafkaSettings


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """aiokafka's connection arguments for the tools' clients (bootstrap servers, TLS, SASL).

    Loads the CA, certificate and key files named by the settings; a command checks the
    first connection once (``service.kafka.connection.check_connection``) before its clients start.
    """
    return connection_options(kafka).kwargs()


async def checked_options(kafka: KafkaSettings) -> dict[str, Any]:
    """:func:`client_options`, once a first connection showed they work: a wrong address,
    password or CA is named at once instead of the clients' bare "Unable to bootstrap"."""
    return (await checked_connection(kafka)).kwargs()


__all__ = ["checked_options", "client_options"]
