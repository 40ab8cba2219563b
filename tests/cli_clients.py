"""The real coding-agent CLIs as test clients: Claude Code (`claude`) and Codex CLI (`codex`).

`./test` installs them once with `tests/clients/install` into a cache folder outside the repository and passes
that folder in `TROLLLLM_CLIENTS_DIR`. Where they are missing (no `node`/`npm`, or the install failed), every
test that needs one skips with one loud line at the end of the run; under `CI=true` that is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from services import HOW_TO_PROVIDE

CLIENTS_DIR = Path(
    os.environ.get("TROLLLLM_CLIENTS_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trollllm-test-clients"
)
HOW_TO_PROVIDE["claude-code"] = (
    "Claude Code and Codex CLI: node and npm on PATH, then ./test installs tests/clients/package.json into "
    f"{CLIENTS_DIR}"
)
HOW_TO_PROVIDE["codex"] = HOW_TO_PROVIDE["claude-code"]


def cli_path(name: str) -> Path | None:
    """The installed CLI `name`, or None."""
    path = CLIENTS_DIR / "node_modules" / ".bin" / name
    return path if path.exists() and os.access(path, os.X_OK) else None


def cli_environment(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment for a CLI run: HOME in a temp dir, the cache's node first on PATH, nothing of
    this process's secrets or proxies."""
    bin_dir = CLIENTS_DIR / "node_modules" / ".bin"
    keep = {k: v for k, v in os.environ.items() if k in {"LANG", "LC_ALL", "TERM", "TZ"}}
    return {
        **keep,
        "HOME": str(home),
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "NO_COLOR": "1",
        **extra,
    }


@pytest.fixture(scope="session")
def claude_cli() -> Path:
    """The `claude` binary of @anthropic-ai/claude-code."""
    from conftest import require_service

    path = cli_path("claude")
    require_service("claude-code", path is not None)
    assert path is not None
    return path


@pytest.fixture(scope="session")
def codex_cli() -> Path:
    """The `codex` launcher of @openai/codex."""
    from conftest import require_service

    path = cli_path("codex")
    require_service("codex", path is not None)
    assert path is not None
    return path
