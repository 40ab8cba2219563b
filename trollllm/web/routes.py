"""The user pages: `/`, `/login`, `/register`, `/logout` and `/dashboard` (SPEC §8).

Pages read through the same services as the JSON API and render on the server; the few live actions on a
page (reveal, copy, rotate) call the JSON API with the session cookie and the CSRF header.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from trollllm.accounts.apikeys import live_api_key
from trollllm.accounts.invites import Invite
from trollllm.accounts.schemas import Credentials
from trollllm.accounts.service import admit_registration, authenticate, client_address, create_user
from trollllm.accounts.sessions import clear_session_cookies, issue_token, set_session_cookies
from trollllm.accounts.tables import User
from trollllm.accounts.timezones import zone_of
from trollllm.byok.service import providers, saved_keys
from trollllm.errors import GatewayError, InviteRequired, RegistrationClosed
from trollllm.payments.registration import welcome_new_user
from trollllm.plans.user_routes import current_account, usage_percentage
from trollllm.pricing.service import enabled_models
from trollllm.state import get_state
from trollllm.web.render import page
from trollllm.web.session import csrf_token, form_csrf_ok, page_user, read_form, remember_csrf
from trollllm.web.snippets import first_call_snippets
from trollllm.web.usage_chart import NARROW, chart_geometry, daily_usage
from trollllm.web.usage_windows import window_bars

router = APIRouter(include_in_schema=False)

_EXPIRY_WARNING_DAYS = 7
_FIELD_HINTS = {
    "username": "3 to 32 letters, digits, '.', '_' or '-'",
    "password": "8 to 128 characters",
}


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _auth_page(request: Request, template: str, status_code: int = 200, **context: object) -> Response:
    token = csrf_token(request)
    response = page(template, status_code, csrf=token, **context)
    remember_csrf(request, response, token)
    return response


@router.get("/")
async def home(request: Request) -> Response:
    """Signed in → the dashboard; otherwise the login page."""
    return _redirect("/dashboard" if await page_user(request) else "/login")


@router.get("/login")
async def login_page(request: Request) -> Response:
    """The login form."""
    if await page_user(request):
        return _redirect("/dashboard")
    return _auth_page(request, "login.html", username="", errors={})


@router.post("/login")
async def login_submit(request: Request) -> Response:
    """Check the form; on success set the session cookies and go to the dashboard."""
    form = await read_form(request)
    username = form.get("username", "")
    if not form_csrf_ok(request, form.get("csrf", "")):
        return _auth_page(request, "login.html", 403, username=username, errors=_expired_form())
    state = get_state(request)
    try:
        user = await authenticate(state, username, form.get("password", ""), client_address(request))
    except GatewayError as error:
        return _auth_page(
            request, "login.html", error.status_code, username=username, errors={"password": error.message}
        )
    return _signed_in(request, user)


@router.get("/register")
async def register_page(request: Request) -> Response:
    """The registration form (with an invite field when registration is by invite; none when closed)."""
    if await page_user(request):
        return _redirect("/dashboard")
    return _register_page(
        request, 200, username="", invite=request.query_params.get("ref", "")[:64], errors={}
    )


@router.post("/register")
async def register_submit(request: Request) -> Response:
    """Create the account (free plan, with an API key) and sign it in; errors sit next to their field."""
    form = await read_form(request)
    username, code = form.get("username", ""), form.get("invite", "").strip()
    if not form_csrf_ok(request, form.get("csrf", "")):
        return _register_page(request, 403, username=username, invite=code, errors=_expired_form())
    errors: dict[str, str] = {}
    try:
        credentials = Credentials(username=username, password=form.get("password", ""))
    except ValidationError as invalid:
        errors = {str(issue["loc"][0]): _FIELD_HINTS[str(issue["loc"][0])] for issue in invalid.errors()}
    if form.get("password", "") != form.get("confirm", ""):
        errors.setdefault("confirm", "The passwords do not match")
    if errors:
        return _register_page(request, 400, username=username, invite=code, errors=errors)
    state = get_state(request)
    try:
        # The page's one code field may hold either kind of invite.
        invite = Invite(referral_code=code or None, redemption_code=code or None)
        await admit_registration(state, client_address(request), invite)
        user, _issued = await create_user(state, credentials.username, credentials.password)
        await welcome_new_user(state, user.id, code or None, client_address(request))
    except GatewayError as error:
        field = "invite" if isinstance(error, InviteRequired) else error.field
        field = field if field in (*_FIELD_HINTS, "invite") else "username"
        return _register_page(
            request, error.status_code, username=username, invite=code, errors={field: error.message}
        )
    return _signed_in(request, user)


def _register_page(request: Request, status_code: int, **context: object) -> Response:
    registration = get_state(request).settings.registration
    closed = RegistrationClosed.default_message
    return _auth_page(
        request, "register.html", status_code, registration=registration, closed_message=closed, **context
    )


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Clear the session cookies and go to the login page."""
    form = await read_form(request)
    if not form_csrf_ok(request, form.get("csrf", "")):
        return _redirect("/dashboard")
    response = _redirect("/login")
    clear_session_cookies(get_state(request).settings, response)
    return response


@router.get("/dashboard")
async def dashboard(request: Request) -> Response:
    """The API key card, the billing card, the usage chart and the first-call examples; the free-tier banner
    (for an administrator, a link to the admin pages instead)."""
    user = await page_user(request)
    if user is None:
        return _redirect("/login")
    state = get_state(request)
    user, plan = await current_account(state, user)  # a due expiry or monthly reset first, as the API does
    async with state.sessions() as session:
        key = await live_api_key(session, user.id)
        now = state.clock.now()
        days = await daily_usage(session, user.id, now, zone_of(user.time_zone))
        names = {row.name: row.display_name for row in await providers(session)}
        saved = await saved_keys(session, user.id)
        own_keys = [names.get(key.provider, key.provider) for key in saved]
        models = await enabled_models(session)  # the snippets name a real model (translation: any endpoint)
    if not plan.api_access:  # free: only a model of one of their own provider keys would be admitted
        own_providers = {key.provider for key in saved}
        models = [model for model in models if model.provider in own_providers]
    model_id = models[0].model_id if models else None
    base_url = str(request.base_url).rstrip("/")
    expires = user.plan_expires_at
    days_left = None if expires is None else (expires - now).days
    limit = plan.monthly_token_limit
    return page(
        "dashboard.html",
        user=user,
        plan=plan,
        csrf=csrf_token(request),
        key_last4=key.last4 if key else None,
        key_created=key.created_at if key else None,
        is_free=not plan.api_access,
        expiry_soon=days_left is not None and 0 <= days_left < _EXPIRY_WARNING_DAYS,
        days_left=days_left,
        monthly_limit=limit,
        usage_percent=usage_percentage(user.monthly_tokens_used, limit),
        tokens_remaining=None if limit is None else max(limit - user.monthly_tokens_used, 0),
        own_keys=own_keys,
        model_id=model_id,
        # No examples that would answer 403: the upgrade path instead (SPEC §8).
        snippets=first_call_snippets(base_url, model_id) if plan.api_access or model_id else [],
        chart=chart_geometry(days),
        charts=[chart_geometry(days), chart_geometry(days, NARROW)],
        windows=await window_bars(state, user.id, plan, now),
        current="dashboard",
    )


def _signed_in(request: Request, user: User) -> Response:
    response = _redirect("/dashboard")
    set_session_cookies(get_state(request), response, issue_token(get_state(request), user))
    return response


def _expired_form() -> dict[str, str]:
    return {"form": "The form expired; please try again"}
