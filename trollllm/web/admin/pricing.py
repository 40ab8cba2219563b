"""`/admin/pricing`: every model row editable in place, and a form to add one, validated inline.

Rows are plain forms (one per model, its inputs tied to it by the `form` attribute) posted to the page,
checked with the operator API's own schemas and written by its service, audit entry included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from trollllm.accounts.tables import User
from trollllm.db import transaction
from trollllm.errors import GatewayError, NotFound
from trollllm.pricing import service
from trollllm.pricing.schemas import ModelFields, NewModel
from trollllm.pricing.tables import DEFAULT_URL_MEDIA_TOKENS
from trollllm.providers.known import provider_names
from trollllm.state import get_state
from trollllm.web.admin.access import admin_form, admin_page, admin_view, done, field_errors, parse_int

router = APIRouter(include_in_schema=False)

PRICE_FIELDS = ("inputPricePerMTok", "outputPricePerMTok", "cacheWritePricePerMTok", "cacheHitPricePerMTok")
_PRICE_HINT = "A price in USD per million tokens, 0 or more, e.g. 2.50"
HINTS = {
    "modelId": "1 to 128 letters, digits, '.', '_', ':', '/' or '-'",
    "provider": "openai or anthropic",
    "upstreamModel": "The model name sent upstream: 1 to 128 characters, no spaces",
    "maxOutputTokens": "A whole number from 1 to 1,000,000",
    "urlMediaTokens": "A whole number from 0 to 1,000,000 (0 refuses media by URL)",
    **dict.fromkeys(PRICE_FIELDS, _PRICE_HINT),
}
_REQUIRED = ("modelId", "upstreamModel", "inputPricePerMTok", "outputPricePerMTok", "maxOutputTokens")
_TEXT_FIELDS = ("modelId", "provider", "upstreamModel", *PRICE_FIELDS, "maxOutputTokens", "urlMediaTokens")


def _body(form: Mapping[str, str]) -> dict[str, Any]:
    """The API body a model form stands for (numbers parsed where they are numbers)."""
    body: dict[str, Any] = {name: form.get(name, "").strip() for name in _TEXT_FIELDS}
    for optional in ("cacheWritePricePerMTok", "cacheHitPricePerMTok"):
        body[optional] = body[optional] or "0"  # blank means free, as the API's default
    body["maxOutputTokens"] = parse_int(form, "maxOutputTokens")
    body["urlMediaTokens"] = parse_int(form, "urlMediaTokens")
    body["enabled"] = form.get("enabled") == "on"
    return body


def _missing(form: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    return {name: "Required" for name in names if not form.get(name, "").strip()}


def _refusal(error: GatewayError) -> dict[str, str]:
    field = error.field or "form"
    message = error.message.removeprefix(f"{field}: ")
    return {field: message[:1].upper() + message[1:]}


async def _render(
    request: Request,
    user: User,
    status_code: int = 200,
    *,
    new: Mapping[str, str] | None = None,
    new_errors: dict[str, str] | None = None,
    row_errors: dict[str, dict[str, str]] | None = None,
    row_values: dict[str, Mapping[str, str]] | None = None,
    error: str | None = None,
) -> Response:
    async with get_state(request).sessions() as session:
        models = await service.list_models(session)
        providers = await provider_names(session)  # rows of `providers`: adding one is data, not code
    return admin_view(
        request,
        "admin/pricing.html",
        user,
        "admin-pricing",
        status_code,
        models=models,
        providers=providers,
        provider_options=[(provider, provider) for provider in providers],
        new=new or {"urlMediaTokens": str(DEFAULT_URL_MEDIA_TOKENS), "enabled": "on", "provider": "openai"},
        new_errors=new_errors or {},
        row_errors=row_errors or {},
        row_values=row_values or {},
        error=error,
    )


@router.get("/admin/pricing")
async def pricing_page(request: Request) -> Response:
    """The models table (prices in USD per million tokens) and the add form."""
    user = await admin_page(request)
    if isinstance(user, Response):
        return user
    return await _render(request, user)


@router.post("/admin/pricing")
async def add_model(request: Request) -> Response:
    """Add a model; every refusal is shown next to its field, the form keeps what was typed."""
    posted = await admin_form(request)
    if isinstance(posted, Response):
        return posted
    user, form = posted
    values = {name: form.get(name, "") for name in (*_TEXT_FIELDS, "enabled")}
    errors = _missing(form, _REQUIRED)
    try:
        body = NewModel.model_validate(_body(form))
    except ValidationError as invalid:
        errors = field_errors(invalid, HINTS, form) | errors
    if errors:
        return await _render(request, user, 400, new=values, new_errors=errors)
    state = get_state(request)
    try:
        async with transaction(state.sessions) as session:
            await service.create_model(session, state, user.username, body)
    except GatewayError as error:
        return await _render(request, user, error.status_code, new=values, new_errors=_refusal(error))
    await state.invalidation.publish("models")
    return done("/admin/pricing", f"Added model {body.modelId}")


@router.post("/admin/pricing/save")
async def save_model(request: Request) -> Response:
    """Replace one model's fields from its row; a refusal is shown in that row."""
    posted = await admin_form(request)
    if isinstance(posted, Response):
        return posted
    user, form = posted
    model_id = form.get("modelId", "")
    errors = _missing(form, _REQUIRED[1:])
    try:
        body = ModelFields.model_validate(_body(form))
    except ValidationError as invalid:
        errors = field_errors(invalid, HINTS, form) | errors
    state = get_state(request)
    if not errors:
        try:
            async with transaction(state.sessions) as session:
                await service.replace_model(session, state, user.username, model_id, body)
        except NotFound as missing:  # deleted meanwhile: there is no row to show the error in
            return await _render(request, user, 404, error=missing.message)
        except GatewayError as error:
            errors = _refusal(error)
        else:
            await state.invalidation.publish("models")
            return done("/admin/pricing", f"Saved model {model_id}")
    return await _render(
        request, user, 400 if errors else 200, row_errors={model_id: errors}, row_values={model_id: form}
    )
