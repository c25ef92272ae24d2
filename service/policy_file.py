"""Reading the policy file: the packaged default or the merchant's YAML, parsed by the rules.

The rules stay pure (``service.rules.parse_policy`` takes a mapping); this module does the
I/O and the YAML, for :mod:`service.wiring` and the ``return-handler plan`` command alike.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from service.errors import ConfigurationError
from service.rules import Policy, parse_policy

DEFAULT_POLICY_PACKAGE = "service.rules"
DEFAULT_POLICY_RESOURCE = "default-policy.yaml"


def policy_from_yaml(text: str, source: str) -> Policy:
    """Parse policy YAML; ``source`` names the file in errors."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(
            "the policy file is not valid YAML", file=source, detail=str(exc)
        ) from exc
    if not isinstance(raw, dict):
        raise ConfigurationError("the policy file must be a mapping of keys", file=source)
    return parse_policy(raw, source)


def load_policy(path: Path | None) -> Policy:
    """Load the policy at ``path``, or the packaged default when ``path`` is None."""
    if path is None:
        resource = resources.files(DEFAULT_POLICY_PACKAGE).joinpath(DEFAULT_POLICY_RESOURCE)
        return policy_from_yaml(
            resource.read_text(encoding="utf-8"), f"service/rules/{DEFAULT_POLICY_RESOURCE}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            "the policy file cannot be read", file=str(path), detail=str(exc)
        ) from exc
    return policy_from_yaml(text, str(path))


__all__ = ["load_policy", "policy_from_yaml"]
