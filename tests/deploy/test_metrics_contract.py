"""The chart's alerts and dashboard read what the service really exports."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from service.observe.metrics import Metrics, Watch
from tests.deploy.chart_metrics import CHART_METRICS


def _exported() -> dict[str, tuple[str, dict[str, set[str]]]]:
    """Family name as written (counters with _total) -> (type, label -> values seen)."""
    metrics = Metrics()
    metrics.watch(
        Watch(
            in_flight=lambda: 0,
            ready=lambda: True,
            paused_reason=lambda: None,
            lag=lambda: {("returns", 0): 0},
            last_progress=lambda: 0.0,
        )
    )
    # Observe once what has no series before its first event, so its labels show.
    metrics.events_consumed.labels("returns").inc()
    metrics.capillary_call_duration.labels("loyalty_revoke").observe(0.1)
    metrics.coalesced_call_size.labels("loyalty_revoke").observe(3)
    found: dict[str, tuple[str, dict[str, set[str]]]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        name = f"{family.name}_total" if family.type == "counter" else family.name
        labels: dict[str, set[str]] = {}
        for sample in family.samples:
            for key, value in sample.labels.items():
                if key != "le":
                    labels.setdefault(key, set()).add(value)
        found[name] = (family.type, labels)
    return found


def test_every_metric_of_the_chart_is_exported_with_its_type_and_labels() -> None:
    exported = _exported()
    for name, metric in CHART_METRICS.items():
        assert name in exported, f"the chart reads {name}, which the service does not export"
        kind, labels = exported[name]
        assert kind == metric.kind, name
        assert set(labels) == set(metric.labels), name
        for label, values in metric.labels.items():
            if values is not None:
                # Every value the chart expects is one the service writes, and vice versa.
                assert labels[label] >= set(values) or label == "endpoint", (name, label)
                assert labels[label] <= set(values), (name, label)
