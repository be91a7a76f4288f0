"""Commands: the ``@command`` registry (the standard commands are in ``standard_commands``)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from actorgrpc.core.errors import CommandNotFound, short

__all__ = [
    "Command",
    "command",
    "command_modules",
    "find_command",
    "get_command",
    "registered_commands",
]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Command:
    """A registered command: its function, whether it acknowledges the sender and may interleave.

    ``reentrant`` commands start as soon as they arrive, beside the commands
    their actor is running, instead of waiting for their turn: the standard
    system commands (ping, echo, info, notify, stop, spawn, kill_actor) are.
    """

    name: str
    fn: Callable[..., Any]
    ack: bool = True
    reentrant: bool = False

    @property
    def module(self) -> str:
        """The module that defines it (child processes import it)."""
        return str(self.fn.__module__)


_COMMANDS: dict[str, Command] = {}


@overload
def command(fn: F) -> F: ...
@overload
def command(fn: None = None, *, ack: bool = True, reentrant: bool = False) -> Callable[[F], F]: ...
def command(
    fn: F | None = None, *, ack: bool = True, reentrant: bool = False
) -> F | Callable[[F], F]:
    """Register ``def`` or ``async def name(request, *args, **kwargs)`` as a command.

    ``ack=False`` makes ``send`` return None at once and no reply travel back.
    An actor runs one command at a time, in the order they arrived (see
    ``spawn(max_concurrency=...)``); ``reentrant=True`` lets this one start at
    once, beside a command that is awaiting something: for commands that do
    not touch the state the others guard (a status query, a cancel).
    Use as ``@command()`` (pulsar's form), ``@command(ack=False)`` or ``@command``.
    The name is the function's name; a later definition replaces an earlier one.
    """

    if not isinstance(ack, bool):
        raise TypeError(f"command(ack=...) takes a bool, not {type(ack).__name__}")
    if not isinstance(reentrant, bool):
        raise TypeError(f"command(reentrant=...) takes a bool, not {type(reentrant).__name__}")

    def register(f: F) -> F:
        if not callable(f):
            raise TypeError(f"@command needs a function, not {type(f).__name__}")
        name = getattr(f, "__name__", None)
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(
                f"@command needs a named function (its name is the command's name), "
                f"not {type(f).__name__}"
            )
        _COMMANDS[name] = Command(name, f, ack, reentrant)
        return f

    if fn is not None:
        return register(fn)
    return register


def get_command(name: str) -> Command:
    """The command called ``name``; raises CommandNotFound, naming the closest one known."""
    try:
        return _COMMANDS[name]
    except KeyError:
        pass
    # 0.75: a swap of two letters in a short name ('pnig') scores just that.
    known = tuple(_COMMANDS) if len(name) < 100 else ()  # a copy: imports may register more
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    hint = f": did you mean {close[0]!r}?" if close else ""
    raise CommandNotFound(f"unknown command {short(name)}{hint}") from None


def find_command(name: str) -> Command | None:
    """The command called ``name``, or None."""
    return _COMMANDS.get(name)


def registered_commands() -> list[str]:
    """Names of every registered command, sorted."""
    return sorted(_COMMANDS)


def command_modules() -> list[str]:
    """Modules that define commands, for child processes to import."""
    # The runtime's own are imported with it.
    return sorted({c.module for c in _COMMANDS.values() if not c.module.startswith("actorgrpc.")})
