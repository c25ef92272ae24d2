"""The metrics the chart's alerts and Grafana dashboard rely on: the one list of them.

These are the names and labels the service exports on /metrics. The tests in this folder
check that every PromQL expression of the chart reads only these (and their labels and
label values), so this constant is also what to cross-check against the service's own
registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple

CAPILLARY_ENDPOINTS = frozenset(
    {"loyalty_revoke", "loyalty_enrol", "cart_revoke", "coupon_revoke", "deactivate", "oauth_token"}
)


class Metric(NamedTuple):
    """One metric: its type and, per label, the values it takes (None: any value)."""

    kind: Literal["counter", "gauge", "histogram"]
    labels: Mapping[str, frozenset[str] | None]


CHART_METRICS: Mapping[str, Metric] = {
    "return_handler_events_consumed_total": Metric("counter", {"topic": None}),
    "return_handler_outcomes_total": Metric(
        "counter",
        {
            "status": frozenset(
                {"completed", "failed", "duplicate", "needs_check", "return_unknown"}
            )
        },
    ),
    "return_handler_dead_letters_total": Metric("counter", {"reason": None}),
    "return_handler_duplicates_total": Metric("counter", {}),
    "return_handler_capillary_calls_total": Metric(
        "counter",
        {
            "endpoint": CAPILLARY_ENDPOINTS,
            "result": frozenset(
                {"ok", "client_error", "server_error", "throttled", "timeout", "unreachable"}
            ),
        },
    ),
    "return_handler_capillary_call_duration_seconds": Metric(
        "histogram", {"endpoint": CAPILLARY_ENDPOINTS}
    ),
    "return_handler_capillary_retries_total": Metric("counter", {"endpoint": CAPILLARY_ENDPOINTS}),
    "return_handler_capillary_throttled_total": Metric(
        "counter", {"endpoint": CAPILLARY_ENDPOINTS}
    ),
    "return_handler_events_in_flight": Metric("gauge", {}),
    "return_handler_coalesced_call_size": Metric("histogram", {"endpoint": CAPILLARY_ENDPOINTS}),
    "return_handler_coupons_revoked_beyond_request_total": Metric("counter", {}),
    "return_handler_consumer_lag": Metric("gauge", {"topic": None, "partition": None}),
    "return_handler_paused": Metric("gauge", {"reason": frozenset({"capillary_outage"})}),
    "return_handler_transactions_total": Metric(
        "counter", {"result": frozenset({"committed", "aborted"})}
    ),
    "return_handler_ready": Metric("gauge", {}),
    "return_handler_last_progress_timestamp_seconds": Metric("gauge", {}),
}
"""Metric names as they appear in the /metrics text (counters with their ``_total``)."""

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

TARGET_LABELS = frozenset({"namespace", "job", "pod", "instance", "service", "container"})
"""Labels Prometheus adds to every series it scrapes through the chart's ServiceMonitor.

Not ``endpoint``: the ServiceMonitor drops that target label, because the Capillary metrics
carry their own ``endpoint`` label.
"""


def series(name: str) -> tuple[str, Metric, frozenset[str]]:
    """The metric a series name belongs to, and the labels it may carry beyond the metric's.

    A histogram is read as ``_bucket`` (with ``le``), ``_sum`` and ``_count``; any other
    name must be in :data:`CHART_METRICS` as it is. ``KeyError`` for a name it does not know.
    """
    if name in CHART_METRICS and CHART_METRICS[name].kind != "histogram":
        return name, CHART_METRICS[name], frozenset()
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and base in CHART_METRICS and CHART_METRICS[base].kind == "histogram":
            return base, CHART_METRICS[base], frozenset({"le"} if suffix == "_bucket" else ())
    raise KeyError(name)
