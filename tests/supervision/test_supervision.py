"""Supervision and faults: monitors, restarts, death records, no lost message, no orphan."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from actorgrpc import (
    ACTOR_ACTION_TIMEOUT,
    ACTOR_STATES,
    MONITOR_TASK_PERIOD,
    ActorError,
    ActorNotAvailable,
    ActorTimeout,
    BadRequest,
    CommandError,
    command,
    send,
    spawn,
)
from actorgrpc.testing import actor_processes, wait_for

RELEASE = threading.Event()


@command()
def slow(request, seconds: float) -> str:
    time.sleep(seconds)
    return "done"


@command()
def fail(request) -> None:
    raise KeyError("no such thing")


@command()
def counted(request) -> int:
    return request.actor.extra.get("ticks", 0)


@command()
def lookup(request, target: str):
    return request.actor.get_actor(target)


@command()
async def ask(request, target: str, action: str):
    return await send(target, action)


def bad_start(actor) -> None:
    raise ValueError("cannot start today")


def bad_tick(actor) -> None:
    actor.extra["ticks"] = actor.extra.get("ticks", 0) + 1
    raise RuntimeError("tick failed")


def stubborn_process(actor) -> None:
    time.sleep(60)  # blocks the loop: stop cannot finish, SIGTERM cannot be handled


def stubborn_thread(actor) -> None:
    RELEASE.wait(60)


def exit_seven(actor) -> None:
    os._exit(7)


def running(monitor) -> int:
    return sum(1 for m in monitor.managed_actors.values() if m.state == ACTOR_STATES.RUN)


# -- monitors ---------------------------------------------------------------------


def test_monitor_keeps_its_pool_and_reports_it(arb):
    mon = arb.add_monitor("workers", num_workers=3)
    assert mon.wait_ready(30)
    wait_for(lambda: running(mon) == 3, what="3 running workers")
    pool = send("workers", "info").result(10)["pool"]
    assert pool["num_workers"] == 3 and sorted(pool["workers"]) == sorted(mon.managed_actors)
    assert arb.monitors == {"workers": mon}
    assert mon.is_monitor() and not arb.is_monitor()
    # The arbiter's info shows the monitor with its workers; they are not the arbiter's own.
    assert sorted(arb.info()["monitors"]["workers"]["workers"]) == sorted(mon.managed_actors)
    assert not set(mon.managed_actors) & set(arb.managed_actors)
    victim = next(iter(mon.managed_actors.values()))
    os.kill(victim.pid, signal.SIGKILL)
    wait_for(lambda: victim.aid in arb.terminated_actors, timeout=2 * MONITOR_TASK_PERIOD)
    record = arb.terminated_actors[victim.aid]
    assert record["how"] == "killed by signal SIGKILL" and record["exitcode"] == -signal.SIGKILL
    assert record["pool_restarts"] == 1
    assert mon.terminated_actors[victim.aid] is record
    wait_for(
        lambda: running(mon) == 3 and victim.aid not in mon.managed_actors,
        timeout=30,
        what="the pool to heal",
    )
    assert send("workers", "info").result(10)["pool"]["restarts"] == 1
    assert all(send(p, "ping").result(10) == "pong" for p in mon.managed_actors.values())


def test_monitor_stops_restarting_after_its_budget(arb, caplog):
    mon = arb.add_monitor(
        "doomed",
        num_workers=1,
        concurrency="thread",
        start=bad_start,
        max_restarts=2,
        restart_window=60,
    )
    wait_for(lambda: not mon.restarting, timeout=30, what="the restart budget to run out")
    info = send("doomed", "info").result(10)
    assert info["pool"]["restarting"] is False
    assert "no more restarts" in info["extra"]["restarting"]
    assert "ValueError: cannot start today" in info["extra"]["last_spawn_error"]
    assert any("no more restarts" in r.getMessage() for r in caplog.records)
    assert not mon.managed_actors


def test_monitor_rejects_bad_parameters(arb):
    with pytest.raises(ValueError, match="num_workers"):
        arb.add_monitor("m", num_workers=-1)
    with pytest.raises(TypeError, match="fresh aids"):
        arb.add_monitor("m", aid="x")
    with pytest.raises(ValueError, match="concurrency"):
        arb.add_monitor("m", concurrency="fiber")


# -- names ------------------------------------------------------------------------


def test_names_are_unique_and_resolvable_from_any_process(arb):
    named = spawn(name="unique", concurrency="thread").result(10)
    with pytest.raises(BadRequest, match="'unique' is taken"):
        spawn(name="unique").result(30)
    asker = spawn().result(30)
    found = send(asker, "lookup", "unique").result(10)
    assert found.aid == named.aid and found.address == named.address
    assert send(asker, "lookup", "nobody").result(10) is None
    assert send(asker, "ask", "unique", "ping").result(10) == "pong"
    assert arb.registered["unique"] == named.aid


# -- ActorProxyMonitor ------------------------------------------------------------


@pytest.mark.parametrize("concurrency", ["process", "thread"])
def test_actor_proxy_monitor(arb, concurrency):
    proxy = spawn(concurrency=concurrency).result(30)
    mon = arb.managed_actors[proxy.aid]
    assert mon.proxy == proxy and type(mon.proxy).__name__ == "ActorProxy"
    assert mon.is_alive()
    first = mon.notified
    # A change (here a command handled) is reported by the next notify.
    assert send(proxy, "ping").result(10) == "pong"
    wait_for(
        lambda: mon.notified > first and mon.info["actor"]["commands_handled"] >= 1,
        timeout=3 * MONITOR_TASK_PERIOD,
        what="a notify",
    )
    assert mon.info["actor"]["state"] == ACTOR_STATES.RUN
    with pytest.raises(ActorTimeout):
        mon.join(0.05)
    mon.start()  # already started: nothing happens
    assert mon.is_alive()
    mon.terminate()
    mon.join(10)
    assert not mon.is_alive()
    wait_for(lambda: proxy.aid in arb.terminated_actors)
    assert arb.terminated_actors[proxy.aid]["state"] == ACTOR_STATES.TERMINATE


# -- faults -----------------------------------------------------------------------


def test_sigkill_fails_waiting_requests_at_once(arb):
    proxy = spawn().result(30)
    pid = arb.managed_actors[proxy.aid].pid
    waiting = send(proxy, "slow", 30)
    wait_for(
        lambda: (
            arb.managed_actors[proxy.aid].info.get("events", {}).get("commands_in_progress", 0) >= 0
            and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        )
    )
    started = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ActorNotAvailable):
        waiting.result(2 * MONITOR_TASK_PERIOD)
    assert time.monotonic() - started < 2 * MONITOR_TASK_PERIOD
    wait_for(lambda: proxy.aid in arb.terminated_actors, timeout=2 * MONITOR_TASK_PERIOD)
    with pytest.raises(ActorNotAvailable, match="SIGKILL"):
        send(proxy.aid, "ping").result(10)


def test_death_records_say_how(arb):
    clean = spawn(concurrency="thread").result(10)
    assert send(clean, "stop").result(10) is None
    wait_for(lambda: clean.aid in arb.terminated_actors)
    record = arb.terminated_actors[clean.aid]
    assert record["how"] == "stopped" and record["state"] == ACTOR_STATES.CLOSE

    exits = spawn().result(30)
    send(exits, "run", exit_seven)
    wait_for(lambda: exits.aid in arb.terminated_actors)
    assert arb.terminated_actors[exits.aid]["how"] == "exited with code 7"
    assert arb.terminated_actors[exits.aid]["state"] == ACTOR_STATES.TERMINATE


@pytest.mark.parametrize("concurrency", ["process", "thread"])
def test_failing_start_hook_fails_the_spawn(arb, concurrency):
    future = spawn(concurrency=concurrency, start=bad_start)
    with pytest.raises(CommandError, match="cannot start today") as err:
        future.result(30)
    assert isinstance(err.value, ValueError)
    assert "bad_start" in err.value.remote_traceback
    wait_for(lambda: future.aid in arb.terminated_actors)
    record = arb.terminated_actors[future.aid]
    assert "cannot start today" in record["error"]["error"]
    assert "bad_start" in record["error"]["traceback"]
    assert send("arbiter", "ping").result(10) == "pong"


def test_failing_command_and_periodic_task_do_not_kill(arb):
    proxy = spawn(periodic_task=bad_tick).result(30)
    with pytest.raises(CommandError) as err:
        send(proxy, "fail").result(10)
    assert isinstance(err.value, KeyError)
    wait_for(
        lambda: send(proxy, "counted").result(10) >= 2,
        timeout=5 * MONITOR_TASK_PERIOD,
        what="two periodic tasks despite their errors",
    )
    assert send(proxy, "ping").result(10) == "pong"


def test_process_that_ignores_stop_is_killed(arb):
    proxy = spawn(stopping=stubborn_process).result(30)
    started = time.monotonic()
    assert (
        send("arbiter", "kill_actor", proxy.aid).result(ACTOR_ACTION_TIMEOUT + 10)
        == f"killed {proxy.aid}"
    )
    assert time.monotonic() - started >= ACTOR_ACTION_TIMEOUT
    record = arb.terminated_actors[proxy.aid]
    assert record["state"] == ACTOR_STATES.TERMINATE
    assert "SIGKILL" in record["how"] or "SIGTERM" in record["how"]


def test_thread_that_ignores_stop_is_cut_off(arb):
    RELEASE.clear()
    try:
        proxy = spawn(concurrency="thread", stopping=stubborn_thread).result(10)
        assert (
            send("arbiter", "kill_actor", proxy.aid).result(ACTOR_ACTION_TIMEOUT + 10)
            == f"killed {proxy.aid}"
        )
        record = arb.terminated_actors[proxy.aid]
        assert record["state"] == ACTOR_STATES.TERMINATE and "cut off" in record["how"]
        with pytest.raises(ActorError):
            send(proxy, "ping").result(5)
    finally:
        RELEASE.set()


# -- the arbiter's own death ------------------------------------------------------

TREE = """
import os, sys
from actorgrpc import arbiter, spawn

