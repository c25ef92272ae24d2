"""The ``return-handler`` command: run the service, dry runs and small tools.

Built with Typer (type hints become options, ``--help`` comes free). Every
command reads settings from the environment (``RETURN_HANDLER_*``) once, here.
"""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
import uvloop
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.text import Text

from service import __version__
from service.errors import ConfigurationError, ReturnHandlerError
from service.events import ReturnEvent
from service.logging import configure_logging
from service.settings import Settings, setting_errors

app = typer.Typer(
    name="return-handler",
    help="Takes back in Capillary what returned or refunded orders earned.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_out = Console(soft_wrap=True)
# Never wrapped: a log collector keeps each line of stderr as one record.
_err = Console(stderr=True, soft_wrap=True)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        for line in setting_errors(exc):
            _err.print(line, markup=False, highlight=False)
        _err.print("Fix the RETURN_HANDLER_* variables above and restart.", highlight=False)
        raise typer.Exit(2) from None
    except SettingsError as exc:  # a whole group given as JSON that does not parse
        raise _fail(f"invalid settings: {exc}; fix that RETURN_HANDLER_* variable", 2) from None
    except ReturnHandlerError as exc:
        raise _failed(exc) from None


def _fail(message: str, code: int = 1) -> typer.Exit:
    """Write ``error: <message>`` as one line on stderr; the exit to raise."""
    _err.print(Text.assemble(("error: ", "red"), message))
    return typer.Exit(code)


def _failed(exc: ReturnHandlerError) -> typer.Exit:
    """One line for an error of ours; exit status 2 for a setting to fix, else 1."""
    return _fail(str(exc), 2 if isinstance(exc, ConfigurationError) else 1)


@app.command()
def version() -> None:
    """Print the version."""
    _out.print(__version__)


@app.command("settings")
def settings_command() -> None:
    """Print every setting as a Markdown table: environment variable, default, meaning."""
    from service.settings import describe_settings

    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{env}` | `{default}` | {doc} |" for env, default, doc in describe_settings()]
    sys.stdout.write("\n".join(lines) + "\n")


@app.command()
def run() -> None:
    """Run the service: consume returns, take back, publish outcomes. Stops on SIGTERM/SIGINT."""
    settings = _settings()
    configure_logging(settings.log_level, settings.log_format, cache=True)
    # Under load the cyclic garbage collector took a quarter of the CPU: with a thousand
    # events in flight it ran every 700 allocations and walked every live object. What
    # exists at start-up (modules, settings, the policy) is never garbage: frozen, it is
    # never walked again; and young collections run a hundred times less often.
    gc.freeze()
    gc.set_threshold(70_000, 20, 20)
    try:
        # uvloop: the event loop's own work was a seventh of the service's CPU under load.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_run_service(settings))
    except ReturnHandlerError as exc:
        raise _failed(exc) from None


async def _run_service(settings: Settings) -> None:
    from service.wiring import build_service

    service = build_service(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.run(stop)
    finally:
        await service.aclose()


@app.command("plan")
def plan_command(
    event_file: Annotated[Path, typer.Argument(help="A return event as JSON.", exists=True)],
    policy: Annotated[
        Path | None, typer.Option(help="Policy YAML (default: the packaged one).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    now: Annotated[
        datetime | None,
        typer.Option(help="Decide as of this time (ISO 8601); default: now.", formats=None),
    ] = None,
) -> None:
    """Dry run: show what the service would do for one event, and why. Calls nothing."""
    from service.clock import SystemClock
    from service.pipeline.validate import field_errors
    from service.plan_display import render_plan
    from service.policy_file import load_policy
    from service.wiring import make_planner

    try:
        event = ReturnEvent.model_validate_json(event_file.read_bytes())
    except ValidationError as exc:
        problems = field_errors(exc)
        failed = _fail(f"{event_file} is not a valid return event ({len(problems)} problem(s)):", 2)
        for problem in problems:
            _err.print(f"  {problem}", markup=False, highlight=False)
        raise failed from None
    try:
        loaded = load_policy(policy)
    except ReturnHandlerError as exc:
        raise _fail(str(exc), 2) from None
    when = now if now is not None and now.tzinfo is not None else SystemClock().now()
    result = make_planner(loaded)(event, when)
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        _out.print(render_plan(result))


@app.command()
def schemas(
    out: Annotated[Path, typer.Option(help="Directory of the schema files.")] = Path("schemas"),
    check: Annotated[
        bool, typer.Option("--check", help="Fail if the files differ from the models.")
    ] = False,
) -> None:
    """Write the JSON Schemas and the AsyncAPI document generated from the models."""
    from service.schemas import drifted, write_all

    if check:
        stale = drifted(out)
        if stale:
            raise _fail(
                f"schemas out of date in {out}: {', '.join(stale)}. "
                "Run `return-handler schemas` and commit the result."
            )
        _out.print(f"schemas in {out} match the models")
        return
    for path in write_all(out):
        _out.print(f"wrote {path}")


@app.command()
def topics(
    partitions: Annotated[int, typer.Option(help="Partitions of each new topic.")] = 3,
) -> None:
    """Create the returns, outcomes and dead-letter topics if they are missing (development)."""
    from service.tools import ensure_topics

    settings = _settings()
    try:
        created = asyncio.run(
            ensure_topics(
                settings.kafka,
                partitions,
                dedupe_window_days=settings.reliability.dedupe_window_days,
            )
        )
    except ReturnHandlerError as exc:
        raise _failed(exc) from None
    _out.print(f"created: {', '.join(created)}" if created else "all topics exist")


@app.command()
def publish(
    files: Annotated[list[Path], typer.Argument(help="Event files (JSON) to publish, in order.")],
    topic: Annotated[str | None, typer.Option(help="Default: the returns topic.")] = None,
    raw: Annotated[
        bool, typer.Option("--raw", help="Send the bytes as they are, without validating.")
    ] = False,
) -> None:
    """Publish event files to the returns topic, keyed by customer, waiting for each ack."""
    from service.tools import publish_files

    settings = _settings()
    try:
        sent = asyncio.run(
            publish_files(settings.kafka, files, topic or settings.kafka.returns_topic, raw=raw)
        )
    except ReturnHandlerError as exc:
        raise _failed(exc) from None
    for line in sent:
        _out.print(line, markup=False)


@app.command()
def outcomes(
    count: Annotated[int, typer.Option(help="Stop after this many outcomes.")] = 0,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print each outcome as JSON.")] = False,
) -> None:
    """Read the outcomes topic from the beginning and print one readable line per outcome."""
    from service.tools import format_outcome, read_outcomes

    settings = _settings()
    seen = 0

    def show(outcome_json: bytes) -> None:
        nonlocal seen
        seen += 1
        if as_json:
            sys.stdout.write(json.dumps(json.loads(outcome_json)) + "\n")
        else:
            _out.print(format_outcome(outcome_json), highlight=False, markup=False)

    try:
        asyncio.run(read_outcomes(settings.kafka, show, count=count, wait_seconds=timeout))
    except ReturnHandlerError as exc:
        raise _failed(exc) from None
    if count and seen < count:
        raise _fail(
            f"only {seen} of {count} outcomes arrived within {timeout:.0f} s; "
            "check the service log for errors"
        )


@app.command("dead-letters")
def dead_letters(
    count: Annotated[int, typer.Option(help="Stop after this many dead letters.")] = 0,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 10.0,
) -> None:
    """Read the dead-letter topic from the beginning: origin and reason of each message."""
    from service.tools import format_dead_letter, read_topic

    settings = _settings()
    try:
        records = asyncio.run(
            read_topic(
                settings.kafka,
                settings.kafka.dead_letter_topic,
                count=count,
                wait_seconds=timeout,
            )
        )
    except ReturnHandlerError as exc:
        raise _failed(exc) from None
    for record in records:
        _out.print(format_dead_letter(record.headers, record.value), highlight=False, markup=False)
    if count and len(records) < count:
        raise _fail(f"only {len(records)} of {count} dead letters arrived within {timeout:.0f} s")


def main() -> None:
    """Console-script entry point."""
    app()
