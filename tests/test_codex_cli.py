"""Codex CLI (`@openai/codex`, which speaks only `/v1/responses`) against a gateway started by the test
(SPEC §6 "Real clients are the contract"): `codex exec` completes a task that needs one function-call round
trip, on an `openai` model (native route) and an Anthropic model (translated), and each turn is charged
exactly; the same with a Friend Key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cli_clients import cli_environment
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, PRICES, World
from sqlalchemy import select

from trollllm.mockupstream import count_input_tokens
from trollllm.mockupstream.hidden_billing import anthropic_hidden_tokens
from trollllm.mockupstream.responses_format import chat_view
from trollllm.money import Money, Prices, TokenUsage, cost_of, parse_price_per_mtok
from trollllm.usage.tables import RequestLog

MODEL_PRICES = Prices(*(parse_price_per_mtok(PRICES[name]) for name in PRICES))
TASK = "[mock tool_calls=1 reply_tokens=0] Run a command and tell me what it printed"
_CONFIG = """model = "{model}"
model_provider = "trollllm"
approval_policy = "never"
sandbox_mode = "read-only"
web_search = "disabled"

[model_providers.trollllm]
name = "TrollLLM"
base_url = "{base_url}/v1"
env_key = "TROLLLLM_API_KEY"
wire_api = "responses"
"""


async def run_codex(codex: Path, world: World, model: str, api_key: str, tmp_path: Path) -> str:
    home = tmp_path / "codex-home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(_CONFIG.format(model=model, base_url=world.base_url))
    env = cli_environment(tmp_path, CODEX_HOME=str(home), TROLLLLM_API_KEY=api_key)
    process = await asyncio.create_subprocess_exec(
        str(codex), "exec", "--skip-git-repo-check", TASK,
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=180)
    assert process.returncode == 0, stderr.decode()[-3000:]
    return stdout.decode() + stderr.decode()


@pytest.mark.parametrize("model", [OPENAI_MODEL, ANTHROPIC_MODEL])
async def test_codex_exec_completes_a_tool_round_trip_and_each_turn_is_charged(
    world: World,
    codex_cli: Path,
    tmp_path: Path,
    model: str,
) -> None:
    output = await run_codex(codex_cli, world, model, world.user.api_key, tmp_path)
    assert "deterministic reply" in output  # the final message, after the tool's output went back
    turns = [r for r in world.mock.requests if r.path in ("/v1/responses", "/v1/messages")]
    assert len(turns) >= 2
    async with world.state.sessions() as session:
        rows = (await session.scalars(select(RequestLog).order_by(RequestLog.id))).all()
    charged = [row for row in rows if row.model == model and row.is_success]
    assert len(charged) == len(turns)
    for row, sent in zip(charged, turns, strict=True):
        if sent.path == "/v1/responses":
            billed_input = count_input_tokens(chat_view(sent.body))
        else:  # Anthropic also bills its tool-use system prompt
            billed_input = count_input_tokens(sent.body) + anthropic_hidden_tokens(sent.body)
        assert row.input_tokens + row.cache_hit_tokens == billed_input
        usage = TokenUsage(row.input_tokens, row.output_tokens, cache_hit_tokens=row.cache_hit_tokens)
        assert Money(row.credits_cost_nanos) == cost_of(usage, MODEL_PRICES)


async def test_codex_exec_on_a_friend_key_charges_the_owner_and_the_key(
    world: World,
    codex_cli: Path,
    tmp_path: Path,
) -> None:
    client = world.gateway.client
    created = await client.post("/api/user/friend-key", headers=world.user.auth)
    limits = {"modelLimits": [{"modelId": OPENAI_MODEL, "limitUsd": 1}]}
    await client.put("/api/user/friend-key/limits", headers=world.user.auth, json=limits)
    output = await run_codex(codex_cli, world, OPENAI_MODEL, created.json()["friendKey"], tmp_path)
    assert "deterministic reply" in output
    async with world.state.sessions() as session:
        rows = (await session.scalars(select(RequestLog).where(RequestLog.is_friend_key_request))).all()
    assert len(rows) >= 2 and all(row.is_success for row in rows)
    spent = sum(row.credits_cost_nanos for row in rows)
    view = (await client.get("/api/user/friend-key", headers=world.user.auth)).json()
    used = next(limit for limit in view["modelLimits"] if limit["modelId"] == OPENAI_MODEL)["usedUsd"]
    assert Money.from_usd(used) == Money(spent)
    me = (await client.get("/api/user/me", headers=world.user.auth)).json()
    assert Money.from_usd(me["credits"]) == Money.from_usd(225) - Money(spent)
