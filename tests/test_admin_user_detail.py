"""`/users/{username}` for admins (issue 28): the user's keys masked, usage by model, ledger and recent
requests, each checked against what the user did; linked from `/users`."""

from __future__ import annotations

import re

from admin_page_helpers import signed_in
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World

from trollllm.money import Money


def _section(html: str, title_id: str) -> str:
    return html.split(f'id="{title_id}"')[1].split("</section>")[0]


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def _activity(world: World) -> None:
    async with world.openai() as client:
        for _ in range(2):
            await client.chat.completions.create(
                model=OPENAI_MODEL, messages=[{"role": "user", "content": "hi"}]
            )
    async with world.anthropic() as anthropic:
        await anthropic.messages.create(
            model=ANTHROPIC_MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )
    friend = await world.gateway.client.post("/api/user/friend-key", headers=world.user.auth)
    assert friend.status_code in (200, 201), friend.text
    await world.admin_call(
        "POST",
        "/api/admin/users/alice/credits",
        json={"amountUsd": 5, "balance": "credits", "reason": "thanks"},
    )


async def test_the_users_list_links_each_user_to_their_page(world: World) -> None:
    async with signed_in(world.gateway, world.admin.username) as client:
        listing = await client.get("/users")
    assert '<a href="/users/alice">alice</a>' in listing.text


async def test_the_user_page_shows_the_keys_masked(world: World) -> None:
    await _activity(world)
    async with signed_in(world.gateway, world.admin.username) as client:
        page = await client.get("/users/alice")
    keys = _text(_section(page.text, "keys-title"))
    assert f"API key sk-trollllm-****...****{world.user.api_key[-4:]} live" in keys
    assert "Friend Key sk-trollllm-****...****" in keys and "active" in keys
    assert world.user.api_key not in page.text


async def test_the_user_page_shows_usage_by_model_with_its_spend(world: World) -> None:
    await _activity(world)
    logs = (await world.gateway.client.get("/api/user/request-history", headers=world.user.auth)).json()
    async with signed_in(world.gateway, world.admin.username) as client:
        page = await client.get("/users/alice")
    usage = _section(page.text, "usage-title").replace("<wbr>", "")  # model IDs may break after / - . :
    rows = re.findall(
        r"<tr><td class=\"name\">([^<]+)</td><td class=\"num\"><span title=\"(\d+)\"", usage.replace(",", "")
    )
    assert sorted(rows) == sorted([(ANTHROPIC_MODEL, "1"), (OPENAI_MODEL, "2")])
    spent = sum(
        Money.from_usd(str(row["creditsCost"])).nanos
        for row in logs["requests"]
        if row["model"] == OPENAI_MODEL
    )
    row = usage.split(f'<td class="name">{OPENAI_MODEL}</td>')[1].split("</tr>")[0]
    assert spent > 0 and f'title="{Money(spent).format_exact()}">{Money(spent).format_spend()}<' in row
    assert "Usage by model · last 30 days" in page.text


async def test_the_user_page_lists_the_ledger_newest_first(world: World) -> None:
    await _activity(world)
    async with signed_in(world.gateway, world.admin.username) as client:
        page = await client.get("/users/alice")
    ledger = _text(_section(page.text, "ledger-title"))
    assert "adjustment +$5.00 — thanks root" in ledger
    assert ledger.index("adjustment") < ledger.index("charge"), "newest first"
    assert re.search(r"The latest \d+ of \d+ entries", ledger)


async def test_the_user_page_lists_recent_requests(world: World) -> None:
    await _activity(world)
    async with signed_in(world.gateway, world.admin.username) as client:
        page = await client.get("/users/alice")
    recent = _section(page.text, "requests-title").replace("<wbr>", "")
    assert "The latest 3 of 3 requests" in _text(recent)
    models = re.findall(r"</time></td><td class=\"name\">([^<]+)</td>", recent)
    assert models == [ANTHROPIC_MODEL, OPENAI_MODEL, OPENAI_MODEL]
    assert recent.count(">200</span>") == 3 and "API key" in recent


async def test_a_user_without_activity_says_so(world: World) -> None:
    async with signed_in(world.gateway, world.admin.username) as client:
        page = await client.get(f"/users/{world.admin.username}")
    text = _text(page.text)
    assert "No requests since" in text and "No requests yet." in text
