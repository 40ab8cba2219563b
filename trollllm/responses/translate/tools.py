"""A Responses request's tools and `tool_choice`, read once for both upstream formats.

Function tools keep their name; the functions of a `namespace` tool get a flat name (`ns__fn`, shortened
with a hash past the 64 characters both upstreams allow), since neither upstream groups tools, and
`ToolSet.restore` gives a call's namespace back in the answer. The `web_search` tool becomes each
upstream's own search (`WebSearch`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from trollllm.errors import InvalidRequest
from trollllm.translate.checks import as_list, as_object, as_text, refuse, refuse_unknown

_FUNCTION_KEYS = frozenset({"type", "name", "description", "parameters", "strict", "defer_loading"})
_WEB_SEARCH_KEYS = frozenset(
    {"type", "external_web_access", "filters", "search_context_size", "user_location"}
)
_NAME_LIMIT = 64
_UPSTREAM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class FunctionTool:
    """A function the model may call, by its upstream (flat) name."""

    name: str
    description: str | None
    parameters: dict[str, Any]
    strict: bool
    field: str


@dataclass(frozen=True, slots=True)
class WebSearch:
    """The `web_search` tool."""

    field: str
    allowed_domains: list[str] | None
    user_location: dict[str, Any] | None
    search_context_size: str | None


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """`tool_choice`: `auto`, `none`, `required`, `function` (with `name`, flat) or `web_search`."""

    mode: str
    name: str | None = None


@dataclass(slots=True)
class ToolSet:
    """The request's tools as the upstreams see them."""

    functions: list[FunctionTool] = field(default_factory=list)
    web_search: WebSearch | None = None
    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Flat name -> (namespace, function name), for the functions of namespace tools."""

    def restore(self, flat: str) -> tuple[str, str | None]:
        """(name, namespace) of a called function, from its upstream name."""
        found = self.namespaced.get(flat)
        return (found[1], found[0]) if found is not None else (flat, None)


def flat_name(namespace: str, name: str) -> str:
    """The upstream name of function `name` of `namespace` (the same on every turn)."""
    flat = f"{namespace}__{name}"
    if len(flat) <= _NAME_LIMIT and _UPSTREAM_NAME.match(flat):
        return flat
    digest = hashlib.sha256(flat.encode()).hexdigest()[:10]
    kept = re.sub(r"[^A-Za-z0-9_-]", "_", flat)[: _NAME_LIMIT - len(digest) - 1]
    return f"{kept}_{digest}"


def read_tools(tools: object) -> ToolSet:
    """The `tools` array; 400 naming the first tool no upstream format can carry."""
    out = ToolSet()
    for i, tool in enumerate(as_list(tools, "tools")):
        where = f"tools[{i}]"
        tool = as_object(tool, where)
        kind = tool.get("type")
        if kind == "function":
            out.functions.append(_function(tool, where, as_text(tool.get("name"), f"{where}.name")))
        elif kind == "namespace":
            _namespace(tool, where, out)
        elif kind in ("web_search", "web_search_2025_08_26"):
            if out.web_search is not None:
                raise InvalidRequest(f"`{where}` repeats the web_search tool", field=where)
            out.web_search = _web_search(tool, where)
        else:
            raise refuse(f"{where}.type", f"`{kind}` has no equivalent in this model's API")
    seen: set[str] = set()
    for function in out.functions:
        if function.name in seen:
            raise InvalidRequest(
                f"`{function.field}.name` repeats a tool name", field=f"{function.field}.name"
            )
        seen.add(function.name)
    return out


def _function(tool: dict[str, Any], where: str, name: str) -> FunctionTool:
    refuse_unknown(tool, _FUNCTION_KEYS, f"{where}.")
    if tool.get("defer_loading"):
        raise refuse(f"{where}.defer_loading", "(tool search) has no equivalent in this model's API")
    description = tool.get("description")
    parameters = tool.get("parameters")
    strict = tool.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise InvalidRequest(f"`{where}.strict` must be a boolean", field=f"{where}.strict")
    return FunctionTool(
        name=name,
        description=None if description is None else as_text(description, f"{where}.description"),
        parameters=(
            {"type": "object", "properties": {}}
            if parameters is None
            else as_object(parameters, f"{where}.parameters")
        ),
        strict=bool(strict),
        field=where,
    )


def _namespace(tool: dict[str, Any], where: str, out: ToolSet) -> None:
    refuse_unknown(tool, frozenset({"type", "name", "description", "tools"}), f"{where}.")
    namespace = as_text(tool.get("name"), f"{where}.name")
    about = tool.get("description")
    about = None if about is None else as_text(about, f"{where}.description")
    for j, inner in enumerate(as_list(tool.get("tools"), f"{where}.tools")):
        inner_where = f"{where}.tools[{j}]"
        inner = as_object(inner, inner_where)
        if inner.get("type") != "function":
            raise refuse(
                f"{inner_where}.type", f"`{inner.get('type')}` has no equivalent in this model's API"
            )
        name = as_text(inner.get("name"), f"{inner_where}.name")
        function = _function(inner, inner_where, flat_name(namespace, name))
        if about:  # the namespace's description is the context of each of its functions
            text = about if not function.description else f"{about}\n\n{function.description}"
            function = FunctionTool(function.name, text, function.parameters, function.strict, inner_where)
        out.functions.append(function)
        out.namespaced[function.name] = (namespace, name)


def _web_search(tool: dict[str, Any], where: str) -> WebSearch:
    refuse_unknown(tool, _WEB_SEARCH_KEYS, f"{where}.")
    filters = tool.get("filters")
    domains = None
    if filters is not None:
        filters = as_object(filters, f"{where}.filters")
        refuse_unknown(filters, frozenset({"allowed_domains"}), f"{where}.filters.")
        if filters.get("allowed_domains") is not None:
            domains = [
                as_text(domain, f"{where}.filters.allowed_domains[{k}]")
                for k, domain in enumerate(
                    as_list(filters["allowed_domains"], f"{where}.filters.allowed_domains")
                )
            ]
    location = tool.get("user_location")
    size = tool.get("search_context_size")
    return WebSearch(
        field=where,
        allowed_domains=domains,
        user_location=None if location is None else as_object(location, f"{where}.user_location"),
        search_context_size=None if size is None else as_text(size, f"{where}.search_context_size"),
    )


def read_tool_choice(choice: object, tools: ToolSet) -> ToolChoice | None:
    """`tool_choice` (None when absent); a function is named by its upstream name."""
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise InvalidRequest("`tool_choice` must be auto, none, required or a tool", field="tool_choice")
        return ToolChoice(choice)
    choice = as_object(choice, "tool_choice")
    kind = choice.get("type")
    if kind == "function":
        refuse_unknown(choice, frozenset({"type", "name", "namespace"}), "tool_choice.")
        name = as_text(choice.get("name"), "tool_choice.name")
        namespace = choice.get("namespace")
        if namespace is not None:
            name = flat_name(as_text(namespace, "tool_choice.namespace"), name)
        return ToolChoice("function", name)
    if kind in ("web_search", "web_search_2025_08_26"):
        refuse_unknown(choice, frozenset({"type"}), "tool_choice.")
        if tools.web_search is None:
            raise InvalidRequest(
                "`tool_choice` names web_search, which is not in `tools`", field="tool_choice"
            )
        return ToolChoice("web_search")
    raise refuse("tool_choice.type", f"`{kind}` has no equivalent in this model's API")
