"""The run's end-of-run report, whole under pytest-xdist (`./test` runs a worker process per core).

Each worker keeps its own log scan (tests/log_scan.py), its own skipped services and its own scaled-shape
figures; at its end it hands them to the controller, which adds them to its own before conftest's
`pytest_sessionfinish` fails the run on a leak and the terminal summaries print them. A plugin (see
conftest); without workers (plain `pytest`, `-n 0`) nothing here does anything.
"""

from __future__ import annotations

from typing import Any

import pytest
from instances import FIGURES
from log_scan import SCAN
from services import SKIPPED_SERVICES

_KEY = "trollllm_totals"


@pytest.hookimpl(trylast=True)  # after the session fixtures' teardown: what they log counts too
def pytest_sessionfinish(session: pytest.Session) -> None:
    output: dict[str, Any] | None = getattr(session.config, "workeroutput", None)
    if output is None:  # the controller, or a run without workers
        return
    output[_KEY] = {
        "records": SCAN.records,
        "leaks": list(SCAN.leaks),
        "skipped_services": sorted(SKIPPED_SERVICES),
        "figures": dict(FIGURES),
    }


@pytest.hookimpl(optionalhook=True)  # an xdist hook: unknown when the plugin is not loaded
def pytest_testnodedown(node: Any, error: object | None) -> None:
    totals: dict[str, Any] | None = getattr(node, "workeroutput", {}).get(_KEY)
    if totals is None:  # a worker that died hands nothing; xdist fails the run for it
        return
    SCAN.records += totals["records"]
    SCAN.leaks.extend(totals["leaks"])
    SKIPPED_SERVICES.update(totals["skipped_services"])
    FIGURES.update(totals["figures"])
