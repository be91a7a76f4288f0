"""Compatibility: the import path of constants in actorgrpc 0.1 (now ``actorgrpc.core.consts``).

New code imports from ``actorgrpc`` itself.
"""

from __future__ import annotations

from actorgrpc.core.consts import ACTOR_ACTION_TIMEOUT as ACTOR_ACTION_TIMEOUT
from actorgrpc.core.consts import ACTOR_STATES as ACTOR_STATES
from actorgrpc.core.consts import DEFAULT_MAX_MESSAGE_SIZE as DEFAULT_MAX_MESSAGE_SIZE
from actorgrpc.core.consts import MONITOR_TASK_PERIOD as MONITOR_TASK_PERIOD

__all__ = [
    "ACTOR_ACTION_TIMEOUT",
    "ACTOR_STATES",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MONITOR_TASK_PERIOD",
]
