"""The long-streams cell (issue 26): N streams open at once, each 60 tokens 50-200 ms apart.

    .venv/bin/python bench/run.py --long-streams 100,1000[,2000,5000]

After 100 untimed warm-up streams, for each N: N streams started together through one gateway process
(embedded shape), then N straight to the mock. Each stream asks the mock (its `chunk_delay_ms` and
`reply_tokens` controls, in the prompt) for 60 tokens with its own gap between them, spread evenly over
50-200 ms; the OpenAI wire format. Printed per target: completed streams, errors, time to first token, the
gap between tokens (p50, p99, max) and its excess over the gap asked, stalls (a gap over 4x the one asked),
the server's CPU per token event, the peak of streams open at once and the gateway's RSS per open stream
(peak RSS during the cell minus its RSS before, over that peak), and `other`: cores kept busy by processes
outside the bench (a shared machine).

Every stream gets its own connection; the client (`bench/stream_client.py`) is an `asyncio.Protocol` that
only counts token markers and timestamps them as they arrive (one timestamp per read: events coalesced in
one read share it).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import uvloop
from loadgen import percentile
from stack import (
    MOCK_KEY,
    MODELS,
    Processes,
    SetupError,
    cpu_seconds,
    machine_busy_seconds,
    memory_kb,
    seed,
)
from stream_client import (
    GAP_MAX_MS,
    GAP_MIN_MS,
    TOKENS,
    StreamClient,
    StreamRecord,
    asked_gap_ms,
    request_bytes,
)

STALL_FACTOR = 4
STREAM_TIMEOUT_S = 600.0
RSS_SAMPLE_S = 0.25
WARMUP_STREAMS = 100
PER_KEY_CONNECTIONS = 20_000
"""The bench seeds one factory key: its connection limit is raised above every N measured."""


@dataclass(slots=True)
class LongStreamsResult:
    """One target at one N."""

    target: str
    streams: int
    completed: int
    errors: int
    ttft_p50_ms: float
    ttft_p99_ms: float
    gap_p50_ms: float
    gap_p99_ms: float
    gap_max_ms: float
    excess_p50_ms: float
    excess_p99_ms: float
    stalls: int
    token_events: int
    cpu_us_per_token: float
    mock_us_per_token: float
    client_us_per_token: float
    peak_open: int
    rss_kb_per_stream: float
    elapsed_s: float
    other_cores: float
    error_samples: list[str]


async def run_streams(
    base_url: str, key: str, model: str, count: int, server_pid: int, mock_pid: int, target: str
) -> LongStreamsResult:
    """Start `count` long streams at once against `base_url`; wait for all; their figures."""
    loop = asyncio.get_running_loop()
    host, port_text = base_url.removeprefix("http://").rsplit(":", 1)
    port = int(port_text)
    records = [StreamRecord(asked_gap_ms(i)) for i in range(count)]
    finished = [loop.create_future() for _ in range(count)]
    rss_before = memory_kb(server_pid)[0]
    own_before = time.process_time()
    server_before, mock_before, busy_before = (
        cpu_seconds(server_pid),
        cpu_seconds(mock_pid),
        machine_busy_seconds(),
    )
    started = time.perf_counter()
    peak = [0, rss_before]  # streams open at once, RSS (KiB)

    async def one(index: int) -> None:
        record = records[index]
        payload = request_bytes(host, port, key, model, record.asked_ms)
        try:
            await loop.create_connection(lambda: StreamClient(payload, record, finished[index]), host, port)
        except OSError as exc:
            record.error = f"connect: {exc!r}"
            finished[index].set_result(None)

    async def sample() -> None:
        while True:
            open_now = sum(1 for r in records if r.sent and not r.done and r.error is None)
            if open_now > peak[0]:
                peak[0] = open_now
            peak[1] = max(peak[1], memory_kb(server_pid)[0])
            await asyncio.sleep(RSS_SAMPLE_S)

    sampler = loop.create_task(sample())
    try:
        await asyncio.gather(*(one(i) for i in range(count)))
        _, pending = await asyncio.wait(finished, timeout=STREAM_TIMEOUT_S)
        for index, future in enumerate(finished):
            if future in pending:
                records[index].error = records[index].error or "timed out"
    finally:
        sampler.cancel()
    elapsed = time.perf_counter() - started
    server_cpu = cpu_seconds(server_pid) - server_before
    mock_cpu = cpu_seconds(mock_pid) - mock_before
    own_cpu = time.process_time() - own_before
    busy = machine_busy_seconds() - busy_before
    others = server_cpu + own_cpu + (mock_cpu if server_pid != mock_pid else 0.0)
    cpu = Cpu(server_cpu, mock_cpu, own_cpu, max(0.0, busy - others))
    return summarize(target, records, elapsed, cpu, peak[0], peak[1] - rss_before)


@dataclass(frozen=True, slots=True)
class Cpu:
    """CPU seconds during one cell: the measured server's, the mock's, this load generator's, the others'."""

    server: float
    mock: float
    client: float
    other: float


def summarize(
    target: str,
    records: list[StreamRecord],
    elapsed: float,
    cpu: Cpu,
    peak_open: int,
    rss_growth_kb: int,
) -> LongStreamsResult:
    """The figures of one cell from its streams' records."""
    ttfts, gaps, excess = [], [], []
    stalls = 0
    completed = 0
    errors: list[str] = []
    events = 0
    for record in records:
        times = record.token_times
        events += len(times)
        if record.error is None and record.done and len(times) == TOKENS:
            completed += 1
        elif len(errors) < 5:
            errors.append(record.error or f"{len(times)} of {TOKENS} tokens")
        if times:
            ttfts.append((times[0] - record.sent) * 1000)
        for before, after in itertools.pairwise(times):
            gap = (after - before) * 1000
            gaps.append(gap)
            excess.append(gap - record.asked_ms)
            if gap > STALL_FACTOR * record.asked_ms:
                stalls += 1
    return LongStreamsResult(
        target=target,
        streams=len(records),
        completed=completed,
        errors=len(records) - completed,
        ttft_p50_ms=percentile(ttfts, 0.5),
        ttft_p99_ms=percentile(ttfts, 0.99),
        gap_p50_ms=percentile(gaps, 0.5),
        gap_p99_ms=percentile(gaps, 0.99),
        gap_max_ms=max(gaps, default=float("nan")),
        excess_p50_ms=percentile(excess, 0.5),
        excess_p99_ms=percentile(excess, 0.99),
        stalls=stalls,
        token_events=events,
        cpu_us_per_token=cpu.server / max(1, events) * 1e6,
        mock_us_per_token=cpu.mock / max(1, events) * 1e6,
        client_us_per_token=cpu.client / max(1, events) * 1e6,
        peak_open=peak_open,
        rss_kb_per_stream=rss_growth_kb / peak_open if peak_open else float("nan"),
        elapsed_s=elapsed,
        other_cores=cpu.other / max(elapsed, 1e-9),
        error_samples=errors,
    )


