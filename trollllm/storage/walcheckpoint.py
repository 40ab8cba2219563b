"""Keeping the embedded database's write-ahead log short, off the event loop.

SQLite's own checkpoints run inside a commit, which on the event loop would stall every request for
milliseconds. `WalCheckpointer` instead copies the WAL into the database file from a thread of its own,
every half second, without blocking anyone (a passive checkpoint).

That alone is not enough under steady load: the WAL only starts over from its beginning once a
checkpoint has copied all of it, and some write always commits while a passive checkpoint runs, so the
file would grow without end (and every commit would extend it, which costs more than overwriting). So
once the WAL is long, the runner holds its own writers off for a moment (`restart`: they queue without
blocking the loop) while a RESTART checkpoint copies the little the passive pass left; the next write
then starts the WAL over.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading

logger = logging.getLogger("trollllm.db")

CHECKPOINT_INTERVAL_S = 0.5
# Past this many WAL frames (a page each), the WAL is made to start over.
RESTART_AFTER_FRAMES = 1000
# A WAL that starts over is truncated to this size (set on the writing connection).
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
# How long a RESTART waits for other processes' writers and readers before it gives up until next time
# (our own writers wait for it meanwhile, so it must stay short).
_RESTART_WAIT_MS = 100


class WalCheckpointer:
    """Checkpoints one database's WAL from a thread; tells the writer when the WAL should start over."""

    def __init__(self, path: str, interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._connection.execute(f"PRAGMA busy_timeout={_RESTART_WAIT_MS}")  # only RESTART ever waits
        self._in_use = threading.Lock()  # the connection serves the thread and `restart`, one at a time
        self._stop = threading.Event()
        self.restart_wanted = False
        """Set by the thread when the WAL is long; cleared once `restart` has run."""
        self._thread = threading.Thread(
            target=self._checkpoint_forever, args=(interval_s,), name="trollllm-wal-checkpoint", daemon=True
        )
        self._thread.start()

    def _checkpoint_forever(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            if self._checkpoint("PASSIVE") >= RESTART_AFTER_FRAMES:
                self.restart_wanted = True

    def _checkpoint(self, mode: str) -> int:
        """Run one checkpoint; the WAL's length in frames before it (0 after an error, logged)."""
        with self._in_use:
            if self._stop.is_set():  # closing (a restart scheduled just before `close`)
                return 0
            try:
                _busy, frames, _copied = self._connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            except sqlite3.Error:
                logger.warning("WAL checkpoint failed; retrying", exc_info=True)
                return 0
        return int(frames)

    async def restart(self, write_lock: asyncio.Lock) -> None:
        """Checkpoint the whole WAL while this process's writers wait on `write_lock`.

        The next write then starts the WAL from its beginning. The checkpoint runs on a worker thread, so
        the event loop (streams, reads) keeps going meanwhile.
        """
        try:
            async with write_lock:
                await asyncio.to_thread(self._checkpoint, "RESTART")
        finally:
            self.restart_wanted = False

    def close(self) -> None:
        """Stop the thread and close the connection."""
        self._stop.set()
        self._thread.join(timeout=5)
        with self._in_use:
            self._connection.close()
