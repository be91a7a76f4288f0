"""The Supervisor service: the wire face of the arbiter's supervisor.

It turns Handshake, Notify and Lookup requests into the supervisor's plain
data and back, and builds the tree's Info from the supervisor's records.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import grpc

from actorgrpc.core.actor import Actor
from actorgrpc.core.consts import ACTOR_STATES
from actorgrpc.core.errors import ActorError, ActorNotFound, short
from actorgrpc.remote import wire
from actorgrpc.remote.envelopes import EncodedInfo
from actorgrpc.remote.status import STATUS_BY_CODE
from actorgrpc.remote.supervisor_messages import handshake_from_pb, notice_from_pb
from actorgrpc.supervision.managed import ActorProxyMonitor
from actorgrpc.supervision.supervisor import Supervisor
from actorgrpc.v1 import supervisor_pb2, supervisor_pb2_grpc

__all__ = ["HANDSHAKES_PER_SECOND", "SupervisorService", "tree_info"]

#: Handshakes one connection may make in a second.
HANDSHAKES_PER_SECOND = 20


def summary(entry: ActorProxyMonitor, now: float) -> supervisor_pb2.ActorSummary:
    """One actor as the arbiter last saw it."""
    packed = entry.packed_info
    if isinstance(packed, EncodedInfo):
        raw: Any = packed.value
    else:  # info set in Python: encode it once here
        raw = wire.encode(entry.info, allow_pickle=False) if entry.info else None
    # Read the few typed fields straight off the Value: decoding and
    # re-encoding every actor's info made Info slow on big trees.
    actor = _entries(raw, "actor")
    system = _entries(raw, "system")
    out = supervisor_pb2.ActorSummary(
        ref=wire.ref_from_proxy(entry.proxy),
        kind=entry.kind,
        language=entry.language,
        pid=entry.pid,
        state=entry.state,
        info_state=ACTOR_STATES.DESCRIPTION.get(entry.state, "unknown"),
        # From the handshake: an idle actor's last info may be minutes old.
        uptime=round(now - entry.started, 3) if entry.started else _number(actor, "uptime"),
        memory_rss=int(_number(system, "memory_rss")),
        commands_handled=int(_number(actor, "commands_handled")),
        last_notified=round(now - entry.notified, 3) if entry.notified else 0.0,
        supervisor=entry.supervisor,
    )
    if raw is not None:
        out.info.CopyFrom(raw)
    return out


def tree_info(supervisor: Supervisor) -> supervisor_pb2.InfoResponse:
    """The arbiter and every live actor, plus death records."""
    now = time.time()
    arb = supervisor.arbiter
    # The arbiter's own info, without the actors listed after it anyway.
    arb_info = Actor.info(arb)
    monitors_info = getattr(arb, "monitors_info", None)
    if monitors_info is not None:
        arb_info["monitors"] = monitors_info()
    me = supervisor_pb2.ActorSummary(
        ref=wire.ref_from_proxy(arb.proxy),
        kind="arbiter",
        language="python",
        pid=arb_info["system"]["pid"],
        state=arb_info["actor"]["state"],
        info_state=arb_info["actor"]["info_state"],
        uptime=arb_info["actor"]["uptime"],
        memory_rss=arb_info["system"]["memory_rss"],
        commands_handled=arb_info["actor"]["commands_handled"],
    )
    me.info.CopyFrom(wire.encode(arb_info, allow_pickle=False))
    out = supervisor_pb2.InfoResponse(actors=[me])
    for entry in list(supervisor.managed.values()):
        out.actors.append(summary(entry, now))
    out.terminated.CopyFrom(wire.encode(dict(supervisor.terminated), allow_pickle=False))
    return out


def _entries(value: Any, key: str) -> Any:
    """The map under ``key`` of a map Value, or None."""
    if value is None or value.WhichOneof("kind") != "map_value":
        return None
    inner = value.map_value.fields.get(key)
    if inner is None or inner.WhichOneof("kind") != "map_value":
        return None
    return inner.map_value.fields


def _number(fields: Any, key: str) -> float:
    """A number from a map Value's fields, 0 when absent or not a number."""
    if fields is None or key not in fields:
        return 0.0
    value = fields[key]
    kind = value.WhichOneof("kind")
    return float(getattr(value, kind)) if kind in ("int_value", "double_value") else 0.0


class SupervisorService(supervisor_pb2_grpc.SupervisorServicer):
    """The ``actorgrpc.v1.Supervisor`` servicer of the arbiter's server."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._sup = supervisor
        # Handshakes per connection in the last second: a peer hammering the
        # arbiter is refused instead of starving the others.
        self._handshakes: dict[str, deque[float]] = {}

    def add_to(self, server: grpc.aio.Server) -> None:
        """Serve it on ``server``."""
        supervisor_pb2_grpc.add_SupervisorServicer_to_server(self, server)

    async def _guard(self, context: grpc.aio.ServicerContext[Any, Any], fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except ActorError as exc:
            await context.abort(STATUS_BY_CODE.get(exc.code, grpc.StatusCode.UNKNOWN), str(exc))

    async def Handshake(
        self,
        request: supervisor_pb2.HandshakeRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> supervisor_pb2.HandshakeResponse:
        now = time.monotonic()
        recent = self._handshakes.setdefault(context.peer(), deque())
        while recent and recent[0] < now - 1.0:
            recent.popleft()
        if len(recent) >= HANDSHAKES_PER_SECOND:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"more than {HANDSHAKES_PER_SECOND} handshakes a second from this peer",
            )
        recent.append(now)
        if len(self._handshakes) > 1024:  # forget idle peers
            self._handshakes = {p: d for p, d in self._handshakes.items() if d and d[-1] > now - 1}
        welcome = await self._guard(context, self._sup.handshake, handshake_from_pb(request))
        return supervisor_pb2.HandshakeResponse(
            arbiter=wire.ref_from_proxy(welcome.arbiter),
            notify_period=welcome.notify_period,
            session_token=welcome.session_token,
        )

    async def Notify(
        self, request: supervisor_pb2.NotifyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> supervisor_pb2.NotifyResponse:
        known = await self._guard(context, self._sup.notify, notice_from_pb(request))
        return supervisor_pb2.NotifyResponse(known=known)

    async def Info(
        self, request: supervisor_pb2.InfoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> supervisor_pb2.InfoResponse:
        response: supervisor_pb2.InfoResponse = await self._guard(context, tree_info, self._sup)
        return response

    async def Lookup(
        self, request: supervisor_pb2.LookupRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> supervisor_pb2.LookupResponse:
        proxy = self._sup.lookup(request.target)
        if proxy is None:
            error = ActorNotFound(f"no actor {short(request.target)} in this tree")
            await context.abort(STATUS_BY_CODE[error.code], str(error))
            raise error  # abort() raises; this only tells the type checker
        return supervisor_pb2.LookupResponse(ref=wire.ref_from_proxy(proxy))
