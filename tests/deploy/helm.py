"""Running the pinned helm on the chart, for the tests in this folder.

helm is the one `scripts/lint-deploy.sh` builds into .cache/tools/bin (make test runs that
script before pytest); a helm on PATH will do when that one is missing. Without either the
tests fail, never skip: a skipped chart suite looks green while proving nothing.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "return-handler"
CI_VALUES = CHART / "ci" / "ci-values.yaml"
VALUES_DIR = Path(__file__).resolve().parent / "values"
RELEASE = "returns"
NAMESPACE = "returns"
FULLNAME = "returns-return-handler"

Manifest = dict[str, Any]


@functools.cache
def helm_binary() -> str:
    """The helm to run; fails the test when there is none."""
    pinned = ROOT / ".cache" / "tools" / "bin" / "helm"
    if pinned.is_file():
        return str(pinned)
    on_path = shutil.which("helm")
    if on_path:
        return on_path
    pytest.fail(
        f"helm is missing (neither {pinned.relative_to(ROOT)} nor on PATH): "
        "run bash scripts/lint-deploy.sh, which builds it once",
        pytrace=False,
    )


def values_file(name: str) -> Path:
    """One of the value sets in tests/deploy/values/, by file stem."""
    path = VALUES_DIR / f"{name}.yaml"
    assert path.is_file(), path
    return path


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm_binary(), *args], capture_output=True, text=True, timeout=60, check=False
    )


def _value_args(values: Sequence[Path], sets: Sequence[str]) -> list[str]:
    args: list[str] = []
    for path in values:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    return args


@functools.cache
def _template(
    chart: Path, values: tuple[Path, ...], sets: tuple[str, ...], *extra: str
) -> tuple[int, str]:
    done = run_helm(
        "template",
        RELEASE,
        str(chart),
        "--namespace",
        NAMESPACE,
        *_value_args(values, sets),
        *extra,
    )
    return done.returncode, done.stdout if done.returncode == 0 else done.stderr


def render(values: Sequence[Path] = (), sets: Sequence[str] = ()) -> list[Manifest]:
    """The chart's objects with the CI values, then ``values`` files, then ``--set`` items."""
    code, out = _template(CHART, (CI_VALUES, *values), tuple(sets))
    assert code == 0, f"helm template failed:\n{out}"
    return [doc for doc in yaml.safe_load_all(out) if doc]


def render_error(values: Sequence[Path] = (), sets: Sequence[str] = ()) -> str:
    """helm template's error message, for values the chart must refuse."""
    code, out = _template(CHART, (CI_VALUES, *values), tuple(sets))
    assert code != 0, "helm template accepted values it should refuse"
    return out


def lint(values: Sequence[Path]) -> subprocess.CompletedProcess[str]:
    """``helm lint --strict`` with exactly these values files (no CI values unless given)."""
    return run_helm("lint", "--strict", str(CHART), *_value_args(values, ()))


@functools.cache
def _notes_chart() -> Path:
    """A copy of the chart whose NOTES.txt also renders as a manifest.

    ``helm template`` never renders NOTES.txt and ``helm install --dry-run`` needs a cluster,
    so the copy wraps the same file in a named template that a one-line manifest includes.
    """
    workdir = tempfile.mkdtemp(prefix="chart-notes-")
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    copy = Path(workdir) / CHART.name
    shutil.copytree(CHART, copy)
    templates = copy / "templates"
    notes = (templates / "NOTES.txt").read_text(encoding="utf-8")
    (templates / "_notes_for_tests.tpl").write_text(
        '{{- define "tests.notes" -}}\n' + notes + "{{- end }}\n", encoding="utf-8"
    )
    (templates / "notes-for-tests.yaml").write_text(
        'notes: {{ include "tests.notes" . | toJson }}\n', encoding="utf-8"
    )
    return copy


def render_notes(
    values: Sequence[Path] = (), sets: Sequence[str] = (), *, skip_schema: bool = False
) -> str:
    """NOTES.txt as helm install would print it, with the CI values first.

    ``skip_schema`` renders as ``helm install --skip-schema-validation`` would.
    """
    extra = ["--show-only=templates/notes-for-tests.yaml"]
    if skip_schema:
        extra.append("--skip-schema-validation")
    code, out = _template(_notes_chart(), (CI_VALUES, *values), tuple(sets), *extra)
    assert code == 0, f"helm template failed:\n{out}"
    notes = yaml.safe_load(out)["notes"]
    assert isinstance(notes, str)
    return notes


def find(manifests: list[Manifest], kind: str, name: str = FULLNAME) -> Manifest:
    """The one object of ``kind`` named ``name``."""
    matches = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind} {name}: {len(matches)} rendered"
    return matches[0]


def kinds(manifests: list[Manifest]) -> set[str]:
    return {m["kind"] for m in manifests}


def container(manifests: list[Manifest]) -> Manifest:
    """The service's container in the Deployment."""
    containers = find(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: Manifest = containers[0]
    return result


def env(manifests: list[Manifest]) -> dict[str, str]:
    """The container's literal environment variables (valueFrom ones as "<from ...>")."""
    result: dict[str, str] = {}
    for item in container(manifests)["env"]:
        result[item["name"]] = (
            item["value"] if "value" in item else f"<from {next(iter(item['valueFrom']))}>"
        )
    return result
