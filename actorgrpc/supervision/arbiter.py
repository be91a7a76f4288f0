"""The arbiter's semantics: the root actor, which spawns, supervises and stops the tree.

``ArbiterBase`` is everything the arbiter does as an actor; running it (its
transport, its server, the foreground or background thread) is the hosting
layer's ``actorgrpc.Arbiter``, which subclasses it.

The arbiter's loop is its process's IO loop, which also owns the gRPC server
and every channel: the commands that look after the tree run there
(``IO_LOOP_COMMANDS``), every other one on the arbiter's command loop
(``CommandLoop``), a loop of its own thread, where a slow or blocking command
stalls nothing but the commands queued behind it. Their turns are taken and
given back on the IO loop, as any actor's (``Actor._admit``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import secrets
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from actorgrpc.core import standard_commands
from actorgrpc.core.actor import SPAWN_TIMEOUT, Actor, act_as, check_spawn_params, new_aid
from actorgrpc.core.commands import Command, command_modules, get_command
from actorgrpc.core.consts import ACTOR_ACTION_TIMEOUT, ACTOR_STATES, MONITOR_TASK_PERIOD
from actorgrpc.core.deadlines import UNSET, current_timeout
from actorgrpc.core.errors import (
    ActorError,
    ActorNotAvailable,
    ActorNotFound,
    ActorTimeout,
    BadRequest,
    short,
)
from actorgrpc.core.futures import ActorFuture, new_future, running_loop, runs_here
from actorgrpc.core.handoff import new_thread_loop, poster_for
from actorgrpc.core.proxy import ActorProxy, format_address
from actorgrpc.supervision.managed import ActorProxyMonitor
from actorgrpc.supervision.pools import Monitor, MonitorRunner
from actorgrpc.supervision.runners import (
    ActorSpec,
    ProcessRunner,
    Runner,
    ThreadRunner,
    close_loop,
)
from actorgrpc.supervision.supervisor import LocalSupervisorClient, Supervisor

if TYPE_CHECKING:
    from actorgrpc.core._typing import Envelope, Hook, ReplyCallback
    from actorgrpc.core.interfaces import Transport

__all__ = ["COMMAND_THREAD_NAME", "IO_LOOP_COMMANDS", "ArbiterBase", "CommandLoop"]

log = logging.getLogger("actorgrpc")
_T = TypeVar("_T")

# By function, not by name: a later @command of the same name replaces the
# standard one (users' own code, which belongs on the command loop).
_STANDARD_FUNCTIONS = frozenset(getattr(standard_commands, n) for n in standard_commands.__all__)


def _runs_on_io_loop(cmd: Command) -> bool:
    """The system commands: the standard ones that are reentrant (all but ``run``)."""
    return cmd.reentrant and cmd.fn in _STANDARD_FUNCTIONS


#: The arbiter's commands that run on its IO loop: the system commands, that
#: look after the tree (``Command.reentrant``: they take no turn either). They
#: are quick, and the state they read and change (the supervisor's records,
#: names, monitors) lives on that loop. Every other command sent to the
#: arbiter, users' own and ``run`` (it calls anything), runs on the arbiter's
#: command loop, where a slow one stalls nobody else.
IO_LOOP_COMMANDS = frozenset(
    n for n in standard_commands.__all__ if _runs_on_io_loop(get_command(n))
)
#: The name of the command loop's thread.
COMMAND_THREAD_NAME = "actorgrpc-arbiter-commands"


class CommandLoop:
    """The arbiter's command loop: an event loop on a thread of its own.

    Made on the IO loop (the arbiter's, on first need), and stopped there
    (``stop``); ``post`` and ``submit`` from any thread. On its thread
    ``get_actor()`` is the arbiter and the loop is the running one, so that a
    command there sends and spawns as a thread actor's does.
    """

    def __init__(self, arbiter: ArbiterBase) -> None:
        self.loop = new_thread_loop()
        self._poster = poster_for(self.loop)
        #: The tasks of async commands running here (this loop's alone).
        self.tasks: set[asyncio.Task[Any]] = set()
        # Set (on the IO loop) once the thread is done with its loop.
        self._ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._thread = threading.Thread(
            target=self._main, args=(arbiter,), name=COMMAND_THREAD_NAME, daemon=True
        )
        self._thread.start()

    def _main(self, arbiter: ArbiterBase) -> None:
        loop, ended = self.loop, self._ended
        runs_here(loop)  # this thread runs nothing but the command loop
        act_as(arbiter)
        try:
            loop.run_forever()
        finally:
            close_loop(loop)  # cancels what still runs: those callers were told already
            act_as(None)
            runs_here(None)
            try:
                ended.get_loop().call_soon_threadsafe(_set_done, ended)
            except RuntimeError:  # the IO loop is gone: nobody waits
                pass

    def post(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Run ``fn(*args)`` on the command loop, after what was posted before (any thread)."""
        self._poster.post(fn, args)

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        """Run ``coro`` as a task of the command loop; a future of its result (any thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def stop(self, timeout: float) -> bool:
        """Stop the loop (IO loop), cancelling what runs there; True once its thread has ended.

        False if it still runs after ``timeout`` seconds: a sync command that
        does not return holds it, and it is left to end when that returns.
        """
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:
            pass
        try:
            await asyncio.wait_for(asyncio.shield(self._ended), timeout)
        except TimeoutError:
            return False
        self._thread.join(1.0)  # it is past its last line
        return True


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


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
        # Made, and ended, on the IO loop (see IO_LOOP_COMMANDS).
        self._commands: CommandLoop | None = None
        self._commands_closed = False
        self._tick: concurrent.futures.Future[None] | None = None

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

    # -- the command loop ----------------------------------------------------------

    def on_command_loop(self) -> bool:
        """True when called by code running on the arbiter's command loop."""
        commands = self._commands
        return commands is not None and running_loop() is commands.loop

    def _command_loop(self) -> CommandLoop | None:
        """The command loop, made on first need (IO loop); None once the arbiter has ended."""
        if self._commands_closed:
            return None
        if self._commands is None:
            self._commands = CommandLoop(self)
        return self._commands

    def _start(
        self,
        cmd: Command,
        env: Envelope,
        reply: ReplyCallback,
        caller: ActorProxy | None,
        turn: bool,
        call_id: bytes = b"",
        tasks: set[asyncio.Task[Any]] | None = None,
    ) -> None:
        """Start a system command here; hand any other to the command loop (IO loop).

        The command holds its turn (when ``turn``) and its id in call chains
        from now until it has ended there, a sync one too: this loop goes on
        meanwhile, and the next waits for its turn here.
        """
        if tasks is not None or _runs_on_io_loop(cmd):
            super()._start(cmd, env, reply, caller, turn, call_id, tasks)
            return
        commands = self._command_loop()
        if commands is None:
            reply(self._ended_reply(env))
            return
        call_id = self._hold(turn)
        # Tracked: failed, not lost, if the arbiter ends before it replies;
        # and counted by the gate (a local sender's request, tracked by
        # deliver already, counts twice: the gate closes early, never late).
        tracked = self._track(env, reply)
        transport = self._transport

        def answer(out: Envelope) -> None:  # on the command loop, once the command has ended
            tracked(out)
            try:
                transport.call_soon(self._release, turn, call_id)
            except RuntimeError:  # the IO loop is gone: nothing waits for the turn
                pass

        try:
            commands.post(self._start, (cmd, env, answer, caller, turn, call_id, commands.tasks))
        except RuntimeError:
            self._release(turn, call_id)
            tracked(self._ended_reply(env))

    def _ended_reply(self, env: Envelope) -> Envelope:
        return self._codec.error_reply(env.id, ActorNotAvailable(f"actor {self.aid} has ended"))

    async def _on_io_loop(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Await ``coro`` run on the IO loop, where the tree's state lives (command loop)."""
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(coro, self._transport.loop)
        )

    async def _periodic_task(self) -> None:
        # The hook runs on the command loop too, one tick at a time: while one
        # still runs the next is skipped, so that ticks do not pile up behind
        # a slow one. The arbiter reports to nobody: no notify follows.
        if "periodic_task" not in self._hooks:
            return
        tick = self._tick
        commands = self._command_loop()
        if commands is None or (tick is not None and not tick.done()):
            return
        self._tick = tick = commands.submit(self._periodic_hook())
        await asyncio.wrap_future(tick)

    async def _periodic_hook(self) -> None:
        try:
            await self._call_hook("periodic_task")
        except asyncio.CancelledError:
            raise
        except BaseException:  # SystemExit too: it must not end the command loop
            log.exception("arbiter: periodic_task hook failed")

    async def main(self) -> None:
        """The arbiter's life on the IO loop (see Actor.main); its command loop ends with it."""
        try:
            await super().main()
        finally:
            await self._end_commands()

    async def _end_commands(self) -> None:
        """Fail the requests waiting on the arbiter, then stop its command loop."""
        self._commands_closed = True
        self.fail_pending("stopped before it replied")
        commands = self._commands
        if commands is not None and not await commands.stop(ACTOR_ACTION_TIMEOUT):
            log.warning(
                "arbiter: a command still blocks its command loop %ss after the stop; "
                "its thread is left to end when the command returns",
                ACTOR_ACTION_TIMEOUT,
            )

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
        block = current_timeout()  # spawn_here bounds the rest by spawn's own `timeout`
        fut, settle = new_future(
            params["aid"],
            f"spawning {params['aid']}",
            running_loop(),
            tagged=True,
            deadline=None if block is UNSET else block,  # type: ignore[arg-type]
            timers=self._transport.loop,
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
        if self.on_command_loop():
            return await self._on_io_loop(self.spawn_here(**params))
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
        max_concurrency = params.pop("max_concurrency", None)
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
            max_concurrency=max_concurrency,
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
        if self.on_command_loop():
            return await self._on_io_loop(self.kill_actor(aid))
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
        """The arbiter's info, with every live actor's latest info and the dead.

        Its ``events`` count the tasks of its command loop too.
        """
        out = super().info()
        commands = self._commands
        if commands is not None:
            out["events"]["tasks"] += len(commands.tasks)
        out["actors"] = self.supervisor.actors_info()
        out["monitors"] = self.monitors_info()
        out["terminated"] = dict(self.supervisor.terminated)
        return out

    def monitors_info(self) -> dict[str, Any]:
        """Every monitor's pool, by name."""
        return {name: {"aid": m.aid, **m.pool_info()} for name, m in self.monitors.items()}

    def __repr__(self) -> str:
        return f"<Arbiter {self.aid} at {format_address(self.address)} {self.info_state}>"
