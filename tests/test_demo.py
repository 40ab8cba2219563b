"""Demo mode (SPEC §2): a mock provider in process, seeded accounts and models, and working snippets."""

from __future__ import annotations

import re
from pathlib import Path

import openai
import pytest
from conftest import make_settings
from proxy_world import serve

from trollllm.clock import ManualClock
from trollllm.crypto import USER_KEY_PATTERN
from trollllm.demo import create_demo_app


async def test_demo_serves_a_streamed_answer_with_its_cost_and_history(
    tmp_path: Path, clock: ManualClock, embedded_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path, embedded_database_url)
    async with serve(settings, clock, app_factory=create_demo_app) as (gateway, base_url):
        banner = capsys.readouterr().out
        key_match = USER_KEY_PATTERN.search(banner)
        password = re.search(r"User: demo / (\S+)", banner)
        assert key_match and password
        assert "curl" in banner and "from openai import OpenAI" in banner
        client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key=key_match.group(0), max_retries=0)
        async with client:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello!"}], stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert text
        login = await gateway.client.post(
            "/api/auth/login", json={"username": "demo", "password": password.group(1)}
        )
        history = await gateway.client.get(
            "/api/user/request-history", headers={"Authorization": f"Bearer {login.json()['token']}"}
        )
        rows = history.json()["requests"]
        assert len(rows) == 1
        assert rows[0]["creditsCost"] > 0


async def test_demo_restarts_on_the_same_data_dir(
    tmp_path: Path, clock: ManualClock, embedded_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path, embedded_database_url)
    async with serve(settings, clock, app_factory=create_demo_app):
        pass
    async with serve(settings, clock, app_factory=create_demo_app) as (_, base_url):
        key = USER_KEY_PATTERN.findall(capsys.readouterr().out)[-1]
        async with openai.AsyncOpenAI(base_url=base_url + "/v1", api_key=key, max_retries=0) as client:
            reply = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "again"}]
            )
        assert reply.choices[0].message.content
