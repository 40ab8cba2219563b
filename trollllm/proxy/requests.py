"""Reading a client's request body: just enough to route, bound and bill it; the rest is forwarded as is.

No schema validation of forwarded bodies (unknown fields are kept); only the fields the gateway acts on
are checked, and each bad one is a 400 naming it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from trollllm.errors import GatewayError, InvalidRequest
from trollllm.money import INPUT_MARGIN_TOKENS, Money, TokenUsage
from trollllm.pricing.features import PricedFeatures, read_priced_features
from trollllm.proxy.hidden_input import hidden_input_tokens
from trollllm.translate import translate_request
from trollllm.wire import WireFormat

_INPUT_MARGIN_TOKENS = INPUT_MARGIN_TOKENS  # bytes + this bound a text request's input tokens (money.py)
MAX_TOKENS_CEILING = 10_000_000
MAX_CHOICES = 128


class StreamRelay(Protocol):
    """Relays one upstream stream to the client and meters it (`StreamMeter`, `TranslatedStream`, the
    Responses stream relays)."""

    events: int

    @property
    def pending_bytes(self) -> int:
        """Bytes buffered while waiting for the end of the current event."""
        ...

    def feed(self, chunk: bytes) -> bytes:
        """The client's bytes for this upstream chunk."""
        ...

    def flush(self) -> bytes:
        """The client's bytes for what is left at the end of the stream."""
        ...

    def cut(self, error: GatewayError) -> bytes:
        """The client's events ending a stream the gateway cut for `error` (the format's own error end)."""
        ...

    def billed_usage(self) -> TokenUsage:
        """What to bill for the stream."""
        ...

    def release_held(self, cost: Money | None) -> bytes:
        """The final events, held back until the cost was known."""
        ...


class UpstreamRoute(Protocol):
    """How a request goes upstream in another form than the client's and how its answer comes back: a
    chat translation (`trollllm.translate.Translation`) or a Responses route (`trollllm.responses`)."""

    @property
    def upstream_wire(self) -> WireFormat:
        """What the upstream is sent (its endpoint path: `trollllm.wire.ENDPOINTS`)."""
        ...

    @property
    def hidden_input_tokens(self) -> int:
        """Input tokens the upstream adds beyond the request's bytes (held)."""
        ...

    def upstream_body(self, upstream_model: str, max_tokens: int, stream: bool) -> bytes:
        """The body sent upstream."""
        ...

    def reply(self, raw: bytes, client_model: str) -> tuple[bytes, TokenUsage | None]:
        """A whole 2xx answer as the client gets it, and its billed usage."""
        ...

    def error(self, status: int, raw: bytes, *, message: str | None = None) -> bytes:
        """An upstream error body in the client's shape; `message` replaces the upstream's."""
        ...

    def stream(self, client_model: str, client_wants_usage: bool) -> StreamRelay:
        """The relay of the upstream's stream."""
        ...


AnswerHook = Callable[[int | None], Awaitable[None]]
"""Called with the factory key that served a request once its 2xx answer is settled, before the last
bytes of a stream reach the client (the Responses store and the conversation's key are kept there)."""


@dataclass(slots=True)
class ProxyRequest:
    """A parsed client request: the body (to forward), the model asked for and the billing bounds."""

    wire: WireFormat
    body: dict[str, Any]
    model_id: str
    stream: bool
    requested_max_tokens: int | None
    max_tokens_field: str
    input_bound_tokens: int
    client_wants_usage: bool
    hidden_input_tokens: int = 0  # billed beyond the bytes (tool prompts, PDF pages), in input_bound_tokens
    choices: int = 1  # OpenAI `n`: each choice may use the whole output bound
    url_media_items: int = 0  # images and documents sent by URL: their tokens are not in the bytes
    translation: UpstreamRoute | None = None  # set for a model of the other format (or a Responses route)
    on_answered: AnswerHook | None = None
    model_kind: str = "chat"
    """The kind of model the endpoint serves (`chat`, or `embedding` for `/v1/embeddings`)."""
    preferred_key: int | None = None
    """The factory key that served this conversation's previous turn: tried first while it is healthy."""
    priced: PricedFeatures = field(default_factory=PricedFeatures)  # spent beyond tokens (web search)
    betas: tuple[str, ...] = ()  # the `anthropic-beta` values (checked by the gate, forwarded as sent)

    def translate_to(self, upstream_wire: WireFormat) -> None:
        """Translate the request for a model of the other format (400 naming a field it cannot carry).

        The input bound covers the larger of the two bodies (the upstream counts the translated one).
        """
        translation = translate_request(self.body, self.wire)
        translated_bytes = len(orjson.dumps(translation.body)) + _INPUT_MARGIN_TOKENS
        own_bytes = self.input_bound_tokens - self.hidden_input_tokens
        self.hidden_input_tokens = translation.hidden_input_tokens  # the upstream's, not the caller's format
        self.input_bound_tokens = max(own_bytes, translated_bytes) + self.hidden_input_tokens
        self.translation = translation

    def upstream_body(self, upstream_model: str, max_tokens: int) -> bytes:
        """The body sent upstream: the upstream model name, a bounded `max_tokens`, and for OpenAI streams a
        request for the usage chunk (stripped again if the client did not ask for it)."""
        if self.translation is not None:
            return self.translation.upstream_body(upstream_model, max_tokens, self.stream)
        body = self.body
        body["model"] = upstream_model
        body[self.max_tokens_field] = max_tokens
        if self.wire is WireFormat.OPENAI and self.stream:
            options = body.get("stream_options")
            body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        return orjson.dumps(body)


