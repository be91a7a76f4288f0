"""The standard commands every actor answers.

ping, echo, info, stop, notify, run, spawn and kill_actor. They register when
the core is imported (``actorgrpc.core`` imports this module).

All but ``run`` are reentrant (the system commands): they start as soon as
they arrive, beside a user command that awaits, so that a busy actor still
answers ``ping`` and ``info`` with current figures and can be stopped. None of
them touches the state user commands guard. ``echo`` is the wire's probe (of
latency, of liveness) and answers only what it was sent: queued, it would
measure the command ahead of it. ``spawn`` awaits a child's start for up to
its ``timeout``: queued, the arbiter would start one actor at a time, and an
actor's command awaiting a spawn would wait behind every other command sent
to the arbiter. ``run`` runs user code on the actor, so it waits for its turn
as user commands do.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

from actorgrpc.core.actor import Request
from actorgrpc.core.commands import command
from actorgrpc.core.errors import PermissionDenied
from actorgrpc.core.proxy import ActorProxy

__all__ = ["echo", "info", "kill_actor", "notify", "ping", "run", "spawn", "stop"]


@command(reentrant=True)
def ping(request: Request) -> str:
    """Answer ``'pong'``."""
    return "pong"


@command(reentrant=True)
def echo(request: Request, message: Any = None) -> Any:
    """Answer with the message sent."""
    return message


@command(reentrant=True)
def info(request: Request) -> dict[str, Any]:
    """The actor's ``info()`` dictionary."""
    return request.actor.info()


@command(reentrant=True)
def stop(request: Request) -> None:
    """Stop the actor gracefully, after this (empty) reply has left."""
    request.actor.stop()


@command(reentrant=True)
def notify(request: Request, info: dict[str, Any] | None = None) -> float:
    """Answer the time (pulsar's notify; the Supervisor service records notifies)."""
    return time.time()


@command()
async def run(request: Request, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn(actor, *args, **kwargs)`` inside the actor (needs pickle)."""
    if not request.actor.allow_pickle:
        raise PermissionDenied("the run command needs pickle, which is off on this actor")
    if not callable(fn):
        raise TypeError(f"run needs a callable, not {type(fn).__name__}")
    result = fn(request.actor, *args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


@command(reentrant=True)
async def spawn(request: Request, **kwargs: Any) -> ActorProxy:
    """Spawn an actor (in the arbiter; other actors ask their arbiter)."""
    return await request.actor.spawn_here(**kwargs)


@command(reentrant=True)
async def kill_actor(request: Request, aid: str) -> str | None:
    """Stop the actor ``aid``, terminating it after ACTOR_ACTION_TIMEOUT: ``'killed <aid>'``.

    None if it would not die; ActorNotFound when there is no such actor.
    """
    return await request.actor.kill_actor(aid)
