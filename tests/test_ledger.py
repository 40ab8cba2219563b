"""The ledger (SPEC §4, issue 3): every movement of money is one append-only entry, and Σ ledger = balance."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from admin_helpers import adjust, set_plan
from conftest import TEST_SECRET, AppHarness
from helpers import PASSWORD, Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from trollllm.accounts.service import create_user, find_user
from trollllm.accounts.sessions import issue_token
from trollllm.accounts.tables import User
from trollllm.app import create_app
from trollllm.billing.ledger import ADMIN_ADJUSTMENT, apply_adjustment, reconcile
from trollllm.billing.tables import Hold, LedgerEntry
from trollllm.cli import main
from trollllm.cli.running import running_app
from trollllm.db import transaction
from trollllm.errors import BalanceLimitExceeded, InsufficientBalance, NotFound
from trollllm.money import Money
from trollllm.settings import Settings
from trollllm.state import AppState

USD = 10**9
GRANTS = {"free": 0, "dev": 225 * USD, "pro": 500 * USD, "pro-troll": 0}
PAID = {"dev", "pro", "pro-troll"}


async def new_user(state: AppState, username: str = "alice") -> int:
    user, _ = await create_user(state, username, PASSWORD)
    return user.id


async def move(state: AppState, user_id: int, credits: int = 0, ref_credits: int = 0) -> LedgerEntry:
    async with transaction(state.sessions) as session:
        return await apply_adjustment(
            session,
            user_id=user_id,
            credits_delta=Money(credits),
            ref_credits_delta=Money(ref_credits),
            kind=ADMIN_ADJUSTMENT,
            reason="test",
            actor="tester",
            when=state.clock.now(),
        )


async def balances(state: AppState, user_id: int) -> tuple[int, int]:
    async with state.sessions() as session:
        row = (
            await session.execute(
                select(User.credits_nanos, User.ref_credits_nanos).where(User.id == user_id)
            )
        ).one()
    return int(row[0]), int(row[1])


async def entries(state: AppState) -> list[LedgerEntry]:
    async with state.sessions() as session:
        return list(await session.scalars(select(LedgerEntry).order_by(LedgerEntry.id)))


async def execute(state: AppState, sql: str) -> None:
    async with transaction(state.sessions) as session:
        await session.execute(text(sql))


async def admin_account(gateway: AppHarness) -> Account:
    """The admin `root` (created once per database) with a token issued directly (no login, no reveal)."""
    async with gateway.state.sessions() as session:
        root = await find_user(session, "root")
    if root is None:
        root, _ = await create_user(gateway.state, "root", PASSWORD, role="admin")
    return Account("root", issue_token(gateway.state, root), api_key="")


# --- apply_adjustment -------------------------------------------------------------------------------


async def test_a_grant_moves_the_balance_and_writes_one_entry(gateway: AppHarness) -> None:
    user_id = await new_user(gateway.state)
    entry = await move(gateway.state, user_id, credits=5 * USD, ref_credits=2)
    assert await balances(gateway.state, user_id) == (5 * USD, 2)
    (stored,) = await entries(gateway.state)
    assert (stored.id, stored.kind, stored.credits_delta_nanos, stored.ref_credits_delta_nanos) == (
        entry.id, "admin_adjustment", 5 * USD, 2,
    )  # fmt: skip
    assert (stored.actor, stored.reason) == ("tester", "test")


async def test_a_deduction_below_zero_raises_and_writes_nothing(gateway: AppHarness) -> None:
    user_id = await new_user(gateway.state)
    await move(gateway.state, user_id, credits=USD)
    with pytest.raises(InsufficientBalance) as refused:
        await move(gateway.state, user_id, credits=-USD - 1)
    assert refused.value.field == "amountUsd"
    assert await balances(gateway.state, user_id) == (USD, 0)
    assert len(await entries(gateway.state)) == 1


async def test_a_deduction_may_not_eat_into_open_holds(gateway: AppHarness) -> None:
    state = gateway.state
    user_id = await new_user(state)
    await move(state, user_id, credits=10 * USD)
    async with transaction(state.sessions) as session:
        now = state.clock.now()
        session.add(
            Hold(request_id="req_1", user_id=user_id, amount_nanos=4 * USD, created_at=now,
                 expires_at=now + timedelta(minutes=5))
        )  # fmt: skip
        await session.execute(text(f"UPDATE users SET held_nanos = {4 * USD} WHERE id = {user_id}"))
    with pytest.raises(InsufficientBalance, match="holds"):
        await move(state, user_id, credits=-7 * USD)
    await move(state, user_id, credits=-6 * USD)
    assert await balances(state, user_id) == (4 * USD, 0)


async def test_no_balance_grows_past_a_billion_dollars(gateway: AppHarness) -> None:
    user_id = await new_user(gateway.state)
    await move(gateway.state, user_id, credits=10**9 * USD)
    with pytest.raises(BalanceLimitExceeded):
        await move(gateway.state, user_id, credits=1)


async def test_an_unknown_user_is_not_found(gateway: AppHarness) -> None:
    with pytest.raises(NotFound):
        await move(gateway.state, 999, credits=USD)


async def test_an_unknown_kind_is_a_programming_error(gateway: AppHarness) -> None:
    user_id = await new_user(gateway.state)
    async with transaction(gateway.state.sessions) as session:
        with pytest.raises(ValueError, match="kind"):
            await apply_adjustment(
                session, user_id=user_id, credits_delta=Money(1), ref_credits_delta=Money.ZERO,
                kind="gift", reason="", actor="x", when=gateway.state.clock.now(),
            )  # fmt: skip


# --- append-only -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql", ["UPDATE ledger_entries SET credits_delta_nanos = 0", "DELETE FROM ledger_entries"]
)
async def test_the_database_refuses_to_change_ledger_rows(any_gateway: AppHarness, sql: str) -> None:
    user_id = await new_user(any_gateway.state)
    await move(any_gateway.state, user_id, credits=USD)
    with pytest.raises(DBAPIError, match="append-only"):
        await execute(any_gateway.state, sql)
    assert [entry.credits_delta_nanos for entry in await entries(any_gateway.state)] == [USD]


# --- reconcile ---------------------------------------------------------------------------------------


async def test_reconcile_reports_nothing_when_the_books_balance(gateway: AppHarness) -> None:
    user_id = await new_user(gateway.state)
    await move(gateway.state, user_id, credits=3 * USD, ref_credits=USD)
    await move(gateway.state, user_id, credits=-USD)
    async with gateway.state.sessions() as session:
        assert await reconcile(session) == []


async def test_reconcile_reports_a_balance_changed_outside_the_ledger(any_gateway: AppHarness) -> None:
    state = any_gateway.state
    user_id = await new_user(state)
    await new_user(state, "bob")
    await move(state, user_id, credits=3 * USD)
    await execute(state, f"UPDATE users SET ref_credits_nanos = 7 WHERE id = {user_id}")
    async with state.sessions() as session:
        (found,) = await reconcile(session)
    assert (found.username, found.credits, found.ledger_credits) == ("alice", Money(3 * USD), Money(3 * USD))
    assert (found.ref_credits, found.ledger_ref_credits) == (Money(7), Money(0))
    assert found.describe().endswith("refCredits $0.000000007 != ledger $0 (difference $0.000000007)")


async def test_reconcile_reports_held_money_without_an_open_hold(gateway: AppHarness) -> None:
    user_id = await new_user(gateway.state)
    await move(gateway.state, user_id, credits=USD)
    await execute(gateway.state, f"UPDATE users SET held_nanos = 5 WHERE id = {user_id}")
    async with gateway.state.sessions() as session:
        (found,) = await reconcile(session)
    assert (found.held, found.open_holds) == (Money(5), Money(0))


def _usd(nanos: int) -> float:
    """A JSON number whose shortest text is exactly `nanos` nano-dollars (≤ 15 significant digits)."""
    return float(Decimal(nanos).scaleb(-9))


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from(["credits", "refCredits"]),
            st.integers(-300 * USD, 300 * USD).filter(bool),
        ),
        st.tuples(st.just("plan"), st.sampled_from(sorted(GRANTS))),
    ),
    min_size=1,
    max_size=10,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
async def test_reconcile_reports_zero_after_random_grants_and_deductions(
    any_gateway: AppHarness, operations: list[tuple[str, str | int]]
) -> None:
    admin = await admin_account(any_gateway)
    username = f"h{uuid.uuid4().hex[:12]}"
    user_id = await new_user(any_gateway.state, username)
    expected = {"credits": 0, "refCredits": 0}
    plan = "free"
    for what, value in operations:
        if what == "plan":
            assert isinstance(value, str)
            assert (await set_plan(any_gateway, admin, username, value)).status_code == 200
            if value in PAID:
                granted = GRANTS[value] if plan not in PAID else max(GRANTS[value] - GRANTS[plan], 0)
                expected["credits"] += granted
            plan = value
            continue
        assert isinstance(value, int)
        response = await adjust(any_gateway, admin, username, _usd(value), balance=what)
        if expected[what] + value >= 0:
            assert response.status_code == 200, response.text
            expected[what] += value
        else:
            assert response.status_code == 400, response.text
    assert await balances(any_gateway.state, user_id) == (expected["credits"], expected["refCredits"])
    async with any_gateway.state.sessions() as session:
        assert await reconcile(session) == []


# --- the `trollllm reconcile` command ----------------------------------------------------------------


def _run_with_app(coroutine: Callable[[AppState], Awaitable[None]]) -> None:
    async def run() -> None:
        async with running_app(create_app(Settings())) as state:
            await coroutine(state)

    asyncio.run(run())


@pytest.fixture
def cli_environment(embedded_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point `Settings()` (what the command reads) at this test's database."""
    monkeypatch.setenv("DATABASE_URL", embedded_database_url)
    monkeypatch.setenv("TROLLLLM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TROLLLLM_SECRET", TEST_SECRET)
    monkeypatch.setenv("TROLLLLM_AUTO_MIGRATE", "false")
    monkeypatch.delenv("REDIS_URL", raising=False)


async def _seed(state: AppState) -> None:
    user_id = await new_user(state)
    await move(state, user_id, credits=2 * USD)
    await new_user(state, "bob")


def test_the_reconcile_command_exits_0_when_the_books_balance(
    cli_environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    _run_with_app(_seed)
    assert main(["reconcile"]) == 0
    assert "ledger reconciles: 2 users, 0 differences" in capsys.readouterr().out


def test_the_reconcile_command_exits_1_and_names_each_difference(
    cli_environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    async def tamper(state: AppState) -> None:
        await _seed(state)
        await execute(state, "UPDATE users SET credits_nanos = credits_nanos + 1 WHERE username = 'alice'")

    _run_with_app(tamper)
    assert main(["reconcile"]) == 1
    out = capsys.readouterr().out
    assert "user 'alice'" in out and "credits $2.000000001 != ledger $2 (difference $0.000000001)" in out
    assert "2 users, 1 differences" in out
