"""Backpressure: gates that close when a queue is full and slow its senders down.

A gate closes when its queue reaches ``limit`` and opens again when it has
drained to half of that. Plain code waits on it as on a threading.Event; the
IO loop awaits it: a server parks the envelopes for that one target meanwhile
(and tells a sender that understands it to hold them), and async senders
await it through ``room``; memory never grows unbounded.
"""

from __future__ import annotations

import asyncio
import threading

from actorgrpc.core.errors import ResourceExhausted
from actorgrpc.core.handoff import post

__all__ = ["DEFAULT_MAILBOX_LIMIT", "Gate", "stayed_full"]

#: Messages queued for one actor (or one stream) before its senders wait.
DEFAULT_MAILBOX_LIMIT = 10_000


class Gate:
    """Open while a queue has room."""

    __slots__ = ("_lock", "_open", "_waiters", "limit", "shut", "size")

    def __init__(self, limit: int = DEFAULT_MAILBOX_LIMIT) -> None:
        self.limit = limit
        #: The queue's length as last told (exact while shut: every change is
        #: told then; senders on the IO loop read it to bound what they queue).
        self.size = 0
        #: True while closed (read-only): mirrors the event for hot paths,
        #: which read it rather than call is_open(); both change under the lock.
        #: Thread hand-offs read it twice per request.
        self.shut = False
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def is_open(self) -> bool:
        """True while senders may go on."""
        return not self.shut

    def update(self, size: int) -> None:
        """Tell the gate how long its queue is now (any thread)."""
        self.size = size
        if size >= self.limit:
            if not self.shut:
                with self._lock:
                    self.shut = True
                    self._open.clear()
        elif self.shut and size <= self.limit // 2:
            with self._lock:
                if not self.shut:
                    return
                self.shut = False
                self._open.set()
                waiters, self._waiters = self._waiters, []
            for loop, fut in waiters:
                try:
                    post(loop, _wake, fut)
                except RuntimeError:
                    pass

    def wait(self, timeout: float | None) -> bool:
        """Block this thread until the gate opens; False after ``timeout`` seconds."""
        return self._open.wait(timeout)

    async def wait_async(self) -> None:
        """Wait on the running loop until the gate opens."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._open.is_set():
                return
            self._waiters.append((loop, fut))
        await fut


def stayed_full(target: str, timeout: float) -> ResourceExhausted:
    """The error of a sender that waited ``timeout`` seconds for room in vain."""
    return ResourceExhausted(
        f"the mailbox of {target} stayed full for {timeout:g}s: it reads "
        "slower than it is written to"
    )


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
