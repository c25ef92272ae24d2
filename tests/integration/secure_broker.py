"""A throwaway Kafka broker that speaks SASL_SSL with SCRAM-SHA-512, for the security tests.

It runs from the same jars and with the same basics as ``scripts/kafka.sh`` (a single KRaft
node, replication factor 1, no rebalance delay), but with its own state directory, its own
free ports and its own certificates, so it never touches the development broker on 9092.
The SCRAM user is created when the storage is formatted (``--add-scram``), so no admin call
and no authorizer are needed: without an authorizer the user may do everything, transactions
included.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from tests.certificates import issue_certificate, make_ca

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = ROOT / "scripts" / "kafka.sh"
LOG4J_CONFIG = ROOT / "scripts" / "kafka" / "log4j2.yaml"
HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


def free_ports(count: int) -> list[int]:
    """Distinct ports nothing listens on right now (the kernel's picks, all held at once)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def libs_dir() -> Path:
    """The broker jars, where ``scripts/kafka.sh`` keeps them; fetched with Maven if missing."""
    libs = Path(os.environ.get("KAFKA_LIBS_DIR", ROOT / ".cache" / "kafka" / "libs"))
    # kafka.sh decides whether the jars are there and current (its marker holds the pom's
    # hash); asking it keeps that rule in one place. A no-op once fetched.
    fetched = subprocess.run(
        ["bash", str(KAFKA_SH), "fetch"],
        cwd=ROOT,
        env={**os.environ, "KAFKA_LIBS_DIR": str(libs)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if fetched.returncode != 0:
        raise RuntimeError(f"scripts/kafka.sh fetch failed:\n{fetched.stdout}{fetched.stderr}")
    return libs


def _cluster_id() -> str:
    # Kafka's Uuid as text: 16 random bytes, URL-safe base64 without padding. Made here
    # rather than by `StorageTool random-uuid`, which would cost a JVM start.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka refuses ids that look like an option
            return text


class SecureBroker:
    """One KRaft node with a SASL_SSL client listener (SCRAM-SHA-512) on its own ports.

    Inter-broker and controller traffic stay on PLAINTEXT loopback listeners; clients only
    ever learn the SASL_SSL address (metadata answers with the listener asked).
    """

    def __init__(self, home: Path, *, username: str, password: str) -> None:
        self.home = home
        self.username = username
        self.password = password
        self.port, self.internal_port, self.controller_port = free_ports(3)
        self.ca = make_ca(home / "tls", "test-ca")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """The SASL_SSL listener."""
        return f"{HOST}:{self.port}"

    @property
    def server_log(self) -> Path:
        return self.home / "logs" / "server.log"

    def start(self) -> None:
        """Format the storage (with the SCRAM user), start the JVM, wait until it answers."""
        libs = libs_dir()
        properties = self._write_config()
        java = self._java(libs)
        formatted = subprocess.run(
            [
                *java,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                _cluster_id(),
                "-c",
                str(properties),
                "--add-scram",
                f"SCRAM-SHA-512=[name={self.username},password={self.password}]",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if formatted.returncode != 0:
            raise RuntimeError(
                f"formatting the test broker's storage failed:\n{formatted.stdout}"
                f"{formatted.stderr}"
            )
        stdout = (self.home / "logs" / "stdout.log").open("wb")
        self._process = subprocess.Popen(
            [*java, "kafka.Kafka", str(properties)],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C in the terminal running pytest reaches pytest,
            # whose teardown then stops the broker in order.
            start_new_session=True,
        )
        stdout.close()
        self._wait_until_ready()

    def stop(self) -> None:
        """SIGTERM, a bounded wait for Kafka's clean shutdown, then SIGKILL."""
        process = self._process
        if process is None:
            return
        self._process = None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)

    def _java(self, libs: Path) -> list[str]:
        return [
            "java",
            "-Xms256m",
            "-Xmx512m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            f"{libs}/*",
        ]

    def _write_config(self) -> Path:
        tls = self.home / "tls"
        broker = issue_certificate(self.ca, tls, "broker")
        # A PEM keystore is one file: the PKCS#8 key, then the certificate chain. The key is
        # not encrypted: Kafka reads an encrypted one only with a password-based scheme that
        # Java 17 lacks as a SecretKeyFactory (PBES2, what `cryptography` writes).
        keystore = tls / "broker-keystore.pem"
        keystore.write_bytes(broker.key_pem + broker.cert_pem)
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        properties = self.home / "server.properties"
        properties.write_text(
            f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{HOST}:{self.controller_port}
controller.listener.names=CONTROLLER
listeners=SASL_SSL://{HOST}:{self.port},INTERNAL://{HOST}:{self.internal_port},\
CONTROLLER://{HOST}:{self.controller_port}
advertised.listeners=SASL_SSL://{HOST}:{self.port},INTERNAL://{HOST}:{self.internal_port}
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={self.home / "data"}

sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=\
org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location={keystore}

num.partitions=3
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
offsets.topic.num.partitions=5
transaction.state.log.num.partitions=5
group.initial.rebalance.delay.ms=0
"""
        )
        return properties

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        process = self._process
        assert process is not None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the test broker exited during start (code {process.returncode}); "
                    f"log: {self.server_log}\n{self._log_tail()}"
                )
            if _answers(HOST, self.internal_port):
                return
            time.sleep(0.2)  # polling a JVM that has no readiness signal of its own
        self.stop()
        raise RuntimeError(
            f"the test broker did not answer within {START_TIMEOUT_S:.0f} s; "
            f"log: {self.server_log}\n{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.server_log.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return "(no server log)"


def _answers(host: str, port: int) -> bool:
    """True when the broker answers an ApiVersions v0 request (as scripts/kafka.sh checks).

    A KRaft broker binds its ports early but serves requests only once it is unfenced; all
    its listeners start serving together, so the PLAINTEXT one speaks for the SASL_SSL one.
    """
    # size=10 | api_key=18 | api_version=0 | correlation_id=7 | client_id=null
    request = b"\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x07\xff\xff"
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(request)
            reply = b""
            while len(reply) < 10:
                chunk = sock.recv(10 - len(reply))
                if not chunk:
                    return False
                reply += chunk
    except OSError:
        return False
    # size(4) correlation_id(4) error_code(2)
    return reply[4:10] == b"\x00\x00\x00\x07\x00\x00"
