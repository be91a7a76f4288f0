"""The supervisor, fed plain data (Handshake, Notice) as its services feed it.

It is the running arbiter's (``arb.supervisor``) and lives on the IO loop,
where nothing else runs meanwhile: each test runs its steps there
(``on_io``). The actors it is told about are records only (an
ActorProxyMonitor with a runner that does nothing), except in the last test,
where they live at the address of another transport.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
from conftest import T, served

from actorgrpc import (
    ACTOR_STATES,
    MONITOR_TASK_PERIOD,
    ActorNotAvailable,
    ActorNotFound,
    BadRequest,
    CommandError,
    PermissionDenied,
    spawn,
)
from actorgrpc.core.interfaces import Handshake, Notice
from actorgrpc.supervision.managed import ActorProxyMonitor
from actorgrpc.supervision.supervisor import MAX_DEATH_RECORDS
from actorgrpc.testing import wait_for

_R = TypeVar("_R")
S = ACTOR_STATES
RECORD_FIELDS = {
    "aid",
    "name",
    "named",
    "kind",
    "pid",
    "state",
    "info_state",
    "how",
    "exitcode",
    "ended",
    "error",
}

# -- helpers ---------------------------------------------------------------------------


def on_io(arb, fn: Callable[[], _R]) -> _R:
    """``fn()`` run on the arbiter's IO loop, where the supervisor lives."""

    async def call() -> _R:
        return fn()

    return asyncio.run_coroutine_threadsafe(call(), arb.transport.loop).result(T)


class StillRunning:
    """A runner that runs nothing and is always alive (the actor is a record only)."""

    pid = 0
    heartbeat = None

    def start(self) -> None: ...
    def watch(self, loop: Any, on_exit: Any) -> None: ...
    def is_alive(self) -> bool:
        return True

    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def join(self, timeout: float | None = None) -> bool:
        return False


class Spawned:
    """An actor the supervisor was told is being spawned, and how its spawn went."""

    def __init__(self, arb, aid: str, name: str | None = None, runner: Any = None) -> None:
        self.arb = arb
        self.aid = aid
        self.name = name
        self.token = f"{aid}-token"
        self.settled: list[tuple[bool, Any]] = []
        self.monitor = ActorProxyMonitor(
            aid,
            name,
            arb.transport.address,
            StillRunning() if runner is None else runner,
            "process",
            supervisor=arb.aid,
        )
        arb.supervisor.add(self.monitor, self.token, lambda ok, v: self.settled.append((ok, v)))
        self.session = ""

    def handshake(self, token: str | None = None, pid: int = 4321) -> Any:
        request = Handshake(
            aid=self.aid,
            name=self.name or "",
            address=self.arb.transport.address_text,
            pid=pid,
            kind="process",
            spawn_token=self.token if token is None else token,
        )
        welcome = self.arb.supervisor.handshake(request)
        self.session = welcome.session_token
        return welcome

    def notify(self, state: int, token: str | None = None, **fields: Any) -> bool:
        notice = Notice(self.aid, state, self.session if token is None else token, **fields)
        return self.arb.supervisor.notify(notice)


@contextmanager
def records_only(arb) -> Iterator[list[str]]:
    """The aids put in the list in the block are ended after it, if still managed."""
    made: list[str] = []
    try:
        yield made
    finally:

        def end_all() -> None:
            for aid in made:
                arb.supervisor.actor_exited(aid, None, "test over")

        on_io(arb, end_all)


# -- handshakes and notifies -----------------------------------------------------------


def test_a_handshake_needs_the_token_its_spawn_gave(arb):
    sup = arb.supervisor
    with records_only(arb) as made:

        def steps() -> dict[str, Any]:
            s = Spawned(arb, "sup-hs", "sup-hs-name")
            made.append(s.aid)
            out: dict[str, Any] = {}
            for token in ("wrong", ""):
                with pytest.raises(ActorNotFound, match="no actor 'sup-hs' was spawned here"):
                    s.handshake(token)
            out["refused"] = (s.monitor.state, s.monitor.pid, sup.lookup("sup-hs"))
            with pytest.raises(ActorNotFound):
                sup.handshake(Handshake("sup-never", "", "127.0.0.1:1", 1, "process"))
            out["welcome"] = s.handshake(pid=999)
            out["after"] = (s.monitor.state, s.monitor.pid, s.monitor.address)
            out["lookup"] = (sup.lookup("sup-hs"), sup.lookup("sup-hs-name"))
            return out

        out = on_io(arb, steps)
    assert out["refused"] == (S.INITIAL, 0, None)
    welcome = out["welcome"]
    assert welcome.arbiter == arb.proxy
    assert welcome.notify_period == MONITOR_TASK_PERIOD
    assert re.fullmatch(r"[0-9a-f]{32}", welcome.session_token)
    assert out["after"] == (S.STARTING, 999, arb.transport.address)
    assert [p.aid for p in out["lookup"]] == ["sup-hs", "sup-hs"]


