"""Where Java's default partitioner (and aiokafka's) puts a key: murmur2, positive, modulo."""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def java_partition(key: bytes, partitions: int) -> int:
    """The partition Java's and aiokafka's default partitioner give ``key``."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


__all__ = ["java_partition"]