HEADER = (
    f"{'target':8} {'N':>6} {'done':>6} {'err':>5} {'ttft p50':>9} {'p99':>8} {'gap p50':>8} {'p99':>7} "
    f"{'max':>7} {'+p50':>6} {'+p99':>7} {'stalls':>6} {'cpu µs/tok':>10} {'mock':>5} {'client':>6} "
    f"{'open':>6} {'KB/strm':>8} "
    f"{'s':>5} {'other':>5}"
)


def row(result: LongStreamsResult) -> str:
    """One line of the table (times in ms; `+p50`/`+p99`: the gap's excess over the gap asked)."""
    r = result
    return (
        f"{r.target:8} {r.streams:>6,} {r.completed:>6,} {r.errors:>5,} {r.ttft_p50_ms:>9.0f} "
        f"{r.ttft_p99_ms:>8.0f} "
        f"{r.gap_p50_ms:>8.1f} {r.gap_p99_ms:>7.1f} {r.gap_max_ms:>7.0f} {r.excess_p50_ms:>6.1f} "
        f"{r.excess_p99_ms:>7.1f} {r.stalls:>6,} {r.cpu_us_per_token:>10.1f} {r.mock_us_per_token:>5.1f} "
        f"{r.client_us_per_token:>6.1f} {r.peak_open:>6,} "
        f"{r.rss_kb_per_stream:>8.1f} {r.elapsed_s:>5.1f} {r.other_cores:>5.2f}"
    )


