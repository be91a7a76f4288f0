"""Errors: what each failure raises at the sender, and that the target survives it."""

from __future__ import annotations

import asyncio
import pickle
import time

import pytest
from conftest import KINDS, SPAWN_T, T

from actorgrpc import (
    ActorError,
    ActorNotAvailable,
    ActorNotFound,
    ActorTimeout,
    BadRequest,
    CommandError,
    CommandNotFound,
    PermissionDenied,
    ResourceExhausted,
    arbiter,
    command,
    send,
    spawn,
)


class ErrCustom(Exception):
    """An exception type that is not a built-in."""


@command()
def err_raise_value_error(request, message):
    """Raise ValueError(message) in the actor."""
    raise ValueError(message)


@command()
def err_raise_key_error(request):
    raise KeyError("missing")


@command()
def err_raise_custom(request):
    raise ErrCustom("custom failure")


@command()
async def err_async_raise(request):
    await asyncio.sleep(0)
    raise ZeroDivisionError("async boom")


@command()
async def err_slow(request, seconds):
    """Take a while (async: the actor keeps answering meanwhile)."""
    await asyncio.sleep(seconds)
    return "late"


@command()
def err_slow_blocking(request, seconds):
    """Take a while, blocking the actor (simulated work)."""
    time.sleep(seconds)
    return "late"


@command(ack=False)
def err_raise_no_ack(request):
    raise RuntimeError("nobody hears this")


@command()
def err_unencodable_result(request):
    return lambda: None


def assert_alive(target):
    assert send(target, "ping").result(T) == "pong"


# -- the hierarchy -------------------------------------------------------------------


def test_every_error_is_an_actor_error():
    for cls in (
        ActorNotAvailable,
        ActorNotFound,
        ActorTimeout,
        BadRequest,
        CommandError,
        CommandNotFound,
        PermissionDenied,
        ResourceExhausted,
    ):
        assert issubclass(cls, ActorError)
    assert issubclass(ActorTimeout, TimeoutError)
    assert issubclass(BadRequest, ValueError)


# -- over the wire -------------------------------------------------------------------


@pytest.mark.parametrize("kind", [*KINDS, "arbiter"])
def test_unknown_command_raises_command_not_found(arb, kind):
    target = "arbiter" if kind == "arbiter" else spawn(concurrency=kind).result(SPAWN_T)
    with pytest.raises(CommandNotFound) as info:
        send(target, "err_no_such_command", 1).result(T)
    assert "err_no_such_command" in str(info.value)
    assert_alive(target)


