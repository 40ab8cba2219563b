"""Docs move with code: every setting and every CLI command is documented."""

from __future__ import annotations

from pathlib import Path

from trollllm.cli import build_parser
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
