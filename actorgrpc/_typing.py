"""Type aliases used across the runtime (aliases only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from actorgrpc.v1 import mailbox_pb2

#: A (host, port) pair.
Address: TypeAlias = tuple[str, int]
#: Called with the reply envelope of a request; may be called from any thread.
ReplyCallback: TypeAlias = "Callable[[mailbox_pb2.Envelope], None]"
#: An actor hook: called with the actor; may return an awaitable.
Hook: TypeAlias = Callable[[Any], Any]
