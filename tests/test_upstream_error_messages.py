"""Upstream errors relayed to users (SPEC §9): the message of an error about the request is kept; an
error about the operator's account or capacity keeps its status and type, with a neutral message, and
its body goes to the log for the admin (issue 29, item 4)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from proxy_world import ANTHROPIC_MODEL, OPENAI_MODEL, World

from trollllm.clock import ManualClock

# client format, model: both native routes and both translated ones.
ROUTES = {
    "openai": ("/v1/chat/completions", OPENAI_MODEL),
    "anthropic": ("/v1/messages", ANTHROPIC_MODEL),
    "openai-to-anthropic": ("/v1/chat/completions", ANTHROPIC_MODEL),
    "anthropic-to-openai": ("/v1/messages", OPENAI_MODEL),
}
# The error type the client gets for each neutral status, per route: the upstream's own type (the mock
# writes OpenAI's `requests` for 429, `server_error` for 5xx; Anthropic's by status), or on a route
# translated to Anthropic's format the type of the status.
NEUTRAL_TYPES = {
    "openai": {429: "requests", 500: "server_error", 503: "server_error"},
    "anthropic": {429: "rate_limit_error", 500: "api_error", 503: "api_error"},
    "openai-to-anthropic": {429: "rate_limit_error", 500: "api_error", 503: "api_error"},
    "anthropic-to-openai": {429: "rate_limit_error", 500: "api_error", 503: "api_error"},
}


@pytest.fixture(params=sorted(ROUTES))
def route(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


async def _failing_call(world: World, route: str, status: int, *, stream: bool = False) -> httpx.Response:
    path, model = ROUTES[route]
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": 20,
        "stream": stream,
        "messages": [{"role": "user", "content": f"fail [mock status={status}]"}],
    }
    if path == "/v1/messages":
        headers = {"x-api-key": world.user.api_key}
    else:
        headers = {"Authorization": f"Bearer {world.user.api_key}"}
    return await world.gateway.client.post(path, headers=headers, json=body)


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    error: dict[str, Any] = body["error"]
    if response.request.url.path == "/v1/messages":
        assert body["type"] == "error"
    return error


async def test_an_upstream_error_about_the_request_keeps_the_upstreams_message(
    world: World, route: str
) -> None:
    for status in (400, 404, 413, 422):
        response = await _failing_call(world, route, status)
        assert response.status_code == status
        assert _error(response)["message"] == f"mock: status {status} requested"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_an_upstream_error_about_the_operators_account_or_capacity_has_a_neutral_message(
    world: World, route: str, stream: bool, caplog: pytest.LogCaptureFixture, clock: ManualClock
) -> None:
    caplog.set_level("WARNING", logger="trollllm.proxy")
    for status in (429, 500, 503):
        caplog.clear()
        clock.advance(3600)  # past the cool-down of the factory key the previous error left
        response = await _failing_call(world, route, status, stream=stream)
        error = _error(response)
        assert response.status_code == status
        assert error["type"] == NEUTRAL_TYPES[route][status]
        assert "mock:" not in response.text and str(status) in error["message"]
        logged = [getattr(r, "upstream_body", "") for r in caplog.records if r.name == "trollllm.proxy"]
        assert [f"mock: status {status} requested" in body for body in logged] == [True]  # for the admin


async def test_a_neutral_openai_error_keeps_the_upstreams_code(world: World) -> None:
    response = await _failing_call(world, "openai", 429)
    assert _error(response)["code"] == "rate_limit_exceeded"


async def test_an_upstream_401_never_shows_its_message_to_the_user(world: World, route: str) -> None:
    response = await _failing_call(world, route, 401)
    assert response.status_code == 503  # the factory key is disabled; no other key is left
    assert "mock:" not in response.text
