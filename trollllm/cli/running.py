"""What the commands share: the sub-command table they add themselves to, an app run for the length of a
command, and the database named for people."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from trollllm.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from trollllm.state import AppState

Commands = argparse._SubParsersAction  # the `trollllm` sub-command table each command module adds to


@asynccontextmanager
async def running_app(app: FastAPI) -> AsyncIterator[AppState]:
    """Start the app's lifespan (connections, migrations in embedded mode), yield its state, stop it."""
    async with app.router.lifespan_context(app):
        state: AppState = app.state.trollllm
        yield state


def describe_database(settings: Settings) -> str:
    """The configured database as the commands print it."""
    if settings.is_embedded:
        return f"SQLite at {settings.data_dir / 'trollllm.db'}"
    return "PostgreSQL"
