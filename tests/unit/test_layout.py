"""The product package stays free of the development tools beside it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


# aiohttp carries httpx's requests and serves the health and metrics port; nowhere else.
_AIOHTTP_USERS = {"service/capillary/transport.py", "service/observe/http.py"}


def test_service_package_never_imports_the_sandbox_and_aiohttp_only_in_its_transport() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            name
            for name in _imported_modules(path)
            if name.split(".")[0] == "capillary_sandbox"
            or (
                name.split(".")[0] in ("aiohttp", "prometheus_client.aiohttp")
                and str(path.relative_to(ROOT)) not in _AIOHTTP_USERS
            )
        )
        for path in (ROOT / "service").rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_sandbox_never_imports_the_service() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "capillary_sandbox").rglob("*.py")
        if any(name.split(".")[0] == "service" for name in _imported_modules(path))
    ]
    assert offenders == []


def test_image_builds_from_the_service_package_alone() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    copies = [line.split()[1:] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    copied = {src for args in copies for src in args[:-1] if not src.startswith("--")}
    assert copied == {"pyproject.toml", "README.md", "service"}
