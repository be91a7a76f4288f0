"""The transport: one process's IO loop, its address, routing and connections.

Most tests run a Transport of their own, with no arbiter: started on a loop
in a thread, as a child process starts its own (``served``). Others use the
running arbiter's, ``arb.transport``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, TypeVar

import pytest
from conftest import SPAWN_T, TEST_SECRET, T, ipv6_loopback, on_loop, served
from grpc_health.v1 import health_pb2, health_pb2_grpc

from actorgrpc import ActorNotAvailable, ActorNotFound, ActorProxy, command, send, spawn
from actorgrpc.core.interfaces import current_transport
from actorgrpc.core.proxy import format_address, parse_address
from actorgrpc.core.settings import Settings
from actorgrpc.remote.transport import Transport
from actorgrpc.testing import authenticated_channel, running_arbiter

_R = TypeVar("_R")

# -- helpers ---------------------------------------------------------------------------


def close(transport: Transport) -> None:
    asyncio.run_coroutine_threadsafe(transport.close(0.1), transport.loop).result(T)


def health(address: str, service: str = "") -> Any:
    with authenticated_channel(address) as ch:
        stub: Any = health_pb2_grpc.HealthStub(ch)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=T).status


HOLD = threading.Event()


@command()
def tr_hold(request) -> bool:
    """Block the actor's loop until HOLD is set (bounded)."""
    return HOLD.wait(T)


def io_thread_here(actor) -> bool:
    """Run in an actor: whether its code runs on the IO loop's thread."""
    return actor.transport.in_io_thread()


@command()
def tr_record(request, value) -> bool:
    request.actor.extra.setdefault("seen", []).append(value)
    return True


@command()
def tr_seen(request) -> list:
    return request.actor.extra.get("seen", [])


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

# -- the address -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        pytest.param("::1", marks=pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6")),
        pytest.param("[::1]", marks=pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6")),
    ],
)
def test_a_started_transport_has_its_bound_address_in_one_form(host):
    settings = Settings(host=host, secret=TEST_SECRET)
    unstarted = Transport(settings)
    assert (unstarted.address, unstarted.address_text) == ((host, 0), "")
    with served(settings) as t:
        bare = host.strip("[]")
        port = t.address[1]
        assert port > 0
        # The address keys connections: the host without brackets, as wire proxies have it.
        assert t.address == (bare, port)
        assert t.address_text == format_address((bare, port))
        assert parse_address(t.address_text) == t.address
        if ":" in bare:
            assert t.address_text == f"[{bare}]:{port}"
        # And something serves there.
        assert health(t.address_text) == SERVING


def test_the_arbiters_transport_serves_at_the_arbiters_address(arb):
    t = arb.transport
    assert t.address == arb.address
    assert t.address_text == format_address(arb.address)
    assert current_transport() is t
    assert health(t.address_text) == SERVING


# -- threads ---------------------------------------------------------------------------


def test_in_io_thread_is_true_on_the_io_loop_only(arb):
    t = arb.transport
    assert not t.in_io_thread()
    seen = on_loop(t, lambda: (t.in_io_thread(), asyncio.get_running_loop() is t.loop))
    assert seen == (True, True)
    # A thread actor runs on a loop of its own, not on the IO loop.
    p = spawn(concurrency="thread").result(SPAWN_T)
    assert send(p, "run", io_thread_here).result(T) is False


def test_call_soon_runs_on_the_io_loop_in_order_from_any_thread(arb):
    t = arb.transport
    ran: list[tuple[int, bool]] = []
    done = threading.Event()
    n = 300

    def step(i: int) -> None:
        ran.append((i, t.in_io_thread()))
        if i == n - 1:
            done.set()

    def from_a_thread() -> None:
        for i in range(n):
            t.call_soon(step, i)

    sender = threading.Thread(target=from_a_thread)
    sender.start()
    sender.join(T)
    assert done.wait(T)
    assert ran == [(i, True) for i in range(n)]


def test_call_soon_on_the_io_loop_runs_later_not_inline(arb):
    t = arb.transport
    order: list[str] = []
    done: concurrent.futures.Future[list[str]] = concurrent.futures.Future()

    def later() -> None:
        order.append("later")
        done.set_result(order)

    def first() -> None:
        t.call_soon(later)
        order.append("first returned")

    t.call_soon(first)
    assert done.result(T) == ["first returned", "later"]


# -- request: local actors -------------------------------------------------------------


def test_a_request_to_a_local_actor_finds_it_by_aid_whatever_address_its_proxy_names(arb):
    p = spawn(concurrency="thread", name="tr-local").result(SPAWN_T)
    t = arb.transport
    # A proxy naming an address where nothing listens: the actor is local, so
    # the request reaches it all the same.
    nowhere = ActorProxy(p.aid, p.name, ("127.0.0.1", 1))
    for target in (nowhere, p.aid, "tr-local"):
        assert t.request(None, target, "ping", (), {}).result(T) == "pong"


def test_a_request_to_a_local_actor_does_not_wait_for_the_io_loop(arb):
    p = spawn(concurrency="thread").result(SPAWN_T)
    t = arb.transport
    busy, release = threading.Event(), threading.Event()

    def hold_the_io_loop() -> None:
        busy.set()
        release.wait(T)

    t.call_soon(hold_the_io_loop)
    try:
        assert busy.wait(T)
        # From this thread straight to the actor's loop, and back.
        assert t.request(None, p, "ping", (), {}).result(5) == "pong"
    finally:
        release.set()


