"""The OpenAI Responses API wire format (``POST /v1/responses``), as the mock upstream writes it.

Items and events have the shapes of the OpenAI API (``openai.types.responses``): every stream event has
its ``sequence_number``; a reply is, in order, its reasoning item (control ``reasoning``: summary text and
``encrypted_content``), its web search calls (``web_search``), its message, then its function calls.
A request is counted and controlled through :func:`chat_view`, so the rules of :mod:`.controls` hold.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import orjson

from trollllm.mockupstream.controls import Reply, reply_pieces
from trollllm.mockupstream.openai_format import OpenAIWire

ENCRYPTED_PREFIX = "mock-encrypted:"
"""How the mock's encrypted reasoning starts; a reasoning input item with anything else is refused."""


def chat_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """A Responses body as the chat-shaped body the counting and control rules read.

    ``instructions`` is the system prompt; each input item is one message: a ``message`` with its text
    parts, a ``function_call_output`` as a user message of its output (so a tool round trip's next
    turn carries no directive: the mock answers with text), any other item (function calls, reasoning)
    as an empty assistant message. A string ``input`` is one user message.
    """
    items = body.get("input")
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    messages: list[dict[str, Any]] = []
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type", "message")
        if kind == "message":
            messages.append({"role": item.get("role", "user"), "content": _text_parts(item.get("content"))})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append({"role": "user", "content": output if isinstance(output, str) else ""})
        else:
            messages.append({"role": "assistant", "content": ""})
    view: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if body.get("instructions"):
        view["system"] = body["instructions"]
    if "tools" in body:
        view["tools"] = body["tools"]
    return view


def _text_parts(content: Any) -> Any:
    if not isinstance(content, list):
        return content
    return [
        {"type": "text", "text": part.get("text", "")}
        for part in content
        if isinstance(part, Mapping) and part.get("type") in ("input_text", "output_text", "text")
    ]


def refused_reasoning(body: Mapping[str, Any]) -> str | None:
    """What is wrong with the request's reasoning items (the mock's encrypted content must come back
    untouched), or None."""
    items = body.get("input")
    for item in items if isinstance(items, list) else ():
        if isinstance(item, Mapping) and item.get("type") == "reasoning":
            content = item.get("encrypted_content")
            if content is not None and not str(content).startswith(ENCRYPTED_PREFIX):
                return "The encrypted content for item " + str(item.get("id")) + " could not be verified."
    return None


