"""Role protection (SPEC §7): every route under `/api/admin` is 401 anonymous, 403 for a user, open to admins.

The routes are read from the app itself, so a route added later is covered without touching this file.
"""

from __future__ import annotations

import re
from typing import Any

import fastapi.routing
from conftest import AppHarness
from helpers import make_admin, register_user

ADMIN_PREFIX = "/api/admin"
_PARAM = re.compile(r"{(\w+)(?::(\w+))?}")
# Routes the SPEC's admin table names that this suite owns; their presence proves the walk sees the router.
EXPECTED = {
    ("GET", "/api/admin/users"),
    ("PATCH", "/api/admin/users/{username}"),
    ("POST", "/api/admin/users/{username}/credits"),
    ("GET", "/api/admin/plans"),
    ("POST", "/api/admin/plans"),
    ("PUT", "/api/admin/plans/{name}"),
    ("DELETE", "/api/admin/plans/{name}"),
    ("GET", "/api/admin/ledger"),
    ("GET", "/api/admin/audit"),
}


def admin_routes(gateway: AppHarness) -> list[tuple[str, str]]:
    """(method, path template) of every admin route registered in the app."""
    # FastAPI ≥ 0.16x keeps included routers nested; `iter_route_contexts` flattens them (older: flat list).
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: list[Any] = list(flatten(gateway.app.routes) if flatten else gateway.app.routes)
    found = []
    for route in routes:
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if path and methods and path.startswith(ADMIN_PREFIX):
            found.extend((method, path) for method in sorted(set(methods) - {"HEAD"}))
    return sorted(found)


def concrete(path: str) -> str:
    """The template with `1` for every path parameter (a valid id, username, plan or model name)."""
    return _PARAM.sub("1", path)


async def call(gateway: AppHarness, method: str, path: str, headers: dict[str, str]) -> int:
    body = None if method in {"GET", "DELETE"} else {}
    response = await gateway.client.request(method, concrete(path), json=body, headers=headers)
    return response.status_code


async def test_the_walk_sees_every_admin_route_of_the_spec(gateway: AppHarness) -> None:
    assert set(admin_routes(gateway)) >= EXPECTED


async def test_every_admin_route_is_401_for_an_anonymous_caller(gateway: AppHarness) -> None:
    statuses = {route: await call(gateway, *route, headers={}) for route in admin_routes(gateway)}
    assert {route: status for route, status in statuses.items() if status != 401} == {}


async def test_every_admin_route_is_403_for_a_plain_user(gateway: AppHarness) -> None:
    user = await register_user(gateway, "plainuser")
    statuses = {route: await call(gateway, *route, headers=user.auth) for route in admin_routes(gateway)}
    assert {route: status for route, status in statuses.items() if status != 403} == {}


async def test_every_admin_route_is_open_to_an_admin(gateway: AppHarness) -> None:
    admin = await make_admin(gateway)
    statuses = {route: await call(gateway, *route, headers=admin.auth) for route in admin_routes(gateway)}
    refused = {route: status for route, status in statuses.items() if status in {401, 403}}
    assert refused == {}
    assert all(status < 500 for status in statuses.values()), statuses


async def test_an_invalid_token_is_401_on_admin_routes(gateway: AppHarness) -> None:
    headers = {"Authorization": "Bearer not.a.jwt"}
    statuses = {route: await call(gateway, *route, headers=headers) for route in admin_routes(gateway)}
    assert set(statuses.values()) == {401}
