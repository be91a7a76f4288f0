"""The node: one process's share of an actor tree.

There is one node per process. It owns the IO loop, on one thread, and with it
every grpc.aio object of the process (the server and all channels), because a
grpc.aio object belongs to the loop that made it and several loops in one
process wake each other on every event. Actors on other threads (thread
actors) hand envelopes to the IO loop and receive them on their own loops.

Routing: an ActorProxy names an address, so envelopes go straight to it; a bare
aid or name is resolved by the arbiter, which holds the tree. In a child
process such envelopes travel to the arbiter, which forwards them, so a
sender's order is kept whatever it names its target by.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from actorgrpc import wire
from actorgrpc.consts import DEFAULT_MAX_MESSAGE_SIZE
from actorgrpc.errors import (
    ActorError,
    ActorNotAvailable,
    ActorNotFound,
    BadRequest,
    ResourceExhausted,
    error_from_pb,
    short,
)
from actorgrpc.flow import DEFAULT_MAILBOX_LIMIT, Gate
from actorgrpc.futures import new_future, running_loop, runs_here
from actorgrpc.handoff import poster_for
from actorgrpc.mailbox import REQUEST, Envelope, Outbox, check_size, make_error_reply
from actorgrpc.proxy import ActorProxy
from actorgrpc.security import TLSConfig, auth_metadata

if TYPE_CHECKING:
    from actorgrpc._typing import Address, ReplyCallback
    from actorgrpc.actor import Actor
    from actorgrpc.client import Connection, SupervisorClient
    from actorgrpc.v1 import mailbox_pb2

__all__ = ["Node", "current_node", "drop_reply"]

log = logging.getLogger("actorgrpc")

_node: Node | None = None


def current_node() -> Node | None:
    """This process's node, or None when no actor runs here."""
    return _node


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeError:
        return False
    return True


def drop_reply(env: mailbox_pb2.Envelope) -> None:
    """The reply callback of requests sent without ack: only errors are logged."""
    if env.HasField("error"):
        log.warning(
            "error in a command sent without ack: %s: %s", env.error.type, env.error.message
        )


