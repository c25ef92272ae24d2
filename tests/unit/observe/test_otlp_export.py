"""With an OTLP endpoint set, spans reach it as OTLP/HTTP protobuf (a real local receiver)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from service.observe.tracing import Tracing


class _Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, bytes]] = []


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_spans_are_exported_over_otlp_http_with_the_service_resource(receiver: _Receiver) -> None:
    host, port = receiver.server_address[:2]
    tracing = Tracing.build(
        otlp_endpoint=f"http://{host!s}:{port}",
        service_name="return-handler",
        instance="pod-7",
        version="0.1.0",
    )
    with tracing.event([], topic="returns", partition=0, offset=3, event_id="evt-otlp"):
        pass
    tracing.shutdown()  # flushes the batch

    [(path, body)] = receiver.requests
    assert path == "/v1/traces"
    request = ExportTraceServiceRequest.FromString(body)
    [resource_spans] = request.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "return-handler"
    assert resource["service.instance.id"] == "pod-7"
    [span] = [s for scope in resource_spans.scope_spans for s in scope.spans]
    assert span.name == "process return"
    attributes = {a.key: a.value for a in span.attributes}
    assert attributes["return_handler.event_id"].string_value == "evt-otlp"
