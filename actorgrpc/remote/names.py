"""Names a process actor's transport has resolved: one way to an actor, whatever names it.

An envelope for an ActorProxy goes straight to the proxy's address. One for a
bare aid or name, in a process without the tree (a process actor's), would
otherwise travel via the arbiter, which forwards it: two ways of two speeds,
on which sends to one actor by name and by proxy overtake each other. So a
name is resolved once, with the Supervisor service's Lookup, and envelopes
for it then go to the address found, on the same stream as the proxy's; the
envelope keeps the name as its target, and the process there delivers it by
that name.

The rules:

- While a lookup is in flight, every remote send of the transport, by proxy
  too, waits behind the envelope that asked for it in one FIFO, and goes out
  in order once it is answered: a proxy send made after a name send must not
  overtake it meanwhile. A name is looked up once, so this costs one Lookup
  round trip per name, not per send.
- A name the arbiter does not know, or a lookup that fails (the arbiter
  unreachable, the deadline passed), is not remembered: the envelope goes via
  the arbiter as it would without a cache, and the arbiter answers with the
  right error (the obituary of an ended actor, say).
- An entry is forgotten when the stream to its address goes (it breaks when
  the process there ends), and when a request sent by it is answered, by the
  transport at that address, that no such actor is there (``not_here``, whose
  error says ``undelivered``): the request reached no actor and ran nowhere,
  so it is resolved again and re-sent, once. A name taken by a new actor
  after its owner's end is then found where the new one lives. A command that
  itself fails with ActorNotFound has run: its error is not ``undelivered``,
  and it is never re-sent.
- At most ``MAX_NAMES`` entries: past them the cache starts again.

IO loop only, as the transport's routing is.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Protocol

from actorgrpc.core.errors import ActorNotAvailable, ActorNotFound, short
from actorgrpc.core.flow import Gate
from actorgrpc.core.proxy import ActorProxy
from actorgrpc.remote.envelopes import drop_reply, make_error_reply

if TYPE_CHECKING:
    from actorgrpc.core._typing import Address, ReplyCallback
    from actorgrpc.core.settings import Settings
    from actorgrpc.remote.supervisor_client import SupervisorClient
    from actorgrpc.v1 import mailbox_pb2

__all__ = ["LOOKUP_TIMEOUT", "MAX_NAMES", "Names", "NamesOwner", "not_here"]

log = logging.getLogger("actorgrpc")

#: Seconds a lookup may take before the envelope goes via the arbiter instead:
#: every remote send waits behind it, so a hung arbiter must not hold them long.
LOOKUP_TIMEOUT = 2.0
#: Entries kept before the cache starts again (actors come and go).
MAX_NAMES = 4096


def not_here(env_id: int, target: str, address_text: str) -> mailbox_pb2.Envelope:
    """The reply of a transport to a request for ``target`` when no such actor is there.

    It says ``undelivered``: the request reached no actor and ran nowhere, so
    ``Names`` (and a monitor's forward) may re-send it.
    """
    reply = make_error_reply(env_id, ActorNotFound(f"no actor {short(target)} at {address_text}"))
    reply.error.undelivered = True
    return reply


class NamesOwner(Protocol):
    """What the cache needs of the transport that routes through it."""

    #: The tree's settings (the mailbox limit bounds what waits for a lookup).
    settings: Settings
    #: This process's address.
    address: Address
    #: The arbiter's address, where unresolved envelopes go.
    arbiter_address: Address | None
    #: Set when the transport closes.
    closing: asyncio.Event

    def send_remote(
        self, address: Address, env: mailbox_pb2.Envelope, on_reply: ReplyCallback | None
    ) -> Gate: ...

    def supervisor_client(self) -> SupervisorClient: ...


# A send waiting for a lookup: the envelope, its proxy or name, its reply
# callback, and whether a "not here" answer may re-send it.
_Held = tuple["mailbox_pb2.Envelope", "ActorProxy | str", "ReplyCallback | None", bool]


class Names:
    """The proxies found for names (and bare aids), and the sends waiting for a lookup."""

    def __init__(self, owner: NamesOwner) -> None:
        self._owner = owner
        self._proxies: dict[str, ActorProxy] = {}
        self._held: deque[_Held] = deque()
        #: Closed while ``mailbox_limit`` sends wait for a lookup: senders then
        #: wait for room or are refused, as for a full stream (memory stays bounded).
        self.gate = Gate(owner.settings.mailbox_limit)
        #: True while a lookup is in flight: remote sends then wait (``hold``).
        self.holding = False
        self._lookup: asyncio.Task[None] | None = None
        # Addresses whose stream broke while the lookup was in flight: its
        # answer may name one of them, and must not be remembered then.
        self._lost: set[Address] = set()

    def route(
        self, env: mailbox_pb2.Envelope, name: str, on_reply: ReplyCallback | None
    ) -> Gate | None:
        """Send ``env`` to the actor ``name`` names: the gate of its stream, or None if held."""
        return self._route(env, name, on_reply, True)

    def known(self, name: str) -> ActorProxy | None:
        """The proxy found for ``name``, if it has been looked up (any thread reads it)."""
        return self._proxies.get(name)

    def hold(
        self, env: mailbox_pb2.Envelope, proxy: ActorProxy, on_reply: ReplyCallback | None
    ) -> None:
        """Queue a proxy's envelope behind the lookup in flight (while ``holding``)."""
        self._hold((env, proxy, on_reply, False))

    def _hold(self, item: _Held) -> None:
        held = self._held
        held.append(item)
        if len(held) >= self.gate.limit:
            self.gate.update(len(held))

    def forget_address(self, address: Address) -> None:
        """The stream to ``address`` is gone (it broke, say): forget the names found there."""
        if self.holding:
            self._lost.add(address)
        gone = [name for name, proxy in self._proxies.items() if proxy.address == address]
        for name in gone:
            del self._proxies[name]

    def _route(
        self, env: mailbox_pb2.Envelope, name: str, on_reply: ReplyCallback | None, retry: bool
    ) -> Gate | None:
        if self.holding:
            self._hold((env, name, on_reply, retry))
            return None
        proxy = self._proxies.get(name)
        if proxy is None:
            self._hold((env, name, on_reply, retry))
            self._look_up(name)
            return None
        return self._send_to(proxy, env, name, on_reply, retry)

    def _send_to(
        self,
        proxy: ActorProxy,
        env: mailbox_pb2.Envelope,
        name: str,
        on_reply: ReplyCallback | None,
        retry: bool,
    ) -> Gate:
        if on_reply is not None and retry:
            on_reply = self._checked(proxy, env, name, on_reply)
        return self._owner.send_remote(proxy.address, env, on_reply)

    def _checked(
        self, proxy: ActorProxy, env: mailbox_pb2.Envelope, name: str, on_reply: ReplyCallback
    ) -> ReplyCallback:
        """``on_reply``, unless the answer is that ``name`` is not at the proxy's address."""

        def checked(reply: mailbox_pb2.Envelope) -> None:
            if reply.HasField("error") and reply.error.undelivered:
                # It ran nowhere: find where the name is now, and send it there once.
                if self._proxies.get(name) is proxy:
                    del self._proxies[name]
                self._route(env, name, on_reply, False)
                return
            on_reply(reply)

        return checked

    def _via_arbiter(
        self, env: mailbox_pb2.Envelope, on_reply: ReplyCallback | None
    ) -> Gate | None:
        address = self._owner.arbiter_address
        if address is None:  # routed here only where there is one
            error = ActorNotFound(f"no actor {short(env.target)} here")
            (on_reply or drop_reply)(make_error_reply(env.id, error))
            return None
        return self._owner.send_remote(address, env, on_reply)

    # -- lookups ------------------------------------------------------------

    def _look_up(self, name: str) -> None:
        self.holding = True
        self._lost.clear()
        self._lookup = asyncio.ensure_future(self._resolve(name))

    async def _resolve(self, name: str) -> None:
        proxy: ActorProxy | None = None
        try:
            proxy = await self._owner.supervisor_client().lookup(name, LOOKUP_TIMEOUT)
        except asyncio.CancelledError:
            self._fail_held("the transport closed while a name was looked up")
            raise
        except Exception as exc:  # the arbiter's way answers instead
            log.debug("looking up %s failed: %r", short(name), exc)
        owner = self._owner
        if owner.closing.is_set():  # its connections are closed: open none now
            self._fail_held("the transport closed while a name was looked up")
            return
        if proxy is not None and (proxy.address == owner.address or proxy.address in self._lost):
            proxy = None  # not reachable by its address from here: the arbiter knows better
        if proxy is not None:
            if len(self._proxies) >= MAX_NAMES:
                self._proxies.clear()
            self._proxies[name] = proxy
        # The sends of this name still held, unresolved, go via the arbiter.
        self._drain(unresolved=name if proxy is None else None)

    def _drain(self, unresolved: str | None) -> None:
        """Send what was held, in order, until a name not known yet needs a lookup."""
        held = self._held
        while held:
            env, dest, on_reply, retry = held[0]
            if isinstance(dest, ActorProxy):
                held.popleft()
                self._owner.send_remote(dest.address, env, on_reply)
                continue
            proxy = self._proxies.get(dest)
            if proxy is None and dest != unresolved:
                self.gate.update(len(held))
                self._look_up(dest)
                return
            held.popleft()
            if proxy is None:
                self._via_arbiter(env, on_reply)
            else:
                self._send_to(proxy, env, dest, on_reply, retry)
        self.holding = False
        self._lookup = None
        self.gate.update(0)

    def _fail_held(self, reason: str) -> None:
        held, self._held = self._held, deque()
        self.holding = False
        self.gate.update(0)
        for env, _dest, on_reply, _retry in held:
            if on_reply is not None:
                on_reply(make_error_reply(env.id, ActorNotAvailable(reason)))
