"""The Supervisor service's client: an actor's line to its arbiter over gRPC.

It implements the core's ``SupervisorLink`` for actors in other processes,
turning the plain ``Handshake`` and ``Notice`` into their wire form. IO loop
only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from actorgrpc.core.errors import ActorNotAvailable
from actorgrpc.core.interfaces import Handshake, Notice, Welcome
from actorgrpc.remote import wire
from actorgrpc.remote.connection import open_channel
from actorgrpc.remote.supervisor_messages import handshake_to_pb, notice_to_pb
from actorgrpc.v1 import supervisor_pb2, supervisor_pb2_grpc

if TYPE_CHECKING:
    from actorgrpc.core.proxy import ActorProxy
    from actorgrpc.core.settings import Settings

__all__ = ["SupervisorClient"]


class SupervisorClient:
    """Calls to the arbiter's Supervisor service."""

    def __init__(
        self, settings: Settings, metadata: tuple[tuple[str, str], ...], address: str
    ) -> None:
        self.address = address
        self._metadata = metadata
        self._channel = open_channel(settings, address)
        self._stub = supervisor_pb2_grpc.SupervisorStub(self._channel)

    async def handshake(self, request: Handshake, timeout: float) -> Welcome:
        """Register with the arbiter."""
        response = await self._stub.Handshake(
            handshake_to_pb(request), timeout=timeout, metadata=self._metadata
        )
        return Welcome(
            arbiter=wire.proxy_from_ref(response.arbiter),
            notify_period=response.notify_period,
            session_token=response.session_token,
        )

    async def notify(self, notice: Notice, timeout: float) -> bool:
        """Report liveness, state and info; False when the arbiter does not know us."""
        response = await self._stub.Notify(
            notice_to_pb(notice), timeout=timeout, metadata=self._metadata
        )
        return bool(response.known)

    async def lookup(self, target: str, timeout: float) -> ActorProxy | None:
        """Find an actor by aid or name; None when the arbiter knows none."""
        try:
            response = await self._stub.Lookup(
                supervisor_pb2.LookupRequest(target=target),
                timeout=timeout,
                metadata=self._metadata,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise ActorNotAvailable(f"arbiter at {self.address}: {exc.details()}") from None
        return wire.proxy_from_ref(response.ref)

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close(None)
