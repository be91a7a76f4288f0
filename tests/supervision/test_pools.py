"""Pools: Monitor and MonitorRunner, as ``arb.add_monitor`` makes them.

test_supervision.py already shows a pool of process workers healing after a
SIGKILL, the budget spent by workers that fail to start, and three bad
parameters (test_bad_arguments.py checks every parameter). Here: pool_info,
wait_ready, a worker stopped by the arbiter and replaced by a fresh one like
it, the budget spent by workers that die after they started, the restart
window, a monitor cut off by its runner, and the pool stopped with its arbiter.
Workers are thread actors where the kind does not matter: they start fast.
"""

from __future__ import annotations

import time

import psutil
import pytest
from conftest import SPAWN_T, T, params_of

from actorgrpc import ACTOR_STATES, send
from actorgrpc.supervision.pools import Monitor, MonitorRunner
from actorgrpc.testing import running_arbiter, wait_for


def mark_started(actor) -> None:
    actor.extra["started_by"] = "mark_started"


def started_by(actor) -> str | None:
    return actor.extra.get("started_by")


def bad_start(actor) -> None:
    raise ValueError("cannot start today")


def running(monitor: Monitor) -> list[str]:
    """The aids of the pool's workers that run."""
    return sorted(a for a, m in monitor.managed_actors.items() if m.state == ACTOR_STATES.RUN)


def kill(worker_aid: str) -> None:
    """Stop a worker as the arbiter does (the ``kill_actor`` command)."""
    assert send("arbiter", "kill_actor", worker_aid).result(T) == f"killed {worker_aid}"


def runner_of(arb, monitor: Monitor) -> MonitorRunner:
    runner = arb.supervisor.managed[monitor.aid].runner
    assert isinstance(runner, MonitorRunner)
    return runner


def test_pool_info_describes_the_pool(arb):
    mon = arb.add_monitor(
        "pl-info",
        num_workers=3,
        concurrency="thread",
        max_restarts=3,
        restart_window=5,
        routing="least_busy",
        retries=2,
    )
    assert mon.wait_ready(SPAWN_T)
    assert len(running(mon)) == 3  # ready: every worker runs, none is still starting
    assert mon.pool_info() == {
        "num_workers": 3,
        "workers": sorted(mon.managed_actors),
        "concurrency": "thread",
        "restarts": 0,
        "max_restarts": 3,
        "restart_window": 5.0,
        "restarting": True,
        "routing": "least_busy",
        "retries": 2,
        "resent": 0,
    }
    assert len(mon.pool_info()["workers"]) == 3
    assert type(mon.pool_info()["restart_window"]) is float
    assert arb.info()["monitors"]["pl-info"] == {"aid": mon.aid, **mon.pool_info()}
    # The defaults: one process worker, ten restarts a minute, round robin, no retries.
    empty = arb.add_monitor("pl-defaults", num_workers=0)
    assert empty.wait_ready(T)
    assert empty.pool_info() == {
        "num_workers": 0,
        "workers": [],
        "concurrency": "process",
        "restarts": 0,
        "max_restarts": 10,
        "restart_window": 60.0,
        "restarting": True,
        "routing": "round_robin",
        "retries": 0,
        "resent": 0,
    }


def test_wait_ready_is_false_while_the_pool_cannot_fill(arb):
    mon = arb.add_monitor(
        "pl-never", num_workers=1, concurrency="thread", start=bad_start, max_restarts=0
    )
    assert mon.wait_ready(0.3) is False
    wait_for(lambda: not mon.restarting, timeout=T, what="the budget to run out")
    assert mon.wait_ready(0) is False
    assert mon.extra["restarting"] == "1 restarts within 60s (max_restarts=0): no more restarts"


def test_a_stopped_worker_is_replaced_by_a_fresh_one_like_it(arb):
    mon = arb.add_monitor(
        "pl-heal", num_workers=2, concurrency="thread", start=mark_started, color="blue"
    )
    assert mon.wait_ready(SPAWN_T)
    wait_for(lambda: len(running(mon)) == 2, timeout=T, what="two running workers")
    before = set(mon.managed_actors)
    victim = running(mon)[0]
    kill(victim)
    wait_for(
        lambda: len(running(mon)) == 2 and victim not in mon.managed_actors,
        timeout=T,
        what="the pool to heal",
    )
    assert mon.restarts == 1
    assert mon.pool_info()["restarts"] == 1
    record = arb.terminated_actors[victim]
    assert record["pool_restarts"] == 1
    assert mon.terminated_actors[victim] is record
    (fresh,) = set(mon.managed_actors) - before
    worker = mon.managed_actors[fresh].proxy
    assert send(worker, "run", params_of).result(T) == {"color": "blue"}
    assert send(worker, "run", started_by).result(T) == "mark_started"
    assert mon.managed_actors[fresh].supervisor == mon.aid


def test_the_budget_is_spent_by_workers_that_die_after_they_started(arb):
    mon = arb.add_monitor(
        "pl-budget", num_workers=1, concurrency="thread", max_restarts=1, restart_window=60
    )
    assert mon.wait_ready(SPAWN_T)
    wait_for(lambda: running(mon), timeout=T, what="a running worker")
    (first_aid,) = running(mon)
    kill(first_aid)
    wait_for(lambda: running(mon) and first_aid not in mon.managed_actors, timeout=T)
    (second_aid,) = running(mon)
    assert mon.restarts == 1 and mon.restarting
    kill(second_aid)
    wait_for(lambda: not mon.restarting, timeout=T, what="the budget to run out")
    message = "2 restarts within 60s (max_restarts=1): no more restarts"
    assert mon.extra["restarting"] == message
    assert send("pl-budget", "info").result(T)["extra"]["restarting"] == message
    pool = mon.pool_info()
    assert (pool["restarting"], pool["restarts"], pool["workers"]) == (False, 1, [])
    assert arb.terminated_actors[second_aid]["pool_restarts"] == 1
    assert send("pl-budget", "ping").result(T) == "pong"  # the monitor itself goes on


