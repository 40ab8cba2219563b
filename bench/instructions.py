"""Instructions per request: the gateway under `valgrind --tool=callgrind`, counted over N requests of a cell.

Seconds move with whatever else a shared machine does and with the machine itself; instruction counts do
not (the same cell gives the same count within about ±2 %, another process loading the machine or not).
This is the yardstick for a change on a machine too unsteady for `run.py`'s absolute lines:

    .venv/bin/python bench/instructions.py --cells json:openai:1,stream:openai:1 --requests 400

Each cell is `mode:format:concurrency`. The gateway is the normal one (`trollllm serve`, embedded SQLite,
every feature on), started under callgrind with counting off; per cell it is warmed up, then the counters
are zeroed, switched on for the measured requests, switched off and dumped. `--annotate N` prints the N
functions with the most inclusive instructions of each cell (`callgrind_annotate`). The seeded user's plan
holds money alone, so its holds come from a credit lease, as they do by default on SQLite;
`--no-credit-leases` runs the gateway with `TROLLLLM_CREDIT_LEASES=false` (a hold row per request).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from formats import cell_route, make_target
from loadgen import run_cell
from stack import ADMIN, Processes, SetupError, free_port, seed

_TOTALS = re.compile(rb"^totals: (\d+)", re.MULTILINE)


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True, timeout=120)


def start_under_callgrind(processes: Processes, out_dir: Path, credit_leases: bool) -> tuple[int, str]:
    """The embedded gateway under callgrind, counting nothing yet; its pid and URL once `/healthz` answers."""
    processes.command("create-admin", ADMIN[0], "--password", ADMIN[1])
    port = free_port()
    argv = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out_dir}/cg.out.%p",
        sys.executable,
        "-m",
        "trollllm",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    # The same string hashes every run, so a dict's probing (and its instruction count) repeats.
    env = {**processes.env, "PYTHONHASHSEED": "0", "TROLLLLM_CREDIT_LEASES": str(credit_leases).lower()}
    process, _ = processes.spawn("gateway", argv, env)
    return processes.wait_healthy("gateway", process, f"http://127.0.0.1:{port}", seconds=600.0)


def newest_dump(out_dir: Path) -> Path:
    return max(out_dir.glob("cg.out.*"), key=lambda path: path.stat().st_mtime_ns)


def count_cell(pid: int, url: str, key: str, cell: str, args: argparse.Namespace) -> tuple[int, Path]:
    """Instructions over `args.requests` requests of one `mode:format:concurrency` cell, and the dump."""
    mode, fmt, concurrency = cell.split(":")
    client_fmt, model, _, _ = cell_route(fmt)
    target = make_target(url, key, model, mode, client_fmt)
    clients = int(concurrency)
    warm = asyncio.run(run_cell([target], concurrency=clients, requests=args.warmup, timeout_s=600.0))
    _control("-z", str(pid))
    _control("-i", "on", str(pid))
    tally = asyncio.run(run_cell([target], concurrency=clients, requests=args.requests, timeout_s=600.0))
    _control("-i", "off", str(pid))
    _control("-d", str(pid))
    if warm.errors or tally.errors:
        raise SetupError(f"{cell}: errors: {(warm.error_samples + tally.error_samples)[:3]}")
    dump = newest_dump(Path(args.out_dir))
    found = _TOTALS.search(dump.read_bytes())
    if found is None:
        raise SetupError(f"{dump} holds no totals line")
    return int(found.group(1)), dump


def annotate(dump: Path, lines: int) -> str:
    done = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", str(dump)], capture_output=True, text=True, check=True
    )
    return "\n".join(done.stdout.splitlines()[:lines])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells", default="json:openai:1,stream:openai:1,stream:anthropic:1")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--annotate", type=int, default=0, metavar="LINES")
    parser.add_argument("--out-dir", default="", help="callgrind's dumps go here (default: a temp dir)")
    parser.add_argument(
        "--no-credit-leases", action="store_true", help="the gateway with TROLLLLM_CREDIT_LEASES=false"
    )
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="trollllm-instructions-") as workdir:
        args.out_dir = args.out_dir or workdir
        with Processes(Path(workdir)) as processes:
            _, mock_url = processes.start_mock(uvloop=True)
            pid, url = start_under_callgrind(processes, Path(args.out_dir), not args.no_credit_leases)
            seeded = seed(url, mock_url, credits_usd=1_000_000)
            print(f"{'cell':<24} {'instructions per request':>26}", flush=True)
            for cell in args.cells.split(","):
                total, dump = count_cell(pid, url, seeded.api_key, cell, args)
                print(f"{cell:<24} {total / args.requests:>24,.0f}", flush=True)
                if args.annotate:
                    print(annotate(dump, args.annotate), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
