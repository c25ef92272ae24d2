"""Progress bars on stderr while a tool reads long spans of topics.

Only on a terminal: piped or captured, the output stays free of redraw sequences. The bars
disappear when done (transient), so what is printed afterwards stands alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from service.kafka.span import Progress as ReadProgress

Tracker = Callable[[str], ReadProgress | None]
"""Gives the progress callback of one read, by its label; ``None`` off a terminal."""


@contextmanager
def readings(console: Console) -> Iterator[Tracker]:
    """A bar per read on ``console``, each added under its label when its read begins."""
    if not console.is_terminal:
        yield lambda label: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("records"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:

        def track(label: str) -> ReadProgress:
            task = bar.add_task(label, total=None)

            def update(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            return update

        yield track


@contextmanager
def reading(console: Console, label: str) -> Iterator[ReadProgress | None]:
    """A callback for one ``read_span``'s progress, drawn on ``console`` while it reads."""
    with readings(console) as track:
        yield track(label)


__all__ = ["Tracker", "reading", "readings"]
