"""Commands: the @command registry, the standard commands, custom commands over the wire."""

from __future__ import annotations

import asyncio

import pytest
from conftest import KINDS, SPAWN_T, T, get_extra

from actorgrpc import (
    ActorNotFound,
    ActorProxy,
    CommandError,
    CommandNotFound,
    PermissionDenied,
    Request,
    command,
    send,
    spawn,
)
from actorgrpc.core.commands import get_command, registered_commands
from actorgrpc.testing import wait_for

# -- commands of this module: process actors import it to run them ------------


@command()
def cmd_add(request, a, b=0):
    """Answer a + b."""
    return a + b


@command
def cmd_bare_decorator(request):
    """Registered with the bare @command form."""
    return "bare"


@command()
async def cmd_async_add(request, a, b):
    """An async command: awaits on the actor's loop before answering."""
    await asyncio.sleep(0.01)
    return a + b


@command(ack=False)
def cmd_remember(request, key, value):
    """No reply: store value in the actor's extra."""
    request.actor.extra[key] = value


@command(ack=False)
async def cmd_remember_later(request, key, value):
    """No reply, async: store value in the actor's extra after a while."""
    await asyncio.sleep(0.05)
    request.actor.extra[key] = value


@command()
def cmd_request_fields(request, *args, **kwargs):
    """What the request object carries."""
    assert isinstance(request, Request)
    return {
        "actor": request.actor.aid,
        "caller": request.caller,
        "action": request.action,
        "args": request.args,
        "kwargs": request.kwargs,
        "positional": args,
        "keywords": kwargs,
    }


async def async_probe(actor, x, *, y):
    """An async function for the run command."""
    await asyncio.sleep(0)
    return (actor.aid, x, y)


def probe(actor, x, y=None):
    """A plain function for the run command."""
    return (actor.aid, x, y)


def my_kind(actor):
    return actor.impl


# -- the registry -----------------------------------------------------------------


def test_standard_commands_are_registered():
    names = registered_commands()
    for name in ("ping", "echo", "info", "stop", "notify", "run", "spawn", "kill_actor"):
        assert name in names
        assert get_command(name).ack is True


def test_decorator_forms_register_with_their_ack():
    assert get_command("cmd_add").ack is True
    assert get_command("cmd_add").fn is cmd_add
    assert get_command("cmd_bare_decorator").ack is True
    assert get_command("cmd_remember").ack is False
    assert get_command("cmd_remember_later").ack is False
    assert get_command("cmd_add").module == __name__
    # The decorator hands the function back unchanged.
    assert cmd_add(None, 1, 2) == 3


def test_later_definition_replaces_earlier():
    @command()
    def cmd_replaced(request):
        return 1

    first = cmd_replaced

    @command(ack=False)
    def cmd_replaced(request):
        return 2

    assert get_command("cmd_replaced").fn is cmd_replaced
    assert get_command("cmd_replaced").fn is not first
    assert get_command("cmd_replaced").ack is False


def test_unknown_command_lookup_raises_command_not_found():
    with pytest.raises(CommandNotFound, match="cmd_nope"):
        get_command("cmd_nope")


def test_bad_decorator_arguments_are_type_errors():
    with pytest.raises(TypeError, match="bool"):
        command(ack="yes")
    with pytest.raises(TypeError, match="function"):
        command(42)


# -- over the wire -----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_custom_commands_run_in_both_kinds(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    assert send(p, "cmd_add", 2, 3).result(T) == 5
    assert send(p, "cmd_add", 2, b=40).result(T) == 42
    assert send(p, "cmd_add", "a", "b").result(T) == "ab"
    assert send(p, "cmd_bare_decorator").result(T) == "bare"
    assert send(p, "run", my_kind).result(T) == kind


