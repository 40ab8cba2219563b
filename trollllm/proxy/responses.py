"""`/v1/responses` (the OpenAI Responses API, SPEC §6): thin handlers over `trollllm.responses` and the
same gate, upstream, relay and settlement as the other endpoints (`trollllm.proxy.routes.forward`).

A stored response is written once the answer is settled and before the end of its stream reaches the
client, so a next turn sent the moment a stream ends finds it.
"""

from __future__ import annotations

import logging
import time

import orjson

from trollllm.errors import NotFound
from trollllm.pricing.features import PricedFeatures
from trollllm.proxy.fastpath import ProxyCall, ProxyHandler, ProxyResponse, RawResponse
from trollllm.proxy.gate import Caller, authenticate, presented_key
from trollllm.proxy.requests import AnswerHook, ProxyRequest
from trollllm.proxy.routes import forward
from trollllm.responses.identity import ResponseIdentity
from trollllm.responses.native import NativeRoute
from trollllm.responses.request import (
    parse_responses_request,
    url_media_items,
    web_searches_bound,
)
from trollllm.responses.routing import choose_route, conversation_input
from trollllm.responses.sealer import ReasoningSealer
from trollllm.responses.store import (
    ResponseOwner,
    StoredTurn,
    delete_response,
    load_response,
    new_response_id,
    save_response,
)
from trollllm.responses.translated import TranslatedRoute
from trollllm.state import AppState
from trollllm.wire import WireFormat

logger = logging.getLogger("trollllm.proxy")

PATH = "/v1/responses"
_JSON = (b"content-type", b"application/json")
# Each item costs a few framing tokens beyond its text; the JSON byte count already exceeds them.
_INPUT_MARGIN_TOKENS = 64


async def create_response(state: AppState, call: ProxyCall) -> ProxyResponse:
    """`POST /v1/responses`."""
    started = time.perf_counter()
    caller = await authenticate(state, presented_key(call.headers, WireFormat.RESPONSES))
    request = parse_responses_request(call.body)
    previous: StoredTurn | None = None
    if request.previous_response_id is not None:
        owner = _owner(caller)
        previous = await state.db.read(load_response(owner, request.previous_response_id, state.clock.now()))
        if previous is None:
            raise NotFound(
                f"Previous response with id '{request.previous_response_id}' not found.",
                field="previous_response_id",
            )
    input_items = conversation_input(previous, request.input_items)
    input_bytes = len(call.body) + (len(orjson.dumps(previous.conversation)) if previous else 0)
    parsed = ProxyRequest(
        wire=WireFormat.RESPONSES,
        body=request.body,
        model_id=request.model_id,
        stream=request.stream,
        requested_max_tokens=request.max_output_tokens,
        max_tokens_field="max_output_tokens",
        input_bound_tokens=input_bytes + _INPUT_MARGIN_TOKENS,
        client_wants_usage=True,
        url_media_items=url_media_items(input_items),
        preferred_key=previous.factory_key_id if previous is not None else None,
    )
    model = await state.catalog.get(request.model_id)
    if model is not None and model.enabled:  # else the gate answers 404 in its turn
        identity = ResponseIdentity(
            new_response_id(), model.model_id, request.store, request.previous_response_id
        )
        route = choose_route(model, request, input_items, identity, ReasoningSealer(state.keybox))
        if isinstance(route, TranslatedRoute):  # the upstream counts the translated body
            translated = len(route.upstream_body(model.upstream_model, 1, stream=False))
            bound = max(parsed.input_bound_tokens, translated + _INPUT_MARGIN_TOKENS)
            parsed.input_bound_tokens = bound + route.hidden_input_tokens
        parsed.translation = route
        if request.web_search:  # held for its searches; the gate refuses it where the row has no price
            upstream_max_uses = (
                route.translation.web_search_max_uses if isinstance(route, TranslatedRoute) else 0
            )
            parsed.priced = PricedFeatures(
                web_searches_bound=web_searches_bound(request, upstream_max_uses),
                web_search_field="tools",
                web_search_tool="web_search",
            )
        if request.store:
            parsed.on_answered = _storer(state, _owner(caller), route, input_items)
    return await forward(state, call, caller, parsed, started)


def _storer(
    state: AppState, owner: ResponseOwner, route: NativeRoute | TranslatedRoute, input_items: list[object]
) -> AnswerHook:
    async def store(factory_key_id: int | None) -> None:
        response = route.final_response
        if response is None:
            return
        program = save_response(owner, response, input_items, factory_key_id, state.clock.now())
        await state.db.write(program)

    return store


async def get_response(state: AppState, call: ProxyCall) -> ProxyResponse:
    """`GET /v1/responses/{id}`: a response the caller stored, else 404."""
    caller = await authenticate(state, presented_key(call.headers, WireFormat.RESPONSES))
    response_id = _id_of(call.path)
    stored = await state.db.read(load_response(_owner(caller), response_id, state.clock.now()))
    if stored is None:
        raise _not_found(response_id)
    body = orjson.dumps(stored.response)
    return RawResponse(200, body, [_JSON, (b"x-request-id", call.request_id.encode())])


async def remove_response(state: AppState, call: ProxyCall) -> ProxyResponse:
    """`DELETE /v1/responses/{id}`: deletes a response the caller stored, else 404."""
    caller = await authenticate(state, presented_key(call.headers, WireFormat.RESPONSES))
    response_id = _id_of(call.path)
    if not await state.db.write(delete_response(_owner(caller), response_id, state.clock.now())):
        raise _not_found(response_id)
    body = orjson.dumps({"id": response_id, "object": "response.deleted", "deleted": True})
    return RawResponse(200, body, [_JSON, (b"x-request-id", call.request_id.encode())])


def _owner(caller: Caller) -> ResponseOwner:
    return ResponseOwner(caller.user_id, caller.friend_key_id)


def _id_of(path: str) -> str:
    return path[len(PATH) + 1 :]


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.", field="id")


RESPONSES_ENDPOINTS: dict[str, dict[str, ProxyHandler]] = {PATH: {"POST": create_response}}
RESPONSE_BY_ID: dict[str, ProxyHandler] = {"GET": get_response, "DELETE": remove_response}
"""The handlers of `/v1/responses/{id}` (any id: one that is not the caller's is a 404)."""
