"""Stored responses (SPEC §6): kept for their caller only, 30 days, read by any instance.

A response is the caller's: the user, and the Friend Key when one made it (a Friend Key sees only its own,
the owner's own keys only theirs). Another caller's id, or one past retention, is simply not found.
The rows are purged with the request logs (`trollllm.usage.retention`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from trollllm.storage.sqlprogram import Program, Query

RETENTION = timedelta(days=30)
"""How long a stored response answers (the request logs' retention)."""

_INSERT = (
    "INSERT INTO stored_responses (id, user_id, friend_key_id, model, status, input_items, response, "
    "factory_key_id, created_at) VALUES (:id, :user_id, :friend_key_id, :model, :status, :input_items, "
    ":response, :factory_key_id, :created_at)"
)
_SELECT = (
    "SELECT input_items, response, factory_key_id FROM stored_responses WHERE id = :id "
    "AND user_id = :user_id AND COALESCE(friend_key_id, 0) = :friend_key_id AND created_at >= :since"
)
_DELETE = (
    "DELETE FROM stored_responses WHERE id = :id "
    "AND user_id = :user_id AND COALESCE(friend_key_id, 0) = :friend_key_id AND created_at >= :since "
    "RETURNING id"
)


def new_response_id() -> str:
    """A fresh response id, in OpenAI's spelling (`resp_` and 48 random hex digits)."""
    return "resp_" + os.urandom(24).hex()


@dataclass(frozen=True, slots=True)
class ResponseOwner:
    """Who may read a stored response: its user, and the Friend Key that made it (None: the user's keys)."""

    user_id: int
    friend_key_id: int | None

    def params(self, now: datetime) -> dict[str, Any]:
        """The query parameters that select this caller's live rows."""
        return {
            "user_id": self.user_id,
            "friend_key_id": self.friend_key_id or 0,
            "since": now - RETENTION,
        }


@dataclass(frozen=True, slots=True)
class StoredTurn:
    """A stored response as a next turn needs it."""

    input_items: list[Any]
    """Everything the upstream got as `input` for it (earlier turns expanded)."""
    response: dict[str, Any]
    """The response object as the client got it (with `output` and `usage`)."""
    factory_key_id: int | None

    @property
    def conversation(self) -> list[Any]:
        """The whole conversation so far: its input, then its output items."""
        output = self.response.get("output")
        return [*self.input_items, *(output if isinstance(output, list) else [])]


def save_response(
    owner: ResponseOwner,
    response: dict[str, Any],
    input_items: list[Any],
    factory_key_id: int | None,
    now: datetime,
) -> Program[None]:
    """Store a response (its id is the response object's `id`)."""
    yield Query(
        _INSERT,
        {
            "id": response["id"],
            "user_id": owner.user_id,
            "friend_key_id": owner.friend_key_id,
            "model": str(response.get("model", "")),
            "status": str(response.get("status", "completed")),
            "input_items": orjson.dumps(input_items).decode(),
            "response": orjson.dumps(response).decode(),
            "factory_key_id": factory_key_id,
            "created_at": now,
        },
        alone=True,
    )


def load_response(owner: ResponseOwner, response_id: str, now: datetime) -> Program[StoredTurn | None]:
    """The caller's stored response with this id, None when it is not theirs, gone or expired."""
    rows = yield Query(_SELECT, {"id": response_id, **owner.params(now)})
    if not rows:
        return None
    input_items, response, factory_key_id = rows[0]
    return StoredTurn(orjson.loads(input_items), orjson.loads(response), factory_key_id)


def delete_response(owner: ResponseOwner, response_id: str, now: datetime) -> Program[bool]:
    """Delete the caller's stored response; False when there was none to delete."""
    rows = yield Query(_DELETE, {"id": response_id, **owner.params(now)}, alone=True)
    return bool(rows)
