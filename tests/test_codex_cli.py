"""Codex CLI (`@openai/codex`, which speaks only `/v1/responses`) against a gateway started by the test
(SPEC §6 "Real clients are the contract"): `codex exec` completes a task that needs one function-call round
trip, on an `openai` model (native route) and an Anthropic model (translated), and each turn is charged
exactly; the same with a Friend Key. Codex's own `web_search` tool is left on (its default), on model rows
that price web search: it is offered upstream on both routes, and searches the upstream reports are billed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from cli_clients import cli_environment
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, PRICES, World
from sqlalchemy import select

from trollllm.mockupstream import count_input_tokens
from trollllm.mockupstream.hidden_billing import anthropic_hidden_tokens
from trollllm.mockupstream.responses_format import chat_view
from trollllm.money import Money, Prices, TokenUsage, cost_of, parse_price_per_mtok
from trollllm.usage.tables import RequestLog

SEARCH_USD = 10  # per 1,000 web searches
MODEL_PRICES = Prices(
    *(parse_price_per_mtok(PRICES[name]) for name in PRICES),
    web_search_per_kcalls=parse_price_per_mtok(SEARCH_USD),
)
TASK = "[mock tool_calls=1 reply_tokens=0] Run a command and tell me what it printed"
SEARCH_TASK = "[mock web_searches=2] Look it up on the web and tell me what you found"
PROVIDER = {OPENAI_MODEL: "openai", ANTHROPIC_MODEL: "anthropic"}
_CONFIG = """model = "{model}"
model_provider = "trollllm"
approval_policy = "never"
sandbox_mode = "read-only"

[model_providers.trollllm]
name = "TrollLLM"
base_url = "{base_url}/v1"
env_key = "TROLLLLM_API_KEY"
wire_api = "responses"
"""


@pytest.fixture(autouse=True)
async def web_search_priced(world: World) -> None:
    """Both model rows sell web search (Codex offers its `web_search` tool on every turn)."""
    for model, provider in PROVIDER.items():
        row = {"provider": provider, "upstreamModel": f"{model}-upstream", "maxOutputTokens": 4096}
        body = {**row, **PRICES, "webSearchPricePerKCalls": SEARCH_USD}
        await world.admin_call("PUT", f"/api/admin/models/{model}", json=body)


def offers_web_search(sent: dict[str, Any]) -> bool:
    """The upstream body offers web search (Responses `web_search`, Anthropic `web_search_*`)."""
    return any(str(tool.get("type", "")).startswith("web_search") for tool in sent.get("tools") or ())


async def charged_turns(world: World, model: str) -> list[tuple[RequestLog, Any]]:
    """Each successful turn's log row with the body the mock got for it, in order."""
    turns = [r for r in world.mock.requests if r.path in ("/v1/responses", "/v1/messages")]
    async with world.state.sessions() as session:
        rows = (await session.scalars(select(RequestLog).order_by(RequestLog.id))).all()
    charged = [row for row in rows if row.model == model and row.is_success]
    assert len(charged) == len(turns)
    return list(zip(charged, turns, strict=True))


def assert_charged_exactly(row: RequestLog, sent: Any, searches: int) -> None:
    view = chat_view(sent.body) if sent.path == "/v1/responses" else sent.body
    hidden = anthropic_hidden_tokens(sent.body) if sent.path == "/v1/messages" else 0
    assert row.input_tokens + row.cache_hit_tokens == count_input_tokens(view) + hidden
    usage = TokenUsage(
        row.input_tokens, row.output_tokens, cache_hit_tokens=row.cache_hit_tokens, web_search_calls=searches
    )
    assert Money(row.credits_cost_nanos) == cost_of(usage, MODEL_PRICES)


async def run_codex(
    codex: Path, world: World, model: str, api_key: str, tmp_path: Path, task: str = TASK
) -> str:
    home = tmp_path / "codex-home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(_CONFIG.format(model=model, base_url=world.base_url))
    env = cli_environment(tmp_path, CODEX_HOME=str(home), TROLLLLM_API_KEY=api_key)
    process = await asyncio.create_subprocess_exec(
        str(codex), "exec", "--skip-git-repo-check", task,
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
    turns = await charged_turns(world, model)
    assert len(turns) >= 2
    for row, sent in turns:
        assert offers_web_search(sent.body)  # Codex's own tool, left on, reaches the upstream
        assert_charged_exactly(row, sent, searches=0)  # the mock searched nothing: no search billed


@pytest.mark.parametrize("model", [OPENAI_MODEL, ANTHROPIC_MODEL])
async def test_codex_web_searches_the_upstream_reports_are_billed_per_search(
    world: World,
    codex_cli: Path,
    tmp_path: Path,
    model: str,
) -> None:
    output = await run_codex(codex_cli, world, model, world.user.api_key, tmp_path, SEARCH_TASK)
    assert "deterministic reply" in output
    turns = await charged_turns(world, model)
    assert len(turns) == 1
    row, sent = turns[0]
    assert offers_web_search(sent.body)
    assert_charged_exactly(row, sent, searches=2)


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
