"""The `anthropic-beta` values this instance forwarded in the last 24 hours, with their counts.

In memory, in 24 hourly buckets: the count is one dictionary increment on the request path, no write to
any database. Each instance counts what it forwarded (the admin view says so); the Prometheus counter
`trollllm_anthropic_betas_total{beta=…}` is the view summed over workers and instances, kept as long as
the metrics store keeps it. At most `MAX_VALUES` distinct values are kept (clients choose the header, so
its values must not grow memory or label sets without bound); later ones count as `other`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from trollllm.clock import Clock

BUCKET_S = 3600
BUCKETS = 24
MAX_VALUES = 256
OTHER = "other"


@dataclass(frozen=True, slots=True)
class BetaCount:
    """One value and how many forwarded requests carried it."""

    value: str
    count: int


class BetaTally:
    """Counts per value over the last 24 hourly buckets of this process."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._buckets: dict[int, Counter[str]] = {}
        self._known: set[str] = set()

    def add(self, value: str) -> str:
        """Count one forwarded request carrying `value`; returns the name it was counted under."""
        if value not in self._known:
            if len(self._known) >= MAX_VALUES:
                value = OTHER
            else:
                self._known.add(value)
        hour = int(self._clock.monotonic() // BUCKET_S)
        bucket = self._buckets.get(hour)
        if bucket is None:
            bucket = self._buckets[hour] = Counter()
            for old in [h for h in self._buckets if h <= hour - BUCKETS]:
                del self._buckets[old]
        bucket[value] += 1
        return value

    def last_24h(self) -> list[BetaCount]:
        """The values forwarded in the last 24 hours (whole hourly buckets), most used first."""
        hour = int(self._clock.monotonic() // BUCKET_S)
        total: Counter[str] = Counter()
        for start, bucket in self._buckets.items():
            if start > hour - BUCKETS:
                total.update(bucket)
        return [
            BetaCount(value, count) for value, count in sorted(total.items(), key=lambda i: (-i[1], i[0]))
        ]