def conversation_hint(body: dict[str, Any], headers: Mapping[str, str]) -> str | None:
    """What names a client's conversation (its turns stay on one factory key): `prompt_cache_key`, the
    `session-id` header (Codex CLI), Anthropic `metadata.user_id` (Claude Code), or a chat `user`."""
    for value in (body.get("prompt_cache_key"), headers.get("session-id")):
        if isinstance(value, str) and value:
            return value
    metadata = body.get("metadata")
    user = metadata.get("user_id") if isinstance(metadata, dict) else None
    if not isinstance(user, str) or not user:
        user = body.get("user")
    return "user:" + user if isinstance(user, str) and user else None


def parse_model_body(raw: bytes) -> tuple[dict[str, Any], str]:
    """A body that must be a JSON object naming a model (every `/v1` route): the object and its model id;
    a 400 naming `body` or `model` otherwise."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest("Request body is not valid JSON", field="body") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object", field="body")
    model = body.get("model")
    if not isinstance(model, str) or not model or len(model) > 128:
        raise InvalidRequest("`model` is required and must be a model id string", field="model")
    return body, model


def parse_request(raw: bytes, wire: WireFormat) -> ProxyRequest:
    """Parse and check a chat request in either wire format (400 naming the field otherwise)."""
    body, model = parse_model_body(raw)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("`messages` is required and must be a non-empty array", field="messages")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidRequest("`stream` must be a boolean", field="stream")
    field = "max_tokens"
    max_tokens = _max_tokens(body.get(field), field)
    choices = 1
    if wire is WireFormat.OPENAI:
        # Both limits present: hold by the larger (an upstream may honour either); both are forwarded as sent.
        completion = _max_tokens(body.get("max_completion_tokens"), "max_completion_tokens")
        if completion is not None and (max_tokens is None or completion >= max_tokens):
            field, max_tokens = "max_completion_tokens", completion
        choices = _choices(body.get("n"))
    priced = read_priced_features(body, wire is WireFormat.OPENAI, raw)
    # Tool prompts and PDF pages need the letters `tools` or `pdf`: most requests skip the walk.
    hidden = hidden_input_tokens(body, wire) if b'"tools"' in raw or b"pdf" in raw else 0
    client_wants_usage = False
    if wire is WireFormat.OPENAI:
        options = body.get("stream_options")
        if options is not None and not isinstance(options, dict):
            raise InvalidRequest("`stream_options` must be an object", field="stream_options")
        client_wants_usage = bool(options and options.get("include_usage") is True)
    return ProxyRequest(
        wire=wire,
        body=body,
        model_id=model,
        stream=stream,
        requested_max_tokens=max_tokens,
        max_tokens_field=field,
        input_bound_tokens=len(raw) + _INPUT_MARGIN_TOKENS + hidden,
        client_wants_usage=client_wants_usage,
        hidden_input_tokens=hidden,
        choices=choices,
        priced=priced,
        # A URL item needs the letters `url` or `file_id` in the body: most requests skip the walk.
        url_media_items=_url_media_items(messages, wire) if b"url" in raw or b"file_id" in raw else 0,
    )


def _url_media_items(messages: list[Any], wire: WireFormat) -> int:
    """Content parts whose media the upstream fetches itself (by URL or uploaded file id).

    OpenAI: `image_url` parts with an http(s) URL (a `data:` URL is inline, in the bytes), `file` parts
    with a `file_id`. Anthropic: `image` and `document` parts whose source is a `url` or a `file`,
    including those nested in `tool_result` content.
    """
    count = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            count += _url_parts(content, wire)
    return count


def _url_parts(parts: list[Any], wire: WireFormat) -> int:
    count = 0
    for part in parts:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if wire is WireFormat.OPENAI:
            if kind == "image_url":
                image = part.get("image_url")
                url = image.get("url") if isinstance(image, dict) else image
                count += isinstance(url, str) and not url.startswith("data:")
            elif kind == "file":
                file = part.get("file")
                count += isinstance(file, dict) and "file_id" in file
        elif kind in ("image", "document"):
            source = part.get("source")
            count += isinstance(source, dict) and source.get("type") in ("url", "file")
        elif kind == "tool_result" and isinstance(part.get("content"), list):
            count += _url_parts(part["content"], wire)
    return count


def _max_tokens(value: object, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"`{field}` must be an integer", field=field)
    if value < 1 or value > MAX_TOKENS_CEILING:
        raise InvalidRequest(f"`{field}` must be between 1 and the model's maximum output", field=field)
    return value


def _choices(value: object) -> int:
    """OpenAI `n` (default 1), 400 naming `n` unless an integer from 1 to `MAX_CHOICES`."""
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CHOICES:
        raise InvalidRequest(f"`n` must be an integer between 1 and {MAX_CHOICES}", field="n")
    return value
