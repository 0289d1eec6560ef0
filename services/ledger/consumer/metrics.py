"""The ledger consumer's Prometheus metrics.

The metrics are registered when the first consumer is built, not at import: every service
process imports this module, and only the consumer's should export them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from prometheus_client import Counter, Gauge, Histogram


@dataclass(frozen=True, slots=True)
class ConsumerMetrics:
    batch_size: Histogram
    append_seconds: Histogram
    analyze_seconds: Histogram
    events: Counter
    lag: Gauge
    ready: Gauge

    def record_batch(
        self,
        size: int,
        seconds: float,
        *,
        appended: int,
        replays: int,
        rejected: int,
        already_done: int,
    ) -> None:
        self.batch_size.observe(size)
        self.append_seconds.observe(seconds)
        self.events.labels("appended").inc(appended)
        self.events.labels("replayed").inc(replays)
        self.events.labels("rejected").inc(rejected)
        self.events.labels("already_recorded").inc(already_done)


@cache
def consumer_metrics() -> ConsumerMetrics:
    return ConsumerMetrics(
        batch_size=Histogram(
            "custody_consumer_batch_size",
            "Messages per polled batch that was recorded",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10_000, 50_000),
        ),
        append_seconds=Histogram(
            "custody_consumer_append_seconds",
            "Duration of one batch's append transaction in PostgreSQL",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        ),
        analyze_seconds=Histogram(
            "custody_consumer_analyze_seconds",
            "Duration of each ANALYZE of ledger.entries the consumer ran between batches",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        ),
        events=Counter(
            "custody_consumer_events_total",
            "Messages handled: appended, replayed (event already recorded), rejected (parked), "
            "already_recorded (offset already stored)",
            ["outcome"],
        ),
        lag=Gauge(
            "custody_consumer_lag",
            "Messages on the partition not yet recorded (end offset - position)",
            ["topic", "partition"],
        ),
        ready=Gauge(
            "custody_consumer_ready", "1 while batches can be recorded, 0 while PostgreSQL is not"
        ),
    )
