"""No response and no audit entry carries a whole secret (SPEC §3, issue "Operator API").

Factory keys, users' API keys and proxy passwords are created, then every admin write of models, factory
keys, proxies and user keys is called, and every GET route the app registers under `/api` (found from the
app, so a new route is covered without editing this test). Every recorded response body and header is
grepped for each whole secret. Excepted: the one-time "show" answers (register, reveal, rotate).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from conftest import AppHarness
from helpers import Account, make_admin, register_user
from sqlalchemy import select

from trollllm.audit.tables import AuditEntry

ONE_TIME_SHOWS = {
    ("POST", "/api/auth/register"),
    ("GET", "/api/user/api-key"),
    ("POST", "/api/user/api-key/rotate"),
    ("POST", "/api/user/friend-key"),
    ("POST", "/api/user/friend-key/rotate"),
}
FACTORY_KEYS = [
    "sk-proj-FIRSTfactorySECRET-000111222333",
    "sk-ant-api03-SECONDfactorySECRET-444555",
    "sk-proj-REPLACEMENTfactorySECRET-666777",
    "gsk_THIRDfactorySECRET_888999aaabbb",
]
REJECTED_KEYS = ["sk-proj-REJECTEDwithBADurl-cccddd", "sk-rejected BECAUSE-of-space-eee"]
PROXY_PASSWORD = "Pr0xyPassw0rd-fff000"
PATH_VALUES = {"username": "alice", "modelId": "gpt-x", "provider": "openai"}


class Recorder:
    """Every response the client receives, with its method and path."""

    def __init__(self) -> None:
        self.responses: list[httpx.Response] = []

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        self.responses.append(response)

    def checked(self) -> list[httpx.Response]:
        return [r for r in self.responses if (r.request.method, r.request.url.path) not in ONE_TIME_SHOWS]


@pytest.fixture
async def recorder(gateway: AppHarness) -> Recorder:
    recorder = Recorder()
    gateway.client.event_hooks["response"].append(recorder)
    return recorder


def get_routes(gateway: AppHarness) -> list[str]:
    """Every GET path under /api in the app's OpenAPI document, with its path parameters filled in."""
    paths: dict[str, dict[str, Any]] = gateway.app.openapi()["paths"]
    return [
        re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "1"), path)
        for path, operations in paths.items()
        if path.startswith("/api/") and "get" in operations
    ]


