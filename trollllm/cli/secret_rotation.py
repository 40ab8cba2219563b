"""`trollllm rotate-secret`: re-encrypt every stored secret under a new server secret."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from trollllm.cli.running import Commands, running_app
from trollllm.settings import Settings

NEW_SECRET_ENV = "TROLLLLM_NEW_SECRET"  # noqa: S105 (the variable's name, not a secret)


def add_rotate_secret(commands: Commands[argparse.ArgumentParser]) -> None:
    """Register `rotate-secret`."""
    rotate = commands.add_parser(
        "rotate-secret",
        help=f"re-encrypt every stored secret under a new server secret (from {NEW_SECRET_ENV}; generated "
        "when the secret is the data dir's)",
    )
    rotate.set_defaults(handler=_rotate_secret)


def _rotate_secret(settings: Settings, _args: argparse.Namespace) -> int:
    """`trollllm rotate-secret`: re-encrypt every stored secret under a new server secret.

    The new secret comes from `TROLLLLM_NEW_SECRET`; when the current one is the generated development
    secret in the data dir, a new one is generated and replaces that file once the database is rewritten
    (it is written beside it first, so a failed rotation leaves the old file in use).
    """
    import secrets

    from trollllm.settings import SECRET_FILE_NAME, resolve_secret

    generated = settings.secret is None or not settings.secret.get_secret_value()
    new_secret = os.environ.get(NEW_SECRET_ENV, "").strip()
    if not new_secret:
        if not generated:
            print(f"error: set {NEW_SECRET_ENV} to the new secret (at least 32 characters)", file=sys.stderr)
            return 2
        new_secret = secrets.token_hex(32)
    if len(new_secret) < 32:
        print(f"error: {NEW_SECRET_ENV} must be at least 32 characters long", file=sys.stderr)
        return 2
    if new_secret.encode() == resolve_secret(settings):
        print(f"error: {NEW_SECRET_ENV} is the current secret", file=sys.stderr)
        return 2
    # Imported once the input is checked: a refusal answers at once, without loading the app.
    from trollllm.app import create_app
    from trollllm.keyrotation.service import RotationRefused, rotate_secret

    secret_file = settings.data_dir / SECRET_FILE_NAME
    pending = secret_file.with_name(SECRET_FILE_NAME + ".new")
    if generated:
        fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(new_secret)
            handle.flush()
            os.fsync(handle.fileno())

    async def run() -> object:
        async with running_app(create_app(settings)) as state:
            return await rotate_secret(state.sessions, state.keybox, new_secret.encode())

    try:
        report = asyncio.run(run())
    except RotationRefused as exc:
        pending.unlink(missing_ok=True)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BaseException:
        pending.unlink(missing_ok=True)
        raise
    print(f"re-encrypted under the new secret: {report}")
    if generated:
        os.replace(pending, secret_file)
        print(f"the new secret is in {secret_file}; restart the gateway (everyone signs in again)")
    else:
        print(
            "now set TROLLLLM_SECRET to the new secret on every instance and restart them "
            "(dashboard sessions end: everyone signs in again)"
        )
    return 0
