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
from actorgrpc.errors import error_to_pb
from actorgrpc.v1 import mailbox_pb2

__all__ = ["Outbox", "expand", "make_error_reply", "make_reply"]

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


def make_reply(request_id: int, result: Any, *, allow_pickle: bool) -> mailbox_pb2.Envelope:
    """A reply carrying ``result``; an unencodable result becomes an error reply."""
    env = Envelope(id=request_id, kind=REPLY)
    try:
        wire.encode_into(env.result, result, allow_pickle=allow_pickle)
    except Exception as exc:
        return make_error_reply(request_id, exc)
    return env


def make_error_reply(request_id: int, exc: BaseException) -> mailbox_pb2.Envelope:
    """A reply carrying the error ``exc``."""
    return Envelope(id=request_id, kind=REPLY, error=error_to_pb(exc))


class Outbox:
    """Envelopes waiting to be written on one stream; IO loop only."""

    def __init__(self, write: Callable[[mailbox_pb2.Envelope], Awaitable[Any]]) -> None:
        self._write = write
        self._items: deque[mailbox_pb2.Envelope] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self.closed = False

    def put(self, env: mailbox_pb2.Envelope) -> bool:
        """Queue ``env``; False when the outbox no longer writes."""
        if self.closed:
            return False
        self._items.append(env)
        self._wakeup.set()
        return True

    def __len__(self) -> int:
        return len(self._items)

    async def run(self) -> None:
        """Write until closed and empty."""
        items = self._items
        try:
            while True:
                if not items:
                    if self._closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                if len(items) == 1:
                    await self._write(items.popleft())
                    continue
                batch = Envelope(kind=BATCH)
                size = 0
                while items and len(batch.batch) < MAX_BATCH and size < MAX_BATCH_BYTES:
                    env = items.popleft()
                    size += env.ByteSize()
                    batch.batch.append(env)
                await self._write(batch)
        finally:
            self.closed = True

    def close(self) -> None:
        """Finish writing what is queued, then stop."""
        self._closing = True
        self._wakeup.set()