async def write_everything(gateway: AppHarness, admin: Account, bob: Account) -> None:
    """Call every write of models, factory keys, proxies and user keys, good and bad."""
    client, auth = gateway.client, admin.auth
    proxy = await client.post(
        "/api/admin/proxies",
        headers=auth,
        json={"name": "p", "url": f"http://u:{PROXY_PASSWORD}@10.1.1.1:8080"},
    )
    proxy_id = proxy.json()["id"]
    model = {"modelId": "gpt-x", "provider": "openai", "upstreamModel": "gpt-x", "inputPricePerMTok": 1,
             "outputPricePerMTok": 2, "maxOutputTokens": 100}  # fmt: skip
    assert (await client.post("/api/admin/models", headers=auth, json=model)).status_code == 201
    assert (await client.put("/api/admin/models/gpt-x", headers=auth, json=model)).status_code == 200
    base = {"provider": "openai", "baseUrl": "https://api.example.com/v1"}
    first = await client.post(
        "/api/admin/factory-keys", headers=auth, json=base | {"name": "a", "apiKey": FACTORY_KEYS[0]}
    )
    second = await client.post(
        "/api/admin/factory-keys",
        headers=auth,
        json=base | {"name": "b", "provider": "anthropic", "apiKey": FACTORY_KEYS[1], "proxyId": proxy_id},
    )
    await client.post(
        "/api/admin/factory-keys", headers=auth, json=base | {"name": "c", "apiKey": FACTORY_KEYS[3]}
    )
    assert (first.status_code, second.status_code) == (201, 201)
    key_id = first.json()["id"]
    patched = await client.patch(
        f"/api/admin/factory-keys/{key_id}", headers=auth, json={"apiKey": FACTORY_KEYS[2]}
    )
    assert patched.status_code == 200
    await client.patch(
        f"/api/admin/factory-keys/{key_id}", headers=auth, json={"status": "disabled", "proxyId": proxy_id}
    )
    await client.patch(
        f"/api/admin/factory-keys/{key_id}", headers=auth, json={"status": "healthy", "proxyId": None}
    )
    bad_url = base | {"name": "d", "baseUrl": "ftp://x", "apiKey": REJECTED_KEYS[0]}
    assert (await client.post("/api/admin/factory-keys", headers=auth, json=bad_url)).status_code == 400
    bad_key = base | {"name": "e", "apiKey": REJECTED_KEYS[1]}
    assert (await client.post("/api/admin/factory-keys", headers=auth, json=bad_key)).status_code == 422
    bad_patch = {"baseUrl": "javascript:x", "apiKey": REJECTED_KEYS[0]}
    assert (
        await client.patch(f"/api/admin/factory-keys/{key_id}", headers=auth, json=bad_patch)
    ).status_code == 400
    await client.delete(f"/api/admin/proxies/{proxy_id}", headers=auth)  # 409: in use
    assert (await client.post(f"/api/admin/keys/{bob.username}/revoke", headers=auth)).status_code == 200
    await client.post(f"/api/admin/keys/{bob.username}/revoke", headers=auth)  # 409: no live key
    await client.post("/api/admin/keys/nobody/revoke", headers=auth)  # 404


def leaks(text: str, secrets: list[str]) -> list[str]:
    return [secret for secret in secrets if secret in text]


async def test_no_response_carries_a_whole_secret(gateway: AppHarness, recorder: Recorder) -> None:
    admin = await make_admin(gateway)
    alice = await register_user(gateway, "alice")
    bob = await register_user(gateway, "bob")
    rotated = await gateway.client.post("/api/user/api-key/rotate", headers=alice.auth)
    await write_everything(gateway, admin, bob)
    for path in get_routes(gateway):
        for account in (admin, alice):
            if path != "/api/user/api-key":
                await gateway.client.get(path, headers=account.auth)
    await gateway.client.get("/api/admin/keys", headers=admin.auth, params={"search": "a", "limit": 100})
    user_keys = [admin.api_key, alice.api_key, bob.api_key, rotated.json()["newApiKey"]]
    secrets = FACTORY_KEYS + REJECTED_KEYS + [PROXY_PASSWORD] + user_keys
    checked = recorder.checked()
    assert {"/api/admin/users", "/api/admin/factory-keys", "/api/admin/proxies", "/api/admin/models"} <= {
        r.request.url.path for r in checked if r.request.method == "GET"
    }
    for response in checked:
        headers = "\n".join(f"{name}: {value}" for name, value in response.headers.items())
        where = f"{response.request.method} {response.request.url.path} → {response.status_code}"
        assert leaks(response.text, secrets) == [], where
        assert leaks(headers, secrets) == [], where


async def test_no_audit_entry_carries_a_whole_secret(gateway: AppHarness) -> None:
    admin = await make_admin(gateway)
    bob = await register_user(gateway, "bob")
    await write_everything(gateway, admin, bob)
    async with gateway.state.sessions() as session:
        entries = list(await session.scalars(select(AuditEntry)))
    assert {entry.action for entry in entries} >= {
        "factory_key.create",
        "factory_key.update",
        "api_key.revoke",
    }
    secrets: list[Any] = FACTORY_KEYS + REJECTED_KEYS + [PROXY_PASSWORD, admin.api_key, bob.api_key]
    for entry in entries:
        assert leaks(f"{entry.target} {entry.before_json} {entry.after_json}", secrets) == [], entry.action
