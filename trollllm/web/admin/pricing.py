"""`/admin/pricing`: every model row editable in place, and a form to add one, validated inline.

Rows are plain forms (one per model, its inputs tied to it by the `form` attribute) posted to the page,
checked with the operator API's own schemas and written by its service, audit entry included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from trollllm.accounts.tables import User
from trollllm.betas.policy import TOPIC as BETAS_TOPIC
from trollllm.betas.service import refused_values, replace_refused
from trollllm.db import transaction
from trollllm.errors import GatewayError, NotFound
from trollllm.pricing import service
from trollllm.pricing.schemas import ModelFields, NewModel
from trollllm.pricing.tables import DEFAULT_URL_MEDIA_TOKENS, LlmModel
from trollllm.providers.known import provider_names
from trollllm.providers.service import list_providers
from trollllm.state import get_state
from trollllm.web.admin.access import REQUIRED, admin_form, admin_page, admin_view, done, parse_int
from trollllm.web.render import usd_number

router = APIRouter(include_in_schema=False)

PRICE_FIELDS = ("inputPricePerMTok", "outputPricePerMTok", "cacheWritePricePerMTok", "cacheHitPricePerMTok")
_PRICE_HINT = "A price in USD per million tokens, 0 or more, e.g. 2.50"
HINTS = {
    "modelId": "1 to 128 letters, digits, '.', '_', ':', '/' or '-'",
    "provider": "A provider of the Providers section",
    "kind": "chat or embedding",
    "upstreamModel": "The model name sent upstream: 1 to 128 characters, no spaces",
    "maxOutputTokens": "A whole number from 1 to 1,000,000",
    "urlMediaTokens": "A whole number from 0 to 1,000,000 (0 refuses media by URL)",
    **dict.fromkeys(PRICE_FIELDS, _PRICE_HINT),
}
# The long-context tier's form fields and the API fields (inside `longContext`) they stand for.
LONG_CONTEXT_FIELDS = {
    "lcThresholdTokens": "thresholdTokens",
    "lcInputPricePerMTok": "inputPricePerMTok",
    "lcOutputPricePerMTok": "outputPricePerMTok",
    "lcCacheWritePricePerMTok": "cacheWritePricePerMTok",
    "lcCacheHitPricePerMTok": "cacheHitPricePerMTok",
}
HINTS |= {
    "displayName": "1 to 128 characters, or blank to derive it from the model ID",
    "webSearchPricePerKCalls": "USD per 1,000 searches, 0 or more; blank refuses web search",
    "lcThresholdTokens": "Input tokens past which the tier applies: a whole number from 1; blank for no tier",
    **dict.fromkeys(list(LONG_CONTEXT_FIELDS)[1:], _PRICE_HINT),
}
_REQUIRED = ("modelId", "upstreamModel", "inputPricePerMTok", "outputPricePerMTok", "maxOutputTokens")
_EXTRA_FIELDS = ("displayName", "webSearchPricePerKCalls", *LONG_CONTEXT_FIELDS)
_TEXT_FIELDS = (
    "modelId", "provider", "upstreamModel", *PRICE_FIELDS, "maxOutputTokens", "urlMediaTokens", "kind",
    *_EXTRA_FIELDS,
)  # fmt: skip


_NEW_MODEL = {
    "urlMediaTokens": str(DEFAULT_URL_MEDIA_TOKENS),
    "enabled": "on",
    "provider": "openai",
    "kind": "chat",
}


def _body(form: Mapping[str, str]) -> dict[str, Any]:
    """The API body a model form stands for (numbers parsed where they are numbers; blanks are nulls)."""
    body: dict[str, Any] = {name: form.get(name, "").strip() for name in _TEXT_FIELDS}
    for optional in ("cacheWritePricePerMTok", "cacheHitPricePerMTok"):
        body[optional] = body[optional] or "0"  # blank means free, as the API's default
    body["maxOutputTokens"] = parse_int(form, "maxOutputTokens")
    body["urlMediaTokens"] = parse_int(form, "urlMediaTokens")
    body["enabled"] = form.get("enabled") == "on"
    body["kind"] = body["kind"] or "chat"  # the API's default
    body["displayName"] = body["displayName"] or None
    body["webSearchPricePerKCalls"] = body["webSearchPricePerKCalls"] or None
    tier = {api: body.pop(name) for name, api in LONG_CONTEXT_FIELDS.items()}
    body["longContext"] = None
    if any(tier.values()):  # a tier is whole: a blank threshold or price is refused, not dropped
        tier["thresholdTokens"] = parse_int(form, "lcThresholdTokens")
        tier["cacheWritePricePerMTok"] = tier["cacheWritePricePerMTok"] or "0"
        tier["cacheHitPricePerMTok"] = tier["cacheHitPricePerMTok"] or "0"
        body["longContext"] = tier
    return body


def field_errors(
    invalid: ValidationError, hints: Mapping[str, str], form: Mapping[str, str]
) -> dict[str, str]:
    """Pydantic's errors as one message per form field (`longContext.x` is the tier's field on the form)."""
    by_api = {api: name for name, api in LONG_CONTEXT_FIELDS.items()}
    errors: dict[str, str] = {}
    for issue in invalid.errors():
        loc = issue["loc"]
        name = str(loc[0]) if loc else "form"
        if name == "longContext" and len(loc) > 1:
            name = by_api.get(str(loc[1]), "lcThresholdTokens")
        if name in errors:
            continue
        empty = issue["type"] == "missing" or not form.get(name, "").strip()
        errors[name] = REQUIRED if empty else hints.get(name, str(issue["msg"]))
    return errors


def shown_values(model: LlmModel) -> dict[str, Any]:
    """A model row's form values as the page shows them (blank for a null)."""

    def price(nanos: int | None) -> str:
        return "" if nanos is None else usd_number(nanos)

    return {
        "provider": model.provider,
        "upstreamModel": model.upstream_model,
        "inputPricePerMTok": usd_number(model.input_price_nanos),
        "outputPricePerMTok": usd_number(model.output_price_nanos),
        "cacheWritePricePerMTok": usd_number(model.cache_write_price_nanos),
        "cacheHitPricePerMTok": usd_number(model.cache_hit_price_nanos),
        "maxOutputTokens": model.max_output_tokens,
        "urlMediaTokens": model.url_media_tokens,
        "kind": model.kind,
        "enabled": "on" if model.enabled else "",
        "displayName": model.display_name or "",
        "webSearchPricePerKCalls": price(model.web_search_price_nanos),
        "lcThresholdTokens": model.long_context_threshold_tokens or "",
        "lcInputPricePerMTok": price(model.long_context_input_price_nanos),
        "lcOutputPricePerMTok": price(model.long_context_output_price_nanos),
        "lcCacheWritePricePerMTok": price(model.long_context_cache_write_price_nanos),
        "lcCacheHitPricePerMTok": price(model.long_context_cache_hit_price_nanos),
    }


