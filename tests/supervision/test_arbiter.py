"""The arbiter: its life, predicates, registries and info; running it in the foreground."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import IO, cast

import psutil
import pytest
from conftest import KINDS, SPAWN_T, T, actorgrpc_threads, arbiter_here, set_extra

from actorgrpc import (
    ACTOR_STATES,
    ActorProxy,
    ActorProxyMonitor,
    Arbiter,
    BadRequest,
    arbiter,
    send,
    spawn,
)
from actorgrpc.testing import actor_processes, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_address_and_predicates_while_running(arb):
    host, port = arb.address
    assert host == "127.0.0.1"
    assert isinstance(port, int) and port > 0
    assert arb.is_arbiter() is True
    assert arb.is_process() is False
    assert arb.is_monitor() is False
    assert arb.state == ACTOR_STATES.RUN
    assert arb.info_state == "running"
    assert arb.is_running() is True
    assert arb.started() is True
    assert arb.after_run() is False
    assert arb.closed() is False
    assert arb.stopped() is False
    assert arb.name == "arbiter"
    assert isinstance(arb.proxy, ActorProxy)
    assert arb.proxy.address == arb.address
    assert isinstance(arb.managed_actors, dict)
    assert isinstance(arb.terminated_actors, dict)


def test_with_block_leaves_nothing_running():
    with arbiter() as a:
        spawn(name="arb-p1").result(SPAWN_T)
        spawn().result(SPAWN_T)
        spawn(concurrency="thread", name="arb-t1").result(SPAWN_T)
        spawn(concurrency="thread").result(SPAWN_T)
        assert len(actorgrpc_threads()) >= 3  # the arbiter's and two thread actors'
        assert len(actor_processes()) >= 2
    # At once: the with block returns only when everything has stopped.
    assert actorgrpc_threads() == []
    assert actor_processes() == []
    assert a.state == ACTOR_STATES.CLOSE
    assert a.info_state == "closed"
    assert a.closed() is True
    assert a.stopped() is True
    assert a.after_run() is True
    assert a.is_running() is False
    assert a.managed_actors == {}
    assert {r["state"] for r in a.terminated_actors.values()} == {ACTOR_STATES.CLOSE}
    assert len(a.terminated_actors) == 4


def write_marker(actor):
    """A stopping hook: leave a file behind, named by the actor's params."""
    with open(actor.params["marker"], "w") as f:
        f.write(f"{actor.aid} {actor.info_state}")


def test_with_exit_stops_every_actor_gracefully(tmp_path):
    with arbiter():
        proxies = {
            kind: spawn(
                concurrency=kind, stopping=write_marker, marker=str(tmp_path / kind)
            ).result(SPAWN_T)
            for kind in KINDS
        }
        assert not list(tmp_path.iterdir())
    # Each actor ran its stopping hook before it ended.
    for kind, p in proxies.items():
        assert (tmp_path / kind).read_text() == f"{p.aid} stopping"


def test_arbiter_is_one_per_process_while_it_runs(arb):
    assert arbiter() is arb
    with pytest.raises(RuntimeError, match="already exists"):
        arbiter(port=0)


def test_a_new_arbiter_after_the_last_one_stopped():
    with arbiter() as first:
        pass
    with arbiter() as second:
        assert second is not first
        assert second.aid != first.aid
        assert send("arbiter", "ping").result(T) == "pong"


def test_arbiter_is_none_inside_a_process_actor(arb):
    p = spawn().result(SPAWN_T)
    assert send(p, "run", arbiter_here).result(T) is None


