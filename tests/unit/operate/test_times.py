"""--since and --until: ISO 8601 dates and times, read as UTC."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.operate.times import parse_time


@pytest.mark.parametrize(
    ("text", "end_of_day", "expected"),
    [
        ("2026-11-20", False, datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20", True, datetime(2026, 11, 20, 23, 59, 59, 999_000, tzinfo=UTC)),
        ("2026-11-20T10:00:00Z", True, datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20T11:00:00+01:00", False, datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20T10:00", False, datetime(2026, 11, 20, 10, tzinfo=UTC)),
    ],
)
def test_parse_time_reads_dates_and_times_as_utc(
    text: str, end_of_day: bool, expected: datetime
) -> None:
    assert parse_time(text, end_of_day=end_of_day) == expected


def test_parse_time_of_something_else_says_what_it_wants() -> None:
    with pytest.raises(ValueError, match=r"'yesterday' is not an ISO 8601 date or time \(e.g. "):
        parse_time("yesterday")
