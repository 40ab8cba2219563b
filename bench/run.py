"""Benchmark the TrollLLM gateway against calling its mock upstream directly (issues 4 and 17).

Run from the repository root: ``.venv/bin/python bench/run.py`` (``--help`` for the options).
Starts the mock upstream and the gateway as subprocesses in each shape asked for (``--shape``, default
both): embedded (one worker, SQLite in a temporary directory) and scaled (``--instances`` processes, 2 by
default, on a fresh PostgreSQL database and a Redis key prefix of their own); auth, rate limiting, holds,
charging and request logs all on. Seeds the gateway through its HTTP API, then drives it from this process
with a lean HTTP/1.1 load generator: concurrency × mode (JSON, SSE) × wire format (OpenAI, Anthropic), the
gateway then the mock directly for each cell (the scaled shape's connections spread over its instances),
plus a long mixed run for memory growth on the embedded shape. Prints a table per cell, the two shapes side
by side, and the issue's targets (set for the embedded shape) as PASS/FAIL.
Exit status: 0 all targets met, 1 a target failed, 2 the gateway could not be set up (the direct half
is still measured and printed).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import long_streams
import uvloop
from formats import FORMATS, cell_route, make_target
from loadgen import Target, run_cell
from peers import start_peers
from readings import Meter
from report import (
    LEGEND,
    CellResult,
    Figures,
    LongRun,
    cell_table,
    check_targets,
    json_safe,
    scaled_row,
    shape_comparison,
    summarize,
    verdict_lines,
)
from stack import (
    MOCK_KEY,
    MODELS,
    Processes,
    ProcessGone,
    ScaledServices,
    SetupError,
    memory_kb,
    seed,
    speed_probe_us,
)
from yardsticks import Yardstick, start_passthrough


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (every option has a default that finishes the whole run in a few minutes)."""

    def int_list(text: str) -> list[int]:
        return [int(part) for part in text.split(",") if part]

    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int_list, default=[1, 32, 128], help="default: 1,32,128")
    parser.add_argument("--modes", default="json,stream", help="json and/or stream (default: both)")
    parser.add_argument(
        "--formats",
        default="openai,anthropic",
        help=f"any of {', '.join(FORMATS)} (see bench/formats.py; default: openai,anthropic)",
    )
    add = parser.add_argument
    add("--requests", type=int, default=5000, help="measured requests per cell (default: 5000)")
    add("--max-seconds", type=float, default=20, help="a cell stops after this, 0 = never (default: 20)")
    add("--duration", type=float, default=0.0, help="seconds per cell instead of --requests")
    add("--warmup", type=int, default=300, help="unmeasured requests first (default: 300)")
    add("--long", type=int, default=20_000, help="requests of the RSS run, 0 skips it (default: 20000)")
    add("--long-max-seconds", type=float, default=120, help="RSS run time cap, 0 = none (default: 120)")
    add("--long-concurrency", type=int, default=32, help="concurrency of the RSS run (default: 32)")
    parser.add_argument("--client", choices=["raw", "aiohttp"], default="raw", help="load generator client")
    parser.add_argument(
        "--mock-loop",
        choices=["asyncio", "uvloop"],
        default="uvloop",
        help="the mock's loop (default: uvloop)",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="per-request timeout in seconds")
    parser.add_argument("--credits", type=int, default=100_000, help="USD granted to the bench user")
    parser.add_argument("--direct-only", action="store_true", help="measure the mock directly, no gateway")
    parser.add_argument(
        "--shape", choices=["embedded", "scaled", "both"], default="both", help="which shape (default: both)"
    )
    parser.add_argument("--instances", type=int, default=2, help="gateway processes of the scaled shape")
    parser.add_argument(
        "--users",
        type=int,
        default=1,
        help="paying users the requests rotate over (default 1: every request holds and charges one balance)",
    )
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="a PostgreSQL database to connect to for creating the scaled shape's own (dropped after)",
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="the scaled shape's Redis")
    parser.add_argument(
        "--peers", action="store_true", help="also LiteLLM and Portkey on each cell (bench/peers.py)"
    )
    parser.add_argument(
        "--no-credit-leases",
        action="store_true",
        help="the scaled shape without TROLLLLM_CREDIT_LEASES (every hold and settlement on the user's row)",
    )
    parser.add_argument(
        "--embedded-no-credit-leases",
        action="store_true",
        help="the embedded shape with TROLLLLM_CREDIT_LEASES=false (on unless told, as the product ships)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure as JSON here")
    parser.add_argument(
        "--long-streams",
        type=int_list,
        metavar="N[,N...]",
        help="only the long-streams cell (bench/long_streams.py) at each N, e.g. 100,1000,2000,5000",
    )
    args = parser.parse_args(argv)
    args.modes = [mode for mode in args.modes.split(",") if mode]
    args.formats = [fmt for fmt in args.formats.split(",") if fmt]
    if not set(args.modes) <= {"json", "stream"} or not set(args.formats) <= set(FORMATS):
        parser.error(f"--modes takes json,stream and --formats {','.join(FORMATS)}")
    return args


