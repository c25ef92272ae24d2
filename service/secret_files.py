"""Reading settings that point at files: mounted secrets (``*_FILE``), certificates, the policy.

Kubernetes mounts secrets as files, so every secret setting has a ``*_FILE`` twin. Errors
name the environment variable and the path, never what the file holds.
"""

from __future__ import annotations

from pathlib import Path

from service.errors import ConfigurationError


def read_secret_file(path: Path, setting: str) -> str:
    """The secret in ``path`` without surrounding whitespace; ``setting`` names it in errors."""
    try:
        text = _read(path, setting).decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(
            f"the file in {setting} is not UTF-8 text: it should hold the secret alone",
            setting=setting,
            path=str(path),
        ) from None
    # Mounted secrets usually end in a newline that is not part of the secret.
    return text.strip()


def check_readable(path: Path, setting: str) -> None:
    """Raise a :class:`ConfigurationError` naming ``setting`` unless ``path`` can be read."""
    _read(path, setting)


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the file in {setting}: mount it there or correct the path",
            setting=setting,
            path=str(path),
            reason=type(exc).__name__,
        ) from None


__all__ = ["check_readable", "read_secret_file"]
