"""The standard commands every actor answers.

ping, echo, info, stop, notify, run, spawn and kill_actor. They register when
the core is imported (``actorgrpc.core`` imports this module).
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


@command()
def ping(request: Request) -> str:
    """Answer ``'pong'``."""
    return "pong"


@command()
def echo(request: Request, message: Any = None) -> Any:
    """Answer with the message sent."""
    return message


@command()
def info(request: Request) -> dict[str, Any]:
    """The actor's ``info()`` dictionary."""
    return request.actor.info()


@command()
def stop(request: Request) -> None:
    """Stop the actor gracefully, after this (empty) reply has left."""
    request.actor.stop()


@command()
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


@command()
async def spawn(request: Request, **kwargs: Any) -> ActorProxy:
    """Spawn an actor (in the arbiter; other actors ask their arbiter)."""
    return await request.actor.spawn_here(**kwargs)


@command()
async def kill_actor(request: Request, aid: str) -> str | None:
    """Stop the actor ``aid``, terminating it after ACTOR_ACTION_TIMEOUT: ``'killed <aid>'``.

    None if it would not die; ActorNotFound when there is no such actor.
    """
    return await request.actor.kill_actor(aid)
