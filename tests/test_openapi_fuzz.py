"""A fuzzing run of the app's own OpenAPI document (issue 29): every `/api/*` operation and every proxy
endpoint in it (a path added later is picked up), with valid and invalid inputs made by schemathesis, sent to
the served gateway with real credentials. No answer is a 5xx, and no refused request is charged.

`TROLLLLM_FUZZ_EXAMPLES` sets the examples per operation and mode (default 5: the CI run stays well under a
minute); the README records a larger run.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, given
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World
from schemathesis.generation.modes import GenerationMode
from sqlalchemy import text

from trollllm.billing.ledger import reconcile

EXAMPLES = int(os.environ.get("TROLLLLM_FUZZ_EXAMPLES", "5"))
# Operations that would end the run's own session or key for the operations after them go last.
_LAST = ("/api/auth/logout", "/api/user/api-key/rotate", "/api/admin/keys/{username}/revoke")


def _fuzzed_paths(document: dict[str, Any]) -> list[str]:
    paths = [p for p in document["paths"] if p.startswith(("/api/", "/v1/"))]
    return sorted(paths, key=lambda p: (p.startswith(_LAST), not p.startswith("/v1/"), p))


def _with_known_models(document: dict[str, Any]) -> dict[str, Any]:
    """The document with the proxy bodies' `model` narrowed to the world's models, so that valid bodies
    pass the gate, are held, go upstream and are charged (invalid ones still come in the negative mode)."""
    for path, item in document["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for operation in item.values():
            content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            properties = content.get("schema", {}).get("properties", {})
            if "model" in properties:
                properties["model"] = {"type": "string", "enum": [OPENAI_MODEL, ANTHROPIC_MODEL]}
    return document


def _credentials(world: World, path: str) -> dict[str, str]:
    if path.startswith("/v1/"):
        return {
            "Authorization": f"Bearer {world.user.api_key}",
            "x-api-key": world.user.api_key,
            "anthropic-version": "2023-06-01",
        }
    if path.startswith("/api/admin/"):
        return world.admin.auth
    return world.user.auth


def _fuzz(world: World, document: dict[str, Any], record: Callable[[str, int, str], None]) -> int:
    """Send every operation's examples (in this worker thread: the gateway serves on the test's loop)."""
    schema = schemathesis.openapi.from_dict(document)
    sent = 0
    session = requests.Session()
    by_path = {path: index for index, path in enumerate(_fuzzed_paths(document))}
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = sorted((o for o in operations if o.path in by_path), key=lambda o: by_path[o.path])
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                sent += _run_operation(world, session, operation, mode, record)
            except hypothesis.errors.Unsatisfiable:
                continue
    return sent


def _run_operation(
    world: World,
    session: requests.Session,
    operation: Any,
    mode: GenerationMode,
    record: Callable[[str, int, str], None],
) -> int:
    """Up to `EXAMPLES` requests of one operation in one generation mode; how many were sent."""
    headers = _credentials(world, operation.path)
    sent = 0

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case: Any) -> None:
        nonlocal sent
        response = case.call(base_url=world.base_url, session=session, headers=headers, timeout=30)
        sent += 1
        record(f"{case.method} {operation.path}", response.status_code, response.text[:300])

    send()
    return sent


async def test_fuzzing_the_openapi_document_finds_no_5xx_and_no_charge_for_a_refused_request(
    world: World,
) -> None:
    document = (await world.gateway.client.get("/openapi.json")).json()
    assert {"/v1/chat/completions", "/v1/messages", "/v1/models"} <= set(document["paths"])
    assert sum(p.startswith("/api/") for p in document["paths"]) >= 30
    server_errors: list[tuple[str, int, str]] = []
    statuses: dict[int, int] = {}

    def record(operation: str, status: int, body: str) -> None:
        statuses[status] = statuses.get(status, 0) + 1
        if status >= 500:
            server_errors.append((operation, status, body))

    sent = await asyncio.to_thread(_fuzz, world, _with_known_models(document), record)

    paths = len(_fuzzed_paths(document))
    print(f"fuzzing: {sent} requests over {paths} paths, statuses {sorted(statuses.items())}")
    assert sent >= len(_fuzzed_paths(document)) * 2
    assert server_errors == [], server_errors[:5]
    async with world.state.engine.connect() as connection:
        charged_refusals = (
            await connection.execute(
                text(
                    "SELECT l.request_id, l.status_code, l.error_type, e.credits_delta_nanos "
                    "FROM request_logs l JOIN ledger_entries e ON e.request_id = l.request_id "
                    "WHERE l.status_code >= 400 AND l.status_code < 500 "
                    "AND (e.credits_delta_nanos <> 0 OR e.ref_credits_delta_nanos <> 0)"
                )
            )
        ).all()
        open_holds = (await connection.execute(text("SELECT count(*) FROM holds"))).scalar_one()
    assert charged_refusals == []
    assert open_holds == 0
    async with world.state.sessions() as session:
        assert await reconcile(session) == []  # every balance is still the sum of its ledger
