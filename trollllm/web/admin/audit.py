"""`/admin/audit`: the audit log of admin writes, newest first, 20 a page, by actor and action."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from trollllm.accounts.timezones import zone_of
from trollllm.audit.routes import AuditEntryView, page_audit
from trollllm.fields import DEFAULT_PAGE_SIZE
from trollllm.state import get_state
from trollllm.web.admin.access import admin_page, admin_view, page_number
from trollllm.web.admin.audit_text import field_label, flatten, value_text
from trollllm.web.history import page_numbers

router = APIRouter(include_in_schema=False)

_MAX_FILTER = 64


@dataclass(frozen=True, slots=True)
class Change:
    """One field an admin write changed: its name in words, and its value before and after as readable
    text (None when the thing did not exist before, or no longer exists after)."""

    field: str
    before: str | None
    after: str | None


def changes(entry: AuditEntryView, zone: tzinfo) -> list[Change]:
    """The leaves whose value differs between the entry's before and after snapshots (all of a creation's
    or deletion's), in words (`audit_text`)."""
    before = flatten(entry.before) if isinstance(entry.before, dict) else {}
    after = flatten(entry.after) if isinstance(entry.after, dict) else {}
    paths = list(dict.fromkeys([*before, *after]))
    return [
        Change(
            field_label(path),
            value_text(path, before.get(path), zone) if entry.before is not None else None,
            value_text(path, after.get(path), zone) if entry.after is not None else None,
        )
        for path in paths
        if before.get(path) != after.get(path)
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
    zone = zone_of(admin.time_zone)
    return admin_view(
        request,
        "admin/audit.html",
        admin,
        "admin-audit",
        entries=[(entry, changes(entry, zone)) for entry in entries],
        total=total,
        page_number=number,
        total_pages=total_pages,
        page_numbers=page_numbers(number, total_pages),
        actor=actor,
        action=action,
        keep="&" + urlencode({"actor": actor, "action": action}),
        error=error,
    )
