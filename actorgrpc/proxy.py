"""References to actors: ActorProxy, and the supervisor's ActorProxyMonitor."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from actorgrpc.consts import ACTOR_STATES
from actorgrpc.errors import ActorTimeout

if TYPE_CHECKING:
    from actorgrpc._typing import Address

__all__ = ["ActorProxy", "ActorProxyMonitor"]


class ActorProxy:
    """A lightweight, picklable reference to an actor, local or remote.

    Send it in messages, keep it, and pass it to ``send``::

        send(proxy, 'echo', 'hello there!')
    """

    __slots__ = ("address", "aid", "name")

    def __init__(self, aid: str, name: str | None, address: Address) -> None:
        self.aid = aid
        self.name = name
        self.address: Address = (str(address[0]), int(address[1]))

    @property
    def proxy(self) -> ActorProxy:
        """The plain proxy (itself, or a copy of a monitor's)."""
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (ActorProxy, (self.aid, self.name, self.address))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorProxy) and other.aid == self.aid

    def __hash__(self) -> int:
        return hash(self.aid)

    def __repr__(self) -> str:
        label = f"{self.name}({self.aid})" if self.name and self.name != self.aid else self.aid
        return f"<ActorProxy {label} at {self.address[0]}:{self.address[1]}>"


class _Impl(Protocol):
    """What a monitor needs of the thing that runs its actor (concurrency.py)."""

    def start(self) -> None: ...
    def is_alive(self) -> bool: ...
    def terminate(self) -> None: ...
    def join(self, timeout: float | None = None) -> bool: ...


class ActorProxyMonitor(ActorProxy):
    """The supervisor's view of an actor it spawned; pickles into an ActorProxy.

    It lives in the arbiter (or a monitor). ``info`` and ``notified`` are
    refreshed by every notify from the actor; ``impl`` runs the actor (its
    process or thread).
    """

    __slots__ = (
        "_ended",
        "_info",
        "_raw_info",
        "death",
        "impl",
        "kind",
        "language",
        "mailbox",
        "notified",
        "pid",
        "started",
        "state",
        "supervisor",
    )

    def __init__(
        self,
        aid: str,
        name: str | None,
        address: Address,
        impl: _Impl | None,
        kind: str,
        supervisor: str = "",
    ) -> None:
        super().__init__(aid, name, address)
        self.impl = impl
        self.kind = kind
        self.language = "python"
        self._info: dict[str, Any] | None = {}
        self._raw_info: Any = None
        self.notified: float = 0.0
        #: When the actor registered (its handshake), as time.time().
        self.started: float = 0.0
        self.state: int = ACTOR_STATES.INITIAL
        self.pid: int = 0
        self.supervisor = supervisor
        #: The connection that reaches the actor (set on first use).
        self.mailbox: Any = None
        #: How the actor ended (None while it lives).
        self.death: dict[str, Any] | None = None
        self._ended = threading.Event()

    @property
    def proxy(self) -> ActorProxy:
        """The plain ActorProxy for this actor."""
        return ActorProxy(self.aid, self.name, self.address)

    @property
    def info(self) -> dict[str, Any]:
        """The actor's latest ``info()``, as its last notify reported it."""
        if self._info is None:
            from actorgrpc import wire

            try:
                decoded = wire.decode(self._raw_info, allow_pickle=False)
            except Exception as exc:
                decoded = {"unreadable": f"{type(exc).__name__}: {exc}"}
            self._info = decoded if isinstance(decoded, dict) else {"unreadable": repr(decoded)}
        return self._info

    @info.setter
    def info(self, value: dict[str, Any]) -> None:
        self._info = value
        self._raw_info = None

    @property
    def raw_info(self) -> Any:
        """The latest info as the Value it came in (None when it was set in Python)."""
        return self._raw_info

    def set_raw_info(self, value: Any) -> None:
        """Keep a notify's info Value, to decode when first read."""
        self._raw_info = value
        self._info = None

    def is_alive(self) -> bool:
        """True while the underlying actor runs."""
        if self._ended.is_set():
            return False
        return self.impl.is_alive() if self.impl is not None else True

    def start(self) -> None:
        """Start the remote actor (done by spawn; calling it again does nothing)."""
        if self.impl is not None:
            self.impl.start()

    def terminate(self) -> None:
        """End the actor's life at once (SIGTERM for a process)."""
        if self.impl is not None:
            self.impl.terminate()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the actor has ended; raise ActorTimeout after ``timeout`` seconds."""
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, int | float):
                raise TypeError(f"join: timeout must be a number of seconds, not {timeout!r}")
            if not timeout >= 0:  # negative, or NaN
                raise ValueError(f"join: timeout must be >= 0 seconds, not {timeout!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.impl is not None and not self.impl.join(timeout):
            raise ActorTimeout(f"actor {self.aid} still alive after {timeout}s")
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._ended.wait(left):
            raise ActorTimeout(f"actor {self.aid} still alive after {timeout}s")

    def _mark_ended(self, death: dict[str, Any]) -> None:
        self.death = death
        self._ended.set()

    def __repr__(self) -> str:
        return f"<ActorProxyMonitor {self.name or self.aid} {ACTOR_STATES.DESCRIPTION[self.state]}>"
