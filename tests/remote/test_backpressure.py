"""Backpressure per target actor: a full actor slows its own senders, never its neighbours.

The slow actor is a thread actor of the arbiter's process held on an event
(``flow_block``), so that its mailbox is full for as long as a test wants.
Senders are a process actor (its sends run on its process's IO loop, which
cannot block: ``room`` is how it waits) and raw gRPC clients, with and
without the ``actorgrpc-flow`` metadata.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import psutil
import pytest
from actorgrpc.v1 import mailbox_pb2, mailbox_pb2_grpc
from conftest import SPAWN_T, T, ok_envelope

from actorgrpc import ResourceExhausted, command, room, send, spawn
from actorgrpc.testing import authenticated_channel, running_arbiter, wait_for

Envelope = mailbox_pb2.Envelope
REQUEST = mailbox_pb2.ENVELOPE_KIND_REQUEST
BATCH = mailbox_pb2.ENVELOPE_KIND_BATCH
FLOW = mailbox_pb2.ENVELOPE_KIND_FLOW
FULL = mailbox_pb2.FLOW_STATE_FULL
ROOM = mailbox_pb2.FLOW_STATE_ROOM
#: Seconds within which a neighbour of a full actor must answer.
PROMPT = 2.0
#: Envelopes in one batch: part of what a server parks per target (server.py's _Parking.cap).
MAX_BATCH = 512

#: Set to let the thread actors held by flow_block go (they run in this process).
_released = threading.Event()


@pytest.fixture
def released() -> Iterator[threading.Event]:
    _released.clear()
    try:
        yield _released
    finally:
        _released.set()  # the held actors must be able to stop


@command()
def flow_block(request) -> bool:
    """Hold this actor's loop until the test lets it go: its mailbox fills up."""
    return _released.wait(T * 2)


@command(ack=False)
def flow_count(request, seq: int) -> None:
    request.actor.extra.setdefault("seen", []).append(seq)


@command()
def flow_note(request, seq: int) -> int:
    request.actor.extra.setdefault("seen", []).append(seq)
    return seq


@command()
def flow_seen(request) -> list[int]:
    return request.actor.extra.get("seen", [])


@command()
async def flow_flood_then_ping(request, a, b, before: int, after: int) -> float:
    """In a process actor: ``before`` no-acks to ``a``, a ping to ``b`` on the same
    stream (its seconds are the answer), then ``after`` more to ``a``.

    The ping's reply comes after the server's word that ``a`` is full, so the
    ``after`` ones are held by this side until ``a`` has room again.
    """
    actor = request.actor
    for seq in range(before):
        await room(a)
        actor.send(a, "flow_count", seq)
    t0 = time.monotonic()
    assert await asyncio.wait_for(actor.send(b, "ping"), PROMPT) == "pong"
    took = time.monotonic() - t0
    for seq in range(before, before + after):
        await room(a)
        actor.send(a, "flow_count", seq)
    return took


@command()
async def flow_flood(request, target, n: int, wait: float | None) -> dict[str, Any]:
    """In a process actor: send ``n`` no-acks to ``target``, until the way stays full.

    ``wait`` None: a sync sender's way (no waiting); else ``await room`` with
    that timeout before each send. Returns how many went, the error that
    stopped it, and how much this process grew meanwhile.
    """
    me = psutil.Process()
    before = me.memory_info().rss
    sent, error = 0, ""
    try:
        for seq in range(n):
            if wait is not None:
                await room(target, wait)
            request.actor.send(target, "flow_count", seq)
            sent += 1
    except ResourceExhausted as exc:
        error = str(exc)
    return {"sent": sent, "error": error, "grown": me.memory_info().rss - before}


def test_a_full_actor_does_not_block_its_neighbour_on_the_same_stream(released):
    limit = 20
    with running_arbiter(max_mailbox=limit):
        a = spawn(concurrency="thread").result(SPAWN_T)
        b = spawn(concurrency="thread").result(SPAWN_T)
        sender = spawn().result(SPAWN_T)
        held = send(a, "flow_block")
        # a is full after limit - 1 (with flow_block's): the sender may still
        # write a few before it is told, and holds the rest, up to limit.
        before, after = limit + 5, limit - 7
        took = send(sender, "flow_flood_then_ping", a, b, before, after).result(T)
        assert took < PROMPT
        assert not held.done()  # a was full all along
        released.set()
        assert held.result(T) is True
        wait_for(
            lambda: len(send(a, "flow_seen").result(T)) >= before + after,
            timeout=T,
            what="every flooded message",
        )
        # Each exactly once, in order, across the server's parking and the
        # sender's holding.
        assert send(a, "flow_seen").result(T) == list(range(before + after))


