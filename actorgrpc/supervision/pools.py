"""Monitors: actors in the arbiter's process that keep a pool of workers alive.

A monitor also hands work to its pool: a user command sent to its name goes
to one of its workers (or to every one, ``routing='broadcast'``), re-sent to
another when the worker dies first if the pool allows ``retries``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from actorgrpc.core import standard_commands
from actorgrpc.core.actor import Actor, check_spawn_params, new_aid
from actorgrpc.core.consts import ACTOR_STATES
from actorgrpc.core.errors import ActorNotAvailable
from actorgrpc.supervision.runners import OnExit

if TYPE_CHECKING:
    from actorgrpc.core._typing import Envelope, ReplyCallback
    from actorgrpc.core.interfaces import Transport
    from actorgrpc.core.proxy import ActorProxy
    from actorgrpc.supervision.managed import ActorProxyMonitor

__all__ = [
    "MONITOR_COMMANDS",
    "RECORD_WAIT",
    "ROUTE_WAIT",
    "ROUTINGS",
    "Monitor",
    "MonitorRunner",
    "PoolOwner",
]

#: The commands a monitor answers itself when they are sent to its name: the
#: standard ones (core/standard_commands.py, as the arbiter reads them too).
#: Every other command goes to its workers.
MONITOR_COMMANDS = frozenset(standard_commands.__all__)
#: How a pool picks the worker of a request (``add_monitor(routing=...)``).
ROUTINGS = ("round_robin", "least_busy", "broadcast")
#: Seconds a request waits for a worker to run when none does, before it fails.
ROUTE_WAIT = 5.0
#: Seconds a request its worker never answered waits for the worker's death
#: record, to say how it died; and how long the monitor routes around it.
RECORD_WAIT = 1.0


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
    and answers the standard commands under its name (``send('workers',
    'info')``; MONITOR_COMMANDS). Any other command sent to its name goes to
    its workers, forwarded as it came: to one of them (``routing=
    'round_robin'``, the default, or ``'least_busy'``: the one with the fewest
    requests forwarded and unanswered) or to each (``'broadcast'``: the reply
    lists their results in slot order). Only running workers are routed to;
    with none, a request waits up to ROUTE_WAIT seconds for one. A request
    whose worker dies first fails with ActorNotAvailable naming the worker and
    how it died, or is re-sent to a live worker up to ``retries`` times (so it
    runs at least once, perhaps twice).

    Its workers are named ``<name>-1`` to ``<name>-<num_workers>``, addressable
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
        routing: str = "round_robin",
        retries: int = 0,
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
        if routing not in ROUTINGS:
            raise ValueError(f"add_monitor: routing must be one of {ROUTINGS}, not {routing!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"add_monitor: retries must be an int >= 0, not {retries!r}")
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
        #: How a user command sent to the monitor's name picks its worker.
        self.routing = routing
        #: How often a request whose worker died before it replied is re-sent.
        self.retries = retries
        #: Requests re-sent so far (each may have run twice: at least once).
        self.resent = 0
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
        # Routing (IO loop only): requests forwarded and not yet answered, by
        # worker aid; workers that left a request unanswered, with the loop
        # time until which they are routed around; requests waiting for a
        # worker to run; and those waiting for a dead worker's death record.
        self._turn = 0
        self._busy: dict[str, int] = {}
        self._suspects: dict[str, float] = {}
        self._waiting: deque[_Job] = deque()
        self._wait_timer: asyncio.TimerHandle | None = None
        self._mourning: dict[str, list[Callable[[str | None], None]]] = {}

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
            self._flush_waiting()  # a worker routed around may be back

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
            else:
                self._give_up_waiting()
            return
        self._starting.discard(aid)
        self._check_full()
        self._flush_waiting()  # requests that wait for a worker: one runs now

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
        self._busy.pop(aid, None)
        self._suspects.pop(aid, None)
        self._mourn(aid, str(record.get("how") or "") or None)
        stopping = self.after_run() or self._arbiter.after_run()
        if not stopping and self.restarting and self._count_restart() and self._loop is not None:
            self._loop.call_soon(self._maintain)
        else:
            self._give_up_waiting()
        return self.restarts

    # -- routing: user commands go to the workers -----------------------------------

    def deliver(
        self,
        env: Envelope,
        on_reply: ReplyCallback,
        running: asyncio.AbstractEventLoop | None,
        *,
        inline: bool = True,
        caller: ActorProxy | None = None,
        origin: object = None,
    ) -> None:
        """Take a request: its own commands (MONITOR_COMMANDS) run here, the rest go to the pool.

        A user command never runs on the monitor (the arbiter's IO loop) nor
        waits in its mailbox: it is forwarded, as it came, to a worker.
        """
        if env.action in MONITOR_COMMANDS:
            super().deliver(env, on_reply, running, inline=inline, caller=caller, origin=origin)
            return
        # A request sent without ack is forwarded once: no reply tells it failed.
        job = _Job(env, None if env.no_reply else on_reply, caller, self.retries)
        loop = self._loop
        if loop is not None and running is loop:
            if inline:
                self._route(job)
            else:
                loop.call_soon(self._route, job)  # not inside the sender's send()
            return
        try:
            self._transport.call_soon(self._route, job)
        except RuntimeError:  # the IO loop has closed
            self._fail(job, f"pool {self.name} is not running")

    def _route(self, job: _Job) -> None:
        """Send ``job`` to its worker (every worker, for a broadcast), or let it wait for one."""
        if self.after_run() or self._arbiter.after_run():
            self._fail(job, f"pool {self.name} is stopping: its workers take no more requests")
            return
        workers = self._routable()
        if not workers:
            self._wait(job)
        elif self.routing == "broadcast":
            self._broadcast(job, workers)
        elif self.routing == "least_busy":
            busy = self._busy
            self._send(job, min(workers, key=lambda w: busy.get(w.aid, 0)))  # first in slot order
        else:
            self._send(job, workers[self._turn % len(workers)])
            self._turn += 1

    def _routable(self) -> list[ActorProxyMonitor]:
        """The workers a request may go to, in slot order: running and not routed around."""
        managed, suspects, slots = self.managed_actors, self._suspects, self._slots
        out = []
        for slot in sorted(slots):
            entry = managed.get(slots[slot])
            # RUN: it has announced its address and runs (not STARTING, not STOPPING).
            if entry is None or entry.state != ACTOR_STATES.RUN:
                continue
            if suspects and entry.aid in suspects:
                if suspects[entry.aid] > self._transport.loop.time():
                    continue
                del suspects[entry.aid]
            out.append(entry)
        return out

    def _send(self, job: _Job, entry: ActorProxyMonitor) -> None:
        job.sent += 1
        transport = self._transport
        if job.reply is None:
            transport.forward(job.env, entry, None, job.caller)
            return
        reply, aid = job.reply, entry.aid
        self._busy[aid] = self._busy.get(aid, 0) + 1

        def answered(answer: Envelope, lost: bool) -> None:
            self._unbusy(aid)
            if not lost:
                reply(answer)
                return
            self._suspect(aid)
            if job.tries > 0:
                job.tries -= 1
                self.resent += 1
                self._route(job)  # at least once: it may have run on the dead worker
                return
            self._explain(entry, lambda how: self._fail(job, self._lost(entry, how, job)))

        transport.forward(job.env, entry, answered, job.caller)

    def _broadcast(self, job: _Job, workers: list[ActorProxyMonitor]) -> None:
        """Send ``job`` to every worker; the reply lists their results in slot order.

        The first error in slot order (a worker that died first included: no
        retries here) is the reply instead, once every worker has answered.
        """
        env, transport = job.env, self._transport
        job.sent = 1
        if job.reply is None:
            for entry in workers:
                transport.forward(env, entry, None, job.caller)
            return
        reply = job.reply
        parts: list[Envelope] = [None] * len(workers)
        left = len(workers)

        def done(i: int, answer: Envelope) -> None:
            nonlocal left
            parts[i] = answer
            left -= 1
            if not left:
                reply(self._codec.gather(env.id, parts, self._settings.max_message_size))

        def part(i: int, entry: ActorProxyMonitor) -> Callable[[Envelope, bool], None]:
            aid = entry.aid
            self._busy[aid] = self._busy.get(aid, 0) + 1

            def answered(answer: Envelope, lost: bool) -> None:
                self._unbusy(aid)
                if not lost:
                    done(i, answer)
                    return
                self._suspect(aid)

                def failed(how: str | None) -> None:
                    error = ActorNotAvailable(self._lost(entry, how, job))
                    done(i, self._codec.error_reply(env.id, error))

                self._explain(entry, failed)

            return answered

        for i, entry in enumerate(workers):
            transport.forward(env, entry, part(i, entry), job.caller)

    def _unbusy(self, aid: str) -> None:
        left = self._busy.get(aid, 0) - 1
        if left > 0:
            self._busy[aid] = left
        else:
            self._busy.pop(aid, None)

    def _suspect(self, aid: str) -> None:
        """Route around a worker that left a request unanswered (it is dying, most likely)."""
        if aid in self.managed_actors:
            self._suspects[aid] = self._transport.loop.time() + RECORD_WAIT

    def _explain(self, entry: ActorProxyMonitor, then: Callable[[str | None], None]) -> None:
        """``then(how)``: how the worker ended, from its death record; None if none comes soon."""
        record = self.terminated_actors.get(entry.aid)
        if record is not None:
            then(str(record.get("how") or "") or None)
            return
        waiting = self._mourning.get(entry.aid)
        if waiting is None:
            waiting = self._mourning[entry.aid] = []
            self._transport.loop.call_later(RECORD_WAIT, self._mourn, entry.aid, None)
        waiting.append(then)

    def _mourn(self, aid: str, how: str | None) -> None:
        for then in self._mourning.pop(aid, ()):
            then(how)

    def _lost(self, entry: ActorProxyMonitor, how: str | None, job: _Job) -> str:
        """Why a request failed: the worker it went to (name and aid), and how that one ended."""
        who = f"worker {entry.name} ({entry.aid}) of pool {self.name}"
        text = f"{who} ended before it replied: {how}" if how else f"{who} did not reply"
        if job.sent > 1:
            text += f" (the last of {job.sent} workers tried; retries={self.retries})"
        return text

    def _none_to_come(self) -> str | None:
        """Why no worker will run (no workers, the restart budget spent), or None."""
        if not self.num_workers:
            return "it has none (num_workers=0)"
        if self.restarting:
            return None
        managed, starting = self.managed_actors, self._starting
        for aid in self._slots.values():
            entry = managed.get(aid)
            if aid in starting or (entry is not None and entry.state < ACTOR_STATES.STOPPING):
                return None
        return str(self.extra.get("restarting") or "it restarts no more workers")

    def _give_up_waiting(self) -> None:
        """Fail the requests waiting for a worker when none will come."""
        why = self._none_to_come()
        if why is not None and self._waiting:
            jobs = list(self._waiting)
            self._waiting.clear()
            for job in jobs:
                self._fail(job, f"no worker of pool {self.name} is running: {why}")

    def _wait(self, job: _Job) -> None:
        """Keep ``job`` until a worker runs, at most ROUTE_WAIT seconds."""
        why = self._none_to_come()
        if why is not None:
            self._fail(job, f"no worker of pool {self.name} is running: {why}")
            return
        loop = self._transport.loop
        job.deadline = loop.time() + ROUTE_WAIT
        self._waiting.append(job)
        if self._wait_timer is None:
            self._wait_timer = loop.call_at(job.deadline, self._expire)

    def _expire(self) -> None:
        """Fail the requests that waited ROUTE_WAIT seconds for a worker."""
        self._wait_timer = None
        loop, waiting = self._transport.loop, self._waiting
        now = loop.time()
        while waiting and waiting[0].deadline <= now:
            self._fail(
                waiting.popleft(),
                f"no worker of pool {self.name} is running (waited {ROUTE_WAIT:g}s for one)",
            )
        if waiting:
            self._wait_timer = loop.call_at(waiting[0].deadline, self._expire)

    def _flush_waiting(self) -> None:
        """Route the requests that wait, now that a worker may run."""
        if not self._waiting or not self._routable():
            return
        jobs = list(self._waiting)
        self._waiting.clear()
        if self._wait_timer is not None:
            self._wait_timer.cancel()
            self._wait_timer = None
        for job in jobs:
            self._route(job)

    def _fail(self, job: _Job, message: str) -> None:
        if job.reply is not None:
            job.reply(self._codec.error_reply(job.env.id, ActorNotAvailable(message)))
        else:
            log.warning(
                "monitor %s: a request sent without ack was dropped: %s", self.name, message
            )

    async def _shutdown(self) -> None:
        jobs = list(self._waiting)
        self._waiting.clear()
        for job in jobs:
            self._fail(job, f"pool {self.name} is stopping: its workers take no more requests")
        await super()._shutdown()

    # -- info ---------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The monitor's info, with its pool."""
        out = super().info()
        out["pool"] = self.pool_info()
        return out

    def pool_info(self) -> dict[str, Any]:
        """The pool: size wanted, workers alive, restarts, whether it still restarts, routing.

        ``resent`` counts the requests re-sent because their worker died first.
        """
        return {
            "num_workers": self.num_workers,
            "workers": sorted(self.managed_actors or {}),
            "concurrency": self.worker_params.get("concurrency", "process"),
            "restarts": self.restarts,
            "max_restarts": self.max_restarts,
            "restart_window": self.restart_window,
            "restarting": self.restarting,
            "routing": self.routing,
            "retries": self.retries,
            "resent": self.resent,
        }


class _Job:
    """A user command on its way to a pool: the request as it came, and where its reply goes."""

    __slots__ = ("caller", "deadline", "env", "reply", "sent", "tries")

    def __init__(
        self, env: Envelope, reply: ReplyCallback | None, caller: ActorProxy | None, tries: int
    ) -> None:
        self.env = env
        #: None for a request sent without ack.
        self.reply = reply
        self.caller = caller
        #: Re-sends left; and how many workers it went to.
        self.tries = tries
        self.sent = 0
        #: Loop time until which it may wait for a worker.
        self.deadline = 0.0


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
