"""The ``return-handler`` command: run the service, dry runs and small tools.

Built with Typer (type hints become options, ``--help`` comes free). Every
command reads settings from the environment (``RETURN_HANDLER_*``) once, here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import logging
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import uvloop
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.text import Text

from service import __version__
from service.errors import BrokerError, ConfigurationError, OperatorInputError, ReturnHandlerError
from service.events import ReturnEvent
from service.logging import configure_logging
from service.operate.manifest import DEFAULT_STATE_DIR
from service.operate.read import Span
from service.operate.sources import ERROR_TYPES, SourceKind
from service.outcome import OutcomeStatus
from service.settings import Settings, setting_errors

if TYPE_CHECKING:
    from service.operate.inspect import FoundOutcome
    from service.operate.outcomes import Skipped

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
        failed = _fail(f"{event_file} is not a valid return event ({len(problems)} problem(s)):", 2)
        for problem in problems:
            _err.print(f"  {problem}", markup=False, highlight=False)
        raise failed from None
    try:
        loaded = load_policy(policy)
    except ReturnHandlerError as exc:
        raise _fail(str(exc), 2) from None
    when = now if now is not None and now.tzinfo is not None else SystemClock().now()
    facts = None
    if as_claimed and event.cancelled_return is not None:
        claimed = ReturnRecord.claimed_by(event.cancelled_return)
        facts = LedgerFacts(returned=dataclasses.replace(claimed, claimed=False))
    result = make_planner(loaded)(event, when, facts)
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        _out.print(render_plan(result))
        if event.cancelled_return is not None and not as_claimed:
            _out.print(
                "A dry run reads no ledger: the service gives back what its ledger says the "
                "return took. --as-claimed shows the plan if the ledger matched the claim.",
                markup=False,
                highlight=False,
            )


# Typer keeps the line breaks of help paragraphs: each paragraph is one string.
_REPLAY_HELP = "\n\n".join(
    [
        "Replay events through the running service: preview by default, --execute to run.",
        "Sources: dead letters that are valid events now (--source dead-letters), the events "
        "that outcomes answer (--source outcomes), a part of the returns topic (--source "
        "returns), a JSON-lines file (--source file). Without --execute it prints what would "
        "be done (events, actions by kind, Capillary calls, what is skipped and why) and "
        "calls and publishes nothing.",
        "--execute publishes the events to the returns topic with replay headers, and the "
        "running `return-handler run` executes them: the same validation, rules and rate "
        "limiters as live events, one limit shared by both (the replay has no Capillary "
        "client of its own). --window bounds how many replayed events wait in the service at "
        "once, so live events never queue behind a large replay.",
        "Nothing twice: revokes are safe to repeat; give-backs (ENROL, EARN) that an earlier "
        "outcome or the ledger (the state topic) shows as made are not made again unless "
        "--allow-reissue names the event. A return that a cancellation gave back since is "
        "held back (taking it back again would undo the give-back) unless "
        "--include-cancelled. Ctrl-C stops publishing and waits --grace seconds for what is "
        "in flight; --resume REPLAY_ID goes on where it stopped.",
    ]
)


@app.command("replay", help=_REPLAY_HELP)
def replay_command(
    source: Annotated[
        SourceKind | None,
        typer.Option(help="Where the events come from (not with --resume).", show_default=False),
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option(help="Why: copied into every replayed event's outcome. Required."),
    ] = None,
    file: Annotated[
        Path | None, typer.Option(help="--source file: a JSON-lines file, one event a line.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Records written at or after this time (ISO 8601, UTC if no zone)."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Records written at or before this time; a date: its whole day."),
    ] = None,
    offsets: Annotated[
        list[str] | None,
        typer.Option(help="PARTITION:FROM-TO of the source topic, both included; repeatable."),
    ] = None,
    error_type: Annotated[
        list[str] | None,
        typer.Option(
            help="--source dead-letters: json_invalid, invalid_event, empty or rules_error; "
            "repeatable."
        ),
    ] = None,
    status: Annotated[
        list[OutcomeStatus] | None,
        typer.Option(help="--source outcomes: outcomes with this status; repeatable."),
    ] = None,
    promotion: Annotated[
        str | None,
        typer.Option(
            help="Events whose plan calls about this loyalty promotion (id, promo identifier "
            "or PROGRAM/PROMOTION) or cart promotion id."
        ),
    ] = None,
    event_id: Annotated[
        list[str] | None, typer.Option(help="Only these event ids; repeatable.")
    ] = None,
    include_done: Annotated[
        bool,
        typer.Option("--include-done", help="Replay events whose newest outcome is completed too."),
    ] = False,
    include_cancelled: Annotated[
        bool,
        typer.Option(
            "--include-cancelled",
            help="Replay returns that a cancellation gave back since too: they are taken back "
            "again, undoing the give-back. Check with the customer first.",
        ),
    ] = False,
    allow_reissue: Annotated[
        list[str] | None,
        typer.Option(
            metavar="EVENT_ID",
            help="Make give-backs (ENROL, EARN) again for this event although an earlier "
            "outcome shows them made. Capillary's EARN has no idempotency key: check the "
            "customer first. Repeatable.",
        ),
    ] = None,
    execute: Annotated[
        bool,
        typer.Option("--execute", help="Publish the events for the running service to handle."),
    ] = False,
    show: Annotated[int, typer.Option(help="Plans of the first N events to print.")] = 3,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the preview summary as JSON.")
    ] = False,
    window: Annotated[
        int,
        typer.Option(
            min=1, help="Most replayed events published and not yet answered by an outcome."
        ),
    ] = 50,
    resume: Annotated[
        str | None,
        typer.Option(metavar="REPLAY_ID", help="Go on with a stopped replay; publishes the rest."),
    ] = None,
    state_dir: Annotated[
        Path, typer.Option(help="Where replay manifests are written and found.")
    ] = DEFAULT_STATE_DIR,
    grace: Annotated[
        float, typer.Option(help="On Ctrl-C, seconds to wait for the outcomes in flight.")
    ] = 10.0,
    idle_timeout: Annotated[
        float,
        typer.Option(help="Give up (resumable) when no outcome comes back for this long."),
    ] = 600.0,
) -> None:
    """Replay events through the running service (see ``_REPLAY_HELP``)."""
    from service.operate.replay import main, make_request
    from service.operate.sources import Filters, parse_offsets, parse_time

    settings = _settings()
    request = None
    try:
        if resume is None:
            if source is None:
                raise OperatorInputError(
                    "--source is required (dead-letters, outcomes, returns or file)",
                    option="--source",
                )
            if as_json and execute:
                raise OperatorInputError(
                    "--json prints the preview; leave it out with --execute", option="--json"
                )
            bad = sorted(set(error_type or ()) - set(ERROR_TYPES))
            if bad:
                raise OperatorInputError(
                    f"--error-type {', '.join(bad)}: use {', '.join(ERROR_TYPES)}",
                    option="--error-type",
                )
            filters = Filters(
                span=Span(
                    since=parse_time(since, "--since") if since else None,
                    until=parse_time(until, "--until", end_of_day=True) if until else None,
                    offsets=parse_offsets(offsets or []),
                ),
                error_types=frozenset(error_type or ()),
                statuses=frozenset(status or ()),
                event_ids=frozenset(event_id or ()),
                promotion=promotion,
            )
            request = make_request(
                source=source,
                reason=reason,
                file=file,
                filters=filters,
                include_done=include_done,
                allow_reissue=allow_reissue or (),
                offsets=offsets or (),
                include_cancelled=include_cancelled,
            )
        elif source is not None or execute or reason is not None:
            raise OperatorInputError(
                "--resume takes the replay as it was started: leave out --source, --reason "
                "and --execute",
                option="--resume",
            )
    except ReturnHandlerError as exc:
        raise _fail(str(exc), 2) from exc
    _quiet_kafka_client()

    async def replay() -> int:
        stop, abandon = asyncio.Event(), asyncio.Event()

        def interrupted() -> None:
            # First Ctrl-C: publish no more, wait a grace for what is in flight. Second: go.
            (abandon if stop.is_set() else stop).set()

        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, interrupted)
        return await main(
            settings,
            request=request,
            resume=resume,
            execute=execute,
            show=show,
            as_json=as_json,
            window=window,
            state_dir=state_dir,
            grace_seconds=grace,
            idle_seconds=idle_timeout,
            out=_out,
            err=_err,
            stop=stop,
            abandon=abandon,
        )

    code = asyncio.run(replay())
    if code:
        raise typer.Exit(code)


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


def _kafka_options(settings: Settings) -> dict[str, Any]:
    """The tools' Kafka connection arguments, once a first connection showed they work."""
    from service.operate.connect import checked_options

    try:
        return asyncio.run(checked_options(settings.kafka))
    except ReturnHandlerError as exc:
        raise _failed(exc) from None


