"""The `trollllm` command: thin commands over the services."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from trollllm.errors import CommandError, ConfigurationError
from trollllm.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from trollllm.state import AppState


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from trollllm.logs import configure_logging
    from trollllm.serving import raise_open_files_limit, server_options

    updates = {key: value for key in ("host", "port", "workers") if (value := getattr(args, key)) is not None}
    settings = settings.model_copy(update=updates)
    configure_logging(settings.log_level)
    raise_open_files_limit()  # before any worker starts: they inherit it
    if args.demo:
        from trollllm.demo import create_demo_app

        uvicorn.run(
            create_demo_app(settings),
            host=settings.host,
            port=settings.port,
            **server_options(settings.graceful_shutdown_s),
        )
        return 0
    if settings.workers > 1:
        refusal = _workers_refusal(settings)
        if refusal is not None:
            print(f"error: --workers {settings.workers} {refusal}", file=sys.stderr)
            return 2
        if settings.should_auto_migrate:
            # Once, before the workers start: they would otherwise race to migrate the same database.
            subprocess.run([sys.executable, "-m", "trollllm", "migrate"], check=True)
            os.environ["TROLLLLM_AUTO_MIGRATE"] = "false"
        _share_prometheus_values(settings)
        # Each worker process builds its own app from the environment (trollllm.asgi).
        uvicorn.run(
            "trollllm.asgi:app",
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            **server_options(settings.graceful_shutdown_s),
        )
        return 0
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _share_prometheus_values(settings)  # set by the operator: emptied of an earlier run's values too
    from trollllm.app import create_app

    if settings.should_auto_migrate:
        # Migrate in a child process: the server itself never loads Alembic (lower peak memory).
        subprocess.run([sys.executable, "-m", "trollllm", "migrate"], check=True)
        settings = settings.model_copy(update={"auto_migrate": False})
    app = create_app(settings, freeze_startup_objects=True)
    print(f"TrollLLM gateway on http://{settings.host}:{settings.port} ({_describe_database(settings)})")
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        **server_options(settings.graceful_shutdown_s),
    )
    return 0


def _share_prometheus_values(settings: Settings) -> None:
    """Workers write their Prometheus values to one directory, emptied now (before they start) so a
    previous run's counts are not added again; `PROMETHEUS_MULTIPROC_DIR` if set, else in the data dir."""
    from pathlib import Path

    from trollllm.telemetry import MULTIPROC_ENV, prepare_multiprocess_dir

    directory = Path(os.environ.get(MULTIPROC_ENV) or settings.data_dir / "prometheus").resolve()
    prepare_multiprocess_dir(directory)
    os.environ[MULTIPROC_ENV] = str(directory)


