"""Helpers of the BYOK tests: saving a user's own provider key, pointing a provider row at a mock upstream,
and reading what a request left behind (log row, ledger, holds)."""

from __future__ import annotations

from typing import Any

from helpers import Account
from proxy_world import World
from sqlalchemy import func, select, update

from trollllm.billing.tables import Hold, LedgerEntry
from trollllm.byok.tables import Provider
from trollllm.money import Money

OWN_OPENAI_KEY = "sk-proj-" + "Own7" * 10 + "k9Q1"
OWN_ANTHROPIC_KEY = "sk-ant-api03-" + "Own8" * 10 + "z2W5"
DEV_GRANT = Money.from_usd(225)
HELLO = [{"role": "user", "content": "Say hello with my own key please"}]


async def save_own_key(world: World, user: Account, provider: str, api_key: str) -> dict[str, Any]:
    """`PUT /api/user/provider-keys/{provider}` as `user`; the saved key's view."""
    response = await world.gateway.client.put(
        f"/api/user/provider-keys/{provider}", headers=user.auth, json={"apiKey": api_key}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def own_keys(world: World, user: Account) -> dict[str, dict[str, Any]]:
    """`GET /api/user/provider-keys` by provider."""
    response = await world.gateway.client.get("/api/user/provider-keys", headers=user.auth)
    assert response.status_code == 200, response.text
    return {key["provider"]: key for key in response.json()}


async def point_provider_at(world: World, provider: str, base_url: str) -> None:
    """Send `provider`'s own-key requests to `base_url` (a provider is a row: this is data)."""
    async with world.state.sessions() as session, session.begin():
        await session.execute(update(Provider).where(Provider.name == provider).values(base_url=base_url))


async def credits(world: World, user: Account) -> Money:
    """The user's credits + refCredits, from `/api/user/me`."""
    me = (await world.gateway.client.get("/api/user/me", headers=user.auth)).json()
    return Money.from_usd(me["credits"]) + Money.from_usd(me["refCredits"])


async def log_row(world: World, user: Account, request_id: str) -> dict[str, Any]:
    """`GET /api/user/requests/{requestId}` as `user`."""
    response = await world.gateway.client.get(f"/api/user/requests/{request_id}", headers=user.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def charges_and_holds(world: World) -> tuple[int, int]:
    """How many `charge` ledger entries and open holds the database has."""
    async with world.state.sessions() as session:
        charges = await session.scalar(select(func.count()).where(LedgerEntry.kind == "charge"))
        holds = await session.scalar(select(func.count()).select_from(Hold))
    return int(charges or 0), int(holds or 0)
