"""PostgreSQL's connections, shared by the worker processes of one run (`./test` runs pytest-xdist).

The test server allows 100 connections and a `trollllm serve` process keeps up to 30: a cluster of
tests/instances.py (three on one database) reached 87 at once, so a cluster beside another worker's cluster
or tests runs out ("sorry, too many clients already"). The workers share a lock file: a cluster holds it
exclusively (`gateway_cluster`), each test database shared (conftest): a cluster has the server to itself,
the other tests share it with each other. Without workers (plain `pytest`, `-n 0`) it does nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class RunLock:
    """One process's hold on the run's lock file: shared or exclusive, either nested in the other."""

    def __init__(self) -> None:
        self.path: Path | None = None  # set in each worker (conftest); None: nothing to share
        self._fd: int | None = None
        self._shared = 0
        self._exclusive = 0

    def _flock(self, operation: int) -> None:
        if self.path is None:
            return
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, operation)

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """Held by a test with a database of its own: many at once, never beside an exclusive hold."""
        if not self._shared and not self._exclusive:
            self._flock(fcntl.LOCK_SH)
        self._shared += 1
        try:
            yield
        finally:
            self._shared -= 1
            if not self._shared and not self._exclusive:
                self._flock(fcntl.LOCK_UN)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Held while a cluster runs. From a shared hold, flock drops it before it waits (two workers
        that both convert cannot wait for each other)."""
        if not self._exclusive:
            self._flock(fcntl.LOCK_EX)
        self._exclusive += 1
        try:
            yield
        finally:
            self._exclusive -= 1
            if not self._exclusive:
                self._flock(fcntl.LOCK_SH if self._shared else fcntl.LOCK_UN)


POSTGRES_LOCK = RunLock()
