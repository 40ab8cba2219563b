"""The audit page's values are words, not raw JSON (issue 28): amounts in dollars, instants in the admin's
zone, yes/no, lists as their items, nested objects one line per changed leaf."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from admin_page_helpers import post_form, signed_in
from proxy_world import OPENAI_MODEL, World

from trollllm.web.admin.audit_text import field_label, flatten, value_text

UTC_ZONE = ZoneInfo("UTC")


def test_field_names_read_as_words_and_ids_stay_as_they_are() -> None:
    assert field_label("planExpiresAt") == "plan expires at"
    assert field_label("longContext.inputPricePerMTok") == "long context › input price per MTok"
    assert field_label("baseUrl") == "base URL" and field_label("gpt-4o-mini") == "gpt-4o-mini"


def test_values_read_as_words() -> None:
    zone = ZoneInfo("Asia/Ho_Chi_Minh")
    assert value_text("credits", 225.0, zone) == "$225.00"
    assert value_text("spendUsd", 0.0000175, zone) == "$0.0000175"
    assert value_text("inputPricePerMTok", 2.5, zone) == "$2.50"
    assert value_text("requestsCount", 1500000, zone) == "1,500,000"
    assert value_text("isActive", False, zone) == "no" and value_text("lastError", None, zone) == "—"
    assert value_text("planExpiresAt", "2026-03-01T17:30:00Z", zone) == "2026-03-02 00:30:00"
    assert (
        value_text("refused", ["a-beta", "b-*"], zone) == "a-beta, b-*"
        and value_text("x", [], zone) == "none"
    )
    rows = [{"modelId": "gpt-x", "limitUsd": 5}, {"modelId": "gpt-y", "limitUsd": 0.5}]
    assert (
        value_text("modelLimits", rows, zone)
        == "model ID gpt-x, limit USD $5.00; model ID gpt-y, limit USD $0.50"
    )


def test_a_nested_object_is_one_line_per_leaf() -> None:
    assert flatten({"a": 1, "longContext": {"thresholdTokens": 200000, "inputPricePerMTok": 6}}) == {
        "a": 1,
        "longContext.thresholdTokens": 200000,
        "longContext.inputPricePerMTok": 6,
    }


def _changes(html: str) -> str:
    cells = re.findall(r'<td class="changes">(.*?)</td>', html, re.S)
    return " | ".join(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell)).strip() for cell in cells)


async def test_the_audit_page_shows_plan_changes_and_lists_in_words(world: World) -> None:
    await world.admin_call("PUT", "/api/admin/anthropic-betas", json={"refused": ["a-beta", "b-*"]})
    async with signed_in(world.gateway, world.admin.username) as client:
        await post_form(client, "/users/alice", "/users/alice/active", active="no")
        page = await client.get("/admin/audit")
    changes = _changes(page.text)
    assert "refused a-beta, b-*" in changes or "refused none → a-beta, b-*" in changes, changes
    assert "is active yes → no" in changes
    assert "credits $0.00 → $225.00" in changes and "plan free → dev" in changes
    assert '["' not in changes and "true" not in changes and "false" not in changes
    assert re.search(r"plan expires at — → \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", changes), changes


async def test_a_model_change_shows_its_prices_in_dollars(world: World) -> None:
    models = (await world.admin_call("GET", "/api/admin/models")).json()
    model = next(row for row in models if row["modelId"] == OPENAI_MODEL)
    fields = {key: model[key] for key in ("provider", "upstreamModel", "maxOutputTokens")}
    prices = {key: model[key] for key in model if key.endswith("PricePerMTok")}
    await world.admin_call(
        "PUT", f"/api/admin/models/{OPENAI_MODEL}", json=fields | prices | {"inputPricePerMTok": 7.25}
    )
    async with signed_in(world.gateway, world.admin.username) as client:
        page = await client.get("/admin/audit", params={"action": "model.update"})
    changes = _changes(page.text)
    assert re.search(r"input price per MTok \$[\d.,]+ → \$7\.25", changes), changes
