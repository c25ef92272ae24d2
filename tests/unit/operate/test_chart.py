"""report --chart: a real PNG from a report; without matplotlib, one line saying what to install."""

from __future__ import annotations

import socket
import struct
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.operate.report import OutcomeReport, summarize
from service.operate.report.chart import (
    ChartUnavailableError,
    require_matplotlib,
    title,
    write_chart,
)
from service.outcome import ActionStatus
from tests.unit.operate.build import DAY, action, item, outcome

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _report(days: int) -> OutcomeReport:
    outcomes = [
        outcome(
            action("revoke_loyalty_earn", *[item(ActionStatus.REVOKED)] * (n % 4 + 1)),
            action("revoke_coupon_codes", item(ActionStatus.REFUSED_REDEEMED)),
            event_id=f"evt-{n}",
            processed_at=DAY + timedelta(days=n),
        )
        for n in range(days)
    ]
    return summarize(
        outcomes,
        topic="return-outcomes",
        since=DAY,
        until=DAY + timedelta(days=days - 1),
    )


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    # The first chunk of a PNG is IHDR: length, type, then width and height (big-endian).
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert data[-12:] == b"\x00\x00\x00\x00IEND\xaeB`\x82"
    return width, height


@pytest.mark.parametrize("days", [1, 7, 90], ids=["one day", "a week of bars", "lines"])
def test_write_chart_writes_a_png_of_a_readable_size(tmp_path: Path, days: int) -> None:
    path = tmp_path / "report.png"
    write_chart(_report(days), path)
    width, height = _png_size(path)
    assert (800, 400) <= (width, height) <= (2400, 1600)
    # Axes, labels, a title and bars: an empty canvas would be a few kilobytes.
    assert path.stat().st_size > 15_000


def test_without_matplotlib_require_says_to_install_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # None in sys.modules makes `import matplotlib` raise ImportError, as if not installed.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ChartUnavailableError) as raised:
        require_matplotlib()
    assert "install return-handler[report]" in str(raised.value)


def test_report_chart_without_matplotlib_fails_in_one_line_before_reading(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    # Nothing listens there: had the command read first, it would fail on Kafka instead.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("RETURN_HANDLER_KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{port}")
    chart = tmp_path / "report.png"
    result = CliRunner().invoke(app, ["report", "--since", "2026-11-20", "--chart", str(chart)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: --chart needs matplotlib, which is not installed")
    assert "install return-handler[report]" in lines[0]
    assert not chart.exists()


def test_report_with_until_before_since_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["report", "--since", "2026-11-20", "--until", "2026-11-19T23:00:00Z"]
    )
    assert result.exit_code == 2
    assert result.output.startswith("error: --until (2026-11-19T23:00:00+00:00) is before --since")


def test_the_title_names_the_range_in_utc_days() -> None:
    report = summarize(
        [],
        topic="return-outcomes",
        since=datetime(2026, 11, 20, 23, 30, tzinfo=timezone(timedelta(hours=-5))),
        until=datetime(2026, 11, 25, 23, 59, tzinfo=UTC),
    )
    assert title(report) == (
        "Benefits taken back and refused per UTC day, 2026-11-21 to 2026-11-25"
    )
