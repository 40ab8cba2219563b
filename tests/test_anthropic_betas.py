"""`anthropic-beta` values as data (issue 24, SPEC §6): every value is forwarded but those an admin refuses
and those that change the price unpriced; the values forwarded are counted (24 hours, Prometheus)."""

from __future__ import annotations

from typing import Any

from proxy_world import ANTHROPIC_MODEL, World

CLAUDE_CODE_BETAS = (
    "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
    "thinking-token-count-2026-05-13,advanced-tool-use-2025-11-20"
)


async def _call(world: World, beta: str, path: str = "/v1/messages") -> Any:
    return await world.gateway.client.post(
        path,
        headers={"x-api-key": world.user.api_key, "anthropic-version": "2023-06-01", "anthropic-beta": beta},
        json={"model": ANTHROPIC_MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]},
    )


async def test_every_beta_claude_code_sends_is_forwarded_on_the_beta_query_path(world: World) -> None:
    response = await _call(world, CLAUDE_CODE_BETAS, "/v1/messages?beta=true")
    assert response.status_code == 200, response.text
    assert world.mock.last_request.headers["anthropic-beta"] == CLAUDE_CODE_BETAS


async def test_a_value_an_admin_refuses_is_refused_naming_it(world: World) -> None:
    await world.admin_call("PUT", "/api/admin/anthropic-betas", json={"refused": ["claude-code-20250219"]})
    before = world.mock.request_count
    response = await _call(world, CLAUDE_CODE_BETAS)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["field"] == "anthropic-beta"
    assert "claude-code-20250219" in error["message"] and "interleaved" not in error["message"]
    assert world.mock.request_count == before


async def test_a_refused_prefix_refuses_every_value_it_starts(world: World) -> None:
    await world.admin_call("PUT", "/api/admin/anthropic-betas", json={"refused": ["files-api-*"]})
    assert (await _call(world, "files-api-2025-04-14")).status_code == 400
    assert (await _call(world, "files-apix")).status_code == 200  # not the prefix `files-api-`


async def test_lifting_a_refusal_forwards_the_value_again(world: World) -> None:
    await world.admin_call("PUT", "/api/admin/anthropic-betas", json={"refused": ["mcp-client-2025-04-04"]})
    assert (await _call(world, "mcp-client-2025-04-04")).status_code == 400
    await world.admin_call("PUT", "/api/admin/anthropic-betas", json={"refused": []})
    assert (await _call(world, "mcp-client-2025-04-04")).status_code == 200


async def test_values_that_change_the_price_unpriced_are_refused_with_why(world: World) -> None:
    for value, why in (
        ("code-execution-2025-08-25", "container"),
        ("extended-cache-ttl-2025-04-11", "cache"),
        ("fast-mode-2026-02-01", "premium"),
        ("context-1m-2025-08-07", "long-context"),
    ):
        response = await _call(world, value)
        assert response.status_code == 400, value
        assert value in response.json()["error"]["message"] and why in response.json()["error"]["message"]


async def test_the_admin_view_counts_the_values_forwarded_in_the_last_24_hours(world: World) -> None:
    await _call(world, CLAUDE_CODE_BETAS)
    await _call(world, "claude-code-20250219")
    await _call(world, "fast-mode-2026-02-01")  # refused: not forwarded, not counted
    view = (await world.admin_call("GET", "/api/admin/anthropic-betas")).json()
    counts = {row["value"]: row["count"] for row in view["forwardedLast24h"]}
    assert counts["claude-code-20250219"] == 2 and counts["advanced-tool-use-2025-11-20"] == 1
    assert "fast-mode-2026-02-01" not in counts
    assert {rule["prefix"] for rule in view["priceRules"]} >= {"context-1m-", "code-execution-"}
    metrics = (await world.gateway.client.get("/metrics")).text
    assert 'trollllm_anthropic_betas_total{beta="claude-code-20250219"} 2.0' in metrics


async def test_the_24_hour_tally_forgets_older_hours(world: World) -> None:
    await _call(world, "claude-code-20250219")
    world.state.clock.advance(25 * 3600)  # type: ignore[attr-defined]
    await _call(world, "interleaved-thinking-2025-05-14")
    view = (await world.admin_call("GET", "/api/admin/anthropic-betas")).json()
    assert [row["value"] for row in view["forwardedLast24h"]] == ["interleaved-thinking-2025-05-14"]


async def test_a_malformed_refused_value_is_400_naming_refused(world: World) -> None:
    response = await world.gateway.client.put(
        "/api/admin/anthropic-betas", headers=world.admin.auth, json={"refused": ["bad value!"]}
    )
    assert response.status_code == 400 and response.json()["error"]["field"] == "refused"


async def test_a_change_of_refusals_is_audited(world: World) -> None:
    await world.admin_call("PUT", "/api/admin/anthropic-betas", json={"refused": ["x-beta-1"]})
    audit = (await world.admin_call("GET", "/api/admin/audit")).json()
    entries = audit["entries"] if isinstance(audit, dict) else audit
    assert any(entry["action"] == "anthropic_betas.update" for entry in entries)
