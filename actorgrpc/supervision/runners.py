"""Runners: what runs one actor, in a child process, on a thread, or as a task.

Process actors start with the forkserver (default) or spawn start method,
never plain fork, because gRPC does not survive a fork once a server or
channel exists. The forkserver preloads the modules the hosting layer names
(grpc and actorgrpc), so that each new actor costs one fork of a process that
has created no gRPC object yet. What a child runs (its ``entry``) is the
hosting layer's too: this module starts it and watches it end.

A forkserver's child is the forkserver's, not the arbiter's: multiprocessing
learns of its end from a pipe the forkserver writes its exit code to. So that
the forkserver's death does not pass for its children's, the runner watches
and signals each child through a pidfd of its own (see ProcessRunner).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import multiprocessing
import os
import signal
import struct
import sys
import termios
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for_objects
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from actorgrpc.core.actor import Actor
from actorgrpc.core.futures import runs_here
from actorgrpc.core.handoff import busy_for, new_thread_loop
from actorgrpc.core.settings import Settings

if TYPE_CHECKING:
    from actorgrpc.core._typing import Address, Hook
    from actorgrpc.core.interfaces import SupervisorLink, Transport

__all__ = [
    "FORKSERVER_GONE",
    "IMPORT_TIME_SPAWN_EXIT_CODE",
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
#: How a process actor ended whose exit code went with its forkserver (a death record's ``how``).
FORKSERVER_GONE = "ended with an unknown exit code: its forkserver is gone"
#: Exit code of a process actor's child that re-ran, as multiprocessing's start
#: methods have it do, a script that spawns process actors when imported
#: (sysexits' EX_CONFIG): it ends before it can become the actor.
IMPORT_TIME_SPAWN_EXIT_CODE = 78
#: A child's ``exit_code`` until it writes the code it exits with.
_NO_EXIT_CODE = -1
#: What multiprocessing makes of a forkserver's pipe that closed without a code.
_LOST_EXIT_CODE = 255

#: What names the children a ProcessRunner starts (their ``Process.name``).
_PROCESS_NAME = "actorgrpc-"

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
    #: Where a process actor writes the code it exits with (0-255), shared with its
    #: runner (set by it): its word for it once the forkserver, which reports it, is gone.
    exit_code: Any = None
    #: The spawning process's environment at the spawn (a child process takes it:
    #: the forkserver's own was frozen when it started).
    environ: dict[str, str] | None = None
    #: Commands the actor may run at once (spawn's ``max_concurrency``); None:
    #: its class's own (``Actor.max_concurrency``, 1).
    max_concurrency: int | None = None

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
        if self.max_concurrency is not None:
            actor.max_concurrency = self.max_concurrency
        actor.attach(link, self.spawn_token, self.heartbeat)
        return actor


class ProcessRunner:
    """Runs one actor in a child process: ``entry(spec)`` there.

    The child's end is watched, and its signals sent, through a pidfd of it
    (``os.pidfd_open``): readable once it exits and a handle to signal it,
    whoever its parent is, with no pid-reuse race. multiprocessing's own
    handle on a forkserver's child is the pipe the forkserver writes the
    child's exit code to; were the forkserver killed, that pipe would close,
    and the child, still running, would seem to have exited with code 255.
    The forkserver's word on the exit code is taken while it lives; once it is
    gone, the code the child wrote to ``spec.exit_code`` as it exited, or, if
    it wrote none (a signal killed it), none: its death record says
    FORKSERVER_GONE. Where pidfds are missing (not Linux, a kernel before 5.3)
    or refused, the runner goes through multiprocessing as before, and its
    child then seems to end with its forkserver.

    The Process (and its Popen) is kept as long as the runner: its finalizer
    closes the pipe whose other end is the child's sign that its parent lives.
    """

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
        self._forkserver = start_method == "forkserver"
        if self._forkserver and preload:
            self._ctx.set_forkserver_preload(list(preload))
        self.process: Any = None
        #: Shared memory the child's loop writes the time to, every period.
        self.heartbeat = spec.heartbeat = self._ctx.RawValue("d", 0.0)
        self._exit_code = spec.exit_code = self._ctx.RawValue("i", _NO_EXIT_CODE)
        self._pidfd: int | None = None

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
            name=f"{_PROCESS_NAME}{self.spec.name or self.spec.aid}",
            daemon=True,
        )
        try:
            self.process.start()
        except RuntimeError as exc:
            # In a child of ours (see its name above) re-running the script.
            ours = multiprocessing.current_process().name.startswith(_PROCESS_NAME)
            if ours and "bootstrapping phase" in str(exc):
                _end_import_time_spawn()
            raise
        self._pidfd = _open_pidfd(self.process.pid)
        if self._pidfd is not None:
            weakref.finalize(self, os.close, self._pidfd)

    def _handle(self) -> int:
        """What turns readable once the child has ended: its pidfd, else its sentinel."""
        return self._pidfd if self._pidfd is not None else int(self.process.sentinel)

    def watch(self, loop: asyncio.AbstractEventLoop, on_exit: OnExit) -> None:
        """Call ``on_exit(exitcode, how)`` on the loop when the child ends.

        The loop is the one reader of the exit code: ``Process.exitcode``
        reads it off the forkserver's pipe, and of two threads reading at
        once the second finds the pipe empty and records 255. Other threads
        only wait for the end (``join``, ``is_alive``).
        """
        handle = self._handle()

        def ended() -> None:
            loop.remove_reader(handle)
            on_exit(*self._exit_status())

        loop.add_reader(handle, ended)

    def _exit_status(self) -> tuple[int | None, str]:
        """How the child, which has ended, ended: (exit code or None, how)."""
        code, how = self._reported_exit()
        if code == IMPORT_TIME_SPAWN_EXIT_CODE and self._exit_code.value == _NO_EXIT_CODE:
            # Ended before it ran the actor, which writes its code first: see start().
            how = _import_time_spawn()
        return code, how

    def _reported_exit(self) -> tuple[int | None, str]:
        process = self.process
        if not self._forkserver:
            process.join(1.0)  # reaps it (a child of ours)
            return process.exitcode, ""
        # The forkserver writes the code once it has reaped the child, at once.
        sentinel = process.sentinel
        reported = bool(wait_for_objects([sentinel], 1.0)) and _unread(sentinel) > 0
        code: int | None = process.exitcode
        if code != _LOST_EXIT_CODE or reported:
            return code, ""
        # multiprocessing's 255 for a pipe that closed with no code on it: the
        # forkserver is gone (killed), the child's own record is all there is.
        own = int(self._exit_code.value)
        return (None, FORKSERVER_GONE) if own == _NO_EXIT_CODE else (own, "")

    def is_alive(self) -> bool:
        """True while the child runs (any thread)."""
        return self.process is not None and not self._ended(0)

    def _ended(self, timeout: float | None) -> bool:
        # Waiting on the handle reads nothing off it.
        return bool(wait_for_objects([self._handle()], timeout))

    def terminate(self) -> None:
        """SIGTERM the child."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the child."""
        self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        if self._pidfd is not None:
            try:
                signal.pidfd_send_signal(self._pidfd, sig)
            except ProcessLookupError:  # it has exited already
                pass
        elif self.is_alive() and sig == signal.SIGKILL:
            self.process.kill()
        elif self.is_alive():
            self.process.terminate()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the child to end; True if it has (any thread)."""
        if self.process is None:
            return True
        return self._ended(timeout)


def _import_time_spawn() -> str:
    """Why a child ended with IMPORT_TIME_SPAWN_EXIT_CODE, in one line (the spawning process)."""
    script = getattr(sys.modules.get("__main__"), "__file__", None) or "the main script"
    return (
        f"its process re-ran {script}, which spawns process actors when imported: "
        "put that code under `if __name__ == '__main__':`"
    )


def _end_import_time_spawn() -> NoReturn:
    """End this child of a ProcessRunner, which spawned while re-running its parent's script.

    multiprocessing's forkserver and spawn start methods have a child import
    the parent's main script (as ``__mp_main__``) before it runs its target:
    a script that spawns at import time, with no ``__main__`` guard, spawns
    again there, and multiprocessing refuses that with a RuntimeError whose
    two tracebacks (the child's, then the parent's) say little. The child,
    which cannot go on, ends quietly with a code of its own instead, and its
    runner says why in one line.
    """
    os._exit(IMPORT_TIME_SPAWN_EXIT_CODE)


def _open_pidfd(pid: int) -> int | None:
    """A pidfd of ``pid``, or None: no pidfds here, or the process is gone already."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _unread(fd: int) -> int:
    """How many bytes wait in the pipe ``fd`` (FIONREAD: nothing is read)."""
    count: int = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
    return count


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