async def setup(arb):
    for concurrency in ("process", "process", "thread"):
        await spawn(concurrency=concurrency)
    pids = [m.pid for m in arb.managed_actors.values() if m.kind == "process"]
    print("READY", *pids, flush=True)

if __name__ == "__main__":
    arbiter(start=setup).start()
    print("EXITED", flush=True)
"""


def _start_tree(tmp_path: Path) -> tuple[subprocess.Popen[str], list[int]]:
    script = tmp_path / "tree.py"
    script.write_text(TREE)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the tree prints READY once up (or exits: "")
    assert line.startswith("READY"), line
    return proc, [int(p) for p in line.split()[1:]]


def _gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            pass
    return True


def test_arbiter_sigkill_leaves_no_orphans(tmp_path):
    proc, pids = _start_tree(tmp_path)
    assert len(pids) == 2 and not _gone(pids)
    proc.kill()
    proc.wait(10)
    wait_for(lambda: _gone(pids), timeout=ACTOR_ACTION_TIMEOUT, what="orphans to exit")


def test_arbiter_sigterm_stops_the_tree(tmp_path):
    proc, pids = _start_tree(tmp_path)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(ACTOR_ACTION_TIMEOUT + 10) == 0
    assert proc.stdout is not None and "EXITED" in proc.stdout.read()
    assert _gone(pids)


# -- chaos ------------------------------------------------------------------------


def test_chaos_every_request_ends(arb):
    size = 4
    mon = arb.add_monitor("chaos", num_workers=size)
    assert mon.wait_ready(60)
    wait_for(lambda: running(mon) == size, timeout=30)
    outcomes = {"reply": 0, "error": 0}
    lock = threading.Lock()
    rng = random.Random(7)

    def client(n: int) -> None:
        batch = []
        for i in range(n):
            workers = [
                m.proxy for m in list(mon.managed_actors.values()) if m.state == ACTOR_STATES.RUN
            ]
            target = rng.choice(workers) if workers else "chaos"
            batch.append(send(target, "echo", i))
            if len(batch) == 100:
                settle(batch)
                batch = []
        settle(batch)

    def settle(batch) -> None:
        for fut in batch:
            try:
                fut.result(30)  # never a hang: a reply or a clear error
                kind = "reply"
            except ActorError:
                kind = "error"
            with lock:
                outcomes[kind] += 1

    clients = [threading.Thread(target=client, args=(2500,)) for _ in range(4)]
    for t in clients:
        t.start()
    kills = 0
    while any(t.is_alive() for t in clients) and kills < 5:
        alive = [m for m in list(mon.managed_actors.values()) if m.state == ACTOR_STATES.RUN]
        if alive and sum(outcomes.values()) > 1500 * (kills + 1):
            os.kill(rng.choice(alive).pid, signal.SIGKILL)
            kills += 1
        time.sleep(0.02)  # pacing the killer, not waiting for a result
    for t in clients:
        t.join(120)
        assert not t.is_alive()
    assert sum(outcomes.values()) == 10_000
    assert outcomes["reply"] > 5_000
    assert kills >= 1
    wait_for(lambda: running(mon) == size, timeout=60, what="the pool back to its size")
    assert mon.restarts == kills
    assert not [
        p for p in actor_processes() if p.pid not in {m.pid for m in mon.managed_actors.values()}
    ]


# -- every stop is escalated ------------------------------------------------------


def deaf_and_stubborn(actor) -> None:
    """A start hook: SIGTERM is ignored from now on."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def test_a_stop_command_is_escalated_when_the_stopping_hook_never_returns(arb):
    proxy = spawn(start=deaf_and_stubborn, stopping=stubborn_process).result(30)
    entry = arb.managed_actors[proxy.aid]
    assert send(proxy, "stop").result(10) is None
    # Shown stopping at once (its notify comes before the hook runs) ...
    wait_for(lambda: entry.state == ACTOR_STATES.STOPPING, timeout=5, what="STOPPING")
    # ... and ended, after ACTOR_ACTION_TIMEOUT, SIGTERM, then SIGKILL, with a reason.
    wait_for(
        lambda: proxy.aid in arb.terminated_actors,
        timeout=ACTOR_ACTION_TIMEOUT + 10,
        what="the stubborn actor to be ended",
    )
    record = arb.terminated_actors[proxy.aid]
    assert record["state"] == ACTOR_STATES.TERMINATE
    assert "SIGKILL" in record["how"] or "did not stop" in record["how"], record


