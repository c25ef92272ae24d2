"""Moving events: consume → validate → plan → execute → publish, in that order.

- ``records``: the message types and the ports (source and sink) the steps talk through.
- ``consume``: Kafka in, manual commits, rebalance handling.
- ``validate``: bytes to a typed event, or a dead letter with the reason.
- ``execute``: a plan's actions to Capillary calls, results per item.
- ``publish``: outcomes and dead letters out, acknowledged before any commit.
- ``process``: the one place that puts the steps in order and logs one line per event.
- ``run``: the loop, commits after acknowledgement, the drain on SIGTERM.
"""
