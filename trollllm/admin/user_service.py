"""What the admin user endpoints do: list users, change plan/role/activity, adjust credits, read the ledger.

Every write runs in the caller's transaction (one per request) and records its audit entry there, except
`adjust_credits`: a deduction recalls the user's credit lease before its transaction opens.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased
from sqlalchemy.sql.elements import ColumnElement

from trollllm.accounts.tables import User
from trollllm.admin.user_schemas import AdminUserView, CreditsAdjustment, UserSort, UserUpdate
from trollllm.audit.service import record_audit
from trollllm.billing.leases import leases_recalled
from trollllm.billing.ledger import ADMIN_ADJUSTMENT, apply_adjustment
from trollllm.billing.tables import LedgerEntry
from trollllm.db import transaction
from trollllm.errors import Conflict, InvalidRequest, NotFound
from trollllm.fields import page_offset
from trollllm.money import Money
from trollllm.plans.service import change_plan, find_plan
from trollllm.state import AppState

_SORT_COLUMNS: dict[str, InstrumentedAttribute[Any]] = {
    "username": User.username,
    "createdAt": User.created_at,
    "credits": User.credits_nanos,
    "refCredits": User.ref_credits_nanos,
    "tokensUsed": User.tokens_used,
    "monthlyTokensUsed": User.monthly_tokens_used,
    "plan": User.plan,
    "totalInputTokens": User.total_input_tokens,
    "totalOutputTokens": User.total_output_tokens,
}


async def list_users(
    session: AsyncSession, *, page: int, limit: int, search: str | None, sort: UserSort
) -> tuple[list[User], int]:
    """One page of users and the total matching; `search` is a case-insensitive username substring."""
    condition: ColumnElement[bool] | None = None
    if search:
        condition = func.lower(User.username).contains(search.lower(), autoescape=True)
    count = select(func.count()).select_from(User)
    query = select(User)
    if condition is not None:
        count, query = count.where(condition), query.where(condition)
    descending = sort.startswith("-")
    column = _SORT_COLUMNS[sort.removeprefix("-")]
    order = (column.desc(), User.id.desc()) if descending else (column.asc(), User.id.asc())
    total = int(await session.scalar(count) or 0)
    users = await session.scalars(query.order_by(*order).offset(page_offset(page, limit)).limit(limit))
    return list(users), total


async def update_user(
    session: AsyncSession, state: AppState, username: str, body: UserUpdate, *, actor: str
) -> User:
    """Apply a plan, role and/or activity change to a user, all or nothing.

    - a plan change follows SPEC §5 (`plans.service.change_plan`); an unknown plan is a 400 on `plan`;
    - the last active admin cannot be demoted or deactivated (409);
    - a demotion takes effect on the next request (roles are read from the database each time); a
      deactivation also bumps the token version, so every session of the user dies at once and stays dead
      after a reactivation.
    """
    may_remove_admin = body.role == "user" or body.isActive is False
    if may_remove_admin:
        # Lock every active admin row first, in one order, so concurrent demotions serialize (no deadlock)
        # and the second one sees the first one's result.
        await session.scalars(
            select(User.id).where(User.role == "admin", User.is_active.is_(True)).order_by(User.id)
            .with_for_update()
        )  # fmt: skip
    user = await locked_user(session, username)
    before = AdminUserView.of(user).audit_snapshot()
    new_plan = None
    if body.plan is not None:
        new_plan = await find_plan(session, body.plan)
        if new_plan is None:
            raise InvalidRequest(f"No plan named {body.plan!r}", field="plan")
    demoted = body.role == "user" and user.role == "admin"
    deactivated = body.isActive is False and user.is_active
    if new_plan is not None:
        await change_plan(session, state, user, new_plan, actor)
    role = body.role if body.role is not None else user.role
    is_active = body.isActive if body.isActive is not None else user.is_active
    if user.role == "admin" and user.is_active and (demoted or deactivated):
        await _remove_admin(
            session, user, role=role, is_active=is_active, field="role" if demoted else "isActive"
        )
    else:
        user.role, user.is_active = role, is_active
        if deactivated:
            user.token_version += 1
    await session.flush()
    await record_audit(
        session,
        state,
        actor=actor,
        action="user.update",
        target=f"user:{user.username}",
        before=before,
        after=AdminUserView.of(user).audit_snapshot(),
    )
    return user


async def adjust_credits(
    state: AppState, username: str, body: CreditsAdjustment, *, actor: str
) -> tuple[User, LedgerEntry]:
    """Grant (positive) or deduct (negative) one balance through the ledger, in one transaction; never below
    zero (400). A deduction first recalls the user's credit lease here, so it meets only open requests'
    holds, as it would with leases off."""
    recalled = await _lease_holder(state, username) if body.amountUsd.nanos < 0 else []
    async with leases_recalled(state.leases, recalled), transaction(state.sessions) as session:
        return await _adjust_credits(session, state, username, body, actor=actor)


async def _lease_holder(state: AppState, username: str) -> list[int]:
    """The id of `username` where credit leases are on (nothing to recall where they are off)."""
    if state.leases is None:
        return []
    async with state.sessions() as session:
        user_id = await session.scalar(select(User.id).where(User.username == username))
    return [user_id] if user_id is not None else []


async def _adjust_credits(
    session: AsyncSession, state: AppState, username: str, body: CreditsAdjustment, *, actor: str
) -> tuple[User, LedgerEntry]:
    user = await locked_user(session, username)
    before = AdminUserView.of(user).audit_snapshot()
    amount = body.amountUsd
    entry = await apply_adjustment(
        session,
        user_id=user.id,
        credits_delta=amount if body.balance == "credits" else Money.ZERO,
        ref_credits_delta=amount if body.balance == "refCredits" else Money.ZERO,
        kind=ADMIN_ADJUSTMENT,
        reason=body.reason,
        actor=actor,
        when=state.clock.now(),
    )
    after = AdminUserView.of(user).audit_snapshot()
    after["adjustment"] = {
        "amountUsd": amount.to_json(),
        "balance": body.balance,
        "reason": body.reason,
        "ledgerEntryId": entry.id,
    }
    await record_audit(
        session,
        state,
        actor=actor,
        action="user.credits",
        target=f"user:{user.username}",
        before=before,
        after=after,
    )
    return user, entry


async def list_ledger(
    session: AsyncSession, *, username: str | None, page: int, limit: int
) -> tuple[list[tuple[LedgerEntry, str]], int]:
    """One page of ledger entries, newest first, with their usernames; of one user when named (404 if
    unknown).
    """
    query = select(LedgerEntry, User.username).join(User, User.id == LedgerEntry.user_id)
    count = select(func.count()).select_from(LedgerEntry)
    if username is not None:
        user_id = await session.scalar(select(User.id).where(User.username == username))
        if user_id is None:
            raise NotFound("No such user", field="username")
        query = query.where(LedgerEntry.user_id == user_id)
        count = count.where(LedgerEntry.user_id == user_id)
    total = int(await session.scalar(count) or 0)
    rows = await session.execute(
        query.order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
        .offset(page_offset(page, limit))
        .limit(limit)
    )
    return [(entry, name) for entry, name in rows], total


async def locked_user(session: AsyncSession, username: str) -> User:
    """The user called `username`, row-locked for this transaction (404 naming `username` if none)."""
    user = await session.scalar(select(User).where(User.username == username).with_for_update())
    if user is None:
        raise NotFound("No such user", field="username")
    return user


async def _remove_admin(session: AsyncSession, user: User, *, role: str, is_active: bool, field: str) -> None:
    """Demote and/or deactivate an active admin, unless no other active admin would remain (409).

    The rule is checked inside the UPDATE itself, so it holds even where row locks do not exist (SQLite
    takes the write lock for the whole statement); a deactivation bumps the token version.
    """
    other = aliased(User)
    another_admin_remains = (
        select(other.id).where(other.role == "admin", other.is_active.is_(True), other.id != user.id).exists()
    )
    bump = 0 if is_active else 1
    statement = (
        update(User)
        .where(User.id == user.id, another_admin_remains)
        .values(role=role, is_active=is_active, token_version=User.token_version + bump)
        .returning(User)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    if (await session.scalars(statement)).one_or_none() is None:
        raise Conflict("The last active admin cannot be demoted or deactivated", field=field)
