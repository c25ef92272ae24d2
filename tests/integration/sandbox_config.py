"""The Capillary settings of a service under test: the sandbox, with its demo credentials."""

from __future__ import annotations

from typing import Any

from capillary_sandbox import Sandbox
from service.capillary.config import CapillaryConfig


def sandbox_capillary(sandbox: Sandbox, **overrides: Any) -> CapillaryConfig:
    """Every Capillary host on ``sandbox``, basic auth as demo/demo, plus ``overrides``."""
    return CapillaryConfig.model_validate(
        {
            "loyalty_base_url": sandbox.base_url,
            "gateway_base_url": sandbox.base_url,
            "oauth_base_url": sandbox.base_url,
            "auth_mode": "basic",
            "username": "demo",
            "password": "demo",
            **overrides,
        }
    )
