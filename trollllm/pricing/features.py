"""Request features the provider bills beyond tokens, read from a request body and priced by the model row.

`read_priced_features` runs at parse time (400 naming a field for what nothing can price: code execution,
other per-use server tools, OpenAI `service_tier` other than `auto`/`default`, 1-hour cache writes);
`refuse_unpriced` runs once the model is known (web search needs `webSearchPricePerKCalls`).
The hold bounds the searches (`web_searches_bound`) and settlement bills those the upstream reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trollllm.errors import InvalidRequest
from trollllm.pricing.catalog import CatalogModel

DEFAULT_MAX_SEARCHES = 10
"""Searches held for a web search tool without `max_uses`."""
MAX_SEARCHES = 1000
WEB_SEARCH_TOOL = "web_search_"  # Anthropic `web_search_20250305`, …
FREE_SERVER_TOOLS = ("web_fetch_",)  # tokens only: forwarded
PER_USE_SERVER_TOOLS = ("code_execution_",)  # billed per container hour: refused until priced
SERVICE_TIERS_AT_LIST_PRICE = ("auto", "default")


@dataclass(slots=True)
class PricedFeatures:
    """What a request may spend beyond its tokens."""

    web_searches_bound: int = 0
    """Searches the request may make (held up front)."""
    web_search_field: str = ""
    """The field asking for web search (`tools`, `web_search_options`), named when it is refused."""
    web_search_tool: str = ""
    search_per_request: bool = False
    """OpenAI chat `web_search_options`: the provider bills one search per request."""


def read_priced_features(body: Mapping[str, Any], is_openai: bool, raw: bytes) -> PricedFeatures:
    """The per-use features of a request body; 400 naming the field for those nothing prices."""
    features = PricedFeatures()
    if is_openai:
        tier = body.get("service_tier")
        if tier is not None and tier not in SERVICE_TIERS_AT_LIST_PRICE:
            raise InvalidRequest(
                f"`service_tier` {tier!r} is billed at another price and is not available here "
                "(use `auto` or `default`)",
                field="service_tier",
            )
        if body.get("web_search_options") is not None:
            features.web_searches_bound = 1
            features.web_search_field = "web_search_options"
            features.search_per_request = True
        return features
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(kind, str):
            continue
        if kind.startswith(PER_USE_SERVER_TOOLS):
            raise InvalidRequest(
                f"server tool `{kind}` is billed per use by the provider and is not priced here",
                field="tools",
            )
        if kind.startswith(WEB_SEARCH_TOOL):
            assert isinstance(tool, dict)
            max_uses = tool.get("max_uses")
            if max_uses is None:
                max_uses = DEFAULT_MAX_SEARCHES
            if (
                isinstance(max_uses, bool)
                or not isinstance(max_uses, int)
                or not 1 <= max_uses <= MAX_SEARCHES
            ):
                raise InvalidRequest(
                    f"`max_uses` of `{kind}` must be an integer from 1 to {MAX_SEARCHES}", field="tools"
                )
            features.web_searches_bound += max_uses
            features.web_search_field = "tools"
            features.web_search_tool = kind
    if b'"ttl"' in raw and _asks_one_hour_cache(body):
        raise InvalidRequest(
            "`cache_control.ttl` 1h (1-hour cache writes cost twice the input price) is not priced here; "
            "use the default 5-minute cache",
            field="cache_control",
        )
    return features


def refuse_unpriced(features: PricedFeatures, model: CatalogModel) -> None:
    """400 naming the web search tool or field when the model row does not price web search."""
    if features.web_searches_bound and model.prices.web_search_per_kcalls is None:
        name = features.web_search_tool or features.web_search_field
        raise InvalidRequest(
            f"web search (`{name}`) is billed per search and {model.model_id} has no web search price here",
            field=features.web_search_field,
        )


def _asks_one_hour_cache(body: Mapping[str, Any]) -> bool:
    """Whether any `cache_control` of the system, the tools or the messages asks for a 1-hour TTL."""
    blocks: list[Any] = []
    for name in ("system", "tools"):
        value = body.get(name)
        if isinstance(value, list):
            blocks.extend(value)
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            blocks.extend(content)
    top = body.get("cache_control")
    if isinstance(top, dict):
        blocks.append({"cache_control": top})
    for block in blocks:
        control = block.get("cache_control") if isinstance(block, dict) else None
        if isinstance(control, dict) and control.get("ttl") == "1h":
            return True
    return False
