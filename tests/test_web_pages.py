"""SPEC §8 pages over HTTP (no browser): redirects, the login and register forms, CSRF, logout."""

from __future__ import annotations

import re

import httpx
from conftest import AppHarness
from helpers import PASSWORD, make_admin, register_user

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def _form_csrf(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    match = CSRF.search(page.text)
    assert match, "the form carries a CSRF token"
    return match.group(1)


async def _post_form(client: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    csrf = await _form_csrf(client, path)
    return await client.post(path, data={"csrf": csrf, **fields})


async def test_root_sends_a_visitor_to_login(gateway: AppHarness) -> None:
    response = await gateway.client.get("/")

    assert response.status_code == 303
    assert response.headers["location"] == "/login"


async def test_dashboard_sends_a_visitor_to_login(gateway: AppHarness) -> None:
    response = await gateway.client.get("/dashboard")

    assert response.status_code == 303
    assert response.headers["location"] == "/login"


async def test_register_form_signs_in_and_shows_the_dashboard(gateway: AppHarness) -> None:
    client = gateway.client
    response = await _post_form(client, "/register", username="alice", password=PASSWORD, confirm=PASSWORD)

    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    dashboard = await client.get("/dashboard")
    assert dashboard.status_code == 200
    assert "sk-trollllm-****...****" in dashboard.text
    assert "You are on the free plan" in dashboard.text
    assert (await client.get("/")).headers["location"] == "/dashboard"


async def test_register_errors_sit_next_to_their_field(gateway: AppHarness) -> None:
    response = await _post_form(gateway.client, "/register", username="a", password="short", confirm="other")

    assert response.status_code == 400
    assert 'id="username-error"' in response.text
    assert 'id="password-error"' in response.text
    assert 'id="confirm-error"' in response.text


async def test_register_with_a_taken_username_says_so_by_the_username(gateway: AppHarness) -> None:
    await register_user(gateway, "alice")
    gateway.client.cookies.clear()

    response = await _post_form(
        gateway.client, "/register", username="alice", password=PASSWORD, confirm=PASSWORD
    )

    assert response.status_code == 409
    assert 'id="username-error"' in response.text


async def test_login_with_a_wrong_password_shows_the_error_and_keeps_the_username(
    gateway: AppHarness,
) -> None:
    await register_user(gateway, "alice")
    gateway.client.cookies.clear()

    response = await _post_form(gateway.client, "/login", username="alice", password="wrong password")

    assert response.status_code == 401
    assert "Invalid username or password" in response.text
    assert 'value="alice"' in response.text


async def test_a_form_without_its_csrf_token_is_refused(gateway: AppHarness) -> None:
    await gateway.client.get("/login")

    response = await gateway.client.post("/login", data={"username": "alice", "password": PASSWORD})

    assert response.status_code == 403
    assert "The form expired" in response.text


async def test_logout_clears_the_session(gateway: AppHarness) -> None:
    client = gateway.client
    await _post_form(client, "/register", username="alice", password=PASSWORD, confirm=PASSWORD)
    dashboard = await client.get("/dashboard")
    csrf = CSRF.search(dashboard.text)
    assert csrf

    response = await client.post("/logout", data={"csrf": csrf.group(1)})

    assert response.headers["location"] == "/login"
    assert (await client.get("/dashboard")).headers["location"] == "/login"


async def test_page_text_is_escaped(gateway: AppHarness) -> None:
    response = await _post_form(gateway.client, "/login", username="<script>x</script>", password="p")

    assert "<script>x</script>" not in response.text
    assert "&lt;script&gt;" in response.text


async def test_static_assets_are_served_by_the_app(gateway: AppHarness) -> None:
    css = await gateway.client.get("/static/app.css")
    js = await gateway.client.get("/static/app.js")

    assert css.status_code == 200 and "prefers-color-scheme" in css.text
    assert js.status_code == 200 and "x-csrf-token" in js.text


async def _signed_in(gateway: AppHarness, name: str = "alice") -> None:
    await _post_form(gateway.client, "/register", username=name, password=PASSWORD, confirm=PASSWORD)


async def test_subscription_shows_every_plan_with_the_current_one_marked(gateway: AppHarness) -> None:
    await _signed_in(gateway)

    html = (await gateway.client.get("/dashboard/subscription")).text

    assert "Free" in html and "Dev" in html
    assert html.count("Current plan") == 1
    assert 'class="card plan current" aria-labelledby="plan-free"' in html


async def test_api_keys_page_lists_the_providers(gateway: AppHarness) -> None:
    await _signed_in(gateway)

    html = (await gateway.client.get("/dashboard/settings/api-keys")).text

    for provider in ("OpenAI", "Anthropic", "Groq", "Google Gemini"):
        assert f"<td>{provider}</td>" in html
    assert 'aria-current="page"' in html


async def test_every_user_page_sends_a_visitor_to_login(gateway: AppHarness) -> None:
    for path in ("/dashboard/subscription", "/dashboard/settings/api-keys", "/dashboard/request-history"):
        response = await gateway.client.get(path)
        assert (response.status_code, response.headers["location"]) == (303, "/login"), path


async def test_api_docs_load_their_assets_from_the_app_not_a_cdn(gateway: AppHarness) -> None:
    html = (await gateway.client.get("/docs")).text
    assets = re.findall(r'src="([^"]+)"', html) + re.findall(r'<link [^>]*href="([^"]+)"', html)
    assets += re.findall(r"url: '([^']+)'", html)  # (a link such as "Back to the dashboard" is no asset)

    assert "cdn" not in html.lower()
    for asset in assets:
        assert asset.startswith("/"), asset
        assert (await gateway.client.get(asset)).status_code == 200, asset


async def test_first_call_snippets_name_this_gateway_and_an_enabled_model(gateway: AppHarness) -> None:
    admin = await make_admin(gateway)
    model = {"modelId": "gpt-snippet", "provider": "openai", "upstreamModel": "gpt-4o-mini",
             "inputPricePerMTok": 1, "outputPricePerMTok": 2, "maxOutputTokens": 1024}  # fmt: skip
    created = await gateway.client.post("/api/admin/models", headers=admin.auth, json=model)
    assert created.status_code == 201, created.text
    client = gateway.client
    client.cookies.clear()  # signed out of the admin's session
    await _post_form(client, "/register", username="alice", password=PASSWORD, confirm=PASSWORD)
    upgraded = await client.patch("/api/admin/users/alice", headers=admin.auth, json={"plan": "dev"})
    assert upgraded.status_code == 200, upgraded.text  # a free user is shown the upgrade path instead

    dashboard = (await client.get("/dashboard")).text

    base = str(client.base_url).rstrip("/")
    assert f"curl {base}/v1/chat/completions" in dashboard
    assert f'OpenAI(base_url="{base}/v1", api_key=os.environ["TROLLLLM_API_KEY"])' in dashboard.replace(
        "&#34;", '"'
    )
    assert dashboard.count("gpt-snippet") >= 3, "curl, the OpenAI SDK and the Anthropic SDK name the model"
    assert "MODEL_ID" not in dashboard
