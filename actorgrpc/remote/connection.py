"""Connections: one long-lived Mailbox stream from this process to a peer, and its channel.

IO loop only: every object here belongs to the transport's IO loop (the
gates are read from any thread).

Backpressure is per target: a connection announces that it reads flow
envelopes (``FLOW_METADATA``); when the peer says a target is full, the
connection holds that target's further envelopes, in order, until the peer
says it has room, while envelopes to other targets go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import grpc

from actorgrpc.core.errors import ActorNotAvailable, short
from actorgrpc.core.flow import Gate
from actorgrpc.core.proxy import format_address
from actorgrpc.remote.envelopes import expand, make_error_reply
from actorgrpc.remote.outbox import Outbox
from actorgrpc.remote.security import TLSConfig
from actorgrpc.v1 import mailbox_pb2, mailbox_pb2_grpc

if TYPE_CHECKING:
    from actorgrpc.core._typing import Address, ReplyCallback
    from actorgrpc.core.settings import Settings

__all__ = [
    "FLOW_METADATA",
    "NO_REPLY",
    "OBITUARY_WAIT",
    "Connection",
    "ConnectionOwner",
    "channel_options",
    "open_channel",
]

log = logging.getLogger("actorgrpc")

#: Call metadata of a Mailbox.Stream whose caller reads ENVELOPE_KIND_FLOW
#: envelopes; the server sends them to no other caller.
FLOW_METADATA = ("actorgrpc-flow", "1")
_FLOW = mailbox_pb2.ENVELOPE_KIND_FLOW
_FULL = mailbox_pb2.FLOW_STATE_FULL
_ROOM = mailbox_pb2.FLOW_STATE_ROOM

#: Seconds the requests of a broken stream wait, at most, for their actor's
#: death record, so that their error says how it ended (the arbiter's process).
OBITUARY_WAIT = 1.0

#: How the error of a request whose stream broke begins, when how its actor
#: ended is not known.
NO_REPLY = "no reply from"

# A request waiting for its reply: the callback and the target it was sent to.
_Pending = tuple["ReplyCallback", str]


def channel_options(max_message_size: int) -> list[tuple[str, Any]]:
    """Options for every channel and server of a process."""
    # Batches carry up to ~1 MiB on top of one maximal envelope.
    limit = max_message_size + 2 * 1024 * 1024
    return [
        ("grpc.max_send_message_length", limit),
        ("grpc.max_receive_message_length", limit),
        # Local peers: never let the channel idle into reconnect delays.
        ("grpc.enable_retries", 0),
        # Never share a port with another server (gRPC allows it by default).
        ("grpc.so_reuseport", 0),
        # Streams one connection may have open at once (servers).
        ("grpc.max_concurrent_streams", 256),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
    ]


def open_channel(settings: Settings, address: str) -> grpc.aio.Channel:
    """A channel to ``address``, with the tree's TLS if any."""
    options = channel_options(settings.max_message_size)
    tls = settings.tls
    if isinstance(tls, TLSConfig):
        return grpc.aio.secure_channel(address, tls.channel_credentials(), options=options)
    return grpc.aio.insecure_channel(address, options=options)


class ConnectionOwner(Protocol):
    """What a connection needs of the transport that opened it."""

    settings: Settings
    #: Metadata every outgoing call carries (the secret).
    metadata: tuple[tuple[str, str], ...]

    #: How the ended actor with that aid or name ended, or None.
    obituary: Callable[[str], str | None]
    #: The same, once the actors at an address whose stream broke are seen to
    #: end (waiting up to a timeout); None where no death record is kept.
    obituary_soon: Callable[[str, Address, float], Awaitable[str | None]] | None

    def drop_connection(self, conn: Connection, broken: bool = False) -> None: ...


class _Held:
    """Envelopes for a target the peer said is full, waiting for room, in order."""

    __slots__ = ("envelopes", "gate")

    def __init__(self, limit: int) -> None:
        self.envelopes: deque[mailbox_pb2.Envelope] = deque()
        #: Closed while ``limit`` envelopes or more wait: senders then wait too.
        self.gate = Gate(limit)


