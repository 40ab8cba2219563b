"""The top-level fields of a Responses request that shape the answer: `reasoning`, `text`, `include`, and
which fields are the gateway's own (kept by the gateway, not sent upstream)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trollllm.errors import InvalidRequest
from trollllm.translate.checks import as_list, as_object, as_text, refuse, refuse_unknown

# Fields the translation reads (`model` and the output bound are set by the gateway).
MAPPED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_output_tokens",
        "max_tool_calls",
        "temperature",
        "top_p",
        "text",
        "reasoning",
        "user",
        "safety_identifier",
        "prompt_cache_key",
        "include",
        "stream",
        "stream_options",
    }
)
# The gateway's own: it stores the response (`store`, `metadata`), expands `previous_response_id` before
# translating, and `client_metadata` describes the calling client (Codex) for its logs. None of them
# changes what the model is asked, so none goes upstream.
GATEWAY_FIELDS = frozenset({"store", "metadata", "previous_response_id", "client_metadata"})
# Fields whose value here means "the default": accepted, nothing to carry.
NO_OP: dict[str, frozenset[object]] = {
    "background": frozenset({False}),
    "truncation": frozenset({"disabled"}),
    "service_tier": frozenset({"auto", "default"}),
    "top_logprobs": frozenset({0}),
}
_INCLUDABLE = frozenset(
    {"reasoning.encrypted_content", "web_search_call.action.sources", "web_search_call.results"}
)
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")


@dataclass(slots=True)
class Options:
    """What the request asks of the answer beyond its input and tools."""

    effort: str | None = None
    """`reasoning.effort`; None when absent or `none`."""
    summary: str | None = None
    text_format: dict[str, Any] | None = None
    """`text.format` unless it is plain text."""
    verbosity: str | None = None
    include: list[str] = field(default_factory=list)


def check_fields(body: dict[str, Any]) -> None:
    """400 naming the first top-level field no upstream format carries."""
    for key, value in body.items():
        if value is None or key in MAPPED or key in GATEWAY_FIELDS:
            continue
        if key in NO_OP and not isinstance(value, dict | list) and value in NO_OP[key]:
            continue
        raise refuse(key)
    stream_options = body.get("stream_options")
    if stream_options is not None:
        options = as_object(stream_options, "stream_options")
        refuse_unknown(options, frozenset({"include_obfuscation"}), "stream_options.")


def read_options(body: dict[str, Any]) -> Options:
    """`reasoning`, `text` and `include`, checked."""
    out = Options()
    reasoning = body.get("reasoning")
    if reasoning is not None:
        reasoning = as_object(reasoning, "reasoning")
        refuse_unknown(reasoning, frozenset({"effort", "summary", "generate_summary"}), "reasoning.")
        effort = reasoning.get("effort")
        if effort is not None and effort not in EFFORTS:
            raise InvalidRequest(
                f"`reasoning.effort` must be one of {', '.join(EFFORTS)}", field="reasoning.effort"
            )
        out.effort = None if effort in (None, "none") else str(effort)
        summary = reasoning.get("summary", reasoning.get("generate_summary"))
        if summary is not None and summary not in ("auto", "concise", "detailed"):
            raise InvalidRequest(
                "`reasoning.summary` must be auto, concise or detailed", field="reasoning.summary"
            )
        out.summary = summary
    text = body.get("text")
    if text is not None:
        text = as_object(text, "text")
        refuse_unknown(text, frozenset({"format", "verbosity"}), "text.")
        if text.get("format") is not None:
            out.text_format = _text_format(as_object(text["format"], "text.format"))
        verbosity = text.get("verbosity")
        if verbosity is not None and verbosity not in ("low", "medium", "high"):
            raise InvalidRequest("`text.verbosity` must be low, medium or high", field="text.verbosity")
        out.verbosity = verbosity
    include = body.get("include")
    if include is not None:
        for i, name in enumerate(as_list(include, "include")):
            if as_text(name, f"include[{i}]") not in _INCLUDABLE:
                raise refuse(f"include[{i}]", f"(`{name}`) has no equivalent in this model's API")
            out.include.append(name)
    return out


def _text_format(text_format: dict[str, Any]) -> dict[str, Any] | None:
    kind = text_format.get("type")
    if kind == "text":
        refuse_unknown(text_format, frozenset({"type"}), "text.format.")
        return None
    if kind == "json_object":
        refuse_unknown(text_format, frozenset({"type"}), "text.format.")
        return text_format
    if kind == "json_schema":
        refuse_unknown(
            text_format, frozenset({"type", "name", "schema", "strict", "description"}), "text.format."
        )
        as_text(text_format.get("name"), "text.format.name")
        as_object(text_format.get("schema"), "text.format.schema")
        return text_format
    raise InvalidRequest(
        "`text.format.type` must be text, json_object or json_schema", field="text.format.type"
    )
