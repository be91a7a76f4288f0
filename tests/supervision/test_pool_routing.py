"""Pools that take work: a user command sent to a monitor's name goes to one of its workers.

Round robin by default, least busy or broadcast on request; only workers that
run are routed to; a worker that dies with requests in flight fails them with
ActorNotAvailable naming it and how it died, or, with ``retries=N``, they are
re-sent to a live worker. The standard commands stay the monitor's own, and no
user command runs on the arbiter's IO loop. Workers are thread actors where
the kind does not matter (they start fast), process actors where a SIGKILL or
a pid must be real.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import grpc
import pytest
from actorgrpc.v1 import mailbox_pb2, mailbox_pb2_grpc
from conftest import SPAWN_T, T

from actorgrpc import (
    ACTOR_STATES,
    ActorError,
    ActorNotAvailable,
    ActorNotFound,
    CommandError,
    command,
    send,
)
from actorgrpc.core.commands import find_command, registered_commands
from actorgrpc.remote import wire
from actorgrpc.supervision import pools
from actorgrpc.supervision.pools import Monitor
from actorgrpc.testing import authenticated_channel, wait_for

#: Holds pr_hold's callers (thread workers share this process's memory).
HOLD = threading.Event()


@command()
def pr_whoami(request, n: int = 0) -> list:
    """Where the command ran: the actor, its process and its thread."""
    return [n, request.actor.aid, os.getpid(), threading.current_thread().name]


@command()
def pr_hold(request) -> str:
    """Block the worker's loop until HOLD is set (a busy worker)."""
    HOLD.wait(T)
    return request.actor.aid


@command()
def pr_fail_on(request, name: str) -> str:
    """Fail on the worker called ``name``; elsewhere answer the worker's aid."""
    if request.actor.name == name:
        raise ValueError(f"{name} refuses")
    return request.actor.aid


