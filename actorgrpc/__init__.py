"""actorgrpc: pulsar's actors over a typed gRPC wire.

An arbiter spawns actors, as child processes or threads; actors answer
commands sent to them. Every process serves the ``actorgrpc.v1`` Mailbox
service, and the arbiter the Supervisor service, so that any language with
gRPC, and grpcurl, can talk to the tree::

    from actorgrpc import arbiter, send, spawn

    with arbiter() as arb:
        proxy = spawn(name='worker').result(10)
        assert send(proxy, 'ping').result(5) == 'pong'

Another process reaches a running tree with ``connect(address, secret=...)``.
"""

# The layers, bottom up (docs/architecture.md): core/ (actors, no wire),
# supervision/ (the tree), remote/ (the gRPC wire), hosting/ (composition),
# then cli.py and testing.py. This module re-exports the public API; the
# modules actor, arbiter, commands, consts, errors and proxy beside it keep
# the import paths of earlier versions.
from actorgrpc import arbiter as _arbiter_module  # noqa: F401  # before the function shadows it
from actorgrpc.core.actor import Actor as Actor
from actorgrpc.core.actor import Request as Request
from actorgrpc.core.actor import get_actor as get_actor
from actorgrpc.core.actor import room as room
from actorgrpc.core.actor import send as send
from actorgrpc.core.actor import spawn as spawn
from actorgrpc.core.commands import command as command
from actorgrpc.core.consts import ACTOR_ACTION_TIMEOUT as ACTOR_ACTION_TIMEOUT
from actorgrpc.core.consts import ACTOR_STATES as ACTOR_STATES
from actorgrpc.core.consts import MONITOR_TASK_PERIOD as MONITOR_TASK_PERIOD
from actorgrpc.core.deadlines import timeout as timeout
from actorgrpc.core.errors import ActorError as ActorError
from actorgrpc.core.errors import ActorNotAvailable as ActorNotAvailable
from actorgrpc.core.errors import ActorNotFound as ActorNotFound
from actorgrpc.core.errors import ActorTimeout as ActorTimeout
from actorgrpc.core.errors import BadRequest as BadRequest
from actorgrpc.core.errors import CommandError as CommandError
from actorgrpc.core.errors import CommandNotFound as CommandNotFound
from actorgrpc.core.errors import PermissionDenied as PermissionDenied
from actorgrpc.core.errors import ResourceExhausted as ResourceExhausted
from actorgrpc.core.futures import ActorFuture as ActorFuture
from actorgrpc.core.proxy import ActorProxy as ActorProxy
from actorgrpc.hosting.arbiter import Arbiter as Arbiter
from actorgrpc.hosting.arbiter import arbiter as arbiter
from actorgrpc.hosting.client import Client as Client
from actorgrpc.hosting.client import connect as connect
from actorgrpc.supervision.managed import ActorProxyMonitor as ActorProxyMonitor

__all__ = [
    "ACTOR_ACTION_TIMEOUT",
    "ACTOR_STATES",
    "MONITOR_TASK_PERIOD",
    "Actor",
    "ActorError",
    "ActorFuture",
    "ActorNotAvailable",
    "ActorNotFound",
    "ActorProxy",
    "ActorProxyMonitor",
    "ActorTimeout",
    "Arbiter",
    "BadRequest",
    "Client",
    "CommandError",
    "CommandNotFound",
    "PermissionDenied",
    "Request",
    "ResourceExhausted",
    "arbiter",
    "command",
    "connect",
    "get_actor",
    "room",
    "send",
    "spawn",
    "timeout",
]

__version__ = "0.1.0"
