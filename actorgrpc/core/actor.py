"""The Actor: state, hooks, commands handled, info, and its life on its loop."""

from __future__ import annotations

import asyncio
import contextvars
import difflib
import inspect
import itertools
import logging
import os
import random
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from actorgrpc.core.commands import find_command, get_command
from actorgrpc.core.consts import ACTOR_STATES, MONITOR_TASK_PERIOD
from actorgrpc.core.deadlines import UNSET, current_timeout, timeout
from actorgrpc.core.errors import (
    ActorNotAvailable,
    ActorTimeout,
    BadRequest,
    CommandError,
    CommandNotFound,
)
from actorgrpc.core.flow import Gate
from actorgrpc.core.futures import ActorFuture, new_future, running_loop
from actorgrpc.core.handoff import poster_for
from actorgrpc.core.interfaces import Handshake, Notice, current_transport
from actorgrpc.core.proxy import ActorProxy, format_address

if TYPE_CHECKING:
    from actorgrpc.core._typing import Address, Envelope, Hook, ReplyCallback
    from actorgrpc.core.commands import Command
    from actorgrpc.core.interfaces import SupervisorLink, Transport

__all__ = [
    "CALL_ID_SIZE",
    "HOOKS",
    "SPAWN_TIMEOUT",
    "Actor",
    "Request",
    "act_as",
    "check_spawn_params",
    "current_chain",
    "get_actor",
    "new_aid",
    "room",
    "send",
    "set_system_figures",
    "spawn",
]

log = logging.getLogger("actorgrpc")
_current = threading.local()

#: An actor whose state, extra and commands handled have not changed notifies
#: only every this many periods: an idle tree costs its arbiter next to nothing,
#: and any change still shows within one period.
IDLE_NOTIFY_PERIODS = 10
#: The hooks an actor may be given.
HOOKS = ("start", "stopping", "periodic_task")
#: An actor's default ``timeout`` (pulsar's): seconds it may go without a sign
#: of life before its supervisor stops it; spawn also waits that long for it.
SPAWN_TIMEOUT = 30.0
_KINDS = ("process", "thread")
#: Cancels of requests not running that an actor remembers (the newest).
_CANCELS_KEPT = 1024
_monotonic = time.monotonic


def _cancelled(why: str) -> asyncio.CancelledError:
    return asyncio.CancelledError(why)


# Results that are certainly not awaitable: skips inspect.isawaitable on the hot path.
_PLAIN = frozenset({type(None), bool, int, float, str, bytes, list, tuple, dict})

# The call chain of the command running in this context: the ids of the async
# commands it descends from, oldest first, its own last, 8 bytes each (b"":
# none). Set around the commands that need it and inherited by their tasks,
# so that every request a command sends carries it, and an actor whose command
# is in it lets the request in rather than queue it behind the command that
# awaits it. Bytes, not a list of ints: the envelope's bytes field costs a
# tenth of a repeated one to read, on every request.
_chain: contextvars.ContextVar[bytes] = contextvars.ContextVar("actorgrpc_chain", default=b"")
_chain_get = _chain.get
_chain_set = _chain.set
_chain_reset = _chain.reset
#: ``current_chain()``: the call chain of the command running here, b"" outside
#: commands; the transport writes it into every request sent (a bound method:
#: it runs on every send).
current_chain: Callable[[], bytes] = _chain.get
#: Bytes of one id in a call chain.
CALL_ID_SIZE = 8


def _new_call_id() -> bytes:
    """A fresh id for an async command in call chains: 64 random bits."""
    return random.randbytes(CALL_ID_SIZE)


def _calls(chain: bytes) -> Iterator[bytes]:
    """The ids of a call chain (a trailing partial id is one too: it matches none)."""
    return (chain[i : i + CALL_ID_SIZE] for i in range(0, len(chain), CALL_ID_SIZE))


class Request:
    """What a command receives first: ``request.actor`` and ``request.caller``."""

    __slots__ = ("_caller", "_env", "_read_caller", "action", "actor", "args", "kwargs")

    def __init__(
        self,
        actor: Actor,
        caller: ActorProxy | None,
        action: str,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        env: Envelope | None = None,
        read_caller: Callable[[Envelope], ActorProxy | None] | None = None,
    ) -> None:
        #: The actor running the command.
        self.actor = actor
        #: The command's name.
        self.action = action
        self.args = args
        self.kwargs = {} if kwargs is None else kwargs
        self._caller = caller
        # The envelope whose sender is the caller, read (by the transport's
        # codec) on first use: most commands never ask, and making the proxy
        # is on every request's path.
        self._env = env
        self._read_caller = read_caller

    @property
    def caller(self) -> ActorProxy | None:
        """The sender's proxy, or None for an outside client.

        BadRequest if the envelope's sender reference is malformed.
        """
        env = self._env
        if env is not None and self._read_caller is not None:
            self._caller = self._read_caller(env)  # may raise: asked again, raises again
            self._env = None
        return self._caller

    @caller.setter
    def caller(self, proxy: ActorProxy | None) -> None:
        self._caller, self._env = proxy, None

    def __repr__(self) -> str:
        try:
            caller = repr(self.caller)
        except BadRequest:  # a repr must not raise
            caller = "<malformed sender>"
        return (
            f"Request(actor={self.actor!r}, caller={caller}, action={self.action!r}, "
            f"args={self.args!r}, kwargs={self.kwargs!r})"
        )


