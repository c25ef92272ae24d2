"""OpenTelemetry: a trace per event, a span per Capillary request, the context passed on.

An event's span continues the trace of the input's ``traceparent`` header when there is
one; its context goes into the outcome's headers, so whoever reads the outcome continues
the same trace. A request that carries several events' items (coalesced) is a child of the
first event's span and links to the others'.

The tracer provider is built here and passed in, never installed as OpenTelemetry's
global: two services in one process (tests) must not share it. Without an exporter
nothing would ever see our spans, so none are made: the outcome passes the input's trace
context on as it came. Spans cost the service about a
tenth of its CPU under load (make bench), which only an exporter makes worth paying.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

Headers = Sequence[tuple[str, bytes]]
TRACE_HEADERS = ("traceparent", "tracestate")

_propagator = TraceContextTextMapPropagator()
_links: ContextVar[tuple[Link, ...]] = ContextVar("return_handler_links", default=())


class _HeaderGetter(Getter[Headers]):
    def get(self, carrier: Headers, key: str) -> list[str] | None:
        values = [v.decode("latin-1") for k, v in carrier if k.lower() == key]
        return values or None

    def keys(self, carrier: Headers) -> list[str]:
        return [k for k, _ in carrier]


class _HeaderSetter(Setter[list[tuple[str, bytes]]]):
    def set(self, carrier: list[tuple[str, bytes]], key: str, value: str) -> None:
        carrier.append((key, value.encode("latin-1")))


_getter = _HeaderGetter()
_setter = _HeaderSetter()


_passed_on: ContextVar[tuple[tuple[str, bytes], ...]] = ContextVar(
    "return_handler_trace", default=()
)
_NOT_RECORDING = trace.NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)


class Tracing:
    """Spans of events and Capillary requests, from one tracer provider (or none: off)."""

    def __init__(self, provider: TracerProvider | None) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("return-handler") if provider is not None else None

    @classmethod
    def off(cls) -> Tracing:
        """No spans: the input's trace context is passed on as it came."""
        return cls(None)

    @classmethod
    def build(
        cls,
        *,
        otlp_endpoint: str | None,
        service_name: str,
        instance: str,
        version: str,
    ) -> Tracing:
        """OTLP over HTTP to ``otlp_endpoint`` (``.../v1/traces`` added), or off when unset."""
        if not otlp_endpoint:
            return cls.off()
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = otlp_endpoint.rstrip("/")
        if not endpoint.endswith("/v1/traces"):
            endpoint += "/v1/traces"
        return cls.with_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)),
            service_name=service_name,
            instance=instance,
            version=version,
        )

    @classmethod
    def with_processor(
        cls,
        processor: SpanProcessor,
        *,
        service_name: str = "return-handler",
        instance: str = "",
        version: str = "",
    ) -> Tracing:
        """Every root span sampled and handed to ``processor`` (an exporter's)."""
        resource = Resource.create(
            {
                "service.name": service_name,
                "service.instance.id": instance,
                "service.version": version,
            }
        )
        provider = TracerProvider(sampler=ParentBased(root=ALWAYS_ON), resource=resource)
        provider.add_span_processor(processor)
        return cls(provider)

    @contextlib.contextmanager
    def event(
        self, headers: Headers, *, topic: str, partition: int, offset: int, event_id: str
    ) -> Iterator[Span]:
        """The span of one event, continuing the input's trace; current while it runs."""
        if self._tracer is None:
            token = _passed_on.set(tuple(_trace_headers_of(headers)))
            try:
                yield _NOT_RECORDING
            finally:
                _passed_on.reset(token)
            return
        parent = _propagator.extract(headers, getter=_getter)
        with self._tracer.start_as_current_span(
            "process return",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": topic,
                "messaging.destination.partition.id": str(partition),
                "messaging.kafka.offset": offset,
                "return_handler.event_id": event_id,
            },
        ) as span:
            yield span

    def current_headers(self) -> list[tuple[str, bytes]]:
        """The current span's context as Kafka headers (``traceparent``, ``tracestate``)."""
        if self._tracer is None:
            return list(_passed_on.get())
        carrier: list[tuple[str, bytes]] = []
        _propagator.inject(carrier, setter=_setter)
        return carrier

    def capture(self) -> otel_context.Context | None:
        """The caller's context, for work done on its behalf in another task."""
        if self._tracer is None:
            return None
        return otel_context.get_current()

    @contextlib.contextmanager
    def on_behalf_of(self, captured: Sequence[otel_context.Context | None]) -> Iterator[None]:
        """Requests sent in here are children of the first context, linked to the others."""
        contexts = [ctx for ctx in captured if ctx is not None]
        if not contexts:
            yield
            return
        links = []
        for ctx in contexts[1:]:
            span_context = trace.get_current_span(ctx).get_span_context()
            if span_context.is_valid:
                links.append(Link(span_context))
        token = otel_context.attach(contexts[0])
        links_token = _links.set(tuple(links))
        try:
            yield
        finally:
            _links.reset(links_token)
            otel_context.detach(token)

    @contextlib.contextmanager
    def request(self, endpoint: str, attempt: int) -> Iterator[Span]:
        """The span of one request to Capillary (one attempt)."""
        if self._tracer is None:
            yield _NOT_RECORDING
            return
        with self._tracer.start_as_current_span(
            f"capillary {endpoint}",
            kind=SpanKind.CLIENT,
            links=_links.get(),
            attributes={
                "http.request.method": "POST",
                "capillary.endpoint": endpoint,
                "capillary.attempt": attempt,
            },
        ) as span:
            yield span

    def shutdown(self) -> None:
        """Export what is buffered and stop the exporter."""
        if self._provider is not None:
            self._provider.shutdown()


def _trace_headers_of(headers: Headers) -> list[tuple[str, bytes]]:
    """The input's ``traceparent`` and ``tracestate``; none when it had none (no trace to
    continue, and nobody receives one of ours)."""
    return [(k.lower(), v) for k, v in headers if k.lower() in TRACE_HEADERS]


__all__ = ["TRACE_HEADERS", "Tracing"]
