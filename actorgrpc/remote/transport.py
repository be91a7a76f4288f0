"""The transport: one process's IO loop, server, connections and routing.

There is one transport per process. It owns the IO loop, on one thread, and
with it every grpc.aio object of the process (the server and all channels),
because a grpc.aio object belongs to the loop that made it and several loops
in one process wake each other on every event. Actors on other threads
(thread actors) hand envelopes to the IO loop and receive them on their own
loops. It implements the core's ``Transport`` interface.

Routing: an ActorProxy names an address, so envelopes go straight to it; a bare
aid or name is resolved by the arbiter, which holds the tree. In the arbiter's
process that is a call (``resolver``); in a child process the name is looked up
once with the Supervisor service and remembered (``remote.names``), and its
envelopes then go straight to the address found, on the same stream as the
proxy's, so a sender's order to one actor is kept whatever it names it by.
Names the arbiter does not know travel to it, and it answers for them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from actorgrpc.core.actor import current_chain
from actorgrpc.core.deadlines import call_timeout
from actorgrpc.core.errors import (
    ActorError,
    ActorNotAvailable,
    ActorNotFound,
    BadRequest,
    ResourceExhausted,
    short,
)
from actorgrpc.core.flow import Gate, stayed_full
from actorgrpc.core.futures import new_future, running_loop, runs_here
from actorgrpc.core.handoff import poster_for
from actorgrpc.core.interfaces import current_transport, set_current_transport
from actorgrpc.core.proxy import ActorProxy, format_address, parse_address
from actorgrpc.core.registry import Registry
from actorgrpc.core.settings import Settings
from actorgrpc.remote import server, wire
from actorgrpc.remote.connection import NO_REPLY, Connection
from actorgrpc.remote.envelopes import (
    CANCEL,
    CODEC,
    REQUEST,
    Envelope,
    check_size,
    drop_reply,
    error_from_pb,
    make_error_reply,
)
from actorgrpc.remote.names import Names, not_here
from actorgrpc.remote.security import auth_metadata
from actorgrpc.remote.supervisor_client import SupervisorClient

if TYPE_CHECKING:
    from actorgrpc.core._typing import Address, ReplyCallback
    from actorgrpc.core.registry import LocalActor
    from actorgrpc.remote.outbox import Outbox
    from actorgrpc.supervision.supervisor import Supervisor
    from actorgrpc.v1 import mailbox_pb2, value_pb2

__all__ = ["Transport"]

log = logging.getLogger("actorgrpc")


class _Done:
    """An awaitable that is done at once: ``room()`` while there is room."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield from ()


_ROOM_NOW = _Done()


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeError:
        return False
    return True


