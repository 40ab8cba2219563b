"""Money events an operator must see on `/metrics`: costs past their hold, and the settlement outbox."""

from __future__ import annotations

from trollllm.money import Money


class BillingCounters:
    """Counters since start-up, per process."""

    def __init__(self) -> None:
        self.overages = 0
        """Settlements whose real cost exceeded the hold."""
        self.overage_charged_nanos = 0
        """What was charged past the holds (up to each account's free balance)."""
        self.overage_uncollected_nanos = 0
        """What could not be charged: the free balance (or the Friend Key's cap room) was too small."""

    def count_overage(self, cost: Money, hold: Money, charged: Money) -> None:
        """A settlement of `cost` for a request held at `hold` that charged `charged`."""
        self.overages += 1
        self.overage_charged_nanos += max(charged.nanos - hold.nanos, 0)
        self.overage_uncollected_nanos += max(cost.nanos - charged.nanos, 0)

    def metrics(self) -> dict[str, int]:
        """The counters by their metric names."""
        return {
            "overages": self.overages,
            "overage_charged_nanos": self.overage_charged_nanos,
            "overage_uncollected_nanos": self.overage_uncollected_nanos,
        }
