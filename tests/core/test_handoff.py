"""Hand-offs between threads: posters, and the lock-woken loop of thread actors."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
from conftest import loop_thread

from actorgrpc.core.handoff import new_thread_loop, post, poster_for

WAIT = 10.0


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A thread loop running on a thread of its own."""
    with loop_thread(new_thread_loop(), WAIT) as lp:
        yield lp


def _on(loop: asyncio.AbstractEventLoop, fn, *args):
    """Run ``fn(*args)`` on ``loop`` and wait for its result."""
    done = threading.Event()
    out: list[object] = []

    def run() -> None:
        out.append(fn(*args))
        done.set()

    post(loop, run)
    assert done.wait(WAIT), "the loop did not run a posted callback"
    return out[0]


def test_posted_callbacks_run_in_order_from_many_threads(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[tuple[int, int]] = []
    finished = threading.Event()
    total = 4 * 2000

    def record(sender: int, i: int) -> None:
        seen.append((sender, i))
        if len(seen) == total:
            finished.set()

    def sender(n: int) -> None:
        for i in range(2000):
            post(loop, record, n, i)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert finished.wait(WAIT), f"{len(seen)} of {total} callbacks ran"
    for n in range(4):
        assert [i for s, i in seen if s == n] == list(range(2000))


def test_thread_loop_wakes_for_call_soon_threadsafe(loop: asyncio.AbstractEventLoop) -> None:
    for i in range(200):
        event = threading.Event()
        loop.call_soon_threadsafe(event.set)
        assert event.wait(WAIT), f"wake-up {i} was lost"


def test_thread_loop_timers_fire(loop: asyncio.AbstractEventLoop) -> None:
    fired = threading.Event()
    _on(loop, lambda: loop.call_later(0.05, fired.set))
    assert fired.wait(WAIT)


def test_thread_loop_serves_sockets_and_still_wakes(loop: asyncio.AbstractEventLoop) -> None:
    """With a socket watched, the loop sleeps in epoll: reads and hand-offs both wake it."""
    here, there = socket.socketpair()
    here.setblocking(False)
    received = bytearray()
    got = threading.Event()

    def on_readable() -> None:
        received.extend(here.recv(100))
        got.set()

    _on(loop, loop.add_reader, here.fileno(), on_readable)
    try:
        for i in range(100):  # hand-offs while the loop sleeps in epoll
            event = threading.Event()
            loop.call_soon_threadsafe(event.set)
            assert event.wait(WAIT), f"wake-up {i} was lost with a socket watched"
        there.send(b"x")
        assert got.wait(WAIT)
        assert received == b"x"
    finally:
        _on(loop, loop.remove_reader, here.fileno())
        here.close()
        there.close()
    # Back to sleeping on the lock: hand-offs still wake it.
    for i in range(100):
        event = threading.Event()
        loop.call_soon_threadsafe(event.set)
        assert event.wait(WAIT), f"wake-up {i} was lost after the socket went"


def test_no_wake_up_lost_while_sockets_come_and_go(loop: asyncio.AbstractEventLoop) -> None:
    """Hand-offs race with the loop switching between its lock and epoll."""
    socks = [socket.socketpair() for _ in range(3)]
    toggles = 0

    def toggle() -> None:
        nonlocal toggles
        toggles += 1
        a = socks[toggles % 3][0]
        if toggles % 2:
            loop.add_reader(a.fileno(), lambda: None)
        else:
            loop.remove_reader(a.fileno())
        if toggles < 3000:
            loop.call_soon(toggle)

    counted = 0
    done = threading.Event()
    total = 3 * 3000

    def count() -> None:
        nonlocal counted
        counted += 1
        if counted == total:
            done.set()

    def sender() -> None:
        for _ in range(3000):
            event = threading.Event()

            def hit(event: threading.Event = event) -> None:
                count()
                event.set()

            loop.call_soon_threadsafe(hit)
            assert event.wait(WAIT)

    post(loop, toggle)
    threads = [threading.Thread(target=sender) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 3)
    try:
        assert done.wait(WAIT), f"{counted} of {total} hand-offs ran"
    finally:
        for fd_pair in socks:
            _on(loop, loop.remove_reader, fd_pair[0].fileno())
            for s in fd_pair:
                s.close()


def test_poster_is_kept_per_loop() -> None:
    lp = new_thread_loop()
    try:
        assert poster_for(lp) is poster_for(lp)
        other = asyncio.new_event_loop()
        try:
            assert poster_for(other) is poster_for(other)
            assert poster_for(other) is not poster_for(lp)
        finally:
            other.close()
    finally:
        lp.close()


def test_posting_to_a_closed_loop_raises() -> None:
    lp = new_thread_loop()
    lp.close()
    with pytest.raises(RuntimeError):
        post(lp, print)
