"""Card top-ups and plan purchase through Stripe Checkout (SPEC §10).

`start_checkout` creates a session and records it `open`. `handle_webhook` applies a verified event once:
the event id is a primary key (a retry, or the same delivery on another instance, fails to insert and
changes nothing) and a session is granted by one conditional UPDATE `… WHERE status = 'open'`, both in the
transaction that writes the ledger. A refund or a lost dispute takes back, in proportion, what the payment
granted and the referrer's rebate, as far as the balances allow (their credit leases recalled first); what
could not be taken is the shortfall the admin sees.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from trollllm.accounts.tables import User
from trollllm.audit.service import record_audit
from trollllm.billing.leases import leases_recalled
from trollllm.billing.ledger import REFUND, TOPUP, apply_adjustment
from trollllm.db import transaction
from trollllm.errors import InvalidRequest, NotFound
from trollllm.money import NANOS_PER_USD, Money
from trollllm.payments import referrals, stripe_api
from trollllm.payments.tables import Payment, PlanPrice, StripeEvent
from trollllm.plans.service import change_plan, find_plan
from trollllm.state import AppState

logger = logging.getLogger("trollllm.payments")
NANOS_PER_CENT = NANOS_PER_USD // 100
PAID_EVENTS = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})
HANDLED_EVENTS = PAID_EVENTS | {"charge.refunded", "charge.dispute.closed"}


def require_payments(state: AppState) -> None:
    """404 unless the operator turned payments on (both Stripe secrets set)."""
    if not state.settings.payments_enabled:
        raise NotFound("Payments are not enabled on this gateway")


def topup_cents(state: AppState, amount: Decimal) -> int:
    """A top-up amount in cents, within the operator's minimum and maximum (400 naming `amountUsd`)."""
    settings = state.settings
    if amount < settings.topup_min_usd:
        raise InvalidRequest(f"The smallest top-up is ${settings.topup_min_usd}", field="amountUsd")
    if amount > settings.topup_max_usd:
        raise InvalidRequest(f"The largest top-up is ${settings.topup_max_usd}", field="amountUsd")
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise InvalidRequest("A card payment is whole cents", field="amountUsd")
    return int(cents)


