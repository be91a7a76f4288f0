"""ActorProxyMonitor: the supervisor's record of an actor it manages."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from actorgrpc.core.consts import ACTOR_STATES
from actorgrpc.core.errors import ActorTimeout
from actorgrpc.core.proxy import ActorProxy

if TYPE_CHECKING:
    from actorgrpc.core._typing import Address
    from actorgrpc.supervision.runners import Runner

__all__ = ["ActorProxyMonitor"]


class ActorProxyMonitor(ActorProxy):
    """The supervisor's view of an actor it spawned; pickles into an ActorProxy.

    It lives in the arbiter (or a monitor). ``info`` and ``notified`` are
    refreshed by every notify from the actor; ``runner`` runs the actor (its
    process or thread; pulsar calls it ``impl``).
    """

    __slots__ = (
        "_ended",
        "_info",
        "_notified",
        "_packed_info",
        "death",
        "kind",
        "language",
        "mailbox",
        "named",
        "pid",
        "reason",
        "runner",
        "started",
        "state",
        "supervisor",
        "timeout",
    )

    def __init__(
        self,
        aid: str,
        name: str | None,
        address: Address,
        runner: Runner | None,
        kind: str,
        supervisor: str = "",
        *,
        named: bool = True,
    ) -> None:
        super().__init__(aid, name, address)
        #: True when ``name`` was given at spawn (so the tree registers it for
        #: lookup); False for a default name (the actor class's, lowercased).
        self.named = named and bool(name)
        #: What runs the actor (None for an external actor, which runs on its own).
        self.runner = runner
        #: How it runs: "process", "thread", "monitor" or "external".
        self.kind = kind
        self.language = "python"
        self._info: dict[str, Any] | None = {}
        self._packed_info: Mapping[str, Any] | None = None
        self._notified = 0.0
        #: Seconds the actor may go without a sign of life before it is stopped (0: no limit).
        self.timeout: float = 0.0
        #: Why the supervisor ended it, when it did (kept in the death record).
        self.reason = ""
        #: When the actor registered (its handshake), as time.time().
        self.started: float = 0.0
        self.state: int = ACTOR_STATES.INITIAL
        self.pid: int = 0
        self.supervisor = supervisor
        #: The transport's way to the actor (set at its handshake when it serves elsewhere).
        self.mailbox: object = None
        #: How the actor ended (None while it lives).
        self.death: dict[str, Any] | None = None
        self._ended = threading.Event()

    @property
    def notified(self) -> float:
        """When the actor last showed it lives (a notify, or its heartbeat), as time.time()."""
        heartbeat = self.runner.heartbeat if self.runner is not None else None
        if heartbeat is None:
            return self._notified
        return max(self._notified, heartbeat.value)

    @notified.setter
    def notified(self, when: float) -> None:
        self._notified = when

    @property
    def impl(self) -> Runner | None:
        """pulsar's name for :attr:`runner`."""
        return self.runner

    @property
    def proxy(self) -> ActorProxy:
        """The plain ActorProxy for this actor."""
        return ActorProxy(self.aid, self.name, self.address)

    @property
    def info(self) -> dict[str, Any]:
        """The actor's latest ``info()``, as its last notify reported it."""
        if self._info is None:
            packed = self._packed_info
            try:
                self._info = dict(packed) if packed is not None else {}
            except Exception as exc:
                self._info = {"unreadable": f"{type(exc).__name__}: {exc}"}
        return self._info

    @info.setter
    def info(self, value: dict[str, Any]) -> None:
        self._info = value
        self._packed_info = None

    @property
    def packed_info(self) -> Mapping[str, Any] | None:
        """The latest info as its notify carried it (None once set in Python)."""
        return self._packed_info

    def set_packed_info(self, value: Mapping[str, Any]) -> None:
        """Keep a notify's info as it came, to read when first asked for."""
        self._packed_info = value
        self._info = None

    def is_alive(self) -> bool:
        """True while the underlying actor runs."""
        if self._ended.is_set():
            return False
        return self.runner.is_alive() if self.runner is not None else True

    def start(self) -> None:
        """Start the remote actor (done by spawn; calling it again does nothing)."""
        if self.runner is not None:
            self.runner.start()

    def terminate(self) -> None:
        """End the actor's life at once (SIGTERM for a process)."""
        if self.runner is not None:
            self.runner.terminate()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the actor has ended; raise ActorTimeout after ``timeout`` seconds."""
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, int | float):
                raise TypeError(f"join: timeout must be a number of seconds, not {timeout!r}")
            if not timeout >= 0:  # negative, or NaN
                raise ValueError(f"join: timeout must be >= 0 seconds, not {timeout!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.runner is not None and not self.runner.join(timeout):
            raise ActorTimeout(f"actor {self.aid} still alive after {timeout}s")
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._ended.wait(left):
            raise ActorTimeout(f"actor {self.aid} still alive after {timeout}s")

    def mark_ended(self, death: dict[str, Any]) -> None:
        """Record how the actor ended (the supervisor does, once); wakes ``join``."""
        self.death = death
        self._ended.set()

    def __repr__(self) -> str:
        return f"<ActorProxyMonitor {self.name or self.aid} {ACTOR_STATES.DESCRIPTION[self.state]}>"
