"""Commands: the ``@command`` registry, the request object, the standard commands."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, overload

from actorgrpc.core.errors import BadRequest, CommandNotFound, PermissionDenied, short

if TYPE_CHECKING:
    from actorgrpc.core._typing import Envelope
    from actorgrpc.core.actor import Actor
    from actorgrpc.core.proxy import ActorProxy

__all__ = ["Command", "Request", "command", "get_command", "registered_commands"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Command:
    """A registered command: its function and whether it acknowledges the sender."""

    name: str
    fn: Callable[..., Any]
    ack: bool = True

    @property
    def module(self) -> str:
        """The module that defines it (child processes import it)."""
        return str(self.fn.__module__)


class Request:
    """What a command receives first: ``request.actor`` and ``request.caller``."""

    __slots__ = ("_caller", "_env", "_read_caller", "action", "actor", "args", "kwargs")

    def __init__(
        self,
        actor: Actor,
        caller: ActorProxy | None,
        action: str,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        env: Envelope | None = None,
        read_caller: Callable[[Envelope], ActorProxy | None] | None = None,
    ) -> None:
        #: The actor running the command.
        self.actor = actor
        #: The command's name.
        self.action = action
        self.args = args
        self.kwargs = {} if kwargs is None else kwargs
        self._caller = caller
        # The envelope whose sender is the caller, read (by the transport's
        # codec) on first use: most commands never ask, and making the proxy
        # is on every request's path.
        self._env = env
        self._read_caller = read_caller

    @property
    def caller(self) -> ActorProxy | None:
        """The sender's proxy, or None for an outside client.

        BadRequest if the envelope's sender reference is malformed.
        """
        env = self._env
        if env is not None and self._read_caller is not None:
            self._caller = self._read_caller(env)  # may raise: asked again, raises again
            self._env = None
        return self._caller

    @caller.setter
    def caller(self, proxy: ActorProxy | None) -> None:
        self._caller, self._env = proxy, None

    def __repr__(self) -> str:
        try:
            caller = repr(self.caller)
        except BadRequest:  # a repr must not raise
            caller = "<malformed sender>"
        return (
            f"Request(actor={self.actor!r}, caller={caller}, action={self.action!r}, "
            f"args={self.args!r}, kwargs={self.kwargs!r})"
        )


_COMMANDS: dict[str, Command] = {}


@overload
def command(fn: F) -> F: ...
@overload
def command(fn: None = None, *, ack: bool = True) -> Callable[[F], F]: ...
def command(fn: F | None = None, *, ack: bool = True) -> F | Callable[[F], F]:
    """Register ``def`` or ``async def name(request, *args, **kwargs)`` as a command.

    ``ack=False`` makes ``send`` return None at once and no reply travel back.
    Use as ``@command()`` (pulsar's form), ``@command(ack=False)`` or ``@command``.
    The name is the function's name; a later definition replaces an earlier one.
    """

    if not isinstance(ack, bool):
        raise TypeError(f"command(ack=...) takes a bool, not {type(ack).__name__}")

    def register(f: F) -> F:
        if not callable(f):
            raise TypeError(f"@command needs a function, not {type(f).__name__}")
        name = getattr(f, "__name__", None)
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(
                f"@command needs a named function (its name is the command's name), "
                f"not {type(f).__name__}"
            )
        _COMMANDS[name] = Command(name, f, ack)
        return f

    if fn is not None:
        return register(fn)
    return register


def get_command(name: str) -> Command:
    """The command called ``name``; raises CommandNotFound."""
    try:
        return _COMMANDS[name]
    except KeyError:
        raise CommandNotFound(f"unknown command {short(name)}") from None


def find_command(name: str) -> Command | None:
    """The command called ``name``, or None."""
    return _COMMANDS.get(name)


def registered_commands() -> list[str]:
    """Names of every registered command, sorted."""
    return sorted(_COMMANDS)


def command_modules() -> list[str]:
    """Modules that define commands, for child processes to import."""
    return sorted({c.module for c in _COMMANDS.values()} - {__name__})


# -- the standard commands --------------------------------------------------


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
def stop(request: Request) -> bool:
    """Stop the actor gracefully, after this reply has left."""
    request.actor.stop()
    return True


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
async def kill_actor(request: Request, aid: str) -> bool:
    """Stop the actor ``aid`` (terminate it after ACTOR_ACTION_TIMEOUT)."""
    return await request.actor.kill_actor(aid)
