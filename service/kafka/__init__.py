"""Kafka's side of the service: the only package that imports aiokafka.

- ``connection``: the clients' connection options (TLS, SASL) and the first-connection
  check that names the setting to fix.
- ``source``: the consumer group on the returns, routed and retry topics, rebalances
  settled before partitions move, each member's share of the brand's limits.
- ``committer``: one transactional producer per input partition; outputs, states and
  offsets of a partition in one transaction.
- ``headers``: the wire form of what is published (outcome bytes, CloudEvents and our
  headers).
- ``state_reader``: the state topic read back (restore, the ledger's facts).
- ``partitioner``: where Java's default partitioner puts a key.
- ``topics``, ``reader``, ``producer``: the tools' topic creation, whole-topic reads and
  acknowledged sends.
"""
