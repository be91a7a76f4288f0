"""Runners: what runs one actor, in a child process, on a thread, or as a task.

Process actors start with the forkserver (default) or spawn start method,
never plain fork, because gRPC does not survive a fork once a server or
channel exists. The forkserver preloads the modules the hosting layer names
(grpc and actorgrpc), so that each new actor costs one fork of a process that
has created no gRPC object yet. What a child runs (its ``entry``) is the
hosting layer's too: this module starts it and watches it end.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for_objects
from typing import TYPE_CHECKING, Any, Protocol

from actorgrpc.core.actor import Actor
from actorgrpc.core.futures import runs_here
from actorgrpc.core.handoff import busy_for, new_thread_loop
from actorgrpc.core.settings import Settings

if TYPE_CHECKING:
    from actorgrpc.core._typing import Address, Hook
    from actorgrpc.core.interfaces import SupervisorLink, Transport

__all__ = [
    "START_METHODS",
    "ActorSpec",
    "LoopHeartbeat",
    "OnExit",
    "ProcessRunner",
    "Runner",
    "ThreadRunner",
    "close_loop",
]

log = logging.getLogger("actorgrpc")

START_METHODS = ("forkserver", "spawn")
#: Exit code of a process actor that stopped because it was sent SIGTERM.
TERMINATED_EXIT_CODE = 128 + 15

#: Called on the IO loop when an actor's runner ends: (exit code or None, how).
OnExit = Callable[[int | None, str], None]


class LoopHeartbeat:
    """A thread actor's sign of life, read off its loop: no beat to send, no wake-up.

    ``value`` is now while the loop waits in select (it is alive and idle),
    else when it last came out of it: a loop stuck in one callback (a sync
    command that does not return) falls behind.
    """

    __slots__ = ("_runner",)

    def __init__(self, runner: ThreadRunner) -> None:
        self._runner = runner

    @property
    def value(self) -> float:
        loop = self._runner.loop
        busy = busy_for(loop) if loop is not None else None
        return 0.0 if busy is None else time.time() - busy


class Runner(Protocol):
    """What the supervisor needs of the thing that runs an actor."""

    @property
    def pid(self) -> int: ...
    @property
    def heartbeat(self) -> Any:
        """The actor's heartbeat (a float ``value``: time.time() of its last beat), or None."""
        ...

    def start(self) -> None: ...
    def watch(self, loop: asyncio.AbstractEventLoop, on_exit: OnExit) -> None: ...
    def is_alive(self) -> bool: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def join(self, timeout: float | None = None) -> bool: ...


@dataclass
class ActorSpec:
    """Everything a new actor needs to start; pickled to process actors."""

    aid: str
    name: str | None
    kind: str
    actor_class: type[Actor]
    hooks: dict[str, Hook]
    params: dict[str, Any]
    arbiter_address: Address
    spawn_token: str
    supervisor: str
    #: The tree's settings (secret and TLS included: the spec travels in a pipe).
    settings: Settings = field(default_factory=Settings)
    #: Modules that define commands, for the child to import.
    command_modules: list[str] = field(default_factory=list)
    #: Where the actor beats, shared with its supervisor (set by its runner).
    heartbeat: Any = None
    #: The spawning process's environment at the spawn (a child process takes it:
    #: the forkserver's own was frozen when it started).
    environ: dict[str, str] | None = None

    def make_actor(self, transport: Transport, link: SupervisorLink) -> Actor:
        """Build the actor this spec describes, on ``transport``, linked to its supervisor."""
        actor = self.actor_class(
            aid=self.aid,
            name=self.name,
            transport=transport,
            kind=self.kind,
            hooks=self.hooks,
            params=self.params,
            supervisor=self.supervisor,
        )
        actor.attach(link, self.spawn_token, self.heartbeat)
        return actor


