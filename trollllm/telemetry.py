"""The gateway's Prometheus metrics (`prometheus_client`), one set per app, summed over `--workers`.

With `trollllm serve --workers N` each worker writes its values to memory-mapped files in
`PROMETHEUS_MULTIPROC_DIR` (set and emptied by `serve` before the workers start) and whichever worker
answers a scrape reads all of them (`prometheus_client.multiprocess`). In one process the values live in
this object's own registry, so each app (and each test) counts only its own requests.

The counters `/metrics` exported before `prometheus_client` keep their exact names and integer values
(`trollllm_overages 3`, `trollllm_rate_limiter_degraded 0`, …): dashboards and alerts use them. The rest
follow Prometheus' conventions (`_total`, `_seconds`).

On the proxy's path a request costs one counter increment and one histogram observation for the
request, one observation for its upstream answer and one increment for its charge; the labelled children
are cached by their label values, so no label is validated again (measured: `bench/telemetry.py`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
REQUEST_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
UPSTREAM_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

# The metrics `/metrics` had before, rendered as `# TYPE trollllm_<name> <type>` and `trollllm_<name> <int>`.
LEGACY_COUNTERS = (
    "overages",
    "overage_charged_nanos",
    "overage_uncollected_nanos",
    "rate_limiter_outages",
    "rate_limiter_fallback_decisions",
)
LEGACY_DEGRADED = "rate_limiter_degraded"
UPSTREAM_ERROR_KINDS = ("no_reply", "refused", "rate_limited", "server_error", "unreadable")


class Telemetry:
    """Every Prometheus metric of one app."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        """`multiprocess_dir`: the workers' shared directory (`PROMETHEUS_MULTIPROC_DIR`), or None."""
        self.multiprocess_dir = multiprocess_dir
        registry = self.registry = CollectorRegistry()
        labels = ("route", "model", "status")
        self.requests = Counter("trollllm_requests", "Proxied requests", labels, registry=registry)
        self.request_seconds = Histogram(
            "trollllm_request_duration_seconds",
            "Proxied requests, from the first byte read to the last byte sent (streams included)",
            labels,
            buckets=REQUEST_BUCKETS_S,
            registry=registry,
        )
        self.upstream_seconds = Histogram(
            "trollllm_upstream_response_seconds",
            "Time to an upstream's response headers, per factory key (every attempt that got an answer)",
            ("factory_key",),
            buckets=UPSTREAM_BUCKETS_S,
            registry=registry,
        )
        self.upstream_errors = Counter(
            "trollllm_upstream_errors",
            "Upstream attempts that failed, per factory key: no_reply (connect, timeout, reset), refused "
            "(401/403), rate_limited (429), server_error (5xx), unreadable (a reply nobody can read)",
            ("factory_key", "kind"),
            registry=registry,
        )
        self.connection_queue_depth = Gauge(
            "trollllm_upstream_connection_queue",
            "Requests waiting for one of a factory key's connections (all of its "
            "TROLLLLM_UPSTREAM_CONNECTIONS_PER_KEY busy), per factory key",
            ("factory_key",),
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.spend_nanos = Counter(
            "trollllm_spend_nanos", "Charged by settled requests, in nano-USD", registry=registry
        )
        self.anthropic_betas = Counter(
            "trollllm_anthropic_betas",
            "anthropic-beta values forwarded upstream, per value (values past the first 256 seen: `other`)",
            ("beta",),
            registry=registry,
        )
        self._legacy = {
            name: Counter(f"trollllm_{name}", name.replace("_", " "), registry=registry)
            for name in LEGACY_COUNTERS
        }
        self._degraded = Gauge(
            f"trollllm_{LEGACY_DEGRADED}",
            "1 while a worker decides rate limits locally (Redis unreachable)",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._upstream_children: dict[int, Histogram] = {}

    # -- the proxy's path ----------------------------------------------------------------------------

    def observe_request(self, route: str, model: str, status: int, seconds: float) -> None:
        """One proxied request answered `status` after `seconds`."""
        key = (route, model, status)
        children = self._request_children.get(key)
        if children is None:
            values = (route, model, str(status))
            children = (self.requests.labels(*values), self.request_seconds.labels(*values))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_upstream(self, factory_key_id: int, seconds: float) -> None:
        """A factory key's upstream answered (headers) after `seconds`."""
        child = self._upstream_children.get(factory_key_id)
        if child is None:
            child = self.upstream_seconds.labels(str(factory_key_id))
            self._upstream_children[factory_key_id] = child
        child.observe(seconds)

    def count_upstream_error(self, factory_key_id: int, kind: str) -> None:
        """An attempt on a factory key failed (`kind`: one of `UPSTREAM_ERROR_KINDS`)."""
        self.upstream_errors.labels(str(factory_key_id), kind).inc()

    def connection_queue(self, factory_key_id: int, change: int) -> None:
        """A request starts (`change` 1) or stops (-1) waiting for a connection of this factory key."""
        self.connection_queue_depth.labels(str(factory_key_id)).inc(change)

    def count_spend(self, nanos: int) -> None:
        """A settlement charged `nanos`."""
        if nanos:
            self.spend_nanos.inc(nanos)

    def count_anthropic_beta(self, value: str) -> None:
        """One request forwarded with this `anthropic-beta` value (the caller bounds the label values)."""
        self.anthropic_betas.labels(value).inc()

    # -- the counters kept under their old names -----------------------------------------------------

    def count(self, name: str, amount: int = 1) -> None:
        """Add to one of `LEGACY_COUNTERS`."""
        self._legacy[name].inc(amount)

    def set_limiter_degraded(self, degraded: bool) -> None:
        """Whether this worker's rate limits are decided locally now."""
        self._degraded.set(1 if degraded else 0)

    # -- exposition ----------------------------------------------------------------------------------

    def render(self, gauges: dict[str, int]) -> bytes:
        """The Prometheus text exposition: the old names first (with `gauges`, e.g. the outbox depth,
        read at scrape time), then the `prometheus_client` metrics, summed over every worker."""
        families = list(self._collect())
        values = {name: 0 for name in LEGACY_COUNTERS}
        degraded = 0.0
        for family in families:
            short = family.name.removeprefix("trollllm_")
            for sample in family.samples:
                if short in values and sample.name.endswith("_total"):
                    values[short] += int(sample.value)
                elif short == LEGACY_DEGRADED:
                    degraded = max(degraded, sample.value)
        lines = []
        typed = {name: "counter" for name in values} | {LEGACY_DEGRADED: "gauge"}
        typed |= {name: "gauge" for name in gauges}
        numbers = values | {LEGACY_DEGRADED: int(degraded)} | gauges
        for name in sorted(numbers):
            lines += [f"# TYPE trollllm_{name} {typed[name]}", f"trollllm_{name} {numbers[name]}"]
        legacy = {f"trollllm_{name}" for name in (*LEGACY_COUNTERS, LEGACY_DEGRADED)}
        rest = _Families([family for family in families if family.name not in legacy])
        return ("\n".join(lines) + "\n").encode() + generate_latest(rest)

    def _collect(self) -> Iterator[Metric]:
        if self.multiprocess_dir is None:
            yield from self.registry.collect()
            return
        collector = MultiProcessCollector(CollectorRegistry(), path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        yield from collector.collect()  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """This worker is ending: its live gauges stop counting (its counters stay in the sums)."""
        if self.multiprocess_dir is not None:
            mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]


class _Families:
    """Already collected metric families, as `generate_latest` takes them."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def prepare_multiprocess_dir(directory: Path) -> None:
    """Create `directory` or empty it of an earlier run's files (at `serve`, before any worker starts)."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
