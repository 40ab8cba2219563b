"""In-memory snapshots of rows (the model catalog, the refused betas) are reloaded once at a time: requests
that find one stale together share one reload, and a change during a reload is never lost."""

from __future__ import annotations

import asyncio
from typing import Any

from proxy_world import OPENAI_MODEL, World
from sqlalchemy import event

from trollllm.clock import ManualClock
from trollllm.pricing.catalog import TTL_S
from trollllm.snapshot import SnapshotAge


def _count_model_reads(world: World) -> list[str]:
    """Every statement that reads the model rows, from now on."""
    reads: list[str] = []
    engine = world.state.sessions.kw["bind"].sync_engine

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM llm_models" in statement:
            reads.append(statement)

    return reads


async def test_concurrent_requests_on_a_stale_model_catalog_share_one_reload(
    world: World, clock: ManualClock
) -> None:
    hello = [{"role": "user", "content": "hello"}]
    async with world.openai() as client:
        await client.chat.completions.create(model=OPENAI_MODEL, messages=hello)
        reads = _count_model_reads(world)
        clock.advance(TTL_S + 1)
        replies = await asyncio.gather(
            *(client.chat.completions.create(model=OPENAI_MODEL, messages=hello) for _ in range(16))
        )
    assert len(replies) == 16 and all(reply.choices[0].message.content for reply in replies)
    assert len(reads) == 1


async def test_a_fresh_snapshot_is_not_reloaded_and_a_stale_one_is() -> None:
    clock = ManualClock()
    age = SnapshotAge(clock, ttl_s=5)
    reloads: list[float] = []

    async def reload() -> None:
        reloads.append(clock.monotonic())

    await age.refresh(reload)
    clock.advance(4)
    assert not age.stale
    clock.advance(2)
    assert age.stale
    await age.refresh(reload)
    assert len(reloads) == 2 and not age.stale


class _HeldReload:
    """A reload that runs until it is released, counting how many times it ran."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.runs = 0

    async def __call__(self) -> None:
        self.runs += 1
        await self.release.wait()


async def test_callers_waiting_on_a_running_reload_do_not_reload_again() -> None:
    age, reload = SnapshotAge(ManualClock(), ttl_s=5), _HeldReload()
    waiting = [asyncio.create_task(age.refresh(reload)) for _ in range(8)]
    await asyncio.sleep(0)
    reload.release.set()
    await asyncio.gather(*waiting)
    assert reload.runs == 1 and not age.stale


async def test_an_invalidation_during_a_reload_makes_the_next_caller_reload_again() -> None:
    age, reload = SnapshotAge(ManualClock(), ttl_s=5), _HeldReload()
    running = asyncio.create_task(age.refresh(reload))
    await asyncio.sleep(0)
    age.invalidate()  # the rows changed after the running reload may have read them
    reload.release.set()
    await running
    assert age.stale
    await age.refresh(reload)
    assert reload.runs == 2 and not age.stale
