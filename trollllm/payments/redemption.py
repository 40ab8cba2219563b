"""Redemption codes (SPEC §10): admin batches, exactly-once redemption, voiding.

A code is used by one conditional UPDATE (`… WHERE used_at IS NULL AND voided_at IS NULL` and its batch not
expired) in the same transaction as its ledger entry and audit entry: under any concurrency and across
instances one request wins the row, the others find nothing to update.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.accounts.tables import User
from trollllm.audit.service import record_audit
from trollllm.billing.ledger import REDEEM, apply_adjustment
from trollllm.errors import Conflict, InvalidCode, InvalidRequest, NotFound, TooManyWrongCodes
from trollllm.money import Money
from trollllm.payments.codes import code_digest, new_code, normalize
from trollllm.payments.schemas import BatchView, NewBatch
from trollllm.payments.tables import RedemptionBatch, RedemptionCode
from trollllm.plans.service import change_plan, find_plan, is_paid
from trollllm.plans.tables import Plan
from trollllm.state import AppState

_HOUR_S = 3600


@dataclass(frozen=True, slots=True)
class Redeemed:
    """What one redemption did: money into a balance, or a plan."""

    batch: RedemptionBatch
    user: User


async def create_batch(
    session: AsyncSession, state: AppState, body: NewBatch, *, actor: str
) -> tuple[RedemptionBatch, list[str]]:
    """Create `body.count` codes; their text is returned here and nowhere else (only digests are kept)."""
    if body.plan is not None:
        plan = await find_plan(session, body.plan)
        if plan is None or not is_paid(plan):
            raise InvalidRequest(f"No paid plan named {body.plan!r}", field="plan")
    now = state.clock.now()
    if body.expiresAt is not None and body.expiresAt <= now:
        raise InvalidRequest("expiresAt must be in the future", field="expiresAt")
    batch = RedemptionBatch(
        count=body.count,
        amount_nanos=body.amountUsd.nanos,
        balance=body.balance,
        plan=body.plan,
        expires_at=body.expiresAt,
        note=body.note,
        created_by=actor,
        created_at=now,
    )
    session.add(batch)
    await session.flush()
    codes = [new_code() for _ in range(body.count)]
    session.add_all(
        RedemptionCode(batch_id=batch.id, code_digest=code_digest(code), last4=code[-4:]) for code in codes
    )
    try:
        await session.flush()
    except IntegrityError as exc:  # two equal codes out of 2^140: the CSPRNG is broken, refuse loudly
        raise Conflict("Generated a duplicate code; nothing was created") from exc
    await record_audit(
        session,
        state,
        actor=actor,
        action="redemption.create",
        target=f"batch:{batch.id}",
        after=BatchView.of(batch, used=0, voided=0).model_dump(mode="json"),
    )
    return batch, codes


async def list_batches(session: AsyncSession) -> list[BatchView]:
    """Every batch, newest first, with how many of its codes were used and voided."""
    used = func.sum(case((RedemptionCode.used_at.is_not(None), 1), else_=0))
    voided = func.sum(case((RedemptionCode.voided_at.is_not(None), 1), else_=0))
    rows = await session.execute(
        select(RedemptionBatch, func.coalesce(used, 0), func.coalesce(voided, 0))
        .outerjoin(RedemptionCode, RedemptionCode.batch_id == RedemptionBatch.id)
        .group_by(RedemptionBatch.id)
        .order_by(RedemptionBatch.id.desc())
    )
    return [BatchView.of(batch, used=int(u), voided=int(v)) for batch, u, v in rows]


async def void_codes(
    session: AsyncSession, state: AppState, batch_id: int, *, code: str | None, actor: str
) -> int:
    """Void the batch's unused codes (or only `code`, when given); how many were voided."""
    batch = await session.get(RedemptionBatch, batch_id)
    if batch is None:
        raise NotFound("No such batch", field="batchId")
    condition = and_(
        RedemptionCode.batch_id == batch_id,
        RedemptionCode.used_at.is_(None),
        RedemptionCode.voided_at.is_(None),
    )
    if code is not None:
        canonical = normalize(code)
        if canonical is None:
            raise InvalidCode(field="code")
        condition = and_(condition, RedemptionCode.code_digest == code_digest(canonical))
    result = await session.execute(
        update(RedemptionCode)
        .where(condition)
        .values(voided_at=state.clock.now())
        .execution_options(synchronize_session=False)
    )
    voided = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if code is not None and voided == 0:
        raise InvalidCode("That code is not an unused code of this batch", field="code")
    await record_audit(
        session,
        state,
        actor=actor,
        action="redemption.void",
        target=f"batch:{batch_id}",
        after={"voided": voided, "code": f"…{code.strip()[-4:]}" if code else None},
    )
    return voided


