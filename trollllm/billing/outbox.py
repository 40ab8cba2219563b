"""The settlement outbox: settlements the database refused, kept on local disk until they are replayed.

When `settle` fails after the upstream answered (the database is down, full or locked out), the money is
not lost: the settlement's inputs go to an append-only JSON Lines file in `<data dir>/outbox/`, written
and fsync'd before the response to the client completes. The outbox is replayed at start-up and by every
maintenance pass (before expired holds are swept), until the database takes it.

An append also marks the outbox as waiting: the next write the database takes (a request's hold) starts a
replay in the background at once (`replay_soon`), so the outbox empties as soon as the database is back.

A replay is idempotent by request id: a request whose log row exists was settled and is skipped; one the
sweeper already released (its log row says `unsettled`) is settled now, charging what is free. The
request log's unique request id makes two replays racing on one entry settle it once.

Each process appends to a file of its own; a replay takes the file's lock (`flock`), so several processes
sharing a data directory never replay one file at once, and an appender whose file was emptied and removed
meanwhile writes to the new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from trollllm.billing.holds import HeldRequest
from trollllm.billing.records import UNSETTLED, RequestRecord
from trollllm.billing.settlement import Charged, settle
from trollllm.money import Money, TokenUsage
from trollllm.storage.sqlprogram import Program, ProgramRunner, Query

logger = logging.getLogger("trollllm.billing.outbox")

_LOG_STATE = "SELECT error_type FROM request_logs WHERE request_id = :request_id"


class SettlementOutbox:
    """Append-only files of settlements waiting for the database, in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # One file per process (and per app): appends never interleave with another writer's.
        self._own = directory / f"settlements-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
        self._waiting = False  # entries wait for the database: the next write that succeeds replays them
        self._replaying: asyncio.Task[None] | None = None

    def append(
        self,
        held: HeldRequest,
        hold_id: int,
        cost: Money,
        usage: TokenUsage,
        record: RequestRecord,
        now: datetime,
    ) -> None:
        """Write one settlement durably (fsync'd). Blocking, and only on the failure path."""
        entry = {
            "held": {**asdict(held), "amount": held.amount.nanos},
            "hold_id": hold_id,
            "cost": cost.nanos,
            "usage": asdict(usage),
            "record": asdict(record),
            "now": now.isoformat(),
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        with _locked(self._own) as file:
            file.write(orjson.dumps(entry) + b"\n")
            file.flush()
            os.fsync(file.fileno())
        self._waiting = True
        logger.warning(
            "settlement written to the outbox; it is replayed when the database takes it",
            extra={"request_id": held.request_id, "cost_nanos": cost.nanos},
        )

    def depth(self) -> int:
        """Settlements waiting in every file of the directory."""
        total = 0
        for path in self._files():
            try:
                with path.open("rb") as file:
                    total += sum(1 for line in file if line.strip())
            except FileNotFoundError:
                continue
        return total

    def replay_soon(self, db: ProgramRunner) -> None:
        """A write just succeeded: replay what waits, in the background (one replay at a time)."""
        if not self._waiting or (self._replaying is not None and not self._replaying.done()):
            return
        self._waiting = False
        self._replaying = asyncio.create_task(self._replay_now(db), name="trollllm-outbox-replay")

    async def close(self) -> None:
        """Let a replay in progress finish."""
        if self._replaying is not None:
            with contextlib.suppress(Exception):
                await self._replaying

    async def _replay_now(self, db: ProgramRunner) -> None:
        try:
            await self.replay(db)
        except Exception:  # the top of a background task: the maintenance pass tries again
            self._waiting = True
            logger.exception("outbox replay failed; kept for the next write or maintenance pass")

    async def replay(self, db: ProgramRunner) -> int:
        """Settle every waiting entry the database takes; returns how many were settled now.

        An entry that fails again stays for the next replay; an entry already settled is dropped.
        """
        settled = 0
        for path in self._files():
            try:
                settled += await self._replay_file(path, db)
            except BlockingIOError:
                self._waiting = True  # another process is replaying it: look again later
                continue
        return settled

    async def _replay_file(self, path: Path, db: ProgramRunner) -> int:
        settled = 0
        with _locked(path, wait=False) as file:
            file.seek(0)
            lines = [line for line in file.read().splitlines() if line.strip()]
            waiting: list[bytes] = []
            for line in lines:
                try:
                    entry = orjson.loads(line)
                    program = replay_settlement(**_decoded(entry))
                except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
                    logger.error("unreadable outbox entry kept aside", extra={"entry": line[:200].decode()})
                    waiting.append(line)
                    continue
                try:
                    charged = await db.write(program)
                except Exception:
                    logger.warning("outbox replay failed; kept for the next pass", exc_info=True)
                    waiting.append(line)
                    continue
                if charged is not None:
                    settled += 1
            file.seek(0)
            file.truncate()
            if waiting:
                self._waiting = True
                file.write(b"".join(line + b"\n" for line in waiting))
            file.flush()
            os.fsync(file.fileno())
            if not waiting:
                path.unlink(missing_ok=True)  # noqa: ASYNC240 (a local file, on the rare failure path)
        if settled:
            logger.warning("replayed settlements from the outbox", extra={"settled": settled})
        return settled

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("settlements-*.jsonl"))


def replay_settlement(
    held: HeldRequest,
    hold_id: int,
    cost: Money,
    usage: TokenUsage,
    record: RequestRecord,
    now: datetime,
) -> Program[Charged | None]:
    """`settle` once per request id: None (nothing written) when the request is already settled."""
    rows = yield Query(_LOG_STATE, {"request_id": held.request_id})
    if rows and rows[0][0] != UNSETTLED:
        return None  # settled (an `unsettled` row is the sweeper's: `settle` replaces it)
    charged: Charged = yield from settle(held, hold_id, cost, usage, record, now)
    return charged


def _decoded(entry: dict[str, Any]) -> dict[str, Any]:
    held = dict(entry["held"])
    held["amount"] = Money(int(held["amount"]))
    return {
        "held": HeldRequest(**held),
        "hold_id": int(entry["hold_id"]),
        "cost": Money(int(entry["cost"])),
        "usage": TokenUsage(**entry["usage"]),
        "record": RequestRecord(**entry["record"]),
        "now": datetime.fromisoformat(entry["now"]),
    }


@contextmanager
def _locked(path: Path, *, wait: bool = True) -> Iterator[BinaryIO]:
    """`path` opened for appending under an exclusive lock; reopened if it was replaced while waiting."""
    while True:
        file = path.open("a+b")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            try:
                same = os.stat(path).st_ino == os.fstat(file.fileno()).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            file.close()
            raise
        if same:
            break
        file.close()  # emptied and removed by a replay while this waited: open the path again
        if not wait:
            raise BlockingIOError(f"{path} was replaced")
    try:
        yield file
    finally:
        file.close()  # and with it the lock