async def start_checkout(
    state: AppState, user: User, *, amount: Decimal | None, plan_name: str | None, base_url: str
) -> str:
    """Create a Checkout Session for a top-up of `amount` USD or for `plan_name`; its URL."""
    require_payments(state)
    if plan_name is not None:
        async with state.sessions() as session:
            plan = await find_plan(session, plan_name)
            price = await session.get(PlanPrice, plan_name) if plan is not None else None
        if price is None:
            raise InvalidRequest(f"Plan {plan_name!r} is not for sale", field="plan")
        cents = -(-price.price_nanos // NANOS_PER_CENT)
        kind, product = "plan", f"TrollLLM plan {plan_name} (1 month)"
    else:
        assert amount is not None
        cents = topup_cents(state, amount)
        kind, product = "topup", f"TrollLLM credits ${Money(cents * NANOS_PER_CENT).format_balance()[1:]}"
    created = await stripe_api.create_checkout_session(
        state.settings,
        amount_cents=cents,
        product=product,
        success_url=f"{base_url}dashboard/billing?checkout=success",
        cancel_url=f"{base_url}dashboard/billing?checkout=cancelled",
        user_id=user.id,
        metadata={"userId": str(user.id), "kind": kind, "plan": plan_name or ""},
    )
    async with transaction(state.sessions) as session:
        session.add(
            Payment(
                user_id=user.id,
                kind=kind,
                plan=plan_name,
                amount_nanos=cents * NANOS_PER_CENT,
                amount_cents=cents,
                session_id=created.session_id,
                status="open",
                created_at=state.clock.now(),
            )
        )
    return created.url


async def handle_webhook(state: AppState, payload: bytes, signature: str | None) -> str:
    """Verify and apply one delivery; what happened (`granted`, `refunded`, `duplicate`, `ignored`)."""
    event = stripe_api.verify_event(state.settings, payload, signature)
    if event.type not in HANDLED_EVENTS:
        return "ignored"
    try:
        recalled = await _lease_holders(state, event)
        async with leases_recalled(state.leases, recalled), transaction(state.sessions) as session:
            session.add(StripeEvent(event_id=event.event_id, type=event.type, received_at=state.clock.now()))
            await session.flush()
            return await _apply(session, state, event)
    except IntegrityError:
        async with state.sessions() as session:
            if await session.get(StripeEvent, event.event_id) is not None:
                return "duplicate"
        raise


async def _lease_holders(state: AppState, event: stripe_api.VerifiedEvent) -> list[int]:
    """Where credit leases are on, the users a take-back deducts from (the payer and the referrer): their
    leases here give back what they have free first, so it meets only open requests' holds."""
    if state.leases is None or event.type in PAID_EVENTS:
        return []
    async with state.sessions() as session:
        owners = (
            await session.execute(
                select(Payment.user_id, Payment.referrer_id).where(
                    Payment.payment_intent == _text(event.object.get("payment_intent"))
                )
            )
        ).one_or_none()
    return [user_id for user_id in owners or () if user_id is not None]


async def _apply(session: AsyncSession, state: AppState, event: stripe_api.VerifiedEvent) -> str:
    obj = event.object
    if event.type in PAID_EVENTS:
        if obj.get("payment_status") != "paid":
            return "ignored"  # e.g. a bank debit still pending: `async_payment_succeeded` comes later
        return await _grant(session, state, obj)
    if event.type == "charge.refunded":
        return await _take_back(
            session, state, obj.get("payment_intent"), refunded_cents=_cents(obj.get("amount_refunded"))
        )
    if obj.get("status") != "lost":  # charge.dispute.closed, won or withdrawn: the money stays
        return "ignored"
    return await _take_back(session, state, obj.get("payment_intent"), refunded_cents=None)


async def _grant(session: AsyncSession, state: AppState, obj: dict[str, Any]) -> str:
    now = state.clock.now()
    payment = (
        await session.scalars(
            update(Payment)
            .where(Payment.session_id == str(obj.get("id")), Payment.status == "open")
            .values(status="paid", paid_at=now, payment_intent=_text(obj.get("payment_intent")))
            .returning(Payment)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
    ).one_or_none()
    if payment is None:
        return "duplicate"  # granted already (or not a session of this gateway)
    if obj.get("amount_total") is not None and _cents(obj.get("amount_total")) != payment.amount_cents:
        logger.error("stripe session %s paid %s cents, %s expected", payment.session_id,
                     obj.get("amount_total"), payment.amount_cents)  # fmt: skip
    user = await session.get_one(User, payment.user_id, with_for_update=True)
    if payment.kind == "topup":
        await apply_adjustment(
            session,
            user_id=user.id,
            credits_delta=Money(payment.amount_nanos),
            ref_credits_delta=Money.ZERO,
            kind=TOPUP,
            reason=f"card top-up (payment {payment.id})",
            actor="stripe",
            when=now,
        )
        payment.granted_nanos = payment.amount_nanos
    else:
        plan = await find_plan(session, payment.plan or "")
        if plan is None:
            raise NotFound(f"Plan {payment.plan!r} no longer exists")
        entry = await change_plan(session, state, user, plan, f"stripe:payment-{payment.id}")
        payment.granted_nanos = entry.credits_delta_nanos if entry is not None else 0
    await referrals.grant_rebate(session, state, payment)
    await session.flush()
    await record_audit(
        session, state, actor="stripe", action="payment.paid", target=f"user:{user.username}",
        after={"paymentId": payment.id, "kind": payment.kind, "plan": payment.plan,
               "amountUsd": Money(payment.amount_nanos).to_json()},
    )  # fmt: skip
    return "granted"


async def _take_back(
    session: AsyncSession, state: AppState, payment_intent: object, *, refunded_cents: int | None
) -> str:
    """Refunded `refunded_cents` in all (Stripe reports the running total), or everything when None."""
    payment = await session.scalar(
        select(Payment).where(Payment.payment_intent == _text(payment_intent)).with_for_update()
    )
    if payment is None or payment.status == "open":
        return "ignored"
    cents = payment.amount_cents if refunded_cents is None else min(refunded_cents, payment.amount_cents)
    due = payment.granted_nanos * cents // payment.amount_cents - payment.refund_due_nanos
    rebate_due = payment.rebate_nanos * cents // payment.amount_cents - payment.rebate_reversal_due_nanos
    if due > 0:
        payment.refund_due_nanos += due
        payment.refunded_nanos += await _deduct(session, state, payment.user_id, due, "credits", payment)
    if rebate_due > 0 and payment.referrer_id is not None:
        payment.rebate_reversal_due_nanos += rebate_due
        payment.rebate_reversed_nanos += await _deduct(
            session, state, payment.referrer_id, rebate_due, "refCredits", payment
        )
    if cents >= payment.amount_cents:
        payment.status = "refunded"
    await session.flush()
    return "refunded"


async def _deduct(
    session: AsyncSession, state: AppState, user_id: int, due: int, balance: str, payment: Payment
) -> int:
    """Take up to `due` from one balance, never below zero nor below open holds; what was taken."""
    user = await session.get_one(User, user_id, with_for_update=True, populate_existing=True)
    free = user.credits_nanos + user.ref_credits_nanos - user.held_nanos
    held_in = user.credits_nanos if balance == "credits" else user.ref_credits_nanos
    taken = max(0, min(due, held_in, free))
    if taken:
        await apply_adjustment(
            session,
            user_id=user_id,
            credits_delta=Money(-taken) if balance == "credits" else Money.ZERO,
            ref_credits_delta=Money(-taken) if balance == "refCredits" else Money.ZERO,
            kind=REFUND,
            reason=f"refund of payment {payment.id}"
            + (" (referral rebate)" if balance == "refCredits" else ""),
            actor="stripe",
            when=state.clock.now(),
        )
    if taken < due:
        logger.warning(
            "refund of payment %s: $%s could not be taken back", payment.id, Money(due - taken).to_json()
        )
    return taken


def _cents(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _text(value: object) -> str | None:
    if isinstance(value, dict):  # an expanded object
        value = value.get("id")
    return str(value) if value else None
