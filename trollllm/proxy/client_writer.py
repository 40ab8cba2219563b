"""Writing a relayed stream to its client, with the client write deadline (SPEC §4, issue 29).

A client that stops reading must not stall the relay (and its request's settlement): a write still
waiting on the client past `client_write_timeout_s` counts the client as gone, and the relay reads the
upstream on to its usage and charges that. A broken connection counts as gone at once.

The deadline costs no timer per write (a stream makes one write per event): one timer per stream, armed
at a write when none is armed, and moved on lazily. When it fires it looks at the write in progress, if
any: one past the deadline is cancelled (the task is cancelled, and the cancellation taken back, as
`asyncio.timeout` does); one still within it re-arms the timer for its own deadline; with none in
progress the timer stays off until the next write. A stream therefore arms about one timer per deadline
period instead of one per event.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import Message, Send

logger = logging.getLogger("trollllm.proxy")


class ClientWriter:
    """Sends one response's messages to its client until the client is gone (see the module docstring)."""

    __slots__ = (
        "_cancelling",
        "_expired",
        "_loop",
        "_request_id",
        "_send",
        "_since",
        "_task",
        "_timeout_s",
        "_timer",
        "connected",
    )

    def __init__(self, send: Send, timeout_s: float, request_id: str) -> None:
        self._send = send
        self._timeout_s = timeout_s
        self._request_id = request_id
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None, "a response is sent from a task"
        self._task = task
        self._since: float | None = None  # when the write in progress started (event loop time)
        self._timer: asyncio.TimerHandle | None = None
        self._expired = False  # the timer cancelled the task for the write in progress
        self._cancelling = 0  # the task's cancellation count before the timer cancelled it
        self.connected = True
        """False once the client is gone (its connection broke, or a write outlived the deadline)."""

    async def write(self, message: Message) -> None:
        """Send `message`, unless the client is gone; a failed or overdue write marks it gone."""
        if not self.connected:
            return
        since = self._since = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_at(since + self._timeout_s, self._on_timer)
        try:
            await self._send(message)
        except asyncio.CancelledError:
            if not self._expired or self._task.uncancel() > self._cancelling:
                raise  # cancelled by someone else (the server's shutdown) as well: theirs to handle
            self._expired = False
            self.connected = False
            logger.warning(
                "client stopped reading the stream; relaying the rest to its usage without it",
                extra={"request_id": self._request_id, "write_timeout_s": self._timeout_s},
            )
        except OSError:
            self.connected = False  # keep reading upstream to its usage, then charge that
        finally:
            self._since = None

    def close(self) -> None:
        """The response is over: no timer is left behind."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _on_timer(self) -> None:
        self._timer = None
        since = self._since
        if since is None or self._expired:  # no write in progress: armed again by the next one
            return
        due = since + self._timeout_s
        if self._loop.time() >= due:
            self._expired = True
            self._cancelling = self._task.cancelling()
            self._task.cancel()
        else:
            self._timer = self._loop.call_at(due, self._on_timer)
