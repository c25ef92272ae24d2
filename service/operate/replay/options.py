"""The replay command line as Typer declares it: each option's type and help, and the help.

``service/cli.py`` takes these for ``replay``'s parameters, so its command is only the
parse, the request (``request.py`` checks it) and the call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.operate.sources import SourceKind
from service.outcome import OutcomeStatus

# Typer keeps the line breaks of help paragraphs: each paragraph is one string.
HELP = "\n\n".join(
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

Source = Annotated[
    SourceKind | None,
    typer.Option(help="Where the events come from (not with --resume).", show_default=False),
]
Reason = Annotated[
    str | None, typer.Option(help="Why: copied into every replayed event's outcome. Required.")
]
File = Annotated[
    Path | None, typer.Option(help="--source file: a JSON-lines file, one event a line.")
]
Since = Annotated[
    str | None,
    typer.Option(help="Records written at or after this time (ISO 8601, UTC if no zone)."),
]
Until = Annotated[
    str | None,
    typer.Option(help="Records written at or before this time; a date: its whole day."),
]
Offsets = Annotated[
    list[str] | None,
    typer.Option(help="PARTITION:FROM-TO of the source topic, both included; repeatable."),
]
ErrorType = Annotated[
    list[str] | None,
    typer.Option(
        help="--source dead-letters: json_invalid, invalid_event, empty or rules_error; repeatable."
    ),
]
Status = Annotated[
    list[OutcomeStatus] | None,
    typer.Option(help="--source outcomes: outcomes with this status; repeatable."),
]
Promotion = Annotated[
    str | None,
    typer.Option(
        help="Events whose plan calls about this loyalty promotion (id, promo identifier "
        "or PROGRAM/PROMOTION) or cart promotion id."
    ),
]
EventId = Annotated[list[str] | None, typer.Option(help="Only these event ids; repeatable.")]
IncludeDone = Annotated[
    bool,
    typer.Option("--include-done", help="Replay events whose newest outcome is completed too."),
]
IncludeCancelled = Annotated[
    bool,
    typer.Option(
        "--include-cancelled",
        help="Replay returns that a cancellation gave back since too: they are taken back "
        "again, undoing the give-back. Check with the customer first.",
    ),
]
AllowReissue = Annotated[
    list[str] | None,
    typer.Option(
        metavar="EVENT_ID",
        help="Make give-backs (ENROL, EARN) again for this event although an earlier "
        "outcome shows them made. Capillary's EARN has no idempotency key: check the "
        "customer first. Repeatable.",
    ),
]
Execute = Annotated[
    bool,
    typer.Option("--execute", help="Publish the events for the running service to handle."),
]
Show = Annotated[int, typer.Option(help="Plans of the first N events to print.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the preview summary as JSON.")]
Window = Annotated[
    int,
    typer.Option(min=1, help="Most replayed events published and not yet answered by an outcome."),
]
Resume = Annotated[
    str | None,
    typer.Option(metavar="REPLAY_ID", help="Go on with a stopped replay; publishes the rest."),
]
StateDir = Annotated[Path, typer.Option(help="Where replay manifests are written and found.")]
Grace = Annotated[
    float, typer.Option(help="On Ctrl-C, seconds to wait for the outcomes in flight.")
]
IdleTimeout = Annotated[
    float,
    typer.Option(help="Give up (resumable) when no outcome comes back for this long."),
]