def _pid_only() -> dict[str, Any]:
    return {"pid": os.getpid()}


#: This process's figures for ``info()['system']`` (hosting plugs psutil's in).
_system_figures: Callable[[], dict[str, Any]] = _pid_only


def set_system_figures(figures: Callable[[], dict[str, Any]]) -> None:
    """Use ``figures()`` for ``info()['system']`` of every actor in this process."""
    global _system_figures
    _system_figures = figures


def get_actor() -> Actor | None:
    """The actor controlling the current thread, or None."""
    return getattr(_current, "actor", None)


def act_as(actor: Actor | None) -> None:
    """Make ``get_actor()`` answer ``actor`` in this thread (None: no actor).

    For a thread that runs an actor's commands off the actor's own loop (the
    arbiter's command loop); on its own loop an actor sets it itself.
    """
    _current.actor = actor


def new_aid() -> str:
    """A fresh actor id."""
    return uuid.uuid4().hex[:8]


class Actor:
    """An actor: it lives on one event loop and answers commands sent to it.

    Actors are not made directly: ``spawn(...)`` makes them, in a child process
    (``concurrency='process'``, the default) or on a thread of the arbiter's
    process (``concurrency='thread'``). Hooks are plain or async callables
    taking the actor::

        def started(actor):
            actor.extra['greeting'] = 'hello'

        proxy = spawn(name='greeter', start=started).result(5)
        send(proxy, 'info').result(5)['extra']   # {'greeting': 'hello'}

    A subclass may be given as ``actor_class``; it must keep this constructor
    (keyword arguments: ``aid``, ``name``, ``transport``, ``kind``, ``hooks``,
    ``params``, ``supervisor``; the runtime passes them).

    An actor runs one command at a time, in the order they arrived, an async
    command from its start to its end, across its awaits: its state needs no
    lock. ``max_concurrency`` lets more run at once; reentrant commands (the
    system ones) and calls back along a call chain (A asks B, B asks A) do
    not wait for a turn.
    """

    #: How many commands of this actor may run at once (spawn's keyword; a
    #: subclass may set its own): 1, one at a time. Reentrant commands and
    #: requests of a call chain already running here take no turn.
    max_concurrency: int = 1

    def __init__(
        self,
        *,
        aid: str,
        name: str | None,
        transport: Transport,
        kind: str,
        hooks: Mapping[str, Hook] | None = None,
        params: Mapping[str, Any] | None = None,
        supervisor: str = "",
    ) -> None:
        #: Unique id of this actor.
        self.aid = aid
        #: The actor's name: the one given at spawn (unique in the tree, found
        #: by lookups), else its class's name lowercased (pulsar's ``'actor'``).
        self.name: str = name or type(self).__name__.lower()
        #: True when the name was given: only given names are registered for
        #: lookup, so many unnamed actors may share the default one.
        self.named = bool(name)
        #: How it runs: "arbiter", "monitor", "process" or "thread" (pulsar: ``impl``).
        self.kind = kind
        #: ACTOR_STATES number.
        self.state: int = ACTOR_STATES.INITIAL
        #: Free-form data shown in ``info()['extra']``.
        self.extra: dict[str, Any] = {}
        #: The keyword arguments given to spawn that are not spawn's own.
        self.params: dict[str, Any] = dict(params or {})
        #: Handle of the next periodic task.
        self.next_periodic_task: asyncio.Handle | None = None
        #: Where to write information messages without the logger.
        self.stream = sys.stderr
        #: Supervisor registries: dicts in the arbiter (and monitors), None elsewhere.
        self.monitors: dict[str, Any] | None = None
        self.managed_actors: dict[str, Any] | None = None
        self.terminated_actors: dict[str, dict[str, Any]] | None = None
        self.registered: dict[str, Any] | None = None
        #: The aid of the actor that supervises this one (the arbiter or a monitor).
        self.supervisor_aid = supervisor
        self._hooks = dict(hooks or {})
        self._transport = transport
        self._settings = transport.settings
        self._codec = transport.codec
        # Bound once: they run for every request.
        self._read_caller = self._codec.caller
        self._read_args = self._codec.read_args
        self._read_chain = self._codec.chain
        self._reply = self._codec.reply
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poster: Any = None
        self._started_at = 0.0
        self._commands_handled = 0
        self._stop_requested: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: A picklable ActorProxy for this actor: one object, made again once
        #: the transport's address is known (main()). Local receivers see it as
        #: the caller of this actor's requests.
        self.proxy = ActorProxy(aid, name, transport.address)
        self._link: SupervisorLink | None = None
        self._heartbeat: Any = None
        self._beat_handle: asyncio.TimerHandle | None = None
        self._spawn_token = ""
        self._session = ""
        self._notified_at = 0.0
        self._sleeping = False
        self._notified_print: tuple[Any, ...] = ()
        # Requests handed to this actor from other threads and not yet
        # answered: failed, not lost, if the actor ends first.
        self._inflight: dict[int, tuple[int, ReplyCallback]] = {}
        self._keys = itertools.count()
        # The mailbox proper: commands waiting for a turn, in arrival order.
        self._queue: deque[tuple[Command, Envelope, ReplyCallback, ActorProxy | None]] = deque()
        # Turns taken: running commands that count against max_concurrency.
        self._turns = 0
        # Requests handed over from other threads (the latest number drawn),
        # and those this actor's loop has taken in: the difference waits.
        self._handoffs = itertools.count(1)
        self._handed = 0
        self._taken = 0
        # Whether a command may take a turn at once: fewer than max_concurrency
        # hold one and none waits (kept by _recount: read on every request).
        self._turn_free = True
        # The call ids of the running async commands (see _hold).
        self._in_progress: set[bytes] = set()
        #: Closed while this actor's mailbox is full: senders then wait for room.
        self.gate = Gate(self._settings.mailbox_limit)
        self.exit_code: int | None = None
        # Requests received and not yet started that have a deadline or came
        # on a stream, by id(envelope): (origin, deadline) for _execute.
        self._received: dict[int, tuple[object, float]] = {}
        # Async commands running, by (origin, request id): what cancels reach.
        self._running: dict[tuple[object, int], asyncio.Task[Any]] = {}
        # Cancels of requests not started yet (or already answered), oldest first.
        self._cancelled: dict[tuple[object, int], None] = {}

    # -- attributes -------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop that drives the actor (None before it runs)."""
        return self._loop

    @property
    def transport(self) -> Transport:
        """This process's transport, which sends and receives for the actor."""
        return self._transport

    @property
    def mailbox(self) -> Transport:
        """pulsar's name for :attr:`transport`: what sends and receives the actor's messages."""
        return self._transport

    @property
    def impl(self) -> str:
        """pulsar's name for :attr:`kind`."""
        return self.kind

    @property
    def address(self) -> Address:
        """The (host, port) of the Mailbox server hosting this actor."""
        return self._transport.address

    @property
    def allow_pickle(self) -> bool:
        """Whether pickled values are accepted and sent."""
        return self._settings.allow_pickle

    @property
    def info_state(self) -> str:
        """Current state description: initial, running, stopping, closed, ..."""
        return str(ACTOR_STATES.DESCRIPTION[self.state])

    # -- predicates (pulsar's) --------------------------------------------

    def is_running(self) -> bool:
        """True when running and its loop is running."""
        return self.state == ACTOR_STATES.RUN and bool(self._loop and self._loop.is_running())

    def started(self) -> bool:
        """True once it has started (state >= RUN)."""
        return self.state >= ACTOR_STATES.RUN

    def after_run(self) -> bool:
        """True when stopping or stopped."""
        return self.state >= ACTOR_STATES.STOPPING

    def closed(self) -> bool:
        """True when it exited cleanly (state CLOSE)."""
        return self.state == ACTOR_STATES.CLOSE

    def stopped(self) -> bool:
        """True when it exited (state >= CLOSE)."""
        return self.state >= ACTOR_STATES.CLOSE

    def is_arbiter(self) -> bool:
        """True for the arbiter."""
        return False

    def is_monitor(self) -> bool:
        """True for a monitor."""
        return False

    def is_process(self) -> bool:
        """True for an actor running in a child process of its own."""
        return self.kind == "process"

    def on_own_loop(self) -> bool:
        """True when called by code running on this actor's loop."""
        loop = self._loop
        return loop is not None and running_loop() is loop

    # -- messages ---------------------------------------------------------

    def send(
        self, target: ActorProxy | str, action: str, *args: Any, **kwargs: Any
    ) -> ActorFuture[Any]:
        """Send ``action`` to ``target``: a future of the reply, or None for ack=False."""
        cmd = find_command(action) if isinstance(action, str) else None
        ack = cmd.ack if cmd is not None else True
        fut = self._transport.request(self, target, action, args, kwargs, ack=ack)
        return cast("ActorFuture[Any]", fut)

    def spawn(self, **params: Any) -> ActorFuture[ActorProxy]:
        """Spawn a new actor; a future with ``.aid`` set, resolving to its proxy."""
        params = check_spawn_params(params)
        default = self._settings.request_timeout
        if current_timeout() is UNSET and default is not None:
            # The arbiter answers once the actor runs, which may take spawn's
            # own `timeout` (its liveness bound): the reply's deadline adds it.
            with timeout(default + params.get("timeout", SPAWN_TIMEOUT)):
                fut = self._transport.request(
                    self, "arbiter", "spawn", (), params, ack=True, tagged=True
                )
        else:
            fut = self._transport.request(
                self, "arbiter", "spawn", (), params, ack=True, tagged=True
            )
        fut.aid = params["aid"]
        return cast("ActorFuture[ActorProxy]", fut)

    def get_actor(self, aid: str) -> Any:
        """A future of the ActorProxy for ``aid`` (or a name), None when unknown."""

        if not isinstance(aid, str):
            raise TypeError(f"get_actor needs an aid or a name, not {aid!r}")
        fut, settle = new_future(aid, f"looking up {aid!r}", running_loop())
        local = self._transport.registry.local(aid)
        link = self._link
        if local is not None or self._loop is None or link is None:
            settle(True, local.proxy if local is not None else None)
            return fut

        async def look_up() -> None:
            try:
                settle(True, await link.lookup(aid, MONITOR_TASK_PERIOD * 5))
            except Exception as exc:
                settle(False, exc)

        asyncio.run_coroutine_threadsafe(look_up(), self._loop)
        return fut

    def actorparams(self) -> dict[str, Any]:
        """Parameters for spawning an actor like this one."""
        return {
            "actor_class": type(self),
            "concurrency": self.kind,
            "max_concurrency": self.max_concurrency,
            **self._hooks,
            **self.params,
        }

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
        """Hand a request to this actor, to run on its own loop; from any thread.

        ``running`` is the caller's running loop (``running_loop()``; the IO
        loop for routing code). ``inline`` runs the command at once when that
        is this actor's loop: right for routing code, never for a sender (it
        would run inside send()). ``caller`` is a local sender's proxy (else
        the envelope's sender, if any, is the caller). ``origin`` names the
        stream it came on (None: from this process), which cancels name too.
        """
        loop = self._loop
        if loop is None:
            on_reply(
                self._codec.error_reply(
                    env.id, ActorNotAvailable(f"actor {self.aid} is not running")
                )
            )
            return
        ms = env.timeout_ms
        if ms or origin is not None:
            # The deadline counts from now: the sender's clock is not ours.
            self._received[id(env)] = (origin, _monotonic() + ms / 1000 if ms else 0.0)
        if running is loop:
            if inline:
                self._receive(env, on_reply, caller)
            else:
                loop.call_soon(self._receive, env, on_reply, caller)
            return
        tracked = self._track(env, on_reply)
        # The latest of a count (next() is atomic): info's requests_waiting
        # counts those handed over that its loop has not taken in yet.
        self._handed = next(self._handoffs)
        try:
            self._poster.post(self._receive, (env, tracked, caller, True))
        except RuntimeError:
            self.fail_pending("is not running")

    def _receive(
        self,
        env: Envelope,
        reply: ReplyCallback,
        caller: ActorProxy | None,
        handed: bool = False,
    ) -> None:
        """A request reached this actor's loop: the one place that decides if it starts now.

        It starts now, taking a turn, when fewer than ``max_concurrency``
        commands hold one and none waits ahead of it. It starts now beside the
        others, taking none, when its command is reentrant, or when it belongs
        to a call chain that a running command of this actor is in (that
        command's own call coming back, A -> B -> A or A -> A: queued behind
        it, it would never run; a request from elsewhere, a sibling sent by
        the same command included, waits). Else it waits for a turn.
        ``caller`` is the sender's proxy when it is local; else the envelope says.
        ``handed``: it came from another thread, through deliver's hand-off.
        """
        self._commands_handled += 1
        if handed:
            self._taken += 1
        if self._sleeping:
            self._wake_periodic()
        try:
            cmd = get_command(env.action)
        except CommandNotFound as exc:
            self._forget(env)
            reply(self._codec.error_reply(env.id, exc))
            return
        if cmd.reentrant:
            self._start(cmd, env, reply, caller, False)
        elif self._turn_free:
            self._start(cmd, env, reply, caller, True)
        elif self._in_progress and self._in_chain(env):
            self._start(cmd, env, reply, caller, False)
        else:
            self._wait_turn(cmd, env, reply, caller)

    def _in_chain(self, env: Envelope) -> bool:
        """True when a running command of this actor is in the request's call chain."""
        in_progress = self._in_progress
        return any(call in in_progress for call in _calls(self._read_chain(env)))

    def _forget(self, env: Envelope) -> None:
        """Drop what deliver noted of a request that will not start (keyed by its id())."""
        if self._received:
            self._received.pop(id(env), None)

    def _wait_turn(
        self, cmd: Command, env: Envelope, reply: ReplyCallback, caller: ActorProxy | None
    ) -> None:
        """Queue a command until a turn is free; one that comes while stopping fails."""
        if self.after_run():
            self._forget(env)
            error = ActorNotAvailable(f"actor {self.aid} is stopping")
            reply(self._codec.error_reply(env.id, error))
            return
        self._queue.append((cmd, env, reply, caller))
        self._recount()

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
        """Start a command ``_receive`` let in: the one place commands start.

        It runs on the running loop, this actor's: a sync command to its end,
        an async one as a task that runs (and sends) in the request's call
        chain followed by its own id, and holds its turn (when ``turn``) and
        that id until it ends. The arbiter overrides this, to run users'
        commands on its command loop: there it calls this with ``tasks``, its
        loop's, having counted the command itself (``_hold``, as ``call_id``).
        """
        origin: object = None
        if self._received:
            origin, deadline = self._received.pop(id(env), (None, 0.0))
            if deadline and _monotonic() > deadline:
                reply(
                    self._codec.error_reply(
                        env.id, ActorTimeout("the deadline passed before it started")
                    )
                )
                return
        key = (origin, env.id)
        if self._cancelled and self._cancelled.pop(key, 0) is None:
            reply(self._codec.error_reply(env.id, _cancelled("cancelled before it started")))
            return
        chain = self._read_chain(env)
        allow = self._settings.allow_pickle
        try:
            args, kwargs = self._read_args(env, allow)
            # Without a local caller, the envelope names the sender (if any).
            sent_by = env if caller is None else None
            request = Request(self, caller, env.action, args, kwargs, sent_by, self._read_caller)
            # The chain is set for a sync command too (a relay returning a
            # send's future must carry it), and hides the chain of another
            # command that the context may carry (a hand-off from its thread).
            if chain or _chain_get():
                token = _chain_set(chain)
                try:
                    result = cmd.fn(request, *args, **kwargs)
                finally:
                    _chain_reset(token)
            else:
                result = cmd.fn(request, *args, **kwargs)
        except BaseException as exc:  # SystemExit too: only stop ends an actor
            reply(self._codec.error_reply(env.id, exc))
            return
        if type(result) in _PLAIN or not inspect.isawaitable(result):
            reply(self._reply(env.id, result, allow, self._settings.max_message_size))
            return
        own = tasks is None
        if tasks is None:
            call_id, tasks = self._hold(turn), self._tasks
        token = _chain_set(chain + call_id)  # the task copies the context, its sends the chain
        task = asyncio.ensure_future(_contained(result))
        _chain_reset(token)
        tasks.add(task)
        if not env.no_reply:  # a no-ack is never cancelled
            self._running[key] = task
        request_id, running = env.id, tasks
        task.add_done_callback(lambda t: self._finish(t, request_id, reply, running, key))
        if own:
            task.add_done_callback(lambda t: self._release(turn, call_id))  # after its answer

    def _hold(self, turn: bool) -> bytes:
        """A command starts: its fresh call id, and a turn taken when ``turn``.

        On this actor's loop, as ``_release`` when it has ended: the command
        counts in info, and requests of its chain are let in meanwhile.
        """
        call_id = _new_call_id()
        if turn:
            self._turns += 1
        self._in_progress.add(call_id)
        self._recount()
        return call_id

    def _release(self, turn: bool, call_id: bytes) -> None:
        """The command ``_hold`` counted has ended: the next waiting may start."""
        self._in_progress.discard(call_id)
        if turn:
            self._turns -= 1
            if self._queue:
                self._take_turns()
        self._recount()

    def _recount(self) -> None:
        """Turns or the queue changed: tell the gate, and whether a turn is free now."""
        self._turn_free = self._turns < self.max_concurrency and not self._queue
        self._update_gate()

    def _take_turns(self) -> None:
        """Start the waiting commands that have a turn now, oldest first."""
        queue = self._queue
        while queue and self._turns < self.max_concurrency:
            cmd, env, reply, caller = queue.popleft()
            self._start(cmd, env, reply, caller, True)

    def _fail_waiting(self, reason: str) -> None:
        """Fail the commands still waiting for a turn: ActorNotAvailable."""
        queue = self._queue
        while queue:
            _, env, reply, _ = queue.popleft()
            self._forget(env)
            reply(self._codec.error_reply(env.id, ActorNotAvailable(f"actor {self.aid} {reason}")))
        self._recount()

    def cancel_request(self, origin: object, request_id: int) -> None:
        """Cancel request ``request_id`` that came from ``origin``; from any thread.

        A running async command's task is cancelled; a request not started
        yet is answered, not started. A sync command running cannot be
        stopped; one already answered is not affected.
        """
        loop = self._loop
        if loop is None:
            return
        if running_loop() is loop:
            self._cancel_now(origin, request_id)
            return
        try:
            # Behind the request on the same hand-off: it has started by then.
            self._poster.post(self._cancel_now, (origin, request_id))
        except RuntimeError:  # the actor's loop has closed
            pass

    def _cancel_now(self, origin: object, request_id: int) -> None:
        key = (origin, request_id)
        task = self._running.pop(key, None)
        if task is None:
            if self._queue and self._drop_waiting(origin, request_id):
                return
            # Not taken in yet (behind a sync command) or answered already:
            # remembered a while, in case.
            cancelled = self._cancelled
            cancelled[key] = None
            if len(cancelled) > _CANCELS_KEPT:
                del cancelled[next(iter(cancelled))]
            return
        task_loop = task.get_loop()
        if running_loop() is task_loop:
            task.cancel()
        else:  # an arbiter's command runs on its command loop
            task_loop.call_soon_threadsafe(task.cancel)

    def _drop_waiting(self, origin: object, request_id: int) -> bool:
        """Answer a cancelled request that waits for a turn, and drop it: True if one did."""
        received = self._received
        for entry in self._queue:
            env = entry[1]
            if env.id == request_id and received.get(id(env), (None,))[0] is origin:
                self._queue.remove(entry)
                self._forget(env)
                entry[2](self._codec.error_reply(env.id, _cancelled("cancelled before it started")))
                self._recount()
                return True
        return False

    def _track(self, env: Envelope, reply: ReplyCallback) -> ReplyCallback:
        """Wrap ``reply`` so that the request fails if this actor ends first (thread-safe)."""
        key = next(self._keys)
        inflight = self._inflight
        inflight[key] = (env.id, reply)
        gate = self.gate
        # These run for every request between threads: the gate is told only
        # when it may change (measured: ~5% of thread -> thread throughput).
        if len(inflight) >= gate.limit:
            self._update_gate()

        def answer(out: Envelope) -> None:
            if inflight.pop(key, None) is not None:
                if gate.shut:
                    self._update_gate()
                reply(out)

        return answer

    def _update_gate(self) -> None:
        """Tell the gate how many requests wait for this actor or run as tasks.

        Those handed over from other threads and not answered yet, those
        waiting for a turn, and the running tasks (a request may count twice:
        the gate closes early rather than late).
        """
        self.gate.update(len(self._tasks) + len(self._inflight) + len(self._queue))

    def fail_pending(self, reason: str) -> None:
        """Fail the requests handed to this actor from other threads and not yet answered.

        Its runner calls it when the actor ends or is cut off: they get
        ActorNotAvailable ("actor <aid> <reason>") instead of no reply.
        """
        for key in list(self._inflight):
            item = self._inflight.pop(key, None)
            if item is not None:
                error = ActorNotAvailable(f"actor {self.aid} {reason}")
                item[1](self._codec.error_reply(item[0], error))
        self._update_gate()  # whoever waits for room finds it, and this end

    def _finish(
        self,
        task: asyncio.Task[Any],
        request_id: int,
        reply: ReplyCallback,
        tasks: set[asyncio.Task[Any]],
        key: tuple[object, int] | None = None,
    ) -> None:
        tasks.discard(task)
        if key is not None:
            self._running.pop(key, None)
        self._update_gate()
        codec = self._codec
        if task.cancelled():
            reply(codec.error_reply(request_id, _cancelled("the command was cancelled")))
        elif task.exception() is not None:
            reply(codec.error_reply(request_id, task.exception()))  # type: ignore[arg-type]
        else:
            settings = self._settings
            reply(
                codec.reply(
                    request_id, task.result(), settings.allow_pickle, settings.max_message_size
                )
            )

    # -- info -------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """A nested dict: ``actor``, ``events``, ``extra`` and ``system``."""
        loop = self._loop
        thread = threading.current_thread() if self.on_own_loop() else None
        return {
            "actor": {
                "name": self.name,
                "aid": self.aid,
                "state": self.state,
                "info_state": self.info_state,
                "concurrency": self.kind,
                "language": "python",
                "pid": os.getpid(),
                "thread": thread.name if thread is not None else "",
                "address": format_address(self.address),
                "uptime": round(time.time() - self._started_at, 3) if self._started_at else 0.0,
                "commands_handled": self._commands_handled,
                "is_process": self.is_process(),
                "supervisor": self.supervisor_aid,
            },
            "events": {
                "running": bool(loop and loop.is_running()),
                # The actor's own tasks: asyncio.all_tasks() scans every task of
                # the process, which thread actors would pay for squared.
                "tasks": len(self._tasks),
                # Requests waiting: handed over and not taken in yet (a sync
                # command holds the loop), or waiting for a turn; and async
                # commands running.
                "requests_waiting": max(0, self._handed - self._taken) + len(self._queue),
                "commands_in_progress": len(self._in_progress),
            },
            "extra": dict(self.extra),
            "system": _system_figures(),
        }

    # -- life ---------------------------------------------------------------

    def attach(self, link: SupervisorLink, spawn_token: str = "", heartbeat: Any = None) -> None:
        """Give the actor its line to its supervisor, and its spawn's token (runners do).

        ``heartbeat`` (anything with a float ``value``, shared with the
        supervisor) gets the time every MONITOR_TASK_PERIOD while the actor's
        loop runs: a sign of life that costs no message.
        """
        self._link = link
        self._spawn_token = spawn_token
        self._heartbeat = heartbeat

    def stop(self, exc: BaseException | None = None, exit_code: int | None = None) -> None:
        """Gracefully stop the actor (from any thread)."""
        if exit_code is not None:
            self.exit_code = exit_code
        if exc is not None:
            log.error("actor %s stopping on error: %r", self.aid, exc)
            self.exit_code = self.exit_code or 1
        self._stop_soon()

    def _stop_soon(self) -> None:
        loop, event = self._loop, self._stop_requested
        if loop is None or event is None:
            return
        if self.on_own_loop():
            loop.call_soon(event.set)
        else:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:
                pass

    async def main(self) -> None:
        """The actor's whole life on the running loop; returns when it has stopped.

        Its runner calls it once (on the actor's own thread or process).
        """
        self._loop = asyncio.get_running_loop()
        self._poster = poster_for(self._loop)
        self._stop_requested = asyncio.Event()
        _current.actor = self
        transport = self._transport
        self.proxy = ActorProxy(self.aid, self.name, transport.address)
        self.state = ACTOR_STATES.STARTING
        self._started_at = time.time()
        transport.registry.register(self)
        try:
            await self._handshake()
            try:
                await self._call_hook("start")
            except Exception as exc:
                self.state = ACTOR_STATES.TERMINATE
                self.exit_code = 1
                log.exception("actor %s: start hook failed", self.aid)
                await self._notify(error=exc)
                return
            self.state = ACTOR_STATES.RUN
            await self._notify()
            self._schedule_periodic()
            if self._heartbeat is not None:
                self._beat()
            await self._stop_requested.wait()
            self.state = ACTOR_STATES.STOPPING
            # Running commands go on until the stopping hook has run; those
            # waiting for a turn would not get one.
            self._fail_waiting("stopped before it ran the command")
            # Told before the stopping hook runs: if it never returns, the
            # supervisor still knows, and ends the actor in time.
            await self._notify()
            await transport.actor_stopping(self)
            if self.next_periodic_task is not None:
                self.next_periodic_task.cancel()
            if self._beat_handle is not None:
                self._beat_handle.cancel()
            await self._shutdown()
        finally:
            transport.registry.unregister(self)
            self._fail_waiting("stopped before it ran the command")
            _current.actor = None

    async def report_failure(self, exc: BaseException) -> None:
        """The actor's life failed with ``exc``: terminated, and its supervisor told why."""
        self.state = ACTOR_STATES.TERMINATE
        self.exit_code = 1
        await self._notify(error=exc)

    async def _shutdown(self) -> None:
        try:
            await self._call_hook("stopping")
        except Exception:
            log.exception("actor %s: stopping hook failed", self.aid)
        for task in list(self._tasks):
            task.cancel()
        self.state = ACTOR_STATES.CLOSE
        await self._notify()

    async def _call_hook(self, name: str) -> None:
        hook = self._hooks.get(name)
        if hook is not None:
            result = hook(self)
            if inspect.isawaitable(result):
                await result

    def _schedule_periodic(self) -> None:
        assert self._loop is not None
        # Without a periodic_task hook an idle actor only owes an occasional
        # notify: it sleeps long, and a command handled brings the tick back
        # within a period (_receive), so changes still show that fast.
        self._sleeping = not self._ticks() and self._fingerprint() == self._notified_print
        delay = MONITOR_TASK_PERIOD * (IDLE_NOTIFY_PERIODS if self._sleeping else 1)
        self.next_periodic_task = self._loop.call_later(delay, self._periodic)

    def _beat(self) -> None:
        """Tell the supervisor the loop runs (a store to shared memory), every period."""
        self._heartbeat.value = time.time()
        if not self.after_run() and self._loop is not None:
            self._beat_handle = self._loop.call_later(MONITOR_TASK_PERIOD, self._beat)

    def _ticks(self) -> bool:
        """Whether this actor needs its periodic task every period."""
        return "periodic_task" in self._hooks

    def _wake_periodic(self) -> None:
        """Bring a long-sleeping periodic task back to within a period."""
        self._sleeping = False
        handle, loop = self.next_periodic_task, self._loop
        if handle is not None and loop is not None and not self.after_run():
            handle.cancel()
            self.next_periodic_task = loop.call_later(MONITOR_TASK_PERIOD, self._periodic)

    def _periodic(self) -> None:
        task = asyncio.ensure_future(self._periodic_task())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if not self.after_run():
            self._schedule_periodic()

    async def _periodic_task(self) -> None:
        try:
            await self._call_hook("periodic_task")
        except Exception:
            log.exception("actor %s: periodic_task hook failed", self.aid)
        if self.after_run():
            return  # the stop's own notify tells the rest
        silent = time.monotonic() - self._notified_at
        if self._fingerprint() != self._notified_print or silent >= IDLE_NOTIFY_PERIODS * (
            MONITOR_TASK_PERIOD
        ):
            await self._notify()

    def _fingerprint(self) -> tuple[Any, ...]:
        """What a notify must report when it changes."""
        return (self.state, self._commands_handled, repr(self.extra))

    # -- talking to the supervisor -----------------------------------------

    def _supervisor_link(self) -> SupervisorLink:
        if self._link is None:
            raise RuntimeError(f"actor {self.aid} has no supervisor link (see Actor.attach)")
        return self._link

    async def _handshake(self) -> None:
        request = Handshake(
            aid=self.aid,
            name=self.name,
            address=self._transport.address_text,
            pid=os.getpid(),
            kind=self.kind,
            language="python",
            spawn_token=self._spawn_token,
        )
        welcome = await self._supervisor_link().handshake(request, MONITOR_TASK_PERIOD * 5)
        self._session = welcome.session_token

    async def _notify(self, error: BaseException | None = None) -> None:
        self._notified_at = time.monotonic()
        self._notified_print = self._fingerprint()
        info: Mapping[str, Any] | None = None
        try:
            info = self._codec.pack_info(self.info(), self._settings.allow_pickle)
        except Exception as exc:  # unencodable extra: report without it
            log.warning("actor %s: info not sent: %s", self.aid, exc)
        failure = tb = ""
        if error is not None:
            failure = f"{type(error).__name__}: {error}"
            tb = "".join(traceback.format_exception(error))
        notice = Notice(self.aid, self.state, self._session, info, failure, tb)
        try:
            known = await self._supervisor_link().notify(notice, MONITOR_TASK_PERIOD * 2)
        except Exception as exc:
            self._supervisor_unreachable(exc)
            return
        if not known and not self.after_run():
            log.warning("actor %s: unknown to its supervisor; stopping", self.aid)
            self._stop_soon()

    def _supervisor_unreachable(self, exc: BaseException) -> None:
        log.warning("actor %s: notify failed: %s", self.aid, exc)

    # -- what supervisors do (the arbiter and monitors override these) -----------

    def worker_ended(self, aid: str, record: dict[str, Any]) -> int:
        """An actor this one supervises ended; return how often its pool restarted."""
        return 0

    async def spawn_here(self, **params: Any) -> ActorProxy:
        """Spawn an actor from this actor's loop (the ``spawn`` command); the arbiter's."""
        raise NotImplementedError("only the arbiter spawns; send 'spawn' to 'arbiter'")

    async def kill_actor(self, aid: str) -> str | None:
        """Stop the actor ``aid`` (the ``kill_actor`` command); the arbiter's."""
        raise NotImplementedError("only the arbiter kills actors; send 'kill_actor' to 'arbiter'")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.aid} {self.info_state}>"


