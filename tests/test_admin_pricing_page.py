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


LONG_CONTEXT_FORM = {
    "displayName": "GPT New",
    "webSearchPricePerKCalls": "10",
    "lcThresholdTokens": "200000",
    "lcInputPricePerMTok": "6",
    "lcOutputPricePerMTok": "22.5",
    "lcCacheWritePricePerMTok": "7.5",
    "lcCacheHitPricePerMTok": "0.6",
}


async def test_the_long_context_tier_web_search_and_display_name_are_added_and_kept_on_save(
    gateway: AppHarness,
) -> None:
    await make_admin(gateway)
    async with signed_in(gateway, "root") as client:
        added = await post_form(client, "/admin/pricing", "/admin/pricing", **NEW_MODEL, **LONG_CONTEXT_FORM)
        assert added.status_code == 303, added.text
        page = await client.get("/admin/pricing")
        assert 'value="22.5"' in page.text and 'value="GPT New"' in page.text
        row = {key: value for key, value in NEW_MODEL.items() if key != "modelId"} | LONG_CONTEXT_FORM
        saved = await post_form(
            client,
            "/admin/pricing",
            "/admin/pricing/save",
            modelId="gpt-new",
            **(row | {"outputPricePerMTok": "11"}),
        )
        assert saved.status_code == 303
    async with gateway.state.sessions() as session:
        stored = await load_model(session, "gpt-new")
    assert stored is not None and stored.output_price_nanos == 11_000_000_000
    assert (
        stored.long_context_threshold_tokens == 200_000
        and stored.long_context_output_price_nanos == 22_500_000_000
    )
    assert stored.web_search_price_nanos == 10_000_000_000 and stored.display_name == "GPT New"


async def test_a_long_context_tier_without_its_threshold_is_refused_next_to_it(gateway: AppHarness) -> None:
    await make_admin(gateway)
    async with signed_in(gateway, "root") as client:
        response = await post_form(
            client,
            "/admin/pricing",
            "/admin/pricing",
            **NEW_MODEL,
            **(LONG_CONTEXT_FORM | {"lcThresholdTokens": ""}),
        )
    assert response.status_code == 400 and 'id="new-lcThresholdTokens-error"' in response.text
    async with gateway.state.sessions() as session:
        assert await load_model(session, "gpt-new") is None


async def test_the_refused_anthropic_betas_are_saved_from_the_page(gateway: AppHarness) -> None:
    await make_admin(gateway)
    async with signed_in(gateway, "root") as client:
        saved = await post_form(
            client, "/admin/pricing", "/admin/pricing/betas", refused="files-api-*\nmcp-client-2025-04-04\n"
        )
        assert saved.status_code == 303
        page = await client.get("/admin/pricing")
        refused = await post_form(client, "/admin/pricing", "/admin/pricing/betas", refused="not a value!")
    assert "files-api-*\nmcp-client-2025-04-04</textarea>" in page.text
    assert refused.status_code == 400 and "not an anthropic-beta value" in refused.text


async def test_a_model_of_kind_embedding_is_added_and_keeps_its_kind_on_save(gateway: AppHarness) -> None:
    await make_admin(gateway)
    embedding = NEW_MODEL | {"modelId": "embed-new", "kind": "embedding"}
    async with signed_in(gateway, "root") as client:
        added = await post_form(client, "/admin/pricing", "/admin/pricing", **embedding)
        assert added.status_code == 303, added.text
        page = await client.get("/admin/pricing")
        row = {key: value for key, value in embedding.items() if key != "modelId"}
        saved = await post_form(
            client,
            "/admin/pricing",
            "/admin/pricing/save",
            modelId="embed-new",
            **(row | {"outputPricePerMTok": "0"}),
        )
        assert saved.status_code == 303
        refused = await post_form(
            client, "/admin/pricing", "/admin/pricing", **(NEW_MODEL | {"kind": "audio"})
        )
    assert "<option selected>embedding</option>" in page.text
    assert refused.status_code == 400 and 'id="new-kind-error"' in refused.text
    async with gateway.state.sessions() as session:
        stored = await load_model(session, "embed-new")
        assert await load_model(session, "gpt-new") is None
    assert stored is not None and stored.kind == "embedding" and stored.output_price_nanos == 0


NEW_PROVIDER = {
    "name": "deepseek",
    "displayName": "DeepSeek",
    "wireFormat": "openai",
    "baseUrl": "https://api.deepseek.com/v1",
    "responsesApi": "on",
}


async def test_an_admin_adds_a_provider_with_the_responses_api_then_edits_it(gateway: AppHarness) -> None:
    admin = await make_admin(gateway)
    async with signed_in(gateway, "root") as client:
        added = await post_form(client, "/admin/pricing", "/admin/pricing/providers", **NEW_PROVIDER)
        assert added.status_code == 303, added.text
        page = await client.get("/admin/pricing")
        row = NEW_PROVIDER | {"wireFormat": "anthropic", "baseUrl": "https://api.example.test/v1"}
        del row["responsesApi"]  # an unchecked box is not posted
        saved = await post_form(client, "/admin/pricing", "/admin/pricing/providers/save", **row)
        assert saved.status_code == 303, saved.text
    assert "Added provider deepseek" in page.text and 'value="https://api.deepseek.com/v1"' in page.text
    listed = await gateway.client.get("/api/admin/providers", headers=admin.auth)
    deepseek = next(row for row in listed.json() if row["name"] == "deepseek")
    assert deepseek == deepseek | {
        "displayName": "DeepSeek",
        "wireFormat": "anthropic",
        "baseUrl": "https://api.example.test/v1",
        "responsesApi": False,
    }
    audit = await gateway.client.get("/api/admin/audit", headers=admin.auth)
    actions = {entry["action"] for entry in audit.json()["entries"] if entry["target"] == "provider:deepseek"}
    assert actions == {"provider.create", "provider.update"}


async def test_a_bad_provider_name_and_api_root_are_refused_next_to_their_fields(gateway: AppHarness) -> None:
    admin = await make_admin(gateway)
    async with signed_in(gateway, "root") as client:
        bad_name = await post_form(
            client, "/admin/pricing", "/admin/pricing/providers", **(NEW_PROVIDER | {"name": "Deep Seek!"})
        )
        bad_url = await post_form(
            client, "/admin/pricing", "/admin/pricing/providers", **(NEW_PROVIDER | {"baseUrl": "ftp://x"})
        )
        taken = await post_form(
            client, "/admin/pricing", "/admin/pricing/providers", **(NEW_PROVIDER | {"name": "openai"})
        )
        bad_row = await post_form(
            client,
            "/admin/pricing",
            "/admin/pricing/providers/save",
            **(NEW_PROVIDER | {"name": "openai", "baseUrl": ""}),
        )
    assert bad_name.status_code == 400 and 'id="new-provider-name-error"' in bad_name.text
    assert 'value="Deep Seek!"' in bad_name.text  # what was typed is kept
    assert bad_url.status_code == 400 and 'id="new-provider-baseUrl-error"' in bad_url.text
    assert taken.status_code == 409 and 'id="new-provider-name-error"' in taken.text
    assert bad_row.status_code == 400 and 'id="provider-' in bad_row.text and "-baseUrl-error" in bad_row.text
    listed = await gateway.client.get("/api/admin/providers", headers=admin.auth)
    assert "deepseek" not in {row["name"] for row in listed.json()}
    assert next(row for row in listed.json() if row["name"] == "openai")["baseUrl"] != ""