class ResponsesWire:
    """Renders replies and errors as ``POST /v1/responses`` does."""

    name = "responses"
    id_prefix = "resp_mock"
    request_id_header = "x-request-id"

    def __init__(self) -> None:
        self._openai = OpenAIWire()

    def api_key(self, headers: Mapping[str, str]) -> str:
        """The key of ``Authorization: Bearer <key>``, or ``""``."""
        return self._openai.api_key(headers)

    def view(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """The chat-shaped view the counting and control rules read (:func:`chat_view`)."""
        return chat_view(body)

    def hidden_input_tokens(self, body: Mapping[str, Any]) -> int:
        """Input billed beyond the body's words: none on this route (no tool prompt, no PDF pages)."""
        return 0

    def max_tokens(self, body: Mapping[str, Any]) -> Any:
        """The body's ``max_output_tokens``, or ``None``."""
        return body.get("max_output_tokens")

    def validate(self, body: Mapping[str, Any]) -> str | None:
        """What is wrong with a Responses body, or ``None``."""
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "Missing required parameter: 'model'."
        if not isinstance(body.get("input"), str | list):
            return "Missing required parameter: 'input'."
        if body.get("previous_response_id") is not None and body.get("store") is False:
            return "Previous response cannot be used for this organization: store is false."
        return refused_reasoning(body)

    def error(self, status: int, message: str) -> bytes:
        """An OpenAI error body."""
        return self._openai.error(status, message)

    def completion(self, reply: Reply, body: Mapping[str, Any]) -> bytes:
        """The whole ``response`` object."""
        return orjson.dumps(self._response(reply, body, "completed", self._output(reply, body)))

    def malformed_completion(self, reply: Reply, body: Mapping[str, Any]) -> bytes:
        """A truncated, unparsable response body."""
        return self.completion(reply, body)[:40]

    def events(self, reply: Reply, body: Mapping[str, Any], *, malformed: bool = False) -> list[bytes]:
        """The SSE frames of a streamed reply (``event:`` and ``data:`` lines, no ``[DONE]``)."""
        frames = _Frames()
        frames.add("response.created", response=self._response(reply, body, "in_progress", []))
        frames.add("response.in_progress", response=self._response(reply, body, "in_progress", []))
        output = self._output(reply, body)
        for index, item in enumerate(output):
            self._item_events(frames, index, item, reply)
            if malformed and index == 0:
                frames.frames.append(b'event: response.output_text.delta\ndata: {"type": "resp\n\n')
        status = "incomplete" if reply.truncated else "completed"
        final = self._response(reply, body, status, output)
        if reply.no_usage:
            final["usage"] = None
        frames.add(f"response.{status}", response=final)
        return frames.frames

    # -- the response --------------------------------------------------------------

    def _response(
        self, reply: Reply, body: Mapping[str, Any], status: str, output: list[dict[str, Any]]
    ) -> dict[str, Any]:
        tools = body.get("tools")
        response: dict[str, Any] = {
            "id": reply.response_id,
            "object": "response",
            "created_at": reply.created,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": reply.model,
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "prompt_cache_key": body.get("prompt_cache_key"),
            "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
            "service_tier": "default",
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": tools if isinstance(tools, list) else [],
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": None,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }
        if status != "in_progress":
            response["usage"] = self._usage(reply)
        return response

    def _usage(self, reply: Reply) -> dict[str, Any]:
        input_tokens = reply.input_tokens + reply.cache_read_tokens
        output = reply.billed_output_tokens
        return {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": reply.cache_read_tokens},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
            "total_tokens": input_tokens + output,
        }

    def _output(self, reply: Reply, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        number = reply.response_id.removeprefix(self.id_prefix)
        output: list[dict[str, Any]] = []
        if reply.reasoning_tokens:
            summary = reply_pieces(min(reply.reasoning_tokens, 4))
            item: dict[str, Any] = {
                "id": f"rs_mock{number}",
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": "".join(summary)}],
            }
            include = body.get("include")
            if isinstance(include, list) and "reasoning.encrypted_content" in include:
                secret = base64.b64encode(f"{reply.response_id}:{reply.reasoning_tokens}".encode()).decode()
                item["encrypted_content"] = ENCRYPTED_PREFIX + secret
            output.append(item)
        output.extend(
            {
                "id": f"ws_mock{number}_{index}",
                "type": "web_search_call",
                "status": "completed",
                "action": {"type": "search", "query": f"mock search {index}"},
            }
            for index in range(reply.web_searches)
        )
        if reply.output_tokens or not reply.tool_calls:
            output.append(
                {
                    "id": f"msg_mock{number}",
                    "type": "message",
                    "status": "incomplete" if reply.truncated else "completed",
                    "role": "assistant",
                    "content": [_text_part(reply.text)],
                }
            )
        output.extend(
            {
                "id": f"fc_mock{number}_{call.index}",
                "type": "function_call",
                "status": "completed",
                "call_id": f"call_mock_{call.index}",
                "name": call.name,
                "arguments": call.arguments,
            }
            for call in reply.tool_calls
        )
        return output

    # -- stream events ---------------------------------------------------------------

    def _item_events(self, frames: _Frames, index: int, item: dict[str, Any], reply: Reply) -> None:
        kind = item["type"]
        item_id = item["id"]
        at = {"output_index": index, "item_id": item_id}
        if kind == "reasoning":
            frames.add("response.output_item.added", output_index=index, item={**item, "summary": []})
            for number, part in enumerate(item["summary"]):
                in_summary = {**at, "summary_index": number}
                empty = {"type": "summary_text", "text": ""}
                frames.add("response.reasoning_summary_part.added", **in_summary, part=empty)
                frames.add("response.reasoning_summary_text.delta", **in_summary, delta=part["text"])
                frames.add("response.reasoning_summary_text.done", **in_summary, text=part["text"])
                frames.add("response.reasoning_summary_part.done", **in_summary, part=part)
        elif kind == "web_search_call":
            searching = {**item, "status": "in_progress"}
            frames.add("response.output_item.added", output_index=index, item=searching)
            frames.add("response.web_search_call.in_progress", **at)
            frames.add("response.web_search_call.searching", **at)
            frames.add("response.web_search_call.completed", **at)
        elif kind == "message":
            frames.add(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "content": []},
            )
            empty_part = _text_part("")
            text_at = {**at, "content_index": 0}
            frames.add("response.content_part.added", **text_at, part=empty_part)
            for piece in reply.pieces:
                frames.add("response.output_text.delta", **text_at, delta=piece, logprobs=[])
            frames.add("response.output_text.done", **text_at, text=reply.text, logprobs=[])
            frames.add("response.content_part.done", **text_at, part=item["content"][0])
        elif kind == "function_call":
            call = reply.tool_calls[int(item_id.rsplit("_", 1)[1])]
            frames.add(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            for piece in call.argument_pieces:
                frames.add("response.function_call_arguments.delta", **at, delta=piece)
            done = {"name": call.name, "arguments": call.arguments}
            frames.add("response.function_call_arguments.done", **at, **done)
        frames.add("response.output_item.done", output_index=index, item=item)


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class _Frames:
    """SSE frames with increasing ``sequence_number`` s."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def add(self, kind: str, **fields: Any) -> None:
        payload = {"type": kind, "sequence_number": len(self.frames), **fields}
        self.frames.append(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n")
