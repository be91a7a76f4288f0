"""Envelopes and outboxes: the stream protocol shared by servers and clients.

An outbox queues envelopes for one direction of one stream and writes them
in batches: a lone envelope goes out at once, and whatever piles up while a
write is under way leaves together in one ENVELOPE_KIND_BATCH message, so
that grpc's per-message cost is paid once per batch, not once per envelope.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from actorgrpc import wire
from actorgrpc.errors import ResourceExhausted, error_to_pb
from actorgrpc.flow import Gate
from actorgrpc.v1 import mailbox_pb2

__all__ = ["Outbox", "check_size", "expand", "make_error_reply", "make_reply"]

Envelope = mailbox_pb2.Envelope
REQUEST = mailbox_pb2.ENVELOPE_KIND_REQUEST
REPLY = mailbox_pb2.ENVELOPE_KIND_REPLY
BATCH = mailbox_pb2.ENVELOPE_KIND_BATCH

#: Most envelopes, and most bytes, carried in one stream message.
MAX_BATCH = 512
MAX_BATCH_BYTES = 1024 * 1024


def expand(env: mailbox_pb2.Envelope) -> Iterator[mailbox_pb2.Envelope]:
    """The envelopes a stream message carries (itself, or its batch)."""
    if env.kind == BATCH:
        yield from env.batch
    else:
        yield env


# Results whose encoding is a few bytes: their replies need no size check.
_SMALL = frozenset({type(None), bool, int, float})


def make_reply(
    request_id: int, result: Any, *, allow_pickle: bool, limit: int = 0
) -> mailbox_pb2.Envelope:
    """A reply carrying ``result``; an unencodable or oversized one becomes an error reply."""
    env = Envelope(id=request_id, kind=REPLY)
    try:
        wire.encode_into(env.result, result, allow_pickle=allow_pickle)
        if limit and type(result) not in _SMALL:
            check_size(env, limit, "reply")
    except Exception as exc:
        return make_error_reply(request_id, exc)
    return env


def check_size(env: mailbox_pb2.Envelope, limit: int, what: str, action: str = "") -> None:
    """Raise ResourceExhausted when ``env`` is bigger than ``limit`` bytes."""
    size = env.ByteSize()
    if size > limit:
        what = f"{what} for {action!r}" if action else what
        raise ResourceExhausted(
            f"{what} of {size} bytes exceeds the limit of {limit} bytes (max_message_size)"
        )


def make_error_reply(request_id: int, exc: BaseException) -> mailbox_pb2.Envelope:
    """A reply carrying the error ``exc``."""
    return Envelope(id=request_id, kind=REPLY, error=error_to_pb(exc))


class Outbox:
    """Envelopes waiting to be written on one stream; IO loop only."""

    def __init__(
        self, write: Callable[[mailbox_pb2.Envelope], Awaitable[Any]], gate: Gate | None = None
    ) -> None:
        self._write = write
        #: Closed while the queue is full (the peer reads slower than we write).
        self.gate = gate or Gate()
        self._items: deque[mailbox_pb2.Envelope] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._busy = False  # a write is under way (grpc allows one at a time)
        self.closed = False

    def put(self, env: mailbox_pb2.Envelope) -> bool:
        """Queue ``env``; False when the outbox no longer writes."""
        if self.closed:
            return False
        items = self._items
        items.append(env)
        self._wakeup.set()
        if len(items) >= self.gate.limit:
            self.gate.update(len(items))
        return True

    def __len__(self) -> int:
        return len(self._items)

    async def run(self) -> None:
        """Write until closed and empty."""
        items = self._items
        try:
            while True:
                if not items or self._busy:
                    if self._closing and not items:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                self._busy = True
                try:
                    await self._write_next()
                finally:
                    self._busy = False
        finally:
            self.closed = True
            self.gate.update(0)  # waiters find it closed rather than wait on

    async def flush(self) -> None:
        """Write what is queued from the calling task, if no write is under way.

        A server stream calls it after a request whose reply came at once:
        the reply leaves a loop turn sooner than through the writer task.
        """
        if self._busy or not self._items or self.closed:
            return
        self._busy = True
        try:
            await self._write_next()
        except Exception:
            # The stream is broken: the writer task finds out and ends.
            self._closing = True
            self._items.clear()
        finally:
            self._busy = False
            self._wakeup.set()

    async def _write_next(self) -> None:
        """Write the next stream message: a lone envelope, or a batch of what waits."""
        items = self._items
        if len(items) == 1:
            await self._write(items.popleft())
            self.gate.update(0)
            return
        batch = Envelope(kind=BATCH)
        size = 0
        while items and len(batch.batch) < MAX_BATCH and size < MAX_BATCH_BYTES:
            env = items.popleft()
            size += env.ByteSize()
            batch.batch.append(env)
        await self._write(batch)
        self.gate.update(len(items))

    def close(self) -> None:
        """Finish writing what is queued, then stop."""
        self._closing = True
        self._wakeup.set()