class Transport:
    """One process's server, connections and local actors."""

    def __init__(
        self,
        settings: Settings,
        *,
        port: int = 0,
        arbiter_address: Address | None = None,
    ) -> None:
        #: The tree's settings (shared, frozen).
        self.settings = settings
        #: How the core reads and answers this transport's envelopes.
        self.codec = CODEC
        #: This process's actors by aid and name.
        self.registry = Registry()
        self._actors = self.registry.actors  # read on every send and receipt
        self.host = settings.host
        self.port = port
        #: Metadata every outgoing call carries.
        self.metadata = auth_metadata(settings.secret) if settings.secret else ()
        # Characters of target + action that an envelope without arguments may
        # carry and surely stay within the limit (UTF-8: 4 bytes a character;
        # the sender's reference and the rest take well under 1 KB): such
        # envelopes are not measured.
        self._short = max(0, (settings.max_message_size - 1024) // 4)
        self.arbiter_address = arbiter_address
        self.address: Address = (self.host, port)
        self.address_text = ""
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by start()
        self.thread_id = 0
        #: The actor that plain code in this process sends as.
        self.main_actor: LocalActor | None = None
        #: Resolves an aid or name to a proxy (set in the arbiter's process).
        self.resolver: Callable[[str], ActorProxy | None] | None = None
        #: Says how an ended actor ended, for errors (set in the arbiter's process).
        self.obituary: Callable[[str], str | None] = lambda target: None
        #: The same, once the actors at an address whose stream broke are seen
        #: to end, waiting up to a timeout (set in the arbiter's process).
        self.obituary_soon: Callable[[str, Address, float], Awaitable[str | None]] | None = None
        #: Told the address of every mailbox stream that breaks.
        self.on_connection_lost: Callable[[Address], None] = lambda address: None
        self.health: Any = None
        self._server: Any = None
        self._ids = itertools.count(1)
        self._connections: dict[Address, Connection] = {}
        self._supervisor_client: SupervisorClient | None = None
        # Names resolved to proxies, where the arbiter is another process.
        self._names = Names(self)
        # Senders' references in wire form, made once per actor that sends remotely.
        self._refs: dict[str, tuple[ActorProxy, value_pb2.ActorRef]] = {}
        self.server_outboxes: set[Outbox] = set()
        #: Set when the transport closes: server streams then end.
        self.closing: asyncio.Event = None  # type: ignore[assignment]  # set by start()

    # -- life -------------------------------------------------------------

    async def start(self, supervisor: Supervisor | None = None) -> None:
        """Serve on the running loop, which becomes this process's IO loop.

        With a ``supervisor`` (the arbiter's), the server also offers the
        Supervisor service.
        """
        self.loop = asyncio.get_running_loop()
        runs_here(self.loop)  # the IO thread runs nothing but its loop
        self._io_poster = poster_for(self.loop)
        self.closing = asyncio.Event()
        self.thread_id = threading.get_ident()
        self._server, port, self.health = await server.serve(self, supervisor)
        self.address_text = format_address((self.host, port))
        # One form of an address everywhere (an IPv6 host without brackets), as
        # proxies that come over the wire have it: it keys connections.
        self.address = parse_address(self.address_text)
        set_current_transport(self)

    async def close(self, grace: float = 1.0) -> None:
        """Flush replies, close connections and stop serving."""
        self.closing.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.server_outboxes and loop.time() < deadline:
            await asyncio.sleep(0.005)
        for conn in list(self._connections.values()):
            await conn.close()
        if self._supervisor_client is not None:
            await self._supervisor_client.close()
        if self.health is not None:
            await self.health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace)
        if current_transport() is self:
            set_current_transport(None)
        runs_here(None)

    async def actor_stopping(self, actor: LocalActor) -> None:
        """When this process's main actor begins to stop, health says NOT_SERVING."""
        if self.main_actor is actor and self.health is not None:
            await self.health.enter_graceful_shutdown()

    # -- threads ----------------------------------------------------------

    def in_io_thread(self) -> bool:
        """True on the IO loop's thread."""
        return threading.get_ident() == self.thread_id

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` soon on the IO loop, from any thread."""
        if self.in_io_thread():
            self.loop.call_soon(fn, *args)
        else:
            self._io_poster.post(fn, args)

    def on_io_loop(self, fn: ReplyCallback) -> ReplyCallback:
        """A thread-safe callback that runs ``fn`` on the IO loop."""

        def reply(env: mailbox_pb2.Envelope) -> None:
            if self.in_io_thread():
                fn(env)
            else:
                try:
                    self._io_poster.post(fn, (env,))
                except RuntimeError:  # the IO loop closed: the stream is gone
                    pass

        return reply

    # -- sending (any thread) ---------------------------------------------

    def request(
        self,
        sender: LocalActor | None,
        target: ActorProxy | str,
        action: str,
        args: Iterable[Any],
        kwargs: Mapping[str, Any],
        *,
        ack: bool = True,
        tagged: bool = False,
    ) -> Any:
        """Send ``action`` to ``target``; a future of the reply, or None without ack.

        Arguments are encoded here, in the caller's thread, so the receiver
        gets a copy of them as they were at the call.
        """
        actors = self._actors
        if isinstance(target, ActorProxy):
            dest: ActorProxy | str = target if type(target) is ActorProxy else target.proxy
            target_id = target.aid
            local = actors.get(target_id)
        elif isinstance(target, str) and target:
            dest = target_id = target
            local = actors.get(target) or self.registry.names.get(target)
        else:
            raise TypeError(f"send target must be an ActorProxy, an aid or a name, not {target!r}")
        if not isinstance(action, str) or not action:
            raise TypeError(f"send action must be a non-empty str, not {action!r}")
        try:
            env = Envelope(id=next(self._ids), kind=REQUEST, target=target_id, action=action)
        except (ValueError, UnicodeError):
            what = "target" if not _utf8(target_id) else "action"
            raise BadRequest(f"send: the {what} is not valid UTF-8 text") from None
        if chain := current_chain():  # sent by a command: the receiver learns its call chain
            env.chain = chain
        settings = self.settings
        allow_pickle = settings.allow_pickle
        seconds = call_timeout(settings.request_timeout)
        if seconds is not None:  # relative: the receiver counts from when it reads it
            env.timeout_ms = max(1, int(seconds * 1000))
        if args:
            wire.encode_args(args, env.args, allow_pickle=allow_pickle)
        if kwargs:
            wire.encode_kwargs(kwargs, env.kwargs, allow_pickle=allow_pickle)
        if args or kwargs or len(action) + len(target_id) > self._short:
            check_size(env, settings.max_message_size, "the message", action)
        on_io_thread = self.in_io_thread()
        gate = self._shut_gate(local, dest, target_id)
        if gate is not None:
            if on_io_thread:
                self._refuse(gate, target_id, ack)
            else:
                self._wait_for_room(gate, local, dest, target_id)
        running = running_loop()
        on_reply: ReplyCallback | None = None
        fut = None
        if ack:
            # The description is for plain code's timeouts only.
            what = f"from {target_id} to {action!r}" if running is None else ""
            fut, settle = new_future(
                target_id,
                what,
                running,
                tagged,
                seconds,
                timers=self.loop,  # never blocked by a command, as a thread actor's loop may be
                on_cancel=partial(self._cancel_request, local, dest, target_id, env.id),
            )

            def on_reply(reply: mailbox_pb2.Envelope) -> None:
                if reply.HasField("error"):
                    settle(False, error_from_pb(reply.error))
                    return
                try:
                    settle(True, wire.decode(reply.result, allow_pickle=allow_pickle))
                except ActorError as exc:
                    settle(False, exc)
        else:
            env.no_reply = True
        if local is None:
            if sender is not None:
                known = self._refs.get(sender.aid)
                if known is None or known[0] is not sender.proxy:
                    known = self._sender_ref(sender)
                env.sender.CopyFrom(known[1])
            if on_io_thread:
                # Remote: route() only queues it on a stream, never runs a command
                # inline, so do it now rather than a loop turn later.
                self.route(env, dest, on_reply)
            else:
                self._io_poster.post(self.route, (env, dest, on_reply))
        else:
            # A local target is reached from this thread, without the IO loop;
            # the sender travels as its proxy, not in the envelope.
            caller = sender.proxy if sender is not None else None
            local.deliver(env, on_reply or drop_reply, running, inline=False, caller=caller)
        return fut

    def _cancel_request(
        self, local: LocalActor | None, dest: ActorProxy | str, target: str, request_id: int
    ) -> None:
        """Cancel request ``request_id`` where it went: the same way, behind it (any thread)."""
        if local is not None:
            local.cancel_request(None, request_id)
            return
        env = Envelope(id=request_id, kind=CANCEL, target=target)
        try:
            self.call_soon(self.route, env, dest, None)
        except RuntimeError:  # the IO loop closed: so did the stream the request took
            pass

    def cancel(self, env: mailbox_pb2.Envelope, origin: object) -> None:
        """A cancel that came on a stream (``origin`` names it): tell the actor (IO loop).

        A request the arbiter forwarded went on under an id of its own: a
        cancel of it is not carried on (it would need the forwarding's ids).
        """
        target = env.target
        actor = self.registry.local(target) if target else self.main_actor
        if actor is not None:
            actor.cancel_request(origin, env.id)

    def _sender_ref(self, sender: LocalActor) -> tuple[ActorProxy, value_pb2.ActorRef]:
        """``sender``'s reference as envelopes carry it, made once per sending actor.

        Kept with the proxy it was made from: an actor's proxy is one object,
        so another actor with the same aid later is told apart by identity.
        """
        refs = self._refs
        if len(refs) > 4096:  # actors come and go: a cache, not a registry
            refs.clear()
        proxy = sender.proxy
        known = refs[sender.aid] = (proxy, wire.ref_from_proxy(proxy))
        return known

    def _shut_gate(
        self, local: LocalActor | None, dest: ActorProxy | str, target: str
    ) -> Gate | None:
        """The gate of the way to ``dest`` that is shut now, or None (any thread).

        The way is the local actor's mailbox, or the stream to its process and
        what that stream holds for ``target`` (see Connection.shut_gate). An
        actor writing to itself never waits on itself.
        """
        if local is not None:
            gate = local.gate
            return gate if gate.shut and not local.on_own_loop() else None
        conn = None
        names = self._names
        if names.gate.shut:  # too many remote sends wait behind a name's lookup
            return names.gate
        if isinstance(dest, ActorProxy):
            conn = self._connections.get(dest.address)
        elif self.resolver is None:
            # A name found already travels on its actor's stream; else via the arbiter.
            known = names.known(dest)
            address = known.address if known is not None else self.arbiter_address
            if address is not None:
                conn = self._connections.get(address)
        elif (proxy := self.resolver(dest)) is not None:
            conn = self._connections.get(proxy.address)
        return None if conn is None else conn.shut_gate(target)

    def _wait_for_room(
        self, gate: Gate, local: LocalActor | None, dest: ActorProxy | str, target: str
    ) -> None:
        """Block plain code while the way to ``dest`` is full (never on the IO loop).

        ``gate`` is the way's gate that is shut; ResourceExhausted after send_wait.
        """
        wait = self.settings.send_wait
        deadline = time.monotonic() + wait
        shut: Gate | None = gate
        while shut is not None:
            if not shut.wait(max(0.0, deadline - time.monotonic())):
                raise stayed_full(target, wait)
            shut = self._shut_gate(local, dest, target)

    def _refuse(self, gate: Gate, target: str, ack: bool) -> None:
        """Refuse a send on the IO loop, whose way to ``target`` is full (``gate``).

        The IO loop is what drains the way, so it must not block: a send with
        no reply fails at once; one with a reply may queue up to twice the
        limit, its future being the wait. Past that it fails too: memory
        stays bounded whatever the sender does.
        """
        if ack and gate.size < 2 * gate.limit:
            return
        raise ResourceExhausted(
            f"the mailbox of {target} is full ({gate.size} messages wait): a sender "
            "on the IO loop cannot wait for room; an async command can, with "
            f"`await actorgrpc.room({target!r})` before it sends"
        )

    def room(self, target: ActorProxy | str, timeout: float | None = None) -> Awaitable[None]:
        """Awaitable: done once the way to ``target`` has room; ResourceExhausted after ``timeout``.

        ``timeout`` defaults to the tree's ``send_wait``. Any loop.
        """
        if isinstance(target, ActorProxy):
            dest: ActorProxy | str = target
            target_id = target.aid
            local = self._actors.get(target_id)
        else:
            dest = target_id = target
            local = self.registry.local(target)
        gate = self._shut_gate(local, dest, target_id)
        if gate is None:
            return _ROOM_NOW
        wait = self.settings.send_wait if timeout is None else timeout
        return self._wait_room(gate, local, dest, target_id, wait)

    async def _wait_room(
        self, gate: Gate, local: LocalActor | None, dest: ActorProxy | str, target: str, wait: float
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        shut: Gate | None = gate
        while shut is not None:
            try:
                await asyncio.wait_for(shut.wait_async(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise stayed_full(target, wait) from None
            shut = self._shut_gate(local, dest, target)

    # -- routing (IO loop) ------------------------------------------------

    def route(
        self,
        env: mailbox_pb2.Envelope,
        dest: ActorProxy | str,
        on_reply: ReplyCallback | None,
    ) -> Gate | None:
        """Deliver ``env`` locally or send it on its way; the gate of the way it took."""
        reply = on_reply or drop_reply
        if isinstance(dest, ActorProxy):
            actor = self.registry.actors.get(dest.aid)
            if actor is not None:
                actor.deliver(env, reply, self.loop)
                return actor.gate
            if dest.address == self.address:
                reply(
                    make_error_reply(env.id, ActorNotAvailable(f"actor {dest.aid} is not running"))
                )
                return None
            if self._names.holding:  # behind a name's lookup, in order
                self._names.hold(env, dest, on_reply)
                return None
            return self.send_remote(dest.address, env, on_reply)
        actor = self.registry.local(dest)
        if actor is not None:
            actor.deliver(env, reply, self.loop)
            return actor.gate
        if self.resolver is not None:
            proxy = self.resolver(dest)
            if proxy is None or proxy.address == self.address:
                reply(make_error_reply(env.id, self._missing(dest)))
                return None
            return self.send_remote(proxy.address, env, on_reply)
        if self.arbiter_address is not None:
            return self._names.route(env, dest, on_reply)
        reply(make_error_reply(env.id, ActorNotFound(f"no actor {short(dest)} here")))
        return None

    def forward(
        self,
        env: mailbox_pb2.Envelope,
        dest: ActorProxy,
        on_reply: Callable[[mailbox_pb2.Envelope, bool], None] | None,
        caller: ActorProxy | None = None,
    ) -> None:
        """Send the request ``env``, as it came, on to ``dest`` (IO loop only; a pool's routing).

        A copy travels, addressed to ``dest`` under an id of this transport's
        (ids are per stream); ``env`` is left as it was, to be forwarded again.
        ``on_reply(reply, lost)`` runs on the IO loop with the reply under
        ``env``'s id; ``lost`` is True when ``dest`` did not answer: the way
        to it broke or it had gone, and the request may have run there or not.
        """
        forwarded = Envelope()
        forwarded.CopyFrom(env)
        forwarded.id = next(self._ids)
        forwarded.target = dest.aid
        if caller is not None and not env.HasField("sender"):
            forwarded.sender.CopyFrom(wire.ref_from_proxy(caller))
        if on_reply is None:
            forwarded.no_reply = True
            self.route(forwarded, dest, None)
            return
        original, aid = env.id, dest.aid
        local = self._actors.get(aid)
        conn = (
            self.connect(dest.address) if local is None and dest.address != self.address else None
        )

        def back(answer: mailbox_pb2.Envelope) -> None:
            lost = False
            if answer.HasField("error"):
                code = answer.error.code
                if code == ActorNotAvailable.code:
                    # Made here, not by dest, when its stream broke or it ended first.
                    if conn is not None:
                        lost = conn.closed
                    else:
                        lost = local is None or self._actors.get(aid) is not local
                else:
                    lost = answer.error.undelivered  # dest is no longer there
            answer.id = original
            on_reply(answer, lost)

        self.route(forwarded, dest, self.on_io_loop(back))

    def _missing(self, target: str) -> ActorError:
        ended = self.obituary(target)
        if ended is not None:
            return ActorNotAvailable(ended)
        return ActorNotFound(f"no actor {short(target)} in this tree")

    async def obituary_from_arbiter(
        self, target: str, address: Address, timeout: float
    ) -> str | None:
        """How ``target``, whose stream to ``address`` broke, ended, as the arbiter tells it.

        A process actor's ``obituary_soon``: the death records are the
        arbiter's. A ping by that aid or name goes via the arbiter, which
        answers for an ended actor with how it ended, having waited up to
        ``timeout`` itself for the death record: its answer is awaited up to
        twice that. None if the actor is alive or unknown there, or the
        arbiter does not answer.
        """
        arbiter = self.arbiter_address
        if arbiter is None or address == arbiter or not target:
            return None  # nobody else to ask
        answer: asyncio.Future[mailbox_pb2.Envelope] = self.loop.create_future()

        def on_reply(reply: mailbox_pb2.Envelope) -> None:
            if not answer.done():
                answer.set_result(reply)

        env = Envelope(id=next(self._ids), kind=REQUEST, target=target, action="ping")
        self.send_remote(arbiter, env, on_reply)
        try:
            reply = await asyncio.wait_for(answer, 2 * timeout)
        except TimeoutError:
            return None
        error = reply.error if reply.HasField("error") else None
        if error is None or error.code != ActorNotAvailable.code:
            return None
        # The arbiter's own "no reply from ..." says less than ours.
        return None if error.message.startswith(NO_REPLY) else error.message

    def send_remote(
        self, address: Address, env: mailbox_pb2.Envelope, on_reply: ReplyCallback | None
    ) -> Gate:
        """Send over the mailbox stream to ``address`` (opened on first use)."""
        return self.connect(address).send(env, on_reply)

    def connect(self, address: Address) -> Connection:
        """The mailbox stream to ``address``, opened if needed (IO loop only)."""
        conn = self._connections.get(address)
        if conn is not None and not conn.closed:
            return conn
        conn = self._connections[address] = Connection(self, address)
        return conn

    def drop_connection(self, conn: Connection, broken: bool = False) -> None:
        """Forget a closed connection; the next send opens a new one."""
        if self._connections.get(conn.peer) is conn:
            del self._connections[conn.peer]
        # Its actors may be gone: names found there are looked up again.
        self._names.forget_address(conn.peer)
        if broken:
            self.on_connection_lost(conn.peer)

    # -- receiving (IO loop) ----------------------------------------------

    def dispatch(
        self, env: mailbox_pb2.Envelope, reply: ReplyCallback, *, sized: bool = False
    ) -> Gate | None:
        """Route a request that arrived on this process's server; the gate of the way it took.

        ``sized``: the stream message that carried it was within the size limit,
        so ``env`` is too and need not be measured.
        """
        if env.kind not in (REQUEST, 0):
            reply(make_error_reply(env.id, BadRequest(f"expected a request, got kind {env.kind}")))
            return None
        if not sized:
            try:
                check_size(env, self.settings.max_message_size, "the message")
            except ResourceExhausted as exc:
                reply(make_error_reply(env.id, exc))
                return None
        target = env.target
        actor = self.registry.local(target) if target else self.main_actor
        if actor is not None:
            # The reply callback is the stream's own: it names the stream cancels come on.
            actor.deliver(env, reply, self.loop, origin=reply)
            return actor.gate
        if self.resolver is not None:
            try:
                # Forwarded envelopes travel on in batches, one level deeper:
                # refuse values deeper than any actorgrpc peer would send.
                for value in env.args:
                    wire.check_depth(value)
                for value in env.kwargs.values():
                    wire.check_depth(value)
            except BadRequest as exc:
                reply(make_error_reply(env.id, exc))
                return None
            # The arbiter forwards to actors it knows, under an id of its own.
            original = env.id
            forwarded = Envelope()
            forwarded.CopyFrom(env)
            forwarded.id = next(self._ids)

            def back(answer: mailbox_pb2.Envelope) -> None:
                answer.id = original
                reply(answer)

            return self.route(forwarded, target, None if env.no_reply else back)
        reply(not_here(env.id, target, self.address_text))
        return None

    # -- the supervisor ---------------------------------------------------

    def supervisor_client(self) -> SupervisorClient:
        """The client of the arbiter's Supervisor service (IO loop only)."""
        if self._supervisor_client is None:
            if self.arbiter_address is None:
                raise ActorNotFound("no arbiter address known in this process")
            self._supervisor_client = SupervisorClient(
                self.settings, self.metadata, format_address(self.arbiter_address)
            )
        return self._supervisor_client
