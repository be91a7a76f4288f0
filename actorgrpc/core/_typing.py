"""Type aliases used across the runtime (aliases only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

#: A (host, port) pair.
Address: TypeAlias = tuple[str, int]
#: A message in flight, as the transport's codec makes it (opaque to the core:
#: the remote layer's is an ``actorgrpc.v1.Envelope``).
Envelope: TypeAlias = Any
#: Called with the reply envelope of a request; may be called from any thread.
ReplyCallback: TypeAlias = Callable[[Envelope], None]
#: An actor hook: called with the actor; may return an awaitable.
Hook: TypeAlias = Callable[[Any], Any]
