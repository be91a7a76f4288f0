"""Futures that work from plain code and from inside an actor's event loop.

``send`` and ``spawn`` return an awaitable asyncio future when called with a
running event loop (inside an actor), and a ``concurrent.futures.Future``
with ``.result(timeout)`` otherwise, so that scripts, tests and coroutines use
the same two functions. Either may be settled from any thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Generator
from typing import Any, Protocol, TypeVar

from actorgrpc.core.errors import ActorTimeout
from actorgrpc.core.handoff import poster_for

__all__ = [
    "ActorFuture",
    "BlockingFuture",
    "Settle",
    "new_future",
    "running_loop",
    "runs_here",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

#: Settles a future: ``settle(True, value)`` or ``settle(False, exception)``.
Settle = Callable[[bool, Any], None]


class ActorFuture(Protocol[T_co]):
    """What ``send`` and ``spawn`` return: a future of the reply (of the proxy, for spawn).

    From plain code it is a :class:`BlockingFuture`: ``result(timeout)`` waits
    and raises ActorTimeout when no reply came in time. Inside an actor (a
    running event loop) it is an asyncio future: ``await`` it. ``aid`` names
    the actor concerned on spawn's futures.
    """

    def __await__(self) -> Generator[Any, None, T_co]: ...

    def result(self, timeout: float | None = None) -> T_co:
        """The reply, waiting up to ``timeout`` seconds (plain code; await it in an actor)."""
        ...

    def done(self) -> bool:
        """True once the reply (or an error) has come, or the future was cancelled."""
        ...

    def cancel(self) -> bool:
        """Stop waiting: a reply that comes later is dropped."""
        ...

    def cancelled(self) -> bool:
        """True if it was cancelled."""
        ...

    def add_done_callback(self, fn: Callable[[Any], object], /) -> None:
        """Call ``fn(future)`` once it is done."""
        ...


class BlockingFuture(concurrent.futures.Future[T]):
    """A concurrent future whose ``result(timeout)`` raises ActorTimeout.

    ``aid`` is the aid of the actor concerned (set at once by ``spawn``).
    It can be awaited too, from any event loop.
    """

    def __init__(self, aid: str = "", what: str = "") -> None:
        super().__init__()
        self.aid = aid
        self._what = what

    def result(self, timeout: float | None = None) -> T:
        """The reply; ActorTimeout (a TimeoutError) when none came within ``timeout`` seconds."""
        try:
            return super().result(timeout)
        except TimeoutError:
            if self.done():
                raise
            raise ActorTimeout(f"no reply {self._what} within {timeout}s") from None

    def __await__(self) -> Generator[Any, None, T]:
        return asyncio.wrap_future(self).__await__()


class AioActorFuture(asyncio.Future[Any]):
    """An asyncio future carrying ``aid``, as ActorFuture does."""

    aid: str = ""


def _set(fut: concurrent.futures.Future[Any] | asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():  # cancelled by its owner: the reply is dropped
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


#: The loop that the current thread runs and nothing else (see runs_here).
_here = threading.local()


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The calling thread's running event loop, or None in plain code."""
    loop: asyncio.AbstractEventLoop | None = getattr(_here, "loop", None)
    if loop is not None:
        return loop
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def runs_here(loop: asyncio.AbstractEventLoop | None) -> None:
    """Declare that this thread runs ``loop`` and nothing else (None: no longer).

    ``running_loop()`` then answers without asking asyncio, whose
    ``get_running_loop()`` makes a ``getpid()`` system call on every call
    (Python 3.11): one per send. Only for a thread dedicated to its loop.
    """
    _here.loop = loop


def new_future(
    aid: str, what: str, loop: asyncio.AbstractEventLoop | None, tagged: bool = False
) -> tuple[Any, Settle]:
    """A future for the calling context, and a thread-safe way to settle it.

    ``loop`` is the caller's running loop (``running_loop()``): an asyncio
    future then, a concurrent one for plain code (None). ``tagged`` asyncio
    futures carry ``.aid`` (spawn's); others are plain, cheaper asyncio futures.
    """
    if loop is None:
        cfut: BlockingFuture[Any] = BlockingFuture(aid, what)

        def settle_sync(ok: bool, value: Any) -> None:
            try:
                _set(cfut, ok, value)
            except concurrent.futures.InvalidStateError:
                pass

        return cfut, settle_sync
    if tagged:
        afut: asyncio.Future[Any] = AioActorFuture(loop=loop)
        afut.aid = aid  # type: ignore[attr-defined]
    else:
        afut = loop.create_future()
    owner = threading.get_ident()

    def settle_async(ok: bool, value: Any) -> None:
        if threading.get_ident() == owner:
            _set(afut, ok, value)
        else:
            try:
                poster_for(loop).post(_set, (afut, ok, value))
            except RuntimeError:  # the loop closed: nobody waits any more
                pass

    return afut, settle_async
