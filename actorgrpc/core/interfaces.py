"""The small interfaces an actor needs of the layers above it, and what crosses them.

The core defines them; outer layers implement them and plug them in:
``Transport`` and ``Codec`` by the remote layer (``actorgrpc.remote``),
``SupervisorLink`` by supervision (in the arbiter's process) and by the remote
layer (over gRPC, in a child process). What crosses the supervisor link is
plain data (``Handshake``, ``Welcome``, ``Notice``), not protobuf.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from actorgrpc.core._typing import Address, Envelope
    from actorgrpc.core.proxy import ActorProxy
    from actorgrpc.core.registry import LocalActor, Registry
    from actorgrpc.core.settings import Settings

__all__ = [
    "Codec",
    "Handshake",
    "Notice",
    "SupervisorLink",
    "Transport",
    "Welcome",
    "current_transport",
    "set_current_transport",
]


class Codec(Protocol):
    """How the transport's envelopes are read and answered (their form is its own)."""

    def read_args(
        self, env: Envelope, allow_pickle: bool
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The positional and keyword arguments a request carries."""
        ...

    def caller(self, env: Envelope) -> ActorProxy | None:
        """The sender a request names, or None; BadRequest when malformed."""
        ...

    def chain(self, env: Envelope) -> bytes:
        """A request's call chain: the 8-byte ids of the commands it descends from (or b"")."""
        ...

    def reply(self, request_id: int, result: Any, allow_pickle: bool, limit: int) -> Envelope:
        """A reply carrying ``result`` (an error reply if it cannot be carried)."""
        ...

    def error_reply(self, request_id: int, exc: BaseException) -> Envelope:
        """A reply carrying the error ``exc``."""
        ...

    def pack_info(self, info: dict[str, Any], allow_pickle: bool) -> Mapping[str, Any]:
        """A copy of an actor's ``info()`` to send its supervisor; raises if unencodable."""
        ...

    def gather(self, request_id: int, replies: Sequence[Envelope], limit: int) -> Envelope:
        """One reply: the list of the ``replies``' results, or the first of them that is an error.

        The results are not decoded (a pool's broadcast); an error reply too if
        the list is bigger than ``limit`` bytes.
        """
        ...


class Transport(Protocol):
    """One process's way in and out: its IO loop, its local actors, and routing.

    ``Actor.mailbox`` (pulsar's name) is the actor's transport.
    """

    @property
    def settings(self) -> Settings:
        """The tree's settings."""
        ...

    @property
    def codec(self) -> Codec:
        """How envelopes are read and answered."""
        ...

    @property
    def registry(self) -> Registry:
        """This process's actors."""
        ...

    @property
    def address(self) -> Address:
        """Where this process serves."""
        ...

    @property
    def address_text(self) -> str:
        """Where this process serves, as ``host:port``."""
        ...

    @property
    def main_actor(self) -> LocalActor | None:
        """The actor plain code of this process sends as (the arbiter, or the process actor)."""
        ...

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The IO loop (once the transport runs)."""
        ...

    def request(
        self,
        sender: LocalActor | None,
        target: ActorProxy | str,
        action: str,
        args: Iterable[Any],
        kwargs: Mapping[str, Any],
        *,
        ack: bool = True,
        tagged: bool = False,
    ) -> Any:
        """Send ``action`` to ``target``; a future of the reply, or None without ack."""
        ...

    def room(self, target: ActorProxy | str, timeout: float | None = None) -> Awaitable[None]:
        """Done once the way to ``target`` has room; ResourceExhausted after ``timeout``."""
        ...

    def in_io_thread(self) -> bool:
        """True on the IO loop's thread."""
        ...

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` soon on the IO loop, from any thread."""
        ...

    def forward(
        self,
        env: Envelope,
        dest: ActorProxy,
        on_reply: Callable[[Envelope, bool], None] | None,
        caller: ActorProxy | None = None,
    ) -> None:
        """Send the request ``env``, as it came, on to ``dest`` (IO loop only; a pool's routing).

        ``env`` is left as it was, to be forwarded again. ``on_reply(reply,
        lost)`` is called on the IO loop, the reply under ``env``'s id; ``lost``
        is True when ``dest`` did not answer (the way to it broke, or it had
        gone): the request may have run there or not. ``caller`` names the
        sender when ``env`` does not (a local sender's proxy).
        """
        ...

    def connect(self, address: Address) -> object:
        """Open the way to ``address`` now (IO loop only); its breaking is a sign of death."""
        ...

    async def actor_stopping(self, actor: LocalActor) -> None:
        """``actor`` has begun to stop (the process stops serving with its main actor)."""
        ...


@dataclass(frozen=True)
class Handshake:
    """An actor announces itself to its supervisor (Supervisor.Handshake)."""

    aid: str
    name: str
    #: Where it serves, as ``host:port``.
    address: str
    pid: int
    kind: str
    language: str = "python"
    #: The token its spawn gave it (empty for an external actor).
    spawn_token: str = ""


@dataclass(frozen=True)
class Welcome:
    """The supervisor's answer to a handshake."""

    arbiter: ActorProxy
    notify_period: float
    #: Proves later notifies come from this actor.
    session_token: str


@dataclass(frozen=True)
class Notice:
    """An actor reports its state and info (Supervisor.Notify)."""

    aid: str
    state: int
    session_token: str
    #: The actor's ``info()`` as ``Codec.pack_info`` made it, or None.
    info: Mapping[str, Any] | None = None
    #: Why it failed (``Type: message``) and where, or empty.
    error: str = ""
    traceback: str = ""


class SupervisorLink(Protocol):
    """An actor's line to its supervisor."""

    async def handshake(self, request: Handshake, timeout: float) -> Welcome:
        """Register with the arbiter."""
        ...

    async def notify(self, notice: Notice, timeout: float) -> bool:
        """Report liveness, state and info; False when the supervisor does not know it."""
        ...

    async def lookup(self, target: str, timeout: float) -> ActorProxy | None:
        """Find an actor by aid or name; None when the tree has none."""
        ...


_current: Transport | None = None


def current_transport() -> Transport | None:
    """This process's running transport, or None when no actor runs here."""
    return _current


def set_current_transport(transport: Transport | None) -> None:
    """Make ``transport`` this process's (a transport does it as it starts and closes)."""
    global _current
    _current = transport