def test_a_stop_command_is_escalated_for_a_thread_actor(arb):
    RELEASE.clear()
    try:
        proxy = spawn(concurrency="thread", stopping=stubborn_thread).result(10)
        assert send(proxy, "stop").result(10) is None
        wait_for(
            lambda: proxy.aid in arb.terminated_actors,
            timeout=ACTOR_ACTION_TIMEOUT + 10,
            what="the stubborn thread actor to be cut off",
        )
        record = arb.terminated_actors[proxy.aid]
        assert record["state"] == ACTOR_STATES.TERMINATE and "cut off" in record["how"]
    finally:
        RELEASE.set()


# -- hung actors are noticed and ended ------------------------------------------------


@command()
def sv_hang(request, seconds: float) -> str:
    """Block the actor's loop (a process's: sleep; a thread's: until RELEASE)."""
    if request.actor.kind == "thread":
        RELEASE.wait(seconds)
    else:
        time.sleep(seconds)
    return "woke"


def test_actors_get_pulsars_default_timeout_and_may_have_none(arb):
    default = spawn(concurrency="thread").result(10)
    none = spawn(concurrency="thread", timeout=0).result(10)
    assert arb.managed_actors[default.aid].timeout == 30
    assert arb.managed_actors[none.aid].timeout == 0


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_an_idle_actor_shows_it_lives_every_period(arb, kind):
    proxy = spawn(concurrency=kind, timeout=2).result(30)
    entry = arb.managed_actors[proxy.aid]
    since = time.time()
    # Its info notifies come every 10 periods when idle; its heartbeat every period.
    wait_for(
        lambda: entry.notified > since + 2.5 * MONITOR_TASK_PERIOD,
        timeout=10,
        what="a heartbeat past the actor's timeout",
    )
    assert entry.is_alive() and entry.state == ACTOR_STATES.RUN and not entry.reason


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_a_hung_actor_is_noticed_ended_and_its_request_fails(arb, kind):
    RELEASE.clear()
    try:
        proxy = spawn(concurrency=kind, timeout=2).result(30)
        pending = send(proxy, "sv_hang", 60)
        deadline = 2 + ACTOR_ACTION_TIMEOUT + 10
        with pytest.raises(ActorNotAvailable):
            pending.result(deadline)
        wait_for(lambda: proxy.aid in arb.terminated_actors, timeout=10, what="a death record")
        record = arb.terminated_actors[proxy.aid]
        assert record["how"].startswith("unresponsive"), record
        assert record["state"] == ACTOR_STATES.TERMINATE
    finally:
        RELEASE.set()
