"""The hold bounds every output the upstream may bill (SPEC §4 Charging): `n` choices, the larger limit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from helpers import register_user
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World
from sqlalchemy import select

from trollllm.accounts.tables import User
from trollllm.billing.holds import HeldRequest, place_hold
from trollllm.billing.tables import Hold
from trollllm.money import Money
from trollllm.settings import HOLD_TTL

BALANCE_USD = 0.01  # 400 output tokens at $25 / MTok


async def _small_account_call(world: World, name: str, body: dict[str, Any]) -> int:
    account = await register_user(world.gateway, name)
    await world.admin_call("PATCH", f"/api/admin/users/{name}", json={"plan": "pro-troll"})
    await world.admin_call(
        "POST",
        f"/api/admin/users/{name}/credits",
        json={"amountUsd": BALANCE_USD, "balance": "credits", "reason": "test"},
    )
    messages = [{"role": "user", "content": "hi"}]
    response = await world.gateway.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {account.api_key}"},
        json={"model": OPENAI_MODEL, "messages": messages, **body},
    )
    return response.status_code


async def test_n_choices_are_each_held(any_world: World) -> None:
    assert await _small_account_call(any_world, "one", {"max_tokens": 100}) == 200
    assert await _small_account_call(any_world, "eight", {"max_tokens": 100, "n": 8}) == 402


async def test_both_limits_are_held_by_the_larger(any_world: World) -> None:
    body = {"max_completion_tokens": 10, "max_tokens": 1000}
    assert await _small_account_call(any_world, "both", body) == 402


async def test_bad_n_is_refused_naming_it(any_world: World) -> None:
    response = await any_world.gateway.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {any_world.user.api_key}"},
        json={"model": OPENAI_MODEL, "messages": [{"role": "user", "content": "hi"}], "n": 0},
    )
    assert response.status_code == 400 and "`n`" in response.text


async def overage_response(world: World, name: str, balance_usd: float) -> httpx.Response:
    """A request by a new user on a plan of money alone with `balance_usd` whose 100,000 cache-write tokens
    ($0.625 at $6.25 / MTok) cost far more than its hold (a 1-token request)."""
    account = await register_user(world.gateway, name)
    await world.admin_call("PATCH", f"/api/admin/users/{name}", json={"plan": "pro-troll"})
    await world.admin_call(
        "POST",
        f"/api/admin/users/{name}/credits",
        json={"amountUsd": balance_usd, "balance": "credits", "reason": "test"},
    )
    messages = [{"role": "user", "content": "hi [mock cache_write=100000 reply_tokens=1]"}]
    response = await world.gateway.client.post(
        "/v1/messages",
        headers={"x-api-key": account.api_key},
        json={"model": ANTHROPIC_MODEL, "messages": messages, "max_tokens": 1},
    )
    assert response.status_code == 200, response.text
    return response


async def _overage_call(world: World, name: str, balance_usd: float) -> tuple[int, int]:
    """A request whose cache writes cost far more than its hold: (charged nano-USD, credits left)."""
    from sqlalchemy import select

    from trollllm.accounts.tables import User

    response = await overage_response(world, name, balance_usd)
    async with world.state.sessions() as session:
        user = await session.scalar(select(User).where(User.username == name))
        assert user is not None and user.held_nanos == 0
        return int(Decimal(response.headers["x-trollllm-cost-usd"]) * 10**9), user.credits_nanos


async def test_overage_is_charged_up_to_the_free_balance(any_world: World) -> None:
    # 100,000 cache-write tokens at $6.25 / MTok = $0.625, far past the hold of a 1-token request.
    charged, left = await _overage_call(any_world, "rich", 1.0)
    assert charged >= 625_000_000 and left == 1_000_000_000 - charged
    charged, left = await _overage_call(any_world, "poor", 0.01)
    assert (charged, left) == (10_000_000, 0)


async def test_overages_are_counted_on_metrics(any_world: World) -> None:
    charged, _ = await _overage_call(any_world, "counted", 0.01)
    text = (await any_world.gateway.client.get("/metrics")).text
    counters = any_world.state.billing
    assert "trollllm_overages 1" in text
    assert 0 < counters.overage_charged_nanos < charged  # the part past the hold
    # $0.01 charged of a cost of at least $0.625 (100,000 cache-write tokens): the rest is uncollected.
    assert charged + counters.overage_uncollected_nanos >= 625_000_000
    assert f"trollllm_overage_uncollected_nanos {counters.overage_uncollected_nanos}" in text
    assert "trollllm_settlement_outbox_depth 0" in text


async def test_a_friend_key_overage_is_charged_only_up_to_its_cap(any_world: World) -> None:
    from test_friendkeys_proxy import friend_key

    owner = await register_user(any_world.gateway, "capped")
    await any_world.admin_call("PATCH", "/api/admin/users/capped", json={"plan": "pro-troll"})
    await any_world.admin_call(
        "POST", "/api/admin/users/capped/credits", json={"amountUsd": 10, "balance": "credits", "reason": "t"}
    )
    key = await friend_key(any_world, owner, [{"modelId": ANTHROPIC_MODEL, "limitUsd": 0.05}])
    messages = [{"role": "user", "content": "hi [mock cache_write=100000 reply_tokens=1]"}]  # $0.625
    response = await any_world.gateway.client.post(
        "/v1/messages",
        headers={"x-api-key": key},
        json={"model": ANTHROPIC_MODEL, "messages": messages, "max_tokens": 1},
    )
    assert response.status_code == 200, response.text
    assert Decimal(response.headers["x-trollllm-cost-usd"]) == Decimal("0.05")  # the cap, not $0.625
    view = (await any_world.gateway.client.get("/api/user/friend-key", headers=owner.auth)).json()
    (limit,) = view["modelLimits"]
    assert Decimal(str(limit["usedUsd"])) == Decimal("0.05")


# --- media by URL (issue 11, defect 7) -------------------------------------------------------------------

_PNG_DATA_URL = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="
)
_CAT_URL = "https://example.com/cat.png"


async def _set_url_media_tokens(world: World, model_id: str, tokens: int) -> None:
    (row,) = [
        m for m in (await world.admin_call("GET", "/api/admin/models")).json() if m["modelId"] == model_id
    ]
    body = {k: v for k, v in row.items() if k not in ("modelId", "createdAt", "updatedAt")}
    await world.admin_call("PUT", f"/api/admin/models/{model_id}", json={**body, "urlMediaTokens": tokens})


def _image_message(url: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": "what is this"},
                                        {"type": "image_url", "image_url": {"url": url}}]}  # fmt: skip


async def _small_account_messages(world: World, name: str, messages: list[dict[str, Any]]) -> Any:
    account = await register_user(world.gateway, name)
    await world.admin_call("PATCH", f"/api/admin/users/{name}", json={"plan": "pro-troll"})
    await world.admin_call(
        "POST",
        f"/api/admin/users/{name}/credits",
        json={"amountUsd": BALANCE_USD, "balance": "credits", "reason": "test"},
    )
    return await world.gateway.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {account.api_key}"},
        json={"model": OPENAI_MODEL, "messages": messages, "max_tokens": 100},
    )


async def test_an_image_sent_inline_is_bounded_by_its_bytes(any_world: World) -> None:
    response = await _small_account_messages(any_world, "inline", [_image_message(_PNG_DATA_URL)])
    assert response.status_code == 200, response.text


async def test_an_image_sent_by_url_is_held_at_the_models_url_media_tokens(any_world: World) -> None:
    # $0.01 leaves room for about 1,200 input tokens once 100 output tokens are held: one 1,600-token
    # image by URL does not fit, though its request is a few hundred bytes.
    response = await _small_account_messages(
        any_world, "byurl", [_image_message("https://example.com/cat.png")]
    )
    assert response.status_code == 402, response.text


async def test_url_media_tokens_is_set_per_model(any_world: World) -> None:
    listed = (await any_world.admin_call("GET", "/api/admin/models")).json()
    assert {m["modelId"]: m["urlMediaTokens"] for m in listed}[OPENAI_MODEL] == 1600
    await _set_url_media_tokens(any_world, OPENAI_MODEL, 100)
    response = await _small_account_messages(any_world, "cheapurl", [_image_message(_CAT_URL)])
    assert response.status_code == 200, response.text


async def test_a_model_that_takes_no_media_by_url_refuses_it_naming_messages(any_world: World) -> None:
    await _set_url_media_tokens(any_world, ANTHROPIC_MODEL, 0)
    image = {"type": "image", "source": {"type": "url", "url": _CAT_URL}}
    response = await any_world.gateway.client.post(
        "/v1/messages",
        headers={"x-api-key": any_world.user.api_key, "anthropic-version": "2023-06-01"},
        json={"model": ANTHROPIC_MODEL, "max_tokens": 50,
              "messages": [{"role": "user", "content": [image, {"type": "text", "text": "what is this"}]}]},
    )  # fmt: skip
    assert response.status_code == 400
    error = response.json()["error"]
    assert "by URL" in error["message"] and "messages" in error["message"] + str(error)


# --- betas and server tools that the model row does not price (issues 11 and 24) -------------------------


async def _anthropic_call(world: World, body: dict[str, Any], **headers: str) -> Any:
    return await world.gateway.client.post(
        "/v1/messages",
        headers={"x-api-key": world.user.api_key, "anthropic-version": "2023-06-01", **headers},
        json={"model": ANTHROPIC_MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}],
              **body},
    )  # fmt: skip


async def test_an_allowed_beta_is_forwarded(world: World) -> None:
    response = await _anthropic_call(world, {}, **{"anthropic-beta": "prompt-caching-2024-07-31"})
    assert response.status_code == 200, response.text
    assert world.mock.last_request.headers["anthropic-beta"] == "prompt-caching-2024-07-31"


async def test_a_beta_with_its_own_price_tier_is_refused_naming_the_header(world: World) -> None:
    before = world.mock.request_count
    response = await _anthropic_call(world, {}, **{"anthropic-beta": "context-1m-2025-08-07"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "context-1m-2025-08-07" in error["message"] and "anthropic-beta" in error["message"]
    assert world.mock.request_count == before  # nothing went upstream, nothing was held


async def test_a_server_tool_billed_per_use_is_refused_naming_tools(world: World) -> None:
    tool = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
    response = await _anthropic_call(world, {"tools": [tool]})
    assert response.status_code == 400
    assert "web_search_20250305" in response.json()["error"]["message"]


async def test_ordinary_tools_pass(world: World) -> None:
    tool = {"name": "get_weather", "description": "weather", "input_schema": {"type": "object"}}
    response = await _anthropic_call(world, {"tools": [tool]})
    assert response.status_code == 200, response.text


async def test_openai_web_search_options_are_refused_naming_the_field(world: World) -> None:
    response = await world.gateway.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {world.user.api_key}"},
        json={
            "model": OPENAI_MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "web_search_options": {},
        },
    )
    assert response.status_code == 400 and "web_search_options" in response.text


async def test_a_hold_is_placed_whole_or_not_at_all_on_either_database(any_world: World) -> None:
    """On PostgreSQL the hold is one statement (reserve and insert together); it decides like SQLite's two."""
    state = any_world.state
    async with state.sessions() as session:
        owner = await session.scalar(select(User).where(User.username == "alice"))
        assert owner is not None
        owner.credits_nanos, owner.ref_credits_nanos, owner_id = 6_000_000, 0, owner.id
        await session.commit()
    one = state.db.data_modifying_ctes
    now = state.clock.now()

    def held(request_id: str) -> HeldRequest:
        return HeldRequest(request_id, owner_id, Money(4_000_000), OPENAI_MODEL)

    assert await state.db.write(place_hold(held("r-1"), now, one_statement=one)) is not None
    assert await state.db.write(place_hold(held("r-2"), now, one_statement=one)) is None  # 2,000,000 left
    async with state.sessions() as session:
        reloaded = await session.get(User, owner_id)
        assert reloaded is not None and reloaded.held_nanos == 4_000_000
        holds = (await session.scalars(select(Hold))).all()
    assert [(h.request_id, h.amount_nanos, h.expires_at - h.created_at) for h in holds] == [
        ("r-1", 4_000_000, HOLD_TTL)
    ]
