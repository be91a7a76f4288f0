"""Layer 1, the actor core: actors on their loops, and nothing of the wire.

Actors and their states, hooks, ``@command`` and the request object, proxies,
futures and thread hand-offs, flow gates, the local registry of actors, and
the small interfaces (``interfaces.py``) that outer layers implement: the
transport an actor sends through, the codec of its envelopes, the link to its
supervisor. Nothing here imports grpc, protobuf or ``actorgrpc.v1``, nor any
outer layer; docs/architecture.md has the picture.
"""

# The standard commands register as the core is imported.
from actorgrpc.core import standard_commands as standard_commands

__all__: list[str] = []