@pytest.mark.parametrize("by_name", [False, True], ids=["proxy", "name"])
@pytest.mark.parametrize("waits", [False, True], ids=["sync", "async"])
def test_a_sender_on_the_io_loop_is_bounded_by_its_targets_mailbox(released, waits, by_name):
    limit, n = 100, 20_000
    with running_arbiter(max_mailbox=limit):
        slow = spawn(concurrency="thread", name="flow-slow").result(SPAWN_T)
        sender = spawn().result(SPAWN_T)
        held = send(slow, "flow_block")
        target = "flow-slow" if by_name else slow
        got = send(sender, "flow_flood", target, n, 0.5 if waits else None).result(T)
        sent = got["sent"]
        # It stopped: the sync sender at once, the async one after waiting in vain.
        assert 0 < sent < n, got
        shown = "flow-slow" if by_name else slow.aid
        if waits:
            assert f"the mailbox of {shown} stayed full for 0.5s" in got["error"]
        else:
            assert f"the mailbox of {shown} is full" in got["error"]
            assert "await actorgrpc.room(" in got["error"]
        # What it queued is bounded by the mailboxes on the way, not by n
        # (an unbounded outbox grew by ~32 MB for these 20,000).
        assert sent < 10 * limit + MAX_BATCH, got
        assert got["grown"] < 8 * 1024 * 1024, got
        released.set()
        assert held.result(T) is True
        # Nothing that was sent is lost.
        wait_for(
            lambda: len(send(slow, "flow_seen").result(T)) >= sent,
            timeout=T,
            what="every message sent",
        )
        assert send(slow, "flow_seen").result(T) == list(range(sent))


# -- raw clients ----------------------------------------------------------------------


class RawStream:
    """A Mailbox.Stream of plain generated stubs whose request side stays open."""

    def __init__(self, channel: grpc.Channel, metadata: tuple[tuple[str, str], ...] = ()):
        self._outgoing: queue.Queue[Any] = queue.Queue()
        stub = mailbox_pb2_grpc.MailboxStub(channel)
        self.call = stub.Stream(self._requests(), timeout=T * 2, metadata=metadata)
        self.replies = iter(self.call)

    def _requests(self) -> Iterator[Any]:
        while (item := self._outgoing.get()) is not None:
            yield item

    def write(self, *envelopes: Any) -> None:
        for env in envelopes:
            self._outgoing.put(env)

    def read(self, n: int) -> list[Any]:
        """The next ``n`` envelopes, out of their batches."""
        out: list[Any] = []
        while len(out) < n:
            message = next(self.replies)
            out.extend(message.batch if message.kind == BATCH else [message])
        assert len(out) == n, out
        return out

    def close(self) -> None:
        self._outgoing.put(None)
        self.call.cancel()


def note(target: str, seq: int, id: int) -> Any:
    env = Envelope(id=id, kind=REQUEST, target=target, action="flow_note")
    env.args.add().int_value = seq
    return env


def test_a_raw_client_gets_resource_exhausted_past_the_cap_for_that_target_only(released):
    limit = 4
    cap = 2 * limit + MAX_BATCH
    with running_arbiter(max_mailbox=limit) as arb:
        a = spawn(concurrency="thread").result(SPAWN_T)
        b = spawn(concurrency="thread").result(SPAWN_T)
        with authenticated_channel(arb.address) as ch:
            stream = RawStream(ch)
            try:
                # flow_block and limit - 1 notes fill a; cap more are parked; the rest refused.
                refused = 7
                n = limit - 1 + cap + refused
                stream.write(Envelope(id=1, kind=REQUEST, target=a.aid, action="flow_block"))
                stream.write(*(note(a.aid, seq, id=seq + 2) for seq in range(n)))
                stream.write(Envelope(id=10**6, kind=REQUEST, target=b.aid, action="ping"))
                early = stream.read(refused + 1)
                by_id = {r.id: r for r in early}
                assert ok_envelope(by_id.pop(10**6)).result.string_value == "pong"
                assert sorted(by_id) == list(range(n - refused + 2, n + 2))
                for reply in by_id.values():
                    assert reply.error.code == mailbox_pb2.ERROR_CODE_RESOURCE_EXHAUSTED
                    assert f"the mailbox of {a.aid!r} is full" in reply.error.message
                released.set()
                rest = stream.read(n - refused + 1)
                assert sorted(r.id for r in rest) == list(range(1, n - refused + 2))
                assert all(not r.HasField("error") for r in rest)
                assert send(a, "flow_seen").result(T) == list(range(n - refused))
            finally:
                stream.close()


def test_a_raw_client_that_announces_flow_is_told_full_then_room(released):
    limit = 4
    with running_arbiter(max_mailbox=limit) as arb:
        a = spawn(concurrency="thread").result(SPAWN_T)
        b = spawn(concurrency="thread").result(SPAWN_T)
        with authenticated_channel(arb.address) as ch:
            stream = RawStream(ch, metadata=(("actorgrpc-flow", "1"),))
            try:
                n = 3 * limit
                stream.write(Envelope(id=1, kind=REQUEST, target=a.aid, action="flow_block"))
                stream.write(*(note(a.aid, seq, id=seq + 2) for seq in range(n)))
                stream.write(Envelope(id=10**6, kind=REQUEST, target=b.aid, action="ping"))
                full, pong = stream.read(2)
                assert (full.kind, full.target, full.flow) == (FLOW, a.aid, FULL)
                assert ok_envelope(pong).result.string_value == "pong"
                released.set()
                rest = stream.read(n + 2)
                rooms = [r for r in rest if r.kind == FLOW]
                assert [(r.target, r.flow) for r in rooms] == [(a.aid, ROOM)]
                replies = [r for r in rest if r.kind != FLOW]
                assert sorted(r.id for r in replies) == list(range(1, n + 2))
                assert send(a, "flow_seen").result(T) == list(range(n))
            finally:
                stream.close()
