"""The local registry: this process's actors by aid and by name.

It holds what a transport needs of a local actor (``LocalActor``): the core's
``Actor`` is one; the registry does not need to know more of it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from actorgrpc.core._typing import Envelope, ReplyCallback
    from actorgrpc.core.flow import Gate
    from actorgrpc.core.proxy import ActorProxy

__all__ = ["LocalActor", "Registry"]


class LocalActor(Protocol):
    """An actor of this process, as the registry and the transport see it."""

    @property
    def aid(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def named(self) -> bool:
        """True when ``name`` was given (and so is registered), not a default."""
        ...

    @property
    def proxy(self) -> ActorProxy: ...
    @property
    def gate(self) -> Gate: ...
    @property
    def loop(self) -> asyncio.AbstractEventLoop | None: ...

    def on_own_loop(self) -> bool: ...

    def deliver(
        self,
        env: Envelope,
        on_reply: ReplyCallback,
        running: asyncio.AbstractEventLoop | None,
        *,
        inline: bool = True,
        caller: ActorProxy | None = None,
        origin: object = None,
    ) -> None: ...

    def cancel_request(self, origin: object, request_id: int) -> None: ...

    def send(self, target: ActorProxy | str, action: str, *args: Any, **kwargs: Any) -> Any: ...


class Registry:
    """Actors that run in this process, found by aid or name (any thread reads it)."""

    __slots__ = ("actors", "names")

    def __init__(self) -> None:
        #: Local actors by aid, and by name (read directly on hot paths).
        self.actors: dict[str, LocalActor] = {}
        self.names: dict[str, LocalActor] = {}

    def register(self, actor: LocalActor) -> None:
        """Make ``actor`` reachable here by aid, and by name if it was given one."""
        self.actors[actor.aid] = actor
        if actor.named:
            self.names[actor.name] = actor

    def unregister(self, actor: LocalActor) -> None:
        """Forget ``actor``."""
        if self.actors.get(actor.aid) is actor:
            del self.actors[actor.aid]
        if actor.named and self.names.get(actor.name) is actor:
            del self.names[actor.name]

    def local(self, target: str) -> LocalActor | None:
        """The local actor with that aid or name."""
        return self.actors.get(target) or self.names.get(target)
