"""Thread-safe hand-offs to an event loop: in batches, and cheap to wake.

``loop.call_soon_threadsafe`` wakes the loop (a write to its self-pipe) on
every call. Under load that is one system call per message; a poster queues
callbacks and wakes the loop once for all that arrive before it runs them.

A thread actor's loop usually watches no file descriptor but its self-pipe:
``new_thread_loop`` makes a loop that then sleeps on a lock instead of in
``epoll``, so that a hand-off from another thread costs a lock release rather
than a socket write, an ``epoll`` wake-up and a socket read. As soon as code
on that loop watches a socket of its own, it sleeps in ``epoll`` as usual.
"""

from __future__ import annotations

import asyncio
import logging
import selectors
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["busy_for", "new_thread_loop", "post", "poster_for"]

log = logging.getLogger("actorgrpc")
_monotonic = time.monotonic


class _Poster:
    """Queues callbacks for one loop; ``post(fn, args)`` from any thread."""

    __slots__ = ("__weakref__", "_items", "_loop", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._scheduled = False

    def post(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        # No lock: deque operations are atomic, and a drain scheduled twice
        # finds nothing the second time; one never scheduled cannot happen,
        # since _drain clears the flag before it takes the first item.
        self._items.append((fn, args))
        if self._scheduled:
            return
        self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:
            self._scheduled = False
            self._items.clear()
            raise

    def _drain(self) -> None:
        self._scheduled = False
        items = self._items
        while items:
            fn, args = items.popleft()
            try:
                fn(*args)
            except Exception:
                log.exception("callback %r failed", fn)


_posters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Poster] = (
    weakref.WeakKeyDictionary()
)
_posters_lock = threading.Lock()


def poster_for(loop: asyncio.AbstractEventLoop) -> _Poster:
    """The poster of ``loop``: keep it to post often without looking it up."""
    if type(loop) is _ThreadLoop:
        return loop.poster
    poster = _posters.get(loop)
    if poster is None:
        with _posters_lock:
            poster = _posters.get(loop)
            if poster is None:
                poster = _posters[loop] = _Poster(loop)
    return poster


def post(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` soon on ``loop``, from any thread, in order.

    Raises RuntimeError when the loop is closed.
    """
    poster_for(loop).post(fn, args)


class _LockSelector(selectors.DefaultSelector):
    """Sleeps on a lock while the self-pipe is the only file descriptor watched."""

    def __init__(self) -> None:
        super().__init__()
        #: Released to wake the loop; held while no wake-up is pending.
        self.wake = threading.Lock()
        self.wake.acquire()
        #: True while the loop sleeps (or may sleep) on ``wake`` rather than in epoll.
        self.on_lock = True
        #: When the loop last came out of select (time.monotonic()), 0.0 while in it:
        #: a loop away from select for long is stuck in one callback.
        self.busy_since = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        self.busy_since = 0.0
        try:
            return self._select(timeout)
        finally:
            self.busy_since = _monotonic()

    def _select(self, timeout: float | None) -> list[tuple[selectors.SelectorKey, int]]:
        wake = self.wake
        if len(self.get_map()) <= 1:  # only the loop's self-pipe
            self.on_lock = True
            if timeout is None:
                wake.acquire()
            elif timeout <= 0:
                wake.acquire(False)
            else:
                wake.acquire(True, timeout)
            return []
        # Set before looking at the lock: a waker that saw on_lock still True
        # released the lock before this look (see _ThreadLoop._write_to_self).
        self.on_lock = False
        if wake.acquire(False):
            timeout = 0
        return super().select(timeout)


class _ThreadLoop(asyncio.SelectorEventLoop):
    """An event loop for a thread other than the main one, woken through a lock."""

    _selector: _LockSelector

    def __init__(self) -> None:
        super().__init__(_LockSelector())
        #: This loop's poster, kept here: thread actors look it up per request.
        self.poster = _Poster(self)

    def busy_for(self) -> float:
        """Seconds since the loop came out of select (0: it is in select, waiting)."""
        since = self._selector.busy_since
        return _monotonic() - since if since else 0.0

    def _write_to_self(self) -> None:
        # Release first, then look: see _LockSelector.select for the other half.
        selector = self._selector
        try:
            selector.wake.release()
        except RuntimeError:  # a wake-up is pending already
            pass
        if not selector.on_lock:
            super()._write_to_self()  # type: ignore[misc]


def busy_for(loop: asyncio.AbstractEventLoop) -> float | None:
    """Seconds a thread loop has been running without coming back to select (0: it waits).

    None for a loop ``new_thread_loop`` did not make. Costs the loop nothing:
    an idle loop shows it lives without being woken.
    """
    return loop.busy_for() if type(loop) is _ThreadLoop else None


def new_thread_loop() -> asyncio.AbstractEventLoop:
    """A new event loop for a thread actor, cheap to wake from other threads.

    Not for the main thread: signal handlers wake a loop through its
    self-pipe, which this loop does not watch while it sleeps on its lock.
    """
    return _ThreadLoop()
