"""KafkaSettings to aiokafka's connection arguments, and what a failed first connection says.

TLS is exercised for real on loopback (an asyncio TLS server, certificates made by the test);
what needs a Kafka broker (SASL, the clients) is in tests/integration/test_kafka_security.py.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from service.errors import BrokerError, ConfigurationError
from service.kafka.connection import (
    ConnectionOptions,
    check_connection,
    connection_options,
)
from service.settings import KafkaSettings
from tests.certificates import CertificateAuthority, IssuedCertificate, issue_certificate, make_ca

PREFIX = "RETURN_HANDLER_KAFKA__"
SECRET = "pa55-word-never-shown"
KEY_PASSWORD = b"key-pa55"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return make_ca(tmp_path_factory.mktemp("ca"), "unit-ca")


@pytest.fixture(scope="module")
def server_cert(
    ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory
) -> IssuedCertificate:
    return issue_certificate(ca, tmp_path_factory.mktemp("server"), "server")


@pytest.fixture(scope="module")
def client_cert(
    ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory
) -> IssuedCertificate:
    return issue_certificate(
        ca, tmp_path_factory.mktemp("client"), "the-client", key_password=KEY_PASSWORD, server=False
    )


def _common_name(certificate: Any) -> str:
    """The CN of a certificate as the ssl module describes it (nested tuples)."""
    subject = dict(entry[0] for entry in certificate["subject"])
    return str(subject["commonName"])


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _password_file(tmp_path: Path, password: bytes) -> Path:
    path = tmp_path / "key-password"
    path.write_bytes(password + b"\n")
    return path


def test_plaintext_passes_only_the_servers_and_the_protocol() -> None:
    options = connection_options(KafkaSettings(bootstrap_servers="k1:9092,k2:9092"))
    assert options.kwargs() == {
        "bootstrap_servers": "k1:9092,k2:9092",
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_plaintext_passes_the_credentials_and_no_tls() -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="svc",
        sasl_password=SECRET,
    )
    assert connection_options(kafka).kwargs() == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "svc",
        "sasl_plain_password": SECRET,
    }


def test_ssl_passes_a_context_that_checks_the_broker_against_the_ca(
    ca: CertificateAuthority,
) -> None:
    kwargs = connection_options(
        KafkaSettings(security_protocol="SSL", ssl_ca_file=ca.cert_file)
    ).kwargs()
    assert set(kwargs) == {"bootstrap_servers", "security_protocol", "ssl_context"}
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    # Only the CA given: not the system's too.
    assert [_common_name(cert) for cert in context.get_ca_certs()] == ["unit-ca"]


def test_sasl_ssl_passes_both(ca: CertificateAuthority) -> None:
    kwargs = connection_options(
        KafkaSettings(
            security_protocol="SASL_SSL",
            sasl_username="svc",
            sasl_password=SECRET,
            ssl_ca_file=ca.cert_file,
        )
    ).kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_password"] == SECRET
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)


def test_options_never_show_the_password() -> None:
    options = ConnectionOptions(
        bootstrap_servers="k:9092",
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_plain_username="svc",
        sasl_plain_password=SECRET,
    )
    assert SECRET not in repr(options)


@asynccontextmanager
async def _server(handler: Handler, context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def _tls_server_context(
    cert: IssuedCertificate, *, client_ca: CertificateAuthority | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert.cert_file, cert.key_file)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca.cert_file)
    return context


async def test_the_context_presents_the_client_certificate_with_an_encrypted_key(
    ca: CertificateAuthority,
    server_cert: IssuedCertificate,
    client_cert: IssuedCertificate,
    tmp_path: Path,
) -> None:
    kafka = KafkaSettings(
        security_protocol="SSL",
        ssl_ca_file=ca.cert_file,
        ssl_cert_file=client_cert.cert_file,
        ssl_key_file=client_cert.key_file,
        ssl_key_password_file=_password_file(tmp_path, KEY_PASSWORD),
    )
    context = connection_options(kafka).ssl_context
    assert context is not None
    seen: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def record_peer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.set_result(writer.get_extra_info("peercert"))
        writer.close()

    server_context = _tls_server_context(server_cert, client_ca=ca)
    async with _server(record_peer, server_context) as port:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        async with asyncio.timeout(10):
            peer = await seen
        writer.close()
    assert _common_name(peer) == "the-client"


def test_an_encrypted_key_without_its_password_fails_at_once_naming_the_password_file(
    ca: CertificateAuthority, client_cert: IssuedCertificate
) -> None:
    # Without a password callback OpenSSL would ask on the terminal and wait.
    kafka = KafkaSettings(
        security_protocol="SSL",
        ssl_ca_file=ca.cert_file,
        ssl_cert_file=client_cert.cert_file,
        ssl_key_file=client_cert.key_file,
    )
    with pytest.raises(ConfigurationError, match=f"set {PREFIX}SSL_KEY_PASSWORD_FILE"):
        connection_options(kafka)


def test_a_wrong_key_password_names_the_password_file_and_not_the_password(
    ca: CertificateAuthority, client_cert: IssuedCertificate, tmp_path: Path
) -> None:
    kafka = KafkaSettings(
        security_protocol="SSL",
        ssl_ca_file=ca.cert_file,
        ssl_cert_file=client_cert.cert_file,
        ssl_key_file=client_cert.key_file,
        ssl_key_password_file=_password_file(tmp_path, SECRET.encode()),
    )
    with pytest.raises(ConfigurationError, match=f"password in {PREFIX}SSL_KEY_PASSWORD_FILE") as e:
        connection_options(kafka)
    assert SECRET not in str(e.value)


def test_a_key_of_another_certificate_is_named(
    ca: CertificateAuthority, server_cert: IssuedCertificate, tmp_path: Path
) -> None:
    other = issue_certificate(ca, tmp_path, "other")
    kafka = KafkaSettings(
        security_protocol="SSL", ssl_cert_file=server_cert.cert_file, ssl_key_file=other.key_file
    )
    with pytest.raises(ConfigurationError, match="is not the key of the certificate"):
        connection_options(kafka)


def test_a_ca_file_without_a_certificate_names_the_ca_variable(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("this is not a certificate\n")
    with pytest.raises(ConfigurationError, match=f"{PREFIX}SSL_CA_FILE holds no usable PEM"):
        connection_options(KafkaSettings(security_protocol="SSL", ssl_ca_file=not_pem))


async def _hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def test_check_reports_a_server_that_does_not_listen_as_unreachable() -> None:
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    with pytest.raises(BrokerError, match="cannot reach Kafka"):
        await check_connection(kafka, connection_options(kafka))


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL"])
async def test_check_reports_a_hang_up_during_the_handshake_as_the_wrong_protocol(
    protocol: str, ca: CertificateAuthority
) -> None:
    async with _server(_hang_up) as port:
        fields: dict[str, Any] = {"ssl_ca_file": ca.cert_file} if protocol == "SSL" else {}
        kafka = KafkaSettings(
            bootstrap_servers=f"127.0.0.1:{port}", security_protocol=protocol, **fields
        )
        with pytest.raises(ConfigurationError, match=f"set {PREFIX}SECURITY_PROTOCOL to what"):
            await check_connection(kafka, connection_options(kafka))


async def test_check_reports_a_certificate_of_another_ca_against_the_ca_variable(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    stranger = make_ca(tmp_path, "stranger-ca")
    async with _server(
        _hang_up, _tls_server_context(issue_certificate(stranger, tmp_path, "s"))
    ) as port:
        kafka = KafkaSettings(
            bootstrap_servers=f"127.0.0.1:{port}", security_protocol="SSL", ssl_ca_file=ca.cert_file
        )
        with pytest.raises(ConfigurationError, match=f"{PREFIX}SSL_CA_FILE must hold the CA"):
            await check_connection(kafka, connection_options(kafka))


async def test_check_reports_a_certificate_for_another_name_against_the_servers_variable(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    elsewhere = issue_certificate(ca, tmp_path, "elsewhere", names=["kafka.example.org"])
    async with _server(_hang_up, _tls_server_context(elsewhere)) as port:
        kafka = KafkaSettings(
            bootstrap_servers=f"127.0.0.1:{port}", security_protocol="SSL", ssl_ca_file=ca.cert_file
        )
        with pytest.raises(ConfigurationError, match=f"use in {PREFIX}BOOTSTRAP_SERVERS a host"):
            await check_connection(kafka, connection_options(kafka))


async def test_check_names_a_setting_to_fix_before_a_server_that_is_down(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    stranger = make_ca(tmp_path, "stranger-ca")
    async with _server(
        _hang_up, _tls_server_context(issue_certificate(stranger, tmp_path, "s"))
    ) as port:
        kafka = KafkaSettings(
            bootstrap_servers=f"127.0.0.1:{free_port()},127.0.0.1:{port}",
            security_protocol="SSL",
            ssl_ca_file=ca.cert_file,
        )
        with pytest.raises(ConfigurationError, match=f"{PREFIX}SSL_CA_FILE"):
            await check_connection(kafka, connection_options(kafka))


@pytest.mark.parametrize("servers", ["", " , ", "host:port"])
async def test_check_refuses_servers_that_are_not_host_port(servers: str) -> None:
    kafka = KafkaSettings.model_construct(bootstrap_servers=servers)
    with pytest.raises(ConfigurationError, match=f"{PREFIX}BOOTSTRAP_SERVERS must be"):
        await check_connection(kafka, ConnectionOptions(servers, "PLAINTEXT"))
