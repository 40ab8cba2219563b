"""How a serving process runs the app: start-up objects kept out of the garbage collector's way."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from asgi_lifespan import LifespanManager
from conftest import make_settings

from trollllm.app import create_app


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


async def test_a_serving_app_freezes_what_start_up_built(
    tmp_path: Path, embedded_database_url: str, restored_gc: None
) -> None:
    gc.unfreeze()
    app = create_app(make_settings(tmp_path, embedded_database_url), freeze_startup_objects=True)
    async with LifespanManager(app):
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == 10_000


async def test_an_app_built_for_tests_leaves_the_collector_alone(
    tmp_path: Path, embedded_database_url: str, restored_gc: None
) -> None:
    gc.unfreeze()
    app = create_app(make_settings(tmp_path, embedded_database_url))
    async with LifespanManager(app):
        assert gc.get_freeze_count() == 0
