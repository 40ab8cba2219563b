"""`GET/PUT /api/user/alerts` and `GET /api/user/notifications` (SPEC §11; JWT, the caller's own)."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from trollllm.accounts.sessions import CurrentUser
from trollllm.alerts.schemas import (
    ALERTS_BODY_SCHEMA,
    DEFAULT_PLAN_EXPIRY_DAYS,
    DEFAULT_USAGE_PERCENTS,
    KEEP,
    AlertSettingsView,
    NotificationsView,
    NotificationView,
    parse_alerts_update,
)
from trollllm.alerts.tables import AlertSettings, Notification
from trollllm.alerts.targets import TargetRefused, parse_webhook_url, resolve_target
from trollllm.alerts.webhooks import new_webhook_secret, webhook_secret_context
from trollllm.db import transaction
from trollllm.errors import InvalidRequest
from trollllm.money import Money
from trollllm.state import AppState, get_state

router = APIRouter(tags=["alerts"])


def _view(state: AppState, row: AlertSettings | None, secret: str | None = None) -> AlertSettingsView:
    if row is None:
        return AlertSettingsView(
            email=None,
            webhookUrl=None,
            lowBalanceUsd=None,
            planExpiryDays=DEFAULT_PLAN_EXPIRY_DAYS,
            usagePercents=list(DEFAULT_USAGE_PERCENTS),
            emailEnabled=state.settings.smtp_url is not None,
        )
    return AlertSettingsView(
        email=row.email,
        webhookUrl=row.webhook_url,
        webhookSecret=secret,
        lowBalanceUsd=None if row.low_balance_nanos is None else Money(row.low_balance_nanos).to_json(),
        planExpiryDays=row.plan_expiry_days,
        usagePercents=orjson.loads(row.usage_percents),
        emailEnabled=state.settings.smtp_url is not None,
    )


@router.get("/api/user/alerts", response_model=AlertSettingsView, response_model_exclude_none=False)
async def show_alerts(user: CurrentUser, request: Request) -> AlertSettingsView:
    """The caller's alert channels and thresholds (the defaults until set)."""
    state = get_state(request)
    async with state.sessions() as session:
        row = await session.get(AlertSettings, user.id)
    return _view(state, row)


@router.put(
    "/api/user/alerts",
    response_model=AlertSettingsView,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": ALERTS_BODY_SCHEMA}}}
    },
)
async def put_alerts(user: CurrentUser, request: Request) -> AlertSettingsView:
    """Set alert channels and thresholds; fields left out are kept, null turns one off. A new
    `webhookUrl` answers its signing secret (`webhookSecret`) in this answer only. A bad field is a 400
    naming it; a webhook URL on a private, loopback or link-local address is refused unless the operator
    allows them."""
    state = get_state(request)
    try:
        payload = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}", field="body") from exc
    update = parse_alerts_update(payload)
    allow_private = state.settings.webhook_allow_private
    if isinstance(update.webhook_url, str):
        try:
            await resolve_target(
                parse_webhook_url(update.webhook_url, allow_private=allow_private),
                allow_private=allow_private,
            )
        except TargetRefused as exc:
            raise InvalidRequest(f"webhookUrl {exc}", field="webhookUrl") from exc
    secret: str | None = None
    async with transaction(state.sessions) as session:
        row = await session.get(AlertSettings, user.id, with_for_update=True)
        if row is None:
            row = AlertSettings(
                user_id=user.id,
                plan_expiry_days=DEFAULT_PLAN_EXPIRY_DAYS,
                usage_percents=orjson.dumps(list(DEFAULT_USAGE_PERCENTS)).decode(),
            )
            session.add(row)
        if update.email is not KEEP:
            row.email = update.email  # type: ignore[assignment]
        if update.webhook_url is not KEEP:
            if update.webhook_url is None:
                row.webhook_url, row.webhook_secret_encrypted = None, None
            elif update.webhook_url != row.webhook_url or row.webhook_secret_encrypted is None:
                secret = new_webhook_secret()
                row.webhook_url = update.webhook_url  # type: ignore[assignment]
                row.webhook_secret_encrypted = state.keybox.encrypt(secret, webhook_secret_context(user.id))
        if update.low_balance is not KEEP:
            row.low_balance_nanos = None if update.low_balance is None else update.low_balance.nanos  # type: ignore[union-attr]
        if update.plan_expiry_days is not KEEP:
            row.plan_expiry_days = update.plan_expiry_days  # type: ignore[assignment]
        if update.usage_percents is not KEEP:
            row.usage_percents = orjson.dumps(list(update.usage_percents)).decode()  # type: ignore[arg-type]
        row.updated_at = state.clock.now()
    return _view(state, row, secret)


LimitParam = Annotated[int, Query(ge=1, le=100, description="how many, newest first (default 20)")]


@router.get("/api/user/notifications", response_model=NotificationsView)
async def list_notifications(
    user: CurrentUser, request: Request, limit: LimitParam = 20
) -> NotificationsView:
    """The caller's notifications, newest first (operators' alerts included for admins)."""
    async with get_state(request).sessions() as session:
        rows = await session.scalars(
            select(Notification)
            .where(Notification.user_id == user.id)
            .order_by(Notification.id.desc())
            .limit(limit)
        )
        return NotificationsView(
            notifications=[
                NotificationView(
                    id=row.id,
                    type=row.type,
                    message=row.message,
                    data=orjson.loads(row.data),
                    createdAt=row.created_at,
                )
                for row in rows
            ]
        )
