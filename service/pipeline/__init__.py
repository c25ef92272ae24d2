"""Moving events: the steps in the order the code runs them, then what they share.

Kafka itself (the consumer, the transactions, the wire form) is ``service/kafka/``.

The steps:

- ``consume``: fetched records taken in partition order and handed on, up to the bound.
- ``route``: a record its producer put on another partition than its customer key's goes
  there first (a copy on the routed topic).
- ``validate``: bytes to a typed event, or a dead letter with the reason.
- ``schedule``: one customer's events in order, different customers at once, up to a bound.
- ``process``: one event through the next three steps, to a finished result.
- ``deduplicate``: a record read again, or a second delivery, publishes or calls nothing.
- ``plan``: the rules with the ledger's facts (a cancellation waits for its return).
- ``execute``: a plan's actions to Capillary calls, results per item.
- ``done_before``: what the ledger shows an earlier run settled is not done again.
- (calls of events in flight are merged into bulk calls by ``service.capillary.coalesce``,
  beside the client it wraps.)
- ``commit``: what finished, committed per partition in one transaction (outcomes, dead
  letters, retries, routed copies, states and offsets).

Around them:

- ``run``: the loop and the drain on SIGTERM.
- ``job``: one scheduled event processed in its trace; pipeline-wide failures become trouble.
- ``rebalance``: partitions set up when assigned, settled and committed before they go.
- ``watch``: what the runner shows health checks, metrics and tests.
- ``recover``: trouble settled: in-flight work finished, rewound, paused for an outage.
- ``outcomes``: the outcome event assembled from a plan and its results.
- ``outage``: Capillary probed for failing events, paused for while it does not answer.
- ``partition``: what is known of one owned partition, from assignment to revocation.
- ``offsets``: which offset to commit (the contiguous finished prefix).
- ``state``: what each event id reached and did (deduplication, intents, the ledger).
- ``records``: the message types and the ports (source, committer, probe).
- ``retries``, ``replays``: the retry path's and the replay contract's headers.
- ``flood``: the cap on dead letters.
- ``stats``: what one run did.
"""
