"""How every Kafka client of the service connects: TLS, SASL, and a first connection that
says what is wrong.

Every ``AIOKafkaConsumer``, ``AIOKafkaProducer`` and ``AIOKafkaAdminClient`` of the service
and of its tools is built from :func:`connection_options`, so the security settings are
turned into aiokafka's arguments in this one place.

Why a connection check of our own: aiokafka's clients swallow the reason their first
connection failed. ``AIOKafkaClient.bootstrap`` (aiokafka 0.14) logs the error and raises a
bare ``KafkaConnectionError("Unable to bootstrap from ...")``, so a wrong password, a CA
that did not sign the broker's certificate and a broker that is down all look alike.
:func:`check_connection` opens one connection the way the clients do (aiokafka's own
``AIOKafkaConnection``: TLS handshake, ApiVersions, SASL authentication, then a metadata
request), where each of those surfaces as itself: ``SaslAuthenticationFailed``,
``ssl.SSLCertVerificationError``, ``ConnectionRefusedError``. Its metadata answer also names
the cluster (its id), which the clients' answers are not kept for: the outputs' default
CloudEvents source is made from it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.conn import AIOKafkaConnection, collect_hosts
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.metadata import MetadataRequest

from service.errors import BrokerError, ConfigurationError, ReturnHandlerError
from service.settings import KafkaSettings

_KAFKA = "RETURN_HANDLER_KAFKA__"
CHECK_TIMEOUT_SECONDS = 10.0
"""How long the first connection to one bootstrap server may take, TLS and SASL included."""

_CLOSE_TIMEOUT_SECONDS = 2.0

# OpenSSL's verify codes for a certificate that is valid but names another host.
_NAME_MISMATCH = {62, 63, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, _EMAIL_, _IP_ADDRESS_MISMATCH


@dataclass(frozen=True)
class ConnectionOptions:
    """aiokafka's connection arguments for one :class:`KafkaSettings`; the password unshown."""

    bootstrap_servers: str
    security_protocol: str
    ssl_context: ssl.SSLContext | None = None
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = field(default=None, repr=False)

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AIOKafkaConsumer``, ``AIOKafkaProducer``, the admin client."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.ssl_context is not None:
            kwargs["ssl_context"] = self.ssl_context
        if self.sasl_mechanism is not None:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_plain_username
            kwargs["sasl_plain_password"] = self.sasl_plain_password
        return kwargs


def connection_options(kafka: KafkaSettings) -> ConnectionOptions:
    """The connection arguments of ``kafka``; loads the CA, certificate and key files.

    Raises :class:`ConfigurationError` naming the variable when a file holds no usable PEM.
    """
    username = password = mechanism = None
    if kafka.uses_sasl:
        # The settings refuse a SASL protocol without both; this keeps mypy and us honest.
        if kafka.sasl_username is None or kafka.sasl_password is None:
            raise ConfigurationError(
                f"{kafka.security_protocol} needs {_KAFKA}SASL_USERNAME and {_KAFKA}SASL_PASSWORD",
                setting=f"{_KAFKA}SASL_PASSWORD",
            )
        mechanism = kafka.sasl_mechanism
        username = kafka.sasl_username
        password = kafka.sasl_password.get_secret_value()
    return ConnectionOptions(
        bootstrap_servers=kafka.bootstrap_servers,
        security_protocol=kafka.security_protocol,
        ssl_context=ssl_context(kafka) if kafka.uses_tls else None,
        sasl_mechanism=mechanism,
        sasl_plain_username=username,
        sasl_plain_password=password,
    )


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext:
    """A client TLS context: the CA file (else the system's CAs), the client certificate if any.

    Host names are always checked (aiokafka's helper insists), so the names in
    ``BOOTSTRAP_SERVERS`` must be in the brokers' certificates.
    """
    ca = kafka.ssl_ca_file
    try:
        context: ssl.SSLContext = create_ssl_context(cafile=str(ca) if ca is not None else None)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigurationError(
            f"{_KAFKA}SSL_CA_FILE holds no usable PEM certificate: point it at the CA "
            "certificate (PEM) that signed the brokers' certificates",
            setting=f"{_KAFKA}SSL_CA_FILE",
            path=str(ca),
            reason=_reason(exc),
        ) from None
    cert, key = kafka.ssl_cert_file, kafka.ssl_key_file
    if cert is None or key is None:
        return context
    key_password = kafka.ssl_key_password
    try:
        context.load_cert_chain(
            str(cert),
            str(key),
            # Without a password callback OpenSSL would prompt on the terminal for an
            # encrypted key and wait; an empty answer makes it fail instead.
            key_password.get_secret_value() if key_password is not None else _no_password,
        )
    except (ssl.SSLError, OSError) as exc:
        raise _key_error(exc, has_password=key_password is not None) from None
    return context


