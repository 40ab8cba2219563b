"""Accounts (SPEC §7): register, login, JWT sessions, the user's own API key."""

from __future__ import annotations

import base64
import json
import re

import jwt
import pytest
from conftest import AppHarness

from trollllm.crypto import USER_KEY_PATTERN

PASSWORD = "correct horse battery"
ME_FIELDS = {
    "username", "role", "apiKey", "apiKeyCreatedAt", "plan", "credits", "refCredits", "totalTokens",
    "tokensUsed", "totalInputTokens", "totalOutputTokens", "monthlyTokensUsed", "monthlyResetDate",
    "planStartDate", "planExpiresAt",
}  # fmt: skip
MASKED = re.compile(r"^sk-trollllm-\*\*\*\*\.\.\.\*\*\*\*[0-9a-f]{4}$")


async def register(gateway: AppHarness, username: str = "alice") -> dict[str, object]:
    response = await gateway.client.post(
        "/api/auth/register", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def bearer(token: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_register_creates_a_free_user_with_a_masked_key_and_a_token(gateway: AppHarness) -> None:
    body = await register(gateway)
    user = body["user"]
    assert isinstance(user, dict)
    assert user["username"] == "alice"
    assert user["plan"] == "free"
    assert user["role"] == "user"
    assert user["credits"] == 0
    assert MASKED.match(user["apiKey"])
    assert isinstance(body["token"], str)


async def test_duplicate_username_is_409_naming_the_field(gateway: AppHarness) -> None:
    await register(gateway)
    response = await gateway.client.post(
        "/api/auth/register", json={"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 409
    assert response.json()["error"]["field"] == "username"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": PASSWORD}, "username"),
        ({"username": "bob"}, "password"),
        ({"username": "ab", "password": PASSWORD}, "username"),
        ({"username": "x" * 10_000, "password": PASSWORD}, "username"),
        ({"username": "bad name!", "password": PASSWORD}, "username"),
        ({"username": "<b>bob</b>", "password": PASSWORD}, "username"),
        ({"username": 12345, "password": PASSWORD}, "username"),
        ({"username": "bob", "password": "short"}, "password"),
    ],
)
async def test_invalid_registration_is_422_naming_the_field(
    gateway: AppHarness, body: dict[str, object], field: str
) -> None:
    response = await gateway.client.post("/api/auth/register", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


async def test_malformed_json_is_a_clear_4xx(gateway: AppHarness) -> None:
    response = await gateway.client.post(
        "/api/auth/register", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_login_returns_a_token_that_reads_me_with_every_spec_field(gateway: AppHarness) -> None:
    await register(gateway)
    response = await gateway.client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    me = await gateway.client.get("/api/user/me", headers=bearer(response.json()["token"]))
    assert me.status_code == 200
    assert set(me.json()) >= ME_FIELDS
    assert MASKED.match(me.json()["apiKey"])


async def test_wrong_password_is_401(gateway: AppHarness) -> None:
    await register(gateway)
    response = await gateway.client.post(
        "/api/auth/login", json={"username": "alice", "password": "wrong password"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "unauthorized"


async def test_unknown_user_login_is_401_like_a_wrong_password(gateway: AppHarness) -> None:
    response = await gateway.client.post("/api/auth/login", json={"username": "nobody", "password": PASSWORD})
    assert response.status_code == 401


async def test_login_is_throttled_after_ten_failures_per_username_and_address(gateway: AppHarness) -> None:
    await register(gateway)
    for _ in range(10):
        response = await gateway.client.post(
            "/api/auth/login", json={"username": "alice", "password": "nope nope"}
        )
        assert response.status_code == 401
    response = await gateway.client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1


async def test_login_throttle_lifts_after_the_window(gateway: AppHarness, clock: object) -> None:
    await register(gateway)
    for _ in range(10):
        await gateway.client.post("/api/auth/login", json={"username": "alice", "password": "nope nope"})
    clock.advance(15 * 60 + 1)  # type: ignore[attr-defined]
    response = await gateway.client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200


async def test_me_without_a_token_is_401(gateway: AppHarness) -> None:
    response = await gateway.client.get("/api/user/me")
    assert response.status_code == 401


async def test_tampered_token_is_401(gateway: AppHarness) -> None:
    token = str((await register(gateway))["token"])
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "999"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = await gateway.client.get("/api/user/me", headers=bearer(f"{header}.{forged}.{signature}"))
    assert response.status_code == 401


async def test_alg_none_token_is_401(gateway: AppHarness) -> None:
    await register(gateway)
    unsigned = jwt.encode({"sub": "1", "ver": 0, "iat": 0, "exp": 4_000_000_000}, key="", algorithm="none")
    response = await gateway.client.get("/api/user/me", headers=bearer(unsigned))
    assert response.status_code == 401


async def test_expired_token_is_401(gateway: AppHarness, clock: object) -> None:
    token = (await register(gateway))["token"]
    clock.advance(gateway.state.settings.jwt_ttl_s + 1)  # type: ignore[attr-defined]
    response = await gateway.client.get("/api/user/me", headers=bearer(token))
    assert response.status_code == 401


async def test_garbage_bearer_is_401(gateway: AppHarness) -> None:
    response = await gateway.client.get("/api/user/me", headers=bearer("not.a.jwt"))
    assert response.status_code == 401


async def test_reveal_returns_the_full_key_that_matches_the_mask(gateway: AppHarness) -> None:
    body = await register(gateway)
    response = await gateway.client.get("/api/user/api-key", headers=bearer(body["token"]))
    assert response.status_code == 200
    key = response.json()["apiKey"]
    assert USER_KEY_PATTERN.fullmatch(key)
    assert len(key) == 76
    assert str(body["user"]["apiKey"]).endswith(key[-4:])  # type: ignore[index]


async def test_reveal_is_limited_to_ten_per_hour(gateway: AppHarness) -> None:
    token = (await register(gateway))["token"]
    for _ in range(10):
        assert (await gateway.client.get("/api/user/api-key", headers=bearer(token))).status_code == 200
    response = await gateway.client.get("/api/user/api-key", headers=bearer(token))
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1


async def test_rotate_issues_a_new_key_and_reveal_shows_it(gateway: AppHarness) -> None:
    token = (await register(gateway))["token"]
    old = (await gateway.client.get("/api/user/api-key", headers=bearer(token))).json()["apiKey"]
    response = await gateway.client.post("/api/user/api-key/rotate", headers=bearer(token))
    assert response.status_code == 200
    rotated = response.json()
    assert rotated["oldKeyInvalidated"] is True
    assert rotated["newApiKey"] != old
    assert USER_KEY_PATTERN.fullmatch(rotated["newApiKey"])
    now = (await gateway.client.get("/api/user/api-key", headers=bearer(token))).json()["apiKey"]
    assert now == rotated["newApiKey"]


async def test_cookie_session_reads_without_csrf_but_writes_need_it(gateway: AppHarness) -> None:
    await register(gateway)
    login = await gateway.client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert "httponly" in login.headers["set-cookie"].lower()
    assert (await gateway.client.get("/api/user/me")).status_code == 200
    refused = await gateway.client.post("/api/user/api-key/rotate")
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "csrf_failed"
    csrf = gateway.client.cookies["trollllm_csrf"]
    allowed = await gateway.client.post("/api/user/api-key/rotate", headers={"x-csrf-token": csrf})
    assert allowed.status_code == 200


async def test_every_response_carries_a_request_id(gateway: AppHarness) -> None:
    response = await gateway.client.get("/healthz")
    assert response.headers["x-request-id"].startswith("req_")
