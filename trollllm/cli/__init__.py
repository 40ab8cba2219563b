"""The `trollllm` command: thin commands over the services, one module per group (`serve`, `database`,
`accounts`, `jobs`, `secret_rotation`); `running` holds what they share."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from trollllm.cli.accounts import add_create_admin
from trollllm.cli.database import add_export_import, add_migrate
from trollllm.cli.jobs import add_jobs
from trollllm.cli.secret_rotation import add_rotate_secret
from trollllm.cli.serve import add_serve
from trollllm.errors import CommandError, ConfigurationError
from trollllm.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every `trollllm` command."""
    parser = argparse.ArgumentParser(prog="trollllm", description="TrollLLM LLM API gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (add_serve, add_migrate, add_create_admin, add_jobs, add_rotate_secret, add_export_import):
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `trollllm` console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(Settings(), args)
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code
