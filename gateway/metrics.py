"""Prometheus metrics, one registry per app (so several apps in one process never collide).

The hot path only bumps plain integers and bucket counts held here; a custom collector turns them
into metric families when ``/metrics`` is scraped. prometheus-client's own ``Counter.inc`` takes a
lock and resolves labels on every call, which measured at several microseconds per invocation —
a large share of a warm call's budget. Everything runs on the event-loop thread.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

Reading = Callable[[], Mapping[str, float] | Mapping[tuple[str, ...], float]]

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}


class Histogram:
    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.sum += seconds

    def buckets(self) -> list[tuple[str, int]]:
        out, total = [], 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), self.counts, strict=True):
            total += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), total))
        return out


@dataclass(eq=False)
class FunctionMetrics:
    """Counters of one function, shared by all its loaded versions."""

    tenant: str
    function_id: str
    duration: Histogram = field(default_factory=Histogram)
    cache_hits: int = 0
    cold_starts: int = 0
    breaker_state: int = 0
    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)

    def outcome(self, status: str, tier: str) -> None:
        key = (status, tier)
        self.outcomes[key] = self.outcomes.get(key, 0) + 1


class Metrics(Collector):
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.functions: dict[tuple[str, str], FunctionMetrics] = {}
        self.attempts: dict[tuple[str, str], int] = {}
        self.tier_duration: dict[str, Histogram] = {}
        self.queue_wait = Histogram()
        self.cold_start_duration: dict[str, Histogram] = {}
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self.labelled_gauges: dict[str, tuple[str, tuple[str, ...], Reading]] = {}
        self.registry.register(self)

    def for_function(self, tenant: str, function_id: str) -> FunctionMetrics:
        found = self.functions.get((tenant, function_id))
        if found is None:
            found = self.functions[tenant, function_id] = FunctionMetrics(tenant, function_id)
        return found

    def attempt(self, tier: str, status: str, seconds: float) -> None:
        self.attempts[tier, status] = self.attempts.get((tier, status), 0) + 1
        histogram = self.tier_duration.get(tier)
        if histogram is None:
            histogram = self.tier_duration[tier] = Histogram()
        histogram.observe(seconds)

    def cold_start(self, runtime: str, seconds: float) -> None:
        self.cold_start_duration.setdefault(runtime, Histogram()).observe(seconds)

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A value read at scrape time (queue depth, in-flight calls, worker counts)."""
        self.gauges[name] = (help_text, read)

    def gauge_by(self, name: str, help_text: str, labels: tuple[str, ...], read: Reading) -> None:
        """Values read at scrape time, one per value of ``labels`` (worker processes per tenant;
        the counters runtimes report): ``read`` maps label values (a tuple, or one string) to
        readings."""
        self.labelled_gauges[name] = (help_text, labels, read)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        yield from self._function_families()
        attempts = CounterMetricFamily(
            "tiergate_tier_attempts", "Tier attempts by outcome", labels=["tier", "status"]
        )
        for (tier, status), count in sorted(self.attempts.items()):
            attempts.add_metric([tier, status], count)
        yield attempts
        yield _histograms(
            "tiergate_tier_duration_seconds",
            "Duration of tier attempts",
            ["tier"],
            {(t,): h for t, h in self.tier_duration.items()},
        )
        yield _histograms(
            "tiergate_queue_wait_seconds",
            "Time spent waiting for a slot",
            [],
            {(): self.queue_wait},
        )
        yield _histograms(
            "tiergate_cold_start_seconds",
            "Time to load a function version",
            ["runtime"],
            {(r,): h for r, h in self.cold_start_duration.items()},
        )
        for name, (help_text, read) in sorted(self.gauges.items()):
            gauge = GaugeMetricFamily(name, help_text)
            gauge.add_metric([], read())
            yield gauge
        for name, (help_text, labels, read_all) in sorted(self.labelled_gauges.items()):
            gauge = GaugeMetricFamily(name, help_text, labels=list(labels))
            for values, reading in sorted(read_all().items()):
                gauge.add_metric([values] if isinstance(values, str) else list(values), reading)
            yield gauge

    def _function_families(self) -> Iterator[Metric]:
        labels = ["tenant", "function"]
        invocations = CounterMetricFamily(
            "tiergate_invocations", "Finished invocations", labels=[*labels, "status", "tier"]
        )
        hits = CounterMetricFamily("tiergate_cache_hits", "Loader cache hits", labels=labels)
        colds = CounterMetricFamily("tiergate_cold_starts", "Loads of a version", labels=labels)
        breaker = GaugeMetricFamily(
            "tiergate_circuit_state", "Loader breaker: 0 closed, 1 half-open, 2 open", labels=labels
        )
        for (tenant, fn), m in sorted(self.functions.items()):
            for (status, tier), count in sorted(m.outcomes.items()):
                invocations.add_metric([tenant, fn, status, tier], count)
            hits.add_metric([tenant, fn], m.cache_hits)
            colds.add_metric([tenant, fn], m.cold_starts)
            breaker.add_metric([tenant, fn], m.breaker_state)
        yield from (invocations, hits, colds, breaker)
        yield _histograms(
            "tiergate_invocation_duration_seconds",
            "Invocation time, queue excluded",
            labels,
            {k: m.duration for k, m in self.functions.items()},
        )


def _histograms(
    name: str, help_text: str, labels: list[str], series: dict[tuple[str, ...], Histogram]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, help_text, labels=labels)
    for values, histogram in sorted(series.items()):
        family.add_metric(list(values), histogram.buckets(), histogram.sum)
    return family
