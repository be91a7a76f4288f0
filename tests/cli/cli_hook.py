"""A start hook for ``actorgrpc run cli_hook:setup`` (tests/cli/test_cli.py).

Run with tests/cli/ as the current directory: the CLI makes it importable, and
the process actor it spawns imports this module for the ``cli_greet`` command.
"""

from __future__ import annotations

from typing import Any

from actorgrpc import Actor, Request, command, spawn


class Opaque:
    """A value with no typed form: it travels pickled."""


@command()
def cli_greet(request: Request, who: str = "world") -> str:
    """Answer a greeting naming the actor that runs the command."""
    return f"hello {who} from {request.actor.name}"


@command()
def cli_values(request: Request) -> dict[str, Any]:
    """Values that JSON has no form for, to see how the CLI prints them."""
    return {
        "bytes": b"\x00\xffhi",
        "tuple": (1, (2, 3)),
        "proxy": request.actor.proxy,
        "big": 2**70,
        "opaque": Opaque(),
        "nan": float("nan"),
        "inf": float("-inf"),
    }


async def setup(arb: Actor) -> None:
    """Spawn a process actor named 'hooked' before the arbiter announces itself."""
    await spawn(name="hooked")


async def broken(arb: Actor) -> None:
    """A start hook that fails: the arbiter must not start."""
    raise RuntimeError("cli_hook.broken failed on purpose")


NOT_CALLABLE = 42
