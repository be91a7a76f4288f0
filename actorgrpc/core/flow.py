"""Backpressure: gates that close when a queue is full and slow its senders down.

A gate closes when its queue reaches ``limit`` and opens again when it has
drained to half of that. Plain code waits on it as on a threading.Event; the
IO loop awaits it, and stops reading the stream meanwhile, so that gRPC's flow
control pushes back on the remote sender instead of memory growing.
"""

from __future__ import annotations

import asyncio
import threading

from actorgrpc.core.errors import ResourceExhausted
from actorgrpc.core.handoff import post

__all__ = ["DEFAULT_MAILBOX_LIMIT", "Gate"]

#: Messages queued for one actor (or one stream) before its senders wait.
DEFAULT_MAILBOX_LIMIT = 10_000


class Gate:
    """Open while a queue has room."""

    __slots__ = ("_lock", "_open", "_waiters", "limit", "shut")

    def __init__(self, limit: int = DEFAULT_MAILBOX_LIMIT) -> None:
        self.limit = limit
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

    def wait_for_room(self, timeout: float, target: str) -> None:
        """Block plain code until the gate opens; ResourceExhausted after ``timeout`` seconds."""
        if not self._open.wait(timeout):
            raise ResourceExhausted(
                f"the mailbox of {target} stayed full for {timeout:g}s: it reads "
                "slower than it is written to"
            )

    async def wait_async(self) -> None:
        """Wait on the running loop until the gate opens."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._open.is_set():
                return
            self._waiters.append((loop, fut))
        await fut


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
