"""spawn: both kinds, aid and name, the future, the proxy, hooks, params, actor_class, bad input."""

from __future__ import annotations

import asyncio
import os
import pickle
import time

import pytest
from conftest import KINDS, SPAWN_T, T, params_of, predicates

from actorgrpc import (
    ACTOR_STATES,
    Actor,
    ActorError,
    ActorProxy,
    ActorTimeout,
    command,
    send,
    spawn,
)
from actorgrpc.testing import wait_for

# -- hooks and classes (module level: process actors unpickle them) -------------------


def start_sets_extra(actor):
    actor.extra["greeting"] = f"hello from {actor.aid}"


async def async_start(actor):
    # An async start hook may talk to the tree before the actor runs.
    actor.extra["arbiter_says"] = await send("arbiter", "ping")


def count_ticks(actor):
    actor.extra["ticks"] = actor.extra.get("ticks", 0) + 1


async def tell_collector(actor):
    await send("spw-collector", "spw_collect", actor.aid, "stopping")


def failing_start(actor):
    raise RuntimeError("start hook failed on purpose")


async def hanging_start(actor):
    await asyncio.sleep(60)


class TaggedActor(Actor):
    """A subclass: adds to info and has a method of its own."""

    def tag(self) -> str:
        return f"tagged-{self.aid}"

    def info(self):
        out = super().info()
        out["extra"]["tag"] = self.tag()
        return out


@command()
def spw_collect(request, *item):
    request.actor.extra.setdefault("collected", []).append(list(item))


@command()
def spw_collected(request):
    return request.actor.extra.get("collected", [])


@command()
def spw_tag(request):
    return request.actor.tag()


def info_extra(p):
    return send(p, "info").result(T)["extra"]


# -- kinds, aid and name ------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("aid", [None, "spw-aid-1"])
@pytest.mark.parametrize("name", [None, "spw-named"])
def test_spawn_kinds_with_and_without_aid_and_name(arb, kind, aid, name):
    kwargs = {"concurrency": kind}
    if aid:
        kwargs["aid"] = aid
    if name:
        kwargs["name"] = name
    fut = spawn(**kwargs)
    # The aid is known at once, before the actor runs.
    assert isinstance(fut.aid, str) and fut.aid
    if aid:
        assert fut.aid == aid
    p = fut.result(SPAWN_T)
    assert isinstance(p, ActorProxy)
    assert p.aid == fut.aid
    assert p.name == (name or "actor")  # pulsar's: the class's name, lowercased
    host, port = p.address
    assert host == "127.0.0.1" and isinstance(port, int) and port > 0
    if kind == "thread":
        assert p.address == arb.address
    else:
        assert p.address != arb.address
    info = send(p, "info").result(T)["actor"]
    assert info["aid"] == p.aid
    assert info["name"] == (name or "actor")
    assert info["concurrency"] == kind
    assert (info["pid"] == os.getpid()) == (kind == "thread")
    assert arb.managed_actors[p.aid].kind == kind
    if name:
        assert send(name, "ping").result(T) == "pong"


def test_default_concurrency_is_process(arb):
    p = spawn().result(SPAWN_T)
    assert arb.managed_actors[p.aid].kind == "process"
    info = send(p, "info").result(T)["actor"]
    assert info["concurrency"] == "process"
    assert info["pid"] != os.getpid()
    assert send(p, "run", predicates).result(T)["is_process"] is True


def test_generated_aids_are_unique(arb):
    futs = [spawn(concurrency="thread") for _ in range(20)]
    aids = {f.aid for f in futs}
    assert len(aids) == 20
    assert {f.result(SPAWN_T).aid for f in futs} == aids


def test_several_process_spawns_at_once(arb):
    futs = [spawn() for _ in range(4)]
    proxies = [f.result(SPAWN_T) for f in futs]
    assert len({p.address for p in proxies}) == 4
    assert len({send(p, "info").result(T)["actor"]["pid"] for p in proxies}) == 4


@pytest.mark.parametrize("kind", KINDS)
def test_proxy_is_picklable_and_still_usable(arb, kind):
    p = spawn(concurrency=kind, name=f"spw-pickle-{kind}").result(SPAWN_T)
    back = pickle.loads(pickle.dumps(p))
    assert type(back) is ActorProxy
    assert (back.aid, back.name, back.address) == (p.aid, p.name, p.address)
    assert back == p and hash(back) == hash(p)
    assert send(back, "ping").result(T) == "pong"


# -- hooks ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_start_hook_runs_before_spawn_resolves(arb, kind):
    p = spawn(concurrency=kind, start=start_sets_extra).result(SPAWN_T)
    # No waiting: the actor runs only once its start hook is done.
    assert info_extra(p)["greeting"] == f"hello from {p.aid}"


