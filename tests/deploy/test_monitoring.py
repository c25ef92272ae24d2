"""The chart's monitoring: ServiceMonitor, the alerts, the Grafana dashboard.

Every PromQL expression (alerts, dashboard panels and variables) is parsed with
promql-parser and may read only the metrics, labels and label values in
``chart_metrics.CHART_METRICS``; every alert has a summary, a description and a one-line
runbook, and the deploy page (docs/deploy/index.md) explains each one.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.deploy.chart_metrics import CHART_METRICS, TARGET_LABELS, series
from tests.deploy.helm import FULLNAME, NAMESPACE, Manifest, find, kinds, render, values_file

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_ALERTS = {
    "ReturnHandlerConsumerLagGrowing",
    "ReturnHandlerDeadLetters",
    "ReturnHandlerFailedOutcomes",
    "ReturnHandlerCancellationsOfUnknownReturns",
    "ReturnHandlerCouponsRevokedBeyondRequest",
    "ReturnHandlerPausedForCapillaryOutage",
    "ReturnHandlerCapillaryThrottled",
    "ReturnHandlerNotReady",
    "ReturnHandlerDown",
    "ReturnHandlerStalled",
}
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$namespace": "returns", "$job": "returns-rh"}


def _promql() -> ModuleType:
    """PyPI's promql-parser (a dev dependency), imported here so that its absence fails the
    PromQL checks with a clear message instead of the whole module."""
    try:
        return importlib.import_module("promql_parser")
    except ModuleNotFoundError:
        pytest.fail(
            "promql-parser is missing: it belongs in the dev extra (pip install -e '.[dev]')",
            pytrace=False,
        )


def promql_problems(expr: str) -> list[str]:
    """What is wrong with one PromQL expression: unparsable, or reading what no metric has."""
    promql = _promql()
    try:
        tree = promql.parse(expr)
    except ValueError as error:
        return [f"does not parse ({error}): {expr}"]
    problems: list[str] = []
    used_labels: set[str] = set()
    grouping: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql.VectorSelector):
            try:
                name, metric, extra = series(node.name or "")
            except KeyError:
                problems.append(f"unknown metric {node.name!r}")
                return
            allowed = set(metric.labels) | TARGET_LABELS | extra
            used_labels.update(allowed)
            for matcher in node.matchers.matchers:
                values = metric.labels.get(matcher.name)
                if matcher.name not in allowed:
                    problems.append(f"{name} has no label {matcher.name!r}")
                elif (
                    values is not None
                    and matcher.op == promql.MatchOp.Equal
                    and matcher.value not in values
                ):
                    problems.append(f"{name}{{{matcher.name}}} is never {matcher.value!r}")
        if isinstance(node, promql.AggregateExpr) and node.modifier is not None:
            grouping.update(node.modifier.labels)

    promql.walk(tree, visit)
    problems += [f"groups by {label!r}, which no metric has" for label in grouping - used_labels]
    return problems


def test_promql_problems_finds_unknown_metrics_labels_and_values() -> None:
    assert promql_problems("sum(rate(return_handler_outcomes_total[5m]))") == []
    assert promql_problems("rate(return_handler_events_total[5m])") == [
        "unknown metric 'return_handler_events_total'"
    ]
    assert promql_problems('return_handler_outcomes_total{state="failed"}') == [
        "return_handler_outcomes_total has no label 'state'"
    ]
    assert promql_problems('return_handler_outcomes_total{status="error"}') == [
        "return_handler_outcomes_total{status} is never 'error'"
    ]
    assert promql_problems("sum by (endpoint) (return_handler_ready)") == [
        "groups by 'endpoint', which no metric has"
    ]
    assert promql_problems("sum(rate(x[5m])")[0].startswith("does not parse")
    assert promql_problems("return_handler_capillary_call_duration_seconds_bucket{le='1'}") == []


# --- ServiceMonitor ------------------------------------------------------------------------------


def test_monitoring_objects_are_off_by_default() -> None:
    assert not kinds(render()) & {"ServiceMonitor", "PrometheusRule"}
    names = [m["metadata"]["name"] for m in render()]
    assert f"{FULLNAME}-dashboard" not in names


def test_the_service_monitor_scrapes_metrics_from_the_http_port_of_the_service() -> None:
    manifests = render([values_file("all-on")])
    monitor = find(manifests, "ServiceMonitor")
    service = find(manifests, "Service")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert (endpoint["path"], endpoint["interval"], endpoint["scrapeTimeout"]) == (
        "/metrics",
        "15s",
        "5s",
    )
    # The Capillary metrics' own endpoint label must not become exported_endpoint.
    assert {"action": "labeldrop", "regex": "endpoint"} in endpoint["relabelings"]


# --- PrometheusRule ------------------------------------------------------------------------------


def _alerts(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    rule = find(manifests, "PrometheusRule")
    alerts = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    by_name = {alert["alert"]: alert for alert in alerts}
    assert len(by_name) == len(alerts), "two alerts share a name"
    return by_name


def test_the_rules_have_every_alert_the_operators_need() -> None:
    assert set(_alerts(render(sets=["prometheusRule.enabled=true"]))) == EXPECTED_ALERTS


@pytest.mark.parametrize("alert", sorted(EXPECTED_ALERTS))
def test_each_alert_reads_only_the_services_metrics(alert: str) -> None:
    rule = _alerts(render(sets=["prometheusRule.enabled=true"]))[alert]
    assert promql_problems(rule["expr"]) == []
    # Every series the alert reads is this release's.
    assert rule["expr"].count('namespace="returns",job="returns-return-handler"') >= 1


@pytest.mark.parametrize("alert", sorted(EXPECTED_ALERTS))
def test_each_alert_has_a_summary_a_description_and_a_one_line_runbook(alert: str) -> None:
    rule = _alerts(render([values_file("all-on")]))[alert]
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook"}
    runbook = annotations["runbook"]
    assert "\n" not in runbook.strip()
    # What it means, then what to do.
    assert ": " in runbook, runbook
    assert len(runbook) > 80, runbook
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["labels"]["team"] == "returns"


def test_the_alert_thresholds_and_selector_come_from_the_values() -> None:
    alerts = _alerts(
        render(
            sets=[
                "prometheusRule.enabled=true",
                "prometheusRule.pausedFor=3m",
                "prometheusRule.lagThreshold=42",
                'prometheusRule.selector=cluster="eu"',
            ]
        )
    )
    assert alerts["ReturnHandlerPausedForCapillaryOutage"]["for"] == "3m"
    assert "> 42" in alerts["ReturnHandlerConsumerLagGrowing"]["expr"]
    assert 'return_handler_ready{cluster="eu"}' in alerts["ReturnHandlerDown"]["expr"]


def _deploy_page() -> str:
    return (ROOT / "docs" / "deploy" / "index.md").read_text(encoding="utf-8")


def test_the_deploy_page_explains_every_alert() -> None:
    rows = re.findall(r"^\| `(ReturnHandler\w+)` \|", _deploy_page(), flags=re.MULTILINE)
    assert set(rows) == EXPECTED_ALERTS


# --- the Grafana dashboard -----------------------------------------------------------------------


def _dashboard(manifests: list[Manifest]) -> dict[str, Any]:
    configmap = find(manifests, "ConfigMap", f"{FULLNAME}-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    [(name, text)] = configmap["data"].items()
    assert name.endswith(".json")
    dashboard: dict[str, Any] = json.loads(text)
    return dashboard


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def _grafana_expr(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def test_the_dashboard_configmap_carries_the_sidecars_label_and_annotations() -> None:
    manifests = render([values_file("all-on")])
    configmap = find(manifests, "ConfigMap", f"{FULLNAME}-dashboard")
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Returns"}
    relabelled = render(
        sets=["grafanaDashboard.enabled=true", "grafanaDashboard.labels.grafana_dashboard=null"]
    )
    labels = find(relabelled, "ConfigMap", f"{FULLNAME}-dashboard")["metadata"]["labels"]
    assert "grafana_dashboard" not in labels


def test_every_dashboard_query_reads_only_the_services_metrics() -> None:
    dashboard = _dashboard(render([values_file("all-on")]))
    problems = {}
    for panel in _panels(dashboard):
        for target in panel["targets"]:
            found = promql_problems(_grafana_expr(target["expr"]))
            if found:
                problems[f"{panel['title']}/{target['refId']}"] = found
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            inner = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
            assert inner, variable["query"]
            found = promql_problems(_grafana_expr(inner.group(1)))
            if found:
                problems[f"${variable['name']}"] = found
    assert problems == {}


def test_the_dashboard_shows_every_metric_the_chart_relies_on() -> None:
    dashboard = _dashboard(render([values_file("all-on")]))
    exprs = " ".join(t["expr"] for p in _panels(dashboard) for t in p["targets"])
    missing = [name for name in CHART_METRICS if name not in exprs]
    assert missing == []


def test_the_dashboard_has_the_panels_operators_look_for() -> None:
    titles = " | ".join(p["title"] for p in _panels(_dashboard(render([values_file("all-on")]))))
    for words in (
        "Throughput",
        "Outcomes / s by status",
        "lag per partition",
        "in flight",
        "Capillary calls",
        "p50 / p99",
        "429",
        "retries",
        "Coalesced call size",
        "Paused",
        "transactions",
    ):
        assert words.lower() in titles.lower(), words


def test_the_dashboard_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = _dashboard(render([values_file("all-on")]))["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, panel["title"]
        cells |= area
