"""Constants shared by the whole runtime, with pulsar's names and values."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ACTOR_ACTION_TIMEOUT",
    "ACTOR_STATES",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MONITOR_TASK_PERIOD",
]


class _States(dict[str, Any]):
    """A dict readable by attribute, as pulsar's ``ACTOR_STATES``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


#: Actor state numbers, as in pulsar, with ``DESCRIPTION`` mapping each to text.
ACTOR_STATES = _States(
    INITIAL=0,
    INACTIVE=1,
    STARTING=2,
    RUN=3,
    STOPPING=4,
    CLOSE=5,
    TERMINATE=6,
    DESCRIPTION={
        0: "initial",
        1: "inactive",
        2: "starting",
        3: "running",
        4: "stopping",
        5: "closed",
        6: "terminated",
    },
)

#: Seconds an actor has to stop after ``stop`` before it is terminated.
ACTOR_ACTION_TIMEOUT = 5

#: Seconds between an actor's notifies to its supervisor (and periodic tasks).
MONITOR_TASK_PERIOD = 1

#: Largest gRPC message accepted or sent, in bytes.
DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024
