"""The rules stay pure: no display library, no YAML, no file, clock or log in service/rules/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[3] / "service" / "rules"
MODULES = sorted(RULES.glob("*.py"))

# Display, file formats, files and the outside world belong to the callers (cli, wiring).
FORBIDDEN_MODULES = {
    "rich",
    "typer",
    "yaml",
    "io",
    "os",
    "pathlib",
    "shutil",
    "importlib",
    "logging",
    "structlog",
    "time",
    "httpx",
    "aiokafka",
}
FORBIDDEN_CALLS = {"open", "print", "input"}
FORBIDDEN_METHODS = {"read_text", "read_bytes", "write_text", "write_bytes", "now", "today"}


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _calls(tree: ast.AST) -> set[str]:
    called: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
                called.add(node.func.id)
            if isinstance(node.func, ast.Attribute) and node.func.attr in FORBIDDEN_METHODS:
                called.add(f".{node.func.attr}()")
    return called


def test_rules_package_has_modules_to_check() -> None:
    assert {path.name for path in MODULES} >= {"engine.py", "policy.py", "explain.py"}


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_rules_module_imports_no_display_yaml_or_io(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))

    assert sorted(_imports(tree) & FORBIDDEN_MODULES) == []
    assert sorted(_calls(tree)) == []