@command()
def pr_once(request, marker: str) -> str:
    """The first worker to run it makes ``marker`` and never answers; the others answer."""
    try:
        os.close(os.open(marker + ".claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return request.actor.aid
    with open(marker + ".new", "w") as f:
        f.write(request.actor.aid)
    os.rename(marker + ".new", marker)  # whole, once it shows
    time.sleep(60)  # the work that never ends: the test kills this worker
    return "unreachable"


@command(ack=False)
def pr_mark(request, path: str) -> None:
    with open(path, "a") as f:
        f.write(request.actor.aid + "\n")


def held_start(actor) -> None:
    """A start hook that holds the worker in STARTING until HOLD is set."""
    HOLD.wait(T)


def bad_start(actor) -> None:
    raise ValueError("cannot start today")


def running(monitor: Monitor) -> list[str]:
    """The aids of the pool's running workers, in slot order."""
    by_name = {
        str(m.name): a for a, m in monitor.managed_actors.items() if m.state == ACTOR_STATES.RUN
    }
    return [by_name[name] for name in sorted(by_name)]


def full(monitor: Monitor) -> bool:
    return len(running(monitor)) == monitor.num_workers


def thread_name(actor) -> str:
    return threading.current_thread().name


def own_aid(actor) -> str:
    return actor.aid


# -- the test: 10,000 requests while workers are SIGKILLed ---------------------------


@pytest.mark.parametrize("retries", [2, 0])
def test_ten_thousand_requests_to_a_pool_whose_workers_are_killed(arb, retries):
    total, kills_wanted, window = 10_000, 3, 500
    mon = arb.add_monitor("pr-chaos", num_workers=4, retries=retries)
    assert mon.wait_ready(SPAWN_T)
    wait_for(lambda: full(mon), timeout=SPAWN_T, what="four running workers")
    outcomes: dict[int, object] = {}
    done = threading.Event()

    def client() -> None:
        # Pipelined: `window` requests in flight at a time.
        for start in range(0, total, window):
            futures = [(n, send("pr-chaos", "pr_whoami", n)) for n in range(start, start + window)]
            for n, fut in futures:
                try:
                    outcomes[n] = fut.result(T)
                except ActorError as exc:
                    outcomes[n] = exc
        done.set()

    pings: list[float] = []
    ping_errors: list[BaseException] = []

    def pinger() -> None:
        # A separate client, on a channel of its own: the arbiter answers it throughout.
        with authenticated_channel(arb.address) as channel:
            stub = mailbox_pb2_grpc.MailboxStub(channel)
            while not done.is_set():
                began = time.monotonic()
                try:
                    reply = stub.Send(
                        mailbox_pb2.Envelope(target="arbiter", action="ping"), timeout=5
                    )
                    assert reply.result.string_value == "pong"
                except (grpc.RpcError, AssertionError) as exc:
                    ping_errors.append(exc)
                pings.append(time.monotonic() - began)
                done.wait(0.02)  # pacing the pings, not waiting for a result

    threads = [threading.Thread(target=client), threading.Thread(target=pinger)]
    for t in threads:
        t.start()
    killed: list[tuple[str, int]] = []
    try:
        while not done.is_set() and len(killed) < kills_wanted:
            # Kill a running worker, with requests in flight, each time another
            # share of them has been answered (replacements start meanwhile).
            alive = running(mon)
            if len(outcomes) > total * (len(killed) + 1) // (kills_wanted + 1) and alive:
                entry = mon.managed_actors[alive[len(killed) % len(alive)]]
                os.kill(entry.pid, signal.SIGKILL)
                killed.append((entry.aid, entry.pid))
            done.wait(0.005)  # pacing the killer, not waiting for a result
    finally:
        for t in threads:
            t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert len(killed) == kills_wanted, "the requests ended before the kills"
    assert len(outcomes) == total
    errors = [o for o in outcomes.values() if isinstance(o, BaseException)]
    assert not [e for e in errors if isinstance(e, ActorNotFound)]
    assert not [e for e in errors if not isinstance(e, ActorNotAvailable)], errors[:3]
    replies = {n: o for n, o in outcomes.items() if not isinstance(o, BaseException)}
    assert all(reply[0] == n and reply[2] != os.getpid() for n, reply in replies.items())
    if retries:
        assert not errors, errors[:3]
        # The kills caught requests in flight: they were sent again.
        assert mon.pool_info()["resent"] > 0
    else:
        assert mon.pool_info()["resent"] == 0
        # Each kill caught requests in flight: they say which worker died, and how.
        assert errors
        victims = {aid for aid, _ in killed}
        for error in errors:
            message = str(error)
            assert "of pool pr-chaos" in message and any(aid in message for aid in victims)
            assert message.endswith("ended before it replied: killed by signal SIGKILL"), message
    assert not ping_errors, ping_errors[:3]
    assert len(pings) > 10 and max(pings) < 2.0, max(pings)
    wait_for(lambda: full(mon), timeout=SPAWN_T, what="the pool back to four workers")
    assert mon.restarts == kills_wanted


# -- routing ----------------------------------------------------------------------------------


def test_round_robin_spreads_requests_over_the_workers_in_slot_order(arb):
    mon = arb.add_monitor("pr-rr", num_workers=3, concurrency="thread")
    assert mon.wait_ready(SPAWN_T)
    wait_for(lambda: full(mon), timeout=T, what="three running workers")
    workers = running(mon)  # slot order: pr-rr-1, pr-rr-2, pr-rr-3
    futures = [send("pr-rr", "pr_whoami", n) for n in range(30)]
    aids = [fut.result(T)[1] for fut in futures]
    assert Counter(aids) == dict.fromkeys(workers, 10)
    turn = workers.index(aids[0])  # where the monitor's turn stood
    assert aids == [workers[(turn + n) % 3] for n in range(30)]
    assert mon.pool_info()["routing"] == "round_robin"


def test_least_busy_prefers_an_idle_worker_over_a_blocked_one(arb):
    mon = arb.add_monitor("pr-lb", num_workers=2, concurrency="thread", routing="least_busy")
    assert mon.wait_ready(SPAWN_T)
    wait_for(lambda: full(mon), timeout=T, what="two running workers")
    first, second = running(mon)
    HOLD.clear()
    try:
        held = send("pr-lb", "pr_hold")  # both idle: the first in slot order takes it
        # One by one (routed in the order sent): the idle worker has nothing in
        # flight each time, the blocked one has one.
        aids = [send("pr-lb", "pr_whoami", n).result(5)[1] for n in range(6)]
        assert aids == [second] * 6
        assert not held.done()
    finally:
        HOLD.set()
    assert held.result(T) == first


def test_broadcast_reaches_every_worker_and_lists_their_replies_in_slot_order(arb):
    mon = arb.add_monitor("pr-bc", num_workers=3, concurrency="thread", routing="broadcast")
    assert mon.wait_ready(SPAWN_T)
    wait_for(lambda: full(mon), timeout=T, what="three running workers")
    replies = send("pr-bc", "pr_whoami", 7).result(T)
    assert [r[1] for r in replies] == running(mon)
    assert all(r[0] == 7 for r in replies)
    # One worker's error is the broadcast's (the first in slot order), once all have answered.
    with pytest.raises(CommandError, match="pr-bc-2 refuses") as caught:
        send("pr-bc", "pr_fail_on", "pr-bc-2").result(T)
    assert isinstance(caught.value, ValueError)
    assert send("pr-bc", "pr_fail_on", "nobody").result(T) == running(mon)
    assert mon.pool_info()["routing"] == "broadcast"


def test_a_request_sent_without_ack_goes_to_one_worker_once(arb, tmp_path):
    mon = arb.add_monitor("pr-noack", num_workers=2, concurrency="thread")
    assert mon.wait_ready(SPAWN_T)
    wait_for(lambda: full(mon), timeout=T, what="two running workers")
    path = tmp_path / "marks"
    assert send("pr-noack", "pr_mark", str(path)) is None
    wait_for(path.exists, timeout=T, what="the worker's mark")
    # Sent after the mark: when it answers, the worker has written all it will.
    send("pr-noack", "pr_whoami").result(T)
    send("pr-noack", "pr_whoami").result(T)
    (marked,) = path.read_text().split()
    assert marked in running(mon)


# -- the monitor's own commands, and where user commands run ---------------------------------


def test_standard_commands_sent_to_the_monitor_are_its_own(arb):
    mon = arb.add_monitor("pr-own", num_workers=1, concurrency="thread")
    assert mon.wait_ready(SPAWN_T)
    wait_for(lambda: full(mon), timeout=T, what="a running worker")
    (worker,) = running(mon)
    assert send("pr-own", "ping").result(T) == "pong"
    assert send("pr-own", "echo", "hi").result(T) == "hi"
    info = send("pr-own", "info").result(T)
    assert info["actor"]["aid"] == mon.aid and info["pool"]["workers"] == [worker]
    assert send("pr-own", "run", own_aid).result(T) == mon.aid
    assert isinstance(send("pr-own", "notify").result(T), float)
    with pytest.raises(CommandError, match="only the arbiter spawns"):
        send("pr-own", "spawn").result(T)
    with pytest.raises(CommandError, match="only the arbiter kills"):
        send("pr-own", "kill_actor", worker).result(T)
    # Any other command is the pool's.
    assert send("pr-own", "pr_whoami").result(T)[1] == worker
    # The monitor's own are exactly the standard commands.
    standard = {
        name
        for name in registered_commands()
        if find_command(name).module == "actorgrpc.core.standard_commands"
    }
    assert standard == pools.MONITOR_COMMANDS


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_a_user_command_never_runs_on_the_arbiters_loop(arb, kind):
    mon = arb.add_monitor(f"pr-where-{kind}", num_workers=2, concurrency=kind)
    assert mon.wait_ready(SPAWN_T)
    wait_for(lambda: full(mon), timeout=SPAWN_T, what="two running workers")
    io_thread = send("arbiter", "run", thread_name).result(T)  # where the monitor runs
    _, aid, pid, thread = send(mon.name, "pr_whoami").result(T)
    assert aid in running(mon) and aid != mon.aid
    if kind == "process":
        assert pid == mon.managed_actors[aid].pid != os.getpid()
    else:
        assert thread == f"actorgrpc-{mon.managed_actors[aid].name}" != io_thread
    # An outside client's request, through the arbiter's server, goes to a worker too.
    with authenticated_channel(arb.address) as channel:
        reply = mailbox_pb2_grpc.MailboxStub(channel).Send(
            mailbox_pb2.Envelope(target=mon.name, action="pr_whoami"), timeout=T
        )
    assert wire.decode(reply.result)[1] in running(mon)


def test_a_blocked_worker_does_not_stall_the_arbiter(arb):
    """The issue's symptom: a blocking command sent to the pool stalled the arbiter's ping."""
    mon = arb.add_monitor("pr-stall", num_workers=1, concurrency="thread")
    assert mon.wait_ready(SPAWN_T)
    wait_for(lambda: full(mon), timeout=T, what="a running worker")
    HOLD.clear()
    try:
        held = send("pr-stall", "pr_hold")
        began = time.monotonic()
        assert send("arbiter", "ping").result(2) == "pong"
        assert send("pr-stall", "info").result(2)["pool"]["num_workers"] == 1
        assert time.monotonic() - began < 1.0
        assert not held.done()
    finally:
        HOLD.set()
    assert held.result(T) == running(mon)[0]


# -- no worker to route to ----------------------------------------------------------------------


def test_a_request_waits_for_a_worker_that_is_starting(arb):
    HOLD.clear()
    try:
        mon = arb.add_monitor("pr-early", num_workers=1, concurrency="thread", start=held_start)
        wait_for(lambda: mon.managed_actors, timeout=T, what="a worker starting")
        reply = send("pr-early", "pr_whoami", 1)  # no worker runs: it waits for one
        assert not reply.done()
    finally:
        HOLD.set()
    n, aid, _, thread = reply.result(T)
    assert n == 1 and aid in running(mon)
    assert thread == "actorgrpc-pr-early-1"


def test_without_a_worker_a_request_fails_in_bounded_time(arb, monkeypatch):
    empty = arb.add_monitor("pr-empty", num_workers=0)
    with pytest.raises(ActorNotAvailable, match="no worker of pool pr-empty is running"):
        send("pr-empty", "pr_whoami").result(T)
    broken = arb.add_monitor(
        "pr-broken", num_workers=1, concurrency="thread", start=bad_start, max_restarts=0
    )
    wait_for(lambda: not broken.restarting, timeout=T, what="the budget to run out")
    with pytest.raises(
        ActorNotAvailable, match=r"no worker of pool pr-broken is running: .*no more restarts"
    ):
        send("pr-broken", "pr_whoami").result(T)
    # A worker that never gets to run: the request waits ROUTE_WAIT, then fails.
    monkeypatch.setattr(pools, "ROUTE_WAIT", 0.3)
    HOLD.clear()
    try:
        arb.add_monitor("pr-stuck", num_workers=1, concurrency="thread", start=held_start)
        began = time.monotonic()
        with pytest.raises(ActorNotAvailable, match=r"pr-stuck is running \(waited 0.3s"):
            send("pr-stuck", "pr_whoami").result(T)
        assert time.monotonic() - began < 3
    finally:
        HOLD.set()
    assert empty.pool_info()["workers"] == []


# -- a worker that dies with a request in flight ---------------------------------------------------


@pytest.mark.parametrize("retries", [0, 1])
def test_a_worker_killed_with_a_request_in_flight(arb, tmp_path, retries):
    mon = arb.add_monitor("pr-kill", num_workers=2, retries=retries)
    assert mon.wait_ready(SPAWN_T)
    wait_for(lambda: full(mon), timeout=SPAWN_T, what="two running workers")
    marker = tmp_path / "taken"
    reply = send("pr-kill", "pr_once", str(marker))
    wait_for(marker.exists, timeout=T, what="a worker to take the request")
    victim = mon.managed_actors[marker.read_text()]
    (other,) = set(running(mon)) - {victim.aid}
    os.kill(victim.pid, signal.SIGKILL)
    if retries:
        assert reply.result(T) == other  # re-sent: the other worker answers
    else:
        with pytest.raises(ActorNotAvailable) as caught:
            reply.result(T)
        assert str(caught.value) == (
            f"worker {victim.name} ({victim.aid}) of pool pr-kill ended before it replied: "
            "killed by signal SIGKILL"
        )
    assert mon.pool_info()["retries"] == retries
