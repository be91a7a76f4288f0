"""The supervisor: the arbiter's registry of the tree and its Supervisor service logic.

It records every actor the arbiter spawned (an ActorProxyMonitor each),
resolves spawn futures when actors report RUN, keeps a death record for
every actor that ends, and answers lookups. Handshakes and notifies come in
as plain data (``actorgrpc.core.interfaces``): from thread actors through
``LocalSupervisorClient``, from other processes through the remote layer's
Supervisor service, which also builds the wire form of the tree's Info. IO
loop only: nothing here is thread-safe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import logging
import secrets
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from actorgrpc.core.actor import Actor
from actorgrpc.core.consts import ACTOR_STATES, MONITOR_TASK_PERIOD
from actorgrpc.core.errors import (
    ActorNotAvailable,
    ActorNotFound,
    BadRequest,
    PermissionDenied,
    remote_error,
    short,
)
from actorgrpc.core.interfaces import Handshake, Notice, Welcome
from actorgrpc.core.proxy import ActorProxy, format_address, parse_address
from actorgrpc.supervision.managed import ActorProxyMonitor
from actorgrpc.supervision.runners import TERMINATED_EXIT_CODE

if TYPE_CHECKING:
    from actorgrpc.core._typing import Address
    from actorgrpc.core.futures import Settle
    from actorgrpc.core.interfaces import Transport

__all__ = ["LocalSupervisorClient", "Supervisor"]

log = logging.getLogger("actorgrpc")
_S = ACTOR_STATES
#: Death records kept (the oldest go first).
MAX_DEATH_RECORDS = 1000


class Supervisor:
    """Registry of the tree, owned by the arbiter."""

    def __init__(self, arbiter: Actor) -> None:
        self.arbiter = arbiter
        self.managed: dict[str, ActorProxyMonitor] = {}
        self.terminated: dict[str, dict[str, Any]] = {}
        #: Names of the tree's actors, mapped to their aids: the arbiter's own
        #: (pulsar registers it), monitors' and those given at spawn.
        self.names: dict[str, str] = {
            name: arbiter.aid for name in {"arbiter", arbiter.name or ""} if name
        }
        self._tokens: dict[str, str] = {}
        self._sessions: dict[str, str] = {}
        self._waiters: dict[str, Settle] = {}
        self._ended: dict[str, asyncio.Event] = {}
        #: Told the aid of each actor that reports STOPPING and has a runner to end it.
        self.on_stopping: Callable[[str], None] = lambda aid: None
        #: Told the aid of each actor found unresponsive (see check_liveness).
        self.on_unresponsive: Callable[[str], None] = lambda aid: None
        self._next_beat_check = 0.0
        #: Actor actors (the arbiter, monitors) by aid: each keeps its
        #: own ``managed_actors`` and ``terminated_actors``.
        self.owners: dict[str, Actor] = {arbiter.aid: arbiter}

    # -- registration -------------------------------------------------------

    def add(self, entry: ActorProxyMonitor, token: str, waiter: Settle) -> None:
        """Record an actor about to be spawned; ``waiter`` learns how its start went."""
        aid = entry.aid
        # Aids and names share one namespace for lookups: neither may shadow the other.
        if aid in self.managed or aid in (self.arbiter.aid, self.arbiter.name, "arbiter"):
            raise BadRequest(f"aid {short(aid)} is taken")
        if aid in self.names:
            raise BadRequest(f"aid {short(aid)} is the name of actor {self.names[aid]}")
        if entry.named and (entry.name in self.managed or entry.name == self.arbiter.aid):
            raise BadRequest(f"the name {short(entry.name)} is the aid of another actor")
        if entry.named and entry.name:
            self._check_name(entry.name, entry.aid)
            self.names[entry.name] = entry.aid
        self.managed[entry.aid] = entry
        owner = self.owners.get(entry.supervisor)
        if owner is not None and owner.managed_actors is not None:
            owner.managed_actors[entry.aid] = entry
        self._tokens[entry.aid] = token
        self._waiters[entry.aid] = waiter
        self._ended[entry.aid] = asyncio.Event()

    def _check_name(self, name: str, aid: str) -> None:
        owner = self.names.get(name)
        if (owner is not None and owner != aid) or name == self.arbiter.name:
            raise BadRequest(
                f"the name {short(name)} is taken by actor {owner or self.arbiter.aid}"
            )

    def handshake(self, request: Handshake) -> Welcome:
        """An actor announces its address: once, a spawned one with its spawn's token.

        A second handshake for a live aid is refused (PermissionDenied): it
        would take over the actor's address, and with it its requests.
        """
        entry = self.managed.get(request.aid)
        if entry is None and request.kind == "external":
            entry = self._add_external(request)
        elif entry is None or not _same_token(
            self._tokens.get(request.aid, ""), request.spawn_token
        ):
            raise ActorNotFound(f"no actor {short(request.aid)} was spawned here")
        elif entry.state >= _S.STARTING:
            raise PermissionDenied(f"actor {short(request.aid)} has announced itself already")
        try:
            entry.address = parse_address(request.address)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        entry.pid = request.pid
        entry.language = request.language or "python"
        entry.state = _S.STARTING
        transport = self.arbiter.transport
        if entry.address != transport.address:
            # The stream opens now: it carries the arbiter's requests, and its
            # breaking is the first sign of death for actors with no process here.
            entry.mailbox = transport.connect(entry.address)
        entry.notified = entry.started = time.time()
        session = self._sessions[request.aid] = secrets.token_hex(16)
        return Welcome(
            arbiter=self.arbiter.proxy,
            notify_period=MONITOR_TASK_PERIOD,
            session_token=session,
        )

    def _add_external(self, request: Handshake) -> ActorProxyMonitor:
        """An actor that runs on its own (another language, another host) joins."""
        aid = request.aid
        if not aid or len(aid) > 128 or not aid.isprintable() or aid == self.arbiter.aid:
            raise BadRequest(f"bad aid for an external actor: {short(aid)}")
        name = request.name
        if name and (len(name) > 128 or not name.isprintable()):
            raise BadRequest(
                f"an external actor's name must be printable, at most 128 characters: {short(name)}"
            )
        if aid in self.terminated:
            raise BadRequest(f"aid {aid!r} belonged to an actor that ended; choose a new one")
        try:
            address = parse_address(request.address)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        if not address[1]:
            raise BadRequest(f"an external actor needs a port, not {short(request.address)}")
        entry = ActorProxyMonitor(
            aid,
            name or "external",
            address,
            None,
            "external",
            supervisor=self.arbiter.aid,
            named=bool(name),
        )
        self.add(entry, request.spawn_token, lambda ok, value: None)
        return entry

    def check_liveness(self) -> None:
        """End actors that stopped showing they live.

        One that no process or thread watches (an external actor) ends once it
        misses two notifies. One whose loop has gone silent (no notify, no
        heartbeat) for longer than its ``timeout`` is unresponsive: it is
        stopped, terminated after ACTOR_ACTION_TIMEOUT, and its death record
        says so (``on_unresponsive``).
        """
        now = time.time()
        limit = now - 1.75 * MONITOR_TASK_PERIOD
        # Heartbeats come once a period: looking at them twice a period is enough.
        beats = now >= self._next_beat_check
        if beats:
            self._next_beat_check = now + MONITOR_TASK_PERIOD / 2
        for entry in list(self.managed.values()):
            if entry.runner is None:
                if entry.notified and entry.notified < limit:
                    self.actor_exited(entry.aid, None, "missed its notifies: presumed dead")
            elif beats and entry.timeout and entry.state == _S.RUN and not entry.reason:
                silent = now - entry.notified
                if silent > entry.timeout:
                    entry.reason = (
                        f"unresponsive: no sign of life for {silent:.1f}s "
                        f"(its timeout is {entry.timeout:g}s)"
                    )
                    log.warning(
                        "actor %s is %s; stopping it", entry.name or entry.aid, entry.reason
                    )
                    self.on_unresponsive(entry.aid)

    def notify(self, request: Notice) -> bool:
        """An actor reports its state and info; False when it is not known here."""
        entry = self.managed.get(request.aid)
        if entry is None:
            return False
        expected = self._sessions.get(request.aid)
        if expected is None or not _same_token(expected, request.session_token):
            raise PermissionDenied(f"notify for {request.aid!r} without its session token")
        entry.notified = time.time()
        # States only move forward; notifies may arrive out of order (concurrent RPCs).
        entry.state = max(entry.state, request.state)
        if request.info is not None:
            # Read when someone asks: most notifies are never looked at.
            entry.set_packed_info(request.info)
        if request.error:
            entry.info["error"] = {"error": request.error, "traceback": request.traceback}
            type_name, _, message = request.error.partition(": ")
            self._settle(request.aid, False, remote_error(type_name, message, request.traceback))
        elif request.state == _S.RUN:
            self._settle(request.aid, True, entry.proxy)
        elif request.state == _S.STOPPING and entry.runner is not None:
            self.on_stopping(request.aid)
        elif request.state >= _S.CLOSE and entry.runner is None:
            self.actor_exited(request.aid, 0 if request.state == _S.CLOSE else None)
        return True

    def _settle(self, aid: str, ok: bool, value: Any) -> None:
        waiter = self._waiters.pop(aid, None)
        if waiter is not None:
            waiter(ok, value)

    def actor_exited(self, aid: str, exitcode: int | None, how: str = "") -> None:
        """An actor's process or thread has ended: keep its death record."""
        entry = self.managed.pop(aid, None)
        if entry is None:
            return
        if entry.named and entry.name and self.names.get(entry.name) == aid:
            del self.names[entry.name]
        self._tokens.pop(aid, None)
        self._sessions.pop(aid, None)
        clean = exitcode == 0 and entry.state in (_S.STOPPING, _S.CLOSE)
        entry.state = _S.CLOSE if clean else _S.TERMINATE
        if not how:
            how = "stopped" if clean else _describe_exit(exitcode)
        if entry.reason:
            how = f"{entry.reason}; {how}"
        error = entry.info.get("error") if isinstance(entry.info, dict) else None
        record: dict[str, Any] = {
            "aid": aid,
            "name": entry.name or "",
            "named": entry.named,
            "kind": entry.kind,
            "pid": entry.pid,
            "state": entry.state,
            "info_state": ACTOR_STATES.DESCRIPTION[entry.state],
            "how": how,
            "exitcode": exitcode,
            "ended": time.time(),
            "error": error,
        }
        owner = self.owners.get(entry.supervisor)
        if owner is not None:
            if owner.managed_actors is not None:
                owner.managed_actors.pop(aid, None)
            record["pool_restarts"] = owner.worker_ended(aid, record)
        self.terminated[aid] = record
        while len(self.terminated) > MAX_DEATH_RECORDS:
            del self.terminated[next(iter(self.terminated))]
        entry.mark_ended(record)
        self._settle(aid, False, ActorNotAvailable(f"actor {aid} ended before it started: {how}"))
        event = self._ended.pop(aid, None)
        if event is not None:
            event.set()
        log.info("actor %s (%s) ended: %s", entry.name or aid, entry.kind, how)

    async def wait_ended(self, aids: list[str], timeout: float) -> list[str]:
        """Wait until those actors end; return those still alive after ``timeout``."""
        events = [self._ended[a] for a in aids if a in self._ended]
        if events:
            waits = [asyncio.ensure_future(e.wait()) for e in events]
            _, pending = await asyncio.wait(waits, timeout=timeout)
            for w in pending:
                w.cancel()
        return [a for a in aids if a in self.managed]

    # -- queries ------------------------------------------------------------

    def lookup(self, target: str) -> ActorProxy | None:
        """The actor with that aid or name (the arbiter included), or None."""
        arbiter = self.arbiter
        if target in (arbiter.aid, arbiter.name, "arbiter"):
            return arbiter.proxy
        entry = self.managed.get(target) or self.managed.get(self.names.get(target, ""))
        if entry is None or entry.state < _S.STARTING:
            return None
        return entry.proxy

    def obituary(self, target: str) -> str | None:
        """How the ended actor with that aid (or last with that name) ended, or None."""
        record = self.terminated.get(target)
        if record is None:
            for rec in reversed(self.terminated.values()):
                if rec.get("named") and rec["name"] == target:
                    record = rec
                    break
        if record is None:
            return None
        who = f"{record['name']} ({record['aid']})" if record.get("named") else record["aid"]
        return f"actor {who} ended: {record['how']}"

    async def obituary_soon(self, target: str, address: Address, timeout: float) -> str | None:
        """How ``target`` ended, once the actors at ``address`` are seen to end, or None.

        For requests whose stream to ``address`` broke: that is how a process's
        end shows first, and its runner sees it just after, so this waits for
        those actors' ends, up to ``timeout``. None while ``target`` still
        lives there.
        """
        there = [
            e.aid for e in self.managed.values() if e.address == address and e.runner is not None
        ]
        if there:
            await self.wait_ended(there, timeout)
        entry = self.managed.get(self.names.get(target, target))
        if entry is not None and entry.address == address:
            return None
        return self.obituary(target)

    def address_lost(self, address: Address) -> None:
        """The mailbox stream to ``address`` broke: actors nobody else watches there ended."""
        for entry in list(self.managed.values()):
            if entry.runner is None and entry.address == address:
                self.actor_exited(entry.aid, None, "its mailbox stream broke: presumed dead")

    def actors_info(self) -> list[dict[str, Any]]:
        """Latest info of every live actor, for the arbiter's info()."""
        out = []
        for m in list(self.managed.values()):
            out.append(
                {
                    "aid": m.aid,
                    "name": m.name or "",
                    "kind": m.kind,
                    "language": m.language,
                    "pid": m.pid,
                    "address": format_address(m.address),
                    "state": m.state,
                    "info_state": ACTOR_STATES.DESCRIPTION.get(m.state, "unknown"),
                    "last_notified": m.notified,
                    "info": m.info,
                }
            )
        return out