def _no_password() -> str:
    return ""


def _key_error(exc: OSError, *, has_password: bool) -> ConfigurationError:
    reason = _reason(exc)
    if reason == "KEY_VALUES_MISMATCH":
        return ConfigurationError(
            f"the key in {_KAFKA}SSL_KEY_FILE is not the key of the certificate in "
            f"{_KAFKA}SSL_CERT_FILE: mount the matching pair",
            setting=f"{_KAFKA}SSL_KEY_FILE",
        )
    if has_password:
        return ConfigurationError(
            f"cannot load {_KAFKA}SSL_CERT_FILE and {_KAFKA}SSL_KEY_FILE with the password "
            f"in {_KAFKA}SSL_KEY_PASSWORD_FILE: check that it is the key's password and that "
            "both files are PEM",
            setting=f"{_KAFKA}SSL_KEY_PASSWORD_FILE",
            reason=reason,
        )
    return ConfigurationError(
        f"cannot load {_KAFKA}SSL_CERT_FILE and {_KAFKA}SSL_KEY_FILE: both must be PEM; if "
        f"the key is encrypted, set {_KAFKA}SSL_KEY_PASSWORD_FILE",
        setting=f"{_KAFKA}SSL_KEY_FILE",
        reason=reason,
    )


def _reason(exc: OSError) -> str:
    return str(getattr(exc, "reason", None) or type(exc).__name__)


async def check_connection(kafka: KafkaSettings, options: ConnectionOptions) -> str | None:
    """Connect to the bootstrap servers as the clients will; raise what to fix if none answers.

    Succeeds as soon as one bootstrap server completes TLS, SASL and a metadata request, and
    returns the cluster id that answer names (``None`` from brokers before Kafka 0.10.1).
    Otherwise raises a :class:`ConfigurationError` naming the setting to fix (password, CA,
    protocol, mechanism, server names) or, when no server could be reached at all, a
    :class:`BrokerError`.
    """
    try:
        hosts = [entry for entry in collect_hosts(kafka.bootstrap_servers) if entry[0]]
    except ValueError:  # a port that is not a number
        hosts = []
    if not hosts:
        raise ConfigurationError(
            f"{_KAFKA}BOOTSTRAP_SERVERS must be a comma-separated list of host:port",
            setting=f"{_KAFKA}BOOTSTRAP_SERVERS",
        )
    problems: list[ReturnHandlerError] = []
    for host, port, _ in hosts:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                return await _connect(host, port, options)
        except (OSError, KafkaError, TimeoutError) as exc:
            problems.append(_explain(exc, f"{host}:{port}", kafka))
    # A setting to fix matters more than a server that is down: name it first.
    raise next((p for p in problems if isinstance(p, ConfigurationError)), problems[0])


async def _connect(host: str, port: int, options: ConnectionOptions) -> str | None:
    # What aiokafka.conn.create_conn does, but keeping the connection when connect() fails:
    # after a refused SASL login the socket is still closing, and a process that exits
    # then reports an unclosed transport.
    connection = AIOKafkaConnection(
        host,
        port,
        client_id="return-handler-connection-check",
        request_timeout_ms=int(CHECK_TIMEOUT_SECONDS * 1000),
        security_protocol=options.security_protocol,
        ssl_context=options.ssl_context,
        sasl_mechanism=options.sasl_mechanism,
        sasl_plain_username=options.sasl_plain_username,
        sasl_plain_password=options.sasl_plain_password,
    )
    try:
        await connection.connect()
        # A listener that wants SASL answers ApiVersions to anyone and hangs up only on
        # the next request: ask what the clients' bootstrap asks.
        metadata = await connection.send(MetadataRequest([]))
        # Metadata v0 and v1 have no cluster_id; aiokafka negotiates v2 or later with any
        # broker since 0.10.1.
        cluster_id = getattr(metadata, "cluster_id", None)
        return cluster_id if isinstance(cluster_id, str) and cluster_id else None
    finally:
        closed = connection.close()
        # Resolved when the transport is gone; no transport was made if the TCP or TLS
        # connection failed, and then there is nothing to wait for. (_protocol is private:
        # aiokafka is pinned below 0.15, and no public attribute says it.)
        if connection._protocol is not None:
            await asyncio.wait([closed], timeout=_CLOSE_TIMEOUT_SECONDS)


