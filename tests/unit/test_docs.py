"""The documentation names what exists: the files it names, the pages it links, each command.

The site itself is built with ``mkdocs build --strict`` in ``make test`` (scripts/test.sh),
which checks the links between pages. These check what the build cannot: the README and
DEVELOPERS.md (not part of the site), the repository paths the pages name in code spans, and
facts the pages copy from the code.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from service.operate.exits import COMMAND_EXITS, exits_help

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

# A path from the top of the repository, as the pages name code: `service/kafka/source.py`.
_REPO_PATH = re.compile(
    r"(?<![\w./-])((?:service|capillary_sandbox|bench|tests|scripts|schemas|examples|helm"
    r"|requirements|docs)/[\w./-]*[\w/])"
)
# What a run writes and git ignores: named as where to look, absent from a fresh clone.
_RUN_OUTPUTS = ("bench/results/", "scripts/asyncapi/node_modules")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _pages() -> list[Path]:
    """The README, DEVELOPERS.md and every page of docs/, the chart's README (a link) too."""
    pages = [ROOT / "README.md", ROOT / "DEVELOPERS.md"]
    for folder, _, names in os.walk(DOCS, followlinks=True):
        pages += [Path(folder) / name for name in names if name.endswith(".md")]
    return sorted(pages)


def _shown(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_every_repository_path_the_docs_name_exists() -> None:
    missing = {
        (_shown(page), path)
        for page in _pages()
        for path in _REPO_PATH.findall(page.read_text(encoding="utf-8"))
        if not path.startswith(_RUN_OUTPUTS) and not (ROOT / path).exists()
    }
    assert sorted(missing) == [], "a module moved or was renamed: name its new path"


def test_every_link_of_the_readme_and_the_house_guide_leads_to_a_file() -> None:
    broken = [
        (name, target)
        for name in ("README.md", "DEVELOPERS.md")
        for target in _LINK.findall((ROOT / name).read_text(encoding="utf-8"))
        if not target.startswith(("http://", "https://", "#"))
        and not (ROOT / target.split("#")[0]).exists()
    ]
    assert broken == []


def test_the_site_shows_the_charts_own_readme_not_a_copy() -> None:
    chart = DOCS / "deploy" / "chart"
    assert chart.is_symlink()
    assert chart.resolve() == (ROOT / "helm" / "return-handler").resolve()


def test_the_errors_page_gives_each_command_the_exit_statuses_its_help_names() -> None:
    page = (DOCS / "reference" / "errors.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([\w-]+)` \| (Exit status: [^|]*?) \|$", page, flags=re.M))
    assert rows == {command: exits_help(command) for command in COMMAND_EXITS}


def test_the_commands_page_names_every_command() -> None:
    page = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    named = set(re.findall(r"^\| `return-handler ([\w-]+)", page, flags=re.M))
    assert named == set(COMMAND_EXITS)


def test_the_errors_page_shows_the_error_tree_the_code_has() -> None:
    import service.errors

    lines = (service.errors.__doc__ or "").splitlines()
    tree = "\n".join(line[4:] for line in lines if re.match(r" {4}[│├└ ]*(──\s*)?\w+Error", line))
    page = (DOCS / "reference" / "errors.md").read_text(encoding="utf-8")
    assert f"```\n{tree}\n```" in page
    # Every class of the hierarchy is in the tree, and nothing else.
    named = set(re.findall(r"\b(\w+Error)\b", tree))
    classes = {
        name
        for name, value in vars(service.errors).items()
        if isinstance(value, type) and issubclass(value, service.errors.ReturnHandlerError)
    }
    assert named == classes


def test_the_docs_give_the_steps_in_the_order_of_the_pipeline_docstring() -> None:
    import service.pipeline

    doc = service.pipeline.__doc__ or ""
    steps = re.findall(r"^- ``(\w+)``", doc.split("Around them:")[0], re.MULTILINE)
    page = (DOCS / "how-it-works" / "index.md").read_text(encoding="utf-8")
    on_page = [s for s in re.findall(r"^- \*\*(\w+)\*\*", page, re.MULTILINE) if s in steps]
    guide = (ROOT / "DEVELOPERS.md").read_text(encoding="utf-8")
    flow = re.search(r"Data flows one way: ([\w,\s]+)", guide)
    assert flow is not None
    in_guide = [s for s in re.findall(r"\w+", flow.group(1)) if s in steps]
    in_order = [s for s in steps if s in on_page]
    assert on_page == in_order
    assert in_guide == [s for s in steps if s in in_guide]
    assert {"consume", "deduplicate", "plan", "execute", "commit"} <= set(on_page) & set(in_guide)
