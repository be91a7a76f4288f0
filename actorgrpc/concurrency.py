"""How actors run: in a child process, or on a thread of the arbiter's process.

Process actors start with the forkserver (default) or spawn start method,
never plain fork, because gRPC does not survive a fork once a server or
channel exists. The forkserver preloads grpc and actorgrpc, so that each new
actor costs one fork of a process that has created no gRPC object yet.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for_objects
from typing import TYPE_CHECKING, Any

from actorgrpc.actor import Actor, new_aid
from actorgrpc.consts import ACTOR_ACTION_TIMEOUT, ACTOR_STATES
from actorgrpc.flow import DEFAULT_MAILBOX_LIMIT
from actorgrpc.futures import runs_here
from actorgrpc.handoff import new_thread_loop

if TYPE_CHECKING:
    from actorgrpc._typing import Address, Hook
    from actorgrpc.node import Node
    from actorgrpc.security import TLSConfig
    from actorgrpc.supervisor import Supervisor

__all__ = [
    "ActorSpec",
    "ProcessConcurrency",
    "ThreadConcurrency",
    "check_spawn_params",
    "in_actor_process",
]

log = logging.getLogger("actorgrpc")

HOOKS = ("start", "stopping", "periodic_task")
CONCURRENCY = ("process", "thread")
#: Seconds spawn waits for a new actor to run, unless ``timeout`` says otherwise.
SPAWN_TIMEOUT = 30.0
START_METHODS = ("forkserver", "spawn")

_in_actor_process = False


def in_actor_process() -> bool:
    """True inside a spawned actor's process."""
    return _in_actor_process


