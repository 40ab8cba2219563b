"""`trollllm migrate`, `export FILE` and `import FILE`: the schema and the whole database, as files."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import BinaryIO

from trollllm.cli.running import Commands, describe_database
from trollllm.settings import Settings


def add_migrate(commands: Commands[argparse.ArgumentParser]) -> None:
    """Register `migrate`."""
    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(handler=_migrate)


def add_export_import(commands: Commands[argparse.ArgumentParser]) -> None:
    """Register `export` and `import`."""
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
    print(f"database is at the latest schema ({describe_database(settings)})")
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
    print(f"exported {rows} rows from {describe_database(settings)} to {path}")
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
        f"imported {rows} rows into {describe_database(settings)}; counts and money totals match the export"
    )
    return 0
