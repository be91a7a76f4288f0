"""The arbiter's semantics: the root actor, which spawns, supervises and stops the tree.

``ArbiterBase`` is everything the arbiter does as an actor; running it (its
transport, its server, the foreground or background thread) is the hosting
layer's ``actorgrpc.Arbiter``, which subclasses it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from actorgrpc.core.actor import SPAWN_TIMEOUT, Actor, check_spawn_params, new_aid
from actorgrpc.core.commands import command_modules
from actorgrpc.core.consts import ACTOR_ACTION_TIMEOUT, ACTOR_STATES, MONITOR_TASK_PERIOD
from actorgrpc.core.errors import ActorError, ActorNotFound, ActorTimeout, BadRequest, short
from actorgrpc.core.futures import ActorFuture, new_future, running_loop
from actorgrpc.core.proxy import ActorProxy, format_address
from actorgrpc.supervision.managed import ActorProxyMonitor
from actorgrpc.supervision.pools import Monitor, MonitorRunner
from actorgrpc.supervision.runners import (
    ActorSpec,
    ProcessRunner,
    Runner,
    ThreadRunner,
)
from actorgrpc.supervision.supervisor import LocalSupervisorClient, Supervisor

if TYPE_CHECKING:
    from actorgrpc.core._typing import Hook
    from actorgrpc.core.interfaces import Transport

__all__ = ["ArbiterBase"]

log = logging.getLogger("actorgrpc")


class ArbiterBase(Actor):
    """The root of a tree, as an actor: it spawns, supervises and stops the others.

    ``child_entry`` is what a process actor's child runs (given its ActorSpec),
    ``preload`` the modules the forkserver imports ahead of the first spawn.
    """

    def __init__(
        self,
        *,
        transport: Transport,
        name: str = "arbiter",
        hooks: Mapping[str, Hook] | None = None,
        params: Mapping[str, Any] | None = None,
        start_method: str = "forkserver",
        child_entry: Callable[[ActorSpec], None],
        preload: Sequence[str] = (),
    ) -> None:
        super().__init__(
            aid=new_aid(),
            name=name,
            transport=transport,
            kind="arbiter",
            hooks=hooks,
            params=params,
        )
        self.supervisor = Supervisor(self)
        #: Actors the arbiter spawned itself (monitors' workers are the monitors').
        self.managed_actors = {}
        #: Death records of every actor of the tree that ended.
        self.terminated_actors = self.supervisor.terminated
        #: Monitors by name.
        self.monitors: dict[str, Monitor] = {}
        #: Names of the tree's actors, mapped to their aids.
        self.registered = self.supervisor.names
        self.start_method = start_method
        self._child_entry = child_entry
        self._preload = tuple(preload)
        # Set by whoever runs the arbiter: once it serves, and once it has ended.
        self._ready = threading.Event()
        self._finished = threading.Event()
        self._error: BaseException | None = None
        self._watch: asyncio.TimerHandle | None = None
        # Actors whose stop is being watched, so that one that does not end is ended.
        self._escalating: set[str] = set()
        self.supervisor.on_stopping = self._stopping
        self.supervisor.on_unresponsive = self._unresponsive

    def is_arbiter(self) -> bool:
        """True."""
        return True

    @property
    def running(self) -> bool:
        """True from the moment the arbiter serves until it has ended."""
        return self._ready.is_set() and not self._finished.is_set()

    @property
    def finished(self) -> bool:
        """True once the arbiter has ended (or failed to start)."""
        return self._finished.is_set()

    async def _handshake(self) -> None:
        """The arbiter registers with nobody."""

    async def _notify(self, error: BaseException | None = None) -> None:
        # The arbiter reports to nobody.
        if error is not None and self._error is None:
            self._error = error

    def _ticks(self) -> bool:
        return True  # the arbiter's periodic task is its hook, if any, every period

    def _schedule_periodic(self) -> None:
        super()._schedule_periodic()
        if self._watch is None:
            self._watch_tree()

    def _watch_tree(self) -> None:
        # Actors with no process or thread to watch (external ones) are seen
        # dead by missed notifies: look often so that it shows within 2 periods.
        self.supervisor.check_liveness()
        # Until the arbiter has closed: a frozen actor must not hold up its stop.
        if self.state < ACTOR_STATES.CLOSE and self._loop is not None:
            self._watch = self._loop.call_later(MONITOR_TASK_PERIOD / 10, self._watch_tree)

    async def _shutdown(self) -> None:
        try:
            await self._call_hook("stopping")
        except Exception:
            log.exception("arbiter: stopping hook failed")
        for monitor in self.monitors.values():
            monitor.restarting = False
        await self._stop_actors(list(self.supervisor.managed))
        self.state = ACTOR_STATES.CLOSE

    # -- spawning -------------------------------------------------------------

    def spawn(self, **params: Any) -> ActorFuture[ActorProxy]:
        """Spawn an actor; a future with ``.aid`` set at once, resolving to its proxy."""
        params = check_spawn_params(params)
        self._check_running()
        fut, settle = new_future(
            params["aid"], f"spawning {params['aid']}", running_loop(), tagged=True
        )

        async def go() -> None:
            try:
                settle(True, await self.spawn_here(**params))
            except Exception as exc:
                settle(False, exc)

        self._transport.call_soon(self._start_task, go())
        return fut

    def _check_running(self) -> None:
        if not self.running:
            raise RuntimeError(
                "the arbiter is not running: use `with arbiter():` or arbiter().start()"
            )

    def _start_task(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def spawn_here(self, **params: Any) -> ActorProxy:
        """Spawn an actor from the IO loop; its proxy once it runs."""
        if self.after_run():
            raise ActorError("the arbiter is stopping: no new actors")
        params = check_spawn_params(params)
        aid = params.pop("aid")
        name = params.pop("name", None)
        kind = params.pop("concurrency")
        actor_class = params.pop("actor_class", Actor)
        # The actor's liveness timeout (0: none), and how long its spawn may take.
        liveness = float(params.pop("timeout", SPAWN_TIMEOUT))
        timeout = liveness or SPAWN_TIMEOUT
        owner = params.pop("_supervisor", self.aid)
        hooks = {h: params.pop(h) for h in ("start", "stopping", "periodic_task") if params.get(h)}
        for h in ("start", "stopping", "periodic_task"):
            params.pop(h, None)
        transport = self._transport
        spec = ActorSpec(
            aid=aid,
            name=name,
            kind=kind,
            actor_class=actor_class,
            hooks=hooks,
            params=params,
            arbiter_address=transport.address,
            spawn_token=secrets.token_hex(16),
            supervisor=owner,
            settings=self._settings,
            command_modules=command_modules(),
            environ=dict(os.environ) if kind == "process" else None,
        )
        runner: Runner
        if kind == "process":
            runner = ProcessRunner(spec, self._child_entry, self.start_method, self._preload)
        else:
            link = LocalSupervisorClient(transport, self.supervisor)
            runner = ThreadRunner(spec, transport, link)
        entry = ActorProxyMonitor(
            aid,
            name or actor_class.__name__.lower(),
            transport.address,
            runner,
            kind,
            supervisor=owner,
            named=name is not None,
        )
        entry.timeout = liveness
        loop = asyncio.get_running_loop()
        started: asyncio.Future[ActorProxy] = loop.create_future()

        def settle(ok: bool, value: Any) -> None:
            if not started.done():
                started.set_result(value) if ok else started.set_exception(value)

        self.supervisor.add(entry, spec.spawn_token, settle)
        try:
            runner.start()
        except Exception as exc:
            self.supervisor.actor_exited(aid, None, f"could not start: {exc}")
            started.exception() if started.done() else None
            raise BadRequest(
                f"spawn: cannot start a {kind} actor: {exc}. Hooks, actor_class and params "
                "of a process actor must be picklable (module-level functions and classes)"
            ) from None
        runner.watch(loop, lambda code, how: self.supervisor.actor_exited(aid, code, how))
        entry.pid = runner.pid
        try:
            return await asyncio.wait_for(asyncio.shield(started), timeout)
        except TimeoutError:
            # It never ran: nothing to stop gracefully (its start hook may block).
            started.cancel()
            runner.kill()
            raise ActorTimeout(f"actor {aid} did not start within {timeout}s") from None

    # -- monitors -----------------------------------------------------------------

    def add_monitor(self, name: str, **params: Any) -> Monitor:
        """Add a monitor keeping a pool of workers; returns the Monitor (running).

        Parameters: ``num_workers`` (1), ``max_restarts`` (10),
        ``restart_window`` (60 s), ``routing`` (``'round_robin'``,
        ``'least_busy'`` or ``'broadcast'``: how a command sent to the monitor's
        name picks its worker) and ``retries`` (0: how often a request whose
        worker died first is re-sent); the rest are the workers' spawn
        parameters (``concurrency``, hooks, ``actor_class``, params).
        ``monitor.wait_ready(t)`` waits until the pool is full.
        """
        # Its workers are named "<name>-<n>", and names are at most 128 characters.
        if not isinstance(name, str) or not name or len(name) > 120:
            raise TypeError(
                f"add_monitor: name must be a non-empty str of at most 120 characters, not {name!r}"
            )
        monitor = Monitor(arbiter=self, name=name, **params)
        transport = self._transport
        self._check_running()
        if transport.in_io_thread():
            self._start_monitor(monitor)
        else:

            async def start() -> None:
                self._start_monitor(monitor)

            asyncio.run_coroutine_threadsafe(start(), transport.loop).result(ACTOR_ACTION_TIMEOUT)
        return monitor

    def _start_monitor(self, monitor: Monitor) -> None:
        if self.after_run():
            raise ActorError("the arbiter is stopping: no new monitors")
        transport = self._transport
        runner = MonitorRunner(monitor, transport.loop)
        token = secrets.token_hex(16)
        entry = ActorProxyMonitor(
            monitor.aid, monitor.name, transport.address, runner, "monitor", self.aid
        )
        self.supervisor.add(entry, token, lambda ok, value: None)
        monitor.attach(LocalSupervisorClient(transport, self.supervisor), token)
        self.supervisor.owners[monitor.aid] = monitor
        self.monitors[monitor.name or monitor.aid] = monitor

        def ended(code: int | None, how: str) -> None:
            self.supervisor.actor_exited(monitor.aid, code, how)
            self.supervisor.owners.pop(monitor.aid, None)
            self.monitors.pop(monitor.name or monitor.aid, None)

        runner.watch(transport.loop, ended)
        runner.start()

    # -- stopping ---------------------------------------------------------------

    async def kill_actor(self, aid: str) -> str | None:
        """Stop the actor ``aid`` (or name), terminating it after ACTOR_ACTION_TIMEOUT.

        ``'killed <aid>'`` once it has ended (pulsar's answer), None if it would
        not die; ActorNotFound when the tree has no such actor.
        """
        managed = self.supervisor.managed
        entry = managed.get(aid) or managed.get(self.supervisor.names.get(aid, ""))
        if entry is None:
            raise ActorNotFound(f"no actor {short(aid)} in this tree to kill")
        await self._stop_actors([entry.aid])
        return None if entry.aid in managed else f"killed {entry.aid}"

    async def _stop_actors(self, aids: list[str]) -> None:
        """Stop actors gracefully; terminate those that do not stop in time."""
        managed = self.supervisor.managed
        for aid in aids:
            entry = managed.get(aid)
            if entry is None:
                continue
            if entry.state < ACTOR_STATES.STARTING:
                entry.terminate()
                continue
            reply = self.send(entry.proxy, "stop")
            reply.add_done_callback(lambda f: f.exception())
        await self._end_if_stubborn(aids)

    def _unresponsive(self, aid: str) -> None:
        """Stop an actor that went silent; it is terminated if it does not stop in time."""
        self._start_task(self._stop_actors([aid]))

    def _stopping(self, aid: str) -> None:
        """An actor reported STOPPING (whoever asked it to): it must end in time."""
        if aid not in self._escalating:
            self._start_task(self._end_if_stubborn([aid]))

    async def _end_if_stubborn(self, aids: list[str]) -> None:
        """Terminate those of ``aids`` still alive after ACTOR_ACTION_TIMEOUT, then kill them."""
        self._escalating.update(aids)
        try:
            managed = self.supervisor.managed
            alive = await self.supervisor.wait_ended(aids, ACTOR_ACTION_TIMEOUT)
            if alive:
                log.warning("terminating actors that did not stop in time: %s", alive)
                for aid in alive:
                    managed[aid].terminate()
                alive = await self.supervisor.wait_ended(alive, 1.0)
            processes = [aid for aid in alive if managed[aid].kind == "process"]
            for aid in processes:
                runner = managed[aid].runner
                if runner is not None:
                    runner.kill()
            if processes:
                alive = await self.supervisor.wait_ended(alive, 2.0)
            for aid in alive:
                self.supervisor.actor_exited(
                    aid, None, "terminated: cut off after it did not stop in time"
                )
        finally:
            self._escalating.difference_update(aids)

    # -- info ---------------------------------------------------------------------

    def get_actor(self, aid: str) -> ActorProxyMonitor | ActorProxy | None:
        """The ActorProxyMonitor of the actor ``aid`` (or name), the arbiter's proxy, or None."""
        if not isinstance(aid, str):
            raise TypeError(f"get_actor needs an aid or a name, not {aid!r}")
        sup = self.supervisor
        if aid in (self.aid, self.name, "arbiter"):
            return self.proxy
        return sup.managed.get(aid) or sup.managed.get(sup.names.get(aid, ""))

    def info(self) -> dict[str, Any]:
        """The arbiter's info, with every live actor's latest info and the dead."""
        out = super().info()
        out["actors"] = self.supervisor.actors_info()
        out["monitors"] = self.monitors_info()
        out["terminated"] = dict(self.supervisor.terminated)
        return out

    def monitors_info(self) -> dict[str, Any]:
        """Every monitor's pool, by name."""
        return {name: {"aid": m.aid, **m.pool_info()} for name, m in self.monitors.items()}

    def __repr__(self) -> str:
        return f"<Arbiter {self.aid} at {format_address(self.address)} {self.info_state}>"
