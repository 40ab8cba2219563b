"""Small helpers shared by tests: accounts and authenticated calls."""

from __future__ import annotations

from dataclasses import dataclass

from conftest import AppHarness

from trollllm.accounts.service import ensure_admin

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Account:
    """A registered user: username, JWT and the full API key."""

    username: str
    token: str
    api_key: str

    @property
    def auth(self) -> dict[str, str]:
        """Headers for dashboard API calls as this user."""
        return {"Authorization": f"Bearer {self.token}"}


async def register_user(gateway: AppHarness, username: str) -> Account:
    """Register through the API and reveal the key (uses one of the 10 reveals per hour)."""
    response = await gateway.client.post(
        "/api/auth/register", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    token = response.json()["token"]
    key = await gateway.client.get("/api/user/api-key", headers={"Authorization": f"Bearer {token}"})
    assert key.status_code == 200, key.text
    return Account(username, token, key.json()["apiKey"])


async def make_admin(gateway: AppHarness, username: str = "root") -> Account:
    """Create an admin as the CLI does, then log in through the API."""
    await ensure_admin(gateway.state, username, PASSWORD)
    response = await gateway.client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    key = await gateway.client.get("/api/user/api-key", headers={"Authorization": f"Bearer {token}"})
    return Account(username, token, key.json()["apiKey"])
