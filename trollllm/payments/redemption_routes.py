"""Redemption code endpoints (SPEC §10).

- `POST /api/admin/redemption-codes` `{count, amountUsd, balance, expiresAt?, plan?, note?}` → 201
  `{batchId, codes}` (`?format=csv`: the same as a CSV attachment)
- `GET /api/admin/redemption-codes` → `{batches: [{batchId, count, used, voided, expiresAt, note, …}]}`
- `POST /api/admin/redemption-codes/{batchId}/void` `{code?}` → `{batchId, voided}`
- `POST /api/user/redeem` `{code}` → `{batchId, amountUsd, balance, plan, credits, refCredits}`
"""

from __future__ import annotations

import csv
import io
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from trollllm.accounts.service import client_address
from trollllm.accounts.sessions import CurrentAdmin, CurrentUser
from trollllm.db import transaction
from trollllm.money import Money, usd_text
from trollllm.payments import redemption
from trollllm.payments.schemas import (
    BatchList,
    CreatedBatch,
    NewBatch,
    RedeemRequest,
    RedeemResult,
    Voided,
    VoidRequest,
)
from trollllm.state import get_state

admin_router = APIRouter()
user_router = APIRouter(tags=["payments"])


@admin_router.post("/redemption-codes", status_code=201, response_model=CreatedBatch)
async def create_batch(
    body: NewBatch,
    request: Request,
    admin: CurrentAdmin,
    format: Annotated[Literal["json", "csv"], Query(description="csv: a file to download")] = "json",
) -> CreatedBatch | Response:
    """Create a batch of codes; their text is in this answer only (the gateway keeps digests)."""
    state = get_state(request)
    async with transaction(state.sessions) as session:
        batch, codes = await redemption.create_batch(session, state, body, actor=admin.username)
    if format == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["code", "batchId", "amountUsd", "balance", "plan", "expiresAt"])
        expires = batch.expires_at.isoformat() if batch.expires_at else ""
        amount = usd_text(Money(batch.amount_nanos))
        writer.writerows([code, batch.id, amount, batch.balance, batch.plan or "", expires] for code in codes)
        return Response(
            out.getvalue(),
            status_code=201,
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="redemption-codes-{batch.id}.csv"'},
        )
    return CreatedBatch(batchId=batch.id, codes=codes)


@admin_router.get("/redemption-codes", response_model=BatchList)
async def list_batches(request: Request) -> BatchList:
    """Every batch, newest first, with its used and voided counts."""
    async with get_state(request).sessions() as session:
        return BatchList(batches=await redemption.list_batches(session))


@admin_router.post("/redemption-codes/{batchId}/void", response_model=Voided)
async def void_batch(
    batchId: int, request: Request, admin: CurrentAdmin, body: VoidRequest | None = None
) -> Voided:
    """Void the batch's unused codes, or only the one named; used codes stay used."""
    state = get_state(request)
    code = body.code if body is not None else None
    async with transaction(state.sessions) as session:
        count = await redemption.void_codes(session, state, batchId, code=code, actor=admin.username)
    return Voided(batchId=batchId, voided=count)


@user_router.post("/api/user/redeem", response_model=RedeemResult)
async def redeem(body: RedeemRequest, request: Request, user: CurrentUser) -> RedeemResult:
    """Redeem a code once; 400 `invalid_code` for any code that cannot be used, 429 after wrong ones."""
    state = get_state(request)
    async with transaction(state.sessions) as session:
        done = await redemption.redeem(state, session, user.id, body.code, client_address(request))
        batch, account = done.batch, done.user
        result = RedeemResult(
            batchId=batch.id,
            amountUsd=Money(batch.amount_nanos).to_json(),
            balance=None if batch.plan else batch.balance,
            plan=batch.plan,
            credits=Money(account.credits_nanos).to_json(),
            refCredits=Money(account.ref_credits_nanos).to_json(),
        )
    return result
