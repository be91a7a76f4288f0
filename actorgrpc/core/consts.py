"""Constants shared by the whole runtime, with pulsar's names and values."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

__all__ = [
    "ACTOR_ACTION_TIMEOUT",
    "ACTOR_STATES",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MONITOR_TASK_PERIOD",
    "ActorState",
]


class ActorState(IntEnum):
    """An actor's life, in order: states only move forward."""

    INITIAL = 0
    INACTIVE = 1
    STARTING = 2
    RUN = 3
    STOPPING = 4
    CLOSE = 5
    TERMINATE = 6

    @property
    def description(self) -> str:
        """pulsar's text for the state: initial, ..., running, stopping, closed, terminated."""
        return _DESCRIPTION[self]


_DESCRIPTION = {
    ActorState.INITIAL: "initial",
    ActorState.INACTIVE: "inactive",
    ActorState.STARTING: "starting",
    ActorState.RUN: "running",
    ActorState.STOPPING: "stopping",
    ActorState.CLOSE: "closed",
    ActorState.TERMINATE: "terminated",
}


class _States(dict[str, Any]):
    """A dict readable by attribute, as pulsar's ``ACTOR_STATES``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


#: Actor state numbers, as in pulsar (a dict, also readable by attribute), with
#: ``DESCRIPTION`` mapping each to text. ``ActorState`` is the same as an IntEnum.
ACTOR_STATES = _States(
    {state.name: int(state) for state in ActorState},
    DESCRIPTION={int(state): text for state, text in _DESCRIPTION.items()},
)

#: Seconds an actor has to stop after ``stop`` before it is terminated.
ACTOR_ACTION_TIMEOUT = 5

#: Seconds between an actor's notifies to its supervisor (and periodic tasks).
MONITOR_TASK_PERIOD = 1

#: Largest gRPC message accepted or sent, in bytes.
DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024
