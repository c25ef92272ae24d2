"""The lock files pin what pyproject.toml asks for, and make's .venv is exactly the dev lock.

Offline: `make lock-check` compiles the locks again (that asks the package index); these
tests catch the usual slip, a requirement added or re-bounded without `make lock`, without it.
"""

from __future__ import annotations

import importlib.metadata
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
DEV_LOCK = ROOT / "requirements" / "dev.lock.txt"
SERVICE_LOCK = ROOT / "requirements" / "service.lock.txt"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
RUNTIME = [Requirement(line) for line in PROJECT["dependencies"]]
EXTRAS = {
    extra: [Requirement(line) for line in lines]
    for extra, lines in PROJECT["optional-dependencies"].items()
}
# What `python -m venv` and pip bring into a venv themselves; the lock pins none of them.
INSTALLERS = {"pip", "setuptools", "wheel"}


@dataclass(frozen=True)
class Pin:
    name: NormalizedName
    version: Version
    marker: Marker | None

    def applies_here(self) -> bool:
        return self.marker is None or self.marker.evaluate({"extra": ""})


def _pins(lock: Path) -> list[Pin]:
    """`name==version [; markers] \\` lines; hashes and comments are indented or start with #."""
    pins = []
    for line in lock.read_text(encoding="utf-8").splitlines():
        if not line or line[0] in " \t#-":
            continue
        requirement = Requirement(line.rstrip(" \\"))
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{lock.name}: not a pin: {line}"
        pins.append(
            Pin(canonicalize_name(requirement.name), Version(specifier.version), requirement.marker)
        )
    return pins


def _by_name(pins: list[Pin]) -> dict[NormalizedName, list[Pin]]:
    by_name: dict[NormalizedName, list[Pin]] = {}
    for pin in pins:
        by_name.setdefault(pin.name, []).append(pin)
    return by_name


def _unpinned_or_out_of_bounds(requirements: list[Requirement], lock: Path) -> list[str]:
    pinned = _by_name(_pins(lock))
    problems = []
    for requirement in requirements:
        pins = pinned.get(canonicalize_name(requirement.name), [])
        if not pins:
            problems.append(f"{requirement}: not in {lock.name}")
        problems += [
            f"{requirement}: {lock.name} pins {pin.version}"
            for pin in pins
            if not requirement.specifier.contains(pin.version, prereleases=True)
        ]
    return problems


def test_every_runtime_requirement_is_pinned_in_both_locks_within_its_bounds() -> None:
    problems = _unpinned_or_out_of_bounds(RUNTIME, SERVICE_LOCK)
    problems += _unpinned_or_out_of_bounds(RUNTIME, DEV_LOCK)
    assert problems == [], "run `make lock` and commit requirements/"


def test_every_extra_requirement_is_pinned_in_the_dev_lock_within_its_bounds() -> None:
    problems = [
        problem
        for requirements in EXTRAS.values()
        for problem in _unpinned_or_out_of_bounds(requirements, DEV_LOCK)
    ]
    assert problems == [], "run `make lock` and commit requirements/"


def test_every_requirement_has_an_upper_bound() -> None:
    unbounded = [
        str(requirement)
        for requirement in RUNTIME + [r for rs in EXTRAS.values() for r in rs]
        if not any(spec.operator in {"<", "<=", "==", "~="} for spec in requirement.specifier)
    ]
    assert unbounded == [], "bound each below the next release that would break us"


def test_the_image_runs_the_versions_the_tests_ran() -> None:
    dev = _by_name(_pins(DEV_LOCK))
    differing = [
        f"{pin.name}=={pin.version}"
        for pin in _pins(SERVICE_LOCK)
        if pin.version not in {other.version for other in dev.get(pin.name, [])}
    ]
    assert differing == [], "the service lock is compiled with the dev lock as constraints"


def test_the_service_lock_holds_no_development_tool() -> None:
    runtime = {canonicalize_name(r.name) for r in RUNTIME}
    dev_only = {canonicalize_name(r.name) for rs in EXTRAS.values() for r in rs} - runtime
    in_image = {pin.name for pin in _pins(SERVICE_LOCK)}
    assert sorted(dev_only & in_image) == []


@pytest.mark.skipif(
    Path(sys.prefix).resolve() != (ROOT / ".venv").resolve(),
    reason="about the .venv that make builds; this is another environment",
)
def test_this_venv_holds_exactly_the_dev_lock() -> None:
    expected = {pin.name: str(pin.version) for pin in _pins(DEV_LOCK) if pin.applies_here()}
    installed = {
        canonicalize_name(dist.metadata["Name"]): dist.version
        for dist in importlib.metadata.distributions()
    }
    assert installed.pop(canonicalize_name(PROJECT["name"]), None) == PROJECT["version"]
    for name in INSTALLERS - expected.keys():
        installed.pop(canonicalize_name(name), None)
    missing = sorted(f"{n}=={v}" for n, v in expected.items() if installed.get(n) != v)
    extra = sorted(f"{n}=={v}" for n, v in installed.items() if expected.get(n) != v)
    assert (missing, extra) == ([], []), "(lock, venv) differ: `make venv` rebuilds .venv"
