"""The report for people: rich tables on the terminal, headline first."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from service.events import ReturnType
from service.operate.report.model import ItemCount, OutcomeReport
from service.outcome import ActionStatus, OutcomeStatus


def render(report: OutcomeReport) -> RenderableType:
    """The report as rich tables, headline first."""
    totals = report.totals
    head = Text()
    head.append(f"Outcomes of {report.topic}", style="bold")
    head.append(f", {_when(report.since)} to {_when(report.until)}\n")
    head.append(
        f"{totals.outcomes} outcome(s): {totals.events} event(s), "
        f"{totals.duplicates} duplicate(s), {totals.replays} replay(s)"
    )
    if report.skipped_records:
        head.append(
            f"; {report.skipped_records} record(s) skipped (not outcomes this version reads)",
            style="yellow",
        )
    head.append(
        f"\nTaken back: {totals.taken_back} item(s), and {totals.already_revoked} already "
        f"revoked before · given back: {totals.given_back}, and {totals.already_restored} "
        "already restored"
        f"\nRedeemed, not taken back: {totals.redeemed} ({totals.flagged_for_clawback} flagged "
        f"for clawback) · other refusals: {totals.refusals - totals.redeemed}"
        f"\nFailed: {totals.failed} outcome(s) · needs check: {totals.needs_check}"
    )
    if totals.return_unknown:
        latest = ", ".join(report.return_unknown_event_ids)
        head.append(
            f"\nReturn unknown: {totals.return_unknown} cancellation(s) of a return the ledger "
            f"does not know, nothing given back (latest: {latest})",
            style="magenta",
        )
    else:
        head.append("\nReturn unknown: 0")
    parts: list[RenderableType] = [
        head,
        _events_table(report),
        _items_table(
            "Benefits taken back (items)",
            report.taken_back,
            {ActionStatus.REVOKED: "revoked", ActionStatus.ALREADY_REVOKED: "already revoked"},
            not_asked=True,
        ),
        _items_table(
            "Benefits given back (items)",
            report.given_back,
            {ActionStatus.RESTORED: "restored", ActionStatus.ALREADY_RESTORED: "already restored"},
        ),
        _items_table(
            "Refusals (items not taken back)",
            report.refusals,
            {
                ActionStatus.REFUSED_REDEEMED: "redeemed",
                ActionStatus.REFUSED: "refused",
                ActionStatus.NOT_FOUND: "not found",
                ActionStatus.KEPT: "kept",
            },
            clawback=True,
        ),
        _failures_table(report),
        _apart_table(report),
        _days_table(report),
    ]
    # A blank line before each table keeps one title from reading as the last table's footer.
    spaced: list[RenderableType] = [parts[0]]
    for part in parts[1:]:
        spaced += [Text(""), part]
    return Group(*spaced)


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    return table


def _none(title: str) -> Text:
    return Text.assemble((title, "bold"), ": none")


def _events_table(report: OutcomeReport) -> RenderableType:
    title = "Events by return type and status"
    if not report.events:
        return _none(title)
    statuses = [s for s in OutcomeStatus if any(e.status is s for e in report.events)]
    table = _table(title, "return type", *[s.value for s in statuses], "total")
    for return_type in ReturnType:
        row = {e.status: e.outcomes for e in report.events if e.return_type is return_type}
        if row:
            table.add_row(
                return_type.value, *[str(row.get(s, 0)) for s in statuses], str(sum(row.values()))
            )
    return table


def _items_table(
    title: str,
    counts: list[ItemCount],
    columns: dict[ActionStatus, str],
    *,
    not_asked: bool = False,
    clawback: bool = False,
) -> RenderableType:
    if not counts:
        return _none(title)
    extra = (["not asked"] if not_asked else []) + (["flagged for clawback"] if clawback else [])
    table = _table(title, "kind", *columns.values(), *extra)
    kinds = list(dict.fromkeys(c.kind for c in counts))
    for kind in kinds:
        mine = {c.status: c for c in counts if c.kind == kind}
        cells = [str(mine[s].items) if s in mine else "0" for s in columns]
        if not_asked:
            cells.append(str(sum(c.not_asked for c in mine.values())))
        if clawback:
            cells.append(str(sum(c.flagged_for_clawback for c in mine.values())))
        table.add_row(kind, *cells)
    return table


def _failures_table(report: OutcomeReport) -> RenderableType:
    title = "Failures (outcomes that need an operator)"
    if not report.failures:
        return _none(title)
    table = _table(title, "status", "next step", "outcomes", "event ids (latest)")
    table.columns[1].justify = "left"
    table.columns[3].justify = "left"
    for group in report.failures:
        table.add_row(
            group.status.value, group.next_step, str(group.outcomes), ", ".join(group.event_ids)
        )
    return table


def _apart_table(report: OutcomeReport) -> RenderableType:
    table = _table("Duplicates and replays (counted apart)", "", "outcomes", "by")
    table.columns[2].justify = "left"
    table.add_row(
        "duplicates",
        str(report.totals.duplicates),
        ", ".join(f"{d.return_type.value} {d.outcomes}" for d in report.duplicates) or "-",
    )
    table.add_row(
        "replays",
        str(report.totals.replays),
        ", ".join(f"{r.status.value} {r.outcomes}" for r in report.replays) or "-",
    )
    return table


def _days_table(report: OutcomeReport) -> RenderableType:
    title = "Per UTC day"
    busy = [
        d
        for d in report.days
        if d.events or d.taken_back or d.given_back or d.refused or d.failures or d.return_unknown
    ]
    if not busy:
        return _none(title)
    table = _table(
        title, "day", "events", "taken back", "given back", "refused", "failures", "return unknown"
    )
    if len(busy) < len(report.days):
        table.caption = f"{len(report.days) - len(busy)} day(s) without outcomes left out"
    for d in busy:
        table.add_row(
            d.day.isoformat(),
            str(d.events),
            str(d.taken_back),
            str(d.given_back),
            str(d.refused),
            str(d.failures),
            str(d.return_unknown),
        )
    return table


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


__all__ = ["render"]
