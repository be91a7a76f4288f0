"""ActorProxy and ActorProxyMonitor."""

from __future__ import annotations

import copy
import os
import pickle
import threading

import pytest
from conftest import KINDS, SPAWN_T, T, actorgrpc_stacks

from actorgrpc import ACTOR_STATES, ActorProxy, ActorProxyMonitor, ActorTimeout, send, spawn
from actorgrpc.testing import wait_for


def test_proxy_fields_and_normalised_address():
    p = ActorProxy("abc", "worker", ["127.0.0.1", "8080"])
    assert p.aid == "abc" and p.name == "worker"
    assert p.address == ("127.0.0.1", 8080)
    assert type(p.address) is tuple and type(p.address[1]) is int
    assert p.proxy is p


def test_proxy_equality_is_by_aid():
    a = ActorProxy("abc", "x", ("127.0.0.1", 1))
    b = ActorProxy("abc", None, ("127.0.0.1", 2))
    c = ActorProxy("abd", "x", ("127.0.0.1", 1))
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert a != "abc"
    assert len({a, b, c}) == 2


def test_proxy_repr_names_the_actor():
    named = ActorProxy("abc", "worker", ("127.0.0.1", 80))
    assert repr(named) == "<ActorProxy worker(abc) at 127.0.0.1:80>"
    assert repr(ActorProxy("abc", None, ("127.0.0.1", 80))) == "<ActorProxy abc at 127.0.0.1:80>"


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_proxy_pickles_with_every_protocol(protocol):
    p = ActorProxy("abc", "worker", ("127.0.0.1", 80))
    back = pickle.loads(pickle.dumps(p, protocol=protocol))
    assert type(back) is ActorProxy
    assert (back.aid, back.name, back.address) == (p.aid, p.name, p.address)
    assert copy.deepcopy(p) == p


def test_proxy_has_no_instance_dict():
    # Lightweight: slots only.
    with pytest.raises(AttributeError):
        ActorProxy("abc", None, ("h", 1)).other = 1


@pytest.mark.parametrize("kind", KINDS)
def test_monitor_of_a_running_actor(arb, kind):
    p = spawn(concurrency=kind, name=f"prx-{kind}").result(SPAWN_T)
    monitor = arb.managed_actors[p.aid]
    assert isinstance(monitor, ActorProxyMonitor)
    assert isinstance(monitor, ActorProxy)
    assert monitor == p
    assert monitor.is_alive() is True
    assert monitor.state == ACTOR_STATES.RUN
    assert monitor.kind == kind
    assert monitor.supervisor == arb.aid
    if kind == "thread":
        assert monitor.pid == os.getpid()
    else:
        assert monitor.pid not in (0, os.getpid())
    # Refreshed by the actor's notifies.
    assert monitor.notified > 0
    wait_for(lambda: monitor.info.get("actor", {}).get("aid") == p.aid, what="the monitor's info")
    assert monitor.info["actor"]["pid"] == monitor.pid
    assert monitor.death is None
    assert "running" in repr(monitor)


@pytest.mark.parametrize("kind", KINDS)
def test_monitor_pickles_into_a_plain_proxy(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    monitor = arb.managed_actors[p.aid]
    for back in (pickle.loads(pickle.dumps(monitor)), monitor.proxy):
        assert type(back) is ActorProxy
        assert (back.aid, back.name, back.address) == (p.aid, p.name, p.address)
    # A monitor is a fine send target, and a fine value to send.
    assert send(monitor, "ping").result(T) == "pong"
    echoed = send(p, "echo", monitor).result(T)
    assert type(echoed) is ActorProxy and echoed == p


@pytest.mark.parametrize("kind", KINDS)
def test_monitor_join_times_out_while_alive_and_returns_after_stop(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    monitor = arb.managed_actors[p.aid]
    with pytest.raises(ActorTimeout):
        monitor.join(0.1)
    send(p, "stop").result(T)
    monitor.join(T)
    assert monitor.is_alive() is False
    assert monitor.death is not None
    assert monitor.death["state"] == ACTOR_STATES.CLOSE


def test_monitor_joined_from_several_threads_keeps_the_exit_code(arb):
    # Each joiner and the arbiter see the end; only one may read the exit
    # code (a forkserver child's is read off a pipe, and a second read of it
    # finds the pipe empty: 255), so the death record must still say 0.
    p = spawn().result(SPAWN_T)
    monitor = arb.managed_actors[p.aid]
    joiners = [threading.Thread(target=monitor.join, args=(T,)) for _ in range(3)]
    for joiner in joiners:
        joiner.start()
    send(p, "stop").result(T)
    for joiner in joiners:
        joiner.join(T)
    monitor.join(T)
    assert monitor.death["exitcode"] == 0, monitor.death
    assert monitor.death["state"] == ACTOR_STATES.CLOSE


@pytest.mark.parametrize("kind", KINDS)
def test_monitor_terminate(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    monitor = arb.managed_actors[p.aid]
    monitor.terminate()
    try:
        monitor.join(T)
    except ActorTimeout:
        pytest.fail(f"terminate() did not end the actor within {T}s:\n{actorgrpc_stacks()}")
    assert monitor.is_alive() is False
    wait_for(lambda: p.aid in arb.terminated_actors, what="the death record")
    assert arb.terminated_actors[p.aid]["state"] == ACTOR_STATES.TERMINATE
    assert send("arbiter", "ping").result(T) == "pong"


def test_monitor_start_twice_does_nothing(arb):
    p = spawn().result(SPAWN_T)
    monitor = arb.managed_actors[p.aid]
    pid = monitor.pid
    monitor.start()
    assert monitor.pid == pid
    assert send(p, "ping").result(T) == "pong"
