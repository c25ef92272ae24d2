"""A progress bar on stderr while a tool reads a long span of a topic."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from service.operate.read import Progress as ReadProgress


@contextmanager
def reading(console: Console, label: str) -> Iterator[ReadProgress | None]:
    """A callback for ``read_span``'s progress, drawn on ``console`` while it reads.

    Only on a terminal: piped or captured, the output stays free of redraw sequences. The
    bar disappears when done (transient), so what is printed afterwards stands alone.
    """
    if not console.is_terminal:
        yield None
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
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


__all__ = ["reading"]
