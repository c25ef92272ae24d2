"""The ``return-handler`` command: run the service, dry runs and small tools.

Built with Typer (type hints become options, ``--help`` comes free). Every command reads
settings from the environment (``RETURN_HANDLER_*``) once, and ends through the one table of
exit statuses (``service/operate/exits.py``), whose lines for it its ``--help`` names.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import inspect
import json
import signal
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvloop
from pydantic import ValidationError

from service import __version__
from service.errors import ReturnHandlerError
from service.events import ReturnEvent
from service.logging import configure_logging
from service.operate import terminal
from service.operate.exits import Ending, command_help
from service.operate.replay import options as replay
from service.operate.replay.manifest import DEFAULT_STATE_DIR
from service.operate.report import options as report_options
from service.operate.terminal import ERR, OUT, fail, failed, load_settings, run_to_end
from service.settings import Settings

app = typer.Typer(
    name="return-handler",
    help="Takes back in Capillary what returned or refunded orders earned.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
Command = TypeVar("Command", bound=Callable[..., Any])


def _command(name: str, text: str | None = None) -> Callable[[Command], Command]:
    """Register a command as ``name``: its help is ``text`` (default: its docstring), then
    its exit statuses."""

    def register(command: Command) -> Command:
        # Typer keeps the line breaks inside a help paragraph: each paragraph becomes one line.
        paragraphs = (text or inspect.getdoc(command) or "").split("\n\n")
        joined = "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)
        registered: Command = app.command(name, help=command_help(joined, name))(command)
        return registered

    return register


@_command("version")
def version() -> None:
    """Print the version."""
    OUT.print(__version__)


@_command("settings")
def settings_command() -> None:
    """Print every setting as a Markdown table: environment variable, default, meaning."""
    from service.settings import describe_settings

    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{env}` | `{default}` | {doc} |" for env, default, doc in describe_settings()]
    sys.stdout.write("\n".join(lines) + "\n")


@_command("run")
def run() -> None:
    """Run the service: consume returns, take back, publish outcomes. Stops on SIGTERM/SIGINT."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, cache=True)
    # Every module the service runs on, imported before the freeze below.
    import service.wiring  # noqa: F401

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
        raise failed(exc) from None


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


@_command("plan")
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
    as_claimed: Annotated[
        bool,
        typer.Option(
            "--as-claimed",
            help="A cancellation: plan as if the service's ledger showed its return took what "
            "the event claims (a dry run reads no ledger, so by default the return is unknown).",
        ),
    ] = False,
) -> None:
    """Dry run: show what the service would do for one event, and why. Calls nothing."""
    from service.clock import SystemClock
    from service.ledger import LedgerFacts, ReturnRecord
    from service.pipeline.validate import field_errors
    from service.plan_display import render_plan
    from service.policy_file import load_policy
    from service.wiring import make_planner

    try:
        event = ReturnEvent.model_validate_json(event_file.read_bytes())
    except ValidationError as exc:
        problems = field_errors(exc)
        message = f"{event_file} is not a valid return event ({len(problems)} problem(s)):"
        exit_ = fail(message, Ending.BAD_INPUT)
        for problem in problems:
            ERR.print(f"  {problem}", markup=False, highlight=False)
        raise exit_ from None
    try:
        loaded = load_policy(policy)
    except ReturnHandlerError as exc:
        raise failed(exc) from None
    when = now if now is not None and now.tzinfo is not None else SystemClock().now()
    facts = None
    if as_claimed and event.cancelled_return is not None:
        claimed = ReturnRecord.claimed_by(event.cancelled_return)
        facts = LedgerFacts(returned=dataclasses.replace(claimed, claimed=False))
    result = make_planner(loaded)(event, when, facts)
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        OUT.print(render_plan(result))
        if event.cancelled_return is not None and not as_claimed:
            OUT.print(
                "A dry run reads no ledger: the service gives back what its ledger says the "
                "return took. --as-claimed shows the plan if the ledger matched the claim.",
                markup=False,
                highlight=False,
            )