def test_a_notify_needs_the_session_token_of_its_handshake(arb):
    sup = arb.supervisor
    with records_only(arb) as made:

        def steps() -> tuple[Any, ...]:
            s = Spawned(arb, "sup-nt")
            made.append(s.aid)
            s.handshake()
            for token in ("", "f" * 32, s.token):  # none, a wrong one, the spawn's
                with pytest.raises(PermissionDenied, match="without its session token"):
                    s.notify(S.RUN, token)
            refused = (s.monitor.state, list(s.settled))
            accepted = s.notify(S.RUN)
            unknown = sup.notify(Notice("sup-nobody", S.RUN, ""))
            return refused, accepted, unknown

        refused, accepted, unknown = on_io(arb, steps)
    assert refused == (S.STARTING, [])  # nothing changed, the spawn still waits
    assert accepted is True
    assert unknown is False


def test_notifies_only_move_the_state_forward_and_settle_the_spawn_once(arb):
    with records_only(arb) as made:

        def steps() -> list[Any]:
            s = Spawned(arb, "sup-fw", "sup-fw-name")
            made.append(s.aid)
            s.handshake()
            seen = []
            for state, info in (
                (S.RUN, {"n": 1}),
                (S.STARTING, None),  # late: an older notify, overtaken
                (S.RUN, {"n": 2}),
                (S.STOPPING, None),
                (S.RUN, None),
            ):
                s.notify(state, info=info)
                seen.append((s.monitor.state, s.monitor.info))
            return [seen, s.settled]

        seen, settled = on_io(arb, steps)
    assert seen == [
        (S.RUN, {"n": 1}),
        (S.RUN, {"n": 1}),
        (S.RUN, {"n": 2}),
        (S.STOPPING, {"n": 2}),
        (S.STOPPING, {"n": 2}),
    ]
    assert len(settled) == 1
    ok, proxy = settled[0]
    assert ok is True
    assert (proxy.aid, proxy.name, proxy.address) == ("sup-fw", "sup-fw-name", arb.address)


def test_a_notify_with_an_error_fails_the_spawn_and_the_death_record_keeps_it(arb):
    with records_only(arb) as made:

        def steps() -> tuple[Any, ...]:
            s = Spawned(arb, "sup-err")
            made.append(s.aid)
            s.handshake()
            s.notify(S.TERMINATE, error="ValueError: cannot start today", traceback="tb here")
            info_error = s.monitor.info["error"]
            arb.supervisor.actor_exited("sup-err", 1)
            return s.settled, info_error, arb.terminated_actors["sup-err"]

        settled, info_error, record = on_io(arb, steps)
    ((ok, error),) = settled
    assert ok is False
    assert isinstance(error, CommandError) and isinstance(error, ValueError)
    assert (error.remote_type, error.remote_message) == ("ValueError", "cannot start today")
    assert error.remote_traceback == "tb here"
    assert info_error == {"error": "ValueError: cannot start today", "traceback": "tb here"}
    assert record["error"] == info_error
    assert record["how"] == "exited with code 1"


# -- death records ---------------------------------------------------------------------


