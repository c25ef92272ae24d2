"""Event spans continue the input's trace; requests made for several events link them all."""

from __future__ import annotations

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.observe.tracing import Tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def _recording() -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return Tracing.with_processor(SimpleSpanProcessor(exporter)), exporter


def _event(tracing: Tracing, headers: list[tuple[str, bytes]], event_id: str = "e1"):  # type: ignore[no-untyped-def]
    return tracing.event(headers, topic="returns", partition=2, offset=41, event_id=event_id)


def test_an_event_span_continues_the_inputs_traceparent_and_passes_it_on() -> None:
    tracing, exporter = _recording()
    with _event(tracing, [("traceparent", PARENT.encode())]):
        passed_on = dict(tracing.current_headers())
    [span] = exporter.get_finished_spans()
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert dict(span.attributes or {})["return_handler.event_id"] == "e1"
    version, trace_id, span_id, flags = passed_on["traceparent"].decode().split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    assert span_id == format(span.context.span_id, "016x")


def test_without_an_input_trace_an_event_starts_its_own() -> None:
    tracing, exporter = _recording()
    with _event(tracing, []):
        header = dict(tracing.current_headers())["traceparent"].decode()
    [span] = exporter.get_finished_spans()
    assert span.parent is None
    assert header.split("-")[1] == format(span.context.trace_id, "032x")


def test_off_makes_no_spans_and_passes_the_inputs_context_on() -> None:
    tracing = Tracing.off()
    with _event(tracing, [("traceparent", PARENT.encode()), ("tracestate", b"k=v")]) as span:
        assert tracing.capture() is None
        with tracing.on_behalf_of([tracing.capture()]), tracing.request("cart_revoke", 1) as call:
            assert not call.is_recording()
        passed_on = tracing.current_headers()
    assert not span.is_recording()
    assert passed_on == [("traceparent", PARENT.encode()), ("tracestate", b"k=v")]
    assert tracing.current_headers() == []  # nothing outside an event


def test_off_passes_nothing_on_for_an_event_without_a_trace() -> None:
    tracing = Tracing.off()
    with _event(tracing, [("rh-attempt", b"2")]):
        assert tracing.current_headers() == []


def test_a_request_for_several_events_is_a_child_of_the_first_and_links_the_others() -> None:
    tracing, exporter = _recording()
    contexts = []
    for event_id in ("a", "b", "c"):
        with _event(tracing, [], event_id):
            contexts.append(tracing.capture())
    with tracing.on_behalf_of(contexts), tracing.request("loyalty_revoke", 1):
        pass
    events = {
        dict(s.attributes or {}).get("return_handler.event_id"): s
        for s in exporter.get_finished_spans()
    }
    request = events[None]
    assert request.name == "capillary loyalty_revoke"
    assert request.parent is not None
    assert request.parent.span_id == events["a"].context.span_id
    assert {link.context.span_id for link in request.links} == {
        events["b"].context.span_id,
        events["c"].context.span_id,
    }
