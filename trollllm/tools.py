"""Running an app's lifespan outside a server, for CLI commands and jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from trollllm.state import AppState


@asynccontextmanager
async def running_app(app: FastAPI) -> AsyncIterator[AppState]:
    """Start the app's lifespan (connections, migrations in embedded mode), yield its state, stop it."""
    async with app.router.lifespan_context(app):
        state: AppState = app.state.trollllm
        yield state
