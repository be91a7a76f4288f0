"""actorgrpc: pulsar's actors over a typed gRPC wire.

An arbiter spawns actors, as child processes or threads; actors answer
commands sent to them. Every process serves the ``actorgrpc.v1`` Mailbox
service, and the arbiter the Supervisor service, so that any language with
gRPC, and grpcurl, can talk to the tree::

    from actorgrpc import arbiter, send, spawn

    with arbiter() as arb:
        proxy = spawn(name='worker').result(10)
        assert send(proxy, 'ping').result(5) == 'pong'
"""

from actorgrpc.actor import Actor as Actor
from actorgrpc.actor import get_actor as get_actor
from actorgrpc.actor import send as send
from actorgrpc.actor import spawn as spawn
from actorgrpc.arbiter import Arbiter as Arbiter
from actorgrpc.arbiter import arbiter as arbiter
from actorgrpc.commands import Request as Request
from actorgrpc.commands import command as command
from actorgrpc.consts import ACTOR_ACTION_TIMEOUT as ACTOR_ACTION_TIMEOUT
from actorgrpc.consts import ACTOR_STATES as ACTOR_STATES
from actorgrpc.consts import MONITOR_TASK_PERIOD as MONITOR_TASK_PERIOD
from actorgrpc.errors import ActorError as ActorError
from actorgrpc.errors import ActorNotAvailable as ActorNotAvailable
from actorgrpc.errors import ActorNotFound as ActorNotFound
from actorgrpc.errors import ActorTimeout as ActorTimeout
from actorgrpc.errors import BadRequest as BadRequest
from actorgrpc.errors import CommandError as CommandError
from actorgrpc.errors import CommandNotFound as CommandNotFound
from actorgrpc.errors import PermissionDenied as PermissionDenied
from actorgrpc.errors import ResourceExhausted as ResourceExhausted
from actorgrpc.proxy import ActorProxy as ActorProxy
from actorgrpc.proxy import ActorProxyMonitor as ActorProxyMonitor

__all__ = [
    "ACTOR_ACTION_TIMEOUT",
    "ACTOR_STATES",
    "MONITOR_TASK_PERIOD",
    "Actor",
    "ActorError",
    "ActorNotAvailable",
    "ActorNotFound",
    "ActorProxy",
    "ActorProxyMonitor",
    "ActorTimeout",
    "Arbiter",
    "BadRequest",
    "CommandError",
    "CommandNotFound",
    "PermissionDenied",
    "Request",
    "ResourceExhausted",
    "arbiter",
    "command",
    "get_actor",
    "send",
    "spawn",
]

__version__ = "0.1.0"
