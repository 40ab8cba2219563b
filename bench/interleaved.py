"""Gateway CPU per request of several cells, interleaved request by request (issue 23's comparisons).

    PYTHONPATH=. .venv/bin/python bench/interleaved.py [--cells json:openai,json:responses,...]
        [--requests 1500] [--pause-ms 1]

`bench/run.py` measures its cells one after another: whatever else happens during a cell lands on it, the
gateway's own periodic work included (the alerts pass every minute, the maintenance pass a minute after
start and then every five: 25-150 ms of CPU each, one cell's share). Here one keep-alive connection sends
one request of each cell in turn (the order reversed every round), and each request's CPU is read from
the gateway's threads (`/proc/<pid>/task/*/schedstat`, nanoseconds) after a short pause for its tail
(log, metrics). Medians and the mean of the lowest 90 % are compared with the first cell of the same mode;
the requests that took over 5 ms of CPU (the periodic work) are listed apart. The targets of issue 23:
native `responses` within 10 % of `openai`, a translated cell at most 0.3 ms above it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop
from formats import cell_route, make_target
from loadgen import _Connection
from stack import Processes, seed

SPIKE_MS = 5.0
MODES = ("json", "stream")


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of a process so far, in nanoseconds."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as stat:
                total += int(stat.read().split()[0])
        except FileNotFoundError:  # a thread that ended
            continue
    return total


async def measure(url: str, key: str, pid: int, args: argparse.Namespace, started: float) -> int:
    """Warm up, then the interleaved rounds; prints the table, returns 1 when a target is missed."""
    cells = []
    for spec in args.cells:
        mode, fmt = spec.split(":")
        client, model, _, _ = cell_route(fmt)
        target = make_target(url, key, model, mode, client)
        cells.append((spec, target, target.wire_bytes()))
    loop = asyncio.get_running_loop()
    _, connection = await loop.create_connection(_Connection, cells[0][1].host, cells[0][1].port)
    samples: dict[str, list[float]] = {spec: [] for spec in args.cells}
    spikes: list[tuple[float, str, float]] = []
    for number in range(args.warmup + args.requests):
        for spec, target, payload in cells if number % 2 == 0 else cells[::-1]:
            before = cpu_ns(pid)
            answer = await connection.send(payload)
            if answer.status != 200 or target.done_marker not in answer.body:
                print(f"{spec}: {answer.status} {bytes(answer.body[:300])!r}")
                return 1
            await asyncio.sleep(args.pause_ms / 1000)
            if number >= args.warmup:
                cpu_ms = (cpu_ns(pid) - before) / 1e6
                samples[spec].append(cpu_ms)
                if cpu_ms > SPIKE_MS:
                    spikes.append((time.monotonic() - started, spec, cpu_ms))
    print(f"load average {os.getloadavg()[0]:.2f}; {args.requests:,} requests per cell, interleaved")
    for at, spec, cpu_ms in spikes:
        print(f"  over {SPIKE_MS:g} ms: {cpu_ms:6.1f} ms at {at:5.0f} s after the gateway's start ({spec})")
    base: dict[str, tuple[float, float]] = {}
    missed = False
    for spec, values in samples.items():
        values.sort()
        median = statistics.median(values)
        low = statistics.mean(values[: int(len(values) * 0.9)])
        mode, fmt = spec.split(":")
        first = base.setdefault(mode, (median, low))
        added = (median - first[0]) * 1000, (low - first[1]) * 1000
        ratio = (median / first[0] - 1) * 100, (low / first[1] - 1) * 100
        verdict = ""
        if fmt == "responses":
            missed = missed or max(ratio) > 10
            verdict = "PASS" if max(ratio) <= 10 else "FAIL"
            verdict += " (native: within 10 %)"
        elif fmt.startswith("responses->"):
            missed = missed or max(added) > 300
            verdict = ("PASS" if max(added) <= 300 else "FAIL") + " (translated: ≤ +0.3 ms)"
        print(
            f"{spec:24s} median {median:.3f} ms ({added[0]:+6.1f} µs, {ratio[0]:+5.1f} %)  lowest 90 % "
            f"{low:.3f} ms ({added[1]:+6.1f} µs, {ratio[1]:+5.1f} %)  {verdict}"
        )
    return 1 if missed else 0


def main() -> int:
    """Start the mock and an embedded gateway, seed, measure."""
    parser = argparse.ArgumentParser(prog="bench/interleaved.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cells",
        type=lambda text: [part.strip() for part in text.split(",")],
        default=[f"{mode}:{fmt}" for mode in MODES for fmt in ("openai", "responses", "responses->chat")],
        help="mode:format, as bench/run.py names formats; the first cell of each mode is the baseline",
    )
    parser.add_argument("--requests", type=int, default=1500, help="measured requests per cell")
    parser.add_argument("--warmup", type=int, default=100, help="rounds before measuring")
    parser.add_argument("--pause-ms", type=float, default=1.0, help="pause after each answer")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="trollllm-interleaved-"))
    with Processes(workdir) as processes:
        _, mock_url = processes.start_mock(uvloop=True)
        started = time.monotonic()
        pid, url = processes.start_gateway()
        seeded = seed(url, mock_url, credits_usd=100_000)
        return uvloop.run(measure(url, seeded.api_key, pid, args, started))


if __name__ == "__main__":
    sys.exit(main())