def test_deaths_outside_the_restart_window_do_not_spend_the_budget(arb):
    window = 0.5
    mon = arb.add_monitor(
        "pl-window", num_workers=1, concurrency="thread", max_restarts=1, restart_window=window
    )
    assert mon.wait_ready(SPAWN_T)
    for n in (1, 2, 3):
        wait_for(lambda: running(mon), timeout=T, what="a running worker")
        (aid,) = running(mon)
        kill(aid)  # returns once the worker has ended: its death is counted
        died = time.monotonic()
        wait_for(lambda a=aid: running(mon) and a not in mon.managed_actors, timeout=T)
        assert (mon.restarts, mon.restarting) == (n, True)
        # Let this death leave the window before the next one.
        wait_for(lambda d=died: time.monotonic() - d > window, timeout=T, interval=0.05)


def test_a_monitor_cut_off_by_its_runner_leaves_the_arbiter(arb):
    mon = arb.add_monitor("pl-cut", num_workers=0)
    assert mon.wait_ready(T)
    # Once it runs (it has told the arbiter, and ticks): see the next test.
    wait_for(lambda: mon.next_periodic_task is not None, timeout=T, what="the monitor to run")
    runner = runner_of(arb, mon)
    assert runner.is_alive()
    assert not runner.join(0)
    assert runner.pid == 0  # it runs on the arbiter's IO loop
    runner.terminate()
    assert runner.join(T)
    assert not runner.is_alive()
    wait_for(lambda: mon.aid in arb.terminated_actors, timeout=T, what="its death record")
    record = arb.terminated_actors[mon.aid]
    assert (record["kind"], record["exitcode"]) == ("monitor", None)
    assert record["how"] == "terminated: cut off after it did not stop in time"
    assert "pl-cut" not in arb.monitors
    assert "pl-cut" not in arb.info()["monitors"]
    # Its name is free again.
    again = arb.add_monitor("pl-cut", num_workers=0)
    assert again.wait_ready(T)


def test_stopping_the_arbiter_stops_the_pool():
    with running_arbiter() as a:
        mon = a.add_monitor("pl-stop", num_workers=2)
        assert mon.wait_ready(SPAWN_T)
        wait_for(lambda: len(running(mon)) == 2, timeout=SPAWN_T, what="two running workers")
        workers = dict(mon.managed_actors)
        pids = [m.pid for m in workers.values()]
        assert all(psutil.pid_exists(pid) for pid in pids)
        runner = runner_of(a, mon)
    assert runner.join(0) and not runner.is_alive()
    for aid in workers:
        record = a.terminated_actors[aid]
        assert (record["how"], record["exitcode"]) == ("stopped", 0)
    assert a.terminated_actors[mon.aid]["how"] == "stopped"
    # The workers the arbiter stopped were not restarted.
    assert (mon.restarts, mon.restarting) == (0, False)
    assert a.monitors == {}


@pytest.mark.xfail(
    reason="a monitor that stops leaves its workers running, with no pool to restart "
    "them: Monitor's _shutdown does not stop them, and nothing else does"
)
def test_a_monitor_that_stops_stops_its_workers(arb):
    mon = arb.add_monitor("pl-alone", num_workers=2, concurrency="thread")
    assert mon.wait_ready(SPAWN_T)
    workers = list(mon.managed_actors.values())
    assert send("pl-alone", "stop").result(T) is None
    wait_for(lambda: mon.aid in arb.terminated_actors, timeout=T, what="the monitor's end")
    wait_for(
        lambda: all(w.aid in arb.terminated_actors for w in workers),
        timeout=3,  # thread workers stop within milliseconds
        what="its workers to stop",
    )


def test_workers_are_named_after_their_monitor_and_slot(arb):
    """Workers are ``<monitor>-<n>``: readable in ps, logs and death records, and addressable."""
    mon = arb.add_monitor("pl-named", num_workers=2, concurrency="thread", max_restarts=5)
    assert mon.wait_ready(SPAWN_T)
    names = {mon.managed_actors[aid].name: aid for aid in running(mon)}
    assert sorted(names) == ["pl-named-1", "pl-named-2"]
    assert arb.registered["pl-named-1"] == names["pl-named-1"]
    reply = send("pl-named-2", "info").result(T)
    assert reply["actor"]["name"] == "pl-named-2"
    assert reply["actor"]["aid"] == names["pl-named-2"]
    # Slot 1's replacement takes slot 1's name again, under a new aid.
    kill(names["pl-named-1"])
    assert mon.terminated_actors[names["pl-named-1"]]["name"] == "pl-named-1"
    wait_for(
        lambda: (
            "pl-named-1" in arb.registered
            and arb.registered["pl-named-1"] != names["pl-named-1"]
            and len(running(mon)) == 2
        ),
        SPAWN_T,
    )
    renamed = {mon.managed_actors[aid].name for aid in running(mon)}
    assert renamed == {"pl-named-1", "pl-named-2"}
    assert send("pl-named-1", "info").result(T)["actor"]["aid"] == arb.registered["pl-named-1"]


def test_a_monitor_name_leaves_room_for_its_workers_names(arb):
    with pytest.raises(TypeError, match="at most 120"):
        arb.add_monitor("m" * 121, num_workers=1, concurrency="thread")
