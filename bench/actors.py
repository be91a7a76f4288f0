"""Helpers of the groups that run an actorgrpc tree (plain code, outside actors)."""

from __future__ import annotations

import time
from typing import Any

from actorgrpc import ActorProxy, send, spawn
from actorgrpc.core.proxy import format_address

# Registers the benchmark's commands here; process actors import the module themselves.
from bench import commands as commands

__all__ = ["address_of", "client_samples", "kill_all", "spawn_all", "wait_for"]


def spawn_all(n: int, concurrency: str = "process", timeout: float = 60.0) -> list[ActorProxy]:
    """Spawn ``n`` actors at once; their proxies once each has answered a ping."""
    futures = [spawn(concurrency=concurrency, timeout=timeout) for _ in range(n)]
    proxies: list[ActorProxy] = [f.result(timeout + 5) for f in futures]
    for reply in [send(p, "ping") for p in proxies]:
        reply.result(timeout)
    return proxies


def kill_all(proxies: list[ActorProxy], timeout: float = 30.0) -> None:
    """Stop those actors through the arbiter and wait until they have ended."""
    replies = [send("arbiter", "kill_actor", p.aid) for p in proxies]
    deadline = time.monotonic() + timeout
    for reply in replies:
        reply.result(max(0.1, deadline - time.monotonic()))


def address_of(proxy: ActorProxy) -> str:
    """The ``host:port`` of the Mailbox that hosts ``proxy``."""
    return format_address(proxy.address)


def client_samples(result: dict[str, Any], key: str = "samples") -> Any:
    """A client task's result, or its error raised."""
    if "error" in result:
        raise RuntimeError(f"client: {result['error']}")
    return result[key]


def wait_for(seconds: float) -> None:
    """Let the tree settle (first notifies, connections) before measuring."""
    time.sleep(seconds)
