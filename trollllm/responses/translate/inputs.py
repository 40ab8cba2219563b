"""A Responses request's `instructions` and `input`, read once into the turns both upstream formats build on.

Items: `message` (roles system, developer, user, assistant; parts `input_text`, `input_image`,
`output_text`, `refusal`), `function_call`, `function_call_output` and `reasoning`. A `web_search_call`
item records a search the upstream already ran: it carries nothing an upstream can take back (the answer
that used it follows as an assistant message), so it is passed over. Any other item type is a 400 naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trollllm.errors import InvalidRequest
from trollllm.responses.translate.tools import flat_name
from trollllm.translate.checks import as_list, as_object, as_text, refuse, refuse_unknown

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
_IMAGE_DETAILS = frozenset({"auto", "low", "high", "original"})
_ITEM_STATUS = frozenset({"in_progress", "completed", "incomplete"})


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Image:
    url: str
    """An http(s) URL or a base64 `data:` URL."""
    detail: str
    field: str


Part = Text | Image


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    """`system` (also for `developer`), `user` or `assistant`."""
    parts: list[Part]
    field: str


@dataclass(frozen=True, slots=True)
class Call:
    call_id: str
    name: str
    """The upstream (flat) name."""
    arguments: str
    field: str


@dataclass(frozen=True, slots=True)
class CallOutput:
    call_id: str
    output: str | list[Part]
    field: str


@dataclass(frozen=True, slots=True)
class Reasoning:
    summary: str
    encrypted_content: str | None
    field: str


Turn = Message | Call | CallOutput | Reasoning


def read_input(instructions: object, items: object) -> list[Turn]:
    """The turns of a request: `instructions` first (a system message), then `input`."""
    turns: list[Turn] = []
    if instructions is not None:
        turns.append(Message("system", [Text(as_text(instructions, "instructions"))], "instructions"))
    if isinstance(items, str):
        turns.append(Message("user", [Text(items)], "input"))
        return turns
    for i, item in enumerate(as_list(items, "input")):
        turn = _item(as_object(item, f"input[{i}]"), f"input[{i}]")
        if turn is not None:
            turns.append(turn)
    return turns


def _item(item: dict[str, Any], where: str) -> Turn | None:
    kind = item.get("type", "message")
    _check_status(item, where)
    if kind == "message":
        return _message(item, where)
    if kind == "function_call":
        refuse_unknown(
            item,
            frozenset({"type", "id", "call_id", "name", "namespace", "arguments", "status"}),
            f"{where}.",
        )
        name = as_text(item.get("name"), f"{where}.name")
        if item.get("namespace") is not None:
            name = flat_name(as_text(item["namespace"], f"{where}.namespace"), name)
        return Call(
            as_text(item.get("call_id"), f"{where}.call_id"),
            name,
            as_text(item.get("arguments"), f"{where}.arguments"),
            where,
        )
    if kind == "function_call_output":
        refuse_unknown(item, frozenset({"type", "id", "call_id", "output", "status"}), f"{where}.")
        output = item.get("output")
        return CallOutput(
            as_text(item.get("call_id"), f"{where}.call_id"),
            output if isinstance(output, str) else _parts(output, f"{where}.output"),
            where,
        )
    if kind == "reasoning":
        refuse_unknown(
            item, frozenset({"type", "id", "summary", "content", "encrypted_content", "status"}), f"{where}."
        )
        summary = [
            as_text(as_object(part, f"{where}.summary[{k}]").get("text"), f"{where}.summary[{k}].text")
            for k, part in enumerate(as_list(item.get("summary", []), f"{where}.summary"))
        ]
        encrypted = item.get("encrypted_content")
        return Reasoning(
            "\n\n".join(summary),
            None if encrypted is None else as_text(encrypted, f"{where}.encrypted_content"),
            where,
        )
    if kind == "web_search_call":
        return None
    raise refuse(f"{where}.type", f"(`{kind}`) has no equivalent in this model's API")


def _check_status(item: dict[str, Any], where: str) -> None:
    status = item.get("status")
    if status is not None and status not in _ITEM_STATUS:
        raise InvalidRequest(
            f"`{where}.status` must be in_progress, completed or incomplete", field=f"{where}.status"
        )


def _message(item: dict[str, Any], where: str) -> Message:
    refuse_unknown(item, frozenset({"type", "id", "role", "content", "status", "phase"}), f"{where}.")
    role = _ROLES.get(str(item.get("role")))
    if role is None:
        raise InvalidRequest(
            f"`{where}.role` must be system, developer, user or assistant", field=f"{where}.role"
        )
    content = item.get("content")
    parts: list[Part] = [Text(content)] if isinstance(content, str) else _parts(content, f"{where}.content")
    if role != "user":
        for k, part in enumerate(parts):
            if isinstance(part, Image):
                raise refuse(
                    f"{where}.content[{k}]", f"(an image in a {item.get('role')} message) has no equivalent"
                )
    return Message(role, parts, where)


def _parts(content: object, field: str) -> list[Part]:
    parts: list[Part] = []
    for k, part in enumerate(as_list(content, field)):
        where = f"{field}[{k}]"
        part = as_object(part, where)
        kind = part.get("type")
        if kind in ("input_text", "output_text"):
            refuse_unknown(part, frozenset({"type", "text", "annotations", "logprobs"}), f"{where}.")
            parts.append(Text(as_text(part.get("text"), f"{where}.text")))
        elif kind == "refusal":
            refuse_unknown(part, frozenset({"type", "refusal"}), f"{where}.")
            parts.append(Text(as_text(part.get("refusal"), f"{where}.refusal")))
        elif kind == "input_image":
            refuse_unknown(part, frozenset({"type", "image_url", "detail", "file_id"}), f"{where}.")
            if part.get("file_id") is not None:
                raise refuse(
                    f"{where}.file_id", "(an uploaded file) has no equivalent here; send `image_url`"
                )
            detail = part.get("detail") or "auto"
            if detail not in _IMAGE_DETAILS:
                raise InvalidRequest(
                    f"`{where}.detail` must be auto, low, high or original", field=f"{where}.detail"
                )
            parts.append(Image(as_text(part.get("image_url"), f"{where}.image_url"), detail, where))
        else:
            raise refuse(f"{where}.type", f"(`{kind}`) has no equivalent in this model's API")
    return parts