async def _contained(awaitable: Any) -> Any:
    """Await a command; SystemExit and KeyboardInterrupt become its error, not the loop's.

    asyncio lets those two out of a task and stop the loop: here they end the
    command only, as any other exception does.
    """
    try:
        return await awaitable
    except (SystemExit, KeyboardInterrupt) as exc:
        tb = "".join(traceback.format_exception(exc))
        raise CommandError(type(exc).__name__, str(exc), tb) from None


def check_spawn_params(params: dict[str, Any]) -> dict[str, Any]:
    """Validate spawn's keyword arguments; fill in the aid. Raises TypeError/ValueError."""
    _refuse_misspelt_keywords(params)
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
    if concurrency not in _KINDS:
        raise ValueError(f"spawn: concurrency must be one of {_KINDS}, not {concurrency!r}")
    for hook in HOOKS:
        if out.get(hook) is not None and not callable(out[hook]):
            raise TypeError(
                f"spawn: the {hook} hook must be callable, not {type(out[hook]).__name__}"
            )
    actor_class = out.get("actor_class", Actor)
    if not (isinstance(actor_class, type) and issubclass(actor_class, Actor)):
        raise TypeError(f"spawn: actor_class must be a subclass of Actor, not {actor_class!r}")
    timeout = out.get("timeout", SPAWN_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0:
        raise ValueError(
            f"spawn: timeout must be a number of seconds >= 0 (0: none), not {timeout!r}"
        )
    limit = out.get("max_concurrency", 1)
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"spawn: max_concurrency must be an int, not {type(limit).__name__}")
    if limit < 1:
        raise ValueError(f"spawn: max_concurrency must be >= 1, not {limit}")
    return out


