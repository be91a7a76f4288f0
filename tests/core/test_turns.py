"""Turns: one command at a time per actor, opt-in concurrency, call-chain reentrancy."""

from __future__ import annotations

import asyncio

import pytest
from conftest import KINDS, SPAWN_T, T, get_extra

from actorgrpc import ActorError, ActorNotAvailable, command, send, spawn
from actorgrpc.testing import wait_for

# asyncio.Events of the actors of this process (or of this child), by (aid, key):
# commands wait on them, other commands set them.
_EVENTS: dict[tuple[str, str], asyncio.Event] = {}


def _event(actor, key: str) -> asyncio.Event:
    return _EVENTS.setdefault((actor.aid, key), asyncio.Event())


# -- commands of this module ------------------------------------------------------


@command()
async def trn_increment(request):
    """Read n, await, write n + 1: safe only if no other command runs meanwhile."""
    extra = request.actor.extra
    n = extra.get("n", 0)
    await asyncio.sleep(0)  # any await: the loop runs whatever else is ready
    extra["n"] = n + 1
    return n + 1


@command()
async def trn_overlap(request, wanted):
    """Count the commands running at once; wait until ``wanted`` are in together; the most."""
    extra = request.actor.extra
    extra["running"] = running = extra.get("running", 0) + 1
    extra["most"] = max(extra.get("most", 0), running)
    together = _event(request.actor, "overlap")
    if running >= wanted:
        together.set()
    await together.wait()
    extra["running"] -= 1
    return extra["most"]


@command()
async def trn_hold(request, key):
    """Wait until ``trn_release(key)``."""
    await _event(request.actor, key).wait()
    return key


@command(reentrant=True)
def trn_release(request, key):
    """Release the commands holding on ``key``: reentrant, so it runs beside them."""
    _event(request.actor, key).set()
    return True


@command()
async def trn_ask(request, target, action, *args):
    """Ask ``target`` and answer its reply (awaits while holding this actor's turn)."""
    return await send(target, action, *args)


@command()
def trn_whoami(request):
    """A plain user command: it waits for its turn."""
    return request.actor.name


@command()
async def trn_log_async(request, tag, seq):
    log = request.actor.extra.setdefault("log", [])
    log.append(["start", tag, seq])
    await asyncio.sleep(0)
    log.append(["end", tag, seq])
    return seq


@command()
def trn_log_sync(request, tag, seq):
    request.actor.extra.setdefault("log", []).append(["sync", tag, seq])
    return seq


@command()
async def trn_flood(request, target, tag, n):
    """Send ``n`` commands to ``target`` at once, async and sync in turn; await them all."""
    futures = [
        send(target, "trn_log_async" if i % 2 == 0 else "trn_log_sync", tag, i) for i in range(n)
    ]
    return [await f for f in futures]


def counts(proxy) -> tuple[int, int]:
    """The actor's commands running and waiting for a turn, as its info says."""
    events = send(proxy, "info").result(T)["events"]
    return events["commands_in_progress"], events["requests_waiting"]


# -- one at a time --------------------------------------------------------------


@pytest.mark.parametrize("kind", [*KINDS, "arbiter"])
def test_async_commands_of_one_actor_do_not_race(arb, kind):
    # The arbiter runs users' commands on its command loop, its turns on its IO loop.
    p = "arbiter" if kind == "arbiter" else spawn(concurrency=kind).result(SPAWN_T)
    futures = [send(p, "trn_increment") for _ in range(100)]
    assert sorted(f.result(T) for f in futures) == list(range(1, 101))
    assert send(p, "info").result(T)["extra"]["n"] == 100


def test_commands_run_one_at_a_time_in_each_senders_order(arb):
    target = spawn(concurrency="thread").result(SPAWN_T)
    senders = [spawn(concurrency="thread").result(SPAWN_T) for _ in range(2)]
    flooding = [send(s, "trn_flood", target, tag, 20) for tag, s in zip("ab", senders, strict=True)]
    for f in flooding:
        assert f.result(T) == list(range(20))
    log = send(target, "run", get_extra, "log").result(T)
    entries = iter(log)
    seen: dict[str, list[int]] = {"a": [], "b": []}
    for what, tag, seq in entries:
        if what == "start":
            # Nothing else runs while an async command awaits: its end comes next.
            assert next(entries) == ["end", tag, seq], log
        else:
            assert what == "sync", log
        seen[tag].append(seq)
    assert seen == {"a": list(range(20)), "b": list(range(20))}


