"""The Actor: states, predicates, info, and its attributes, seen from outside and inside."""

from __future__ import annotations

import os

import pytest
from conftest import KINDS, SPAWN_T, T, predicates

from actorgrpc import ACTOR_STATES, ActorProxy, get_actor, send, spawn
from actorgrpc.core.proxy import format_address
from actorgrpc.testing import wait_for

PULSAR_STATES = {
    "INACTIVE": 1,
    "RUN": 3,
    "TERMINATE": 6,
    "CLOSE": 5,
    "STOPPING": 4,
    "INITIAL": 0,
    "DESCRIPTION": {
        0: "initial",
        1: "inactive",
        2: "starting",
        3: "running",
        4: "stopping",
        5: "closed",
        6: "terminated",
    },
    "STARTING": 2,
}


def test_actor_states_are_pulsars():
    assert dict(ACTOR_STATES) == PULSAR_STATES
    # Readable by attribute too, as in pulsar.
    for key, value in PULSAR_STATES.items():
        assert getattr(ACTOR_STATES, key) == value
    with pytest.raises(AttributeError):
        ACTOR_STATES.NO_SUCH_STATE  # noqa: B018


def attributes(actor):
    """Attributes of the actor, from inside."""
    return {
        "aid": actor.aid,
        "name": actor.name,
        "impl": actor.impl,
        "proxy": actor.proxy,
        "address": actor.address,
        "extra_is_dict": isinstance(actor.extra, dict),
        "params_is_dict": isinstance(actor.params, dict),
        "loop_running": actor.loop is not None and actor.loop.is_running(),
        "registries": [
            actor.managed_actors,
            actor.terminated_actors,
            actor.monitors,
            actor.registered,
        ],
        "actorparams": sorted(actor.actorparams()),
        "pid": os.getpid(),
    }


