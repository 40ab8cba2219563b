"""Which route a Responses request takes (SPEC §6), chosen from its model's provider row, and the whole
input the upstream gets: with `previous_response_id`, the stored conversation, then the new items.

The upstream always gets a self-contained request (every earlier item expanded into `input`), on every
route: any factory key can serve any turn, and nothing depends on what an upstream account kept.
"""

from __future__ import annotations

from typing import Any

from trollllm.pricing.catalog import CatalogModel
from trollllm.responses.identity import ResponseIdentity
from trollllm.responses.native import NativeRoute
from trollllm.responses.request import ResponsesRequest
from trollllm.responses.sealer import ReasoningSealer
from trollllm.responses.store import StoredTurn
from trollllm.responses.translate import translate_responses_request
from trollllm.responses.translated import TranslatedRoute

# Output item types whose upstream ids mean nothing once the upstream stores nothing (`store: false`):
# sent back without them. Reasoning items keep theirs (their encrypted content names them).
_ID_DROPPED = frozenset({"message", "function_call"})


def conversation_input(previous: StoredTurn | None, own_items: list[Any]) -> list[Any]:
    """The input the upstream gets: the earlier turns (their input and output items), then this turn's."""
    if previous is None:
        return own_items
    earlier = [_without_upstream_id(item) for item in previous.conversation]
    return [*earlier, *own_items]


def _without_upstream_id(item: Any) -> Any:
    if isinstance(item, dict) and item.get("type") in _ID_DROPPED and "id" in item:
        return {key: value for key, value in item.items() if key != "id"}
    return item


def choose_route(
    model: CatalogModel,
    request: ResponsesRequest,
    input_items: list[Any],
    identity: ResponseIdentity,
    sealer: ReasoningSealer,
) -> NativeRoute | TranslatedRoute:
    """The native route for a provider row with `responsesApi`; otherwise the translation to the
    provider's chat completions or messages API (400 naming the first field it cannot carry)."""
    if model.responses_api:
        return NativeRoute(request.body, input_items, identity)
    # Without earlier turns the request's own `input` (a string stays one) is the whole input.
    body = request.body if request.previous_response_id is None else {**request.body, "input": input_items}
    return TranslatedRoute(translate_responses_request(body, model.wire, sealer), identity)