def test_actor_exited_writes_one_death_record_and_frees_the_name(arb):
    sup = arb.supervisor
    with records_only(arb) as made:

        def steps() -> dict[str, Any]:
            s = Spawned(arb, "sup-end", "sup-end-name")
            made.append(s.aid)
            s.handshake(pid=4242)
            s.notify(S.RUN)
            s.notify(S.STOPPING)
            out: dict[str, Any] = {"managed_before": "sup-end" in arb.managed_actors}
            out["started"] = time.time()
            sup.actor_exited("sup-end", 0)
            out["finished"] = time.time()
            record = out["record"] = arb.terminated_actors["sup-end"]
            sup.actor_exited("sup-end", 9, "again")  # told twice: the first record stands
            out["same"] = arb.terminated_actors["sup-end"] is record and record["how"] == "stopped"
            out["gone"] = (
                "sup-end" in sup.managed,
                "sup-end" in arb.managed_actors,
                "sup-end-name" in arb.registered,
                sup.lookup("sup-end"),
                sup.lookup("sup-end-name"),
            )
            out["death"] = (s.monitor.death is record, s.monitor.is_alive())
            again = Spawned(arb, "sup-end-2", "sup-end-name")  # the name is free
            made.append(again.aid)
            return out

        out = on_io(arb, steps)
    record = out["record"]
    assert out["managed_before"] is True
    assert set(record) - {"pool_restarts"} == RECORD_FIELDS
    assert record["pool_restarts"] == 0  # the arbiter keeps no pool
    assert {k: record[k] for k in RECORD_FIELDS - {"ended"}} == {
        "aid": "sup-end",
        "name": "sup-end-name",
        "named": True,
        "kind": "process",
        "pid": 4242,
        "state": S.CLOSE,
        "info_state": "closed",
        "how": "stopped",
        "exitcode": 0,
        "error": None,
    }
    assert out["started"] <= record["ended"] <= out["finished"]
    assert out["same"] is True
    assert out["gone"] == (False, False, False, None, None)
    assert out["death"] == (True, False)


@pytest.mark.parametrize(
    ("last_state", "exitcode", "how", "state"),
    [
        (S.STOPPING, 0, "stopped", S.CLOSE),
        (S.RUN, 0, "exited with code 0", S.TERMINATE),  # it never said it was stopping
        (S.STOPPING, 3, "exited with code 3", S.TERMINATE),
        (S.RUN, -9, "killed by signal SIGKILL", S.TERMINATE),
        (S.RUN, -200, "killed by signal 200", S.TERMINATE),
        (S.RUN, 143, "terminated by SIGTERM (it stopped gracefully)", S.TERMINATE),
        (S.RUN, None, "ended without an exit code", S.TERMINATE),
    ],
)
def test_a_death_record_says_how_the_actor_ended(arb, last_state, exitcode, how, state):
    with records_only(arb) as made:

        def steps() -> dict[str, Any]:
            s = Spawned(arb, "sup-how")
            made.append(s.aid)
            s.handshake()
            s.notify(last_state)
            arb.supervisor.actor_exited("sup-how", exitcode)
            return arb.terminated_actors["sup-how"]

        record = on_io(arb, steps)
    assert (record["how"], record["state"], record["exitcode"]) == (how, state, exitcode)
    assert record["info_state"] == S.DESCRIPTION[state]


def test_an_actor_that_ends_before_it_runs_fails_its_spawn(arb):
    with records_only(arb) as made:

        def steps() -> list[tuple[bool, Any]]:
            s = Spawned(arb, "sup-early")
            made.append(s.aid)
            s.handshake()
            arb.supervisor.actor_exited("sup-early", None, "could not start: no reason")
            return s.settled

        ((ok, error),) = on_io(arb, steps)
    assert ok is False
    assert isinstance(error, ActorNotAvailable)
    assert str(error) == "actor sup-early ended before it started: could not start: no reason"


def test_lookup_finds_the_arbiter_and_actors_that_have_announced_themselves(arb):
    sup = arb.supervisor
    with records_only(arb) as made:

        def steps() -> list[Any]:
            out = [sup.lookup(t) for t in ("arbiter", arb.aid, arb.name)]
            s = Spawned(arb, "sup-lk", "sup-lk-name")
            made.append(s.aid)
            out += [sup.lookup("sup-lk"), sup.lookup("sup-lk-name")]  # not yet
            s.handshake()
            out += [sup.lookup("sup-lk"), sup.lookup("sup-lk-name"), sup.lookup("sup-nobody")]
            return out

        found = on_io(arb, steps)
    assert found[:3] == [arb.proxy] * 3
    assert found[3:5] == [None, None]
    assert [p.aid for p in found[5:7]] == ["sup-lk", "sup-lk"]
    assert found[7] is None


