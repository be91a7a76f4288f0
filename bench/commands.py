"""Commands the benchmark's actors run.

Process actors import this module by itself (the arbiter lists the modules
that define commands), which works as long as ``bench`` is importable: run the
benchmark as ``python -m bench`` from the repository root.

Each timing command is bounded by a count and by seconds, and reports what it
measured rather than raising on a slow machine.
"""

from __future__ import annotations

import asyncio
import cProfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from actorgrpc import Request, ResourceExhausted, command, room

__all__ = [
    "flood",
    "hit",
    "hits",
    "pipeline",
    "profile_start",
    "profile_stop",
    "time_echo",
    "time_pings",
]


async def _timed(
    call: Callable[[], Awaitable[Any]],
    n: int,
    seconds: float,
    warmup: int,
    check: Callable[[Any], None] = lambda answer: None,
) -> list[float]:
    """Seconds per ``await call()``, one at a time, after ``warmup`` untimed calls.

    ``check`` looks at each timed answer (outside the timing), and raises if it is wrong.
    """
    for _ in range(warmup):
        await call()
    out: list[float] = []
    deadline = time.perf_counter() + seconds
    for _ in range(n):
        t = time.perf_counter()
        answer = await call()
        out.append(time.perf_counter() - t)
        check(answer)
        if t > deadline:
            break
    return out


@command()
async def time_pings(
    request: Request, target: Any, n: int, seconds: float, warmup: int = 20
) -> list[float]:
    """Seconds per ``await send(target, 'ping')``, one at a time."""
    actor = request.actor
    return await _timed(lambda: actor.send(target, "ping"), n, seconds, warmup)


@command()
async def time_echo(
    request: Request, target: Any, size: int, n: int, seconds: float
) -> list[float]:
    """Seconds per ``await send(target, 'echo', payload)`` with ``size`` bytes."""
    actor = request.actor
    payload = b"p" * size

    def check(answer: bytes) -> None:
        if len(answer) != size:
            raise RuntimeError(f"echo answered {len(answer)} bytes, not {size}")

    return await _timed(lambda: actor.send(target, "echo", payload), n, seconds, 3, check)


@command()
async def pipeline(
    request: Request, target: Any, depth: int, count: int, seconds: float
) -> dict[str, Any]:
    """Keep ``depth`` pings in flight to ``target`` for ``seconds`` (at most ``count``).

    Each reply sends the next request from its done-callback, so the figure is
    the runtime's, not the cost of one task per request.
    """
    actor = request.actor
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()
    state = {"sent": 0, "done": 0, "errors": 0}
    stop_at = loop.time() + seconds

    def issue() -> None:
        state["sent"] += 1
        actor.send(target, "ping").add_done_callback(landed)

    def landed(fut: asyncio.Future[Any]) -> None:
        state["done"] += 1
        if fut.cancelled() or fut.exception() is not None:
            state["errors"] += 1
        if state["sent"] < count and loop.time() < stop_at:
            issue()
        elif state["done"] == state["sent"] and not finished.done():
            finished.set_result(None)

    t0 = time.perf_counter()
    for _ in range(min(depth, count)):
        issue()
    await asyncio.wait_for(finished, seconds + 30)
    return {"count": state["done"], "seconds": time.perf_counter() - t0, "errors": state["errors"]}


@command(ack=False)
def hit(request: Request) -> None:
    """Count one message (no reply travels back)."""
    extra = request.actor.extra
    extra["hits"] = extra.get("hits", 0) + 1


@command()
def hits(request: Request, reset: bool = False) -> int:
    """The messages counted by ``hit`` so far."""
    extra = request.actor.extra
    count = int(extra.get("hits", 0))
    if reset:
        extra["hits"] = 0
    return count


@command()
async def flood(request: Request, target: Any, count: int, seconds: float) -> dict[str, Any]:
    """Send ``count`` ``hit`` messages without ack, then ask ``target`` how many it counted.

    The clock stops when the receiver has counted them all (or after
    ``seconds`` more, with what it counted).
    """
    actor = request.actor
    await actor.send(target, "hits", reset=True)
    t0 = time.perf_counter()
    for _ in range(count):
        while True:
            try:
                actor.send(target, "hit")
                break
            except ResourceExhausted:  # the way to it is bounded: wait for room
                await room(target)
    deadline = time.perf_counter() + seconds
    counted = await actor.send(target, "hits")
    while counted < count and time.perf_counter() < deadline:
        await asyncio.sleep(0.001)
        counted = await actor.send(target, "hits")
    return {"sent": count, "counted": counted, "seconds": time.perf_counter() - t0}


#: Running profilers, by actor (thread actors share a process, not a thread).
_profilers: dict[str, cProfile.Profile] = {}


@command()
def profile_start(request: Request, cpu: bool = False) -> bool:
    """Start cProfile on this actor's thread (its process's IO loop for a process actor).

    With ``cpu``, it counts the thread's CPU time rather than wall time, so
    that waits for the GIL or a lock are not charged to the function that
    waits (thread actors); the timer costs a system call per event.
    """
    profiler = cProfile.Profile(time.thread_time) if cpu else cProfile.Profile()
    _profilers[request.actor.aid] = profiler
    profiler.enable()
    return True


@command()
def profile_stop(request: Request, path: str) -> bool:
    """Stop this actor's cProfile and dump its statistics to ``path``."""
    profiler = _profilers.pop(request.actor.aid, None)
    if profiler is None:
        return False
    profiler.disable()
    profiler.dump_stats(path)
    return True
