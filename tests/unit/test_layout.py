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


def test_only_the_kafka_package_imports_aiokafka() -> None:
    kafka = ROOT / "service" / "kafka"
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            name for name in _imported_modules(path) if name.split(".")[0] == "aiokafka"
        )
        for path in (ROOT / "service").rglob("*.py")
        if kafka not in path.parents
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_pipeline_docstring_lists_every_module_once() -> None:
    import service.pipeline

    listed = [
        name.strip("` ")
        for line in (service.pipeline.__doc__ or "").splitlines()
        if line.startswith("- ``")
        for name in line[2:].split(":")[0].split(",")
    ]
    modules = sorted(
        p.stem for p in (ROOT / "service" / "pipeline").glob("*.py") if p.stem != "__init__"
    )
    assert sorted(listed) == modules


# The Capillary surface (families, limits, the call loop, client and coalescer) is written
# in service/capillary/ only; the pipeline calls it through CapillaryApi.
_CAPILLARY_INSIDES = {"cart", "call", "client", "coalesce", "coupons", "deactivate", "limits"}
_CAPILLARY_INSIDES |= {"loyalty", "judge", "transport"}


def test_the_pipeline_reaches_capillary_through_its_api_only() -> None:
    offenders: dict[str, list[str]] = {}
    for path in (ROOT / "service" / "pipeline").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            inside = [
                name
                for name in names
                if name.startswith("service.capillary.")
                and name.split(".")[2] in _CAPILLARY_INSIDES
            ]
            offenders.setdefault(str(path.relative_to(ROOT)), []).extend(inside)
    assert {path: names for path, names in offenders.items() if names} == {}