def _quiet_kafka_client() -> None:
    # Without logging configured, Python prints aiokafka's warnings ("Unable connect to ...")
    # raw on stderr beside our one line that says the same and what to do. A handler that
    # drops them silences only that fallback: configured logging still receives them.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())


def _time_option(option: str, text: str, *, end_of_day: bool = False) -> datetime:
    from service.operate.times import parse_time

    try:
        return parse_time(text, end_of_day=end_of_day)
    except ValueError as exc:
        raise _fail(f"bad {option}: {exc}", 2) from exc


def _operate_error(exc: ReturnHandlerError, settings: Settings) -> typer.Exit:
    """The tools' Kafka failures as one line saying what to set."""
    kafka = settings.kafka
    if isinstance(exc, ConfigurationError) and "topic" in exc.context:
        topic = exc.context["topic"]
        which = "STATE" if topic == kafka.state_topic else "OUTCOMES"
        return _fail(
            f"no topic {topic!r} at {kafka.bootstrap_servers}: set "
            f"RETURN_HANDLER_KAFKA__{which}_TOPIC to the {which.lower()} topic's name",
            2,
        )
    if isinstance(exc, BrokerError):
        return _fail(
            f"cannot reach Kafka at {kafka.bootstrap_servers}: check that the broker runs and "
            "RETURN_HANDLER_KAFKA__BOOTSTRAP_SERVERS",
            2,
        )
    return _fail(str(exc), 2)