@pytest.mark.parametrize("kind", KINDS)
def test_async_start_hook(arb, kind):
    p = spawn(concurrency=kind, start=async_start).result(SPAWN_T)
    assert info_extra(p)["arbiter_says"] == "pong"


@pytest.mark.parametrize("kind", KINDS)
def test_periodic_task_hook_runs_periodically(arb, kind):
    p = spawn(concurrency=kind, periodic_task=count_ticks).result(SPAWN_T)
    wait_for(lambda: info_extra(p).get("ticks", 0) >= 2, timeout=15, what="two ticks")


@pytest.mark.parametrize("kind", KINDS)
def test_stopping_hook_runs_on_stop(arb, kind):
    spawn(concurrency="thread", name="spw-collector").result(SPAWN_T)
    p = spawn(concurrency=kind, stopping=tell_collector).result(SPAWN_T)
    assert send("spw-collector", "spw_collected").result(T) == []
    assert send(p, "stop").result(T) is None
    wait_for(
        lambda: send("spw-collector", "spw_collected").result(T) == [[p.aid, "stopping"]],
        what="the stopping hook's message",
    )
    wait_for(lambda: p.aid in arb.terminated_actors, what="the actor to end")


def test_lambdas_are_fine_as_thread_actor_hooks(arb):
    p = spawn(concurrency="thread", start=lambda a: a.extra.update(x=1)).result(SPAWN_T)
    assert info_extra(p)["x"] == 1


def test_unpicklable_hook_for_a_process_actor_is_a_clear_error(arb):
    with pytest.raises(ActorError) as info:
        spawn(start=lambda a: None).result(SPAWN_T)
    assert "picklable" in str(info.value)
    assert send("arbiter", "ping").result(T) == "pong"


@pytest.mark.parametrize("kind", KINDS)
def test_failing_start_hook_fails_the_spawn(arb, kind):
    fut = spawn(concurrency=kind, start=failing_start)
    with pytest.raises(ActorError) as info:
        fut.result(SPAWN_T)
    assert "start hook failed on purpose" in str(info.value)
    wait_for(lambda: fut.aid in arb.terminated_actors, what="the failed actor's record")
    assert fut.aid not in arb.managed_actors


@pytest.mark.parametrize("kind", KINDS)
def test_spawn_timeout_ends_the_actor(arb, kind):
    fut = spawn(concurrency=kind, start=hanging_start, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ActorTimeout) as info:
        fut.result(SPAWN_T)
    assert isinstance(info.value, TimeoutError)
    assert time.monotonic() - started < 5
    # Given up on: it must not linger, stuck in its start hook, until the arbiter stops.
    wait_for(lambda: fut.aid not in arb.managed_actors, what="the timed-out actor to end")
    assert arb.terminated_actors[fut.aid]["state"] == ACTOR_STATES.TERMINATE


# -- params and actor_class -------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_extra_keywords_land_in_params(arb, kind):
    p = spawn(
        concurrency=kind,
        name=f"spw-params-{kind}",
        aid=f"spw-params-aid-{kind}",
        timeout=20,
        start=start_sets_extra,
        foo=1,
        bar=[1, "two"],
        nested={"a": (1, 2)},
    ).result(SPAWN_T)
    assert send(p, "run", params_of).result(T) == {
        "foo": 1,
        "bar": [1, "two"],
        "nested": {"a": (1, 2)},
    }


@pytest.mark.parametrize("kind", KINDS)
def test_actor_class_subclass(arb, kind):
    p = spawn(concurrency=kind, actor_class=TaggedActor).result(SPAWN_T)
    assert p.name == "taggedactor"
    assert send(p, "run", predicates).result(T)["class"] == "TaggedActor"
    assert send(p, "spw_tag").result(T) == f"tagged-{p.aid}"
    assert info_extra(p)["tag"] == f"tagged-{p.aid}"


# -- spawning from inside actors ------------------------------------------------------------


async def spawn_child(actor, kind):
    fut = spawn(concurrency=kind, name=f"spw-grandchild-{kind}")
    aid_at_once = fut.aid
    proxy = await fut
    return {"aid_at_once": aid_at_once, "proxy": proxy, "ping": await send(proxy, "ping")}


