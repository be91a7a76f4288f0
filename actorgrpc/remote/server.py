"""The grpc.aio server of a process: Mailbox, Supervisor, health and reflection.

Glue only: requests are handed to the transport (Mailbox) or to the
Supervisor service (``supervisor_service.py``), and failures are mapped to
gRPC status codes here.

Backpressure on a Mailbox stream is per target: the server reads on while one
target is full, parks that target's envelopes (``_Parking``) and delivers
them, in order, once it has room. Callers that announce ``FLOW_METADATA``
are told "full" and "room" and hold their envelopes meanwhile; for others,
and for a caller that keeps writing, the parked envelopes are capped.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from actorgrpc.core.errors import BadRequest, ResourceExhausted, short
from actorgrpc.core.proxy import format_address
from actorgrpc.remote.connection import FLOW_METADATA, channel_options
from actorgrpc.remote.envelopes import (
    CANCEL,
    MAX_BATCH,
    Envelope,
    drop_reply,
    expand,
    make_error_reply,
)
from actorgrpc.remote.outbox import Outbox
from actorgrpc.remote.security import AuthInterceptor, TLSConfig
from actorgrpc.remote.status import ERROR_METADATA_KEY, STATUS_BY_CODE
from actorgrpc.remote.supervisor_service import SupervisorService
from actorgrpc.v1 import mailbox_pb2, mailbox_pb2_grpc, supervisor_pb2

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from actorgrpc.core._typing import ReplyCallback
    from actorgrpc.core.flow import Gate
    from actorgrpc.core.settings import Settings
    from actorgrpc.supervision.supervisor import Supervisor

__all__ = ["MailboxHost", "UnreadableMessage", "serve"]

log = logging.getLogger("actorgrpc")

_MAILBOX = mailbox_pb2.DESCRIPTOR.services_by_name["Mailbox"].full_name
_SUPERVISOR = supervisor_pb2.DESCRIPTOR.services_by_name["Supervisor"].full_name
_MAILBOX_STREAM = f"/{_MAILBOX}/Stream"
_FLOW = mailbox_pb2.ENVELOPE_KIND_FLOW
_FULL = mailbox_pb2.FLOW_STATE_FULL
_ROOM = mailbox_pb2.FLOW_STATE_ROOM


class MailboxHost(Protocol):
    """What the server needs of the transport it serves for."""

    settings: Settings
    host: str
    port: int
    #: Set when the transport closes: server streams then end.
    closing: asyncio.Event
    #: Outboxes of the server streams still open.
    server_outboxes: set[Outbox]

    def dispatch(
        self, env: mailbox_pb2.Envelope, reply: ReplyCallback, *, sized: bool = False
    ) -> Gate | None: ...
    def on_io_loop(self, fn: Callable[[mailbox_pb2.Envelope], None]) -> ReplyCallback: ...
    def cancel(self, env: mailbox_pb2.Envelope, origin: object) -> None: ...


class _Mailbox(mailbox_pb2_grpc.MailboxServicer):
    def __init__(self, transport: MailboxHost) -> None:
        self._transport = transport

    async def Stream(
        self,
        request_iterator: AsyncIterator[mailbox_pb2.Envelope],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        transport = self._transport
        outbox = Outbox(context.write)
        transport.server_outboxes.add(outbox)
        unanswered = _Unanswered()
        writer = asyncio.ensure_future(outbox.run())
        flow = FLOW_METADATA in tuple(context.invocation_metadata() or ())
        parking = _Parking(transport, outbox, unanswered, flow)
        # The stream's messages come unparsed (see _ParseRequests): read them
        # with context.read(), not through request_iterator's generator.
        reader = asyncio.ensure_future(self._read(context, outbox, unanswered, parking))
        closing = asyncio.ensure_future(transport.closing.wait())
        idle: asyncio.Future[None] | None = None
        try:
            # Until the peer is done writing and every request it made has its
            # reply, or this process closes: then flush and end the call with OK.
            await asyncio.wait((reader, closing), return_when=asyncio.FIRST_COMPLETED)
            if not closing.done():
                idle = asyncio.ensure_future(unanswered.idle())
                await asyncio.wait((idle, closing), return_when=asyncio.FIRST_COMPLETED)
            outbox.close()
            await asyncio.wait_for(asyncio.shield(writer), 2.0)
        except (asyncio.CancelledError, TimeoutError):
            pass
        else:
            if reader.done() and not reader.cancelled():
                error = reader.exception()
                if isinstance(error, UnreadableMessage):
                    # Answered what it could read; the status says why it stopped.
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        finally:
            parking.close()
            outbox.close()
            transport.server_outboxes.discard(outbox)
            # Every task of the call, also when the call itself was cancelled
            # while waiting (a pending task left behind is logged as destroyed).
            for task in (reader, closing, writer, idle):
                if task is not None:
                    task.cancel()

    async def _read(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        outbox: Outbox,
        unanswered: _Unanswered,
        parking: _Parking,
    ) -> None:
        transport = self._transport
        dispatch = transport.dispatch
        parse = mailbox_pb2.Envelope.FromString
        eof = grpc.aio.EOF
        limit = transport.settings.max_message_size
        reply = parking.reply
        lots = parking.lots
        count = 0
        try:
            while (raw := await context.read()) is not eof:
                count += 1
                message = _parse_nth(parse, raw, _MAILBOX_STREAM, count)
                sized = len(raw) <= limit
                # Replies that come at once leave together, at release().
                outbox.hold()
                try:
                    for env in expand(message):
                        if lots and (lot := lots.get(env.target)) is not None:
                            if env.kind == CANCEL:  # of a request maybe parked here
                                if parking.cancel(lot, env.id):
                                    continue
                            else:
                                parking.park(lot, env, sized)  # behind its target's others
                                continue
                        try:
                            if env.kind == CANCEL:  # of a request of this stream: no reply
                                transport.cancel(env, reply)
                                continue
                            if env.no_reply:
                                gate = dispatch(env, drop_reply, sized=sized)
                            else:
                                unanswered.add()
                                gate = dispatch(env, reply, sized=sized)
                        except Exception as exc:  # one envelope's, not the stream's
                            log.exception("request %d of a stream failed", env.id)
                            if not env.no_reply:
                                reply(make_error_reply(env.id, exc))
                            continue
                        if gate is not None and gate.shut:
                            # Full: park its next ones; read on for the others.
                            parking.open_lot(env.target, gate)
                finally:
                    outbox.release()
                if parking.overflowing is not None:
                    # A flow-aware caller wrote far past "full": read it no
                    # more (gRPC's flow control slows it) until its target
                    # takes some, rather than refuse and lose its no-acks.
                    await parking.overflowing
        except grpc.aio.AioRpcError:
            pass

    async def Send(
        self, request: mailbox_pb2.Envelope, context: grpc.aio.ServicerContext[Any, Any]
    ) -> mailbox_pb2.Envelope:
        answer: asyncio.Future[mailbox_pb2.Envelope] = asyncio.get_running_loop().create_future()
        transport = self._transport

        def settle(env: mailbox_pb2.Envelope) -> None:  # on the IO loop
            if not answer.done():
                answer.set_result(env)

        reply = transport.on_io_loop(settle)

        request.no_reply = False
        remaining = context.time_remaining()
        if remaining is not None and not request.timeout_ms:  # the call's gRPC deadline
            request.timeout_ms = max(1, int(remaining * 1000))
        if request.kind == mailbox_pb2.ENVELOPE_KIND_BATCH:
            reply(make_error_reply(request.id, BadRequest("Send takes one envelope, not a batch")))
        else:
            transport.dispatch(request, reply)
        env = await answer
        if env.HasField("error"):
            error = env.error
            context.set_trailing_metadata(((ERROR_METADATA_KEY, error.SerializeToString()),))
            await context.abort(
                STATUS_BY_CODE.get(error.code, grpc.StatusCode.UNKNOWN),
                f"{error.type}: {error.message}"[:1000],
            )
        return env


class UnreadableMessage(Exception):
    """A stream carried bytes that do not parse as its message type."""


def _parse_nth(parse: Any, raw: bytes, method: str, count: int) -> Any:
    """Message ``count`` of a ``method`` stream, parsed; UnreadableMessage if it does not."""
    try:
        return parse(raw)
    except Exception as exc:
        raise UnreadableMessage(
            f"{method}: message {count} of the stream is unreadable ({type(exc).__name__})"
        ) from None


class _ParseRequests(grpc.aio.ServerInterceptor):
    """Parses requests in our code, so that garbage gets INVALID_ARGUMENT.

    Left to gRPC, a request that does not parse is logged as an unexpected
    servicer error and answered UNKNOWN; on a stream it ends the call with
    no word about why.
    """

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        if details.method == _MAILBOX_STREAM:
            # It parses its own messages, read one by one with context.read():
            # two async generators fewer per message on the hottest path.
            return grpc.stream_stream_rpc_method_handler(
                handler.stream_stream, response_serializer=handler.response_serializer
            )
        parse = handler.request_deserializer
        method = details.method

        async def read_one(raw: bytes, context: Any) -> Any:
            try:
                return parse(raw)
            except Exception as exc:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"{method}: unreadable request ({type(exc).__name__})",
                )

        async def read_all(raws: AsyncIterator[bytes]) -> AsyncIterator[Any]:
            count = 0
            async for raw in raws:
                count += 1
                yield _parse_nth(parse, raw, method, count)

        if handler.request_streaming:
            inner = handler.stream_stream or handler.stream_unary

            async def streaming(raws: AsyncIterator[bytes], context: Any) -> Any:
                try:
                    result = inner(read_all(raws), context)
                    if inspect.isasyncgen(result):  # a servicer written as a generator
                        async for item in result:
                            await context.write(item)
                        return None
                    return await result
                except UnreadableMessage as exc:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

            make = (
                grpc.stream_stream_rpc_method_handler
                if handler.response_streaming
                else grpc.stream_unary_rpc_method_handler
            )
            return make(streaming, response_serializer=handler.response_serializer)
        if handler.response_streaming:
            inner_stream = handler.unary_stream

            async def unary_streaming(raw: bytes, context: Any) -> Any:
                request = await read_one(raw, context)
                result = inner_stream(request, context)
                if inspect.isasyncgen(result):
                    async for item in result:
                        await context.write(item)
                else:
                    await result

            return grpc.unary_stream_rpc_method_handler(
                unary_streaming, response_serializer=handler.response_serializer
            )
        inner_unary = handler.unary_unary

        async def unary(raw: bytes, context: Any) -> Any:
            return await inner_unary(await read_one(raw, context), context)

        return grpc.unary_unary_rpc_method_handler(
            unary, response_serializer=handler.response_serializer
        )


class _Lot:
    """Envelopes of one stream parked for one target, in order."""

    __slots__ = ("dropped", "envelopes", "gate", "waiter")

    def __init__(self, gate: Gate) -> None:
        #: The gate of the target's way, awaited by the lot's one waiter.
        self.gate = gate
        #: Each with whether the stream message that carried it was within the limit.
        self.envelopes: deque[tuple[mailbox_pb2.Envelope, bool]] = deque()
        #: Envelopes without reply refused past the cap (logged).
        self.dropped = 0
        self.waiter: asyncio.Task[None] | None = None


class _Parking:
    """Envelopes of one Mailbox stream waiting for targets that are full (IO loop only).

    When a delivery leaves its target's gate shut, the target's next
    envelopes on this stream are parked in a lot, in order, and one waiter
    per lot delivers them once the gate opens; envelopes for other targets
    go on. A flow-aware caller is told FULL when a lot opens and ROOM when it
    has drained. A lot holds up to ``cap`` envelopes. Past that, a caller
    that knows nothing of flow gets RESOURCE_EXHAUSTED replies (envelopes
    without reply are dropped, counted and logged); a flow-aware one, which
    may only lag a little behind "full", is not read on until its lots take
    some (refusing would lose its no-acks).
    """

    def __init__(
        self, transport: MailboxHost, outbox: Outbox, unanswered: _Unanswered, flow: bool
    ) -> None:
        self._transport = transport
        self._outbox = outbox
        self._unanswered = unanswered
        self._flow = flow
        #: Lots by the target their envelopes name (looked up for every envelope).
        self.lots: dict[str, _Lot] = {}
        #: Twice a mailbox and a batch: more than a flow-aware caller may
        #: still have under way when told "full" (its own queues are bounded).
        self.cap = 2 * transport.settings.mailbox_limit + MAX_BATCH
        #: Set while the reader must wait for the lots to take envelopes.
        self.overflowing: asyncio.Future[None] | None = None

        def answer(env: mailbox_pb2.Envelope) -> None:  # on the IO loop
            outbox.put(env)
            unanswered.done()

        #: The reply callback of the stream's requests (thread-safe).
        self.reply = transport.on_io_loop(answer)

    def open_lot(self, target: str, gate: Gate) -> None:
        """Park the next envelopes for ``target`` until ``gate`` opens."""
        lot = self.lots[target] = _Lot(gate)
        lot.waiter = asyncio.ensure_future(self._deliver(target, lot))
        if self._flow:
            self._outbox.put(Envelope(kind=_FLOW, target=target, flow=_FULL))

    def park(self, lot: _Lot, env: mailbox_pb2.Envelope, sized: bool) -> None:
        """Park ``env`` behind the others of its target, or refuse it past the cap."""
        envelopes = lot.envelopes
        if len(envelopes) < self.cap or self._flow:
            self._unanswered.add()  # the stream stays open until it is delivered
            envelopes.append((env, sized))
            if len(envelopes) >= self.cap and self._flow and self.overflowing is None:
                self.overflowing = asyncio.get_running_loop().create_future()
        elif not env.no_reply:
            self._unanswered.add()
            error = ResourceExhausted(
                f"the mailbox of {short(env.target)} is full and {len(envelopes)} more "
                "wait for it on this stream: slow down, or read the flow envelopes "
                "of Mailbox.Stream (docs/protocol.md)"
            )
            self.reply(make_error_reply(env.id, error))
        else:
            if not lot.dropped:
                log.warning(
                    "the mailbox of %s is full: no-reply envelopes past the %d parked "
                    "for it on a stream are dropped",
                    short(env.target),
                    self.cap,
                )
            lot.dropped += 1

    def cancel(self, lot: _Lot, request_id: int) -> bool:
        """Answer a parked request cancelled by its caller (it never starts); False if none."""
        for item in lot.envelopes:
            env = item[0]
            if env.id == request_id and env.kind != CANCEL:
                lot.envelopes.remove(item)
                if env.no_reply:
                    self._unanswered.done()
                else:
                    error = asyncio.CancelledError("the request was cancelled before it started")
                    self.reply(make_error_reply(env.id, error))
                return True
        return False

    async def _deliver(self, target: str, lot: _Lot) -> None:
        """Deliver the lot in order as its target has room; then drop it, and say so."""
        envelopes = lot.envelopes
        dispatch = self._transport.dispatch
        done = self._unanswered.done
        reply = self.reply
        outbox = self._outbox
        while True:
            await lot.gate.wait_async()
            outbox.hold()
            try:
                while envelopes:
                    env, sized = envelopes.popleft()
                    try:
                        if env.no_reply:
                            gate = dispatch(env, drop_reply, sized=sized)
                            done()
                        else:
                            gate = dispatch(env, reply, sized=sized)
                    except Exception as exc:  # one envelope's, not the stream's
                        log.exception("request %d of a stream failed", env.id)
                        if env.no_reply:
                            done()
                        else:
                            reply(make_error_reply(env.id, exc))
                        continue
                    if gate is not None and gate.shut:
                        lot.gate = gate  # full again (or another way): wait once more
                        break
            finally:
                outbox.release()
            overflowing = self.overflowing
            if overflowing is not None and all(
                len(other.envelopes) < self.cap for other in self.lots.values()
            ):
                self.overflowing = None
                overflowing.set_result(None)
            if not envelopes and not lot.gate.shut:
                break
        del self.lots[target]
        if lot.dropped:
            log.warning(
                "the mailbox of %s had room again: %d no-reply envelopes were dropped",
                short(target),
                lot.dropped,
            )
        if self._flow:
            outbox.put(Envelope(kind=_FLOW, target=target, flow=_ROOM))

    def close(self) -> None:
        """The stream ends: stop the waiters (what they hold is not delivered)."""
        for lot in self.lots.values():
            if lot.waiter is not None:
                lot.waiter.cancel()
        if self.overflowing is not None:
            self.overflowing.cancel()


class _Unanswered:
    """Requests of one stream still waiting for their replies (IO loop only)."""

    def __init__(self) -> None:
        self.count = 0
        # Made only once the stream waits to be idle: a plain count per request.
        self._idle: asyncio.Future[None] | None = None

    def add(self) -> None:
        self.count += 1

    def done(self) -> None:
        self.count -= 1
        if self.count <= 0 and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    async def idle(self) -> None:
        """Return once every request has its reply."""
        if self.count > 0:
            self._idle = asyncio.get_running_loop().create_future()
            await self._idle


async def serve(transport: MailboxHost, supervisor: Supervisor | None) -> tuple[Any, int, Any]:
    """Start the process's server; return it, its port and its health servicer."""
    settings = transport.settings
    interceptors: list[Any] = [AuthInterceptor(settings.secret)] if settings.secret else []
    interceptors.append(_ParseRequests())
    server = grpc.aio.server(
        options=channel_options(settings.max_message_size), interceptors=interceptors
    )
    mailbox_pb2_grpc.add_MailboxServicer_to_server(_Mailbox(transport), server)
    names = [_MAILBOX]
    if supervisor is not None:
        SupervisorService(supervisor).add_to(server)
        names.append(_SUPERVISOR)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names.append(health_pb2.DESCRIPTOR.services_by_name["Health"].full_name)
    names.append(reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    where = format_address((transport.host, transport.port))  # an IPv6 host in brackets
    if isinstance(settings.tls, TLSConfig):
        port = server.add_secure_port(where, settings.tls.server_credentials())
    else:
        port = server.add_insecure_port(where)
    if port == 0:
        raise OSError(f"cannot listen on {where}")
    await server.start()
    for name in ("", *names[:-2]):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer
