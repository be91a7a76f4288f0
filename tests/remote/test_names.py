"""Sends by name from a process actor: one order with sends by proxy, and names that move.

A process actor's transport resolves a name once, with the Supervisor
service's Lookup, and then sends by name on the same stream as by proxy
(actorgrpc/remote/names.py).
"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from conftest import KINDS, SPAWN_T, T, get_extra, on_loop, served

from actorgrpc import ActorNotAvailable, ActorNotFound, ActorProxy, command, room, send, spawn
from actorgrpc.core.consts import ACTOR_STATES
from actorgrpc.core.interfaces import Handshake, Notice
from actorgrpc.remote.names import LOOKUP_TIMEOUT
from actorgrpc.testing import wait_for

# -- commands of this module (process actors import it to find them) --------------------


@command(ack=False)
def nm_note(request, seq: int) -> None:
    """Record ``seq`` in the order requests run."""
    request.actor.extra.setdefault("seqs", []).append(seq)


@command()
def nm_seqs(request) -> list[int]:
    """What nm_note recorded."""
    return list(request.actor.extra.get("seqs", []))


@command()
async def nm_interleave(request, target: ActorProxy, n: int) -> int:
    """Send nm_note 0..n-1 to ``target``, by its name and by its proxy in turns.

    On a process actor's IO loop a flood must wait for room (the ways are bounded).
    """
    by_name = target.name or target.aid
    for seq in range(n):
        dest = by_name if seq % 2 else target
        await room(dest)
        send(dest, "nm_note", seq)
    return n


@command()
def nm_aid(request) -> str:
    """The aid of the actor that ran this."""
    return request.actor.aid


@command()
async def nm_ask(request, target: ActorProxy | str, action: str, *args):
    """Send ``action`` to ``target`` from this actor; answer its reply."""
    return await send(target, action, *args)


@command()
async def nm_relay_counted(request, target: str):
    """Count the runs, then ping ``target`` (its error is this command's)."""
    request.actor.extra["runs"] = request.actor.extra.get("runs", 0) + 1
    return await send(target, "ping")


@contextmanager
def nobody_listening() -> Iterator[tuple[str, int]]:
    """An address where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = s.getsockname()
    yield address


@contextmanager
def never_answering() -> Iterator[tuple[str, int]]:
    """An address that takes connections and never says a word."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()


# -- one order per sender and target ----------------------------------------------------


def inversions(seqs: list[int]) -> int:
    return sum(1 for a, b in itertools.pairwise(seqs) if b < a)


def test_sends_by_name_and_by_proxy_from_a_process_actor_keep_one_order(arb):
    sink = spawn(name="nm-sink").result(SPAWN_T)
    sender = spawn().result(SPAWN_T)
    n = 20_000
    assert send(sender, "nm_interleave", sink, n).result(T) == n
    seqs = wait_for(
        lambda: (s := send(sink, "nm_seqs").result(T)) and len(s) == n and s,
        timeout=T,
        what=f"the sink to receive {n} requests",
    )
    assert inversions(seqs) == 0
    assert seqs == list(range(n))


# -- names that move --------------------------------------------------------------------


def ended(arb, aid: str) -> bool:
    return aid in arb.terminated_actors


@pytest.mark.parametrize("kind", KINDS)
def test_a_name_taken_by_a_new_actor_is_found_where_the_new_one_lives(arb, kind):
    old = spawn(name="nm-x").result(SPAWN_T)
    sender = spawn().result(SPAWN_T)
    assert send(sender, "nm_ask", "nm-x", "nm_aid").result(T) == old.aid
    send(old, "stop")
    wait_for(lambda: ended(arb, old.aid), timeout=T, what="the first nm-x to end")
    new = spawn(name="nm-x", concurrency=kind).result(SPAWN_T)
    assert send(sender, "nm_ask", "nm-x", "nm_aid").result(T) == new.aid
    assert send(sender, "nm_ask", "nm-x", "nm_aid").result(T) == new.aid


def test_a_name_answered_not_there_is_looked_up_again_and_sent_once_more(arb):
    # An external actor's server can outlive the actor: the name goes to a new
    # actor while the stream to the old address stays up.
    sup = arb.supervisor
    sender = spawn().result(SPAWN_T)
    with served() as elsewhere:
        welcome = on_loop(
            arb.transport,
            lambda: sup.handshake(
                Handshake("nm-ext", "nm-y", elsewhere.address_text, 1, "external")
            ),
        )
        # Nobody by that name is there: the answer of that server, as without a cache.
        with pytest.raises(ActorNotFound, match=f"no actor 'nm-y' at {elsewhere.address_text}"):
            send(sender, "nm_ask", "nm-y", "nm_aid").result(T)
        on_loop(
            arb.transport,
            lambda: sup.notify(Notice("nm-ext", ACTOR_STATES.CLOSE, welcome.session_token)),
        )
        assert ended(arb, "nm-ext")
        new = spawn(name="nm-y").result(SPAWN_T)
        assert send(sender, "nm_ask", "nm-y", "nm_aid").result(T) == new.aid


def test_a_command_that_fails_with_actor_not_found_itself_runs_once(arb):
    relay = spawn(name="nm-relay").result(SPAWN_T)
    sender = spawn().result(SPAWN_T)
    with pytest.raises(ActorNotFound, match="no actor 'nm-nobody' in this tree"):
        send(sender, "nm_ask", "nm-relay", "nm_relay_counted", "nm-nobody").result(T)
    assert send(relay, "run", get_extra, "runs").result(T) == 1


# -- names nobody knows, arbiters nobody reaches ----------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_an_unknown_or_ended_name_fails_from_a_process_actor_with_the_arbiters_answer(arb, kind):
    sender = spawn().result(SPAWN_T)
    with pytest.raises(ActorNotFound, match="no actor 'nm-nobody' in this tree"):
        send(sender, "nm_ask", "nm-nobody", "ping").result(T)
    gone = spawn(name="nm-gone", concurrency=kind).result(SPAWN_T)
    assert send(sender, "nm_ask", "nm-gone", "ping").result(T) == "pong"
    send(gone, "stop")
    wait_for(lambda: ended(arb, gone.aid), timeout=T, what="nm-gone to end")
    with pytest.raises(ActorNotAvailable, match=rf"actor nm-gone \({gone.aid}\) ended: stopped"):
        send(sender, "nm_ask", "nm-gone", "ping").result(T)


def test_a_name_sent_where_the_arbiter_is_unreachable_fails_at_once():
    # A transport as a process actor's, whose arbiter is gone.
    with served() as t, nobody_listening() as gone:
        t.arbiter_address = gone
        start = time.monotonic()
        with pytest.raises(ActorNotAvailable, match="no reply from"):
            t.request(None, "nm-nobody", "ping", (), {}).result(T)
        assert time.monotonic() - start < LOOKUP_TIMEOUT


def test_sends_held_behind_a_lookup_nobody_answers_go_out_after_its_deadline():
    # The silent one goes first: then the transport's stream to it breaks.
    with served() as peer, served() as t, never_answering() as silent:
        t.arbiter_address = silent
        assert t.request(None, "nm-nobody", "nm_note", (1,), {}, ack=False) is None
        # Held behind that name's lookup, which times out: then it goes.
        stranger = ActorProxy("nm-stranger", None, peer.address)
        with pytest.raises(ActorNotFound, match=f"no actor 'nm-stranger' at {peer.address_text}"):
            t.request(None, stranger, "ping", (), {}).result(LOOKUP_TIMEOUT + T)
