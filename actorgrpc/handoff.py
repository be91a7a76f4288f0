"""Thread-safe hand-offs to an event loop, in batches.

``loop.call_soon_threadsafe`` wakes the loop (a write to its self-pipe) on
every call. Under load that is one system call per message; a poster queues
callbacks and wakes the loop once for all that arrive before it runs them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["post", "poster_for"]

log = logging.getLogger("actorgrpc")


class _Poster:
    """Queues callbacks for one loop; ``post(fn, args)`` from any thread."""

    __slots__ = ("__weakref__", "_items", "_lock", "_loop", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def post(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._items.append((fn, args))
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:
            with self._lock:
                self._scheduled = False
            self._items.clear()
            raise

    def _drain(self) -> None:
        with self._lock:
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
