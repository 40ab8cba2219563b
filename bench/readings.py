"""The costs of one cell of bench/run.py: CPU and memory of the measured server, the mock and the load
generator, read from `/proc` before and after the cell."""

from __future__ import annotations

import time

from loadgen import Tally, percentile
from report import CellResult
from stack import cpu_seconds, machine_busy_seconds, memory_kb


class Meter:
    """CPU and memory readings of the gateway, the mock and this process around one cell."""

    def __init__(self, gateway_pids: list[int], mock_pid: int) -> None:
        self.gateway_pids = gateway_pids  # the scaled shape's instances are one gateway: their sums
        self.mock_pid = mock_pid
        self._start: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    @property
    def gateway_pid(self) -> int | None:
        """The first gateway process (the embedded shape's only one)."""
        return self.gateway_pids[0] if self.gateway_pids else None

    def _read(self) -> tuple[float, float, float, float]:
        gateway = sum(cpu_seconds(pid) for pid in self.gateway_pids)
        return gateway, cpu_seconds(self.mock_pid), time.process_time(), machine_busy_seconds()

    def start(self) -> None:
        self._start = self._read()

    def result(self, tally: Tally, target: str, concurrency: int, mode: str, fmt: str) -> CellResult:
        gateway, mock, own, busy = (b - a for a, b in zip(self._start, self._read(), strict=True))
        done = max(1, len(tally.latencies) + tally.errors)
        is_gateway = target != "direct"
        rss_kb = sum(memory_kb(pid)[0] for pid in self.gateway_pids)
        rss_mb = rss_kb / 1024 if is_gateway and self.gateway_pids else float("nan")
        ms = 1000.0 / done
        return CellResult(
            target=target,
            concurrency=concurrency,
            mode=mode,
            fmt=fmt,
            ok=len(tally.latencies),
            errors=tally.errors,
            elapsed_s=tally.elapsed_s,
            rps=len(tally.latencies) / tally.elapsed_s if tally.elapsed_s else 0.0,
            p50_ms=percentile(tally.latencies, 0.50) * 1000,
            p99_ms=percentile(tally.latencies, 0.99) * 1000,
            ttfb_p50_ms=percentile(tally.ttfbs, 0.50) * 1000 if mode == "stream" else float("nan"),
            ttfb_p99_ms=percentile(tally.ttfbs, 0.99) * 1000 if mode == "stream" else float("nan"),
            server_cpu_ms_per_req=(gateway if is_gateway else mock) * ms,
            mock_cpu_ms_per_req=mock * ms,
            loadgen_cpu_ms_per_req=own * ms,
            other_cpu_cores=max(0.0, busy - gateway - mock - own) / max(tally.elapsed_s, 1e-9),
            server_rss_mb=rss_mb,
            error_samples=tally.error_samples,
        )
