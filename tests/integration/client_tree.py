"""The tree tests/integration/test_client.py connects to: ``actorgrpc run client_tree:setup``.

Run with tests/integration/ as the current directory: the CLI makes this
module importable there, for its start hook and the ``client_caller`` command.
"""

from __future__ import annotations

from typing import Any

from actorgrpc import Actor, Request, command, spawn


@command()
def client_caller(request: Request) -> Any:
    """Who sent this request, as the command sees it (``request.caller``)."""
    return request.caller


async def setup(arb: Actor) -> None:
    """Start the tree with a named thread actor for the clients to find."""
    await spawn(name="client-named", concurrency="thread")
