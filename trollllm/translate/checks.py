"""What translation needs in both directions: refusing what cannot be expressed, and small checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trollllm.errors import InvalidRequest


def refuse(field: str, why: str = "has no equivalent in the model's format") -> InvalidRequest:
    """The 400 for a field that cannot be carried over to the other format (named, never dropped)."""
    return InvalidRequest(
        f"`{field}` {why}; this model speaks the other API's format and the gateway translates the "
        "request, so leave it out or call the model's own endpoint",
        field=field,
    )


def refuse_unknown(body: Mapping[str, Any], known: frozenset[str], where: str = "") -> None:
    """400 naming the first key of `body` that is not in `known` (and not null)."""
    for key, value in body.items():
        if key not in known and value is not None:
            raise refuse(f"{where}{key}")


def as_list(value: object, field: str) -> list[Any]:
    """`value` when it is a JSON array, else 400 naming `field`."""
    if not isinstance(value, list):
        raise InvalidRequest(f"`{field}` must be an array", field=field)
    return value


def as_object(value: object, field: str) -> dict[str, Any]:
    """`value` when it is a JSON object, else 400 naming `field`."""
    if not isinstance(value, dict):
        raise InvalidRequest(f"`{field}` must be an object", field=field)
    return value


def as_text(value: object, field: str) -> str:
    """`value` when it is a string, else 400 naming `field`."""
    if not isinstance(value, str):
        raise InvalidRequest(f"`{field}` must be a string", field=field)
    return value