def test_spawn_on_an_arbiter_that_is_not_running():
    a = Arbiter()
    with pytest.raises(RuntimeError, match="not running"):
        a.spawn()


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"host": 127}, TypeError, "host"),
        ({"host": ""}, TypeError, "host"),
        ({"port": -1}, ValueError, "port"),
        ({"port": 65536}, ValueError, "port"),
        ({"port": "80"}, ValueError, "port"),
        ({"port": True}, ValueError, "port"),
        ({"name": ""}, TypeError, "name"),
        ({"start_method": "fork"}, ValueError, "start_method"),
        ({"max_message_size": 10}, ValueError, "max_message_size"),
        ({"start": 5}, TypeError, "start"),
        ({"stopping": "x"}, TypeError, "stopping"),
        ({"periodic_task": 1.0}, TypeError, "periodic_task"),
    ],
)
def test_bad_arbiter_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        arbiter(**kwargs)
    # A bad call leaves no half-made arbiter behind.
    with arbiter() as a:
        assert a.state == ACTOR_STATES.RUN


def test_port_in_use_is_an_error():
    # A second server on a port in use must fail, not share it (SO_REUSEPORT) and
    # take half of the first arbiter's connections.
    with arbiter() as first:
        port = first.address[1]
        second = Arbiter(port=port)
        try:
            second.__enter__()
        except Exception as exc:
            assert str(port) in str(exc)
        else:
            second.stop()
            pytest.fail(f"a second arbiter bound port {port}, which the first one serves")


# -- registries -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_monitor_is_running_after_spawn_and_goes_after_stop(arb, kind):
    p = spawn(concurrency=kind, name=f"arb-mon-{kind}").result(SPAWN_T)
    monitor = arb.managed_actors[p.aid]
    assert isinstance(monitor, ActorProxyMonitor)
    assert monitor.state == ACTOR_STATES.RUN
    assert monitor.aid == p.aid and monitor.name == p.name and monitor.address == p.address
    assert monitor.kind == kind
    assert monitor.is_alive()
    assert arb.get_actor(p.aid) is monitor
    assert arb.get_actor(p.name) is monitor
    assert send(p, "stop").result(T) is None
    wait_for(lambda: p.aid not in arb.managed_actors, what="the actor to leave managed_actors")
    record = arb.terminated_actors[p.aid]
    assert record["state"] == ACTOR_STATES.CLOSE
    assert record["info_state"] == "closed"
    assert record["aid"] == p.aid and record["name"] == p.name and record["kind"] == kind
    assert monitor.state == ACTOR_STATES.CLOSE
    assert not monitor.is_alive()
    assert arb.get_actor(p.aid) is None


def test_get_actor_on_the_arbiter(arb):
    assert arb.get_actor("arbiter") == arb.proxy
    assert arb.get_actor(arb.aid) == arb.proxy
    assert arb.get_actor("arb-nobody") is None


# -- info -------------------------------------------------------------------------------


def live_info(arb, aid, via_send=False):
    info = send("arbiter", "info").result(T) if via_send else arb.info()
    return {a["aid"]: a for a in info["actors"]}.get(aid)


@pytest.mark.parametrize("via_send", [False, True], ids=["arb.info", "send-info"])
def test_arbiter_info_lists_every_live_actor_with_its_latest_info(arb, via_send):
    proxies = [
        spawn(name="arb-info-p").result(SPAWN_T),
        spawn(concurrency="thread").result(SPAWN_T),
    ]
    info = send("arbiter", "info").result(T) if via_send else arb.info()
    assert {"actor", "events", "extra", "system", "actors"} <= set(info)
    assert info["actor"]["aid"] == arb.aid
    assert info["actor"]["concurrency"] == "arbiter"
    listed = {a["aid"]: a for a in info["actors"]}
    assert set(listed) == {p.aid for p in proxies}
    for p in proxies:
        entry = listed[p.aid]
        assert entry["name"] == (p.name or "")
        assert entry["state"] == ACTOR_STATES.RUN
        assert entry["info"]["actor"]["aid"] == p.aid
    # Changes inside the actors show after their next notify.
    for i, p in enumerate(proxies):
        send(p, "run", set_extra, "mark", i).result(T)
    for i, p in enumerate(proxies):
        wait_for(
            lambda p=p, i=i: live_info(arb, p.aid, via_send)["info"]["extra"].get("mark") == i,
            what="the latest info",
        )
    # A stopped actor leaves the list.
    send(proxies[0], "stop").result(T)
    wait_for(
        lambda: live_info(arb, proxies[0].aid, via_send) is None, what="the actor to leave info"
    )