@_command("replay", replay.HELP)
def replay_command(
    source: replay.Source = None,
    reason: replay.Reason = None,
    file: replay.File = None,
    since: replay.Since = None,
    until: replay.Until = None,
    offsets: replay.Offsets = None,
    error_type: replay.ErrorType = None,
    status: replay.Status = None,
    promotion: replay.Promotion = None,
    event_id: replay.EventId = None,
    include_done: replay.IncludeDone = False,
    include_cancelled: replay.IncludeCancelled = False,
    allow_reissue: replay.AllowReissue = None,
    execute: replay.Execute = False,
    show: replay.Show = 3,
    as_json: replay.AsJson = False,
    window: replay.Window = 50,
    resume: replay.Resume = None,
    state_dir: replay.StateDir = DEFAULT_STATE_DIR,
    grace: replay.Grace = 10.0,
    idle_timeout: replay.IdleTimeout = 600.0,
) -> None:
    """Replay events through the running service (the help is ``replay.HELP``)."""
    from service.operate.replay import ReplayCommand, main

    settings = load_settings()
    try:
        command = ReplayCommand.from_options(
            source=source,
            reason=reason,
            file=file,
            since=since,
            until=until,
            offsets=offsets or (),
            error_types=error_type or (),
            statuses=status or (),
            promotion=promotion,
            event_ids=event_id or (),
            include_done=include_done,
            include_cancelled=include_cancelled,
            allow_reissue=allow_reissue or (),
            execute=execute,
            show=show,
            as_json=as_json,
            window=window,
            resume=resume,
            state_dir=state_dir,
            grace_seconds=grace,
            idle_seconds=idle_timeout,
        )
        terminal.quiet_kafka_client()
        ending = main(settings, command, out=OUT, err=ERR)
    except ReturnHandlerError as exc:
        raise failed(exc) from None
    terminal.ended(ending)


@_command("schemas")
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
            raise fail(
                f"schemas out of date in {out}: {', '.join(stale)}. "
                "Run `return-handler schemas` and commit the result.",
                Ending.OUT_OF_DATE,
            )
        OUT.print(f"schemas in {out} match the models")
        return
    for path in write_all(out):
        OUT.print(f"wrote {path}")


@_command("topics")
def topics(
    partitions: Annotated[int, typer.Option(help="Partitions of each new topic.")] = 3,
) -> None:
    """Create the returns, outcomes and dead-letter topics if they are missing (development)."""
    from service.kafka.topics import ensure_topics

    settings = load_settings()
    days = settings.reliability.dedupe_window_days
    created = run_to_end(ensure_topics(settings.kafka, partitions, dedupe_window_days=days))
    OUT.print(f"created: {', '.join(created)}" if created else "all topics exist")


@_command("publish")
def publish(
    files: Annotated[list[Path], typer.Argument(help="Event files (JSON) to publish, in order.")],
    topic: Annotated[str | None, typer.Option(help="Default: the returns topic.")] = None,
    raw: Annotated[
        bool, typer.Option("--raw", help="Send the bytes as they are, without validating.")
    ] = False,
) -> None:
    """Publish event files to the returns topic, keyed by customer, waiting for each ack."""
    from service.tools import publish_files

    settings = load_settings()
    to = topic or settings.kafka.returns_topic
    sent = run_to_end(publish_files(settings.kafka, files, to, raw=raw))
    for line in sent:
        OUT.print(line, markup=False)


@_command("outcomes")
def outcomes(
    count: Annotated[int, typer.Option(help="Stop after this many outcomes.")] = 0,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print each outcome as JSON.")] = False,
) -> None:
    """Read the outcomes topic from the beginning and print one readable line per outcome."""
    from service.tools import format_outcome, read_outcomes

    settings = load_settings()
    seen = 0

    def show(outcome_json: bytes) -> None:
        nonlocal seen
        seen += 1
        if as_json:
            sys.stdout.write(json.dumps(json.loads(outcome_json)) + "\n")
        else:
            OUT.print(format_outcome(outcome_json), highlight=False, markup=False)

    run_to_end(read_outcomes(settings.kafka, show, count=count, wait_seconds=timeout))
    if count and seen < count:
        raise fail(
            f"only {seen} of {count} outcomes arrived within {timeout:.0f} s; "
            "check the service log for errors",
            Ending.TOO_FEW,
        )


