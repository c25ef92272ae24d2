"""Moving events, in the order the code runs them.

- ``records``: the message types and the ports (source and sink) the steps talk through.
- ``consume``: Kafka in (returns, routed, retry), manual commits, rebalance handling.
- ``route``: a record its producer put on another partition than its customer key's goes
  there first (a copy on the routed topic).
- ``validate``: bytes to a typed event, or a dead letter with the reason.
- ``schedule``: one customer's events in order, different customers at once, up to a bound.
- ``state``: what each event id reached and did (deduplication, intents, the ledger).
- ``process``: deduplicate, plan (with the ledger's facts), execute; one line per event.
- ``execute``: a plan's actions to Capillary calls, results per item; nothing the ledger
  shows settled is done again.
- ``coalesce``: calls of events in flight merged into bulk calls.
- ``commit``: outcomes, dead letters, retries, routed copies, states and offsets in one
  transaction per partition (``publish``: their wire form and headers).
- ``run``: the loop, commits after acknowledgement, the drain on SIGTERM.
"""
