"""Compatibility: the import path of proxies in actorgrpc 0.1.

Now ``actorgrpc.core.proxy`` (ActorProxy) and ``actorgrpc.supervision.managed``
(ActorProxyMonitor). New code imports from ``actorgrpc`` itself.
"""

from __future__ import annotations

from actorgrpc.core.proxy import ActorProxy as ActorProxy
from actorgrpc.supervision.managed import ActorProxyMonitor as ActorProxyMonitor

__all__ = ["ActorProxy", "ActorProxyMonitor"]
