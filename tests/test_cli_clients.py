"""The real CLIs the client tests drive are installed and start (the harness of tests/cli_clients.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cli_clients import cli_environment


def version_of(cli: Path, home: Path) -> str:
    out = subprocess.run(
        [str(cli), "--version"], env=cli_environment(home), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_claude_code_is_installed_at_the_pinned_version(claude_cli: Path, tmp_path: Path) -> None:
    assert version_of(claude_cli, tmp_path) == "2.1.332 (Claude Code)"


def test_codex_cli_is_installed_at_the_pinned_version(codex_cli: Path, tmp_path: Path) -> None:
    assert version_of(codex_cli, tmp_path) == "codex-cli 0.171.0"
