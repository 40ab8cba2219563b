"""`/users` and `/users/{name}` over HTTP: the table with K/M token counts, search and sort; the plan change
showing its grant before the confirmation; credits with a reason; activate and deactivate."""

from __future__ import annotations

import re

from admin_page_helpers import post_form, signed_in
from conftest import AppHarness
from helpers import make_admin, register_user
from sqlalchemy import update

from trollllm.accounts.tables import User
from trollllm.db import transaction


async def _set_tokens(gateway: AppHarness, username: str, **counts: int) -> None:
    async with transaction(gateway.state.sessions) as session:
        await session.execute(update(User).where(User.username == username).values(**counts))


async def test_the_users_table_shows_token_counts_as_k_and_m_with_the_exact_value_on_hover(
    gateway: AppHarness,
) -> None:
    await make_admin(gateway)
    await register_user(gateway, "alice")
    await _set_tokens(
        gateway, "alice", tokens_used=1_500_000, monthly_tokens_used=250_000, total_input_tokens=999,
        total_output_tokens=1_000,
    )  # fmt: skip
    async with signed_in(gateway, "root") as client:
        page = await client.get("/users", params={"search": "ali"})
    assert page.status_code == 200
    for exact, short in (("1,500,000", "1.5M"), ("250,000", "250K"), ("999", "999"), ("1,000", "1.0K")):
        assert f'<span title="{exact}">{short}</span>' in page.text
    for header in ("Tokens Used", "Input Tokens", "Output Tokens"):
        assert header in page.text


async def test_search_filters_and_sort_orders_the_users(gateway: AppHarness) -> None:
    await make_admin(gateway)
    for name in ("bob", "alice", "alina"):
        await register_user(gateway, name)
    async with signed_in(gateway, "root") as client:
        found = await client.get("/users", params={"search": "ALI", "sort": "username"})
        descending = await client.get("/users", params={"sort": "-username"})
    names = re.findall(r'<a href="/users/([a-z]+)">', found.text)
    assert names == ["alice", "alina"]
    assert 'aria-sort="ascending"' in found.text
    assert re.findall(r'<a href="/users/([a-z]+)">', descending.text) == ["root", "bob", "alina", "alice"]


async def test_the_plan_select_names_each_grant_and_the_confirmation_repeats_it(gateway: AppHarness) -> None:
    await make_admin(gateway)
    await register_user(gateway, "alice")
    async with signed_in(gateway, "root") as client:
        page = await client.get("/users/alice")
        review = await post_form(client, "/users/alice", "/users/alice/plan", plan="pro")
        credits_before = await client.get("/users/alice")
    assert "dev — grants $225.00" in page.text and "pro — grants $500.00" in page.text
    assert "Change alice from free to pro?" in review.text and "$500.00" in review.text
    assert "Confirm plan change" in review.text
    assert '<dd title="$0.000000000">$0</dd>' in credits_before.text  # nothing granted yet


async def test_a_confirmed_upgrade_grants_and_says_so(gateway: AppHarness) -> None:
    await make_admin(gateway)
    await register_user(gateway, "alice")
    async with signed_in(gateway, "root") as client:
        first = await post_form(client, "/users/alice", "/users/alice/plan", plan="dev", confirm="yes")
        after_dev = await client.get("/users/alice")
        await post_form(client, "/users/alice", "/users/alice/plan", plan="pro", confirm="yes")
        after_pro = await client.get("/users/alice")
    assert first.status_code == 303
    assert "alice is now on dev: granted $225.00 in credits" in after_dev.text
    assert "alice is now on pro: granted $275.00 in credits" in after_pro.text
    assert "$500.00" in after_pro.text


async def test_credits_need_an_amount_and_a_reason_and_never_go_below_zero(gateway: AppHarness) -> None:
    await make_admin(gateway)
    await register_user(gateway, "alice")
    async with signed_in(gateway, "root") as client:
        empty = await post_form(
            client, "/users/alice", "/users/alice/credits", amountUsd="", balance="credits", reason=""
        )
        below = await post_form(
            client, "/users/alice", "/users/alice/credits", amountUsd="-5", balance="credits", reason="refund"
        )
        granted = await post_form(
            client,
            "/users/alice",
            "/users/alice/credits",
            amountUsd="12.5",
            balance="refCredits",
            reason="promo",
        )
        shown = await client.get("/users/alice")
    assert empty.status_code == 400
    assert 'id="amountUsd-error"' in empty.text and 'id="reason-error"' in empty.text
    assert below.status_code == 400 and 'id="amountUsd-error"' in below.text
    assert granted.status_code == 303
    assert "Granted $12.50 to refCredits" in shown.text


async def test_deactivate_then_activate_a_user(gateway: AppHarness) -> None:
    await make_admin(gateway)
    await register_user(gateway, "alice")
    async with signed_in(gateway, "root") as client:
        await post_form(client, "/users/alice", "/users/alice/active", active="no")
        deactivated = await client.get("/users/alice")
        await post_form(client, "/users/alice", "/users/alice/active", active="yes")
        activated = await client.get("/users/alice")
    assert "alice is deactivated" in deactivated.text and ">Activate<" in deactivated.text
    assert "alice is active" in activated.text and ">Deactivate<" in activated.text


async def test_the_last_admin_cannot_deactivate_themselves_and_is_told_why(gateway: AppHarness) -> None:
    await make_admin(gateway)
    async with signed_in(gateway, "root") as client:
        response = await post_form(client, "/users/root", "/users/root/active", active="no")
    assert response.status_code == 409
    assert "The last active admin cannot be demoted or deactivated" in response.text


async def test_an_unknown_user_is_an_html_404(gateway: AppHarness) -> None:
    await make_admin(gateway)
    async with signed_in(gateway, "root") as client:
        page = await client.get("/users/nobody")
        revoke = await client.get("/keys/nobody/revoke")
    assert page.status_code == 404 and "Not found" in page.text
    assert revoke.status_code == 404 and "Not found" in revoke.text


async def test_the_notice_after_a_form_shows_once(gateway: AppHarness) -> None:
    await make_admin(gateway)
    await register_user(gateway, "alice")
    async with signed_in(gateway, "root") as client:
        await post_form(client, "/users/alice", "/users/alice/active", active="no")
        first = await client.get("/users/alice")
        second = await client.get("/users/alice")
    assert "alice is deactivated" in first.text
    assert "alice is deactivated" not in second.text
