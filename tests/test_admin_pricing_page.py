"""`/admin/pricing` over HTTP: the models table, adding and editing a model, refusals next to their field."""

from __future__ import annotations

from admin_page_helpers import post_form, signed_in
from conftest import AppHarness
from helpers import make_admin

from trollllm.pricing.service import load_model

NEW_MODEL = {
    "modelId": "gpt-new",
    "provider": "openai",
    "upstreamModel": "gpt-new-upstream",
    "inputPricePerMTok": "2.5",
    "outputPricePerMTok": "10",
    "cacheWritePricePerMTok": "",
    "cacheHitPricePerMTok": "",
    "maxOutputTokens": "4096",
    "urlMediaTokens": "1600",
    "enabled": "on",
}


async def test_an_admin_adds_a_model_with_exact_prices(gateway: AppHarness) -> None:
    await make_admin(gateway)
    async with signed_in(gateway, "root") as client:
        response = await post_form(client, "/admin/pricing", "/admin/pricing", **NEW_MODEL)
        assert response.status_code == 303
        shown = await client.get("/admin/pricing")
    assert "Added model gpt-new" in shown.text
    async with gateway.state.sessions() as session:
        row = await load_model(session, "gpt-new")
    assert row is not None and row.input_price_nanos == 2_500_000_000 and row.cache_hit_price_nanos == 0


async def test_a_negative_price_is_refused_next_to_its_field_and_nothing_is_added(
    gateway: AppHarness,
) -> None:
    await make_admin(gateway)
    async with signed_in(gateway, "root") as client:
        response = await post_form(
            client, "/admin/pricing", "/admin/pricing", **(NEW_MODEL | {"inputPricePerMTok": "-1"})
        )
    assert response.status_code == 400
    assert 'id="new-inputPricePerMTok-error"' in response.text
    assert "must be ≥ 0" in response.text
    assert 'value="gpt-new-upstream"' in response.text  # what was typed is kept
    async with gateway.state.sessions() as session:
        assert await load_model(session, "gpt-new") is None


async def test_missing_fields_and_a_bad_id_are_each_named(gateway: AppHarness) -> None:
    await make_admin(gateway)
    async with signed_in(gateway, "root") as client:
        response = await post_form(
            client,
            "/admin/pricing",
            "/admin/pricing",
            **(NEW_MODEL | {"modelId": "bad id!", "upstreamModel": "", "maxOutputTokens": "lots"}),
        )
    assert response.status_code == 400
    for field in ("modelId", "upstreamModel", "maxOutputTokens"):
        assert f'id="new-{field}-error"' in response.text, field


async def test_a_row_edit_saves_the_new_price_and_a_bad_one_stays_in_its_row(gateway: AppHarness) -> None:
    await make_admin(gateway)
    async with signed_in(gateway, "root") as client:
        await post_form(client, "/admin/pricing", "/admin/pricing", **NEW_MODEL)
        row = {key: value for key, value in NEW_MODEL.items() if key != "modelId"}
        saved = await post_form(
            client,
            "/admin/pricing",
            "/admin/pricing/save",
            modelId="gpt-new",
            **(row | {"outputPricePerMTok": "12"}),
        )
        refused = await post_form(
            client,
            "/admin/pricing",
            "/admin/pricing/save",
            modelId="gpt-new",
            **(row | {"outputPricePerMTok": "-3"}),
        )
    assert saved.status_code == 303
    assert refused.status_code == 400 and 'id="model-1-outputPricePerMTok-error"' in refused.text
    async with gateway.state.sessions() as session:
        stored = await load_model(session, "gpt-new")
    assert stored is not None and stored.output_price_nanos == 12_000_000_000


async def test_a_model_id_with_html_is_refused_and_escaped(gateway: AppHarness) -> None:
    await make_admin(gateway)
    async with signed_in(gateway, "root") as client:
        response = await post_form(
            client,
            "/admin/pricing",
            "/admin/pricing",
            **(NEW_MODEL | {"modelId": "<script>alert(1)</script>"}),
        )
    assert response.status_code == 400
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;" in response.text


async def test_saving_a_model_deleted_meanwhile_says_so_at_the_top(gateway: AppHarness) -> None:
    await make_admin(gateway)
    async with signed_in(gateway, "root") as client:
        row = {key: value for key, value in NEW_MODEL.items() if key != "modelId"}
        response = await post_form(client, "/admin/pricing", "/admin/pricing/save", modelId="gone", **row)
    assert response.status_code == 404
    assert "No model &#39;gone&#39;" in response.text


async def test_a_provider_the_operator_added_is_offered_for_models_and_factory_keys(
    gateway: AppHarness,
) -> None:
    admin = await make_admin(gateway)
    deepseek = {"name": "deepseek", "wireFormat": "openai", "baseUrl": "http://127.0.0.1:9/v1"}
    created = await gateway.client.post("/api/admin/providers", headers=admin.auth, json=deepseek)
    assert created.status_code == 201, created.text
    async with signed_in(gateway, "root") as client:
        pricing = await client.get("/admin/pricing")
        factory_keys = await client.get("/factory-keys")
        added = await post_form(
            client, "/admin/pricing", "/admin/pricing", **(NEW_MODEL | {"provider": "deepseek"})
        )
    assert ">deepseek</option>" in pricing.text
    assert ">deepseek</option>" in factory_keys.text
    assert added.status_code == 303
    async with gateway.state.sessions() as session:
        row = await load_model(session, "gpt-new")
    assert row is not None and row.provider == "deepseek"
