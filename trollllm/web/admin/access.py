"""Who may open an admin page, and the pieces every admin page shares: forms, field errors, notices.

An anonymous visitor is sent to `/login`. A signed-in user who is not an admin gets the "Access Denied"
page (403) that links to `/dashboard` and moves there after a moment (a meta refresh, no JavaScript
needed). Every admin form is a plain POST carrying the CSRF field; it is checked before anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from starlette.responses import HTMLResponse, RedirectResponse, Response

from trollllm.accounts.sessions import session_cookie
from trollllm.accounts.tables import User
from trollllm.errors import GatewayError
from trollllm.web.render import page
from trollllm.web.session import (
    clear_flash,
    csrf_token,
    form_csrf_ok,
    form_user,
    page_user,
    read_form,
    set_flash,
    take_flash,
)

ACCESS_DENIED_SECONDS = 3
FORM_EXPIRED = "The form expired; reload the page and try again"
REQUIRED = "Required"


def redirect(path: str) -> RedirectResponse:
    """A 303 to `path` (after a form, so a reload does not post it again)."""
    return RedirectResponse(path, status_code=303)


def _refused(user: User | None) -> Response:
    if user is None:
        return redirect("/login")
    return page(
        "admin/access_denied.html",
        403,
        user=user,
        csrf="",
        seconds=ACCESS_DENIED_SECONDS,
    )


async def admin_page(request: Request) -> User | Response:
    """The admin viewing a GET page, or the response for anyone else (login redirect, Access Denied)."""
    user = await page_user(request)
    if user is None or user.role != "admin":
        return _refused(user)
    return user


async def admin_form(request: Request) -> tuple[User, dict[str, str]] | Response:
    """The admin posting a form and its fields, or the response for anyone else (or a stale form)."""
    form = await read_form(request)
    if not session_cookie(request):
        return redirect("/login")
    if not form_csrf_ok(request, form.get("csrf", "")):
        return page("error.html", 403, upgrade=False, message=FORM_EXPIRED)
    user = await form_user(request, form)
    if user is None or user.role != "admin":
        return _refused(user)
    return user, form


def admin_view(
    request: Request, template: str, user: User, current: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """Render an admin page in the shell, with the pending notice (shown once)."""
    notice = take_flash(request)
    response = page(
        template, status_code, user=user, csrf=csrf_token(request), current=current, notice=notice, **context
    )
    clear_flash(request, response)
    return response


def done(path: str, notice: str) -> Response:
    """After a successful form: back to `path`, which shows `notice` once."""
    response = redirect(path)
    set_flash(response, notice)
    return response


def field_errors(
    invalid: ValidationError, hints: Mapping[str, str], form: Mapping[str, str]
) -> dict[str, str]:
    """Pydantic's errors as one message per form field: `Required` for an empty one, else its hint."""
    errors: dict[str, str] = {}
    for issue in invalid.errors():
        name = str(issue["loc"][0]) if issue["loc"] else "form"
        if name in errors:
            continue
        empty = issue["type"] == "missing" or not form.get(name, "").strip()
        errors[name] = REQUIRED if empty else hints.get(name, str(issue["msg"]))
    return errors


def service_error(error: GatewayError, default_field: str = "form") -> dict[str, str]:
    """A service's refusal next to the field it names (or above the form)."""
    return {error.field or default_field: error.message}


def parse_int(form: Mapping[str, str], name: str) -> int | str:
    """An integer field as an int when it is one; otherwise the text, for the schema to refuse."""
    text = form.get(name, "").strip()
    try:
        return int(text)
    except ValueError:
        return text


def page_number(request: Request) -> int:
    """The `page` query parameter, 1 when absent or not a positive number below 10 million."""
    text = request.query_params.get("page", "1")
    return int(text) if text.isdigit() and 0 < len(text) <= 7 and int(text) > 0 else 1
