"""`trollllm create-admin USERNAME`: create an admin, or promote a user and set the password."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from trollllm.cli.running import Commands, running_app
from trollllm.settings import Settings


def add_create_admin(commands: Commands[argparse.ArgumentParser]) -> None:
    """Register `create-admin`."""
    admin = commands.add_parser(
        "create-admin", help="create an admin, or promote a user and set the password"
    )
    admin.add_argument("username")
    admin.add_argument("--password", help="prompted for when omitted")
    admin.set_defaults(handler=_create_admin)


def _create_admin(settings: Settings, args: argparse.Namespace) -> int:
    password = args.password
    if password is None and not sys.stdin.isatty():
        print("error: no terminal to ask for the password on; use --password", file=sys.stderr)
        return 2
    if password is None:
        password = getpass.getpass("Password for the admin: ")
        if password != getpass.getpass("Repeat the password: "):
            print("error: the passwords differ", file=sys.stderr)
            return 2
    if not 8 <= len(password) <= 128:
        print("error: the password must be 8 to 128 characters long", file=sys.stderr)
        return 2
    # Imported once the input is checked: a refusal answers at once, without loading the app.
    from trollllm.accounts.service import ensure_admin
    from trollllm.app import create_app

    async def run() -> bool:
        async with running_app(create_app(settings)) as state:
            return await ensure_admin(state, args.username, password)

    created = asyncio.run(run())
    print(f"admin {args.username!r} {'created' if created else 'promoted, password set'}")
    return 0