class Node:
    """One process's server, connections and local actors."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_pickle: bool = True,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        arbiter_address: Address | None = None,
        secret: str | None = None,
        tls: TLSConfig | None = None,
        mailbox_limit: int = DEFAULT_MAILBOX_LIMIT,
    ) -> None:
        self.host = host
        #: Requests queued for one actor, or one outgoing stream, before senders wait.
        self.mailbox_limit = mailbox_limit
        #: Seconds plain code waits for room in a full mailbox before failing.
        self.send_wait = 30.0
        #: The tree's secret (None: calls are not checked) and TLS settings.
        self.secret = secret
        self.tls = tls
        #: Metadata every outgoing call carries.
        self.metadata = auth_metadata(secret) if secret else ()
        self.port = port
        self.allow_pickle = allow_pickle
        self.max_message_size = max_message_size
        # Characters of target + action that an envelope without arguments may
        # carry and surely stay within the limit (UTF-8: 4 bytes a character;
        # the sender's reference and the rest take well under 1 KB): such
        # envelopes are not measured.
        self._short = max(0, (max_message_size - 1024) // 4)
        self.arbiter_address = arbiter_address
        self.address: Address = (host, port)
        self.address_text = ""
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by start()
        self.thread_id = 0
        #: Local actors by aid, and by name.
        self.actors: dict[str, Actor] = {}
        self.names: dict[str, Actor] = {}
        #: The actor that plain code in this process sends as.
        self.main_actor: Actor | None = None
        #: Resolves an aid or name to a proxy (set in the arbiter's process).
        self.resolver: Callable[[str], ActorProxy | None] | None = None
        #: Says how an ended actor ended, for errors (set in the arbiter's process).
        self.obituary: Callable[[str], str | None] = lambda target: None
        #: Told the address of every mailbox stream that breaks.
        self.on_connection_lost: Callable[[Address], None] = lambda address: None
        self.health: Any = None
        self._server: Any = None
        self._ids = itertools.count(1)
        self._connections: dict[Address, Connection] = {}
        self._supervisor_client: SupervisorClient | None = None
        self.server_outboxes: set[Outbox] = set()
        #: Set when the node closes: server streams then end.
        self.closing: asyncio.Event = None  # type: ignore[assignment]  # set by start()

    # -- life -------------------------------------------------------------

    async def start(self, supervisor: Any = None) -> None:
        """Serve on the running loop, which becomes this process's IO loop."""
        from actorgrpc import server

        global _node
        self.loop = asyncio.get_running_loop()
        runs_here(self.loop)  # the IO thread runs nothing but its loop
        self._io_poster = poster_for(self.loop)
        self.closing = asyncio.Event()
        self.thread_id = threading.get_ident()
        self._server, port, self.health = await server.serve(self, supervisor)
        self.address_text = wire.format_address((self.host, port))
        # One form of an address everywhere (an IPv6 host without brackets), as
        # proxies that come over the wire have it: it keys connections.
        self.address = wire.parse_address(self.address_text)
        _node = self

    async def close(self, grace: float = 1.0) -> None:
        """Flush replies, close connections and stop serving."""
        global _node
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
        if _node is self:
            _node = None
        runs_here(None)

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

    # -- local actors -----------------------------------------------------

    def register(self, actor: Actor) -> None:
        """Make ``actor`` reachable here by aid and name."""
        self.actors[actor.aid] = actor
        if actor.name:
            self.names[actor.name] = actor

    def unregister(self, actor: Actor) -> None:
        """Forget ``actor``."""
        if self.actors.get(actor.aid) is actor:
            del self.actors[actor.aid]
        if actor.name and self.names.get(actor.name) is actor:
            del self.names[actor.name]

    def local(self, target: str) -> Actor | None:
        """The local actor with that aid or name."""
        return self.actors.get(target) or self.names.get(target)

    # -- sending (any thread) ---------------------------------------------

    def request(
        self,
        sender: Actor | None,
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
        if isinstance(target, ActorProxy):
            dest: ActorProxy | str = target if type(target) is ActorProxy else target.proxy
            target_id = target.aid
            local = self.actors.get(target_id)
        elif isinstance(target, str) and target:
            dest = target_id = target
            local = self.local(target)
        else:
            raise TypeError(f"send target must be an ActorProxy, an aid or a name, not {target!r}")
        if not isinstance(action, str) or not action:
            raise TypeError(f"send action must be a non-empty str, not {action!r}")
        try:
            env = Envelope(id=next(self._ids), kind=REQUEST, target=target_id, action=action)
        except (ValueError, UnicodeError):
            what = "target" if not _utf8(target_id) else "action"
            raise BadRequest(f"send: the {what} is not valid UTF-8 text") from None
        allow_pickle = self.allow_pickle
        if args:
            wire.encode_args(args, env.args, allow_pickle=allow_pickle)
        if kwargs:
            wire.encode_kwargs(kwargs, env.kwargs, allow_pickle=allow_pickle)
        if args or kwargs or len(action) + len(target_id) > self._short:
            check_size(env, self.max_message_size, "the message", action)
        on_io_thread = self.in_io_thread()
        if not on_io_thread:
            self._wait_for_room(local, dest, target_id)
        running = running_loop()
        on_reply: ReplyCallback | None = None
        fut = None
        if ack:
            # The description is for plain code's timeouts only.
            what = f"from {target_id} to {action!r}" if running is None else ""
            fut, settle = new_future(target_id, what, running, tagged)

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
                env.sender.CopyFrom(sender._ref)
            if on_io_thread:
                # Remote: route() only queues it on a stream, never runs a command
                # inline, so do it now rather than a loop turn later.
                self.route(env, dest, on_reply)
            else:
                self._io_poster.post(self.route, (env, dest, on_reply))
        else:
            # A local target is reached from this thread, without the IO loop;
            # the sender travels as its proxy, not in the envelope.
            caller = sender._proxy if sender is not None else None
            self.deliver(local, env, on_reply, running, inline=False, caller=caller)
        return fut

    def _wait_for_room(self, local: Actor | None, dest: ActorProxy | str, target: str) -> None:
        """Block plain code while the way to ``dest`` is full (never called on the IO loop)."""
        if local is not None:
            gate = local._gate
        else:
            conn = None
            if isinstance(dest, ActorProxy):
                conn = self._connections.get(dest.address)
            elif self.resolver is None and self.arbiter_address is not None:
                conn = self._connections.get(self.arbiter_address)
            if conn is None:
                return
            gate = conn.gate
        if gate.is_open():
            return
        if local is not None and local._on_own_loop():
            return  # an actor writing to itself must not wait on itself
        if not gate.wait(self.send_wait):
            raise ResourceExhausted(
                f"the mailbox of {target} stayed full for {self.send_wait:g}s: it reads "
                "slower than it is written to"
            )

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
            actor = self.actors.get(dest.aid)
            if actor is not None:
                self.deliver(actor, env, reply, self.loop)
                return actor._gate
            if dest.address == self.address:
                reply(
                    make_error_reply(env.id, ActorNotAvailable(f"actor {dest.aid} is not running"))
                )
                return None
            return self.send_remote(dest.address, env, on_reply)
        actor = self.local(dest)
        if actor is not None:
            self.deliver(actor, env, reply, self.loop)
            return actor._gate
        if self.resolver is not None:
            proxy = self.resolver(dest)
            if proxy is None or proxy.address == self.address:
                reply(make_error_reply(env.id, self._missing(dest)))
                return None
            return self.send_remote(proxy.address, env, on_reply)
        if self.arbiter_address is not None:
            return self.send_remote(self.arbiter_address, env, on_reply)
        reply(make_error_reply(env.id, ActorNotFound(f"no actor {short(dest)} here")))
        return None

    def _missing(self, target: str) -> ActorError:
        ended = self.obituary(target)
        if ended is not None:
            return ActorNotAvailable(ended)
        return ActorNotFound(f"no actor {short(target)} in this tree")

    def deliver(
        self,
        actor: Actor,
        env: mailbox_pb2.Envelope,
        on_reply: ReplyCallback | None,
        running: asyncio.AbstractEventLoop | None,
        *,
        inline: bool = True,
        caller: ActorProxy | None = None,
    ) -> None:
        """Hand ``env`` to a local actor, on its own loop, from any thread.

        ``running`` is the caller's running loop (``running_loop()``; the IO
        loop for routing code). ``inline`` runs the command at once when that
        is the actor's loop: right for routing code, never for a sender (it
        would run inside send()). ``caller`` is a local sender's proxy
        (else the envelope's ``sender``, if any, is the caller).
        """
        reply = on_reply or drop_reply
        loop = actor.loop
        if loop is None:
            reply(make_error_reply(env.id, ActorNotAvailable(f"actor {actor.aid} is not running")))
            return
        if running is loop:
            if inline:
                actor._receive(env, reply, caller)
            else:
                loop.call_soon(actor._receive, env, reply, caller)
            return
        tracked = actor._track(env, reply)
        try:
            actor._poster.post(actor._receive, (env, tracked, caller))
        except RuntimeError:
            actor._fail_inflight("is not running")

    def send_remote(
        self, address: Address, env: mailbox_pb2.Envelope, on_reply: ReplyCallback | None
    ) -> Gate:
        """Send over the mailbox stream to ``address`` (opened on first use)."""
        conn = self.connection(address)
        conn.send(env, on_reply)
        return conn.gate

    def connection(self, address: Address) -> Connection:
        """The mailbox stream to ``address``, opened if needed (IO loop only)."""
        conn = self._connections.get(address)
        if conn is not None and not conn.closed:
            return conn
        from actorgrpc.client import Connection

        conn = self._connections[address] = Connection(self, address)
        return conn

    def drop_connection(self, conn: Connection, broken: bool = False) -> None:
        """Forget a closed connection; the next send opens a new one."""
        if self._connections.get(conn.peer) is conn:
            del self._connections[conn.peer]
        if broken:
            self.on_connection_lost(conn.peer)

    # -- receiving (IO loop) ----------------------------------------------

    def dispatch(
        self, env: mailbox_pb2.Envelope, reply: ReplyCallback, *, sized: bool = False
    ) -> Gate | None:
        """Route a request that arrived on this node's server; the gate of the way it took.

        ``sized``: the stream message that carried it was within the size limit,
        so ``env`` is too and need not be measured.
        """
        if env.kind not in (REQUEST, 0):
            reply(make_error_reply(env.id, BadRequest(f"expected a request, got kind {env.kind}")))
            return None
        if not sized:
            try:
                check_size(env, self.max_message_size, "the message")
            except ResourceExhausted as exc:
                reply(make_error_reply(env.id, exc))
                return None
        target = env.target
        actor = self.local(target) if target else self.main_actor
        if actor is not None:
            self.deliver(actor, env, reply, self.loop)
            return actor._gate
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
        reply(
            make_error_reply(
                env.id, ActorNotFound(f"no actor {short(target)} at {self.address_text}")
            )
        )
        return None

    # -- the supervisor ---------------------------------------------------

    def supervisor_client(self) -> SupervisorClient:
        """The client of the arbiter's Supervisor service (IO loop only)."""
        from actorgrpc.client import SupervisorClient

        if self._supervisor_client is None:
            if self.arbiter_address is None:
                raise ActorNotFound("no arbiter address known in this process")
            self._supervisor_client = SupervisorClient(
                self, wire.format_address(self.arbiter_address)
            )
        return self._supervisor_client
