"""actorgrpc.futures: the futures send and spawn return, in plain code and on a loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import loop_thread

from actorgrpc import ActorError, ActorTimeout
from actorgrpc.core.futures import BlockingFuture, new_future, running_loop, runs_here

WAIT = 10.0


@pytest.fixture
def other_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An asyncio event loop running on a thread of its own."""
    with loop_thread(asyncio.new_event_loop()) as loop:
        yield loop


def on_loop(loop: asyncio.AbstractEventLoop, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` run by a coroutine on ``loop``; its result."""

    async def call() -> Any:
        return fn(*args)

    return asyncio.run_coroutine_threadsafe(call(), loop).result(WAIT)


def in_thread(fn: Any, *args: Any) -> None:
    """Run ``fn(*args)`` on a new thread and wait for it; re-raise what it raised."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            fn(*args)
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive()
    if failed:
        raise failed[0]


# -- plain code: concurrent futures ----------------------------------------------------


def test_without_a_loop_it_is_a_concurrent_future_carrying_the_aid() -> None:
    fut, settle = new_future("fut-aid", "from fut-aid", None)
    assert isinstance(fut, BlockingFuture)
    assert isinstance(fut, concurrent.futures.Future)
    assert fut.aid == "fut-aid"
    assert not fut.done()
    assert callable(settle)


def test_no_result_in_time_is_an_actor_timeout_naming_what_was_awaited() -> None:
    fut, _settle = new_future("fut-aid", "from fut-aid", None)
    with pytest.raises(ActorTimeout) as info:
        fut.result(timeout=0.05)
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, ActorError)
    assert "from fut-aid" in str(info.value) and "0.05" in str(info.value)
    assert not fut.done()  # still waiting: a later reply is still taken


def test_a_timeout_error_that_is_the_result_is_raised_as_it_is() -> None:
    fut, settle = new_future("fut-aid", "from fut-aid", None)
    error = TimeoutError("the command itself timed out")
    settle(False, error)
    with pytest.raises(TimeoutError) as info:
        fut.result(timeout=0.05)
    assert info.value is error
    assert not isinstance(info.value, ActorTimeout)


def test_settled_from_another_thread() -> None:
    fut, settle = new_future("fut-aid", "", None)
    in_thread(settle, True, {"answer": 42})
    assert fut.result(WAIT) == {"answer": 42}
    failing, settle_failing = new_future("fut-aid", "", None)
    in_thread(settle_failing, False, KeyError("missing"))
    with pytest.raises(KeyError, match="missing"):
        failing.result(WAIT)


def test_a_thread_waiting_on_result_wakes_when_settled() -> None:
    fut, settle = new_future("fut-aid", "", None)
    got: list[Any] = []
    waiting = threading.Thread(target=lambda: got.append(fut.result(WAIT)))
    waiting.start()
    waiting.join(0.1)  # not a sleep: the waiter must still be blocked
    assert waiting.is_alive() and got == []
    settle(True, "late")
    waiting.join(WAIT)
    assert not waiting.is_alive()
    assert got == ["late"]


def test_only_the_first_settle_counts() -> None:
    fut, settle = new_future("fut-aid", "", None)
    settle(True, 1)
    settle(True, 2)  # dropped, without an error
    settle(False, RuntimeError("too late"))
    assert fut.result(0) == 1


def test_settle_after_cancel_is_dropped() -> None:
    fut, settle = new_future("fut-aid", "", None)
    assert fut.cancel()
    in_thread(settle, True, "nobody wants this")  # must not raise
    in_thread(settle, False, RuntimeError("nor this"))
    assert fut.cancelled()
    with pytest.raises(concurrent.futures.CancelledError):
        fut.result(0)


# -- inside a loop: asyncio futures -------------------------------------------------------


def test_with_a_running_loop_it_is_an_asyncio_future_of_that_loop(
    other_loop: asyncio.AbstractEventLoop,
) -> None:
    fut, _settle = on_loop(other_loop, lambda: new_future("fut-aid", "", running_loop()))
    assert isinstance(fut, asyncio.Future)
    assert not isinstance(fut, concurrent.futures.Future)
    assert fut.get_loop() is other_loop


def test_asyncio_future_settled_from_another_thread_through_its_loop(
    other_loop: asyncio.AbstractEventLoop,
) -> None:
    made: concurrent.futures.Future[Any] = concurrent.futures.Future()

    async def awaiter() -> Any:
        fut, settle = new_future("fut-aid", "", running_loop())
        made.set_result(settle)
        return await asyncio.wait_for(fut, WAIT)

    answer = asyncio.run_coroutine_threadsafe(awaiter(), other_loop)
    settle = made.result(WAIT)
    assert not answer.done()
    settle(True, "from the main thread")  # not the loop's thread: posted to the loop
    assert answer.result(WAIT) == "from the main thread"


def test_asyncio_future_failed_from_another_thread(other_loop: asyncio.AbstractEventLoop) -> None:
    fut, settle = on_loop(other_loop, lambda: new_future("fut-aid", "", running_loop()))
    settle(False, ValueError("bad"))

    async def outcome() -> str:
        try:
            await asyncio.wait_for(fut, WAIT)
        except ValueError as exc:
            return str(exc)
        return "no error"

    assert asyncio.run_coroutine_threadsafe(outcome(), other_loop).result(WAIT) == "bad"


def test_asyncio_future_settled_on_its_own_thread_is_done_at_once(
    other_loop: asyncio.AbstractEventLoop,
) -> None:
    def settle_here() -> tuple[bool, Any]:
        fut, settle = new_future("fut-aid", "", running_loop())
        settle(True, "now")
        return fut.done(), fut.result() if fut.done() else None

    assert on_loop(other_loop, settle_here) == (True, "now")


def test_asyncio_future_settled_after_cancel_is_dropped(
    other_loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    fut, settle = on_loop(other_loop, lambda: new_future("fut-aid", "", running_loop()))
    assert on_loop(other_loop, fut.cancel) is True
    settle(True, "nobody wants this")  # from this thread: posted, then dropped
    settle(False, RuntimeError("nor this"))
    # The loop has run the posted settles once a callback posted after them runs.
    assert on_loop(other_loop, fut.cancelled) is True
    # Dropped, not failed: setting a cancelled future would be logged as a failed callback.
    assert [r.getMessage() for r in caplog.records] == []


def test_settling_after_the_loop_closed_is_dropped() -> None:
    with loop_thread(asyncio.new_event_loop()) as loop:
        fut, settle = on_loop(loop, lambda: new_future("fut-aid", "", running_loop()))
    assert loop.is_closed()
    settle(True, "nobody waits any more")  # must not raise
    assert not fut.done()


def test_tagged_futures_carry_the_aid(other_loop: asyncio.AbstractEventLoop) -> None:
    tagged, _ = on_loop(other_loop, lambda: new_future("fut-aid", "", running_loop(), True))
    plain, _ = on_loop(other_loop, lambda: new_future("fut-aid", "", running_loop()))
    # A tagged future is an AioActorFuture: an asyncio.Future with an aid, which
    # asyncio.Future's type does not have.
    assert isinstance(tagged, asyncio.Future) and tagged.aid == "fut-aid"  # type: ignore[attr-defined]
    assert isinstance(plain, asyncio.Future) and not hasattr(plain, "aid")


# -- running_loop and runs_here ----------------------------------------------------------


def test_running_loop_is_none_in_plain_code() -> None:
    assert running_loop() is None
    seen: list[Any] = []
    in_thread(lambda: seen.append(running_loop()))
    assert seen == [None]


def test_running_loop_is_the_loop_a_coroutine_runs_on(
    other_loop: asyncio.AbstractEventLoop,
) -> None:
    assert on_loop(other_loop, running_loop) is other_loop
    assert asyncio.run(_running_loop_here()) is True


async def _running_loop_here() -> bool:
    return running_loop() is asyncio.get_running_loop()


def test_runs_here_declares_the_threads_loop_until_undone() -> None:
    loop = asyncio.new_event_loop()
    seen: list[Any] = []

    def declare() -> None:
        seen.append(running_loop())
        runs_here(loop)
        try:
            seen.append(running_loop())  # declared: no loop needs to run
        finally:
            runs_here(None)
        seen.append(running_loop())

    try:
        in_thread(declare)
        assert seen == [None, loop, None]
        # Per thread: this thread declared nothing.
        assert running_loop() is None
    finally:
        loop.close()
