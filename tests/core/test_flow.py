"""actorgrpc.flow.Gate: closes when its queue is full, opens at half, wakes its waiters."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest
from conftest import loop_thread

from actorgrpc.core.flow import DEFAULT_MAILBOX_LIMIT, Gate
from actorgrpc.core.handoff import new_thread_loop

WAIT = 10.0

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,  # as the IO thread's
    "thread-loop": new_thread_loop,  # as a thread actor's
}


@pytest.fixture(params=sorted(LOOPS))
def other_loop(request: pytest.FixtureRequest) -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running on a thread of its own."""
    with loop_thread(LOOPS[request.param]()) as loop:
        yield loop


def shut_gate(limit: int = 4) -> Gate:
    gate = Gate(limit)
    gate.update(limit)
    assert gate.shut and not gate.is_open()
    return gate


def test_a_new_gate_is_open_with_the_default_limit() -> None:
    gate = Gate()
    assert gate.limit == DEFAULT_MAILBOX_LIMIT
    assert gate.is_open() and not gate.shut
    assert gate.wait(0) is True


@pytest.mark.parametrize("limit", [2, 4, 5, 1000])
def test_closes_when_the_queue_reaches_the_limit(limit: int) -> None:
    gate = Gate(limit)
    for size in (0, 1, limit - 1):
        gate.update(size)
        assert gate.is_open(), size
    gate.update(limit)
    assert not gate.is_open() and gate.shut
    assert gate.wait(0) is False
    gate.update(limit + 10)  # fuller still: still shut
    assert not gate.is_open()


@pytest.mark.parametrize("limit", [2, 4, 5, 1000])
def test_reopens_only_once_drained_to_half(limit: int) -> None:
    gate = shut_gate(limit)
    half = limit // 2
    for size in range(limit - 1, half, -1):
        gate.update(size)
        assert not gate.is_open(), f"open at {size} of {limit}"
    gate.update(half)
    assert gate.is_open() and not gate.shut
    assert gate.wait(0) is True
    # Open again, it closes only at the limit, not at the sizes it just drained from.
    gate.update(limit - 1)
    assert gate.is_open()
    gate.update(limit)
    assert not gate.is_open()


def test_wait_returns_false_after_its_timeout_while_shut() -> None:
    gate = shut_gate()
    assert gate.wait(0) is False
    assert gate.wait(0.05) is False
    assert not gate.is_open()


def test_wait_returns_true_when_another_thread_opens_the_gate() -> None:
    gate = shut_gate()
    started = threading.Event()
    outcome: list[tuple[bool, bool]] = []

    def waiter() -> None:
        started.set()
        woke = gate.wait(WAIT)
        outcome.append((woke, gate.is_open()))

    thread = threading.Thread(target=waiter)
    thread.start()
    try:
        assert started.wait(WAIT)
        thread.join(0.1)  # not a sleep: the waiter must still be blocked
        assert thread.is_alive() and outcome == []
        gate.update(1)
    finally:
        gate.update(0)
        thread.join(WAIT)
    assert not thread.is_alive()
    assert outcome == [(True, True)]


def test_wait_async_returns_at_once_when_open() -> None:
    gate = Gate(4)

    async def main() -> bool:
        await asyncio.wait_for(gate.wait_async(), WAIT)
        return gate.is_open()

    assert asyncio.run(main()) is True


def test_wait_async_wakes_a_coroutine_on_another_threads_loop(
    other_loop: asyncio.AbstractEventLoop,
) -> None:
    gate = shut_gate()
    entered = threading.Event()

    async def waiter() -> bool:
        entered.set()
        await gate.wait_async()
        return gate.is_open()

    fut = asyncio.run_coroutine_threadsafe(waiter(), other_loop)
    assert entered.wait(WAIT)
    # The loop runs this only once the coroutine is suspended in wait_async.
    reached = threading.Event()
    other_loop.call_soon_threadsafe(reached.set)
    assert reached.wait(WAIT)
    assert not fut.done(), "wait_async returned while the gate was shut"
    gate.update(2)  # drained to half: open, from this thread
    assert fut.result(WAIT) is True


def test_every_async_waiter_is_woken_once_opened(other_loop: asyncio.AbstractEventLoop) -> None:
    gate = shut_gate()
    n = 50

    async def waiter() -> bool:
        await gate.wait_async()
        return True

    futs = [asyncio.run_coroutine_threadsafe(waiter(), other_loop) for _ in range(n)]
    reached = threading.Event()
    other_loop.call_soon_threadsafe(reached.set)
    assert reached.wait(WAIT)
    assert not any(f.done() for f in futs)
    gate.update(0)
    assert [f.result(WAIT) for f in futs] == [True] * n


def test_updates_from_several_threads_lose_no_waiter(
    other_loop: asyncio.AbstractEventLoop,
) -> None:
    """Threads close and open the gate at once while others wait on it, in both ways."""
    limit, rounds, n_threads = 10, 2000, 4
    gate = shut_gate(limit)

    async def async_waiter() -> bool:
        await gate.wait_async()
        return True

    async_waits = [asyncio.run_coroutine_threadsafe(async_waiter(), other_loop) for _ in range(20)]
    woken: list[bool] = []
    lock = threading.Lock()

    def sync_waiter() -> None:
        ok = gate.wait(WAIT * 3)
        with lock:
            woken.append(ok)

    barrier = threading.Barrier(n_threads)

    def churn(n: int) -> None:
        barrier.wait(WAIT)
        for i in range(rounds):
            gate.update(limit if (i + n) % 2 else 0)
        gate.update(limit)  # each thread ends on a full queue

    waiters = [threading.Thread(target=sync_waiter) for _ in range(5)]
    churners = [threading.Thread(target=churn, args=(n,)) for n in range(n_threads)]
    for t in [*waiters, *churners]:
        t.start()
    for t in churners:
        t.join(WAIT * 3)
        assert not t.is_alive()
    # The last word of every thread was "full": the gate is shut, whatever the interleaving.
    assert gate.shut and not gate.is_open() and gate.wait(0) is False
    # One drain from here opens it, and every waiter of the churn comes out.
    gate.update(limit // 2)
    assert gate.is_open() and gate.wait(0) is True
    for t in waiters:
        t.join(WAIT)
        assert not t.is_alive()
    assert woken == [True] * 5
    assert [f.result(WAIT) for f in async_waits] == [True] * 20
