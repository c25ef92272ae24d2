"""Times given on the command line (``--since``, ``--until``): ISO 8601, read as UTC.

The tools' days are UTC days, so a time without an offset is UTC, never the machine's local
time: the same command gives the same answer wherever it runs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

EXAMPLES = "e.g. 2026-11-20, 2026-11-20T10:00:00Z or 2026-11-20T11:00:00+01:00"


def parse_time(text: str, *, end_of_day: bool = False) -> datetime:
    """``text`` as an aware UTC datetime.

    A date alone is the start of that UTC day, or its last millisecond with ``end_of_day``
    (so ``--until 2026-11-25`` includes the whole 25th). Raises ``ValueError`` with a message
    an operator can act on.
    """
    text = text.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        start = datetime.combine(day, time(), UTC)
        # Kafka's timestamps are milliseconds: the day's last one is the end of the day.
        return start + timedelta(days=1, milliseconds=-1) if end_of_day else start
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date or time ({EXAMPLES})") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


__all__ = ["EXAMPLES", "parse_time"]