@app.command(
    "inspect",
    help="Every outcome recorded for an order or an event, newest first: what was taken back "
    "or given back, why, what Capillary answered item by item, and its request ids for support "
    "tickets. Then the order's ledger: what each event took back and what each cancellation "
    "gave back in its place (new earn and issual ids), as the service holds it.\n\nReads the "
    "outcomes topic (RETURN_HANDLER_KAFKA__OUTCOMES_TOPIC) and the state topic "
    "(RETURN_HANDLER_KAFKA__STATE_TOPIC, whole: --since is for outcomes): committed records, up "
    "to the end they had when the command started. Exit 1 when nothing matches or Kafka does "
    "not answer, 2 when a setting, a topic or --since is wrong.",
)
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
            'last line {"ledger": [entry, ...]}.',
        ),
    ] = False,
) -> None:
    """Show every outcome of one order or event (the help text is in the decorator)."""
    from service.operate.inspect import (
        as_json_line,
        find_outcomes,
        ledger_json_line,
        ledger_of,
        nothing_found,
        render,
        render_ledger,
    )
    from service.operate.ledger import LedgerBook, read_ledger
    from service.operate.outcomes import Skipped
    from service.operate.progress import reading
    from service.operate.read import Span

    settings = _settings()
    since_at = _time_option("--since", since) if since is not None else None
    _quiet_kafka_client()
    options = _kafka_options(settings)
    topic = settings.kafka.outcomes_topic
    state_topic = settings.kafka.state_topic
    skipped = Skipped()

    async def read_both() -> tuple[list[FoundOutcome], LedgerBook]:
        with reading(_err, f"reading {topic}") as progress:
            found = await find_outcomes(
                options, topic, wanted, Span(since=since_at), skipped=skipped, progress=progress
            )
        with reading(_err, f"reading {state_topic}") as progress:
            book = await read_ledger(options, state_topic, progress=progress)
        return found, book

    try:
        found, book = asyncio.run(read_both())
    except ReturnHandlerError as exc:
        raise _operate_error(exc, settings) from exc
    _warn_skipped(skipped)
    _warn_skipped(book.skipped, "event states")
    states = ledger_of(book, wanted)
    # An order the ledger knows is found, even when its outcomes are gone (retention, --since).
    if not found and not states:
        raise _fail(nothing_found(wanted, topic, since_at, state_topic), 1)
    for one in found:
        if as_json:
            sys.stdout.write(as_json_line(one) + "\n")
        else:
            _out.print(render(one), highlight=False)
            _out.print()
    if as_json:
        sys.stdout.write(ledger_json_line(states) + "\n")
        return
    _out.print(render_ledger(states, book, wanted, state_topic), highlight=False)
    _err.print(
        f"{len(found)} outcome(s) of {wanted!r} in {topic}, newest first; "
        f"{len(states)} ledger entry(ies) in {state_topic}",
        markup=False,
    )