async def redeem(state: AppState, session: AsyncSession, user_id: int, text: str, address: str) -> Redeemed:
    """Use one code for `user_id`, exactly once: its money (ledger `redeem`) or its plan (SPEC §5).

    Throttled before anything else: each attempt counts against the user and the address (atomically, so
    parallel guesses cannot all pass), a success gives it back. A text that cannot be a code is refused
    without a database lookup. Unknown, used, voided and expired codes all answer the same `invalid_code`.
    """
    await _count_attempt(state, user_id, address)
    canonical = normalize(text)
    if canonical is None:
        raise InvalidCode("This is not a redemption code (TRL-XXXXXXX-XXXXXXX-XXXXXXX-XXXXXXX)", field="code")
    now = state.clock.now()
    live_batches = select(RedemptionBatch.id).where(
        or_(RedemptionBatch.expires_at.is_(None), RedemptionBatch.expires_at > now)
    )
    won = (
        await session.execute(
            update(RedemptionCode)
            .where(
                RedemptionCode.code_digest == code_digest(canonical),
                RedemptionCode.used_at.is_(None),
                RedemptionCode.voided_at.is_(None),
                RedemptionCode.batch_id.in_(live_batches),
            )
            .values(used_at=now, used_by=user_id)
            .returning(RedemptionCode.batch_id, RedemptionCode.last4)
            .execution_options(synchronize_session=False)
        )
    ).one_or_none()
    if won is None:
        raise InvalidCode(field="code")
    batch_id, last4 = won
    batch = await session.get_one(RedemptionBatch, batch_id)
    user = await session.get_one(User, user_id, with_for_update=True)
    before = _balances(user)
    actor = f"redeem:batch-{batch.id}"
    if batch.plan is not None:
        await change_plan(session, state, user, await _plan(session, batch.plan), actor)
    else:
        amount = Money(batch.amount_nanos)
        await apply_adjustment(
            session,
            user_id=user_id,
            credits_delta=amount if batch.balance == "credits" else Money.ZERO,
            ref_credits_delta=amount if batch.balance == "refCredits" else Money.ZERO,
            kind=REDEEM,
            reason=f"redemption code …{last4} of batch {batch.id}",
            actor=actor,
            when=now,
        )
    await record_audit(
        session,
        state,
        actor=user.username,
        action="redemption.redeem",
        target=f"batch:{batch.id}",
        before=before,
        after={**_balances(user), "code": f"…{last4}"},
    )
    await state.limits.release(f"redeem:user:{user_id}")
    await state.limits.release(f"redeem:addr:{address}")
    return Redeemed(batch=batch, user=user)


async def _count_attempt(state: AppState, user_id: int, address: str) -> None:
    limit = state.settings.redeem_failures_per_hour
    user_key, address_key = f"redeem:user:{user_id}", f"redeem:addr:{address}"
    decision = await state.limits.hit(user_key, limit, _HOUR_S)
    if decision.allowed:
        by_address = await state.limits.hit(address_key, limit, _HOUR_S)
        if not by_address.allowed:
            await state.limits.release(user_key)
            decision = by_address
    if not decision.allowed:
        raise TooManyWrongCodes(retry_after_s=int(decision.retry_after_s + 0.999))


async def _plan(session: AsyncSession, name: str) -> Plan:
    plan = await find_plan(session, name)
    if plan is None:  # the foreign key keeps the batch's plan
        raise InvalidCode(field="code")
    return plan


def _balances(user: User) -> dict[str, object]:
    return {
        "plan": user.plan,
        "credits": Money(user.credits_nanos).to_json(),
        "refCredits": Money(user.ref_credits_nanos).to_json(),
    }