@pytest.mark.parametrize("kind", KINDS)
def test_predicates_inside_a_running_actor(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    got = send(p, "run", predicates).result(T)
    assert got == {
        "aid": p.aid,
        "state": ACTOR_STATES.RUN,
        "info_state": "running",
        "is_running": True,
        "started": True,
        "after_run": False,
        "closed": False,
        "stopped": False,
        "is_arbiter": False,
        "is_monitor": False,
        "is_process": kind == "process",
        "get_actor_is_me": True,
        "class": "Actor",
    }


@pytest.mark.parametrize("kind", KINDS)
def test_attributes_inside_an_actor(arb, kind):
    p = spawn(concurrency=kind, name=f"act-{kind}", answer=42).result(SPAWN_T)
    got = send(p, "run", attributes).result(T)
    assert got["aid"] == p.aid
    assert got["name"] == f"act-{kind}"
    assert got["impl"] == kind
    assert isinstance(got["proxy"], ActorProxy) and got["proxy"] == p
    assert got["proxy"].address == p.address
    assert got["address"] == p.address
    assert got["extra_is_dict"] and got["params_is_dict"]
    assert got["loop_running"] is True
    # Only supervisors have registries.
    assert got["registries"] == [None, None, None, None]
    assert {"actor_class", "concurrency", "answer"} <= set(got["actorparams"])
    assert (got["pid"] == os.getpid()) == (kind == "thread")


async def look_up(actor, target):
    """Actor.get_actor: a future of the proxy (None when unknown)."""
    return await actor.get_actor(target)


@pytest.mark.parametrize("kind", KINDS)
def test_actor_get_actor_finds_others_by_aid_and_name(arb, kind):
    me = spawn(concurrency=kind).result(SPAWN_T)
    other = spawn(name="act-other").result(SPAWN_T)
    for target in (other.aid, "act-other"):
        found = send(me, "run", look_up, target).result(T)
        assert isinstance(found, ActorProxy)
        assert (found.aid, found.name, found.address) == (other.aid, "act-other", other.address)
    assert send(me, "run", look_up, me.aid).result(T) == me
    assert send(me, "run", look_up, "act-nobody").result(T) is None


def test_get_actor_is_none_in_plain_code(arb):
    assert get_actor() is None


INFO_ACTOR_KEYS = {
    "name",
    "aid",
    "state",
    "concurrency",
    "pid",
    "thread",
    "address",
    "uptime",
    "commands_handled",
}
SYSTEM_KEYS = {"memory_rss", "cpu_percent", "num_threads", "open_files", "connections"}


@pytest.mark.parametrize("kind", KINDS)
def test_info_contents(arb, kind):
    p = spawn(concurrency=kind, name=f"act-info-{kind}").result(SPAWN_T)
    info = send(p, "info").result(T)
    assert {"actor", "events", "extra", "system"} <= set(info)
    actor = info["actor"]
    assert set(actor) >= INFO_ACTOR_KEYS
    assert actor["name"] == f"act-info-{kind}"
    assert actor["aid"] == p.aid
    assert actor["state"] == ACTOR_STATES.RUN
    assert actor["concurrency"] == kind
    assert isinstance(actor["pid"], int) and actor["pid"] > 0
    assert (actor["pid"] == os.getpid()) == (kind == "thread")
    assert isinstance(actor["thread"], str) and actor["thread"]
    assert actor["address"] == format_address(p.address)
    assert isinstance(actor["uptime"], (int, float)) and actor["uptime"] >= 0
    assert isinstance(actor["commands_handled"], int) and actor["commands_handled"] >= 1
    assert info["extra"] == {}
    assert isinstance(info["events"], dict)
    system = info["system"]
    assert set(system) >= SYSTEM_KEYS
    assert isinstance(system["memory_rss"], int) and system["memory_rss"] > 0
    assert isinstance(system["cpu_percent"], (int, float))
    assert isinstance(system["num_threads"], int) and system["num_threads"] >= 1
    assert isinstance(system["open_files"], int) and system["open_files"] >= 0
    # At least the listening socket of the process's gRPC server.
    assert isinstance(system["connections"], int) and system["connections"] >= 1


@pytest.mark.parametrize("kind", KINDS)
def test_info_counts_commands_and_uptime_grows(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    first = send(p, "info").result(T)["actor"]
    for _ in range(5):
        send(p, "ping").result(T)
    second = send(p, "info").result(T)["actor"]
    assert second["commands_handled"] == first["commands_handled"] + 6
    wait_for(
        lambda: send(p, "info").result(T)["actor"]["uptime"] > first["uptime"],
        what="uptime to grow",
    )


def test_thread_actor_info_names_its_own_thread(arb):
    p = spawn(concurrency="thread", name="act-thread-name").result(SPAWN_T)
    thread = send(p, "info").result(T)["actor"]["thread"]
    assert thread.startswith("actorgrpc-")
    assert thread != "actorgrpc-arbiter"


def set_extra_unpicklable(actor):
    actor.extra["fine"] = 1
    return True


@pytest.mark.parametrize("kind", KINDS)
def test_extra_shows_in_info(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    send(p, "run", set_extra_unpicklable).result(T)
    assert send(p, "info").result(T)["extra"] == {"fine": 1}


def stop_from_inside(actor):
    actor.stop()
    return actor.info_state


@pytest.mark.parametrize("kind", KINDS)
def test_actor_stop_method_stops_it(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    assert send(p, "run", stop_from_inside).result(T) == "running"
    wait_for(lambda: p.aid in arb.terminated_actors, what="the actor to end")
    record = arb.terminated_actors[p.aid]
    assert record["state"] == ACTOR_STATES.CLOSE
    assert record["info_state"] == "closed"


def stop_with_exit_code(actor):
    actor.stop(exit_code=7)


def test_process_actor_exit_code_is_recorded(arb):
    p = spawn().result(SPAWN_T)
    send(p, "run", stop_with_exit_code).result(T)
    wait_for(lambda: p.aid in arb.terminated_actors, what="the actor to end")
    assert arb.terminated_actors[p.aid]["exitcode"] == 7
