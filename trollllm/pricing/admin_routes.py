"""Admin endpoints for model rows and prices: `GET/POST /api/admin/models`, `PUT/DELETE …/{modelId}`.

Mounted by `trollllm.admin.router` behind the admin check. A model id may contain `/`, so the path
parameter takes the rest of the path.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from trollllm.accounts.sessions import CurrentAdmin
from trollllm.db import transaction
from trollllm.pricing import service
from trollllm.pricing.schemas import ModelFields, ModelView, NewModel
from trollllm.state import get_state

router = APIRouter(tags=["admin: models"])


@router.get("/models", response_model=list[ModelView])
async def list_models(request: Request) -> list[ModelView]:
    """Every model row, enabled or not, ordered by id; prices in USD per million tokens."""
    async with get_state(request).sessions() as session:
        rows = await service.list_models(session)
    return [ModelView.of(row) for row in rows]


@router.post("/models", status_code=201, response_model=ModelView)
async def create_model(body: NewModel, admin: CurrentAdmin, request: Request) -> ModelView:
    """Add a model (409 if the id exists; 400 naming the price field for a bad price; 422 naming
    `provider` for a provider that is no row of `GET /api/admin/providers`)."""
    state = get_state(request)
    async with transaction(state.sessions) as session:
        row = await service.create_model(session, state, admin.username, body)
    await state.invalidation.publish("models")
    return ModelView.of(row)


@router.put("/models/{modelId:path}", response_model=ModelView)
async def replace_model(modelId: str, body: ModelFields, admin: CurrentAdmin, request: Request) -> ModelView:
    """Replace a model's fields (the id comes from the path; 404 if unknown)."""
    state = get_state(request)
    async with transaction(state.sessions) as session:
        row = await service.replace_model(session, state, admin.username, modelId, body)
    await state.invalidation.publish("models")
    return ModelView.of(row)


@router.delete("/models/{modelId:path}", status_code=204)
async def delete_model(modelId: str, admin: CurrentAdmin, request: Request) -> Response:
    """Delete a model (404 if unknown); requests for it answer `model_not_found` from then on."""
    state = get_state(request)
    async with transaction(state.sessions) as session:
        await service.delete_model(session, state, admin.username, modelId)
    await state.invalidation.publish("models")
    return Response(status_code=204)