def _workers_refusal(settings: Settings) -> str | None:
    """Why `settings.workers` > 1 cannot be served, or None when it can (the scaled shape)."""
    if settings.is_embedded:
        # The embedded hot path is one process writing SQLite (group commit behind an in-process lock), its
        # limits in process and its background jobs unlocked: N processes would each admit every limit.
        return (
            "needs the scaled shape: embedded SQLite is served by one process. Set DATABASE_URL "
            "(PostgreSQL) and REDIS_URL to run several workers, or run one worker"
        )
    if settings.redis_url is None:
        # In-process limits would be counted per worker: N workers would admit N times every limit.
        return (
            "needs REDIS_URL so that the workers share rate limits and cache invalidation; "
            "set REDIS_URL or run one worker"
        )
    return None


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from trollllm.db import create_test_engine
    from trollllm.migrate import upgrade_to_head

    async def run() -> None:
        if settings.is_embedded:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_test_engine(settings.effective_database_url)
        try:
            await upgrade_to_head(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    print(f"database is at the latest schema ({_describe_database(settings)})")
    return 0


def _create_admin(settings: Settings, args: argparse.Namespace) -> int:
    from trollllm.accounts.service import ensure_admin
    from trollllm.app import create_app

    password = args.password
    if password is None and not sys.stdin.isatty():
        print("error: no terminal to ask for the password on; use --password", file=sys.stderr)
        return 2
    if password is None:
        password = getpass.getpass("Password for the admin: ")
        if password != getpass.getpass("Repeat the password: "):
            print("error: the passwords differ", file=sys.stderr)
            return 2
    if not 8 <= len(password) <= 128:
        print("error: the password must be 8 to 128 characters long", file=sys.stderr)
        return 2

    async def run() -> bool:
        async with running_app(create_app(settings)) as state:
            return await ensure_admin(state, args.username, password)

    created = asyncio.run(run())
    print(f"admin {args.username!r} {'created' if created else 'promoted, password set'}")
    return 0


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
    from trollllm.app import create_app
    from trollllm.usage.retention import PURGE_BATCH_SIZE, purge_request_logs, retention_cutoff

    batch_size = int(getattr(args, "batch_size", None) or PURGE_BATCH_SIZE)
    if batch_size < 1:
        print("error: --batch-size must be at least 1", file=sys.stderr)
        return 2

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


NEW_SECRET_ENV = "TROLLLLM_NEW_SECRET"  # noqa: S105 (the variable's name, not a secret)


def _rotate_secret(settings: Settings, _args: argparse.Namespace) -> int:
    """`trollllm rotate-secret`: re-encrypt every stored secret under a new server secret.

    The new secret comes from `TROLLLLM_NEW_SECRET`; when the current one is the generated development
    secret in the data dir, a new one is generated and replaces that file once the database is rewritten
    (it is written beside it first, so a failed rotation leaves the old file in use).
    """
    import secrets

    from trollllm.app import create_app
    from trollllm.keyrotation.service import RotationRefused, rotate_secret
    from trollllm.settings import SECRET_FILE_NAME, resolve_secret

    generated = settings.secret is None or not settings.secret.get_secret_value()
    new_secret = os.environ.get(NEW_SECRET_ENV, "").strip()
    if not new_secret:
        if not generated:
            print(f"error: set {NEW_SECRET_ENV} to the new secret (at least 32 characters)", file=sys.stderr)
            return 2
        new_secret = secrets.token_hex(32)
    if len(new_secret) < 32:
        print(f"error: {NEW_SECRET_ENV} must be at least 32 characters long", file=sys.stderr)
        return 2
    if new_secret.encode() == resolve_secret(settings):
        print(f"error: {NEW_SECRET_ENV} is the current secret", file=sys.stderr)
        return 2
    secret_file = settings.data_dir / SECRET_FILE_NAME
    pending = secret_file.with_name(SECRET_FILE_NAME + ".new")
    if generated:
        fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(new_secret)
            handle.flush()
            os.fsync(handle.fileno())

    async def run() -> object:
        async with running_app(create_app(settings)) as state:
            return await rotate_secret(state.sessions, state.keybox, new_secret.encode())

    try:
        report = asyncio.run(run())
    except RotationRefused as exc:
        pending.unlink(missing_ok=True)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BaseException:
        pending.unlink(missing_ok=True)
        raise
    print(f"re-encrypted under the new secret: {report}")
    if generated:
        os.replace(pending, secret_file)
        print(f"the new secret is in {secret_file}; restart the gateway (everyone signs in again)")
    else:
        print(
            "now set TROLLLLM_SECRET to the new secret on every instance and restart them "
            "(dashboard sessions end: everyone signs in again)"
        )
    return 0


def _export(settings: Settings, args: argparse.Namespace) -> int:
    """`trollllm export FILE`: every table of the configured database into FILE."""
    from trollllm.db import create_test_engine
    from trollllm.transfer import export_database

    path = Path(args.file)

    async def run(out: BinaryIO) -> int:
        engine = create_test_engine(settings.effective_database_url)
        try:
            return (await export_database(engine, out)).rows
        finally:
            await engine.dispose()

    try:
        with path.open("wb") as out:
            rows = asyncio.run(run(out))
    except BaseException:
        path.unlink(missing_ok=True)  # never leave half an export behind
        raise
    print(f"exported {rows} rows from {_describe_database(settings)} to {path}")
    return 0


def _import(settings: Settings, args: argparse.Namespace) -> int:
    """`trollllm import FILE`: load an export into the configured (fresh) database."""
    from trollllm.db import create_test_engine
    from trollllm.transfer import import_database

    async def run() -> int:
        if settings.is_embedded:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_test_engine(settings.effective_database_url)
        try:
            return (await import_database(engine, Path(args.file))).rows
        finally:
            await engine.dispose()

    rows = asyncio.run(run())
    print(
        f"imported {rows} rows into {_describe_database(settings)}; counts and money totals match the export"
    )
    return 0


@asynccontextmanager
async def running_app(app: FastAPI) -> AsyncIterator[AppState]:
    """Start the app's lifespan (connections, migrations in embedded mode), yield its state, stop it."""
    async with app.router.lifespan_context(app):
        state: AppState = app.state.trollllm
        yield state


def _describe_database(settings: Settings) -> str:
    if settings.is_embedded:
        return f"SQLite at {settings.data_dir / 'trollllm.db'}"
    return "PostgreSQL"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every `trollllm` command."""
    parser = argparse.ArgumentParser(prog="trollllm", description="TrollLLM LLM API gateway")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway (flags override TROLLLLM_HOST/PORT/WORKERS)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument(
        "--demo", action="store_true", help="start a built-in mock provider, seed demo data, print snippets"
    )
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(handler=_migrate)

    admin = commands.add_parser(
        "create-admin", help="create an admin, or promote a user and set the password"
    )
    admin.add_argument("username")
    admin.add_argument("--password", help="prompted for when omitted")
    admin.set_defaults(handler=_create_admin)

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

    rotate = commands.add_parser(
        "rotate-secret",
        help=f"re-encrypt every stored secret under a new server secret (from {NEW_SECRET_ENV}; generated "
        "when the secret is the data dir's)",
    )
    rotate.set_defaults(handler=_rotate_secret)

    export = commands.add_parser(
        "export", help="write every table of the database to FILE (JSON lines; money exact, for `import`)"
    )
    export.add_argument("file")
    export.set_defaults(handler=_export)

    load = commands.add_parser(
        "import", help="load an export into a fresh database (migrated first; refused if it has users)"
    )
    load.add_argument("file")
    load.set_defaults(handler=_import)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `trollllm` console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(Settings(), args)
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
