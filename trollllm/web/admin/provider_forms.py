"""The providers section of `/admin/pricing`: every provider row editable in place (display name, wire
format, API root, `responsesApi`), and a form to add one.

Checked with the operator API's own schemas (`trollllm.providers.schemas`) and written by its service,
audit entry included; after a write the model catalog and the upstream pool are invalidated on every
instance, as the API does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from trollllm.db import transaction
from trollllm.errors import GatewayError, NotFound
from trollllm.providers import service
from trollllm.providers.schemas import NewProvider, ProviderFields
from trollllm.state import AppState, get_state
from trollllm.web.admin.access import admin_form, done, field_errors
from trollllm.web.admin.pricing import render_pricing

router = APIRouter(include_in_schema=False)

HINTS = {
    "name": "1 to 32 lowercase letters, digits, '_' or '-', starting with a letter or digit",
    "displayName": "1 to 64 characters, or blank for the name",
    "wireFormat": "openai (chat completions) or anthropic (messages)",
    "baseUrl": "An http(s) API root, e.g. https://api.deepseek.com/v1",
}
_FIELDS = ("name", "displayName", "wireFormat", "baseUrl", "responsesApi")


def _body(form: Mapping[str, str]) -> dict[str, Any]:
    """The API body a provider form stands for (a blank display name is the name)."""
    return {
        "name": form.get("name", "").strip(),
        "displayName": form.get("displayName", "").strip() or None,
        "wireFormat": form.get("wireFormat", ""),
        "baseUrl": form.get("baseUrl", "").strip(),
        "responsesApi": form.get("responsesApi") == "on",
    }


def _typed(form: Mapping[str, str]) -> dict[str, str]:
    return {name: form.get(name, "") for name in _FIELDS}


def _refusal(error: GatewayError) -> dict[str, str]:
    field = error.field or "form"
    message = error.message.removeprefix(f"{field}: ")
    return {field: message[:1].upper() + message[1:]}


async def _invalidate(state: AppState) -> None:
    await state.invalidation.publish("models")
    await state.invalidation.publish("upstream")


@router.post("/admin/pricing/providers")
async def add_provider(request: Request) -> Response:
    """Add a provider; every refusal is shown next to its field, the form keeps what was typed."""
    posted = await admin_form(request)
    if isinstance(posted, Response):
        return posted
    user, form = posted
    typed = _typed(form)
    try:
        body = NewProvider.model_validate(_body(form))
    except ValidationError as invalid:
        errors = field_errors(invalid, HINTS, form)
        return await render_pricing(request, user, 400, new_provider=typed, new_provider_errors=errors)
    state = get_state(request)
    try:
        async with transaction(state.sessions) as session:
            await service.create_provider(session, state, user.username, body)
    except GatewayError as error:
        return await render_pricing(
            request, user, error.status_code, new_provider=typed, new_provider_errors=_refusal(error)
        )
    await _invalidate(state)
    return done("/admin/pricing", f"Added provider {body.name}")


@router.post("/admin/pricing/providers/save")
async def save_provider(request: Request) -> Response:
    """Replace one provider's fields from its row; a refusal is shown in that row."""
    posted = await admin_form(request)
    if isinstance(posted, Response):
        return posted
    user, form = posted
    name = form.get("name", "")
    errors: dict[str, str] = {}
    try:
        body = ProviderFields.model_validate(_body(form))
    except ValidationError as invalid:
        errors = field_errors(invalid, HINTS, form)
    state = get_state(request)
    if not errors:
        try:
            async with transaction(state.sessions) as session:
                await service.replace_provider(session, state, user.username, name, body)
        except NotFound as missing:
            return await render_pricing(request, user, 404, error=missing.message)
        except GatewayError as error:
            errors = _refusal(error)
        else:
            await _invalidate(state)
            return done("/admin/pricing", f"Saved provider {name}")
    return await render_pricing(
        request, user, 400, provider_errors={name: errors}, provider_values={name: _typed(form)}
    )
