"""``return-handler replay`` from start to end: preview, or preview then run, or resume.

It returns how it ended (``service/operate/exits.py``) and raises the errors that stop it;
``service/cli.py`` turns both into the exit status. An error once the run has begun carries
a note saying how to go on (``--resume``).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from contextlib import suppress
from typing import Any, TypeVar

from rich.console import Console

from service.clock import SystemClock
from service.errors import OperatorInputError, ReturnHandlerError
from service.operate.connect import checked_options
from service.operate.exits import Ending
from service.operate.progress import readings
from service.operate.replay import console
from service.operate.replay.manifest import load, new_manifest, save
from service.operate.replay.outgoing import Outgoing, outgoing_of
from service.operate.replay.request import ReplayCommand
from service.operate.replay.selection import prepare
from service.policy_file import load_policy
from service.settings import Settings
from service.wiring import make_planner

T = TypeVar("T")


def main(settings: Settings, command: ReplayCommand, *, out: Console, err: Console) -> Ending:
    """Run ``command`` in an event loop of its own, Ctrl-C wired to its run's interrupts."""

    async def replaying() -> Ending:
        stop, abandon = command.run.stop, command.run.abandon

        def interrupted() -> None:
            # First Ctrl-C: publish no more, wait a grace for what is in flight. Second: go.
            (abandon if stop.is_set() else stop).set()

        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, interrupted)
        return await replay(settings, command, out=out, err=err)

    return asyncio.run(replaying())


async def replay(
    settings: Settings, command: ReplayCommand, *, out: Console, err: Console
) -> Ending:
    """The command in the running loop: what it printed is on ``out`` and ``err``."""
    items: list[Outgoing] | None = None
    if command.resume is not None:
        manifest = load(command.state_dir, command.resume)
        await checked_options(settings.kafka)
        console.resuming(manifest, out)
    else:
        request = command.request
        assert request is not None
        now = SystemClock().now()
        planner = make_planner(load_policy(settings.policy_path))
        with readings(err) as track:
            selection = await _unless_stopped(
                prepare(settings, request, planner=planner, now=now, track=track),
                command.run.stop,
            )
        if selection is None:
            console.interrupted_reading(err)
            return Ending.STOPPED
        if selection.selected == 0:
            raise OperatorInputError(
                f"nothing selected: no record of {selection.source} matched the filters "
                f"({selection.records_read} read); widen --since/--until/--offsets or check the ids"
            )
        console.show_preview(
            selection, settings, show=command.show, as_json=command.as_json, out=out
        )
        if not command.execute:
            if not command.as_json:
                console.preview_only(selection, out)
            return Ending.DONE
        if not selection.chosen:
            raise OperatorInputError(
                "nothing to replay: every selected record is invalid, repeated, done or held "
                "back as cancelled since (--include-done replays done ones, --include-cancelled "
                "cancelled ones)"
            )
        manifest = new_manifest(selection, request, settings, now)
        path = save(manifest, command.state_dir)
        items = outgoing_of(manifest, selection)
        console.starting(manifest, items, path, command.run.window, out)
    hint = console.resume_hint(manifest, command.state_dir)
    try:
        result = await console.run_with_bar(settings, manifest, items, command.run, err)
    except ReturnHandlerError as exc:
        exc.add_note(f"The replay can go on later: {hint}")
        raise
    if result.finished:
        console.done(result, out)
        return Ending.DONE
    if result.stalled:
        console.stalled(result, manifest, command.run, hint, err)
        return Ending.NO_ANSWER
    console.stopped(result, hint, out)
    return Ending.STOPPED


async def _unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """``work``'s result, or ``None`` when ``stop`` is set first (``work`` is cancelled)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    return None


__all__ = ["main", "replay"]
