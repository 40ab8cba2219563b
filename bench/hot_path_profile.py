"""Profile the gateway's chat hot path (issue 26): where a request's CPU goes, per cell.

    .venv/bin/python bench/hot_path_profile.py [--requests 3000] [--concurrency 8] [--top 25]
        [--formats openai,anthropic,responses,responses->chat] [--shape scaled [--instances 2]]

Starts the mock and one embedded gateway (`trollllm serve`, everything on) whose main thread carries a
`cProfile` profiler (timing the thread's CPU time, so a busy machine's preemptions stay out) switched on and
off by signals (SIGUSR1 on, SIGUSR2 off and dump), so start-up, seeding and warm-up stay out of it. For each
cell (JSON and stream × the `--formats` of bench/run.py, OpenAI and Anthropic by default, and a long-stream
shape: 60 tokens, one event per upstream chunk) it warms up, profiles the measured requests, and prints the
top functions by own CPU time with their calls per request. cProfile slows Python-heavy code more than C
calls: read the ranking, not the absolute times.

`--shape scaled` profiles the scaled shape instead, as bench/run.py starts it (`--instances` gateways on a
fresh PostgreSQL database and Redis prefix, credit leases on, one user): every instance runs under the
profiler, the load is spread over them, and the profile and CPU shown are the first instance's.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import os
import pstats
import signal
import sys
import tempfile
from pathlib import Path

import orjson
import uvloop
from formats import FORMATS, cell_route, make_target
from loadgen import run_cell
from stack import ADMIN, Processes, ScaledServices, SetupError, cpu_seconds, free_port, seed

MODES = ("json", "stream")
_PROFILED_SERVE = """
import cProfile, os, runpy, signal, sys, time
profile = cProfile.Profile(time.thread_time)  # CPU time of the event loop's thread, not wall time
dumps = iter(range(1000))
def _on(signum, frame):
    profile.enable()
def _off(signum, frame):
    profile.disable()
    profile.dump_stats(os.path.join(os.environ["PROFILE_DIR"], f"cell-{next(dumps)}.prof"))
    profile.clear()