class ProcessRunner:
    """Runs one actor in a child process: ``entry(spec)`` there."""

    def __init__(
        self,
        spec: ActorSpec,
        entry: Callable[[ActorSpec], None],
        start_method: str = "forkserver",
        preload: Sequence[str] = (),
    ) -> None:
        self.spec = spec
        self._entry = entry
        self._ctx: Any = multiprocessing.get_context(start_method)
        if start_method == "forkserver" and preload:
            self._ctx.set_forkserver_preload(list(preload))
        self.process: Any = None
        #: Shared memory the child's loop writes the time to, every period.
        self.heartbeat = spec.heartbeat = self._ctx.RawValue("d", 0.0)

    @property
    def pid(self) -> int:
        """The child's pid (0 before start)."""
        return self.process.pid if self.process is not None else 0

    def start(self) -> None:
        """Start the child; raises if the spec cannot be pickled."""
        if self.process is not None:
            return
        self.process = self._ctx.Process(
            target=self._entry,
            args=(self.spec,),
            name=f"actorgrpc-{self.spec.name or self.spec.aid}",
            daemon=True,
        )
        self.process.start()

    def watch(self, loop: asyncio.AbstractEventLoop, on_exit: OnExit) -> None:
        """Call ``on_exit(exitcode, '')`` on the loop when the child ends.

        The loop is the one reader of the exit code: ``Process.join`` and
        ``is_alive`` read it off the forkserver's pipe, and of two threads
        reading at once the second finds the pipe empty and records 255.
        Other threads only wait for the end (``join``, ``is_alive``).
        """
        process = self.process
        sentinel = process.sentinel

        def ended() -> None:
            loop.remove_reader(sentinel)
            process.join(1.0)
            on_exit(process.exitcode, "")

        loop.add_reader(sentinel, ended)

    def is_alive(self) -> bool:
        """True while the child runs (any thread)."""
        return self.process is not None and not self._ended(0)

    def _ended(self, timeout: float | None) -> bool:
        # The sentinel turns readable when the child ends; waiting on it reads nothing.
        return bool(wait_for_objects([self.process.sentinel], timeout))

    def terminate(self) -> None:
        """SIGTERM the child."""
        if self.is_alive():
            self.process.terminate()

    def kill(self) -> None:
        """SIGKILL the child."""
        if self.is_alive():
            self.process.kill()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the child to end; True if it has (any thread)."""
        if self.process is None:
            return True
        return self._ended(timeout)


class ThreadRunner:
    """Runs one actor on a thread of its own, with its own event loop."""

    def __init__(self, spec: ActorSpec, transport: Transport, link: SupervisorLink) -> None:
        self.spec = spec
        self.pid = os.getpid()
        self._transport = transport
        self._link = link
        #: Read off the actor's loop: the actor itself sends no beat (spec.heartbeat stays None).
        self.heartbeat = LoopHeartbeat(self)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_exit: OnExit | None = None
        self._actor: Actor | None = None
        self._cut_off = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The actor's loop, once its thread has made it."""
        return self._loop

    def start(self) -> None:
        """Start the thread, where the actor is made and runs."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._main, name=f"actorgrpc-{self.spec.name or self.spec.aid}", daemon=True
            )
            self._thread.start()

    def watch(self, loop: asyncio.AbstractEventLoop, on_exit: OnExit) -> None:
        """Call ``on_exit(exitcode, how)`` on the IO loop when the thread ends."""
        self._on_exit = on_exit

    def _main(self) -> None:
        actor = self._actor = self.spec.make_actor(self._transport, self._link)
        loop = self._loop = new_thread_loop()
        code: int | None = None
        how = ""
        runs_here(loop)  # this thread runs nothing but the actor's loop
        try:
            loop.run_until_complete(actor.main())
            code = actor.exit_code or 0
        except RuntimeError:
            code, how = None, "terminated: cut off after it did not stop in time"
        except Exception as exc:
            log.exception("thread actor %s failed", self.spec.aid)
            code, how = 1, f"failed: {exc!r}"
        finally:
            self._transport.registry.unregister(actor)
            close_loop(loop)
            runs_here(None)
            actor.fail_pending("stopped before it replied")
            if self._on_exit is not None:
                on_exit = self._on_exit
                try:
                    self._transport.loop.call_soon_threadsafe(on_exit, code, how)
                except RuntimeError:  # the IO loop is gone already
                    pass

    def is_alive(self) -> bool:
        """True while the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def terminate(self) -> None:
        """Cut the actor off: stop its loop wherever it is."""
        loop, actor = self._loop, self._actor
        if loop is not None and self.is_alive():
            self._cut_off = True
            if actor is not None:
                # Nothing more reaches it, and nobody waits on it.
                self._transport.registry.unregister(actor)
                actor.fail_pending("was cut off")
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:
                pass

    kill = terminate

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True if it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what still runs on a stopped thread loop (waiting up to 1 s), then close it."""
    try:
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks and not loop.is_running():
            # Bounded: a task may swallow its cancellation (asyncio.wait_for
            # does, in a race) and wait on; a cut-off actor must still end.
            loop.run_until_complete(asyncio.wait(tasks, timeout=1.0))
        loop.run_until_complete(loop.shutdown_asyncgens())
    except RuntimeError:
        pass
    finally:
        loop.close()
