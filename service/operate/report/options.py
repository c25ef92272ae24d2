"""The report command line as Typer declares it: each option's type and help, and the help."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

HELP = "\n\n".join(
    [
        "What the outcomes of a time range add up to, for analytics and finance: events by "
        "return type and status, benefits taken back and given back by kind, refusals "
        "(redeemed benefits, with those flagged for clawback), failures by next step, "
        "duplicates and replays apart, and a row per UTC day.",
        "As tables; as JSON with --json (schema: schemas/outcome-report.v1.json); and a PNG "
        "chart per day with --chart FILE (needs return-handler\\[report]). The range is by the "
        "time each outcome was written; days are UTC days.",
    ]
)

Since = Annotated[
    str,
    typer.Option(
        help="Start of the range, included: ISO 8601 date or time, UTC unless it has an offset.",
        show_default=False,
    ),
]
Until = Annotated[
    str | None,
    typer.Option(
        help="End of the range, included; a date alone includes that whole day. Default: now.",
        show_default=False,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the report as one JSON document.")]
Chart = Annotated[
    Path | None,
    typer.Option(
        "--chart",
        metavar="FILE",
        help="Also draw benefits taken back and refused per UTC day into this PNG file.",
        show_default=False,
    ),
]
