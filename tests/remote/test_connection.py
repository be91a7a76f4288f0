"""Connections: one long-lived Mailbox stream to a peer, its pending replies and its gate.

The peers are Transports with no arbiter (``served``: as a process actor's,
on a loop of their own thread) holding test doubles of local actors, or
process actors of a running arbiter. Connection objects belong to their
transport's IO loop: tests touch them there (``on_loop``).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
from typing import Any, TypeVar

import grpc
import pytest
import trustme
from actorgrpc.v1 import mailbox_pb2, mailbox_pb2_grpc
from conftest import SPAWN_T, TEST_SECRET, T, loop_thread, on_loop, served

from actorgrpc import ActorNotAvailable, ActorProxy, ResourceExhausted, command, send, spawn
from actorgrpc.core.flow import Gate
from actorgrpc.core.settings import Settings
from actorgrpc.remote.connection import channel_options, open_channel
from actorgrpc.remote.envelopes import CODEC, REQUEST, error_from_pb
from actorgrpc.remote.security import TLSConfig
from actorgrpc.remote.transport import Transport
from actorgrpc.testing import auth_metadata, running_arbiter, wait_for

_R = TypeVar("_R")
Envelope = mailbox_pb2.Envelope

# -- helpers ---------------------------------------------------------------------------


def run(transport: Transport, coro: Any) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, transport.loop).result(T)


class Hole:
    """A local actor (a LocalActor) that keeps the requests it gets; answered on demand."""

    def __init__(self, aid: str) -> None:
        self.aid = aid
        self.name = "hole"
        self.named = False  # not registered by name
        self.proxy = ActorProxy(aid, "hole", ("127.0.0.1", 0))
        self.gate = Gate()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.received: list[tuple[Any, Any]] = []

    def on_own_loop(self) -> bool:
        return False

    def deliver(self, env, on_reply, running, *, inline=True, caller=None, origin=None) -> None:
        self.received.append((env, on_reply))

    def send(self, target, action, *args, **kwargs) -> Any:
        raise NotImplementedError

    def answer(self, index: int, value: Any) -> None:
        """Reply to the request received ``index``-th with ``value`` (any thread)."""
        env, on_reply = self.received[index]
        on_reply(CODEC.reply(env.id, value, True, 1 << 20))


def req(n: int, target: str, **fields: Any) -> Any:
    return Envelope(id=n, kind=REQUEST, target=target, action="ping", **fields)


@command()
async def conn_sleep(request, seconds: float) -> str:
    request.actor.extra["sleeping"] = request.actor.extra.get("sleeping", 0) + 1
    await asyncio.sleep(seconds)
    return "woke"


@command(reentrant=True)  # answers while the sleepers hold their turns
def conn_sleepers(request) -> int:
    return request.actor.extra.get("sleeping", 0)


# -- channels --------------------------------------------------------------------------


def test_channel_options_leave_room_for_batches_and_never_share_a_port():
    options = dict(channel_options(4096))
    room = 4096 + 2 * 1024 * 1024  # one maximal envelope and a batch's worth on top
    assert options["grpc.max_send_message_length"] == room
    assert options["grpc.max_receive_message_length"] == room
    assert options["grpc.so_reuseport"] == 0
    assert options["grpc.enable_retries"] == 0


@pytest.fixture(scope="module")
def tls() -> TLSConfig:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    return TLSConfig(
        cert=cert.cert_chain_pems[0].bytes(),
        key=cert.private_key_pem.bytes(),
        ca=ca.cert_pem.bytes(),
        mutual=True,
    )


async def _send_status(settings: Settings, address: str) -> grpc.StatusCode:
    channel = open_channel(settings, address)
    try:
        stub = mailbox_pb2_grpc.MailboxStub(channel)
        await stub.Send(
            Envelope(target="conn-nobody", action="ping"),
            metadata=auth_metadata(TEST_SECRET),
            timeout=T,
        )
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    finally:
        await channel.close()
    return grpc.StatusCode.OK


def test_open_channel_speaks_tls_when_the_tree_has_it(tls):
    secure = Settings(secret=TEST_SECRET, tls=tls)
    with served(secure) as peer, loop_thread(asyncio.new_event_loop()) as loop:

        def status(settings: Settings) -> grpc.StatusCode:
            coro = _send_status(settings, peer.address_text)
            return asyncio.run_coroutine_threadsafe(coro, loop).result(T)

        # Through TLS the peer answers (it has no such actor); in plaintext nobody does.
        assert status(secure) == grpc.StatusCode.NOT_FOUND
        assert status(Settings(secret=TEST_SECRET)) == grpc.StatusCode.UNAVAILABLE


# -- the peer goes away ----------------------------------------------------------------


def test_requests_in_flight_fail_naming_the_peer_when_its_server_closes():
    hole = Hole("conn-hole")
    with served() as a, served() as b:
        b.registry.register(hole)
        dest = ActorProxy("conn-hole", None, b.address)
        futures = [a.request(None, dest, "ping", (), {}) for _ in range(5)]
        wait_for(lambda: len(hole.received) == 5, timeout=T, what="the requests to arrive")
        run(b, b.close(0.1))
        for fut in futures:
            with pytest.raises(ActorNotAvailable) as err:
                fut.result(T)
            assert str(err.value) == (
                f"no reply from actor 'conn-hole' at {b.address_text}: it closed the stream"
            )


def test_requests_in_flight_fail_saying_how_their_actor_ended_when_its_process_is_killed(arb):
    p = spawn(max_concurrency=10).result(SPAWN_T)
    pid = arb.managed_actors[p.aid].pid
    futures = [send(p, "conn_sleep", 60) for _ in range(10)]
    wait_for(
        lambda: send(p, "conn_sleepers").result(T) == 10, timeout=T, what="10 sleeping commands"
    )
    os.kill(pid, signal.SIGKILL)
    for fut in futures:
        with pytest.raises(ActorNotAvailable) as err:
            fut.result(T)
        # One error per death, however the stream went: the death record's.
        assert str(err.value) == f"actor {p.aid} ended: killed by signal SIGKILL"


# -- replies ---------------------------------------------------------------------------


def test_replies_are_matched_by_id_whatever_order_they_come_back_in():
    hole = Hole("conn-answers")
    n = 300
    with served() as a, served() as b:
        b.registry.register(hole)
        dest = ActorProxy("conn-answers", None, b.address)
        futures = [a.request(None, dest, "ping", (i,), {}) for i in range(n)]
        wait_for(lambda: len(hole.received) == n, timeout=T, what="every request to arrive")
        order = list(range(n))
        random.Random(5).shuffle(order)
        for index in order:
            (arg,), _ = CODEC.read_args(hole.received[index][0], True)
            hole.answer(index, f"answer to {arg}")
        assert [f.result(T) for f in futures] == [f"answer to {i}" for i in range(n)]
        # A second reply to the same request, and a reply nobody asked for, are dropped.
        hole.answer(0, "again")
        unknown, reply = hole.received[0][0], hole.received[0][1]
        reply(CODEC.reply(unknown.id + 10_000, "nobody asked", True, 1 << 20))
        last = a.request(None, dest, "ping", ("last",), {})
        wait_for(lambda: len(hole.received) == n + 1, timeout=T, what="the last request")
        hole.answer(n, "the last answer")
        assert last.result(T) == "the last answer"
        assert futures[0].result(0) == "answer to 0"


# -- close -----------------------------------------------------------------------------


def test_close_fails_what_is_pending_and_what_is_sent_after():
    hole = Hole("conn-closing")
    with served() as a, served() as b:
        b.registry.register(hole)
        got: list[Any] = []
        after: list[Any] = []
        conn = on_loop(a, lambda: a.connect(b.address))
        on_loop(a, lambda: conn.send(req(1, "conn-closing"), got.append))
        wait_for(lambda: hole.received, timeout=T, what="the request to arrive")

        async def close_and_send() -> Any:
            await conn.close()
            conn.send(req(2, "conn-closing"), after.append)
            await conn.close()  # a second close does nothing
            return a.connect(b.address)

        fresh = run(a, close_and_send())
        assert conn.closed and fresh is not conn
        # What waited for a reply was failed, naming the peer ...
        assert [env.id for env in got] == [1]
        error = error_from_pb(got[0].error)
        assert isinstance(error, ActorNotAvailable)
        assert str(error) == (
            f"no reply from actor 'conn-closing' at {b.address_text}: the connection was closed"
        )
        # ... and a send on the closed connection fails at once.
        assert [env.id for env in after] == [2]
        late = error_from_pb(after[0].error)
        assert str(late) == (
            f"no reply from actor 'conn-closing' at {b.address_text}: the connection is closed"
        )
        assert len(hole.received) == 1


def test_closing_a_transport_fails_its_requests_in_flight():
    hole = Hole("conn-owner-closes")
    with served() as b, served() as a:
        b.registry.register(hole)
        dest = ActorProxy("conn-owner-closes", None, b.address)
        fut = a.request(None, dest, "ping", (), {})
        wait_for(lambda: hole.received, timeout=T, what="the request to arrive")
        run(a, a.close(0.1))
        with pytest.raises(ActorNotAvailable, match="the connection was closed"):
            fut.result(T)


# -- the gate --------------------------------------------------------------------------


def test_the_gate_closes_when_the_queue_reaches_the_mailbox_limit():
    hole = Hole("conn-gate")
    limit = 4
    with running_arbiter(max_mailbox=limit) as arb, served() as b:
        b.registry.register(hole)
        t = arb.transport

        def fill() -> tuple[Any, list[bool]]:
            conn = t.connect(b.address)
            states = []
            # The first leaves at once; the others wait for that write, in the queue.
            for k in range(limit + 1):
                conn.send(req(k, "conn-gate", no_reply=True), None)
                states.append(conn.gate.is_open())
            return conn, states

        conn, states = on_loop(t, fill)
        assert states == [True] * limit + [False]
        wait_for(conn.gate.is_open, timeout=T, what="the gate to open again")
        wait_for(lambda: len(hole.received) == limit + 1, timeout=T, what="every request")


def test_plain_code_waits_while_a_connection_is_full_then_gives_up():
    hole = Hole("conn-full")
    slow = Settings(secret=TEST_SECRET, mailbox_limit=4, send_wait=0.3)
    with served() as b, served(slow) as a:
        b.registry.register(hole)
        dest = ActorProxy("conn-full", None, b.address)
        filled, release = threading.Event(), threading.Event()

        def fill_and_hold() -> None:
            conn = a.connect(b.address)
            for k in range(5):
                conn.send(req(k, "conn-full", no_reply=True), None)
            filled.set()
            release.wait(T)  # the IO loop is busy: the queue cannot drain meanwhile

        a.call_soon(fill_and_hold)
        try:
            assert filled.wait(T)
            with pytest.raises(ResourceExhausted, match=r"conn-full stayed full for 0\.3s"):
                a.request(None, dest, "ping", (), {}, ack=False)
        finally:
            release.set()
        wait_for(lambda: len(hole.received) == 5, timeout=T, what="the queued requests")
        # Room again: the next send goes at once.
        assert a.request(None, dest, "ping", (), {}, ack=False) is None
        wait_for(lambda: len(hole.received) == 6, timeout=T, what="the next request")
