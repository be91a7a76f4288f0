"""Outboxes: envelopes waiting to be written on one stream, written in batches.

An outbox queues envelopes for one direction of one stream and writes them
in batches: a lone envelope goes out at once, and whatever piles up while a
write is under way leaves together in one ENVELOPE_KIND_BATCH message, so
that grpc's per-message cost is paid once per batch, not once per envelope.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from actorgrpc.core.flow import Gate
from actorgrpc.remote.envelopes import BATCH, MAX_BATCH, MAX_BATCH_BYTES, Envelope
from actorgrpc.v1 import mailbox_pb2

__all__ = ["Outbox"]


def _retrieve(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()


class Outbox:
    """Envelopes waiting to be written on one stream; IO loop only.

    Writes start in the frame that queues the envelope, not in a writer task
    a loop turn later: a lone message leaves at once. gRPC allows one write at
    a time per stream, so while one is under way the next envelopes wait and
    leave together when it completes. The write coroutines are driven by
    callbacks on the futures they wait for, as a task would drive them.
    """

    def __init__(
        self,
        write: Callable[[mailbox_pb2.Envelope], Coroutine[Any, Any, Any]],
        gate: Gate | None = None,
    ) -> None:
        self._write = write
        #: Closed while the queue is full (the peer reads slower than we write).
        self.gate = gate or Gate()
        self._loop = asyncio.get_running_loop()
        self._items: deque[mailbox_pb2.Envelope] = deque()
        self._closing = False
        self._busy = False  # a write is under way (grpc allows one at a time)
        self._held = False  # the caller writes soon itself (see hold)
        self.closed = False
        # Done when the outbox has written everything after close(), or failed.
        self._finished: asyncio.Future[None] = self._loop.create_future()
        # The error is also seen by whoever awaits run(); no "never retrieved" log.
        self._finished.add_done_callback(_retrieve)

    def put(self, env: mailbox_pb2.Envelope) -> bool:
        """Queue ``env`` and start writing it if no write is under way.

        False when the outbox no longer writes.
        """
        if self.closed:
            return False
        items = self._items
        items.append(env)
        if not self._busy and not self._held:
            self._pump()
        if len(items) >= self.gate.limit:
            self.gate.update(len(items))
        return True

    def __len__(self) -> int:
        return len(self._items)

    async def run(self) -> None:
        """Wait until closed and empty; raises what broke the stream."""
        await asyncio.shield(self._finished)

    def hold(self) -> None:
        """Queue without writing until ``release``.

        For a caller about to queue several envelopes that should leave together.
        """
        self._held = True

    def release(self) -> None:
        """End ``hold`` and write what is queued."""
        self._held = False
        if not self._busy:
            self._pump()

    def close(self) -> None:
        """Finish writing what is queued, then stop."""
        self._closing = True
        self.release()

    def _pump(self) -> None:
        """Start writes until one is under way or nothing waits."""
        items = self._items
        while items and not self._busy and not self._held and not self.closed:
            self._busy = True
            self._resume(self._write(self._next_message()), None)
        if self._closing and not items and not self._busy:
            self._finish(None)

    def _resume(self, coro: Coroutine[Any, Any, Any], resumed: object) -> None:
        """Run a write until it waits; it resumes when what it waits for is done.

        ``resumed`` is None on the first step (from _pump), else the future
        the write waited for (or True after a bare yield).
        """
        try:
            waiting = coro.send(None)
        except StopIteration:
            self._busy = False
            if resumed is not None:  # resumed by a callback: go on with what waits
                self._pump()
            return
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # the stream broke, or the call was cancelled
            self._busy = False
            self._finish(exc)
            return
        if waiting is None:  # a bare yield: go on next turn
            self._loop.call_soon(self._resume, coro, True)
        else:
            # asyncio's own protocol for whoever drives a coroutine, as Task does.
            waiting._asyncio_future_blocking = False  # noqa: SLF001
            waiting.add_done_callback(partial(self._resume, coro))

    def _finish(self, error: BaseException | None) -> None:
        if self.closed:
            return
        self.closed = True
        self._items.clear()
        self.gate.update(0)  # waiters find it closed rather than wait on
        if error is None:
            self._finished.set_result(None)
        else:
            self._finished.set_exception(error)

    def _next_message(self) -> mailbox_pb2.Envelope:
        """Take the next stream message off the queue: a lone envelope, or a batch."""
        items = self._items
        if len(items) == 1:
            message = items.popleft()
        else:
            message = Envelope(kind=BATCH)
            batch = message.batch
            size = 0
            while items and len(batch) < MAX_BATCH and size < MAX_BATCH_BYTES:
                env = items.popleft()
                size += env.ByteSize()
                batch.append(env)
        # What is being written no longer counts against the queue's limit.
        self.gate.update(len(items))
        return message
