"""The service's Prometheus metrics, in a registry of its own (never the global one).

Counters and histograms are updated where things happen (the run loop, the call loop, the
coalescer, the commit step). What is a state rather than an event (events in flight, lag,
paused, ready) is read when Prometheus scrapes, from the ``Watch`` the wiring hands in, so
the hot path pays nothing for it.

The names are a contract: the Helm chart's alerts and dashboard use them
(``tests/deploy`` checks that every name they use is exported here).

prometheus_client adds a ``*_created`` series (the creation time) to every counter and
histogram series, which doubles their count for a value hardly anyone queries. It is off
unless asked for, per ``Metrics`` instance: the library's own switch
(``disable_created_metrics``) is one global for the whole process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from service.outcome import OutcomeStatus

PREFIX = "return_handler"

_CALL_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


@dataclass(frozen=True)
class Watch:
    """Readings taken at scrape time (the run loop's state)."""

    in_flight: Callable[[], int]
    ready: Callable[[], bool]
    paused_reason: Callable[[], str | None]
    """``capillary_outage`` while paused for it, else ``None``."""
    lag: Callable[[], Mapping[tuple[str, int], int]]
    """Records of each owned (topic, partition) not yet finished and committed."""
    last_progress: Callable[[], float]
    """Unix time of the run loop's last turn."""


PAUSE_REASONS = ("capillary_outage",)
CALL_RESULTS = ("ok", "client_error", "server_error", "throttled", "timeout", "unreachable")
DEAD_LETTER_REASONS = ("json_invalid", "invalid_event", "empty", "rules_error")


class _StateCollector(Collector):
    def __init__(self, watch: Watch) -> None:
        self._watch = watch

    def collect(self) -> Iterable[Metric]:
        watch = self._watch
        yield GaugeMetricFamily(
            f"{PREFIX}_events_in_flight", "Events taken and not finished.", watch.in_flight()
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_ready",
            "1 when the group is joined and the service is not paused, else 0.",
            1.0 if watch.ready() else 0.0,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_last_progress_timestamp_seconds",
            "Unix time of the run loop's last turn (the liveness watchdog reads it).",
            watch.last_progress(),
        )
        paused = GaugeMetricFamily(
            f"{PREFIX}_paused",
            "1 while the consumer is paused for this reason, else 0.",
            labels=["reason"],
        )
        reason = watch.paused_reason()
        for known in PAUSE_REASONS:
            paused.add_metric([known], 1.0 if reason == known else 0.0)
        yield paused
        lag = GaugeMetricFamily(
            f"{PREFIX}_consumer_lag",
            "Records of an owned partition not yet finished and committed by this replica.",
            labels=["topic", "partition"],
        )
        for (topic, partition), records in sorted(watch.lag().items()):
            lag.add_metric([topic, str(partition)], float(records))
        yield lag


class _WithoutCreated(Collector):
    """Another registry's metrics, without the ``*_created`` samples of its counters and
    histograms."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        for family in self._registry.collect():
            if family.type in _WITH_CREATED:
                created = f"{family.name}_created"
                # Collected families are built afresh on every collect: ours to trim.
                family.samples = [s for s in family.samples if s.name != created]
            yield family


_WITH_CREATED = ("counter", "histogram", "summary", "gaugehistogram")


@dataclass(frozen=True)
class _Registering:
    """Makes the metrics of one registry, each named ``return_handler_<name>``, labelled by
    ``by`` first."""

    registry: CollectorRegistry
    by: tuple[str, ...] = ()

    def counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(f"{PREFIX}_{name}", documentation, self.by + labels, registry=self.registry)

    def gauge(self, name: str, documentation: str, *labels: str) -> Gauge:
        return Gauge(f"{PREFIX}_{name}", documentation, self.by + labels, registry=self.registry)

    def histogram(
        self, name: str, documentation: str, *labels: str, buckets: Sequence[float]
    ) -> Histogram:
        return Histogram(
            f"{PREFIX}_{name}",
            documentation,
            self.by + labels,
            buckets=buckets,
            registry=self.registry,
        )


class Metrics:
    """Every metric the service exports; pass one instance to every step that counts."""

    def __init__(self, *, process: bool = False, created_series: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        """Every metric, as counted (``*_created`` included); tests read values here."""
        registry = self.registry
        self.exposed: CollectorRegistry = registry
        """What /metrics serves: ``registry``, without ``*_created`` unless asked for."""
        if not created_series:
            self.exposed = CollectorRegistry(auto_describe=True)
            self.exposed.register(_WithoutCreated(registry))
        if process:
            # Memory, CPU and open files of this process, under the usual process_* names.
            ProcessCollector(registry=registry)
        new = _Registering(registry)
        self.events_consumed = new.counter(
            "events_consumed",
            "Records read from the input topics (returns, routed and retry).",
            "topic",
        )
        self.outcomes = new.counter("outcomes", "Outcomes published, by status.", "status")
        self.dead_letters = new.counter(
            "dead_letters", "Input messages sent to the dead-letter topic, by reason.", "reason"
        )
        self.routed = new.counter(
            "routed",
            "Records of the returns topic copied to their customer key's partition of the "
            "routed topic (their producer partitions keys unlike Java: CRC32, or no key).",
        )
        self.duplicates = new.counter(
            "duplicates", "Events seen again within the dedupe window (no calls made)."
        )
        # What concerns Capillary's requests is counted per endpoint (its limits are).
        per_endpoint = _Registering(registry, by=("endpoint",))
        self.capillary_calls = per_endpoint.counter(
            "capillary_calls",
            "Requests sent to Capillary (each attempt), by endpoint and result.",
            "result",
        )
        self.capillary_call_duration = per_endpoint.histogram(
            "capillary_call_duration_seconds",
            "Time of one request to Capillary, from sending to the whole answer.",
            buckets=_CALL_SECONDS,
        )
        self.capillary_retries = per_endpoint.counter(
            "capillary_retries", "Requests repeated after a transient failure, by endpoint."
        )
        self.capillary_throttled = per_endpoint.counter(
            "capillary_throttled", "HTTP 429 answers from Capillary, by endpoint."
        )
        self.capillary_pace = per_endpoint.gauge(
            "capillary_pace_per_minute",
            "Requests a minute each Capillary endpoint is paced to: this replica's share of "
            "the configured limit, lower for a while after a 429.",
        )
        self.capillary_limit_share = new.gauge(
            "capillary_limit_share",
            "Share of the brand's Capillary limits this replica paces at: the partitions of "
            "the returns topic it owns over all of them (1 until it is assigned any).",
        )
        self.capillary_limit_share.set(1)
        self.coalesced_call_size = per_endpoint.histogram(
            "coalesced_call_size",
            "Items (customers, codes, earn ids of several events) carried by one request.",
            buckets=_BATCH_SIZES,
        )
        self.coupons_revoked_beyond_request = new.counter(
            "coupons_revoked_beyond_request",
            "Coupons Capillary revoked although no code sent named them (a multi-code revoke "
            "of a series that holds a generic code): each is a customer's coupon lost.",
        )
        self.transactions = new.counter(
            "transactions",
            "Kafka transactions (outcomes, states and offsets of one partition), by result.",
            "result",
        )

        self._start_at_zero()

    def _start_at_zero(self) -> None:
        # A series that appears only at its first increment makes `increase()` miss that
        # first one, and an alert on it has nothing to compare with: the known ones start at 0.
        # Imported here: the Capillary package imports this module (its calls count here).
        from service.capillary.codes import Endpoint

        for status in OutcomeStatus:
            self.outcomes.labels(status.value)
        for reason in DEAD_LETTER_REASONS:
            self.dead_letters.labels(reason)
        for result in ("committed", "aborted"):
            self.transactions.labels(result)
        for endpoint in Endpoint:
            self.capillary_retries.labels(endpoint.value)
            self.capillary_throttled.labels(endpoint.value)
            for call_result in CALL_RESULTS:
                self.capillary_calls.labels(endpoint.value, call_result)

    def watch(self, watch: Watch) -> None:
        """Read the run loop's state at every scrape."""
        self.registry.register(_StateCollector(watch))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric, as /metrics serves it."""
        return generate_latest(self.exposed)

    def names(self) -> set[str]:
        """The exported metric family names (as written, e.g. with ``_total``)."""
        found: set[str] = set()
        for family in self.exposed.collect():
            if family.type in ("counter",):
                found.add(f"{family.name}_total")
            else:
                found.add(family.name)
        return found


__all__ = ["CALL_RESULTS", "DEAD_LETTER_REASONS", "PAUSE_REASONS", "PREFIX", "Metrics", "Watch"]
