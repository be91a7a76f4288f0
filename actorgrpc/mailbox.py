"""Envelopes and outboxes: the stream protocol shared by servers and clients.

An outbox queues envelopes for one direction of one stream and writes them
in batches: a lone envelope goes out at once, and whatever piles up while a
write is under way leaves together in one ENVELOPE_KIND_BATCH message, so
that grpc's per-message cost is paid once per batch, not once per envelope.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from functools import partial
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


def expand(env: mailbox_pb2.Envelope) -> Iterable[mailbox_pb2.Envelope]:
    """The envelopes a stream message carries (itself, or its batch)."""
    # A sequence, not a generator: one per stream message, on the hot path.
    return env.batch if env.kind == BATCH else (env,)


# Results whose encoding is a few bytes.
_SMALL = frozenset({type(None), bool, int, float})


def _fits(result: Any, limit: int) -> bool:
    """True when a reply carrying ``result`` is surely within ``limit`` bytes.

    Spares the common replies ``ByteSize``, which in upb serializes the
    whole message: for a 1 MB result, a second serialization.
    """
    t = type(result)
    if t in _SMALL:
        return True
    if t is bytes:
        return len(result) + 64 <= limit
    if t is str:
        return 4 * len(result) + 64 <= limit  # UTF-8: at most 4 bytes a character
    return False


def make_reply(
    request_id: int, result: Any, *, allow_pickle: bool, limit: int = 0
) -> mailbox_pb2.Envelope:
    """A reply carrying ``result``; an unencodable or oversized one becomes an error reply."""
    env = Envelope(id=request_id, kind=REPLY)
    try:
        wire.encode_into(env.result, result, allow_pickle=allow_pickle)
        if limit and not _fits(result, limit):
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
            waiting._asyncio_future_blocking = False
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
