"""Route: every record of a customer key to one partition, whatever the producer's partitioner.

Deduplication, per-customer order and the ledger live per partition: they hold only if every
record of one customer is handled on the same partition. Producers do not agree on where a
key goes: Java and aiokafka hash keys with murmur2, librdkafka's clients (confluent-kafka for
Python, Go, .NET, node) with CRC32, and a record without a key goes anywhere. So the
service has a key of its own for every record (:func:`customer_key`) and a partition for it
(murmur2, as Java's default partitioner: ``kafka/partitioner.py``). A record of the returns
topic already on that partition is handled where it is; any other is copied to that
partition of the routed topic, in the same transaction as its returns offset (Kafka
Streams' repartition topics), and handled there. So a producer that partitions like Java
costs nothing, and one that does not costs one more write and read per record.

The customer key is the record's Kafka key. A record without one gets the customer's
Capillary id as text (what ``return-handler publish`` and the replay key events by), else
its external id, mobile or e-mail, else its event id: producers should key every event of a
customer by the same customer key (docs/reference/topics.md says which).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from service.events import CustomerRef
from service.kafka.partitioner import java_partition
from service.pipeline.records import Record


def key_of_customer(customer: CustomerRef | Mapping[str, object], event_id: object) -> bytes:
    """The customer key of an event that came without a Kafka key."""
    if isinstance(customer, CustomerRef):
        values: tuple[object, ...] = (
            customer.id,
            customer.external_id,
            customer.mobile,
            customer.email,
        )
    else:
        values = tuple(customer.get(name) for name in ("id", "external_id", "mobile", "email"))
    for value in (*values, event_id):
        if value is not None and not isinstance(value, bool | dict | list) and str(value):
            return str(value).encode()
    return b""


def customer_key(record: Record) -> bytes | None:
    """The record's customer key: its Kafka key, else one read from the event's JSON.

    ``None`` when the record has no key and its value names no customer and no event (not
    an event at all: it is handled where it is, and dead-lettered there).
    """
    if record.key:
        return record.key
    try:
        data = json.loads(record.value or b"")
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    customer = data.get("customer")
    key = key_of_customer(customer if isinstance(customer, dict) else {}, data.get("event_id"))
    return key or None


class Router:
    """Decides, for each record of the returns topic, where it is handled."""

    def __init__(self, returns_topic: str) -> None:
        self._returns_topic = returns_topic

    def route(self, record: Record, partitions: int) -> tuple[int, bytes] | None:
        """(partition, key) of the routed copy, or ``None``: handle the record where it is.

        Only records of the returns topic move; routed and retry records are where they
        belong already.
        """
        if record.topic != self._returns_topic or partitions < 1:
            return None
        key = customer_key(record)
        if key is None:
            return None
        target = java_partition(key, partitions)
        return None if target == record.partition else (target, key)


__all__ = ["Router", "customer_key", "key_of_customer"]
