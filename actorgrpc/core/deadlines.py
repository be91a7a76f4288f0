"""Deadlines: how long a request's reply may take, given per block of code.

A tree has a default (``arbiter(request_timeout=30.0)``); ``timeout(seconds)``
overrides it for the ``send`` and ``spawn`` calls made inside its block, in
the thread that entered it (plain code) or the task (async code): a
``contextvars.ContextVar`` follows each. It is a block, not a keyword of
``send``, so that it can never collide with a command's own keywords.
"""

from __future__ import annotations

import math
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Final

__all__ = ["UNSET", "call_timeout", "current_timeout", "timeout"]


class _Unset:
    """No ``timeout()`` block is in force: the tree's default applies."""

    def __repr__(self) -> str:
        return "UNSET"


#: What ``current_timeout()`` answers outside every ``timeout()`` block.
UNSET: Final = _Unset()

_timeout: ContextVar[float | _Unset | None] = ContextVar("actorgrpc_timeout", default=UNSET)


def _check(seconds: float | None) -> float | None:
    if seconds is None:
        return None
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds <= 0
    ):
        raise ValueError(f"timeout: seconds must be a number > 0 or None, not {seconds!r}")
    return float(seconds)


class timeout:  # a context manager used as a function, as contextlib's are
    """Give the requests sent inside the block a deadline of ``seconds`` each.

    Every ``send(...)`` and ``spawn(...)`` made in the block (in this thread,
    or in this task for async code) fails with ActorTimeout if no reply came
    within ``seconds`` of the call, whether it is awaited, waited for with
    ``.result()``, or not looked at; its envelope carries the deadline, so
    the receiver does not start a command whose time is up. ``None`` means
    no deadline for those calls. Blocks nest, and the innermost wins (so
    that ``timeout(None)`` inside can lift an outer deadline)::

        with actorgrpc.timeout(0.5):
            fut = send(proxy, 'slow', 2, timeout=10)   # `timeout=10` is the command's
        fut.result()   # ActorTimeout after ~0.5 s

        async with actorgrpc.timeout(2):
            await send(proxy, 'ping')

    ``.result(timeout)`` keeps its own meaning: how long that call waits
    (ActorTimeout if it is over and the request still runs, and the future
    stays pending); the deadline is the request's, and settles the future.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = _check(seconds)
        self._tokens: list[Token[float | _Unset | None]] = []

    def __enter__(self) -> timeout:
        self._tokens.append(_timeout.set(self.seconds))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _timeout.reset(self._tokens.pop())

    async def __aenter__(self) -> timeout:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"timeout({self.seconds!r})"


def current_timeout() -> float | _Unset | None:
    """The seconds of the innermost ``timeout()`` block in force, or UNSET."""
    return _timeout.get()


def call_timeout(default: float | None) -> float | None:
    """The deadline, in seconds from now, of a request sent here: the block's, else ``default``."""
    value = _timeout.get()
    return default if value is UNSET else value  # type: ignore[return-value]
