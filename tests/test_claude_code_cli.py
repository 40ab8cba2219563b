"""The real Claude Code against a gateway with only models and factory keys configured (issue 24, SPEC §6:
"Real clients are the contract"): `claude -p` answers on a Sonnet-class model with thinking and runs a tool
round trip, and every turn it sends is charged exactly what the mock's usage costs at the model's prices
(thinking as output, cache writes and hits at their prices), with the owner's key and with a Friend Key.

The gateway is a real `trollllm serve` process; its database is seeded first through a gateway run in this
process (admin API only); the mock provider runs in this process, so its record of what Claude Code sent
is the reference the charges are checked against.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from cli_clients import cli_environment
from conftest import TEST_SECRET, make_settings
from helpers import make_admin, register_user
from plan_helpers import free_port
from proxy_world import serve
from test_friendkeys_proxy import friend_key

from trollllm.clock import SystemClock
from trollllm.mockupstream import MockUpstream, RecordedRequest, reply_text
from trollllm.mockupstream.controls import parse_controls, plan_reply
from trollllm.mockupstream.hidden_billing import anthropic_hidden_tokens
from trollllm.money import Money, Prices, TokenUsage, cost_of, parse_price_per_mtok

SONNET = "claude-sonnet-5-5"
HAIKU = "claude-haiku-5-5"
MODELS = {  # Claude Code's Sonnet-class model and its small fast model, at list prices
    SONNET: ("2", "10", "2.5", "0.1"),
    HAIKU: ("0.1", "0.5", "0.125", "0.01"),
}
PRICES = {
    model: Prices(*(parse_price_per_mtok(price) for price in prices)) for model, prices in MODELS.items()
}
CLI_TIMEOUT_S = 180


@dataclass
class Gateway:
    """The served gateway, the mock, and the keys Claude Code uses."""

    base_url: str
    mock: MockUpstream
    owner_key: str
    owner_auth: dict[str, str]
    friend_key: str


@contextlib.asynccontextmanager
async def _gateway(tmp_path: Path, database_url: str) -> AsyncIterator[Gateway]:
    async with MockUpstream() as mock:
        async with serve(make_settings(tmp_path, database_url), SystemClock()) as (harness, _):
            admin = await make_admin(harness)
            for model_id, (input_usd, output_usd, write_usd, hit_usd) in MODELS.items():
                body = {"modelId": model_id, "provider": "anthropic", "upstreamModel": model_id,
                        "inputPricePerMTok": input_usd, "outputPricePerMTok": output_usd,
                        "cacheWritePricePerMTok": write_usd, "cacheHitPricePerMTok": hit_usd,
                        "maxOutputTokens": 128_000}  # fmt: skip
                response = await harness.client.post("/api/admin/models", headers=admin.auth, json=body)
                assert response.status_code == 201, response.text
            key = {
                "name": "anthropic-1",
                "provider": "anthropic",
                "baseUrl": mock.url,
                "apiKey": "fk-anthropic",
            }
            response = await harness.client.post("/api/admin/factory-keys", headers=admin.auth, json=key)
            assert response.status_code == 201, response.text
            owner = await register_user(harness, "coder")
            response = await harness.client.patch(
                "/api/admin/users/coder", headers=admin.auth, json={"plan": "dev"}
            )
            assert response.status_code == 200, response.text
            from proxy_world import World

            world = World(harness, "", mock, admin, owner)
            limits = [{"modelId": model, "limitUsd": 5, "enabled": True} for model in MODELS]
            friend = await friend_key(world, owner, limits)
        port = free_port()
        env = {**os.environ, "DATABASE_URL": database_url, "TROLLLLM_DATA_DIR": str(tmp_path),
               "TROLLLLM_SECRET": TEST_SECRET, "TROLLLLM_AUTO_MIGRATE": "false", "TROLLLLM_PORT": str(port),
               "TROLLLLM_LOG_LEVEL": "WARNING"}  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "trollllm", "serve", env=env, cwd=tmp_path
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base_url) as client:
                for _ in range(500):
                    with contextlib.suppress(httpx.TransportError):
                        if (await client.get("/readyz")).status_code == 200:
                            break
                    assert process.returncode is None, "the gateway process exited at start"
                    await asyncio.sleep(0.02)
            yield Gateway(base_url, mock, owner.api_key, owner.auth, friend)
        finally:
            if process.returncode is None:
                process.terminate()
            await process.wait()


async def _claude(
    claude: Path, gateway: Gateway, key: str, prompt: str, cwd: Path, *args: str
) -> dict[str, Any]:
    """`claude -p PROMPT --output-format json` against the gateway; its JSON result."""
    home = cwd / "home"
    home.mkdir(exist_ok=True)
    env = cli_environment(
        home,
        ANTHROPIC_BASE_URL=gateway.base_url,
        ANTHROPIC_API_KEY=key,
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
    )
    process = await asyncio.create_subprocess_exec(
        str(claude), "-p", prompt, "--output-format", "json", "--model", SONNET, *args,
        env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
    assert process.returncode == 0, (stdout + stderr).decode(errors="replace")[-2000:]
    result: dict[str, Any] = orjson.loads(stdout)
    assert result["is_error"] is False, result
    return result


def _expected_cost(request: RecordedRequest) -> Money:
    """What the mock's answer to this request costs at its model's prices: its planned reply's usage (input,
    thinking + text + tool call tokens as output, the cache tokens the prompt asked for)."""
    body = request.body
    reply = plan_reply(
        body,
        parse_controls(body, request.headers.items()),
        max_tokens=body["max_tokens"],
        response_id="expected",
        created=0,
        hidden_input_tokens=anthropic_hidden_tokens(body),  # Anthropic's tool-use system prompt
    )
    usage = TokenUsage(
        reply.input_tokens, reply.billed_output_tokens, reply.cache_write_tokens, reply.cache_read_tokens
    )
    return cost_of(usage, PRICES[body["model"]])


async def _charges(gateway: Gateway) -> list[Money]:
    async with httpx.AsyncClient(base_url=gateway.base_url) as client:
        page = await client.get("/api/user/request-history?limit=100", headers=gateway.owner_auth)
    assert page.status_code == 200, page.text
    rows = page.json()["requests"]
    assert all(row["isSuccess"] for row in rows), rows
    return sorted(Money.from_usd(row["creditsCost"]) for row in rows)


def _turns(mock: MockUpstream) -> list[RecordedRequest]:
    return [r for r in mock.requests if r.path == "/v1/messages"]


async def test_claude_code_answers_with_thinking_and_each_turn_is_charged_exactly(
    claude_cli: Path, tmp_path: Path, embedded_database_url: str
) -> None:
    async with _gateway(tmp_path, embedded_database_url) as gateway:
        result = await _claude(
            claude_cli, gateway, gateway.owner_key, "Say hello [mock cache_write=300 cached=200]", tmp_path
        )
        turns = _turns(gateway.mock)
        main = [t for t in turns if t.body["model"] == SONNET]
        assert main and any(t.body.get("thinking") for t in main), [t.body.get("thinking") for t in main]
        assert reply_text(16) in result["result"]
        assert await _charges(gateway) == sorted(_expected_cost(turn) for turn in turns)


async def test_claude_code_runs_a_tool_round_trip_charged_per_turn(
    claude_cli: Path, tmp_path: Path, embedded_database_url: str
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("trollllm-tool-round-trip-marker\n")
    prompt = f'Read the notes [mock-tool Read file_path="{notes}"]'
    async with _gateway(tmp_path, embedded_database_url) as gateway:
        await _claude(claude_cli, gateway, gateway.owner_key, prompt, tmp_path, "--allowedTools", "Read")
        turns = [t for t in _turns(gateway.mock) if t.body["model"] == SONNET]
        results = [
            block
            for turn in turns
            for block in turn.body["messages"][-1]["content"]
            if isinstance(block, dict) and block.get("type") == "tool_result"
        ]
        assert results and "trollllm-tool-round-trip-marker" in orjson.dumps(results).decode()
        assert await _charges(gateway) == sorted(_expected_cost(t) for t in _turns(gateway.mock))


async def test_claude_code_with_a_friend_key_charges_the_owner_exactly(
    claude_cli: Path, tmp_path: Path, embedded_database_url: str
) -> None:
    async with _gateway(tmp_path, embedded_database_url) as gateway:
        await _claude(claude_cli, gateway, gateway.friend_key, "Say hello [mock cache_write=100]", tmp_path)
        expected = sorted(_expected_cost(turn) for turn in _turns(gateway.mock))
        assert await _charges(gateway) == expected
        async with httpx.AsyncClient(base_url=gateway.base_url) as client:
            view = (await client.get("/api/user/friend-key", headers=gateway.owner_auth)).json()
        used = sum((Money.from_usd(limit["usedUsd"]) for limit in view["modelLimits"]), Money.ZERO)
        assert used == sum(expected, Money.ZERO)