def _missing(form: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    return {name: "Required" for name in names if not form.get(name, "").strip()}


def _refusal(error: GatewayError) -> dict[str, str]:
    field = error.field or "form"
    message = error.message.removeprefix(f"{field}: ")
    if field.startswith("longContext."):  # the service names the API field: show it on the tier's input
        field = {api: name for name, api in LONG_CONTEXT_FIELDS.items()}.get(field[12:], "lcThresholdTokens")
    return {field: message[:1].upper() + message[1:]}


@dataclass(frozen=True, slots=True)
class ModelRow:
    """One model in the page's two tables (each row's inputs belong to the form `form_id`): its values as
    typed when that row was refused, else as stored, and its errors."""

    model_id: str
    form_id: str
    values: Mapping[str, Any]
    errors: Mapping[str, str]


async def render_pricing(
    request: Request,
    user: User,
    status_code: int = 200,
    *,
    new: Mapping[str, str] | None = None,
    new_errors: dict[str, str] | None = None,
    row_errors: dict[str, dict[str, str]] | None = None,
    row_values: dict[str, Mapping[str, str]] | None = None,
    error: str | None = None,
    betas_error: str | None = None,
    **provider_forms: Any,
) -> Response:
    """The page; `provider_forms` are the providers section's typed values and errors
    (`trollllm.web.admin.provider_forms`)."""
    state = get_state(request)
    async with state.sessions() as session:
        models = await service.list_models(session)
        providers = await provider_names(session)  # rows of `providers`: adding one is data, not code
        provider_rows = await list_providers(session)
        refused = await refused_values(session)
    forms: dict[str, Any] = {
        "new_provider": {"wireFormat": "openai"},
        "new_provider_errors": {},
        "provider_errors": {},
        "provider_values": {},
    }
    return admin_view(
        request,
        "admin/pricing.html",
        user,
        "admin-pricing",
        status_code,
        models=[
            ModelRow(
                model.model_id,
                f"model-{index}",
                (row_values or {}).get(model.model_id) or shown_values(model),
                (row_errors or {}).get(model.model_id, {}),
            )
            for index, model in enumerate(models, start=1)
        ],
        providers=providers,
        provider_options=[(provider, provider) for provider in providers],
        new=new or _NEW_MODEL,
        new_errors=new_errors or {},
        error=error,
        refused_betas="\n".join(refused),
        forwarded_betas=state.betas.tally.last_24h(),
        betas_error=betas_error,
        provider_rows=provider_rows,
        **(forms | provider_forms),
    )


@router.get("/admin/pricing")
async def pricing_page(request: Request) -> Response:
    """The models table (prices in USD per million tokens) and the add form."""
    user = await admin_page(request)
    if isinstance(user, Response):
        return user
    return await render_pricing(request, user)


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
        return await render_pricing(request, user, 400, new=values, new_errors=errors)
    state = get_state(request)
    try:
        async with transaction(state.sessions) as session:
            await service.create_model(session, state, user.username, body)
    except GatewayError as error:
        return await render_pricing(request, user, error.status_code, new=values, new_errors=_refusal(error))
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
            return await render_pricing(request, user, 404, error=missing.message)
        except GatewayError as error:
            errors = _refusal(error)
        else:
            await state.invalidation.publish("models")
            return done("/admin/pricing", f"Saved model {model_id}")
    return await render_pricing(
        request, user, 400 if errors else 200, row_errors={model_id: errors}, row_values={model_id: form}
    )


@router.post("/admin/pricing/betas")
async def save_refused_betas(request: Request) -> Response:
    """Replace the refused `anthropic-beta` values (one a line); a refusal is shown above the box."""
    posted = await admin_form(request)
    if isinstance(posted, Response):
        return posted
    user, form = posted
    values = [line for line in form.get("refused", "").splitlines() if line.strip()]
    state = get_state(request)
    try:
        async with transaction(state.sessions) as session:
            await replace_refused(session, state, user.username, values)
    except GatewayError as error:
        return await render_pricing(request, user, error.status_code, betas_error=error.message)
    await state.invalidation.publish(BETAS_TOPIC)
    return done("/admin/pricing", "Saved the refused anthropic-beta values")
