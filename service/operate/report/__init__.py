"""``return-handler report``: a time range of outcomes added up, for analytics and finance.

- ``model``: the report as ``--json`` prints it (versioned; the schema is generated from it).
- ``aggregate``: the figures, folded one outcome at a time; pure, no I/O and no clock.
- ``topic``: the one read, a range of the outcomes topic folded as it is read.
- ``render``: the tables on the terminal.
- ``chart``: the PNG per UTC day (``--chart``; matplotlib only there).
- ``command``: the command's read under a progress bar, then the tables or the JSON.
- ``options``: the command line as Typer declares it (types, help texts).

What counts where, so the figures add up without counting anything twice:

- events: the outcomes of input events as delivered (neither duplicates nor replays), by
  return type and status; one per input event.
- duplicates and replays: counted apart. A duplicate made no call. A replay's items do
  count below (what it revoked was taken back then; what an earlier attempt had revoked
  reads ``already_revoked``), and a failed replay is a failure.
- benefits: item results, by action kind and status. Taken back: ``revoked`` (now) and
  ``already_revoked`` (an earlier attempt of the same event did it). Given back: ``restored``
  and ``already_restored``. Refusals: ``refused_redeemed`` (the customer used it: with how
  many were flagged for clawback), ``refused``, ``not_found`` and ``kept``.
- failures: ``failed`` and ``needs_check`` outcomes, grouped by the next step their failed
  (or unconfirmed) actions name.
- return unknown: ``return_unknown`` outcomes (a cancellation of a return the service's
  ledger does not know: nothing given back, an operator looks), counted apart from the
  failures, with a few of their event ids.
- days: UTC days of ``processed_at``; every day of the range is listed, empty ones too.
"""

from service.operate.report.aggregate import NO_NEXT_STEP, ReportBuilder, summarize
from service.operate.report.model import REPORT_SCHEMA_VERSION, OutcomeReport
from service.operate.report.render import render
from service.operate.report.topic import read_report

__all__ = [
    "NO_NEXT_STEP",
    "REPORT_SCHEMA_VERSION",
    "OutcomeReport",
    "ReportBuilder",
    "read_report",
    "render",
    "summarize",
]
