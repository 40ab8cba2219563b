"""SPEC §5 models per plan, and the admin plans API's checks of `windows` and `models`."""

from __future__ import annotations

from typing import Any

import pytest
from plan_helpers import edit_plan
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World

from trollllm.clock import ManualClock


async def test_a_model_outside_the_plan_is_a_403_naming_the_plan_in_each_format(world: World) -> None:
    await edit_plan(world, "dev", models=[OPENAI_MODEL])
    client = world.gateway.client
    body = {"model": ANTHROPIC_MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    openai_reply = await client.post(
        "/v1/chat/completions", headers={"Authorization": f"Bearer {world.user.api_key}"}, json=body
    )
    anthropic_reply = await client.post("/v1/messages", headers={"x-api-key": world.user.api_key}, json=body)
    for reply, error in (
        (openai_reply, openai_reply.json()["error"]),
        (anthropic_reply, anthropic_reply.json()["error"]),
    ):
        assert reply.status_code == 403
        assert error["type"] == "model_not_in_plan" and error["plan"] == "dev"
        assert "`dev`" in error["message"]
    allowed = await client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {world.user.api_key}"},
        json={**body, "model": OPENAI_MODEL},
    )
    assert allowed.status_code == 200


async def test_the_model_list_shows_only_the_plans_models(world: World) -> None:
    headers = {"Authorization": f"Bearer {world.user.api_key}"}
    everything = (await world.gateway.client.get("/v1/models", headers=headers)).json()["data"]
    assert {m["id"] for m in everything} == {OPENAI_MODEL, ANTHROPIC_MODEL}
    await edit_plan(world, "dev", models=[ANTHROPIC_MODEL])
    listed = (await world.gateway.client.get("/v1/models", headers=headers)).json()["data"]
    assert [m["id"] for m in listed] == [ANTHROPIC_MODEL]


async def test_the_admin_api_shows_the_windows_and_models_it_was_given(world: World) -> None:
    plan = await edit_plan(
        world,
        "dev",
        windows=[
            {"window": "5h", "usdLimit": 1.25},
            {"window": "7d", "tokenLimit": 5_000_000, "usdLimit": 20},
        ],
        models=[OPENAI_MODEL],
    )
    assert plan["windows"] == [
        {"window": "5h", "usdLimit": 1.25, "tokenLimit": None},
        {"window": "7d", "usdLimit": 20.0, "tokenLimit": 5_000_000},
    ]
    assert plan["models"] == [OPENAI_MODEL]
    cleared = await edit_plan(world, "dev", windows=None, models=None)
    assert (cleared["windows"], cleared["models"]) == ([], None)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"windows": [{"window": "5h", "usdLimit": -1}]}, "windows.0.usdLimit"),
        ({"windows": [{"window": "5h", "usdLimit": 0}]}, "windows.0.usdLimit"),
        ({"windows": [{"window": "5h", "usdLimit": 1e12}]}, "windows.0.usdLimit"),
        ({"windows": [{"window": "5h", "usdLimit": "ten"}]}, "windows.0.usdLimit"),
        ({"windows": [{"window": "24h", "tokenLimit": 0}]}, "windows.0.tokenLimit"),
        ({"windows": [{"window": "24h", "tokenLimit": -5}]}, "windows.0.tokenLimit"),
        ({"windows": [{"window": "24h", "tokenLimit": 10**18}]}, "windows.0.tokenLimit"),
        ({"windows": [{"window": "24h", "tokenLimit": 1.5}]}, "windows.0.tokenLimit"),
        ({"windows": [{"window": "24h", "tokenLimit": "many"}]}, "windows.0.tokenLimit"),
        ({"windows": [{"window": "3h", "usdLimit": 1}]}, "windows.0.window"),
        ({"windows": [{"window": "5h", "usdLimit": 1}, {"window": "5h", "usdLimit": 2}]}, "windows.1.window"),
        ({"windows": [{"window": "5h"}]}, "windows.0.usdLimit"),
        ({"windows": "5h"}, "windows"),
        ({"models": "gpt-test"}, "models"),
        ({"models": ["no-such-model"]}, "models.0"),
        ({"models": [12]}, "models.0"),
    ],
)
async def test_bad_windows_and_models_are_a_400_naming_the_field(
    world: World, clock: ManualClock, changes: dict[str, Any], field: str
) -> None:
    plans = (await world.admin_call("GET", "/api/admin/plans")).json()["plans"]
    body = {k: v for k, v in next(p for p in plans if p["name"] == "dev").items() if k != "name"} | changes
    response = await world.gateway.client.put("/api/admin/plans/dev", headers=world.admin.auth, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == field and field in error["message"]
