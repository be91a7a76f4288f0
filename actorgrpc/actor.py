"""Compatibility: the import path of the actor core in actorgrpc 0.1 (now ``actorgrpc.core.actor``).

New code imports from ``actorgrpc`` itself.
"""

from __future__ import annotations

from actorgrpc.core.actor import Actor as Actor
from actorgrpc.core.actor import get_actor as get_actor
from actorgrpc.core.actor import new_aid as new_aid
from actorgrpc.core.actor import send as send
from actorgrpc.core.actor import spawn as spawn

__all__ = ["Actor", "get_actor", "new_aid", "send", "spawn"]
