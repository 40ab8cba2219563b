"""The two client-facing wire formats, and the one rule that says which a path speaks.

A proxy request's format is decided once, by its endpoint (`ENDPOINTS`); errors anywhere are rendered in
the format of the path they answer (`wire_of_path`), so a client never gets the other API's error shape.
"""

from __future__ import annotations

from enum import Enum


class WireFormat(Enum):
    """OpenAI chat completions, Anthropic messages, or the OpenAI Responses API.

    A provider row speaks `openai` or `anthropic`; `responses` is what a client of `/v1/responses` speaks
    (and a provider row with `responsesApi` too).
    """

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    RESPONSES = "responses"
    EMBEDDINGS = "embeddings"


ENDPOINTS = {
    WireFormat.OPENAI: "/v1/chat/completions",
    WireFormat.ANTHROPIC: "/v1/messages",
    WireFormat.RESPONSES: "/v1/responses",
    WireFormat.EMBEDDINGS: "/v1/embeddings",
}
"""The proxy endpoint of each format (also its upstream path)."""


def wire_of_path(path: str) -> WireFormat | None:
    """The format a path answers in: Anthropic under `/v1/messages`, OpenAI elsewhere under `/v1/`, else
    None (the gateway's own JSON API)."""
    if path.startswith("/v1/messages"):
        return WireFormat.ANTHROPIC
    if path.startswith("/v1/"):
        return WireFormat.OPENAI
    return None