def verdicts(gateway: LongStreamsResult, direct: LongStreamsResult | None) -> list[str]:
    """The issue's targets for this N, PASS/FAIL."""
    lines = []
    n = gateway.streams

    def check(name: str, passed: bool, value: str) -> None:
        lines.append(f"  {'PASS' if passed else 'FAIL'}  {name}: {value}")

    check(f"0 errors at {n:,}", gateway.errors == 0, f"{gateway.errors:,}")
    if n <= 2000:
        check(f"no stall at {n:,}", gateway.stalls == 0, f"{gateway.stalls:,}")
        if direct is not None:
            added = gateway.excess_p99_ms - direct.excess_p99_ms
            check(f"added gap p99 ≤ 10 ms at {n:,}", added <= 10, f"{added:.1f} ms")
    check(
        "≤ 40 KB RSS per open stream", gateway.rss_kb_per_stream <= 40, f"{gateway.rss_kb_per_stream:.1f} KB"
    )
    return lines


def raise_own_open_files_limit() -> int:
    """This process and the ones it starts (mock, gateway) need a descriptor per stream."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def run(args: argparse.Namespace, workdir: Path) -> int:
    """`bench/run.py --long-streams N,…`: the cell at each N, gateway then direct; 1 if a target failed."""
    counts: list[int] = args.long_streams
    limit = raise_own_open_files_limit()
    print(
        f"long streams: N = {counts}, {TOKENS} tokens {GAP_MIN_MS}-{GAP_MAX_MS} ms apart each, started "
        f"together; one gateway process (embedded shape, SQLite); {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.2f}, open files limit {limit:,}; the gateway's per-key connection limit "
        f"set to {PER_KEY_CONNECTIONS:,} (one factory key)",
        flush=True,
    )
    results: list[tuple[LongStreamsResult, LongStreamsResult | None]] = []
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner, Processes(workdir) as processes:
        mock_pid, mock_url = processes.start_mock(uvloop=args.mock_loop == "uvloop")
        processes.env["TROLLLLM_UPSTREAM_CONNECTIONS_PER_KEY"] = str(PER_KEY_CONNECTIONS)
        gateway_pid, url = processes.start_gateway()
        seeded = seed(url, mock_url, credits_usd=args.credits, users=1)
        model, upstream_model = seeded.models["openai"], MODELS["openai"][1]
        # Untimed: the gateway's first streams grow its pools and caches, which is not RSS per stream.
        runner.run(run_streams(url, seeded.api_key, model, WARMUP_STREAMS, gateway_pid, mock_pid, "warm-up"))
        print(HEADER, flush=True)
        for count in counts:
            try:
                gateway = runner.run(
                    run_streams(url, seeded.api_key, model, count, gateway_pid, mock_pid, "gateway")
                )
            except SetupError:
                print(processes.output("gateway"))
                raise
            print(row(gateway), flush=True)
            direct = runner.run(
                run_streams(mock_url, MOCK_KEY, upstream_model, count, mock_pid, mock_pid, "direct")
            )
            print(row(direct), flush=True)
            for samples in (gateway.error_samples, direct.error_samples):
                for sample in samples[:2]:
                    print(f"  error: {sample}", flush=True)
            results.append((gateway, direct))
    print(
        "\nttft: to the first token event; gap: between token events of a stream (p50, p99, max);\n"
        "+p50/+p99: the gap's excess over the gap asked; stalls: gaps over 4x the gap asked; cpu µs/tok:\n"
        "the server's CPU (gateway rows: the gateway's; direct rows: the mock's) per token event; mock,\n"
        "client: the mock's and this load generator's CPU per token event;\n"
        "open: peak streams open at once; KB/strm: the server's RSS growth at that peak, per open stream;\n"
        "other: cores busy outside the bench."
    )
    lines = [line for gateway, direct in results for line in verdicts(gateway, direct)]
    print("\ntargets (issue 26):\n" + "\n".join(lines))
    return 1 if any(line.lstrip().startswith("FAIL") for line in lines) else 0