#: spawn's own keywords; any other becomes one of the actor's params.
_SPAWN_KEYWORDS = (
    "aid",
    "name",
    "concurrency",
    "actor_class",
    "timeout",
    "max_concurrency",
    *HOOKS,
)


def _refuse_misspelt_keywords(params: Mapping[str, Any]) -> None:
    """Refuse a keyword one typo away from one of spawn's own, with a value that fits it.

    Other keywords are the actor's params, free-form: ``perodic_task=tick``
    would pass as one, and the hook would silently never run. So a near miss
    (difflib's ratio >= 0.8) whose value that keyword would take (a callable
    for a hook, a kind for ``concurrency``...) is taken for a typo, while an
    ordinary param near a keyword, such as ``state='idle'``, still passes.
    """
    for key, value in params.items():
        if key in _SPAWN_KEYWORDS:
            continue
        for keyword in difflib.get_close_matches(key, _SPAWN_KEYWORDS, n=3, cutoff=0.8):
            if _fits(keyword, value):
                raise TypeError(f"spawn: unknown keyword {key!r}: did you mean {keyword!r}?")


def _fits(keyword: str, value: Any) -> bool:
    """Whether ``value`` is one that spawn's ``keyword`` takes."""
    if keyword in HOOKS:
        return callable(value)
    if keyword == "concurrency":
        return isinstance(value, str) and value in _KINDS
    if keyword == "actor_class":
        return isinstance(value, type) and issubclass(value, Actor)
    if keyword == "timeout":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if keyword == "max_concurrency":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, str)  # aid, name


