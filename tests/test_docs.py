"""Docs move with code: every setting and every CLI command is documented, and every `/v1` endpoint is in
the OpenAPI document `/docs` renders."""

from __future__ import annotations

from pathlib import Path

from conftest import AppHarness

from trollllm.cli import build_parser
from trollllm.proxy.endpoints import served_endpoints
from trollllm.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _env_names() -> list[str]:
    names = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if alias is not None and hasattr(alias, "choices"):
            names.append(str(alias.choices[0]))
        else:
            names.append(f"TROLLLLM_{name.upper()}")
    return names


def test_every_setting_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in _env_names() if f"`{name}`" not in readme and name not in readme]
    assert not missing


def test_every_setting_is_in_the_env_example() -> None:
    example = (ROOT / ".env.example").read_text()
    missing = [name for name in _env_names() if f"\n{name}=" not in "\n" + example]
    assert not missing


def test_every_cli_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    parser = build_parser()
    commands = next(action for action in parser._actions if action.dest == "command")
    missing = [name for name in commands.choices if f"`trollllm {name}" not in readme]  # type: ignore[union-attr]
    assert not missing


def test_readme_has_exactly_the_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    blocks = [block.split("```", 1)[0].strip() for block in setup.split("```sh\n")[1:]]
    assert blocks == ["./run", "./test"]


V1_OPERATIONS = {
    ("/v1/chat/completions", "post"),
    ("/v1/messages", "post"),
    ("/v1/messages/count_tokens", "post"),
    ("/v1/responses", "post"),
    ("/v1/responses/{response_id}", "get"),
    ("/v1/responses/{response_id}", "delete"),
    ("/v1/embeddings", "post"),
    ("/v1/models", "get"),
}


async def test_the_openapi_document_describes_every_v1_endpoint_with_its_authentication(
    gateway: AppHarness,
) -> None:
    document = (await gateway.client.get("/openapi.json")).json()
    paths = document["paths"]
    listed = {(path, method) for path in paths if path.startswith("/v1/") for method in paths[path]}
    assert listed == V1_OPERATIONS
    served = {(path, method.lower()) for path, methods in served_endpoints().items() for method in methods}
    assert served == V1_OPERATIONS, "every path the proxy serves, no more"
    schemes = document["components"]["securitySchemes"]
    assert schemes["gatewayKey"]["scheme"] == "bearer" and schemes["anthropicKey"]["name"] == "x-api-key"
    for path, method in V1_OPERATIONS:
        operation = document["paths"][path][method]
        assert operation["security"] == [{"gatewayKey": []}, {"anthropicKey": []}]
        assert "**Authentication**" in operation["description"]
        assert operation["summary"] != f"{method.upper()} {path}", f"{method} {path} is described by hand"
        assert "401" in operation["responses"]


async def test_the_openapi_document_opens_with_a_quick_start(gateway: AppHarness) -> None:
    info = (await gateway.client.get("/openapi.json")).json()["info"]
    assert "### Quick start" in info["description"]
    assert "/v1/chat/completions" in info["description"] and "sk-trollllm-" in info["description"]
