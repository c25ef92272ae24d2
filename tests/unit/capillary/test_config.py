"""Capillary settings: defaults, secrets from files, and errors that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.capillary.config import AuthMode, CapillaryConfig, CouponCodeCase
from service.errors import ConfigurationError


def test_config_defaults_are_local_and_conservative() -> None:
    config = CapillaryConfig(username="u", password="p")
    assert config.loyalty_base_url == config.gateway_base_url == "http://127.0.0.1:8765"
    assert config.auth_mode is AuthMode.BASIC
    assert config.coupon_code_case is CouponCodeCase.AS_IT_IS
    assert config.oauth_header_name == "X-CAP-API-OAUTH-TOKEN"
    assert config.rate_limits.loyalty_revoke <= 300
    assert config.retry.total_timeout <= 60
    assert config.timeouts.call_deadline > config.timeouts.read


def test_config_basic_without_password_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="RETURN_HANDLER_CAPILLARY__PASSWORD"):
        CapillaryConfig(username="u")


def test_config_oauth_without_secret_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="RETURN_HANDLER_CAPILLARY__OAUTH_SECRET"):
        CapillaryConfig(auth_mode=AuthMode.OAUTH, oauth_key="k")


def test_config_reads_mounted_secret_files(tmp_path: Path) -> None:
    (tmp_path / "password").write_text("from-file\n")
    (tmp_path / "secret").write_text("s3cret\n")
    config = CapillaryConfig(
        username="u",
        password_file=tmp_path / "password",
        oauth_key="k",
        oauth_secret_file=tmp_path / "secret",
    )
    assert config.password is not None
    assert config.password.get_secret_value() == "from-file"
    assert config.oauth_secret is not None
    assert config.oauth_secret.get_secret_value() == "s3cret"


def test_config_unreadable_secret_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="PASSWORD_FILE"):
        CapillaryConfig(username="u", password_file=tmp_path / "missing")


def test_config_rejects_base_url_without_scheme() -> None:
    with pytest.raises(ConfigurationError, match="http"):
        CapillaryConfig(username="u", password="p", gateway_base_url="eu.api.capillarytech.com")


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RETURN_HANDLER_", env_nested_delimiter="__")
    capillary: CapillaryConfig


def test_config_nests_under_settings_with_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETURN_HANDLER_CAPILLARY__USERNAME", "api")
    monkeypatch.setenv("RETURN_HANDLER_CAPILLARY__PASSWORD", "pw")
    monkeypatch.setenv("RETURN_HANDLER_CAPILLARY__RETRY__ATTEMPTS", "2")
    monkeypatch.setenv("RETURN_HANDLER_CAPILLARY__RATE_LIMITS__COUPON_REVOKE", "100")
    settings = _Settings()
    assert settings.capillary.retry.attempts == 2
    assert settings.capillary.rate_limits.coupon_revoke == 100
    assert "pw" not in repr(settings)