def check_spawn_params(params: dict[str, Any]) -> dict[str, Any]:
    """Validate spawn's keyword arguments; fill in the aid. Raises TypeError/ValueError."""
    out = dict(params)
    aid = out.get("aid")
    if aid is None:
        aid = new_aid()
    if not isinstance(aid, str) or not aid or len(aid) > 128 or not aid.isprintable():
        raise TypeError(
            f"spawn: aid must be a non-empty printable str of at most 128 characters, not {aid!r}"
        )
    out["aid"] = aid
    name = out.get("name")
    if name is not None and (not isinstance(name, str) or not name or len(name) > 128):
        raise TypeError(
            f"spawn: name must be a non-empty str of at most 128 characters, not {name!r}"
        )
    if name == "arbiter":
        raise ValueError("spawn: the name 'arbiter' is reserved")
    concurrency = out.setdefault("concurrency", "process")
    if concurrency not in CONCURRENCY:
        raise ValueError(f"spawn: concurrency must be one of {CONCURRENCY}, not {concurrency!r}")
    for hook in HOOKS:
        if out.get(hook) is not None and not callable(out[hook]):
            raise TypeError(
                f"spawn: the {hook} hook must be callable, not {type(out[hook]).__name__}"
            )
    actor_class = out.get("actor_class", Actor)
    if not (isinstance(actor_class, type) and issubclass(actor_class, Actor)):
        raise TypeError(f"spawn: actor_class must be a subclass of Actor, not {actor_class!r}")
    timeout = out.get("timeout", SPAWN_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError(f"spawn: timeout must be a positive number of seconds, not {timeout!r}")
    return out


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
    allow_pickle: bool = True
    max_message_size: int = 0
    host: str = "127.0.0.1"
    command_modules: list[str] = field(default_factory=list)
    log_level: int = logging.WARNING
    # Travel inside the pickled spec (a pipe to the child), never in argv or env.
    secret: str | None = None
    tls: TLSConfig | None = None
    mailbox_limit: int = DEFAULT_MAILBOX_LIMIT

    def make_actor(self, node: Node) -> Actor:
        """Build the actor this spec describes."""
        actor = self.actor_class(
            aid=self.aid,
            name=self.name,
            node=node,
            kind=self.kind,
            hooks=self.hooks,
            params=self.params,
            supervisor=self.supervisor,
        )
        actor._spawn_token = self.spawn_token
        return actor


OnExit = Callable[[int | None, str], None]


class ProcessConcurrency:
    """Runs one actor in a child process."""

    def __init__(self, spec: ActorSpec, start_method: str = "forkserver") -> None:
        self.spec = spec
        self._ctx: Any = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            self._ctx.set_forkserver_preload(
                ["actorgrpc.concurrency", "actorgrpc.server", "actorgrpc.client"]
            )
        self.process: Any = None

    @property
    def pid(self) -> int:
        """The child's pid (0 before start)."""
        return self.process.pid if self.process is not None else 0

    def start(self) -> None:
        """Start the child; raises if the spec cannot be pickled."""
        if self.process is not None:
            return
        self.process = self._ctx.Process(
            target=process_main,
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


class ThreadConcurrency:
    """Runs one actor on a thread of its own, with its own event loop."""

    def __init__(self, spec: ActorSpec, node: Node, supervisor: Supervisor) -> None:
        self.spec = spec
        self.pid = os.getpid()
        self._node = node
        self._supervisor = supervisor
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_exit: OnExit | None = None
        self._actor: Actor | None = None
        self._cut_off = False

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
        from actorgrpc.supervisor import LocalSupervisorClient

        actor = self._actor = self.spec.make_actor(self._node)
        actor._sup_client = LocalSupervisorClient(self._node, self._supervisor)
        loop = self._loop = new_thread_loop()
        code: int | None = None
        how = ""
        runs_here(loop)  # this thread runs nothing but the actor's loop
        try:
            loop.run_until_complete(actor._run())
            code = actor.exit_code or 0
        except RuntimeError:
            code, how = None, "terminated: cut off after it did not stop in time"
        except Exception as exc:
            log.exception("thread actor %s failed", self.spec.aid)
            code, how = 1, f"failed: {exc!r}"
        finally:
            self._node.unregister(actor)
            _close_loop(loop)
            runs_here(None)
            actor._fail_inflight("stopped before it replied")
            if self._on_exit is not None:
                on_exit = self._on_exit
                try:
                    self._node.loop.call_soon_threadsafe(on_exit, code, how)
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
                self._node.unregister(actor)
                actor._fail_inflight("was cut off")
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


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
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


def process_main(spec: ActorSpec) -> None:
    """Entry point of a process actor (runs in the child)."""
    global _in_actor_process
    _in_actor_process = True
    # Ctrl-C reaches the whole process group: the arbiter decides, not us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=spec.log_level, format="%(asctime)s %(name)s %(process)d: %(message)s"
    )
    for module in spec.command_modules:
        if module in ("__main__", "__mp_main__") or module in sys.modules:
            continue
        try:
            importlib.import_module(module)
        except Exception as exc:
            log.warning("actor %s: cannot import %s for its commands: %r", spec.aid, module, exc)
    code = asyncio.run(_process_actor(spec))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


async def _process_actor(spec: ActorSpec) -> int:
    from actorgrpc.node import Node
    from actorgrpc.supervisor import TERMINATED_EXIT_CODE

    node = Node(
        host=spec.host,
        allow_pickle=spec.allow_pickle,
        max_message_size=spec.max_message_size,
        arbiter_address=spec.arbiter_address,
        secret=spec.secret,
        tls=spec.tls,
        mailbox_limit=spec.mailbox_limit,
    )
    await node.start()
    actor = spec.make_actor(node)
    actor._sup_client = node.supervisor_client()
    node.main_actor = actor
    loop = asyncio.get_running_loop()

    def terminated() -> None:
        # SIGTERM (terminate()) stops a running actor gracefully, with an exit
        # code that says who asked; one still starting just ends.
        if actor.state < ACTOR_STATES.RUN:
            os._exit(TERMINATED_EXIT_CODE)
        actor.stop(None, TERMINATED_EXIT_CODE)

    loop.add_signal_handler(signal.SIGTERM, terminated)
    parent = multiprocessing.parent_process()
    if parent is not None and parent.sentinel is not None:

        def orphaned() -> None:
            loop.remove_reader(parent.sentinel)
            log.warning("actor %s: the arbiter is gone; exiting", spec.aid)
            actor.stop(exit_code=3)
            loop.call_later(ACTOR_ACTION_TIMEOUT / 2, os._exit, 3)

        loop.add_reader(parent.sentinel, orphaned)
    try:
        await actor._run()
    except Exception as exc:
        # Tell the supervisor why, so that the death record has a reason.
        log.exception("actor %s failed", spec.aid)
        actor.state = ACTOR_STATES.TERMINATE
        actor.exit_code = 1
        await actor._notify(error=exc)
    finally:
        await node.close(grace=0.5)
    return actor.exit_code or 0
