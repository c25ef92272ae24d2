"""Each request to Capillary is counted, timed and traced, with its request id."""

from __future__ import annotations

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from service.capillary.requests import CartRevoke
from service.observe.metrics import Metrics
from service.observe.tracing import Tracing
from tests.unit.capillary.helpers import (
    CART,
    CART_OK,
    EARN,
    FakeCapillary,
    make_harness,
    reply,
)


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_a_throttled_attempt_then_an_answer_counts_both_and_one_retry() -> None:
    fake = FakeCapillary()
    fake.script(CART, reply(429, headers={"Retry-After": "1"}), reply(200, CART_OK))
    metrics = Metrics()
    h = make_harness(fake, metrics=metrics)
    async with h.client:
        await h.client.revoke_cart_earns(CartRevoke(5, EARN))

    calls = "return_handler_capillary_calls_total"
    assert _value(metrics, calls, endpoint="cart_revoke", result="throttled") == 1
    assert _value(metrics, calls, endpoint="cart_revoke", result="ok") == 1
    assert _value(metrics, "return_handler_capillary_throttled_total", endpoint="cart_revoke") == 1
    assert _value(metrics, "return_handler_capillary_retries_total", endpoint="cart_revoke") == 1
    assert (
        _value(
            metrics, "return_handler_capillary_call_duration_seconds_count", endpoint="cart_revoke"
        )
        == 2
    )


async def test_server_errors_and_unreachable_are_told_apart() -> None:
    fake = FakeCapillary()
    fake.script(CART, reply(503), reply(200, CART_OK))
    metrics = Metrics()
    h = make_harness(fake, metrics=metrics)
    async with h.client:
        await h.client.revoke_cart_earns(CartRevoke(5, EARN))
    calls = "return_handler_capillary_calls_total"
    assert _value(metrics, calls, endpoint="cart_revoke", result="server_error") == 1
    assert _value(metrics, calls, endpoint="cart_revoke", result="throttled") == 0


async def test_each_attempt_is_a_span_with_its_request_id_and_result() -> None:
    fake = FakeCapillary()
    fake.script(CART, reply(503), reply(200, CART_OK))
    exporter = InMemorySpanExporter()
    tracing = Tracing.with_processor(SimpleSpanProcessor(exporter))
    h = make_harness(fake, tracing=tracing)
    async with h.client:
        await h.client.revoke_cart_earns(CartRevoke(5, EARN))

    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["capillary cart_revoke", "capillary cart_revoke"]
    first, second = (dict(s.attributes or {}) for s in spans)
    assert first["capillary.request_id"] == "req-1"
    assert first["http.response.status_code"] == 503
    assert first["capillary.result"] == "server_error"
    assert spans[0].status.status_code is StatusCode.ERROR
    assert (second["capillary.request_id"], second["capillary.attempt"]) == ("req-2", 2)
    assert second["capillary.result"] == "ok"
