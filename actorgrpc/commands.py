"""Compatibility: the import path of commands in actorgrpc 0.1 (now ``actorgrpc.core.commands``).

New code imports from ``actorgrpc`` itself.
"""

from __future__ import annotations

from actorgrpc.core.actor import Request as Request
from actorgrpc.core.commands import Command as Command
from actorgrpc.core.commands import command as command
from actorgrpc.core.commands import get_command as get_command
from actorgrpc.core.commands import registered_commands as registered_commands

__all__ = ["Command", "Request", "command", "get_command", "registered_commands"]
