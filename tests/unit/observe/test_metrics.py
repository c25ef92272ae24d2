"""The metric names are a contract with the chart's alerts and dashboard."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from service.observe.metrics import Metrics, Watch

CONTRACT = {
    "return_handler_events_consumed_total",
    "return_handler_outcomes_total",
    "return_handler_dead_letters_total",
    "return_handler_duplicates_total",
    "return_handler_capillary_calls_total",
    "return_handler_capillary_call_duration_seconds",
    "return_handler_capillary_retries_total",
    "return_handler_capillary_throttled_total",
    "return_handler_events_in_flight",
    "return_handler_coalesced_call_size",
    "return_handler_consumer_lag",
    "return_handler_paused",
    "return_handler_transactions_total",
    "return_handler_ready",
    "return_handler_last_progress_timestamp_seconds",
}


def _watched() -> Metrics:
    metrics = Metrics()
    metrics.watch(
        Watch(
            in_flight=lambda: 7,
            ready=lambda: False,
            paused_reason=lambda: "capillary_outage",
            lag=lambda: {("returns", 1): 12, ("returns", 0): 0},
            last_progress=lambda: 1_700_000_000.0,
        )
    )
    return metrics


def test_every_name_the_chart_relies_on_is_exported() -> None:
    assert _watched().names() >= CONTRACT


def test_states_are_read_at_scrape_time() -> None:
    metrics = _watched()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }
    assert samples[("return_handler_events_in_flight", ())] == 7
    assert samples[("return_handler_ready", ())] == 0
    assert samples[("return_handler_paused", (("reason", "capillary_outage"),))] == 1
    assert (
        samples[("return_handler_consumer_lag", (("partition", "1"), ("topic", "returns")))] == 12
    )
    # Known series exist from the start, at zero, so alerts see their first increase.
    assert samples[("return_handler_outcomes_total", (("status", "failed"),))] == 0
    assert samples[("return_handler_transactions_total", (("result", "aborted"),))] == 0


def test_two_services_in_one_process_do_not_share_metrics() -> None:
    first, second = Metrics(), Metrics()
    first.duplicates.inc()
    assert first.registry.get_sample_value("return_handler_duplicates_total") == 1
    assert second.registry.get_sample_value("return_handler_duplicates_total") == 0