def test_obituary_tells_how_an_actor_ended_by_aid_or_by_its_last_owner_of_a_name(arb):
    sup = arb.supervisor
    with records_only(arb) as made:

        def steps() -> list[Any]:
            for aid, how in (("sup-ob-1", "first went"), ("sup-ob-2", "then went")):
                made.append(Spawned(arb, aid, "sup-ob").aid)
                sup.actor_exited(aid, None, how)
            made.append(Spawned(arb, "sup-ob-anon").aid)
            sup.actor_exited("sup-ob-anon", 3)
            return [
                sup.obituary(t) for t in ("sup-ob-1", "sup-ob-2", "sup-ob", "sup-ob-anon", "sup-x")
            ]

        told = on_io(arb, steps)
    assert told == [
        "actor sup-ob (sup-ob-1) ended: first went",
        "actor sup-ob (sup-ob-2) ended: then went",
        "actor sup-ob (sup-ob-2) ended: then went",  # the last actor of that name
        "actor sup-ob-anon ended: exited with code 3",
        None,
    ]


def test_death_records_are_bounded_the_oldest_go_first(arb):
    extra = 5
    n = MAX_DEATH_RECORDS + extra

    def steps() -> tuple[int, list[str], Any, Any]:
        for i in range(n):
            Spawned(arb, f"sup-many-{i}")
            arb.supervisor.actor_exited(f"sup-many-{i}", 0)
        kept = list(arb.terminated_actors)
        return (
            len(kept),
            kept[:1] + kept[-1:],
            arb.supervisor.obituary("sup-many-0"),
            arb.supervisor.obituary(f"sup-many-{extra}"),
        )

    size, ends, oldest, first_kept = on_io(arb, steps)
    assert size == MAX_DEATH_RECORDS
    assert ends == [f"sup-many-{extra}", f"sup-many-{n - 1}"]
    assert oldest is None
    assert first_kept == f"actor sup-many-{extra} ended: exited with code 0"


# -- external actors -------------------------------------------------------------------


def test_a_lost_address_ends_the_external_actors_there_and_no_other(arb):
    sup = arb.supervisor
    here = spawn(concurrency="thread").result(T)  # has a runner: address_lost is not its end
    with served() as elsewhere, records_only(arb) as made:

        def join(aid: str, address: str) -> Any:
            welcome = sup.handshake(Handshake(aid, "", address, 77, "external"))
            return welcome.session_token

        def steps() -> dict[str, str]:
            made.append(Spawned(arb, "sup-ext-runner").aid)  # a runner watches it
            tokens = {
                "sup-ext-far": join("sup-ext-far", elsewhere.address_text),
                "sup-ext-near": join("sup-ext-near", arb.transport.address_text),
            }
            made.extend(tokens)
            return tokens

        tokens = on_io(arb, steps)
        assert {sup.managed[a].kind for a in tokens} == {"external"}
        # Fresh notifies, so that missed ones are not what ends them here.
        on_io(arb, lambda: [sup.notify(Notice(a, S.RUN, tok)) for a, tok in tokens.items()])
        # Its server goes: the arbiter's stream to it breaks.
        asyncio.run_coroutine_threadsafe(elsewhere.close(0.1), elsewhere.loop).result(T)
        wait_for(lambda: "sup-ext-far" in arb.terminated_actors, timeout=T, what="its end")
        record = arb.terminated_actors["sup-ext-far"]
        assert record["how"] == "its mailbox stream broke: presumed dead"
        assert (record["kind"], record["exitcode"], record["pid"]) == ("external", None, 77)
        assert record["state"] == S.TERMINATE
        assert "sup-ext-near" in sup.managed
        # The arbiter's own address "lost": only the external actor there ends.
        on_io(arb, lambda: sup.address_lost(arb.transport.address))
        assert "sup-ext-near" in arb.terminated_actors
        assert here.aid in sup.managed
        assert "sup-ext-runner" in sup.managed


def test_an_external_actor_that_reports_its_end_is_ended(arb):
    sup = arb.supervisor
    with records_only(arb) as made:

        def steps() -> list[Any]:
            out = []
            for aid, state in (("sup-ext-closed", S.CLOSE), ("sup-ext-term", S.TERMINATE)):
                welcome = sup.handshake(
                    Handshake(aid, "", arb.transport.address_text, 5, "external")
                )
                made.append(aid)
                sup.notify(Notice(aid, state, welcome.session_token))
                out.append(arb.terminated_actors.get(aid))
            with pytest.raises(BadRequest, match="belonged to an actor that ended"):
                sup.handshake(
                    Handshake("sup-ext-closed", "", arb.transport.address_text, 5, "external")
                )
            return out

        closed, terminated = on_io(arb, steps)
    assert (closed["how"], closed["exitcode"], closed["state"]) == ("stopped", 0, S.CLOSE)
    assert (terminated["how"], terminated["exitcode"]) == ("ended without an exit code", None)
