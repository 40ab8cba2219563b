"""`/admin/audit`: the audit log of admin writes, newest first, 20 a page, by actor and action."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from trollllm.audit.routes import AuditEntryView, page_audit
from trollllm.fields import DEFAULT_PAGE_SIZE
from trollllm.state import get_state
from trollllm.web.admin.access import admin_page, admin_view, page_number
from trollllm.web.history import page_numbers

router = APIRouter(include_in_schema=False)

_MAX_FILTER = 64
_MAX_VALUE_TEXT = 80


@dataclass(frozen=True, slots=True)
class Change:
    """One field an admin write changed: its name, and its value before and after as short text (None when
    the thing did not exist before, or no longer exists after)."""

    field: str
    before: str | None
    after: str | None


def _text(value: Any) -> str:
    text = "—" if value is None else value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= _MAX_VALUE_TEXT else text[: _MAX_VALUE_TEXT - 1] + "…"


def changes(entry: AuditEntryView) -> list[Change]:
    """The fields whose value differs between the entry's before and after snapshots (all of a creation's
    or deletion's fields)."""
    before = entry.before if isinstance(entry.before, dict) else {}
    after = entry.after if isinstance(entry.after, dict) else {}
    fields = list(dict.fromkeys([*before, *after]))
    return [
        Change(
            field,
            _text(before.get(field)) if entry.before is not None else None,
            _text(after.get(field)) if entry.after is not None else None,
        )
        for field in fields
        if before.get(field) != after.get(field)
    ]


@router.get("/admin/audit")
async def audit_page(request: Request) -> Response:
    """Admin writes with what each changed; `actor` and `action` filter exactly."""
    admin = await admin_page(request)
    if isinstance(admin, Response):
        return admin
    query = request.query_params
    actor, action = query.get("actor", "").strip(), query.get("action", "").strip()
    error = None
    if len(actor) > _MAX_FILTER or len(action) > _MAX_FILTER:
        error, actor, action = f"Filter by at most {_MAX_FILTER} characters", "", ""
    number = page_number(request)
    async with get_state(request).sessions() as session:
        entries, total = await page_audit(
            session, page=number, limit=DEFAULT_PAGE_SIZE, actor=actor or None, action=action or None
        )
    total_pages = -(-total // DEFAULT_PAGE_SIZE)
    return admin_view(
        request,
        "admin/audit.html",
        admin,
        "admin-audit",
        entries=[(entry, changes(entry)) for entry in entries],
        total=total,
        page_number=number,
        total_pages=total_pages,
        page_numbers=page_numbers(number, total_pages),
        actor=actor,
        action=action,
        keep="&" + urlencode({"actor": actor, "action": action}),
        error=error,
    )