async def measure(
    args: argparse.Namespace, meter: Meter, targets: list[Target], label: tuple[str, int, str, str]
) -> CellResult:
    """Run one cell and read its costs."""
    target, concurrency, mode, fmt = label
    tally = await run_cell(
        targets,
        concurrency=concurrency,
        requests=0 if args.duration else args.requests,
        seconds=args.duration or args.max_seconds,
        warmup=max(args.warmup, 2 * concurrency),
        client=args.client,
        timeout_s=args.timeout,
        before=meter.start,
    )
    return meter.result(tally, target, concurrency, mode, fmt)


async def long_run(args: argparse.Namespace, meter: Meter, targets: list[Target]) -> LongRun:
    """Mixed requests (both modes, both formats) for RSS growth: RSS sampled every 1,000 requests."""
    assert meter.gateway_pid is not None
    pid = meter.gateway_pid
    samples: list[tuple[int, float]] = []
    tally = await run_cell(
        targets,
        concurrency=args.long_concurrency,
        requests=args.long,
        seconds=args.long_max_seconds,
        warmup=0,
        client=args.client,
        timeout_s=args.timeout,
        before=meter.start,
        on_progress=lambda n: samples.append((n, memory_kb(pid)[0] / 1024)),
    )
    cell = meter.result(tally, "gateway", args.long_concurrency, "mixed", "both")
    rss_end, peak = (kb / 1024 for kb in memory_kb(pid))
    done = cell.ok + cell.errors  # fewer than asked when the time cap stopped it
    baseline_at = 10_000 if done >= 20_000 else max(1000, done // 2000 * 1000)
    baseline = next((rss for n, rss in samples if n >= baseline_at), rss_end)
    return LongRun(done, baseline_at, baseline, rss_end, peak, samples, cell)


async def drive(
    args: argparse.Namespace,
    meter: Meter,
    mock_url: str,
    gateway: tuple[list[str], tuple[str, ...]] | None,
    *,
    name: str = "gateway",
    direct: bool = True,
    yardsticks: Sequence[Yardstick] = (),
) -> Figures:
    """Every cell, gateway, yardsticks then direct (unless `direct` is False), printed as each finishes; then
    the long run (the embedded shape's). `gateway` is the instances' URLs and the users' keys (requests
    rotate over them)."""
    gateway_cells: dict[tuple[int, str, str], CellResult] = {}
    direct_cells: dict[tuple[int, str, str], CellResult] = {}
    others: dict[tuple[int, str, str], list[CellResult]] = {}
    for concurrency in args.concurrency:
        for mode in args.modes:
            for fmt in args.formats:
                label = (concurrency, mode, fmt)
                # a translated cell calls the model's provider directly in the model's own format
                client_fmt, gateway_model, direct_fmt, direct_model = cell_route(fmt)
                if gateway is not None:
                    urls, keys = gateway
                    gw_targets = [
                        make_target(url, k, gateway_model, mode, client_fmt) for url in urls for k in keys
                    ]
                    gateway_cells[label] = await measure(args, meter, gw_targets, (name, *label))
                if not direct:
                    print(
                        scaled_row(gateway_cells[label], len(gateway[0]) if gateway else 0), "\n", flush=True
                    )
                    continue
                for stick in yardsticks:
                    if (request := stick.request(mode, fmt)) is not None:
                        stick_meter = Meter(stick.pids, meter.mock_pid)
                        cell = await measure(args, stick_meter, [request], (stick.name, *label))
                        others.setdefault(label, []).append(cell)
                mock_target = make_target(mock_url, MOCK_KEY, direct_model, mode, direct_fmt)
                direct_cells[label] = await measure(args, meter, [mock_target], ("direct", *label))
                table = cell_table(gateway_cells.get(label), direct_cells[label], others.get(label, []))
                print(table, "\n", flush=True)
    long = None
    if gateway is not None and args.long > 0 and name == "gateway":
        urls, keys = gateway
        mixed = [
            make_target(urls[0], keys[0], MODELS[f][0], m, f) for m in ("json", "stream") for f in MODELS
        ]
        print(f"long run: {args.long:,} mixed requests at concurrency {args.long_concurrency} …", flush=True)
        long = await long_run(args, meter, mixed)
    return Figures(gateway_cells, direct_cells, long, others)


async def smoke(url: str, key: str) -> None:
    """One request of every kind through the gateway; a clear error instead of a table of failures."""
    for mode in ("json", "stream"):
        for fmt, (model, _) in MODELS.items():
            tally = await run_cell([make_target(url, key, model, mode, fmt)], concurrency=1, requests=1)
            if tally.errors:
                raise SetupError(
                    f"smoke request {mode}/{fmt} through the gateway failed: {tally.error_samples[0]}"
                )


def main(argv: list[str] | None = None) -> int:
    """Set up, measure, report; the temporary directory is removed unless ``--keep``."""
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="trollllm-bench-"))
    try:
        return run(args, workdir)
    except SetupError as exc:
        print(f"setup failed: {exc}", file=sys.stderr)
        return 2
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, workdir: Path) -> int:
    """The whole benchmark; its exit status."""
    if args.long_streams:
        return long_streams.run(args, workdir)
    size = f"{args.requests:,} requests (≤ {args.max_seconds:g} s)"
    if args.duration:
        size = f"{args.duration:g} s"
    print(
        f"TrollLLM bench {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {os.cpu_count()} cores · "
        f"load average {os.getloadavg()[0]:.2f} · Python {platform.python_version()} · client {args.client}\n"
        f"cells: concurrency {args.concurrency} × {args.modes} × {args.formats}, {size} each after "
        f"{args.warmup} warm-up; work dir {workdir}",
        flush=True,
    )
    probe_before = speed_probe_us()
    print(f"CPU speed probe: {probe_before:.0f} µs (lower is faster; see bench/README.md)", flush=True)
    setup_error: str | None = None
    startup_rss_mb: float | None = None
    embedded = args.shape in ("embedded", "both")
    figures = Figures({}, {}, None)
    scaled_figures: Figures | None = None
    services: ScaledServices | None = None
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner, Processes(workdir) as processes:
        mock_pid, mock_url = processes.start_mock(uvloop=args.mock_loop == "uvloop")
        if embedded or args.direct_only:
            gateway: tuple[list[str], tuple[str, ...]] | None = None
            gateway_pids: list[int] = []
            if not args.direct_only:
                try:
                    leased = not args.embedded_no_credit_leases
                    gateway_pid, url = processes.start_gateway(credit_leases=leased)
                    seeded = seed(url, mock_url, credits_usd=args.credits, users=args.users)
                    runner.run(smoke(url, seeded.api_key))
                    gateway, gateway_pids = ([url], seeded.api_keys), [gateway_pid]
                    startup_rss_mb = memory_kb(gateway_pid)[0] / 1024
                    print(
                        f"gateway up and seeded; its RSS before the cells: {startup_rss_mb:.1f} MB",
                        flush=True,
                    )
                except SetupError as exc:
                    setup_error = str(exc)
                    print(f"\nGATEWAY NOT MEASURED, setup failed:\n{exc}\n(direct half only)\n", flush=True)
            sticks: list[Yardstick] = []
            if gateway is not None:
                sticks = [start_passthrough(processes, mock_url), *start_peers(processes, mock_url, args)]
            leases = ", no credit leases" if args.embedded_no_credit_leases else ", credit leases"
            print(f"embedded shape (one worker, SQLite{leases})\n" + LEGEND, "\n", flush=True)
            try:
                meter = Meter(gateway_pids, mock_pid)
                figures = runner.run(drive(args, meter, mock_url, gateway, yardsticks=sticks))
            except ProcessGone:
                print(f"the gateway or the mock exited; their output:\n{processes.output('gateway')}")
                print(processes.output("mock"))
                raise
        if args.shape in ("scaled", "both") and not args.direct_only:
            services = ScaledServices(args.postgres, args.redis)
            try:
                runner.run(services.create())
                started = processes.start_scaled(
                    services, args.instances, credit_leases=not args.no_credit_leases
                )
                urls = [url for _, url in started]
                seeded = seed(urls[0], mock_url, credits_usd=args.credits, users=args.users)
                for url in urls:
                    runner.run(smoke(url, seeded.api_key))
                print(
                    f"\nscaled shape: {len(urls)} instances on PostgreSQL and Redis, up and seeded; the load "
                    "generator's connections are spread over them",
                    flush=True,
                )
                meter = Meter([pid for pid, _ in started], mock_pid)
                scaled_figures = runner.run(
                    drive(args, meter, mock_url, (urls, seeded.api_keys), name="scaled", direct=not embedded)
                )
            except SetupError as exc:
                setup_error = f"scaled shape: {exc}"
                print(f"\nSCALED SHAPE NOT MEASURED, setup failed:\n{exc}\n", flush=True)
    if services is not None:
        asyncio.run(services.remove())
    verdicts = []
    if embedded:
        verdicts = check_targets(
            figures.gateway, figures.direct, figures.long, args.formats, figures.yardsticks
        )
        summarize(figures, workdir / "gateway.log")
    if scaled_figures is not None:
        if not embedded:
            figures = Figures({}, scaled_figures.direct, None)
        summarize(Figures(scaled_figures.gateway, {}, None), workdir / "scaled-0.log")
        print("\n" + shape_comparison(figures.gateway, scaled_figures.gateway, args.instances))
    probe_after = speed_probe_us()
    print(f"\nCPU speed probe: {probe_before:.0f} µs before the cells, {probe_after:.0f} µs after")
    if verdicts:
        print("\ntargets (issues 4 and 26, the embedded shape):\n" + verdict_lines(verdicts))
    if args.json is not None:
        scaled_cells = scaled_figures.gateway.values() if scaled_figures is not None else []
        document = {
            "date": datetime.now(UTC).isoformat(),
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "machine": {
                "cores": os.cpu_count(),
                "python": platform.python_version(),
                "speedProbeUs": [probe_before, probe_after],
            },
            "setupError": setup_error,
            "gatewayStartupRssMb": startup_rss_mb,
            "cells": [dataclasses.asdict(c) for c in [*figures.gateway.values(), *figures.direct.values()]],
            "yardstickCells": [dataclasses.asdict(c) for cells in figures.yardsticks.values() for c in cells],
            "scaledCells": [dataclasses.asdict(c) for c in scaled_cells],
            "long": dataclasses.asdict(figures.long) if figures.long is not None else None,
            "targets": [dataclasses.asdict(v) for v in verdicts],
        }
        args.json.write_text(json.dumps(json_safe(document), indent=2, allow_nan=False))
        print(f"figures written to {args.json}")
    if setup_error is not None:
        return 2
    return 1 if any(v.passed is False for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