signal.signal(signal.SIGUSR1, _on)
signal.signal(signal.SIGUSR2, _off)
sys.argv = ["trollllm", *sys.argv[1:]]
runpy.run_module("trollllm", run_name="__main__")
"""


def start_profiled_gateway(processes: Processes, profile_dir: Path) -> tuple[int, str]:
    """`trollllm serve` under the signal-driven profiler; its pid and URL once healthy."""
    processes.command("create-admin", ADMIN[0], "--password", ADMIN[1])
    return _profiled_serve(processes, "gateway", processes.env, profile_dir)


def start_profiled_scaled(
    processes: Processes, services: ScaledServices, instances: int, profile_dir: Path
) -> list[tuple[int, str]]:
    """The scaled shape (credit leases on) with every instance under the profiler, each dumping into its own
    folder (`profile_dir / "scaled-<n>"`, the first one's into `profile_dir`): (pid, URL) of each."""
    env = {**processes.env, **services.env, "TROLLLLM_CREDIT_LEASES": "true"}
    processes.command("migrate", env=env)
    processes.command("create-admin", ADMIN[0], "--password", ADMIN[1], env=env)
    started = []
    for n in range(instances):
        dumps = profile_dir if n == 0 else profile_dir / f"scaled-{n}"
        dumps.mkdir(exist_ok=True)
        own = {**env, "TROLLLLM_DATA_DIR": str(processes.workdir / f"scaled-{n}")}
        started.append(_profiled_serve(processes, f"scaled-{n}", own, dumps))
    return started


def _profiled_serve(
    processes: Processes, name: str, env: dict[str, str], profile_dir: Path
) -> tuple[int, str]:
    port = free_port()
    argv = [sys.executable, "-c", _PROFILED_SERVE, "serve", "--host", "127.0.0.1", "--port", str(port)]
    process, _ = processes.spawn(name, argv, {**env, "PROFILE_DIR": str(profile_dir)})
    return processes.wait_healthy(name, process, f"http://127.0.0.1:{port}")


def top_entries(path: Path, requests: int, top: int) -> str:
    """The profile's top functions by own time: own ms per 1,000 requests, calls per request, cumulative."""
    stats = pstats.Stats(str(path), stream=io.StringIO())
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((own, calls, cumulative, f"{_short(filename)}:{line}({name})"))
    rows.sort(reverse=True)
    lines = [
        f"profiled CPU: {total / requests * 1e3:.3f} ms per request ({requests:,} requests, under cProfile)",
        f"{'own ms/1k req':>13} {'own %':>6} {'calls/req':>9} {'cum ms/1k':>9}  function",
    ]
    for own, calls, cumulative, where in rows[:top]:
        lines.append(
            f"{own / requests * 1e6:>13.1f} {100 * own / total:>6.1f} {calls / requests:>9.2f} "
            f"{cumulative / requests * 1e6:>9.1f}  {where}"
        )
    return "\n".join(lines)


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/trollllm/", "lib/python3"):
        if marker in filename:
            return (
                filename.split(marker, 1)[1]
                if marker != "/trollllm/"
                else "trollllm/" + filename.split(marker, 1)[1]
            )
    return filename


async def profile_cells(
    urls: list[str],
    key: str,
    models: dict[str, str],
    pids: list[int],
    args: argparse.Namespace,
    profile_dir: Path,
) -> list[tuple[str, Path, float]]:
    """Each cell: warm up, profile the measured requests; (cell name, the first gateway's profile, its CPU
    ms/request). With several gateways the requests are spread over them and each one's share counts."""
    done = []
    cells = []
    for mode in MODES:
        for fmt in args.formats:
            client, model, _, _ = cell_route(fmt)
            cells.append((mode, fmt, [make_target(url, key, model, mode, client) for url in urls]))
    longs = []
    for url in urls:
        long = make_target(url, key, models["openai"], "stream", "openai")
        body = orjson.loads(long.body)
        body["messages"][0]["content"] = (
            f"[mock reply_tokens=60 chunk_delay_ms=2] {body['messages'][0]['content']}"
        )
        body["max_tokens"] = 100
        longs.append(dataclasses.replace(long, body=orjson.dumps(body)))
    cells.append(("long-stream", "openai", longs))
    cells = [cell for cell in cells if not args.only or f"{cell[0]} {cell[1]}" in args.only]
    share = args.requests / len(urls)  # the first gateway's requests (workers are spread evenly)
    for number, (mode, fmt, targets) in enumerate(cells):
        await run_cell(targets, concurrency=args.concurrency, requests=args.warmup)
        for pid in pids:
            os.kill(pid, signal.SIGUSR1)
        await asyncio.sleep(0.2)
        cpu_before = cpu_seconds(pids[0])
        tally = await run_cell(targets, concurrency=args.concurrency, requests=args.requests)
        cpu = cpu_seconds(pids[0]) - cpu_before
        for pid in pids:
            os.kill(pid, signal.SIGUSR2)
        path = profile_dir / f"cell-{number}.prof"
        for _ in range(100):
            if path.exists() and path.stat().st_size:
                break
            await asyncio.sleep(0.1)
        if tally.errors:
            raise SetupError(f"{mode}/{fmt}: {tally.errors} errors, e.g. {tally.error_samples[0]}")
        done.append((f"{mode} {fmt}", path, cpu / share * 1e3))
    return done


def main() -> int:
    """Profile every cell and print its top entries."""
    parser = argparse.ArgumentParser(prog="bench/hot_path_profile.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="profiled requests per cell")
    parser.add_argument("--warmup", type=int, default=300, help="requests before profiling each cell")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--top", type=int, default=25, help="functions shown per cell")
    parser.add_argument(
        "--formats",
        type=lambda text: [part.strip() for part in text.split(",")],
        default=["openai", "anthropic"],
        help=f"cell formats, as bench/run.py names them ({', '.join(FORMATS)})",
    )
    parser.add_argument(
        "--only",
        type=lambda text: [part.strip() for part in text.split(",")],
        default=[],
        help='cells to profile, e.g. "stream openai,long-stream openai" (default: all)',
    )
    parser.add_argument("--shape", choices=["embedded", "scaled"], default="embedded")
    parser.add_argument("--instances", type=int, default=2, help="gateways of the scaled shape")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    if args.shape == "embedded":
        args.instances = 1
    workdir = Path(tempfile.mkdtemp(prefix="trollllm-profile-"))
    profile_dir = workdir / "profiles"
    profile_dir.mkdir()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; work dir {workdir}", flush=True)
    services = ScaledServices(args.postgres, args.redis) if args.shape == "scaled" else None
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner, Processes(workdir) as processes:
        _, mock_url = processes.start_mock(uvloop=True)
        if services is None:
            started = [start_profiled_gateway(processes, profile_dir)]
        else:
            runner.run(services.create())
            started = start_profiled_scaled(processes, services, args.instances, profile_dir)
        pids, urls = [pid for pid, _ in started], [url for _, url in started]
        try:
            seeded = seed(urls[0], mock_url, credits_usd=100_000)
            cells = runner.run(profile_cells(urls, seeded.api_key, seeded.models, pids, args, profile_dir))
        finally:
            if services is not None:
                processes.__exit__(None, None, None)
                runner.run(services.remove())
    share = round(args.requests / len(urls))
    for name, path, cpu_ms in cells:
        print(
            f"\n== {name}, concurrency {args.concurrency}: gateway CPU {cpu_ms:.3f} ms/request under cProfile"
            + (f" (the first of {len(urls)} instances)" if len(urls) > 1 else "")
        )
        print(top_entries(path, share, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
