"""CPU cost of the Prometheus metrics on the proxy's path, per request (issue 14: at most 0.03 ms).

    .venv/bin/python bench/telemetry.py [--requests 200000]

A proxied request records: its count and latency by route, model and status
(`Telemetry.observe_request`), its upstream answer by factory key (`observe_upstream`) and its charge
(`count_spend`). This times exactly those calls, over a realistic spread of label values (2 routes × 8
models × 3 statuses, 6 factory keys), in one process and with `PROMETHEUS_MULTIPROC_DIR` set (values in
memory-mapped files, as under `serve --workers N`), each in a fresh interpreter (prometheus_client picks
its value storage at import). CPU time is `time.process_time()`, less an empty loop over the same inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

LIMIT_MS = 0.03


def measure(requests: int) -> dict[str, float]:
    """CPU µs per request of the telemetry calls (run inside the measured interpreter)."""
    from trollllm.telemetry import Telemetry

    telemetry = Telemetry(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None)
    routes = ("/v1/chat/completions", "/v1/messages")
    models = [f"model-{index}" for index in range(8)]
    statuses = (200, 200, 200, 200, 429, 502)
    inputs = [
        (routes[i % 2], models[i % 8], statuses[i % 6], (i % 97) / 100, 1 + i % 6, (i % 89) / 100, i % 5000)
        for i in range(4096)
    ]
    for route, model, status, seconds, key, upstream_s, nanos in inputs:  # warm: children created
        telemetry.observe_request(route, model, status, seconds)
        telemetry.observe_upstream(key, upstream_s)
        telemetry.count_spend(nanos)
    size = len(inputs)
    began = time.process_time()
    for index in range(requests):
        route, model, status, seconds, key, upstream_s, nanos = inputs[index % size]
    empty = time.process_time() - began
    began = time.process_time()
    for index in range(requests):
        route, model, status, seconds, key, upstream_s, nanos = inputs[index % size]
        telemetry.observe_request(route, model, status, seconds)
        telemetry.observe_upstream(key, upstream_s)
        telemetry.count_spend(nanos)
    spent = time.process_time() - began - empty
    return {"us_per_request": spent / requests * 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.requests)))
        return 0
    worst = 0.0
    for label, multiprocess in (("one process", False), ("--workers (PROMETHEUS_MULTIPROC_DIR)", True)):
        env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
        with tempfile.TemporaryDirectory() as directory:
            if multiprocess:
                env["PROMETHEUS_MULTIPROC_DIR"] = directory
            command = [sys.executable, __file__, "--child", "--requests", str(args.requests)]
            result = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
        us = json.loads(result.stdout)["us_per_request"]
        worst = max(worst, us)
        print(f"{label:>38}: {us:6.2f} µs CPU per request ({us / 1000:.4f} ms)")
    verdict = "PASS" if worst / 1000 <= LIMIT_MS else "FAIL"
    print(f"target ≤ {LIMIT_MS} ms per request: {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
