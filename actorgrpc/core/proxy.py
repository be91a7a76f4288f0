"""References to actors (ActorProxy) and the text form of their addresses."""

from __future__ import annotations

import functools
from typing import Any

from actorgrpc.core._typing import Address

__all__ = ["ActorProxy", "format_address", "parse_address"]


@functools.lru_cache(maxsize=4096)
def format_address(address: Address) -> str:
    """``('127.0.0.1', 80)`` -> ``'127.0.0.1:80'`` (IPv6 hosts in brackets)."""
    host, port = address
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def parse_address(text: str) -> Address:
    """``'127.0.0.1:80'`` -> ``('127.0.0.1', 80)``; raises ValueError when malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isascii() or not port.isdigit():
        raise ValueError(f"not a host:port address: {text[:80]!r}")
    if int(port) > 65535:
        raise ValueError(f"port out of range in {text[:80]!r}")
    return host.strip("[]"), int(port)


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
