"""Monitors: actors in the arbiter's process that keep a pool of workers alive."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from actorgrpc.core.actor import Actor, check_spawn_params, new_aid
from actorgrpc.supervision.runners import OnExit

if TYPE_CHECKING:
    from actorgrpc.core.interfaces import Transport
    from actorgrpc.core.proxy import ActorProxy
    from actorgrpc.supervision.managed import ActorProxyMonitor

__all__ = ["Monitor", "MonitorRunner", "PoolOwner"]


class PoolOwner(Protocol):
    """What a monitor needs of the arbiter that owns it."""

    aid: str

    @property
    def transport(self) -> Transport: ...
    def after_run(self) -> bool: ...
    async def spawn_here(self, **params: Any) -> ActorProxy: ...


log = logging.getLogger("actorgrpc")


class Monitor(Actor):
    """Keeps ``num_workers`` workers running, restarting those that die.

    Made by ``arb.add_monitor(name, ...)``; it lives on the arbiter's IO loop
    and answers commands under its name (``send('workers', 'info')``). Its
    workers are named ``<name>-1`` to ``<name>-<num_workers>``, addressable
    like any named actor. A dead worker is replaced by a fresh one (a new aid,
    the same name, hooks and params) until more than ``max_restarts`` restarts
    happen within ``restart_window`` seconds: then the monitor stops
    restarting and says so in its info.
    """

    def __init__(
        self,
        *,
        arbiter: PoolOwner,
        name: str,
        num_workers: int = 1,
        max_restarts: int = 10,
        restart_window: float = 60.0,
        **worker_params: Any,
    ) -> None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"add_monitor: num_workers must be an int >= 0, not {num_workers!r}")
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
            raise ValueError(f"add_monitor: max_restarts must be an int >= 0, not {max_restarts!r}")
        if (
            isinstance(restart_window, bool)
            or not isinstance(restart_window, int | float)
            or restart_window <= 0
        ):
            raise ValueError(
                f"add_monitor: restart_window must be > 0 seconds, not {restart_window!r}"
            )
        for key in ("aid", "name"):
            if key in worker_params:
                raise TypeError(
                    f"add_monitor: workers get fresh aids and the names <monitor>-<n>; drop {key!r}"
                )
        # Validate the worker parameters now, where the mistake was made.
        check_spawn_params(worker_params)
        super().__init__(
            aid=new_aid(),
            name=name,
            transport=arbiter.transport,
            kind="monitor",
            supervisor=arbiter.aid,
        )
        self.num_workers = num_workers
        self.max_restarts = max_restarts
        self.restart_window = float(restart_window)
        self.worker_params = worker_params
        self.managed_actors: dict[str, ActorProxyMonitor] = {}
        self.terminated_actors: dict[str, dict[str, Any]] = {}
        #: False once the restart budget is spent.
        self.restarting = True
        self.restarts = 0
        self._arbiter = arbiter
        self._recent: deque[float] = deque()
        # Slots 1..num_workers: the aid of the worker in each, and those still starting.
        self._slots: dict[int, str] = {}
        self._starting: set[str] = set()
        self._pool_full = threading.Event()

    def is_monitor(self) -> bool:
        """True."""
        return True

    def _ticks(self) -> bool:
        return True  # the pool is looked after every period

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the pool first reaches ``num_workers``; False on timeout."""
        return self._pool_full.wait(timeout)

    # -- the pool -----------------------------------------------------------------

    async def _call_hook(self, name: str) -> None:
        await super()._call_hook(name)
        if name == "start" or name == "periodic_task":
            self._maintain()

    def _maintain(self) -> None:
        """Spawn what the pool lacks."""
        if self.after_run() or not self.restarting or self._arbiter.after_run():
            return
        slots = self._slots
        for slot in range(1, self.num_workers + 1):
            if slot in slots:
                continue
            aid = slots[slot] = new_aid()
            self._starting.add(aid)
            task = asyncio.ensure_future(self._spawn_worker(slot, aid))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._check_full()

    def _check_full(self) -> None:
        if len(self.managed_actors) >= self.num_workers and not self._starting:
            self._pool_full.set()

    def worker_name(self, slot: int) -> str:
        """The name of the worker in ``slot`` (from 1): ``<monitor>-<slot>``."""
        return f"{self.name}-{slot}"

    async def _spawn_worker(self, slot: int, aid: str) -> None:
        try:
            await self._arbiter.spawn_here(
                **self.worker_params, aid=aid, name=self.worker_name(slot), _supervisor=self.aid
            )
        except Exception as exc:
            log.error("monitor %s: a worker failed to start: %s", self.name, exc)
            self.extra["last_spawn_error"] = f"{type(exc).__name__}: {exc}"
            self._starting.discard(aid)
            if aid in self.managed_actors or aid in self.terminated_actors:
                # It was registered: its end (now or later) counts the restart,
                # frees the slot and refills it (worker_ended). Its name stays
                # taken until then.
                return
            self._free_slot(aid)
            if self._count_restart():
                self._maintain()
            return
        self._starting.discard(aid)
        self._check_full()

    def _free_slot(self, aid: str) -> None:
        for slot, holder in list(self._slots.items()):
            if holder == aid:
                del self._slots[slot]

    def _count_restart(self) -> bool:
        """Count a restart; False (and no more restarts) when the budget is spent."""
        now = time.monotonic()
        recent = self._recent
        recent.append(now)
        while recent and recent[0] < now - self.restart_window:
            recent.popleft()
        if len(recent) > self.max_restarts:
            self.restarting = False
            message = (
                f"{len(recent)} restarts within {self.restart_window:g}s "
                f"(max_restarts={self.max_restarts}): no more restarts"
            )
            self.extra["restarting"] = message
            log.error("monitor %s: %s", self.name, message)
            return False
        self.restarts += 1
        return True

    def worker_ended(self, aid: str, record: dict[str, Any]) -> int:
        """A worker ended: replace it (unless stopping or out of restarts)."""
        self.terminated_actors[aid] = record
        self._free_slot(aid)
        stopping = self.after_run() or self._arbiter.after_run()
        if not stopping and self.restarting and self._count_restart() and self._loop is not None:
            self._loop.call_soon(self._maintain)
        return self.restarts

    # -- info ---------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The monitor's info, with its pool."""
        out = super().info()
        out["pool"] = self.pool_info()
        return out

    def pool_info(self) -> dict[str, Any]:
        """The pool: size wanted, workers alive, restarts, whether it still restarts."""
        return {
            "num_workers": self.num_workers,
            "workers": sorted(self.managed_actors or {}),
            "concurrency": self.worker_params.get("concurrency", "process"),
            "restarts": self.restarts,
            "max_restarts": self.max_restarts,
            "restart_window": self.restart_window,
            "restarting": self.restarting,
        }