def _sender() -> Actor:
    """The actor that plain code in this thread acts as."""
    actor = get_actor()
    if actor is not None:
        return actor
    transport = current_transport()
    main = transport.main_actor if transport is not None else None
    if isinstance(main, Actor):
        return main
    raise RuntimeError(
        "no actor runs in this process: start an arbiter first "
        "(`with arbiter():` or `arbiter().start()`)"
    )


def send(target: ActorProxy | str, action: str, *args: Any, **kwargs: Any) -> ActorFuture[Any]:
    """Send ``action`` with its arguments to ``target`` (a proxy, an aid, a name or 'arbiter').

    Returns a future of the reply (awaitable inside an actor, with
    ``.result(timeout)`` from plain code), or None for a command with ack=False::

        send(proxy, 'ping').result(5)   # 'pong'
    """
    return _sender().send(target, action, *args, **kwargs)


def room(target: ActorProxy | str, timeout: float | None = None) -> Awaitable[None]:
    """Wait until ``target`` has room for more messages from this process (await it).

    A send inside an actor that runs on its process's IO loop (a process
    actor, the arbiter) cannot block: while the way to a full target is
    full, ``send`` raises ResourceExhausted at once. An async command waits
    for room with this before it sends::

        for item in items:
            await room(target)
            send(target, 'store', item)   # a command with ack=False

    It returns at once while there is room, and raises ResourceExhausted
    after ``timeout`` seconds (by default the tree's ``send_wait``, 30 s).
    A sender that counts every microsecond may rather send first, and await
    ``room`` only when ``send`` raised ResourceExhausted (nothing was sent
    then), then send again. Plain code and thread actors need not: their
    ``send`` waits by itself.
    """
    # Not a coroutine itself: while there is room, as nearly always, the
    # awaitable is done at once and costs no coroutine of its own.
    return _sender().transport.room(target, timeout)


def spawn(**kwargs: Any) -> ActorFuture[ActorProxy]:
    """Spawn an actor; a future with ``.aid`` set at once, resolving to an ActorProxy.

    Keywords: ``aid``, ``name``, ``concurrency`` ('process' or 'thread'), hooks
    ``start``, ``stopping`` and ``periodic_task`` (callables taking the actor),
    ``actor_class``, ``timeout`` (seconds to wait for the actor to run),
    ``max_concurrency`` (commands it may run at once: 1, one at a time, by
    default); any other keyword lands in the actor's ``params``.
    """
    return _sender().spawn(**kwargs)
