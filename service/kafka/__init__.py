"""Kafka's side of the service: the one place new Kafka code goes (see DEVELOPERS.md).

- ``partitioner``: where Java's default partitioner puts a key.
- ``state_fetch``: one record of the state topic read back at its offset.
"""
