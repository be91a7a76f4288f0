"""The local registry: this process's actors by aid and by name, and its transport."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actorgrpc.core.actor import Actor
    from actorgrpc.core.interfaces import Transport

__all__ = ["Registry", "current_transport", "set_current_transport"]


class Registry:
    """Actors that run in this process, found by aid or name (any thread reads it)."""

    __slots__ = ("actors", "names")

    def __init__(self) -> None:
        #: Local actors by aid, and by name (read directly on hot paths).
        self.actors: dict[str, Actor] = {}
        self.names: dict[str, Actor] = {}

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


_current: Transport | None = None


def current_transport() -> Transport | None:
    """This process's running transport, or None when no actor runs here."""
    return _current


def set_current_transport(transport: Transport | None) -> None:
    """Make ``transport`` this process's (a transport does it as it starts and closes)."""
    global _current
    _current = transport
