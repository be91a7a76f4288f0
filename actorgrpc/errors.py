"""Compatibility: the import path of errors in actorgrpc 0.1 (now ``actorgrpc.core.errors``).

New code imports from ``actorgrpc`` itself.
"""

from __future__ import annotations

from actorgrpc.core.errors import ActorError as ActorError
from actorgrpc.core.errors import ActorNotAvailable as ActorNotAvailable
from actorgrpc.core.errors import ActorNotFound as ActorNotFound
from actorgrpc.core.errors import ActorTimeout as ActorTimeout
from actorgrpc.core.errors import BadRequest as BadRequest
from actorgrpc.core.errors import CommandError as CommandError
from actorgrpc.core.errors import CommandNotFound as CommandNotFound
from actorgrpc.core.errors import PermissionDenied as PermissionDenied
from actorgrpc.core.errors import ResourceExhausted as ResourceExhausted

__all__ = [
    "ActorError",
    "ActorNotAvailable",
    "ActorNotFound",
    "ActorTimeout",
    "BadRequest",
    "CommandError",
    "CommandNotFound",
    "PermissionDenied",
    "ResourceExhausted",
]
