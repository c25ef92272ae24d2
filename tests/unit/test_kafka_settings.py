"""Kafka security settings: what each protocol needs, files read at start, errors that say what
to fix and never what a secret is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from service.errors import ConfigurationError
from service.settings import KafkaSettings, Settings, setting_errors

PREFIX = "RETURN_HANDLER_KAFKA__"
SECRET = "pa55-word-never-shown"


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    """A readable file; its content does not matter to the settings."""
    path = tmp_path / "some.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return path


def _sasl(**fields: Any) -> KafkaSettings:
    return KafkaSettings(
        security_protocol="SASL_SSL", sasl_username="svc", sasl_password=SECRET, **fields
    )


def test_defaults_are_plaintext_without_credentials() -> None:
    kafka = KafkaSettings()
    assert kafka.security_protocol == "PLAINTEXT"
    assert kafka.sasl_mechanism == "SCRAM-SHA-512"
    assert (kafka.uses_tls, kafka.uses_sasl) == (False, False)
    assert kafka.sasl_username is None
    assert kafka.sasl_password is None
    assert kafka.ssl_key_password is None


@pytest.mark.parametrize(
    ("protocol", "tls", "sasl"),
    [("SSL", True, False), ("SASL_PLAINTEXT", False, True), ("SASL_SSL", True, True)],
)
def test_protocol_says_whether_it_encrypts_and_authenticates(
    protocol: str, tls: bool, sasl: bool
) -> None:
    fields: dict[str, Any] = {"sasl_username": "u", "sasl_password": "p"} if sasl else {}
    kafka = KafkaSettings.model_validate({"security_protocol": protocol, **fields})
    assert (kafka.uses_tls, kafka.uses_sasl) == (tls, sasl)


@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT"])
def test_sasl_without_a_user_names_the_user_variable(protocol: str) -> None:
    with pytest.raises(ConfigurationError, match=f"set {PREFIX}SASL_USERNAME "):
        KafkaSettings.model_validate({"security_protocol": protocol, "sasl_password": SECRET})


def test_sasl_without_a_password_names_the_password_variable() -> None:
    with pytest.raises(ConfigurationError, match=f"set {PREFIX}SASL_PASSWORD "):
        KafkaSettings(security_protocol="SASL_SSL", sasl_username="svc")


def test_sasl_with_an_empty_password_file_is_a_missing_password(tmp_path: Path) -> None:
    empty = tmp_path / "password"
    empty.write_text("\n")
    with pytest.raises(ConfigurationError, match="needs a password"):
        KafkaSettings(security_protocol="SASL_SSL", sasl_username="svc", sasl_password_file=empty)


def test_sasl_user_and_password_come_from_mounted_files(tmp_path: Path) -> None:
    (tmp_path / "user").write_text("svc-from-file\n")
    (tmp_path / "password").write_text(f"{SECRET}\n")
    kafka = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_username_file=tmp_path / "user",
        sasl_password_file=tmp_path / "password",
    )
    assert kafka.sasl_username == "svc-from-file"
    assert kafka.sasl_password is not None
    assert kafka.sasl_password.get_secret_value() == SECRET
    assert kafka.sasl_password_variable == f"{PREFIX}SASL_PASSWORD_FILE"
    assert SECRET not in repr(kafka)
    assert SECRET not in str(kafka.model_dump())


def test_a_password_given_directly_wins_over_its_file_and_is_the_one_to_fix(
    tmp_path: Path,
) -> None:
    (tmp_path / "password").write_text("from-file")
    kafka = _sasl(sasl_password_file=tmp_path / "password")
    assert kafka.sasl_password is not None
    assert kafka.sasl_password.get_secret_value() == SECRET
    assert kafka.sasl_password_variable == f"{PREFIX}SASL_PASSWORD"


def test_an_unreadable_password_file_names_the_file_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=f"{PREFIX}SASL_PASSWORD_FILE") as caught:
        KafkaSettings(
            security_protocol="SASL_SSL",
            sasl_username="svc",
            sasl_password_file=tmp_path / "missing",
        )
    assert "FileNotFoundError" in str(caught.value)


@pytest.mark.parametrize(
    "field", ["ssl_ca_file", "ssl_cert_file", "ssl_key_file", "ssl_key_password_file"]
)
def test_a_missing_tls_file_names_its_variable(field: str, pem: Path, tmp_path: Path) -> None:
    fields: dict[str, Any] = {"ssl_cert_file": pem, "ssl_key_file": pem}
    fields[field] = tmp_path / "missing.pem"
    with pytest.raises(ConfigurationError, match=f"{PREFIX}{field.upper()}"):
        KafkaSettings.model_validate({"security_protocol": "SSL", **fields})


def test_a_directory_is_not_a_readable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=f"cannot read the file in {PREFIX}SSL_CA_FILE"):
        KafkaSettings(security_protocol="SSL", ssl_ca_file=tmp_path)


def test_a_certificate_without_its_key_names_the_key_variable(pem: Path) -> None:
    with pytest.raises(
        ConfigurationError, match=f"{PREFIX}SSL_CERT_FILE is set without {PREFIX}SSL_KEY_FILE"
    ):
        KafkaSettings(security_protocol="SSL", ssl_cert_file=pem)


def test_a_key_without_its_certificate_names_the_certificate_variable(pem: Path) -> None:
    with pytest.raises(
        ConfigurationError, match=f"{PREFIX}SSL_KEY_FILE is set without {PREFIX}SSL_CERT_FILE"
    ):
        KafkaSettings(security_protocol="SSL", ssl_key_file=pem)


def test_a_key_password_without_a_key_is_refused(pem: Path) -> None:
    with pytest.raises(ConfigurationError, match=f"{PREFIX}SSL_KEY_PASSWORD_FILE is set without"):
        KafkaSettings(security_protocol="SSL", ssl_key_password_file=pem)


def test_the_key_password_is_read_from_its_file_and_never_shown(pem: Path, tmp_path: Path) -> None:
    (tmp_path / "key-password").write_text(f"{SECRET}\n")
    kafka = KafkaSettings(
        security_protocol="SSL",
        ssl_cert_file=pem,
        ssl_key_file=pem,
        ssl_key_password_file=tmp_path / "key-password",
    )
    assert kafka.ssl_key_password is not None
    assert kafka.ssl_key_password.get_secret_value() == SECRET
    assert SECRET not in repr(kafka)
    copied = kafka.model_copy(update={"group_id": "other"})
    assert copied.ssl_key_password == kafka.ssl_key_password


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_tls_files_without_tls_name_the_protocol_and_the_file(protocol: str, pem: Path) -> None:
    fields: dict[str, Any] = (
        {"sasl_username": "u", "sasl_password": "p"} if "SASL" in protocol else {}
    )
    with pytest.raises(ConfigurationError) as caught:
        KafkaSettings.model_validate({"security_protocol": protocol, "ssl_ca_file": pem, **fields})
    message = str(caught.value)
    assert f"{PREFIX}SSL_CA_FILE is set but {PREFIX}SECURITY_PROTOCOL={protocol}" in message
    assert "SSL or SASL_SSL" in message


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL"])
def test_sasl_credentials_without_sasl_are_refused_without_showing_them(protocol: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        KafkaSettings.model_validate(
            {"security_protocol": protocol, "sasl_username": "svc", "sasl_password": SECRET}
        )
    message = str(caught.value)
    assert f"{PREFIX}SECURITY_PROTOCOL={protocol} sends no credentials" in message
    assert f"{PREFIX}SASL_PASSWORD" in message
    assert SECRET not in message


def test_a_full_sasl_ssl_configuration_is_accepted(pem: Path, tmp_path: Path) -> None:
    kafka = _sasl(ssl_ca_file=pem, ssl_cert_file=pem, ssl_key_file=pem)
    assert kafka.uses_tls
    assert kafka.uses_sasl
    assert kafka.ssl_ca_file == pem


def test_every_security_variable_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, pem: Path, tmp_path: Path
) -> None:
    (tmp_path / "password").write_text(SECRET)
    (tmp_path / "key-password").write_text("kp")
    env = {
        "SECURITY_PROTOCOL": "SASL_SSL",
        "SASL_MECHANISM": "SCRAM-SHA-256",
        "SASL_USERNAME": "svc",
        "SASL_PASSWORD_FILE": str(tmp_path / "password"),
        "SSL_CA_FILE": str(pem),
        "SSL_CERT_FILE": str(pem),
        "SSL_KEY_FILE": str(pem),
        "SSL_KEY_PASSWORD_FILE": str(tmp_path / "key-password"),
    }
    for name, value in env.items():
        monkeypatch.setenv(f"{PREFIX}{name}", value)
    kafka = Settings().kafka
    assert kafka.security_protocol == "SASL_SSL"
    assert kafka.sasl_mechanism == "SCRAM-SHA-256"
    assert kafka.sasl_username == "svc"
    assert kafka.sasl_password is not None
    assert kafka.sasl_password.get_secret_value() == SECRET
    assert (kafka.ssl_ca_file, kafka.ssl_cert_file, kafka.ssl_key_file) == (pem, pem, pem)
    assert kafka.ssl_key_password is not None


def _errors(monkeypatch: pytest.MonkeyPatch, **env: str) -> list[str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    return setting_errors(caught.value)


def test_setting_errors_name_the_variable_and_show_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = _errors(
        monkeypatch,
        RETURN_HANDLER_KAFKA__SECURITY_PROTOCOL="SASL_TLS",
        RETURN_HANDLER_CAPILLARY__USERNAME="u",
        RETURN_HANDLER_CAPILLARY__PASSWORD="p",
        RETURN_HANDLER_CAPILLARY__TIMEOUTS__READ="soon",
        RETURN_HANDLER_LOG_LEVEL="LOUD",
    )
    assert sorted(lines) == [
        "invalid setting RETURN_HANDLER_CAPILLARY__TIMEOUTS__READ: Input should be a valid "
        "number, unable to parse string as a number (got 'soon')",
        "invalid setting RETURN_HANDLER_KAFKA__SECURITY_PROTOCOL: Input should be 'PLAINTEXT', "
        "'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL' (got 'SASL_TLS')",
        "invalid setting RETURN_HANDLER_LOG_LEVEL: Input should be 'DEBUG', 'INFO', 'WARNING' "
        "or 'ERROR' (got 'LOUD')",
    ]


def test_setting_errors_never_show_a_misspelt_variable_s_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = _errors(
        monkeypatch,
        RETURN_HANDLER_CAPILLARY__USERNAME="u",
        RETURN_HANDLER_CAPILLARY__PASWORD=SECRET,
    )
    assert lines == [
        "invalid setting RETURN_HANDLER_CAPILLARY__PASWORD: Extra inputs are not permitted"
    ]


def test_setting_errors_never_show_a_secret_field_s_value(monkeypatch: pytest.MonkeyPatch) -> None:
    # A SecretStr only fails on its type: a JSON group is the way to hand it a number.
    lines = _errors(
        monkeypatch,
        RETURN_HANDLER_KAFKA='{"sasl_password": 12345}',
    )
    assert lines == [
        "invalid setting RETURN_HANDLER_KAFKA__SASL_PASSWORD: Input should be a valid string"
    ]
