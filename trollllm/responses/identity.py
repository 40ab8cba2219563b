"""What the gateway sets on every response object it hands back, whatever the route: its own id (the
upstream keeps nothing, `store: false` upstream), the caller's model name, `store` and
`previous_response_id` as the caller sent them; and the billed usage it reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trollllm.money import TokenUsage, usage_from_responses

TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
"""The stream events that end a response and carry its final object (with `usage`)."""


@dataclass(frozen=True, slots=True)
class ResponseIdentity:
    """The gateway's id of one response and the request fields its object echoes."""

    response_id: str
    client_model: str
    store: bool
    previous_response_id: str | None

    def present(self, response: dict[str, Any]) -> dict[str, Any]:
        """`response` (an upstream's response object) as the caller gets it, changed in place."""
        response["id"] = self.response_id
        response["model"] = self.client_model
        response["store"] = self.store
        response["previous_response_id"] = self.previous_response_id
        return response


def billed_usage_of(response: dict[str, Any]) -> TokenUsage | None:
    """A response object's billed usage (None when it has none), with its web searches counted from its
    `web_search_call` output items."""
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return None
    output = response.get("output")
    searches = 0
    if isinstance(output, list):
        for item in output:
            if isinstance(item, dict) and item.get("type") == "web_search_call":
                searches += 1
    return usage_from_responses(usage, searches)