@app.command(
    "report",
    help="What the outcomes of a time range add up to, for analytics and finance: events by "
    "return type and status, benefits taken back and given back by kind, refusals (redeemed "
    "benefits, with those flagged for clawback), failures by next step, duplicates and "
    "replays apart, and a row per UTC day.\n\nAs tables; as JSON with --json (schema: "
    "schemas/outcome-report.v1.json); and a PNG chart per day with --chart FILE (needs "
    "return-handler\\[report]). The range is by the time each outcome was written; days are UTC "
    "days.",
)
def report_command(
    since: Annotated[
        str,
        typer.Option(
            help="Start of the range, included: ISO 8601 date or time, UTC unless it has an "
            "offset.",
            show_default=False,
        ),
    ],
    until: Annotated[
        str | None,
        typer.Option(
            help="End of the range, included; a date alone includes that whole day. Default: now.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON document.")
    ] = False,
    chart: Annotated[
        Path | None,
        typer.Option(
            "--chart",
            metavar="FILE",
            help="Also draw benefits taken back and refused per UTC day into this PNG file.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Add up the outcomes of a time range (the help text is in the decorator)."""
    from service.clock import SystemClock
    from service.operate.chart import ChartUnavailableError, require_matplotlib, write_chart
    from service.operate.progress import reading
    from service.operate.report import read_report, render

    settings = _settings()
    since_at = _time_option("--since", since)
    until_at = (
        _time_option("--until", until, end_of_day=True)
        if until is not None
        else SystemClock().now()
    )
    if until_at < since_at:
        raise _fail(
            f"--until ({until_at.isoformat()}) is before --since ({since_at.isoformat()})", 2
        )
    if chart is not None:
        # Before the read: a missing extra should not cost a long read first.
        try:
            require_matplotlib()
        except ChartUnavailableError as exc:
            raise _fail(str(exc), 2) from exc
    _quiet_kafka_client()
    options = _kafka_options(settings)
    topic = settings.kafka.outcomes_topic
    try:
        with reading(_err, f"reading {topic}") as progress:
            report = asyncio.run(
                read_report(
                    options,
                    topic,
                    since=since_at,
                    until=until_at,
                    progress=progress,
                )
            )
    except ReturnHandlerError as exc:
        raise _operate_error(exc, settings) from exc
    if report.skipped_records:
        _err.print(
            f"warning: {report.skipped_records} record(s) skipped, not outcomes this version "
            "reads; return-handler inspect shows the others",
            markup=False,
            soft_wrap=True,
        )
    if as_json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    else:
        _out.print(render(report), highlight=False)
    if chart is not None:
        try:
            write_chart(report, chart)
        except OSError as exc:
            raise _fail(f"cannot write the chart to {chart}: {exc.strerror or exc}", 2) from exc
        _err.print(f"chart written to {chart}", markup=False, soft_wrap=True)


def _warn_skipped(skipped: Skipped, what: str = "outcomes") -> None:
    if skipped.count:
        _err.print(
            f"warning: {skipped.count} record(s) skipped, not {what} this version reads; "
            f"first: {skipped.examples[0]}",
            markup=False,
            soft_wrap=True,
        )


def main() -> None:
    """Console-script entry point."""
    app()
