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
import time
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
    It can be awaited too, from any event loop. ``result(timeout)`` waits at
    most ``timeout`` seconds (the future stays pending after); the request's
    deadline (``actorgrpc.timeout``, ``arbiter(request_timeout=...)``) fails
    the future itself, whoever waits. ``cancel()`` also cancels the command
    at the target (once).
    """

    def __init__(
        self, aid: str = "", what: str = "", on_cancel: Callable[[], None] | None = None
    ) -> None:
        super().__init__()
        self.aid = aid
        self._what = what
        self._on_cancel = on_cancel
        # (the timer's handle, its loop's thread) once the deadline is armed.
        self._timer: tuple[asyncio.TimerHandle, int] | None = None

    def result(self, timeout: float | None = None) -> T:
        """The reply; ActorTimeout (a TimeoutError) when none came within ``timeout`` seconds."""
        try:
            return super().result(timeout)
        except TimeoutError:
            if self.done():
                raise
            raise ActorTimeout(f"no reply {self._what} within {timeout}s") from None

    def cancel(self) -> bool:
        """Stop waiting, and cancel the command at the target (a reply that comes is dropped)."""
        if not super().cancel():
            return False
        on_cancel, self._on_cancel = self._on_cancel, None
        if on_cancel is not None:
            on_cancel()
        return True

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


def _expire(fut: concurrent.futures.Future[Any] | asyncio.Future[Any], what: str) -> None:
    try:
        _set(fut, False, ActorTimeout(what))
    except concurrent.futures.InvalidStateError:  # settled from another thread meanwhile
        pass


def _arm(cfut: BlockingFuture[Any], deadline: float, what: str) -> None:
    """Start ``cfut``'s deadline timer on the running loop (where its reply settles it)."""
    if cfut.done():
        return
    loop = asyncio.get_running_loop()
    handle = loop.call_at(deadline, _expire, cfut, what)
    cfut._timer = (handle, threading.get_ident())  # noqa: SLF001  # this module's class


def _deadline_text(what: str, seconds: float) -> str:
    return f"no reply {what} within its deadline of {seconds}s".replace("  ", " ")


def new_future(
    aid: str,
    what: str,
    loop: asyncio.AbstractEventLoop | None,
    tagged: bool = False,
    deadline: float | None = None,
    timers: asyncio.AbstractEventLoop | None = None,
    on_cancel: Callable[[], None] | None = None,
) -> tuple[Any, Settle]:
    """A future for the calling context, and a thread-safe way to settle it.

    ``loop`` is the caller's running loop (``running_loop()``): an asyncio
    future then, a concurrent one for plain code (None). ``tagged`` asyncio
    futures carry ``.aid`` (spawn's); others are plain, cheaper asyncio futures.
    ``deadline`` (seconds from now) fails the future with ActorTimeout when
    no reply came by then: a timer on ``loop``, or for plain code on
    ``timers``, the loop whose thread will settle it (one timer handle a
    request, no thread). ``on_cancel`` runs once if the future is cancelled
    (by its owner, or with the task awaiting it).
    """
    if loop is None:
        cfut: BlockingFuture[Any] = BlockingFuture(aid, what, on_cancel)
        if deadline is not None and timers is not None:
            at = time.monotonic() + deadline
            try:
                poster_for(timers).post(_arm, (cfut, at, _deadline_text(what, deadline)))
            except RuntimeError:  # that loop closed: the reply will not come either
                pass

        def settle_sync(ok: bool, value: Any) -> None:
            try:
                _set(cfut, ok, value)
            except concurrent.futures.InvalidStateError:
                pass
            timer = cfut._timer  # noqa: SLF001  # this module's class
            if timer is not None:
                if timer[1] == threading.get_ident():
                    timer[0].cancel()
                elif timers is not None:  # a handle is cancelled on its own loop's thread
                    try:
                        poster_for(timers).post(timer[0].cancel, ())
                    except RuntimeError:
                        pass

        return cfut, settle_sync
    if tagged:
        afut: asyncio.Future[Any] = AioActorFuture(loop=loop)
        afut.aid = aid  # type: ignore[attr-defined]
    else:
        afut = loop.create_future()
    if deadline is not None or on_cancel is not None:
        handle = (
            None
            if deadline is None
            else loop.call_later(deadline, _expire, afut, _deadline_text(what, deadline))
        )

        def done(f: asyncio.Future[Any]) -> None:
            if handle is not None:
                handle.cancel()
            if on_cancel is not None and f.cancelled():
                on_cancel()

        afut.add_done_callback(done)
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
