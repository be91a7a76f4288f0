"""Outboxes: when envelopes leave, in what batches, and how a stream's end shows.

The writer here is a coroutine that records what it is given and, when told
to, waits like a gRPC write waiting for its completion. The end-to-end tests
drive outboxes over real streams; these pin down the batching rules.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actorgrpc.core.flow import Gate
from actorgrpc.remote.envelopes import BATCH, REQUEST, Envelope, expand
from actorgrpc.remote.outbox import Outbox


class Writer:
    """Records stream messages; each write waits on ``gate`` while it is not set."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: BaseException | None = None

    async def __call__(self, message: Any) -> None:
        self.messages.append(message)
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail

    def ids(self) -> list[list[int]]:
        return [[env.id for env in expand(m)] for m in self.messages]


def env(i: int) -> Any:
    return Envelope(id=i, kind=REQUEST, target="a", action="ping")


async def until(predicate: Any, seconds: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


def test_a_lone_envelope_leaves_in_the_frame_that_queues_it() -> None:
    async def main() -> None:
        writer = Writer()
        writer.gate.clear()  # the write stays under way
        outbox = Outbox(writer)
        outbox.put(env(1))
        assert writer.ids() == [[1]]  # written before put() returned
        writer.gate.set()
        outbox.close()
        await asyncio.wait_for(outbox.run(), 5)

    asyncio.run(main())


def test_envelopes_queued_during_a_write_leave_in_one_batch() -> None:
    async def main() -> None:
        writer = Writer()
        writer.gate.clear()
        outbox = Outbox(writer)
        outbox.put(env(1))
        for i in range(2, 6):
            outbox.put(env(i))
        assert writer.ids() == [[1]]
        assert len(outbox) == 4
        writer.gate.set()
        await until(lambda: len(writer.messages) == 2)
        assert writer.messages[1].kind == BATCH
        assert writer.ids() == [[1], [2, 3, 4, 5]]
        outbox.close()
        await asyncio.wait_for(outbox.run(), 5)

    asyncio.run(main())


def test_hold_keeps_envelopes_until_release() -> None:
    async def main() -> None:
        writer = Writer()
        outbox = Outbox(writer)
        outbox.hold()
        outbox.put(env(1))
        outbox.put(env(2))
        assert writer.messages == []
        outbox.release()
        assert writer.ids() == [[1, 2]]
        outbox.close()
        await asyncio.wait_for(outbox.run(), 5)

    asyncio.run(main())


def test_close_writes_what_is_queued_then_run_returns() -> None:
    async def main() -> None:
        writer = Writer()
        writer.gate.clear()
        outbox = Outbox(writer)
        for i in range(1, 4):
            outbox.put(env(i))
        outbox.close()
        run = asyncio.ensure_future(outbox.run())
        await asyncio.sleep(0.01)
        assert not run.done()  # a write is still under way
        writer.gate.set()
        await asyncio.wait_for(run, 5)
        assert writer.ids() == [[1], [2, 3]]
        assert outbox.closed
        assert not outbox.put(env(9))  # nothing is taken after the end

    asyncio.run(main())


def test_a_failed_write_ends_the_outbox_and_run_raises_it() -> None:
    async def main() -> None:
        writer = Writer()
        writer.gate.clear()
        writer.fail = ConnectionResetError("peer gone")
        outbox = Outbox(writer)
        outbox.put(env(1))
        outbox.put(env(2))
        writer.gate.set()
        with pytest.raises(ConnectionResetError, match="peer gone"):
            await asyncio.wait_for(outbox.run(), 5)
        assert outbox.closed
        assert not outbox.put(env(3))
        assert outbox.gate.is_open()  # senders waiting on it are let go

    asyncio.run(main())


def test_a_full_outbox_closes_its_gate_and_opens_it_when_written() -> None:
    async def main() -> None:
        writer = Writer()
        writer.gate.clear()
        outbox = Outbox(writer, Gate(4))
        for i in range(6):
            outbox.put(env(i))
        assert not outbox.gate.is_open()
        writer.gate.set()
        await until(outbox.gate.is_open)
        outbox.close()
        await asyncio.wait_for(outbox.run(), 5)
        assert sum(len(ids) for ids in writer.ids()) == 6

    asyncio.run(main())
