"""Compatibility: the import path of the arbiter in actorgrpc 0.1 (now in hosting).

New code imports from ``actorgrpc`` itself.
"""

from __future__ import annotations

from actorgrpc.hosting.arbiter import Arbiter as Arbiter
from actorgrpc.hosting.arbiter import arbiter as arbiter

__all__ = ["Arbiter", "arbiter"]
