"""What ``return-handler replay`` shows: the preview, the run's bar, and how the run ended.

Results go to ``out``; bars, and what goes wrong, to ``err`` (``service/cli.py`` gives both).
The bars while the topics are read are the tools' own (``service/operate/progress.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from service.operate.preview import Selection, render_summary, summarise
from service.operate.replay.drive import RunProgress, RunResult
from service.operate.replay.manifest import DEFAULT_STATE_DIR, Manifest
from service.operate.replay.outgoing import Outgoing
from service.operate.replay.request import RunOptions
from service.operate.replay.run import run
from service.plan_display import render_plan
from service.settings import Settings


def show_preview(
    selection: Selection, settings: Settings, *, show: int, as_json: bool, out: Console
) -> None:
    """The summary (as JSON on stdout with ``as_json``), then the plans of the first ``show``."""
    summary = summarise(selection)
    if as_json:
        sys.stdout.write(summary.model_dump_json(indent=2) + "\n")
        return
    limits = settings.capillary.rate_limits if settings.capillary else None
    out.print(render_summary(summary, limits))
    for chosen in selection.chosen[:show]:
        kept = f"; not made again: {', '.join(chosen.kept_back)}" if chosen.kept_back else ""
        if chosen.allow_cancelled:
            kept += "; taken back again although a cancellation gave it back since"
        out.print(f"\n#{chosen.sequence} from {chosen.candidate.source}{kept}", highlight=False)
        out.print(render_plan(chosen.plan))


def preview_only(selection: Selection, out: Console) -> None:
    """The preview's last line: nothing was done, and how to do it."""
    then = (
        f"Add --execute to replay these {len(selection.chosen)} event(s) through the running "
        "service."
        if selection.chosen
        else "Nothing to replay with these options."
    )
    out.print(f"\nPreview only: nothing was called or published. {then}", highlight=False)


def interrupted_reading(err: Console) -> None:
    """Ctrl-C came while the topics were read."""
    err.print("Interrupted while reading: nothing was published.")


def starting(
    manifest: Manifest, items: Sequence[Outgoing], path: Path, window: int, out: Console
) -> None:
    """A new run begins: its id, its size, its window, its manifest."""
    out.print(
        f"\nReplay {manifest.replay_id}: {len(items)} event(s) to {manifest.returns_topic}, at "
        f"most {window} waiting for their outcome; manifest {path}",
        highlight=False,
    )


def resuming(manifest: Manifest, out: Console) -> None:
    """A stopped run goes on: which one, from where, why."""
    out.print(
        f"Resuming replay {manifest.replay_id} of {len(manifest.entries)} event(s) "
        f"from {manifest.parameters.source}, started {manifest.created_at:%Y-%m-%d %H:%M} "
        f"UTC: {manifest.reason}",
        highlight=False,
    )


def resume_hint(manifest: Manifest, state_dir: Path) -> str:
    """The command that goes on with this run."""
    hint = f"return-handler replay --resume {manifest.replay_id}"
    if state_dir != DEFAULT_STATE_DIR:
        hint += f" --state-dir {state_dir}"
    return hint


async def run_with_bar(
    settings: Settings,
    manifest: Manifest,
    items: Sequence[Outgoing] | None,
    options: RunOptions,
    console: Console,
) -> RunResult:
    """The run (``run.run``) under its bar: answers, published, rate, time left."""
    bar = progress_bar(console)
    with bar:
        task = bar.add_task(
            f"replay {manifest.replay_id[:8]}", total=len(manifest.entries), published=0
        )

        def ready(where: RunProgress) -> None:
            # A resume starts part-way: the bar's rate counts only what this run sees.
            bar.reset(task, completed=where.answered, total=where.total, published=where.published)

        def moved(where: RunProgress) -> None:
            bar.update(task, completed=where.answered, published=where.published)

        return await run(
            settings, manifest, items=items, options=options, progress=moved, ready=ready
        )


def done(result: RunResult, out: Console) -> None:
    """Every event answered."""
    out.print(
        f"Replay {result.replay_id} done: {_answered(result)}; {result.published_now} published "
        "by this run. `return-handler outcomes` shows them.",
        highlight=False,
    )


def stalled(
    result: RunResult, manifest: Manifest, options: RunOptions, hint: str, err: Console
) -> None:
    """Nothing came back for ``--idle-timeout``: is the service running?"""
    err.print(
        f"No outcome came back for {options.idle_seconds:.0f} s: is `return-handler run` running "
        f"against {manifest.returns_topic}? {_answered(result)}. Resume with: {hint}",
        highlight=False,
        soft_wrap=True,
    )


def stopped(result: RunResult, hint: str, out: Console) -> None:
    """Stopped by Ctrl-C: what came back, what waits, what was not published."""
    waiting = result.published - len(result.answered)
    out.print(
        f"Replay {result.replay_id} stopped: {_answered(result)}; {waiting} published and "
        f"waiting for the service, {result.total - result.published} not published. "
        f"Resume with: {hint}",
        highlight=False,
    )


def _answered(result: RunResult) -> str:
    statuses = ", ".join(f"{status} {n}" for status, n in sorted(result.by_status().items()))
    return f"{len(result.answered)} of {result.total} answered ({statuses or 'none yet'})"


class RateColumn(ProgressColumn):
    """Outcomes a second, over the bar's recent past."""

    def render(self, task: Task) -> Text:
        """The rate, or dashes before the first outcome."""
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} ev/s" if speed else "-- ev/s", style="progress.data.speed")


def progress_bar(console: Console) -> Progress:
    """The bar of a running replay: outcomes back of the total, rate, time left."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("published {task.fields[published]}"),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=console,
    )


__all__ = [
    "done",
    "interrupted_reading",
    "preview_only",
    "progress_bar",
    "resume_hint",
    "resuming",
    "run_with_bar",
    "show_preview",
    "stalled",
    "starting",
    "stopped",
]