@pytest.mark.parametrize("kind", KINDS)
def test_remote_value_error_is_a_command_error_and_a_value_error(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    with pytest.raises(ValueError) as info:
        send(p, "err_raise_value_error", "bad value 42").result(T)
    err = info.value
    assert isinstance(err, CommandError)
    assert isinstance(err, ActorError)
    assert err.remote_type == "ValueError"
    assert err.remote_message == "bad value 42"
    assert "err_raise_value_error" in err.remote_traceback
    assert "ValueError: bad value 42" in err.remote_traceback
    assert "bad value 42" in str(err)
    assert_alive(p)


@pytest.mark.parametrize("kind", KINDS)
def test_other_builtin_errors_keep_their_type(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    with pytest.raises(KeyError) as info:
        send(p, "err_raise_key_error").result(T)
    assert isinstance(info.value, CommandError)
    assert info.value.remote_type == "KeyError"
    with pytest.raises(ZeroDivisionError) as info2:
        send(p, "err_async_raise").result(T)
    assert isinstance(info2.value, CommandError)
    assert "err_async_raise" in info2.value.remote_traceback
    assert_alive(p)


@pytest.mark.parametrize("kind", KINDS)
def test_non_builtin_error_is_a_command_error_naming_its_type(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    with pytest.raises(CommandError) as info:
        send(p, "err_raise_custom").result(T)
    err = info.value
    assert not isinstance(err, ErrCustom)
    assert err.remote_type == f"{__name__}.ErrCustom"
    assert err.remote_message == "custom failure"
    assert "err_raise_custom" in err.remote_traceback
    assert_alive(p)


def test_command_error_pickles_with_its_type():
    with pytest.raises(ValueError) as info:
        raise_remote()
    back = pickle.loads(pickle.dumps(info.value))
    assert isinstance(back, CommandError) and isinstance(back, ValueError)
    assert (back.remote_type, back.remote_message, back.remote_traceback) == (
        info.value.remote_type,
        info.value.remote_message,
        info.value.remote_traceback,
    )


def raise_remote():
    with arbiter() as _:
        p = spawn(concurrency="thread").result(SPAWN_T)
        send(p, "err_raise_value_error", "pickled").result(T)


@pytest.mark.parametrize("target", ["no-such-name", "0badc0de"])
def test_no_such_actor_raises_actor_not_found(arb, target):
    with pytest.raises(ActorNotFound) as info:
        send(target, "ping").result(T)
    assert target in str(info.value)
    assert_alive("arbiter")


def test_no_such_actor_from_inside_a_process_actor(arb):
    p = spawn().result(SPAWN_T)
    with pytest.raises(ActorNotFound):
        send(p, "run", ask_nobody).result(T)
    assert_alive(p)


async def ask_nobody(actor):
    return await send("nobody-by-this-name", "ping")


@pytest.mark.parametrize("kind", KINDS)
def test_proxy_of_a_stopped_actor_is_not_available(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    assert send("arbiter", "kill_actor", p.aid).result(T) == f"killed {p.aid}"
    with pytest.raises((ActorNotAvailable, ActorNotFound)):
        send(p, "ping").result(T)
    # By aid, once it is gone: not found, or known to have ended.
    with pytest.raises((ActorNotAvailable, ActorNotFound)) as info:
        send(p.aid, "ping").result(T)
    assert p.aid in str(info.value)


@pytest.mark.parametrize("kind", KINDS)
def test_no_reply_in_time_is_an_actor_timeout(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    fut = send(p, "err_slow", 2.0)
    started = time.monotonic()
    with pytest.raises(ActorTimeout) as info:
        fut.result(timeout=0.2)
    assert time.monotonic() - started < 1.5
    assert isinstance(info.value, TimeoutError)
    # The actor still answers, and the slow reply still comes.
    assert_alive(p)
    assert fut.result(T) == "late"


@pytest.mark.parametrize("kind", KINDS)
def test_timeout_on_a_blocking_command(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    fut = send(p, "err_slow_blocking", 0.8)
    with pytest.raises(TimeoutError):
        fut.result(timeout=0.2)
    assert fut.result(T) == "late"
    assert_alive(p)


@pytest.mark.parametrize("kind", KINDS)
def test_error_in_a_command_without_ack_leaves_the_actor_alive(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    assert send(p, "err_raise_no_ack") is None
    assert_alive(p)


@pytest.mark.parametrize("kind", KINDS)
def test_unencodable_result_is_a_bad_request(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    with pytest.raises(BadRequest) as info:
        send(p, "err_unencodable_result").result(T)
    assert "function" in str(info.value)
    assert_alive(p)


def test_errors_inside_actors_are_raised_where_awaited(arb):
    a = spawn().result(SPAWN_T)
    b = spawn(concurrency="thread").result(SPAWN_T)
    assert send(a, "run", catch_remote_value_error, b).result(T) == {
        "is_command_error": True,
        "is_value_error": True,
        "remote_type": "ValueError",
        "message": "from b",
    }


async def catch_remote_value_error(actor, other):
    try:
        await send(other, "err_raise_value_error", "from b")
    except ValueError as exc:
        return {
            "is_command_error": isinstance(exc, CommandError),
            "is_value_error": True,
            "remote_type": exc.remote_type,
            "message": exc.remote_message,
        }
    return None


def test_send_without_an_arbiter_is_a_clear_error():
    with pytest.raises(RuntimeError, match="arbiter"):
        send("arbiter", "ping")
    with pytest.raises(RuntimeError, match="arbiter"):
        spawn()


# -- exceptions a command raises, however odd: always an error reply, the actor lives on


class ErrUnprintable(Exception):
    """An exception whose text cannot be made."""

    def __str__(self) -> str:
        raise RuntimeError("no text for you")


@command()
def err_raise_surrogate(request):
    """Raise an error whose text UTF-8 cannot carry (a lone surrogate, as os.fsdecode makes)."""
    raise ValueError("bad file name: " + b"caf\xe9".decode("utf-8", "surrogateescape"))


@command()
def err_raise_unprintable(request):
    """Raise an error whose __str__ raises."""
    raise ErrUnprintable()


@command()
def err_raise_base(request, which):
    """Raise SystemExit or KeyboardInterrupt, as sync code might."""
    raise SystemExit(3) if which == "exit" else KeyboardInterrupt()


@command()
async def err_raise_base_async(request, which):
    """Raise SystemExit or KeyboardInterrupt from an async command."""
    await asyncio.sleep(0)
    raise SystemExit(3) if which == "exit" else KeyboardInterrupt()


@pytest.mark.parametrize("kind", KINDS)
def test_an_error_whose_text_utf8_cannot_carry_still_reaches_the_sender(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    with pytest.raises(ValueError, match=r"bad file name: caf\\udce9") as info:
        send(p, "err_raise_surrogate").result(T)
    assert isinstance(info.value, CommandError)
    # And again: the actor (and, for a process, its stream) survived it.
    with pytest.raises(ValueError):
        send(p, "err_raise_surrogate").result(T)
    assert send(p, "ping").result(T) == "pong"


@pytest.mark.parametrize("kind", KINDS)
def test_an_error_whose_str_raises_still_reaches_the_sender(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    with pytest.raises(CommandError, match="ErrUnprintable") as info:
        send(p, "err_raise_unprintable").result(T)
    assert "unprintable" in info.value.remote_message
    assert send(p, "ping").result(T) == "pong"


@pytest.mark.parametrize("which", ["exit", "interrupt"])
@pytest.mark.parametrize("command_name", ["err_raise_base", "err_raise_base_async"])
@pytest.mark.parametrize("kind", KINDS)
def test_system_exit_and_keyboard_interrupt_in_a_command_are_error_replies(
    arb, kind, command_name, which
):
    p = spawn(concurrency=kind).result(SPAWN_T)
    expected = "SystemExit" if which == "exit" else "KeyboardInterrupt"
    with pytest.raises(CommandError, match=expected) as info:
        send(p, command_name, which).result(T)
    assert info.value.remote_type == expected
    # Only stop ends an actor.
    assert send(p, "ping").result(T) == "pong"
    assert arb.managed_actors[p.aid].is_alive()