@_command("dead-letters")
def dead_letters(
    count: Annotated[int, typer.Option(help="Stop after this many dead letters.")] = 0,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 10.0,
) -> None:
    """Read the dead-letter topic from the beginning: origin and reason of each message."""
    from service.kafka.reader import read_topic
    from service.tools import format_dead_letter

    settings = load_settings()
    kafka = settings.kafka
    records = run_to_end(
        read_topic(kafka, kafka.dead_letter_topic, count=count, wait_seconds=timeout)
    )
    for record in records:
        OUT.print(format_dead_letter(record.headers, record.value), highlight=False, markup=False)
    if count and len(records) < count:
        raise fail(
            f"only {len(records)} of {count} dead letters arrived within {timeout:.0f} s",
            Ending.TOO_FEW,
        )


@_command("inspect")
def inspect_command(
    wanted: Annotated[
        str,
        typer.Argument(
            metavar="ORDER_OR_EVENT_ID", help="An order id or an event id, matched exactly."
        ),
    ],
    since: Annotated[
        str | None,
        typer.Option(
            help="Only outcomes written since then: ISO 8601 date or time, UTC unless it has "
            "an offset. Default: the whole topic.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="One JSON object per outcome, newest first: position and outcome; then one "
            'last line {"ledger": \\[entry, ...]}.',
        ),
    ] = False,
) -> None:
    """Every outcome recorded for an order or an event, newest first: what was taken back or
    given back, why, what Capillary answered item by item, and its request ids for support
    tickets. Then the order's ledger: what each event took back and what each cancellation
    gave back in its place (new earn and issual ids), as the service holds it.

    Reads the outcomes topic (RETURN_HANDLER_KAFKA__OUTCOMES_TOPIC) and the state topic
    (RETURN_HANDLER_KAFKA__STATE_TOPIC, whole: --since is for outcomes): committed records, up
    to the end they had when the command started.
    """
    from service.operate.inspect import nothing_found, show

    settings = load_settings()
    since_at = terminal.time_option("--since", since) if since is not None else None
    options = terminal.kafka_options(settings)
    topics = (settings.kafka.outcomes_topic, settings.kafka.state_topic)
    found = run_to_end(
        show(options, topics, wanted, since_at, as_json=as_json, out=OUT, err=ERR),
        explain=lambda exc: terminal.read_failed(exc, settings),
    )
    if not found:
        raise fail(nothing_found(wanted, topics[0], since_at, topics[1]), Ending.NOTHING_FOUND)


@_command("report", report_options.HELP)
def report_command(
    since: report_options.Since,
    until: report_options.Until = None,
    as_json: report_options.AsJson = False,
    chart: report_options.Chart = None,
) -> None:
    """Add up the outcomes of a time range (the help is ``report.options.HELP``)."""
    from service.clock import SystemClock
    from service.operate.report.chart import require_matplotlib, write_chart
    from service.operate.report.command import show_report

    settings = load_settings()
    since_at = terminal.time_option("--since", since)
    until_at = (
        terminal.time_option("--until", until, end_of_day=True)
        if until is not None
        else SystemClock().now()
    )
    if until_at < since_at:
        message = f"--until ({until_at.isoformat()}) is before --since ({since_at.isoformat()})"
        raise fail(message, Ending.BAD_INPUT)
    if chart is not None:
        # Before the read: a missing extra should not cost a long read first.
        try:
            require_matplotlib()
        except ReturnHandlerError as exc:
            raise failed(exc) from exc
    options = terminal.kafka_options(settings)
    topic = settings.kafka.outcomes_topic
    report = run_to_end(
        show_report(
            options, topic, since=since_at, until=until_at, as_json=as_json, out=OUT, err=ERR
        ),
        explain=lambda exc: terminal.read_failed(exc, settings),
    )
    if chart is not None:
        try:
            write_chart(report, chart)
        except OSError as exc:
            message = f"cannot write the chart to {chart}: {exc.strerror or exc}"
            raise fail(message, Ending.BAD_INPUT) from exc
        ERR.print(f"chart written to {chart}", markup=False, soft_wrap=True)


def main() -> None:
    """Console-script entry point."""
    app()
