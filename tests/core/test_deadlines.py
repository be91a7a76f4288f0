"""Deadlines and cancel: timeout(), the tree's request_timeout, and cancelling futures."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from conftest import KINDS, SPAWN_T, T

from actorgrpc import ActorTimeout, command, send, spawn, timeout
from actorgrpc.testing import running_arbiter, wait_for

#: Released by the test: dl_block waits on it (thread actors share this process).
GATE = threading.Event()
#: Tasks dl_wait_on started, by the aid of the actor that runs them.
WAITERS: dict[str, asyncio.Task] = {}


def ran(actor, tag: str) -> None:
    actor.extra["ran"] = [*actor.extra.get("ran", []), tag]


@command()
async def dl_hang(request):
    """Wait (for a cancel); record that it started and how it ended."""
    ran(request.actor, "started")
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        ran(request.actor, "cancelled")
        raise
    return "finished"


@command()
def dl_kw(request, timeout=None):
    """The command's own `timeout` keyword, as it received it."""
    return timeout


@command()
def dl_block(request):
    """A sync command that holds its actor until the test sets GATE."""
    ran(request.actor, "block")
    assert GATE.wait(T)
    return "released"


@command()
def dl_mark(request, tag):
    ran(request.actor, tag)
    return tag


@command()
async def dl_ask(request, target):
    """An await inside `async with timeout(0.3)`, beside one outside it (the tree has none)."""

    async def inside():
        async with timeout(0.3):
            return await send(target, "dl_hang")

    bounded = asyncio.ensure_future(inside())
    unbounded = asyncio.ensure_future(send(target, "dl_hang"))
    try:
        await bounded
    except ActorTimeout:
        outcome = "timeout"
    else:
        outcome = "no timeout"
    # The task outside the block has no deadline: it still waits.
    still_waiting = not unbounded.done()
    unbounded.cancel()
    return outcome, still_waiting


async def _await_hang(target):
    return await send(target, "dl_hang")


@command()
def dl_wait_on(request, target):
    """Start a task awaiting dl_hang on ``target``."""
    WAITERS[request.actor.aid] = asyncio.ensure_future(_await_hang(target))


@command()
def dl_cancel_waiter(request):
    return WAITERS.pop(request.actor.aid).cancel()


def extra(proxy):
    return send(proxy, "info").result(T)["extra"].get("ran", [])


def in_progress(proxy):
    return send(proxy, "info").result(T)["events"]["commands_in_progress"]


@pytest.fixture
def no_default():
    """An arbiter whose requests have no deadline but timeout()'s."""
    with running_arbiter(request_timeout=None) as arb:
        yield arb


@pytest.mark.parametrize("kind", KINDS)
def test_a_timeout_block_fails_the_future_at_its_deadline(no_default, kind):
    # Three at once: the two commands left hanging must not hold up the third.
    p = spawn(concurrency=kind, max_concurrency=3).result(SPAWN_T)
    start = time.monotonic()
    with timeout(0.3):
        waited = send(p, "dl_hang")
        unwatched = send(p, "dl_hang")
    with pytest.raises(ActorTimeout, match="deadline"):
        waited.result()  # no timeout of its own: the deadline ends the wait
    assert 0.25 < time.monotonic() - start < 5
    # A future nobody waits on fails at its deadline too.
    wait_for(unwatched.done, T, "the unwatched future to fail")
    assert isinstance(unwatched.exception(), ActorTimeout)
    # Outside the block: no deadline, and the command's own `timeout` keyword is its own.
    with timeout(5):
        assert send(p, "dl_kw", timeout=7).result(T) == 7


@pytest.mark.parametrize("kind", KINDS)
def test_an_async_timeout_block_follows_the_task(no_default, kind):
    asker = spawn(concurrency="thread").result(SPAWN_T)
    target = spawn(concurrency=kind).result(SPAWN_T)
    assert tuple(send(asker, "dl_ask", target).result(T)) == ("timeout", True)


def test_a_timeout_block_belongs_to_its_thread(no_default):
    p = spawn(concurrency="thread").result(SPAWN_T)
    other: list = []
    with timeout(0.3):
        mine = send(p, "dl_hang")
        worker = threading.Thread(target=lambda: other.append(send(p, "dl_hang")))
        worker.start()
        worker.join(T)
    with pytest.raises(ActorTimeout):
        mine.result(T)
    assert not other[0].done()  # sent in another thread: no deadline
    assert other[0].cancel()


def test_request_timeout_is_the_trees_default_and_none_lifts_it():
    with running_arbiter(request_timeout=0.5):
        p = spawn(concurrency="thread").result(SPAWN_T)
        with timeout(None):
            unbounded = send(p, "dl_hang")
        first = send(p, "dl_hang")
        with pytest.raises(ActorTimeout):
            first.result()
        later = send(p, "dl_hang")  # sent once 0.5 s passed: fails 0.5 s after that
        with pytest.raises(ActorTimeout):
            later.result()
        assert not unbounded.done()
        assert unbounded.cancel()


def test_spawn_honours_a_timeout_block(no_default):
    with timeout(0.01), pytest.raises(ActorTimeout):
        spawn(concurrency="process").result()


def test_queued_work_past_its_deadline_is_not_started(no_default):
    p = spawn(concurrency="thread").result(SPAWN_T)
    GATE.clear()
    busy = send(p, "dl_block")
    with timeout(0.1):
        late = send(p, "dl_mark", "late")
    with timeout(0.3):
        sentinel = send(p, "dl_mark", "sentinel")  # sent after `late`: its deadline is later
    with pytest.raises(ActorTimeout):
        sentinel.result(T)
    assert isinstance(late.exception(T), ActorTimeout)
    GATE.set()
    assert busy.result(T) == "released"
    assert send(p, "dl_mark", "after").result(T) == "after"
    assert extra(p) == ["block", "after"]


@pytest.mark.parametrize("kind", KINDS)
def test_cancelling_a_future_cancels_the_command(no_default, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    fut = send(p, "dl_hang")
    wait_for(lambda: extra(p) == ["started"], T, "the command to start")
    assert in_progress(p) >= 1
    assert fut.cancel()
    wait_for(lambda: extra(p) == ["started", "cancelled"], T, "the command to be cancelled")
    wait_for(lambda: in_progress(p) == 0, T, "no command in progress")
    assert fut.cancelled()


@pytest.mark.parametrize("kind", KINDS)
def test_cancelling_an_awaiting_task_cancels_the_callees_command(no_default, kind):
    caller = spawn(concurrency="thread").result(SPAWN_T)
    callee = spawn(concurrency=kind).result(SPAWN_T)
    send(caller, "dl_wait_on", callee).result(T)
    wait_for(lambda: extra(callee) == ["started"], T, "the callee's command to start")
    assert send(caller, "dl_cancel_waiter").result(T) is True
    wait_for(lambda: extra(callee) == ["started", "cancelled"], T, "the callee's cancel")
    wait_for(lambda: in_progress(callee) == 0, T, "no command in progress at the callee")