@pytest.mark.parametrize("parent_kind", KINDS)
@pytest.mark.parametrize("kind", KINDS)
def test_spawn_from_inside_an_actor(arb, parent_kind, kind):
    parent = spawn(concurrency=parent_kind).result(SPAWN_T)
    got = send(parent, "run", spawn_child, kind).result(SPAWN_T)
    child = got["proxy"]
    assert isinstance(child, ActorProxy)
    assert child.aid == got["aid_at_once"]
    assert got["ping"] == "pong"
    # The arbiter manages it, and it answers from here too.
    assert child.aid in arb.managed_actors
    assert arb.managed_actors[child.aid].kind == kind
    assert send(f"spw-grandchild-{kind}", "ping").result(T) == "pong"


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"aid": 42}, TypeError, "aid"),
        ({"aid": "x" * 129}, TypeError, "aid"),
        ({"aid": "bad\naid"}, TypeError, "aid"),
        ({"name": 42}, TypeError, "name"),
        ({"name": ""}, TypeError, "name"),
        ({"name": "arbiter"}, ValueError, "reserved"),
        ({"concurrency": "fork"}, ValueError, "concurrency"),
        ({"concurrency": None}, ValueError, "concurrency"),
        ({"start": "not callable"}, TypeError, "start"),
        ({"stopping": 1}, TypeError, "stopping"),
        ({"periodic_task": []}, TypeError, "periodic_task"),
        ({"actor_class": dict}, TypeError, "actor_class"),
        ({"actor_class": "Actor"}, TypeError, "actor_class"),
        ({"timeout": float("nan")}, ValueError, "timeout"),
        ({"timeout": -1}, ValueError, "timeout"),
        ({"timeout": "5"}, ValueError, "timeout"),
        ({"timeout": True}, ValueError, "timeout"),
    ],
)
def test_bad_spawn_arguments_raise_at_once(arb, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        spawn(**kwargs)
    assert not arb.managed_actors


@pytest.mark.parametrize("kind", KINDS)
def test_name_taken_is_refused(arb, kind):
    first = spawn(concurrency=kind, name="spw-dup").result(SPAWN_T)
    with pytest.raises(ActorError) as info:
        spawn(concurrency=kind, name="spw-dup").result(SPAWN_T)
    assert "spw-dup" in str(info.value)
    assert send("spw-dup", "ping").result(T) == "pong"
    assert list(arb.managed_actors) == [first.aid]


@pytest.mark.parametrize("kind", KINDS)
def test_name_is_free_again_once_its_actor_ended(arb, kind):
    first = spawn(concurrency=kind, name="spw-reuse").result(SPAWN_T)
    send(first, "stop").result(T)
    wait_for(lambda: first.aid in arb.terminated_actors, what="the first actor to end")
    second = spawn(concurrency=kind, name="spw-reuse").result(SPAWN_T)
    assert second.aid != first.aid
    assert send("spw-reuse", "run", predicates).result(T)["aid"] == second.aid


@pytest.mark.parametrize("kind", KINDS)
def test_default_names_are_shown_but_not_registered(arb, kind):
    """Unnamed actors share pulsar's default name; only given names are looked up."""
    first = spawn(concurrency=kind).result(SPAWN_T)
    second = spawn(concurrency=kind).result(SPAWN_T)
    assert first.name == second.name == "actor"
    assert arb.managed_actors[first.aid].name == "actor"
    assert "actor" not in arb.registered
    assert "arbiter" in arb.registered
    with pytest.raises(ActorError, match="no actor 'actor' in this tree"):
        send("actor", "ping").result(T)
    # A given name that happens to be the default one is an ordinary name.
    named = spawn(concurrency=kind, name="actor").result(SPAWN_T)
    assert arb.registered["actor"] == named.aid
    assert send("actor", "info").result(T)["actor"]["aid"] == named.aid
    # Death records keep the default name, and a name's obituary is only a named actor's.
    assert send(first, "stop").result(T) is None
    wait_for(lambda: first.aid in arb.terminated_actors, SPAWN_T)
    assert arb.terminated_actors[first.aid]["name"] == "actor"
    assert send(named, "stop").result(T) is None
    wait_for(lambda: named.aid in arb.terminated_actors, SPAWN_T)
    with pytest.raises(ActorError, match=rf"actor actor \({named.aid}\) ended: stopped"):
        send("actor", "ping").result(T)


def test_aid_taken_is_refused(arb):
    spawn(concurrency="thread", aid="spw-same").result(SPAWN_T)
    with pytest.raises(ActorError) as info:
        spawn(concurrency="thread", aid="spw-same").result(SPAWN_T)
    assert "spw-same" in str(info.value)
    assert list(arb.managed_actors) == ["spw-same"]


def env_probe(actor, name):
    """What the actor's process sees of an environment variable."""
    return os.environ.get(name)


def test_a_process_actor_sees_the_environment_as_it_is_at_its_spawn(arb, monkeypatch):
    first = spawn().result(SPAWN_T)  # the forkserver runs from here on
    monkeypatch.setenv("ACTORGRPC_TEST_ENV_PROBE", "set after the first spawn")
    later = spawn().result(SPAWN_T)
    assert send(later, "run", env_probe, "ACTORGRPC_TEST_ENV_PROBE").result(T) == (
        "set after the first spawn"
    )
    assert send(first, "run", env_probe, "ACTORGRPC_TEST_ENV_PROBE").result(T) is None
