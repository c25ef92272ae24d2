"""route: every record of a customer key to the partition Java's partitioner gives the key."""

from __future__ import annotations

import json
import zlib

from service.kafka.partitioner import java_partition
from service.pipeline.records import Origin, Record, origin_headers, origin_in
from service.pipeline.route import Router, customer_key
from tests.factories import event_bytes

PARTITIONS = 3


def _key_apart() -> bytes:
    """A key librdkafka's CRC32 and Java's murmur2 put on different partitions."""
    n = 0
    while True:
        key = str(555_000_000 + n).encode()
        if zlib.crc32(key) % PARTITIONS != java_partition(key, PARTITIONS):
            return key
        n += 1


def test_java_partition_is_what_aiokafka_and_java_give_a_key() -> None:
    # Kafka's own test vector (DefaultPartitionerTest): murmur2 of "foobar" is -790332482.
    assert java_partition(b"foobar", 100_000) == (-790332482 & 0x7FFFFFFF) % 100_000


def test_a_record_where_a_crc32_producer_put_it_is_routed_to_its_keys_partition() -> None:
    key = _key_apart()
    crc32 = zlib.crc32(key) % PARTITIONS
    record = Record("returns", crc32, 4, key, event_bytes())

    assert Router("returns").route(record, PARTITIONS) == (
        java_partition(key, PARTITIONS),
        key,
    )


def test_a_record_already_on_its_keys_partition_stays_where_it_is() -> None:
    key = _key_apart()
    record = Record("returns", java_partition(key, PARTITIONS), 4, key, event_bytes())

    assert Router("returns").route(record, PARTITIONS) is None


def test_routed_and_retry_records_are_never_routed_again() -> None:
    key = _key_apart()
    for topic in ("returns-routed", "returns-retry"):
        record = Record(topic, zlib.crc32(key) % PARTITIONS, 4, key, event_bytes())
        assert Router("returns").route(record, PARTITIONS) is None


def test_a_record_without_a_key_gets_the_customer_key_a_producer_would_have_given() -> None:
    by_id = Record("returns", 0, 1, None, event_bytes())
    by_mobile = Record("returns", 0, 2, None, event_bytes(customer={"mobile": "11223569865"}))
    nobody = Record("returns", 0, 3, None, json.dumps({"event_id": "e-9"}).encode())

    assert customer_key(by_id) == b"555567088"
    assert customer_key(by_mobile) == b"11223569865"
    assert customer_key(nobody) == b"e-9"


def test_what_is_not_an_event_is_handled_where_it_is_and_dead_lettered_there() -> None:
    for value in (b"not json", b"[1, 2]", None):
        record = Record("returns", 2, 1, None, value)
        assert customer_key(record) is None
        assert Router("returns").route(record, PARTITIONS) is None


def test_a_copy_names_the_producers_record_across_routing_and_retries() -> None:
    original = Record("returns", 2, 40, b"k", b"{}", (("traceparent", b"00-ab"),))
    routed = Record("returns-routed", 1, 7, b"k", b"{}", tuple(origin_headers(original)))
    read = Record(
        routed.topic, 1, 7, b"k", b"{}", routed.headers, origin=origin_in(routed.headers, "r")
    )
    again = tuple(origin_headers(read))

    assert read.source == Origin("returns", 2, 40)
    assert origin_in(again, "returns") == Origin("returns", 2, 40)
    assert ("traceparent", b"00-ab") in again
    assert original.source == Origin("returns", 2, 40)


def test_retry_records_of_older_versions_name_no_topic_and_mean_the_returns_topic() -> None:
    headers = (("rh-origin-partition", b"2"), ("rh-origin-offset", b"40"))
    assert origin_in(headers, "returns") == Origin("returns", 2, 40)
    assert origin_in((("rh-origin-offset", b"x"),), "returns") is None