# -- the arbiter's own hooks -------------------------------------------------------------


def test_arbiter_hooks():
    seen: list[str] = []

    def start(a):
        a.extra["started"] = True
        seen.append("start")

    def tick(a):
        a.extra["ticks"] = a.extra.get("ticks", 0) + 1

    def stopping(a):
        seen.append(f"stopping with {len(a.managed_actors)} actors")

    with arbiter(start=start, periodic_task=tick, stopping=stopping, colour="blue") as a:
        assert seen == ["start"]
        assert send("arbiter", "info").result(T)["extra"]["started"] is True
        assert a.params == {"colour": "blue"}
        spawn(concurrency="thread").result(SPAWN_T)
        wait_for(
            lambda: send("arbiter", "info").result(T)["extra"].get("ticks", 0) >= 1, what="a tick"
        )
    # The stopping hook runs before the actors are stopped.
    assert seen == ["start", "stopping with 1 actors"]


# -- in the foreground, in a process of its own -------------------------------------------

FOREGROUND = textwrap.dedent(
    """
    import os, sys
    from actorgrpc import arbiter, send, spawn

    async def setup(arb):
        p = await spawn(name="fg-worker")
        await spawn(concurrency="thread")
        info = await send(p, "info")
        print("READY", arb.address[1], info["actor"]["pid"], flush=True)

    if __name__ == "__main__":
        arbiter(start=setup).start()
        print("EXITED", flush=True)
    """
)


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    assert proc.stdout is not None and proc.stderr is not None  # both are pipes
    box: list[str] = []
    # The assert does not reach into the lambda: mypy sees proc.stdout as Optional there.
    reader = threading.Thread(
        target=lambda: box.append(cast(IO[str], proc.stdout).readline()), daemon=True
    )
    reader.start()
    reader.join(timeout)
    if not box:
        proc.kill()
        raise AssertionError(f"no line within {timeout}s; stderr: {proc.stderr.read()[-2000:]}")
    return box[0]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_foreground_arbiter_stops_on_signal_and_leaves_no_child(tmp_path, sig):
    script = tmp_path / "fg.py"
    script.write_text(FOREGROUND)
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        line = read_line(proc, 60)
        assert line.startswith("READY"), line
        _, port, worker_pid = line.split()
        assert int(port) > 0
        descendants = psutil.Process(proc.pid).children(recursive=True)
        assert int(worker_pid) in {c.pid for c in descendants}
        started = time.monotonic()
        proc.send_signal(sig)
        assert proc.wait(30) == 0, proc.stderr.read()[-3000:]
        assert time.monotonic() - started < 15
        assert proc.stdout.read().strip() == "EXITED"
        wait_for(lambda: not [c for c in descendants if alive(c)], timeout=15, what="no child left")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


STOP_ITSELF = textwrap.dedent(
    """
    from actorgrpc import arbiter, spawn

    async def setup(arb):
        await spawn()
        arb.stop()

    if __name__ == "__main__":
        a = arbiter(start=setup)
        a.start()
        print("STATE", a.info_state, len(a.terminated_actors), flush=True)
    """
)


def test_foreground_arbiter_returns_after_stop(tmp_path):
    script = tmp_path / "stop_itself.py"
    script.write_text(STOP_ITSELF)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "STATE closed 1"


# -- pulsar's answers and registry ------------------------------------------------


def test_the_arbiter_is_registered_under_its_name(arb):
    assert arb.registered["arbiter"] == arb.aid
    assert send("arbiter", "ping").result(T) == "pong"


def test_a_renamed_arbiter_is_registered_under_both_names():
    from actorgrpc.testing import running_arbiter

    with running_arbiter(name="boss") as boss:
        assert boss.registered["boss"] == boss.aid
        assert boss.registered["arbiter"] == boss.aid
        with pytest.raises(BadRequest, match="taken"):
            spawn(name="boss", concurrency="thread").result(T)
