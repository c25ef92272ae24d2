"""The report's one read: a range of the outcomes topic, folded as it is read."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from service.kafka.span import Progress, Span
from service.operate.outcomes import Skipped, read_outcomes
from service.operate.report.aggregate import ReportBuilder
from service.operate.report.model import OutcomeReport


async def read_report(
    client_options: Mapping[str, Any],
    topic: str,
    *,
    since: datetime,
    until: datetime,
    progress: Progress | None = None,
) -> OutcomeReport:
    """Read ``topic`` between ``since`` and ``until`` and fold it into a report.

    ``client_options`` come from ``service.operate.connect.client_options``.
    """
    builder = ReportBuilder(topic=topic, since=since, until=until)
    skipped = Skipped()
    async for _, outcome in read_outcomes(
        client_options, topic, Span(since=since, until=until), skipped=skipped, progress=progress
    ):
        builder.add(outcome)
    return builder.build(skipped_records=skipped.count)


__all__ = ["read_report"]