class Connection:
    """One long-lived Mailbox.Stream to another process, with its pending replies."""

    def __init__(self, owner: ConnectionOwner, peer: Address) -> None:
        #: The peer's address, and as text.
        self.peer = peer
        self.address = format_address(peer)
        self.closed = False
        self._owner = owner
        self._pending: dict[int, _Pending] = {}
        settings = owner.settings
        self._channel = open_channel(settings, self.address)
        self._call = mailbox_pb2_grpc.MailboxStub(self._channel).Stream(
            metadata=(*owner.metadata, FLOW_METADATA)
        )
        self._outbox = Outbox(self._call.write, Gate(settings.mailbox_limit))
        #: Closed while this stream's queue is full.
        self.gate = self._outbox.gate
        # Targets the peer said are full, by the target an envelope names.
        self._held: dict[str, _Held] = {}
        self._writer = asyncio.ensure_future(self._write_all())
        self._reader = asyncio.ensure_future(self._read_all())

    def send(self, env: mailbox_pb2.Envelope, on_reply: ReplyCallback | None) -> Gate:
        """Queue ``env``; ``on_reply`` gets the reply, or an error if the peer goes.

        Returns the gate of the way ``env`` took: its target's while the peer
        says that target is full (``env`` is held until it has room), else the
        stream's.
        """
        if on_reply is not None:
            self._pending[env.id] = (on_reply, env.target)
        if self._held:
            held = self._held.get(env.target)
            if held is not None:
                held.envelopes.append(env)
                held.gate.update(len(held.envelopes))
                return held.gate
        if not self._outbox.put(env):
            if self.closed:
                self._fail(env.id, "the connection is closed")
            else:
                # The outbox ended with its stream before the writer said so:
                # the stream is broken, for this request as for the others
                # (a pool re-sends such requests; they reached no actor).
                self._broken("its stream broke")
        return self.gate

    def shut_gate(self, target: str) -> Gate | None:
        """The gate that stops senders to ``target`` now, or None while it has room (any thread)."""
        held = self._held.get(target) if self._held else None
        if held is not None and held.gate.shut:
            return held.gate
        gate = self.gate
        return gate if gate.shut else None

    def _flow(self, env: mailbox_pb2.Envelope) -> None:
        """The peer says whether ``env.target`` is full."""
        target = env.target
        if env.flow == _FULL:
            if target not in self._held:
                self._held[target] = _Held(self._owner.settings.mailbox_limit)
        elif env.flow == _ROOM:
            held = self._held.pop(target, None)
            if held is not None:
                self._release(held)

    def _release(self, held: _Held) -> None:
        """Send what was held for a target, in order, and let its senders go."""
        put = self._outbox.put
        for env in held.envelopes:
            if not put(env):
                self._fail(env.id, "the connection is closed")
        held.envelopes.clear()
        held.gate.update(0)

    async def _write_all(self) -> None:
        try:
            await self._outbox.run()
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
            log.debug("stream to %s: write failed: %s", self.address, exc)
        except asyncio.CancelledError:
            pass
        finally:
            if not self.closed:
                self._broken("its stream broke")

    async def _read_all(self) -> None:
        reason = "it closed the stream"
        read, eof = self._call.read, grpc.aio.EOF
        peer = self.address
        pending = self._pending
        try:
            # read() rather than `async for`: no async generator per message.
            while (message := await read()) is not eof:
                for env in expand(message):
                    waiting = pending.pop(env.id, None)
                    if waiting is not None:
                        try:
                            waiting[0](env)
                        except Exception:  # one reply's, not the stream's
                            log.exception("reply %d from %s: its callback failed", env.id, peer)
                    elif env.kind == _FLOW:  # id 0: never a request's
                        self._flow(env)
                if not pending:
                    # No other reply is due: let the senders just woken run
                    # (and write) before the next read is set up, which
                    # would otherwise delay them.
                    await asyncio.sleep(0)
        except grpc.aio.AioRpcError as exc:
            reason = f"{exc.code().name}: {exc.details()}"
        except asyncio.CancelledError:
            reason = "the connection was closed"
        self._broken(reason)

    def _broken(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self._outbox.close()
        self._owner.drop_connection(self, broken=True)
        for held in self._held.values():  # their requests fail below, with the rest
            held.gate.update(0)
        self._held.clear()
        self._fail_all(reason, wait=True)
        if not self._reader.done():
            self._reader.cancel()
        self._closing = asyncio.ensure_future(self._channel.close(None))

    def _fail_all(self, reason: str, wait: bool = False) -> None:
        """Fail every pending request; with ``wait``, once their actors' ends are known."""
        failed = list(self._pending.items())
        self._pending.clear()
        soon = self._owner.obituary_soon
        if wait and soon is not None and failed:
            # The stream broke, most likely as its process ended, which the
            # runner sees about now: the death record will say how.
            self._failing = asyncio.ensure_future(self._fail_later(failed, reason, soon))
        else:
            self._answer(failed, reason, self._owner.obituary)

    def _fail(self, request_id: int, reason: str) -> None:
        waiting = self._pending.pop(request_id, None)
        if waiting is not None:
            self._answer([(request_id, waiting)], reason, self._owner.obituary)

    async def _fail_later(
        self,
        failed: list[tuple[int, _Pending]],
        reason: str,
        soon: Callable[[str, Address, float], Awaitable[str | None]],
    ) -> None:
        targets = list({target for _, (_, target) in failed})
        told: dict[str, str | None] = {}
        try:
            found = await asyncio.gather(*(soon(t, self.peer, OBITUARY_WAIT) for t in targets))
            told = dict(zip(targets, found, strict=True))
        except Exception:  # they fail all the same, saying what is known
            log.exception("requests to %s: how their actors ended is not known", self.address)
        finally:  # cancelled too (the loop ends): nobody is left waiting
            self._answer(failed, reason, told.get)

    def _answer(
        self,
        failed: list[tuple[int, _Pending]],
        reason: str,
        obituary: Callable[[str], str | None],
    ) -> None:
        """Answer each request with ActorNotAvailable: how its actor ended, if known."""
        for request_id, (callback, target) in failed:
            told = obituary(target) if target else None
            if told is None:
                who = f"actor {short(target)}" if target else "the actor"
                told = f"{NO_REPLY} {who} at {self.address}: {reason}"
            try:
                callback(make_error_reply(request_id, ActorNotAvailable(told)))
            except Exception:  # one request's, not the others'
                log.exception("request %d to %s: its callback failed", request_id, self.address)

    async def close(self) -> None:
        """Flush what is queued, end the stream, close the channel."""
        if self.closed:
            return
        self.closed = True
        # What is held goes too: the peer keeps it for its target.
        held, self._held = self._held, {}
        for one in held.values():
            self._release(one)
        self._outbox.close()
        with contextlib.suppress(asyncio.TimeoutError, Exception):
            await asyncio.wait_for(asyncio.shield(self._writer), 1.0)
        with contextlib.suppress(Exception):
            await self._call.done_writing()
        self._owner.drop_connection(self)
        self._writer.cancel()
        self._reader.cancel()
        self._fail_all("the connection was closed")
        await self._channel.close(None)
