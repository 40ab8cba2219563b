"""The rows measured beside the gateway in each cell of bench/run.py: the pass-through, and the peers.

A yardstick is a server that forwards to the mock, measured on the same cell right after the gateway: the
pass-through (`bench/passthrough.py`, always, the honest yardstick of issue 26 on a shared machine) and,
with `--peers`, LiteLLM and Portkey (`bench/peers.py`). Its CPU per request is its whole process tree's.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from formats import cell_route, make_target
from loadgen import Target
from stack import MOCK_KEY, Processes


@dataclass(frozen=True, slots=True)
class Yardstick:
    """A server measured beside the gateway: its row's name, its processes, and the request of a cell."""

    name: str
    pids: list[int]
    request: Callable[[str, str], Target | None]
    """(mode, format) -> the cell's request to it, or ``None`` when it does not run that cell."""


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (from ``/proc/<pid>/task/*/children``)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                pending += [int(child) for child in task.read_text().split()]
            except OSError:  # the task ended meanwhile
                continue
    return found


def start_passthrough(processes: Processes, mock_url: str) -> Yardstick:
    """Start the pass-through in front of the mock: each cell sends it the direct row's request."""
    script = Path(__file__).with_name("passthrough.py")
    pid, url = processes.start_listening("passthrough", [sys.executable, str(script), "--upstream", mock_url])

    def request(mode: str, fmt: str) -> Target:
        _, _, direct_fmt, direct_model = cell_route(fmt)
        return make_target(url, MOCK_KEY, direct_model, mode, direct_fmt)

    return Yardstick("pass-through", [pid], request)
