"""One death, one message: a request whose actor dies under it says who died and how.

However the stream to a process actor goes when it dies (reset, closed,
an INTERNAL error of gRPC's core), the requests waiting on it fail with
ActorNotAvailable naming the actor and its death record's cause, whoever
sent them: plain code or a thread actor in the arbiter's process, or a
process actor, which asks the arbiter.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import pytest
from conftest import SPAWN_T, T

from actorgrpc import ActorNotAvailable, command, send, spawn
from actorgrpc.testing import wait_for


@command()
async def dm_nap(request) -> str:
    request.actor.extra["napping"] = request.actor.extra.get("napping", 0) + 1
    await asyncio.sleep(60)
    return "woke"


@command(reentrant=True)  # answers while dm_nap holds the actor's turn
def dm_napping(request) -> int:
    return request.actor.extra.get("napping", 0)


@command()
def dm_exit(request, code: int) -> None:
    os._exit(code)  # mid-request: no reply ever goes


@command()
async def dm_relay(request, target: Any, action: str, *args: Any) -> tuple[str, str]:
    """Send on, and tell how it failed (type and message), as this actor saw it."""
    try:
        return ("ok", await send(target, action, *args))
    except Exception as exc:
        return (type(exc).__name__, str(exc))


@pytest.mark.parametrize("sender", ["plain", "thread", "process"])
def test_a_request_to_an_actor_killed_under_it_names_the_actor_and_the_signal(arb, sender):
    victim = spawn(name="dm-victim").result(SPAWN_T)
    pid = arb.managed_actors[victim.aid].pid
    if sender == "plain":
        waiting = send(victim, "dm_nap")
    else:
        relay = spawn(concurrency=sender).result(SPAWN_T)
        waiting = send(relay, "dm_relay", victim, "dm_nap")
    wait_for(lambda: send(victim, "dm_napping").result(T), timeout=T, what="the request to run")
    os.kill(pid, signal.SIGKILL)
    told = f"actor dm-victim ({victim.aid}) ended: killed by signal SIGKILL"
    if sender == "plain":
        with pytest.raises(ActorNotAvailable) as err:
            waiting.result(T)
        assert str(err.value) == told
    else:
        assert list(waiting.result(T)) == ["ActorNotAvailable", told]


def test_a_request_to_an_actor_that_exits_under_it_names_the_exit_code(arb):
    victim = spawn().result(SPAWN_T)
    with pytest.raises(ActorNotAvailable) as err:
        send(victim, "dm_exit", 1).result(T)
    assert str(err.value) == f"actor {victim.aid} ended: exited with code 1"