def _same_token(expected: str, given: str) -> bool:
    """Constant-time comparison of tokens, whatever characters a peer sent."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "ended without an exit code"
    if exitcode == TERMINATED_EXIT_CODE:
        return "terminated by SIGTERM (it stopped gracefully)"
    if exitcode < 0:
        try:
            return f"killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class LocalSupervisorClient:
    """The supervisor as seen from a thread actor in the arbiter's process.

    Calls hop onto the IO loop, where the supervisor lives, without gRPC.
    """

    def __init__(self, transport: Transport, supervisor: Supervisor) -> None:
        self._transport = transport
        self._sup = supervisor

    async def _on_io(self, fn: Any, request: Any) -> Any:
        result: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def call() -> None:
            if not result.set_running_or_notify_cancel():
                return
            try:
                result.set_result(fn(request))
            except Exception as exc:
                result.set_exception(exc)

        try:
            self._transport.call_soon(call)
        except RuntimeError:
            raise ActorNotAvailable("the arbiter has stopped") from None
        return await asyncio.wrap_future(result)

    async def handshake(self, request: Handshake, timeout: float) -> Welcome:
        """Register with the arbiter."""
        welcome: Welcome = await asyncio.wait_for(
            self._on_io(self._sup.handshake, request), timeout
        )
        return welcome

    async def notify(self, notice: Notice, timeout: float) -> bool:
        """Report liveness, state and info."""
        known: bool = await asyncio.wait_for(self._on_io(self._sup.notify, notice), timeout)
        return known

    async def lookup(self, target: str, timeout: float) -> ActorProxy | None:
        """Find an actor by aid or name."""
        proxy: ActorProxy | None = await asyncio.wait_for(
            self._on_io(self._sup.lookup, target), timeout
        )
        return proxy