@pytest.mark.parametrize("kind", KINDS)
def test_async_command(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    assert send(p, "cmd_async_add", 20, 22).result(T) == 42
    # Several in flight at once all complete.
    futs = [send(p, "cmd_async_add", i, i) for i in range(20)]
    assert [f.result(T) for f in futs] == [2 * i for i in range(20)]


@pytest.mark.parametrize("kind", KINDS)
def test_command_without_ack_returns_none_and_still_runs(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    assert send(p, "cmd_remember", "k", [1, "two"]) is None
    assert send(p, "cmd_remember_later", "k2", {"v": 3}) is None
    wait_for(lambda: send(p, "run", get_extra, "k").result(T) == [1, "two"], what="cmd_remember")
    wait_for(
        lambda: send(p, "run", get_extra, "k2").result(T) == {"v": 3}, what="cmd_remember_later"
    )


def test_command_without_ack_by_name_and_aid(arb):
    p = spawn(name="cmd-noack").result(SPAWN_T)
    assert send("cmd-noack", "cmd_remember", "by_name", 1) is None
    assert send(p.aid, "cmd_remember", "by_aid", 2) is None
    wait_for(lambda: send(p, "run", get_extra, "by_name").result(T) == 1, what="by name")
    wait_for(lambda: send(p, "run", get_extra, "by_aid").result(T) == 2, what="by aid")


@pytest.mark.parametrize("kind", KINDS)
def test_request_carries_actor_caller_action_and_arguments(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    got = send(p, "cmd_request_fields", 1, "two", three=3).result(T)
    assert got["actor"] == p.aid
    assert got["action"] == "cmd_request_fields"
    assert got["args"] == (1, "two") and got["positional"] == (1, "two")
    assert got["kwargs"] == {"three": 3} and got["keywords"] == {"three": 3}
    # From plain code the sender is the arbiter of this process.
    assert isinstance(got["caller"], ActorProxy)
    assert got["caller"].aid == arb.aid
    assert got["caller"].address == arb.address


@pytest.mark.parametrize("kind", KINDS)
def test_standard_commands(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    assert send(p, "ping").result(T) == "pong"
    assert send(p, "echo").result(T) is None
    assert send(p, "echo", "hi").result(T) == "hi"
    assert send(p, "echo", message="kw").result(T) == "kw"
    assert send(p, "info").result(T)["actor"]["aid"] == p.aid
    assert isinstance(send(p, "notify").result(T), float)
    assert send(p, "run", probe, 1).result(T) == (p.aid, 1, None)
    assert send(p, "run", probe, 1, y=2).result(T) == (p.aid, 1, 2)
    assert send(p, "run", async_probe, "x", y="y").result(T) == (p.aid, "x", "y")


def test_run_needs_a_callable(arb):
    p = spawn(concurrency="thread").result(SPAWN_T)
    with pytest.raises(CommandError) as info:
        send(p, "run", 42).result(T)
    assert isinstance(info.value, TypeError)
    assert "callable" in info.value.remote_message


def test_run_is_refused_with_pickle_off(nopickle_arb):
    p = spawn(concurrency="thread").result(SPAWN_T)
    with pytest.raises(PermissionDenied, match="pickle"):
        # The function itself cannot travel: refused at the sender, naming the type.
        send(p, "run", probe)
    assert send(p, "ping").result(T) == "pong"


def test_stop_command_stops_the_actor(arb):
    p = spawn().result(SPAWN_T)
    assert send(p, "stop").result(T) is None
    wait_for(lambda: p.aid not in arb.managed_actors, what="actor to go")


def test_spawn_command_on_the_arbiter(arb):
    child = send("arbiter", "spawn", concurrency="thread", name="cmd-spawned").result(SPAWN_T)
    assert isinstance(child, ActorProxy)
    assert child.name == "cmd-spawned"
    assert child.aid in arb.managed_actors
    assert send("cmd-spawned", "ping").result(T) == "pong"


def test_spawn_command_on_another_actor_is_refused(arb):
    p = spawn(concurrency="thread").result(SPAWN_T)
    with pytest.raises(CommandError) as info:
        send(p, "spawn", concurrency="thread").result(T)
    assert isinstance(info.value, NotImplementedError)
    assert "arbiter" in info.value.remote_message


@pytest.mark.parametrize("kind", KINDS)
def test_kill_actor_command(arb, kind):
    p = spawn(concurrency=kind, name=f"victim-{kind}").result(SPAWN_T)
    assert send("arbiter", "kill_actor", p.aid).result(T) == f"killed {p.aid}"
    assert p.aid not in arb.managed_actors
    assert p.aid in arb.terminated_actors
    with pytest.raises(ActorNotFound, match="no-such-aid"):
        send("arbiter", "kill_actor", "no-such-aid").result(T)
