"""Money events an operator must see on `/metrics`: costs past their hold, and the settlement outbox."""

from __future__ import annotations

from trollllm.money import Money
from trollllm.telemetry import Telemetry


class BillingCounters:
    """Counters since start-up, per process (and in `telemetry`, summed over the workers)."""

    def __init__(self, telemetry: Telemetry | None = None) -> None:
        self._telemetry = telemetry
        self.overages = 0
        """Settlements whose real cost exceeded the hold."""
        self.overage_charged_nanos = 0
        """What was charged past the holds (up to each account's free balance)."""
        self.overage_uncollected_nanos = 0
        """What could not be charged: the free balance (or the Friend Key's cap room) was too small."""

    def count_overage(self, cost: Money, hold: Money, charged: Money) -> None:
        """A settlement of `cost` for a request held at `hold` that charged `charged`."""
        past_hold, uncollected = max(charged.nanos - hold.nanos, 0), max(cost.nanos - charged.nanos, 0)
        self.overages += 1
        self.overage_charged_nanos += past_hold
        self.overage_uncollected_nanos += uncollected
        if self._telemetry is not None:
            self._telemetry.count("overages")
            self._telemetry.count("overage_charged_nanos", past_hold)
            self._telemetry.count("overage_uncollected_nanos", uncollected)

    def metrics(self) -> dict[str, int]:
        """The counters by their metric names."""
        return {
            "overages": self.overages,
            "overage_charged_nanos": self.overage_charged_nanos,
            "overage_uncollected_nanos": self.overage_uncollected_nanos,
        }
