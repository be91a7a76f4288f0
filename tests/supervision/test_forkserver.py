"""The forkserver's death: process actors outlive it, and later spawns get a new one.

multiprocessing's forkserver forks every process actor and, while it lives,
reports each one's exit code; its death must not pass for theirs. It is
shared by the whole test run: each test here kills it, and the next spawn
(here or in any later test) starts another.

Once their forkserver is gone, its children are no longer descendants of this
process, so the suite's leak check cannot see them: these tests check their
pids themselves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from conftest import SPAWN_T, T

from actorgrpc import ACTOR_ACTION_TIMEOUT, ActorProxy, send, spawn
from actorgrpc.testing import running_arbiter, wait_for

#: How long the old actors must stay up once their forkserver is gone: past
#: the arbiter's next checks of the tree (ten a second) and their heartbeats.
OUTLIVE = 3.0


def stop_with_3(actor) -> bool:
    """A probe: the actor stops itself with exit code 3."""
    actor.stop(exit_code=3)
    return True


def forkserver() -> psutil.Process:
    """multiprocessing's forkserver: a child of this process, running its main."""
    for child in psutil.Process().children():
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            if "multiprocessing.forkserver" in " ".join(child.cmdline()):
                return child
        except psutil.NoSuchProcess:
            continue
    raise AssertionError("no forkserver runs")


def gone(pid: int) -> bool:
    """True once ``pid`` has exited (reaped, or a zombie nobody reaped yet)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def kill_forkserver() -> int:
    """SIGKILL the forkserver and wait until it is dead; its pid."""
    server = forkserver()
    server.kill()
    wait_for(lambda: gone(server.pid), timeout=T, what="the forkserver to die")
    return server.pid


def pids_of(arb, proxies: list[ActorProxy]) -> list[int]:
    pids = [arb.managed_actors[p.aid].pid for p in proxies]
    assert all(pids), pids
    return pids


def test_process_actors_outlive_their_forkserver_and_later_spawns_get_a_new_one():
    with running_arbiter() as arb:
        old = [spawn().result(SPAWN_T) for _ in range(2)]
        old_pids = pids_of(arb, old)
        dead_server = kill_forkserver()
        until = time.monotonic() + OUTLIVE

        def still_up() -> bool:
            for p in old:
                assert send(p, "ping").result(T) == "pong"
            assert not arb.terminated_actors, arb.terminated_actors
            return time.monotonic() > until

        wait_for(still_up, timeout=OUTLIVE + T, interval=0.1, what=f"{OUTLIVE}s to pass")
        assert sorted(arb.managed_actors) == sorted(p.aid for p in old)
        new = spawn().result(SPAWN_T)
        assert send(new, "ping").result(T) == "pong"
        assert forkserver().pid != dead_server
        for p in old:
            assert send(p, "ping").result(T) == "pong"
        assert not arb.terminated_actors
        everyone = [*old, new]
        pids = pids_of(arb, everyone)
    # Stopping the arbiter stopped them all, each with a clean death record.
    for p in everyone:
        record = arb.terminated_actors[p.aid]
        assert (record["exitcode"], record["how"]) == (0, "stopped"), record
    wait_for(lambda: all(gone(pid) for pid in pids), timeout=T, what="the actors to exit")
    assert all(gone(pid) for pid in old_pids)


def test_a_process_actor_killed_after_its_forkserver_died_has_no_made_up_exit_code(arb):
    victim, bystander = (spawn().result(SPAWN_T) for _ in range(2))
    pid = pids_of(arb, [victim])[0]
    kill_forkserver()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: victim.aid in arb.terminated_actors, timeout=5, what="the death record")
    record = arb.terminated_actors[victim.aid]
    assert record["exitcode"] is None, record
    assert record["how"] == "ended with an unknown exit code: its forkserver is gone", record
    assert record["pid"] == pid
    assert victim.aid not in arb.managed_actors
    # The other one lives on, and nothing else died.
    assert send(bystander, "ping").result(T) == "pong"
    assert list(arb.terminated_actors) == [victim.aid]


def test_a_process_actor_that_stops_after_its_forkserver_died_keeps_its_exit_code(arb):
    p = spawn().result(SPAWN_T)
    pid = pids_of(arb, [p])[0]
    kill_forkserver()
    assert send(p, "run", stop_with_3).result(T) is True
    wait_for(lambda: p.aid in arb.terminated_actors, timeout=5, what="the death record")
    record = arb.terminated_actors[p.aid]
    assert (record["exitcode"], record["how"]) == (3, "exited with code 3"), record
    wait_for(lambda: gone(pid), timeout=T, what="the actor to exit")


# -- the arbiter's own death, after its forkserver's -----------------------------------

TREE = """
import asyncio, time
import psutil
from actorgrpc import arbiter, send, spawn

def forkserver():
    for child in psutil.Process().children():
        if "multiprocessing.forkserver" in " ".join(child.cmdline()):
            return child

async def setup(arb):
    try:
        old = [await spawn() for _ in range(2)]
        server = forkserver()
        server.kill()
        deadline = time.monotonic() + 10
        while server.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # (a poll with a deadline, as wait_for does)
        new = await spawn()
        for p in (*old, new):
            assert await send(p, "ping") == "pong"
        assert not arb.terminated_actors, arb.terminated_actors
        pids = [arb.managed_actors[p.aid].pid for p in (*old, new)]
        print("READY", forkserver().pid, *pids, flush=True)
    except BaseException as exc:
        print("FAILED", repr(exc).replace("\\n", " "), flush=True)
        arb.stop()

if __name__ == "__main__":
    arbiter(start=setup).start()
"""


def test_actors_whose_forkserver_died_still_exit_when_the_arbiter_is_killed(tmp_path: Path):
    script = tmp_path / "tree.py"
    script.write_text(TREE)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # READY once up, else FAILED or ""
        assert line.startswith("READY"), line
        # The new forkserver, and the three actors, two of them the dead one's.
        pids = [int(p) for p in line.split()[1:]]
        assert len(pids) == 4 and not any(gone(pid) for pid in pids)
    finally:
        proc.kill()
        proc.wait(T)
    wait_for(
        lambda: all(gone(pid) for pid in pids),
        timeout=ACTOR_ACTION_TIMEOUT,
        what="the actors to see their arbiter is gone and exit, and the forkserver after them",
    )
