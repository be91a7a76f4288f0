"""The arbiter: the root actor, which spawns, supervises and stops the tree."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import threading
from typing import TYPE_CHECKING, Any

from actorgrpc import wire
from actorgrpc.actor import Actor, new_aid
from actorgrpc.commands import command_modules
from actorgrpc.concurrency import (
    SPAWN_TIMEOUT,
    START_METHODS,
    ActorSpec,
    ProcessConcurrency,
    ThreadConcurrency,
    check_spawn_params,
    in_actor_process,
)
from actorgrpc.consts import (
    ACTOR_ACTION_TIMEOUT,
    ACTOR_STATES,
    DEFAULT_MAX_MESSAGE_SIZE,
    MONITOR_TASK_PERIOD,
)
from actorgrpc.errors import ActorError, ActorTimeout, BadRequest
from actorgrpc.flow import DEFAULT_MAILBOX_LIMIT
from actorgrpc.futures import new_future, running_loop
from actorgrpc.monitor import Monitor, MonitorConcurrency
from actorgrpc.node import Node
from actorgrpc.proxy import ActorProxy, ActorProxyMonitor
from actorgrpc.security import TLSConfig, check_listen, resolve_secret
from actorgrpc.supervisor import LocalSupervisorClient, Supervisor

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

__all__ = ["Arbiter", "arbiter"]

log = logging.getLogger("actorgrpc")

_arbiter: Arbiter | None = None
_lock = threading.Lock()


def arbiter(**params: Any) -> Arbiter | None:
    """This process's arbiter, created on first call; None inside a spawned actor.

    Run it in the foreground until ``stop()`` (pulsar style)::

        arbiter(start=setup).start()

    or in the background, for scripts, the REPL and tests::

        with arbiter() as arb:
            proxy = spawn(name='worker').result(10)

    Parameters: ``host`` ('127.0.0.1') and ``port`` (0: a free one) to bind,
    hooks ``start``, ``stopping`` and ``periodic_task`` for the arbiter itself,
    ``name`` ('arbiter'), ``pickle`` (True: allow pickled values),
    ``start_method`` ('forkserver' or 'spawn') for process actors,
    ``max_message_size`` in bytes, ``max_mailbox`` (requests queued for one
    actor before senders wait), ``secret`` (default ``$ACTORGRPC_SECRET`` or
    a new one), ``tls`` (``{'cert', 'key', 'ca', 'mutual'}``), ``insecure``
    (allow a non-loopback host without TLS), ``log_level``; others land in
    ``params``.
    """
    global _arbiter
    if in_actor_process():
        return None
    with _lock:
        if _arbiter is not None and not _arbiter._finished.is_set():
            if params:
                raise RuntimeError(
                    "an arbiter already exists in this process; call arbiter() "
                    "without parameters to get it"
                )
            return _arbiter
        _arbiter = Arbiter(**params)
        return _arbiter


class Arbiter(Actor):
    """The root of a tree: it hosts the Supervisor service and spawns actors."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "arbiter",
        pickle: bool = True,
        start_method: str = "forkserver",
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_mailbox: int = DEFAULT_MAILBOX_LIMIT,
        log_level: int | str = logging.WARNING,
        secret: str | None = None,
        tls: TLSConfig | Mapping[str, Any] | None = None,
        insecure: bool = False,
        start: Any = None,
        stopping: Any = None,
        periodic_task: Any = None,
        **params: Any,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise TypeError(f"arbiter: host must be a non-empty str, not {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
            raise ValueError(f"arbiter: port must be an int from 0 to 65535, not {port!r}")
        if not isinstance(name, str) or not name:
            raise TypeError(f"arbiter: name must be a non-empty str, not {name!r}")
        if start_method not in START_METHODS:
            raise ValueError(
                f"arbiter: start_method must be one of {START_METHODS}, not {start_method!r}"
            )
        if (
            isinstance(max_message_size, bool)
            or not isinstance(max_message_size, int)
            or max_message_size < 1024
        ):
            raise ValueError(
                f"arbiter: max_message_size must be an int >= 1024, not {max_message_size!r}"
            )
        for flag, value in (("pickle", pickle), ("insecure", insecure)):
            if not isinstance(value, bool):
                raise TypeError(f"arbiter: {flag} must be True or False, not {value!r}")
        if isinstance(log_level, str) and log_level.upper() in logging.getLevelNamesMapping():
            log_level = logging.getLevelNamesMapping()[log_level.upper()]
        if isinstance(log_level, bool) or not isinstance(log_level, int):
            raise TypeError(f"arbiter: log_level must be a logging level, not {log_level!r}")
        if isinstance(max_mailbox, bool) or not isinstance(max_mailbox, int) or max_mailbox < 2:
            raise ValueError(f"arbiter: max_mailbox must be an int >= 2, not {max_mailbox!r}")
        hooks = {"start": start, "stopping": stopping, "periodic_task": periodic_task}
        for key, hook in hooks.items():
            if hook is not None and not callable(hook):
                raise TypeError(
                    f"arbiter: the {key} hook must be callable, not {type(hook).__name__}"
                )
        tls_config = TLSConfig.load(tls)
        check_listen(host, tls_config, insecure)
        #: The tree's secret: every call must carry ``authorization: Bearer <secret>``.
        self.secret: str = resolve_secret(secret)
        node = Node(
            host=host,
            port=port,
            allow_pickle=bool(pickle),
            max_message_size=max_message_size,
            secret=self.secret,
            tls=tls_config,
            mailbox_limit=max_mailbox,
        )
        super().__init__(
            aid=new_aid(),
            name=name,
            node=node,
            kind="arbiter",
            hooks={k: v for k, v in hooks.items() if v is not None},
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
        self.log_level = log_level
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._finished = threading.Event()
        self._error: BaseException | None = None
        self._sup_client = self.supervisor
        self._watch: asyncio.TimerHandle | None = None

    def is_arbiter(self) -> bool:
        """True."""
        return True

    # -- running ------------------------------------------------------------

    def start(self) -> None:
        """Run the arbiter in this thread until ``stop()``, SIGINT or SIGTERM."""
        if self._thread is not None or self._ready.is_set():
            raise RuntimeError("this arbiter is already running")
        asyncio.run(self._main(foreground=True))
        if self._error is not None:
            raise self._error

    def __enter__(self) -> Arbiter:
        if self._thread is not None or self._ready.is_set():
            raise RuntimeError("this arbiter is already running")
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._main(foreground=False)),
            name="actorgrpc-arbiter",
            daemon=True,
        )
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self, exc: BaseException | None = None, exit_code: int | None = None) -> None:
        """Stop every actor, then the arbiter; from plain code, wait until done."""
        super().stop(exc, exit_code)
        thread = self._thread
        if (
            thread is not None
            and thread is not threading.current_thread()
            and not self._node.in_io_thread()
        ):
            thread.join()

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the arbiter serves on."""
        return self._node.address

    async def _main(self, foreground: bool) -> None:
        global _arbiter
        node = self._node
        try:
            await node.start(self.supervisor)
        except BaseException as exc:
            self._error = exc if isinstance(exc, Exception) else RuntimeError(str(exc))
            self._ready.set()
            self._finished.set()
            with _lock:
                if _arbiter is self:
                    _arbiter = None
            return
        node.arbiter_address = node.address
        node.resolver = self.supervisor.lookup
        node.obituary = self.supervisor.obituary
        node.on_connection_lost = self.supervisor.address_lost
        node.main_actor = self
        loop = asyncio.get_running_loop()
        if foreground:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stop)
        self._ready.set()
        try:
            await self._run()
        finally:
            await node.close(grace=0.5)
            self._finished.set()
            with _lock:
                if _arbiter is self:
                    _arbiter = None

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
        if self._node.health is not None:
            await self._node.health.enter_graceful_shutdown()
        try:
            await self._call_hook("stopping")
        except Exception:
            log.exception("arbiter: stopping hook failed")
        for monitor in self.monitors.values():
            monitor.restarting = False
        await self._stop_actors(list(self.supervisor.managed))
        self.state = ACTOR_STATES.CLOSE

    # -- spawning -------------------------------------------------------------

    def spawn(self, **params: Any) -> Any:
        """Spawn an actor; a future with ``.aid`` set at once, resolving to its proxy."""
        params = check_spawn_params(params)
        self._check_running()
        fut, settle = new_future(
            params["aid"], f"spawning {params['aid']}", running_loop(), tagged=True
        )

        async def go() -> None:
            try:
                settle(True, await self._spawn_here(**params))
            except Exception as exc:
                settle(False, exc)

        self._node.call_soon(self._start_task, go())
        return fut

    def _check_running(self) -> None:
        if not self._ready.is_set() or self._finished.is_set():
            raise RuntimeError(
                "the arbiter is not running: use `with arbiter():` or arbiter().start()"
            )

    def _start_task(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _spawn_here(self, **params: Any) -> ActorProxy:
        if self.after_run():
            raise ActorError("the arbiter is stopping: no new actors")
        params = check_spawn_params(params)
        aid = params.pop("aid")
        name = params.pop("name", None)
        kind = params.pop("concurrency")
        actor_class = params.pop("actor_class", Actor)
        timeout = float(params.pop("timeout", SPAWN_TIMEOUT))
        owner = params.pop("_supervisor", self.aid)
        hooks = {h: params.pop(h) for h in ("start", "stopping", "periodic_task") if params.get(h)}
        for h in ("start", "stopping", "periodic_task"):
            params.pop(h, None)
        node = self._node
        spec = ActorSpec(
            aid=aid,
            name=name,
            kind=kind,
            actor_class=actor_class,
            hooks=hooks,
            params=params,
            arbiter_address=node.address,
            spawn_token=secrets.token_hex(16),
            supervisor=owner,
            allow_pickle=node.allow_pickle,
            max_message_size=node.max_message_size,
            host=node.host,
            command_modules=command_modules(),
            log_level=self.log_level,
            secret=node.secret,
            tls=node.tls,
            mailbox_limit=node.mailbox_limit,
        )
        impl: ProcessConcurrency | ThreadConcurrency
        if kind == "process":
            impl = ProcessConcurrency(spec, self.start_method)
        else:
            impl = ThreadConcurrency(spec, node, self.supervisor)
        monitor = ActorProxyMonitor(aid, name, node.address, impl, kind, supervisor=owner)
        loop = asyncio.get_running_loop()
        started: asyncio.Future[ActorProxy] = loop.create_future()

        def settle(ok: bool, value: Any) -> None:
            if not started.done():
                started.set_result(value) if ok else started.set_exception(value)

        self.supervisor.add(monitor, spec.spawn_token, settle)
        try:
            impl.start()
        except Exception as exc:
            self.supervisor.actor_exited(aid, None, f"could not start: {exc}")
            started.exception() if started.done() else None
            raise BadRequest(
                f"spawn: cannot start a {kind} actor: {exc}. Hooks, actor_class and params "
                "of a process actor must be picklable (module-level functions and classes)"
            ) from None
        impl.watch(loop, lambda code, how: self.supervisor.actor_exited(aid, code, how))
        monitor.pid = impl.pid
        try:
            return await asyncio.wait_for(asyncio.shield(started), timeout)
        except TimeoutError:
            # It never ran: nothing to stop gracefully (its start hook may block).
            started.cancel()
            kill = getattr(impl, "kill", impl.terminate)
            kill()
            raise ActorTimeout(f"actor {aid} did not start within {timeout}s") from None

    # -- monitors -----------------------------------------------------------------

    def add_monitor(self, name: str, **params: Any) -> Monitor:
        """Add a monitor keeping a pool of workers; returns the Monitor (running).

        Parameters: ``num_workers`` (1), ``max_restarts`` (10) and
        ``restart_window`` (60 s); the rest are the workers' spawn parameters
        (``concurrency``, hooks, ``actor_class``, params). ``monitor.wait_ready(t)``
        waits until the pool is full.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"add_monitor: name must be a non-empty str, not {name!r}")
        monitor = Monitor(arbiter=self, name=name, **params)
        node = self._node
        self._check_running()
        if node.in_io_thread():
            self._start_monitor(monitor)
        else:

            async def start() -> None:
                self._start_monitor(monitor)

            asyncio.run_coroutine_threadsafe(start(), node.loop).result(ACTOR_ACTION_TIMEOUT)
        return monitor

    def _start_monitor(self, monitor: Monitor) -> None:
        if self.after_run():
            raise ActorError("the arbiter is stopping: no new monitors")
        node = self._node
        impl = MonitorConcurrency(monitor, node.loop)
        token = secrets.token_hex(16)
        entry = ActorProxyMonitor(
            monitor.aid, monitor.name, node.address, impl, "monitor", self.aid
        )
        self.supervisor.add(entry, token, lambda ok, value: None)
        monitor._spawn_token = token
        monitor._sup_client = LocalSupervisorClient(node, self.supervisor)
        self.supervisor.owners[monitor.aid] = monitor
        self.monitors[monitor.name or monitor.aid] = monitor

        def ended(code: int | None, how: str) -> None:
            self.supervisor.actor_exited(monitor.aid, code, how)
            self.supervisor.owners.pop(monitor.aid, None)
            self.monitors.pop(monitor.name or monitor.aid, None)

        impl.watch(node.loop, ended)
        impl.start()

    # -- stopping ---------------------------------------------------------------

    async def _kill_actor(self, aid: str) -> bool:
        monitor = self.supervisor.managed.get(aid) or self.supervisor.managed.get(
            self.supervisor.names.get(aid, "")
        )
        if monitor is None:
            return False
        await self._stop_actors([monitor.aid])
        return True

    async def _stop_actors(self, aids: list[str]) -> None:
        """Stop actors gracefully; terminate those that do not stop in time."""
        managed = self.supervisor.managed
        for aid in aids:
            monitor = managed.get(aid)
            if monitor is None:
                continue
            if monitor.state < ACTOR_STATES.STARTING:
                monitor.terminate()
                continue
            reply = self.send(monitor.proxy, "stop")
            reply.add_done_callback(lambda f: f.exception())
        alive = await self.supervisor.wait_ended(aids, ACTOR_ACTION_TIMEOUT)
        if alive:
            log.warning("terminating actors that did not stop in time: %s", alive)
            for aid in alive:
                managed[aid].terminate()
            alive = await self.supervisor.wait_ended(alive, 1.0)
        processes = [aid for aid in alive if managed[aid].kind == "process"]
        for aid in processes:
            managed[aid].impl.kill()  # type: ignore[union-attr]
        if processes:
            alive = await self.supervisor.wait_ended(alive, 2.0)
        for aid in alive:
            self.supervisor.actor_exited(
                aid, None, "terminated: cut off after it did not stop in time"
            )

    # -- info ---------------------------------------------------------------------

    def get_actor(self, aid: str) -> ActorProxyMonitor | ActorProxy | None:
        """The monitor of the actor ``aid`` (or name), the arbiter's proxy, or None."""
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
        return f"<Arbiter {self.aid} at {wire.format_address(self.address)} {self.info_state}>"