class MonitorRunner:
    """Runs a monitor as a task on the arbiter's IO loop."""

    def __init__(self, monitor: Monitor, loop: asyncio.AbstractEventLoop) -> None:
        self.monitor = monitor
        self.pid = 0
        #: None: a monitor lives on the IO loop, whose life is the arbiter's.
        self.heartbeat = None
        self._loop = loop
        self._task: asyncio.Task[None] | None = None
        self._done = threading.Event()
        self._on_exit: OnExit | None = None

    def start(self) -> None:
        """Start the monitor's life on the IO loop (call it there)."""
        if self._task is None:
            self._task = self._loop.create_task(self._main())

    def watch(self, loop: asyncio.AbstractEventLoop, on_exit: OnExit) -> None:
        """Call ``on_exit(code, how)`` when the monitor ends."""
        self._on_exit = on_exit

    async def _main(self) -> None:
        code: int | None = 0
        how = ""
        try:
            await self.monitor.main()
        except asyncio.CancelledError:
            code, how = None, "terminated: cut off after it did not stop in time"
        except Exception as exc:
            log.exception("monitor %s failed", self.monitor.name)
            code, how = 1, f"failed: {exc!r}"
        finally:
            self._done.set()
            if self._on_exit is not None:
                self._on_exit(code, how)

    def is_alive(self) -> bool:
        """True while the monitor runs."""
        return self._task is not None and not self._done.is_set()

    def terminate(self) -> None:
        """Cut the monitor off."""
        if self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)

    kill = terminate

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the monitor to end; True if it has."""
        return self._done.wait(timeout)
