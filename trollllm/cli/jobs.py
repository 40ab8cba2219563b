"""The jobs an operator can run now: `reconcile` (the ledger), `purge-logs` (retention) and `expire-plans`
(the daily plan job)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime

from trollllm.cli.running import Commands, running_app
from trollllm.settings import Settings


def add_jobs(commands: Commands[argparse.ArgumentParser]) -> None:
    """Register `reconcile`, `purge-logs` and `expire-plans`."""
    reconcile = commands.add_parser(
        "reconcile", help="check Σ ledger = balance for every user; exits 1 on any difference"
    )
    reconcile.set_defaults(handler=_reconcile)

    purge = commands.add_parser(
        "purge-logs", help="delete request logs older than 30 days (the ledger is kept)"
    )
    purge.add_argument(
        "--batch-size", type=int, default=5000, help="rows deleted per transaction (default 5000)"
    )
    purge.set_defaults(handler=_purge_logs)

    expire = commands.add_parser(
        "expire-plans",
        help="reset expired plans to free and monthly counters past their reset date (the daily job, now)",
    )
    expire.set_defaults(handler=_expire_plans)


def _reconcile(settings: Settings, _args: argparse.Namespace) -> int:
    from trollllm.app import create_app
    from trollllm.billing.ledger import Discrepancy, count_users, reconcile

    async def run() -> tuple[int, list[Discrepancy]]:
        async with running_app(create_app(settings)) as state, state.sessions() as session:
            return await count_users(session), await reconcile(session)

    users, discrepancies = asyncio.run(run())
    for discrepancy in discrepancies:
        print(discrepancy.describe())
    print(
        f"ledger {'reconciles' if not discrepancies else 'DIFFERS'}: {users} users, "
        f"{len(discrepancies)} differences"
    )
    return 1 if discrepancies else 0


def _purge_logs(settings: Settings, args: argparse.Namespace) -> int:
    """`trollllm purge-logs`: delete request logs past the retention period once, now; prints the count."""
    from trollllm.usage.retention import PURGE_BATCH_SIZE, purge_request_logs, retention_cutoff

    batch_size = int(getattr(args, "batch_size", None) or PURGE_BATCH_SIZE)
    if batch_size < 1:
        print("error: --batch-size must be at least 1", file=sys.stderr)
        return 2
    from trollllm.app import create_app  # once the input is checked: a refusal does not load the app

    async def run() -> tuple[int, datetime]:
        async with running_app(create_app(settings)) as state:
            cutoff = retention_cutoff(state.clock.now())
            return await purge_request_logs(state.sessions, older_than=cutoff, batch_size=batch_size), cutoff

    purged, cutoff = asyncio.run(run())
    print(f"purged {purged} request logs created before {cutoff.isoformat()}")
    return 0


def _expire_plans(settings: Settings, _args: argparse.Namespace) -> int:
    """`trollllm expire-plans`: run the daily plan job once, now; prints what it did."""
    from trollllm.app import create_app
    from trollllm.plans.expiry import run_plan_jobs

    async def run() -> tuple[bool, int, int]:
        async with running_app(create_app(settings)) as state:
            report = await run_plan_jobs(state)
            return report.ran, report.expired, report.monthly_resets

    ran, expired, resets = asyncio.run(run())
    if not ran:
        print("another instance is running the plan job right now; nothing done")
        return 0
    print(f"expired {expired} plans; reset the monthly counters of {resets} users")
    return 0
