"""Reading our outputs as another team would: with the cloudevents SDK, in both its bindings.

``cloudevents.core.bindings.kafka`` (the SDK's newer API) reads the data as the
``content-type`` header says. ``cloudevents.v1.kafka`` (the older one, still what most
examples show) unmarshals the data with ``json.loads`` unless told otherwise, whatever the
header says: a consumer of non-JSON data passes the unmarshaller the ``content-type`` calls
for, and without that header (the CloudEvents default is JSON) it has nothing to go on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import kafka as core_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.v1 import kafka as v1_kafka
from cloudevents.v1.http import CloudEvent as V1CloudEvent

_JSON = re.compile(r"^application/(.+\+)?json(;.*)?$")

Reader = Callable[[Sequence[tuple[str, bytes]], bytes | None, bytes], Any]
"""``read(headers, key, value)``: an output as a CloudEvent of one of the bindings."""


def _headers(headers: Sequence[tuple[str, bytes]]) -> dict[str, bytes]:
    found = dict(headers)
    assert len(found) == len(headers), f"a header name repeats: {[k for k, _ in headers]}"
    return found


def read_core(
    headers: Sequence[tuple[str, bytes]], key: bytes | None, value: bytes
) -> BaseCloudEvent:
    """The newer binding: ``from_binary`` with the JSON format."""
    message = core_kafka.KafkaMessage(headers=_headers(headers), key=key, value=value)
    return core_kafka.from_binary(message, JSONFormat())


def read_v1(headers: Sequence[tuple[str, bytes]], key: bytes | None, value: bytes) -> V1CloudEvent:
    """The older binding, its data unmarshalled as the ``content-type`` header says."""
    found = _headers(headers)
    message = v1_kafka.KafkaMessage(headers=found, key=key, value=value)
    content_type = found.get("content-type", b"application/json").decode()
    unmarshaller: Any = json.loads if _JSON.match(content_type) else _as_bytes
    return v1_kafka.from_binary(message, data_unmarshaller=unmarshaller)


def _as_bytes(value: bytes) -> bytes:
    return value
