"""Reading a `POST /v1/responses` body: just enough to route, bound, bill and store it; the rest is
forwarded as is (or translated). Each bad field is a 400 naming it, before anything is held."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from trollllm.errors import InvalidRequest

MAX_OUTPUT_TOKENS_CEILING = 10_000_000
# Tools the provider runs and bills per use beyond tokens; nothing on a model row prices them (web search
# is priced when the row says so: `trollllm.pricing.features.refuse_unpriced`).
_UNPRICED_TOOLS = ("file_search", "code_interpreter", "image_generation")
_WEB_SEARCH = "web_search"
# Fields that point at state kept by an upstream account: a self-contained request cannot carry them.
_UPSTREAM_STATE_FIELDS = {
    "conversation": "the gateway keeps no conversations; continue with `previous_response_id`",
}


@dataclass(slots=True)
class ResponsesRequest:
    """A parsed Responses request: the body and what the gateway acts on."""

    body: dict[str, Any]
    model_id: str
    stream: bool
    store: bool
    previous_response_id: str | None
    max_output_tokens: int | None
    web_search: bool
    """The request offers the `web_search` tool (billed per search where the model row prices it)."""

    @property
    def input_items(self) -> list[Any]:
        """The request's own `input` as a list of items (a string is one user message)."""
        return as_items(self.body.get("input"))


def as_items(value: object) -> list[Any]:
    """`input` as items: a string is the user message it stands for; no input is no items."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    assert isinstance(value, list)
    return value


def parse_responses_request(raw: bytes) -> ResponsesRequest:
    """Parse and check a Responses request (400 naming the field otherwise)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest("Request body is not valid JSON", field="body") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object", field="body")
    model = body.get("model")
    if not isinstance(model, str) or not model or len(model) > 128:
        raise InvalidRequest("`model` is required and must be a model id string", field="model")
    previous = body.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous or len(previous) > 64):
        raise InvalidRequest("`previous_response_id` must be a response id", field="previous_response_id")
    items = body.get("input")
    if not isinstance(items, str | list) or (not items and previous is None):
        raise InvalidRequest("`input` is required: a string or a non-empty array of items", field="input")
    if isinstance(items, list) and not all(isinstance(item, dict) for item in items):
        raise InvalidRequest("`input` items must be objects", field="input")
    if body.get("background") not in (None, False):
        raise InvalidRequest(
            "`background` responses are not available here; send the request without it (or stream it)",
            field="background",
        )
    for name, why in _UPSTREAM_STATE_FIELDS.items():
        if body.get(name) is not None:
            raise InvalidRequest(f"`{name}` is not available here: {why}", field=name)
    stream = _flag(body, "stream", default=False)
    store = _flag(body, "store", default=True)
    limit = body.get("max_output_tokens")
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_OUTPUT_TOKENS_CEILING
    ):
        raise InvalidRequest(
            "`max_output_tokens` must be an integer between 1 and the model's maximum output",
            field="max_output_tokens",
        )
    web_search = _check_tools(body.get("tools"))
    return ResponsesRequest(body, model, stream, store, previous, limit, web_search)


def web_searches_bound(request: ResponsesRequest, upstream_max_uses: int) -> int:
    """The web searches a request offering `web_search` may run: the translated upstream tool's own bound
    (`upstream_max_uses`, 0 when none), else the request's `max_tool_calls`, else 10 (SPEC §6)."""
    if upstream_max_uses > 0:
        return upstream_max_uses
    limit = request.body.get("max_tool_calls")
    return limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else 10


def _flag(body: dict[str, Any], name: str, *, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidRequest(f"`{name}` must be a boolean", field=name)
    return value


def _check_tools(tools: object) -> bool:
    """Refuse tools billed per use that nothing prices; True when `web_search` is among them."""
    if tools is None:
        return False
    if not isinstance(tools, list):
        raise InvalidRequest("`tools` must be an array", field="tools")
    web_search = False
    for index, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(kind, str):
            raise InvalidRequest("each tool needs a `type`", field=f"tools[{index}].type")
        if kind.startswith(_UNPRICED_TOOLS):
            raise InvalidRequest(
                f"tool `{kind}` is billed per use by the provider and is not available here",
                field=f"tools[{index}].type",
            )
        web_search = web_search or kind.startswith(_WEB_SEARCH)
    return web_search


def url_media_items(items: list[Any]) -> int:
    """Input images and files the upstream fetches itself (by URL or uploaded file id): their tokens are
    not in the request's bytes."""
    count = 0
    for item in items:
        content = item.get("content") if isinstance(item, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "input_image":
                url = part.get("image_url")
                count += (isinstance(url, str) and not url.startswith("data:")) or "file_id" in part
            elif kind == "input_file":
                count += "file_id" in part or "file_url" in part
    return count
