"""`trollllm serve`: the gateway under uvicorn, one process or several workers (the scaled shape)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from trollllm.cli.running import Commands, describe_database
from trollllm.settings import Settings


def add_serve(commands: Commands[argparse.ArgumentParser]) -> None:
    """Register `serve`."""
    serve = commands.add_parser("serve", help="run the gateway (flags override TROLLLLM_HOST/PORT/WORKERS)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument(
        "--demo", action="store_true", help="start a built-in mock provider, seed demo data, print snippets"
    )
    serve.set_defaults(handler=_serve)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    updates = {key: value for key in ("host", "port", "workers") if (value := getattr(args, key)) is not None}
    settings = settings.model_copy(update=updates)
    refusal = None if args.demo or settings.workers <= 1 else _workers_refusal(settings)
    if refusal is not None:  # before loading the server: a refusal answers at once
        print(f"error: --workers {settings.workers} {refusal}", file=sys.stderr)
        return 2
    import uvicorn

    from trollllm.logs import configure_logging
    from trollllm.serving import raise_open_files_limit, return_large_blocks_to_os, server_options

    configure_logging(settings.log_level)
    raise_open_files_limit()  # before any worker starts: they inherit it
    return_large_blocks_to_os()  # this process; each worker sets it for itself (trollllm.asgi)
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
    print(f"TrollLLM gateway on http://{settings.host}:{settings.port} ({describe_database(settings)})")
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