def test_max_concurrency_lets_that_many_commands_overlap(arb):
    p = spawn(concurrency="thread", max_concurrency=10).result(SPAWN_T)
    # Each waits until ten run together (the tenth releases them all): they
    # answer only if ten overlapped. The eleventh gets a turn once one ended.
    futures = [send(p, "trn_overlap", 10) for _ in range(11)]
    assert [f.result(T) for f in futures] == [10] * 11  # the most that ever ran at once


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-1, ValueError), ("2", TypeError), (True, TypeError)]
)
def test_max_concurrency_must_be_an_int_of_at_least_one(arb, value, error):
    with pytest.raises(error, match="max_concurrency"):
        spawn(concurrency="thread", max_concurrency=value)


def test_reentrant_must_be_a_bool():
    with pytest.raises(TypeError, match=r"reentrant=\.\.\.\) takes a bool"):
        command(reentrant="yes")


# -- what does not wait for a turn -------------------------------------------------


def test_info_answers_during_a_long_command_and_counts_the_waiting(arb):
    p = spawn(concurrency="thread").result(SPAWN_T)
    first = send(p, "trn_hold", "info")
    wait_for(lambda: counts(p) == (1, 0), T, "the first command to run")
    second = send(p, "trn_hold", "info")
    wait_for(lambda: counts(p) == (1, 1), T, "the second command to wait")
    assert send(p, "ping").result(T) == "pong"
    # A reentrant command runs beside the busy one, and frees both.
    assert send(p, "trn_release", "info").result(T) is True
    assert first.result(T) == second.result(T) == "info"
    wait_for(lambda: counts(p) == (0, 0), T, "nothing to run or wait any more")


@pytest.mark.parametrize("kind", KINDS)
def test_a_stop_fails_the_commands_waiting_for_a_turn(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    running = send(p, "trn_hold", "stop")
    wait_for(lambda: counts(p) == (1, 0), T, "the first command to run")
    waiting = [send(p, "trn_hold", "stop") for _ in range(3)]
    wait_for(lambda: counts(p) == (1, 3), T, "three commands to wait")
    send(p, "stop").result(T)
    for f in waiting:
        with pytest.raises(ActorNotAvailable, match="before it ran"):
            f.result(T)
    with pytest.raises(ActorError):
        running.result(T)  # cancelled as the actor ends
    wait_for(lambda: p.aid in arb.terminated_actors, T, "the actor to end")


def test_a_cancelled_request_waiting_for_its_turn_leaves_the_queue_at_once(arb):
    p = spawn(concurrency="thread").result(SPAWN_T)
    running = send(p, "trn_hold", "cancel")
    wait_for(lambda: counts(p) == (1, 0), T, "the first command to run")
    waiting = send(p, "trn_hold", "cancel")
    wait_for(lambda: counts(p) == (1, 1), T, "the second command to wait")
    assert waiting.cancel()
    wait_for(lambda: counts(p) == (1, 0), T, "the cancelled request to leave the queue")
    assert send(p, "trn_release", "cancel").result(T) is True
    assert running.result(T) == "cancel"


# -- call chains ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_calls_back_along_a_chain_do_not_deadlock(arb, kind):
    # By name: from a process actor these go through the arbiter, which forwards them.
    a, b = (spawn(concurrency=kind, name=f"trn-{x}").result(SPAWN_T) for x in "ab")
    # A -> A, A -> B -> A and A -> B -> A -> B: each call back finds its actor
    # busy awaiting, in the same chain.
    assert send(a, "trn_ask", "trn-a", "trn_whoami").result(T) == "trn-a"
    assert send(a, "trn_ask", "trn-b", "trn_ask", "trn-a", "trn_whoami").result(T) == "trn-a"
    deep = ("trn-b", "trn_ask", "trn-a", "trn_ask", "trn-b", "trn_whoami")
    assert send(a, "trn_ask", *deep).result(T) == "trn-b"
    # Another chain still waits for its turn: A is held, B's call to A waits.
    held = send(a, "trn_hold", "chain")
    wait_for(lambda: counts(a) == (1, 0), T, "A to be busy")
    other = send(b, "trn_ask", "trn-a", "trn_whoami")
    wait_for(lambda: counts(a) == (1, 1), T, "B's call to wait at A")
    send(a, "trn_release", "chain").result(T)
    assert held.result(T) == "chain"
    assert other.result(T) == "trn-a"