def _explain(exc: BaseException, server: str, kafka: KafkaSettings) -> ReturnHandlerError:
    """The error to report for one failed first connection, naming the setting to fix."""
    protocol = f"{_KAFKA}SECURITY_PROTOCOL={kafka.security_protocol}"
    if isinstance(exc, SaslAuthenticationFailed):
        # Kafka answers a wrong password and an unknown user alike.
        password = kafka.sasl_password_variable
        user = f"{_KAFKA}SASL_USERNAME{'_FILE' if kafka.sasl_username_file else ''}"
        return ConfigurationError(
            f"Kafka at {server} refused the SASL credentials ({kafka.sasl_mechanism}): set "
            f"{password} to the password of the user in {user}, or correct the user",
            setting=password,
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return ConfigurationError(
            f"Kafka at {server} does not offer {_KAFKA}SASL_MECHANISM={kafka.sasl_mechanism}: "
            "set it to one the listener enables",
            setting=f"{_KAFKA}SASL_MECHANISM",
            detail=str(exc),
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        if exc.verify_code in _NAME_MISMATCH:
            return ConfigurationError(
                f"the certificate of Kafka at {server} is not for that name: use in "
                f"{_KAFKA}BOOTSTRAP_SERVERS a host name the brokers' certificates list",
                setting=f"{_KAFKA}BOOTSTRAP_SERVERS",
                detail=exc.verify_message,
            )
        if kafka.ssl_ca_file is None:
            fix = f"set {_KAFKA}SSL_CA_FILE to the CA certificate (PEM) that signed it"
        else:
            fix = f"{_KAFKA}SSL_CA_FILE must hold the CA certificate (PEM) that signed it"
        return ConfigurationError(
            f"the certificate of Kafka at {server} was not accepted: {fix}",
            setting=f"{_KAFKA}SSL_CA_FILE",
            detail=exc.verify_message,
        )
    if isinstance(exc, ssl.SSLError):
        return ConfigurationError(
            f"the TLS handshake with Kafka at {server} failed: check that its listener "
            f"speaks TLS ({protocol}), and {_KAFKA}SSL_CERT_FILE / SSL_KEY_FILE if it asks for "
            "a client certificate",
            setting=f"{_KAFKA}SECURITY_PROTOCOL",
            reason=_reason(exc),
        )
    if isinstance(exc, KafkaConnectionError | IllegalSaslStateError) or (
        isinstance(exc, ConnectionError) and not isinstance(exc, ConnectionRefusedError)
    ):
        # The TCP connection was made, then the listener hung up on what we said to it (or
        # answered a SASL handshake with "not now": it has no SASL).
        return ConfigurationError(
            f"Kafka at {server} broke off the {kafka.security_protocol} handshake: set "
            f"{_KAFKA}SECURITY_PROTOCOL to what its listener expects (PLAINTEXT, SSL, "
            "SASL_PLAINTEXT or SASL_SSL)",
            setting=f"{_KAFKA}SECURITY_PROTOCOL",
        )
    if isinstance(exc, KafkaError):
        return BrokerError("Kafka refused the first request", server=server, error=repr(exc))
    return BrokerError("cannot reach Kafka", server=server, reason=_reason_of(exc))


def _reason_of(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT_SECONDS:.0f} s"
    return str(exc) or type(exc).__name__


__all__ = ["ConnectionOptions", "check_connection", "connection_options", "ssl_context"]


async def checked_connection(kafka: KafkaSettings) -> ConnectionOptions:
    """The clients' connection options, once a first connection showed they work: a wrong
    address, password or CA is named at once instead of the clients' bare "Unable to
    bootstrap"."""
    options = connection_options(kafka)
    await check_connection(kafka, options)
    return options


def committed_reader(options: Mapping[str, Any], *topics: str, **extra: Any) -> AIOKafkaConsumer:
    """A consumer without a group that reads committed records only, from the start of a
    partition it has no position in: how the tools read a topic (``extra``: aiokafka's
    other arguments)."""
    return AIOKafkaConsumer(
        *topics,
        **options,
        **extra,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )


async def start_client(
    start: Callable[[], Awaitable[None]],
    close: Callable[[], Awaitable[None]],
    message: str = "cannot reach Kafka",
    **context: Any,
) -> None:
    """Start an aiokafka client; one that cannot reach Kafka is closed again and raises
    :class:`BrokerError` (``message``, with ``context``)."""
    try:
        await start()
    except KafkaError as exc:
        await close()
        raise BrokerError(message, **context) from exc
