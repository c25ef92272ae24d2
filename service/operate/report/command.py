"""``return-handler report``'s read and print: the range read under a progress bar, then the
tables or the JSON. ``service/cli.py`` checks the range first and draws the chart after."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich.console import Console

from service.operate.progress import reading
from service.operate.report.model import OutcomeReport
from service.operate.report.render import render
from service.operate.report.topic import read_report


async def show_report(
    client_options: Mapping[str, Any],
    topic: str,
    *,
    since: datetime,
    until: datetime,
    as_json: bool,
    out: Console,
    err: Console,
) -> OutcomeReport:
    """Read ``topic`` between ``since`` and ``until`` and print the report; return it."""
    with reading(err, f"reading {topic}") as progress:
        found = await read_report(
            client_options, topic, since=since, until=until, progress=progress
        )
    if found.skipped_records:
        err.print(
            f"warning: {found.skipped_records} record(s) skipped, not outcomes this version "
            "reads; return-handler inspect shows the others",
            markup=False,
            soft_wrap=True,
        )
    if as_json:
        sys.stdout.write(found.model_dump_json(indent=2) + "\n")
    else:
        out.print(render(found), highlight=False)
    return found


__all__ = ["show_report"]