def test_a_request_carries_its_arguments_as_they_were_at_the_call(arb):
    p = spawn(concurrency="thread").result(SPAWN_T)
    t = arb.transport
    HOLD.clear()
    try:
        blocked = t.request(None, p, "tr_hold", (), {})
        value = [1, 2]
        echoed = t.request(None, p, "echo", (value,), {})
        value.append(3)  # while the actor is still busy with tr_hold
    finally:
        HOLD.set()
    assert blocked.result(T) is True
    assert echoed.result(T) == [1, 2]


def test_a_request_without_ack_returns_none_and_is_delivered(arb):
    p = spawn(concurrency="thread").result(SPAWN_T)
    t = arb.transport
    assert t.request(None, p, "tr_record", ("quiet",), {}, ack=False) is None
    assert t.request(None, p, "tr_seen", (), {}).result(T) == ["quiet"]


# -- request: nobody there -------------------------------------------------------------


def test_a_request_to_an_unknown_name_is_actor_not_found(arb):
    # In the arbiter's process the tree is asked (its resolver) ...
    with pytest.raises(ActorNotFound, match="no actor 'tr-nobody' in this tree"):
        arb.transport.request(None, "tr-nobody", "ping", (), {}).result(T)
    # ... and a process with no resolver nor arbiter knows only its own actors.
    with served() as t, pytest.raises(ActorNotFound, match="no actor 'tr-nobody' here"):
        t.request(None, "tr-nobody", "ping", (), {}).result(T)


def test_a_proxy_of_this_process_with_an_unknown_aid_is_not_available():
    with served() as t:
        ghost = ActorProxy("tr-ghost", None, t.address)
        with pytest.raises(ActorNotAvailable, match="actor tr-ghost is not running"):
            t.request(None, ghost, "ping", (), {}).result(T)
        # Without ack nobody hears of it, and nothing breaks.
        assert t.request(None, ghost, "ping", (), {}, ack=False) is None
        with pytest.raises(ActorNotAvailable):
            t.request(None, ghost, "ping", (), {}).result(T)


def test_a_proxy_of_another_process_is_reached_over_the_wire(arb):
    # The arbiter's transport sends to the other transport's server, which
    # answers that it has no such actor: the reply came back over a stream.
    with served() as other:
        stranger = ActorProxy("tr-stranger", None, other.address)
        message = f"no actor 'tr-stranger' at {other.address_text}"
        with pytest.raises(ActorNotFound, match=message):
            arb.transport.request(None, stranger, "ping", (), {}).result(T)


# -- connections -----------------------------------------------------------------------


def test_connect_keeps_one_connection_per_peer_until_it_is_dropped():
    with served() as a, served() as b, served() as c:
        lost: list[Any] = []
        a.on_connection_lost = lost.append
        first, again, to_c = on_loop(
            a, lambda: (a.connect(b.address), a.connect(b.address), a.connect(c.address))
        )
        assert first is again
        assert to_c is not first
        assert (first.peer, first.address) == (b.address, b.address_text)
        # Dropped (not broken): forgotten, and nobody is told of a loss.
        on_loop(a, lambda: a.drop_connection(first))
        fresh = on_loop(a, lambda: a.connect(b.address))
        assert fresh is not first
        assert lost == []
        asyncio.run_coroutine_threadsafe(first.close(), a.loop).result(T)
        # Dropping a connection that is no longer the peer's keeps the current one.
        on_loop(a, lambda: a.drop_connection(first))
        assert on_loop(a, lambda: a.connect(b.address)) is fresh
        # Dropped as broken: on_connection_lost hears of the peer.
        on_loop(a, lambda: a.drop_connection(to_c, broken=True))
        assert lost == [c.address]
        asyncio.run_coroutine_threadsafe(to_c.close(), a.loop).result(T)


def test_on_connection_lost_is_told_when_a_peers_server_goes_away():
    with served() as a, served() as b:
        lost: concurrent.futures.Future[Any] = concurrent.futures.Future()
        a.on_connection_lost = lost.set_result
        conn = on_loop(a, lambda: a.connect(b.address))
        close(b)
        assert lost.result(T) == b.address
        assert conn.closed
        # The next send opens a new connection.
        assert on_loop(a, lambda: a.connect(b.address)) is not conn


# -- life ------------------------------------------------------------------------------


def test_a_transport_is_current_while_it_runs_and_a_closed_one_clears_itself():
    with served(keep_current=False) as first:
        assert current_transport() is first
        with served(keep_current=False) as second:
            assert current_transport() is second  # the last started
            close(first)
            assert current_transport() is second  # not first's to clear
            close(second)
            assert current_transport() is None
    with running_arbiter() as a:
        assert current_transport() is a.transport
    assert current_transport() is None


def test_health_says_not_serving_once_the_main_actor_begins_to_stop():
    class Someone:
        pass

    main, other = Someone(), Someone()
    with served() as t:
        t.main_actor = main  # only compared by identity here
        asyncio.run_coroutine_threadsafe(t.actor_stopping(other), t.loop).result(T)
        assert health(t.address_text) == SERVING
        asyncio.run_coroutine_threadsafe(t.actor_stopping(main), t.loop).result(T)
        assert health(t.address_text) == NOT_SERVING
        assert health(t.address_text, "actorgrpc.v1.Mailbox") == NOT_SERVING
        # Still serving requests meanwhile: it is only saying it is on its way out.
        with pytest.raises(ActorNotFound):
            t.request(None, "tr-nobody", "ping", (), {}).result(T)
