"""``return-handler report --chart FILE``: benefits taken back and refused per UTC day, as a PNG.

matplotlib is an optional extra (``return-handler[report]``): the service's image never
carries it, only this chart needs it, so it is imported here and nowhere else, when a chart
is asked for. It draws with the Agg backend straight into the file: no pyplot, so no
display is ever looked for and no global figure state is kept.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from service.errors import ConfigurationError
from service.operate.report.model import OutcomeReport

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# Beyond two months of days, bars get too thin to read: lines instead.
BARS_UP_TO_DAYS = 62
# Beyond a fortnight, numbers above the bars overlap one another.
LABELS_UP_TO_DAYS = 14
TAKEN_BACK_COLOUR = "#2e7d32"
REFUSED_COLOUR = "#ef6c00"


class ChartUnavailableError(ConfigurationError):
    """--chart was asked for, but matplotlib (the ``report`` extra) is not installed."""

    next_step = "install return-handler[report] (pip install 'return-handler[report]')"


def require_matplotlib() -> None:
    """Raise :class:`ChartUnavailableError` unless matplotlib can be imported.

    Called before reading the topic, so a missing extra fails at once, not after a long read.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ChartUnavailableError("--chart needs matplotlib, which is not installed") from exc


def write_chart(report: OutcomeReport, path: Path) -> None:
    """Draw ``report``'s days into the PNG file ``path``."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    days = report.days
    figure = Figure(figsize=(10, 5), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    taken_back = [d.taken_back for d in days]
    refused = [d.refused for d in days]
    positions = list(range(len(days)))
    if len(days) <= BARS_UP_TO_DAYS:
        width = 0.4
        bars = [
            axes.bar(
                [p - width / 2 for p in positions],
                taken_back,
                width,
                label="taken back (revoked)",
                color=TAKEN_BACK_COLOUR,
            ),
            axes.bar(
                [p + width / 2 for p in positions],
                refused,
                width,
                label="refused (redeemed, refused, not found, kept)",
                color=REFUSED_COLOUR,
            ),
        ]
        if len(days) <= LABELS_UP_TO_DAYS:
            for container, values in zip(bars, (taken_back, refused), strict=True):
                axes.bar_label(container, labels=[str(v) if v else "" for v in values])
    else:
        axes.plot(positions, taken_back, label="taken back (revoked)", color=TAKEN_BACK_COLOUR)
        axes.plot(
            positions,
            refused,
            label="refused (redeemed, refused, not found, kept)",
            color=REFUSED_COLOUR,
        )
    _day_ticks(axes, [d.day.strftime("%a %d %b") for d in days])
    axes.set_xlabel("day (UTC)")
    axes.set_ylabel("benefits (items: earns, coupons, enrolments)")
    # Counts are whole numbers: no 0.5 ticks on a quiet range.
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylim(bottom=0, top=max([*taken_back, *refused, 1]) * 1.15)
    axes.grid(axis="y", alpha=0.3)
    # Below the axes, so it never covers a bar or a number.
    figure.legend(loc="outside lower center", ncols=2, frameon=False)
    figure.suptitle(title(report))
    totals = report.totals
    axes.set_title(
        f"{report.topic}: {totals.events} event(s), {totals.taken_back} taken back, "
        f"{totals.refusals} refused ({totals.redeemed} redeemed, "
        f"{totals.flagged_for_clawback} flagged for clawback)",
        fontsize="small",
        color="dimgray",
    )
    figure.savefig(path, format="png")


def title(report: OutcomeReport) -> str:
    """The chart's title: what it shows and the range, so a copied image still says both."""
    return (
        f"Benefits taken back and refused per UTC day, {_day(report.since)} to {_day(report.until)}"
    )


def _day_ticks(axes: Axes, labels: list[str]) -> None:
    # At most about 15 labelled days, evenly spaced, so they never run into each other.
    step = max(1, -(-len(labels) // 15))
    ticks = list(range(0, len(labels), step))
    slanted = len(ticks) > 8
    axes.set_xticks(
        ticks,
        [labels[t] for t in ticks],
        rotation=30 if slanted else 0,
        ha="right" if slanted else "center",
    )
    axes.set_xlim(-0.6, len(labels) - 0.4)


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


__all__ = ["ChartUnavailableError", "require_matplotlib", "title", "write_chart"]
