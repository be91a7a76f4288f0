"""Deadlines and cancels as a plain gRPC client sends them (timeout_ms, ENVELOPE_KIND_CANCEL)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from actorgrpc.v1 import mailbox_pb2, mailbox_pb2_grpc, value_pb2
from conftest import SPAWN_T, T
from test_rawgrpc import OpenStream, request

from actorgrpc import ActorTimeout, command, send, spawn, timeout
from actorgrpc.testing import authenticated_channel, wait_for

#: Released by the test: wire_block waits on it (thread actors share this process).
GATE = threading.Event()


def _ran(actor, tag: str) -> None:
    actor.extra["ran"] = [*actor.extra.get("ran", []), tag]


@command()
async def wire_hang(request):
    """Wait for a cancel; record that it started and how it ended."""
    _ran(request.actor, "started")
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        _ran(request.actor, "cancelled")
        raise


@command()
def wire_block(request):
    """Hold the actor until the test sets GATE."""
    _ran(request.actor, "block")
    assert GATE.wait(T)
    return "released"


@command()
def wire_mark(request, tag):
    _ran(request.actor, tag)
    return tag


CANCEL = mailbox_pb2.ENVELOPE_KIND_CANCEL
TIMEOUT = mailbox_pb2.ERROR_CODE_TIMEOUT


def ran(proxy):
    return send(proxy, "info").result(T)["extra"].get("ran", [])


@pytest.fixture
def stream(mailbox):
    s = OpenStream(mailbox)
    yield s
    s.close()


def test_a_request_whose_deadline_passed_while_queued_is_answered_timeout(arb, stream):
    p = spawn(concurrency="thread").result(SPAWN_T)
    actor = arb.transport.registry.local(p.aid)
    GATE.clear()
    late = request(p.aid, "wire_mark", value_pb2.Value(string_value="late"), id=2)
    late.timeout_ms = 100
    stream.write(request(p.aid, "wire_block", id=1), late)
    # wire_block holds the actor's loop; late waits to be taken in behind it.
    info = actor.info
    wait_for(
        lambda: info()["extra"].get("ran") == ["block"] and info()["events"]["requests_waiting"],
        T,
        "the block to run and late to wait",
    )
    with timeout(0.3):  # queued after `late`: when it fails, late's deadline has passed
        sentinel = send(p, "wire_mark", "sentinel")
    with pytest.raises(ActorTimeout):
        sentinel.result(T)
    GATE.set()
    replies = {r.id: r for r in stream.read(2)}
    assert replies[1].result.string_value == "released"
    assert replies[2].error.code == TIMEOUT
    assert "deadline passed before it started" in replies[2].error.message
    assert ran(p) == ["block"]


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_a_cancel_envelope_cancels_the_running_command(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    # Straight to the process that hosts it (the arbiter forwards requests, not cancels).
    with authenticated_channel(p.address) as channel:
        stream = OpenStream(mailbox_pb2_grpc.MailboxStub(channel))
        try:
            _cancel_running(p, stream)
        finally:
            stream.close()


def _cancel_running(p, stream):
    stream.write(request(p.aid, "wire_hang", id=7))
    wait_for(lambda: ran(p) == ["started"], T, "the command to start")
    stream.write(mailbox_pb2.Envelope(id=7, kind=CANCEL, target=p.aid))
    (reply,) = stream.read(1)
    assert reply.id == 7 and reply.error.type.endswith("CancelledError")
    assert ran(p) == ["started", "cancelled"]
    wait_for(lambda: send(p, "info").result(T)["events"]["commands_in_progress"] == 0, T)


def test_a_cancel_of_a_no_reply_request_is_a_no_op(arb, stream):
    p = spawn(concurrency="thread").result(SPAWN_T)
    noack = request(p.aid, "wire_hang", id=5)
    noack.no_reply = True
    stream.write(noack)
    wait_for(lambda: ran(p) == ["started"], T, "the command to start")
    # The ping comes behind the cancel, on the same way: its reply says the cancel was read.
    stream.write(
        mailbox_pb2.Envelope(id=5, kind=CANCEL, target=p.aid), request(p.aid, "ping", id=6)
    )
    (reply,) = stream.read(1)
    assert reply.id == 6
    assert ran(p) == ["started"]
    assert send(p, "info").result(T)["events"]["commands_in_progress"] == 1
    GATE.set()
