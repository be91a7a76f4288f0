"""Bad arguments to every public function raise clear exceptions that say what was wrong.

A clear exception here is a TypeError or ValueError (or the ActorError that fits)
whose message names the parameter at fault. A raw AttributeError from deep
inside, or nonsense accepted in silence (a string where a flag is wanted), is a
bug, and the tests below say what is expected instead.
"""

from __future__ import annotations

import contextlib
import functools
import math
import socket
import threading
import time
from typing import Any

import pytest

from actorgrpc import (
    Actor,
    ActorNotAvailable,
    ActorNotFound,
    ActorProxy,
    ActorTimeout,
    BadRequest,
    CommandNotFound,
    PermissionDenied,
    arbiter,
    command,
    get_actor,
    send,
    spawn,
)
from actorgrpc.testing import running_arbiter

SECRET = "bad-arguments-" + "b" * 20


@pytest.fixture
def tree():
    with running_arbiter(secret=SECRET) as arb:
        yield arb


def refused(exc_type: Any, match: str, **params: Any) -> None:
    """``arbiter(**params)`` must raise ``exc_type`` matching ``match``.

    An arbiter wrongly accepted is never started (it might listen where it
    should not); it is marked finished so that the next ``arbiter()`` call of the
    process makes a new one.
    """
    params.setdefault("secret", SECRET)
    with pytest.raises(exc_type, match=match):
        made = arbiter(**params)
        assert made is not None
        made._finished.set()  # forget the arbiter accepted by mistake


# -- arbiter() ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "exc_type", "match"),
    [
        ({"host": 1}, TypeError, "host"),
        ({"host": ""}, TypeError, "host"),
        ({"host": None}, TypeError, "host"),
        ({"port": "80"}, ValueError, "port"),
        ({"port": -1}, ValueError, "port"),
        ({"port": 65536}, ValueError, "port"),
        ({"port": True}, ValueError, "port"),
        ({"port": 1.5}, ValueError, "port"),
        ({"name": 3}, TypeError, "name"),
        ({"name": ""}, TypeError, "name"),
        ({"start_method": "fork"}, ValueError, "start_method"),
        ({"start_method": 1}, ValueError, "start_method"),
        ({"max_message_size": "1"}, ValueError, "max_message_size"),
        ({"max_message_size": 10}, ValueError, "max_message_size"),
        ({"max_message_size": True}, ValueError, "max_message_size"),
        ({"max_message_size": 2.0**30}, ValueError, "max_message_size"),
        ({"max_mailbox": 0}, ValueError, "max_mailbox"),
        ({"max_mailbox": 1.5}, ValueError, "max_mailbox"),
        ({"max_mailbox": "10"}, ValueError, "max_mailbox"),
        ({"secret": 123}, ValueError, "secret"),
        ({"secret": b"x" * 20}, ValueError, "secret"),
        ({"secret": ""}, ValueError, "secret"),
        ({"secret": "short"}, ValueError, "secret"),
        ({"secret": "line\nbreak" * 3}, ValueError, "secret"),
        ({"tls": "yes"}, TypeError, "tls"),
        ({"tls": 123}, TypeError, "tls"),
        ({"tls": {}}, ValueError, "tls"),
        ({"tls": {"cert": 3, "key": 3}}, TypeError, "tls"),
        ({"tls": {"certificate": b"x"}}, TypeError, "unknown keys"),
        ({"start": 3}, TypeError, "start hook"),
        ({"stopping": "x"}, TypeError, "stopping hook"),
        ({"periodic_task": 1}, TypeError, "periodic_task hook"),
        ({"host": "0.0.0.0"}, ValueError, "without TLS"),
    ],
    ids=lambda v: repr(v)[:40] if isinstance(v, dict) else None,
)
def test_arbiter_refuses_bad_parameters_naming_them(params, exc_type, match):
    refused(exc_type, match, **params)


@pytest.mark.parametrize("value", ["no", "false", "off", 1.0], ids=repr)
def test_arbiter_pickle_flag_must_be_a_bool(value):
    """``pickle='no'`` is truthy: today it turns pickle ON, the opposite of what was
    written. A security switch must take a bool and refuse anything else."""
    refused(TypeError, "pickle", pickle=value)


@pytest.mark.parametrize("value", ["no", "false", "off"], ids=repr)
def test_arbiter_insecure_flag_must_be_a_bool(value):
    """``insecure='no'`` is truthy: today it lets an arbiter listen on 0.0.0.0
    without TLS. The flag must be a bool."""
    refused(TypeError, "insecure", host="0.0.0.0", insecure=value)


@pytest.mark.parametrize("value", ["bogus", 3.5, [10]], ids=repr)
def test_arbiter_log_level_must_be_a_logging_level(value):
    """A bad log_level is accepted today, and every process actor then dies at
    start (logging.basicConfig raises in the child): spawn fails with "exited
    with code 1". It must be refused by arbiter(), naming log_level."""
    refused((TypeError, ValueError), "log_level", log_level=value)


def test_a_port_already_in_use_is_refused_naming_it():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        made = arbiter(secret=SECRET, port=port)
        assert made is not None
        with pytest.raises((OSError, RuntimeError), match=str(port)), made:
            pass
    finally:
        taken.close()
    # The failed start leaves no arbiter behind: the next one starts.
    with arbiter(secret=SECRET) as arb:
        assert send("arbiter", "ping").result(10) == "pong"
        assert arb.address[1] != port


def test_one_arbiter_per_process_and_one_run_per_arbiter():
    made = arbiter(secret=SECRET)
    assert made is not None
    with pytest.raises(RuntimeError, match="not running"):
        made.spawn()
    with pytest.raises(RuntimeError, match="not running"):
        made.add_monitor("early")
    with pytest.raises(RuntimeError, match="no actor runs"):
        send("arbiter", "ping")
    with made:
        with pytest.raises(RuntimeError, match="already exists"):
            arbiter(secret=SECRET)
        assert arbiter() is made
        with pytest.raises(RuntimeError, match="already running"):
            made.__enter__()
        with pytest.raises(RuntimeError, match="already running"):
            made.start()
    with pytest.raises(RuntimeError, match="not running"):
        made.spawn()
    with pytest.raises(RuntimeError, match="no actor runs"):
        spawn()


# -- spawn() --------------------------------------------------------------------------------


class NotAnActor:
    pass


@pytest.mark.parametrize(
    ("params", "exc_type", "match"),
    [
        ({"aid": 3}, TypeError, "aid"),
        ({"aid": "x" * 129}, TypeError, "aid"),
        ({"aid": "a\nb"}, TypeError, "aid"),
        ({"aid": ["a"]}, TypeError, "aid"),
        ({"name": 3}, TypeError, "name"),
        ({"name": ""}, TypeError, "name"),
        ({"name": "n" * 129}, TypeError, "name"),
        ({"name": "arbiter"}, ValueError, "reserved"),
        ({"concurrency": "fork"}, ValueError, "concurrency"),
        ({"concurrency": None}, ValueError, "concurrency"),
        ({"concurrency": 1}, ValueError, "concurrency"),
        ({"start": 3}, TypeError, "start hook"),
        ({"stopping": "x"}, TypeError, "stopping hook"),
        ({"periodic_task": [print]}, TypeError, "periodic_task hook"),
        ({"actor_class": int}, TypeError, "actor_class"),
        ({"actor_class": "Actor"}, TypeError, "actor_class"),
        ({"actor_class": NotAnActor}, TypeError, "actor_class"),
        ({"timeout": -1}, ValueError, "timeout"),
        ({"timeout": float("nan")}, ValueError, "timeout"),
        ({"timeout": True}, ValueError, "timeout"),
        ({"timeout": "5"}, ValueError, "timeout"),
        ({"timeout": math.nan}, ValueError, "timeout"),
        ({"timeout": None}, ValueError, "timeout"),
    ],
    ids=lambda v: repr(v)[:40] if isinstance(v, dict) else None,
)
def test_spawn_refuses_bad_parameters_naming_them(tree, params, exc_type, match):
    with pytest.raises(exc_type, match=match):
        spawn(**params)
    assert tree.managed_actors == {}


def test_spawn_with_an_empty_aid_is_refused(tree):
    """``spawn(aid='')`` silently spawns an actor under a random aid today; an
    explicit empty aid is a mistake (as an empty name is) and must be refused."""
    try:
        with pytest.raises(TypeError, match="aid"):
            spawn(aid="", concurrency="thread")
    finally:
        for aid in list(tree.managed_actors):
            with contextlib.suppress(ActorNotFound):  # it may have ended meanwhile
                send("arbiter", "kill_actor", aid).result(15)


def hook(actor: Any) -> None:
    """A module-level hook: picklable."""


@pytest.mark.parametrize(
    ("params", "what"),
    [
        ({"start": lambda actor: None}, "function"),
        ({"stopping": functools.partial(lambda actor, x: None, x=1)}, "lambda"),
        ({"lock": threading.Lock()}, "lock"),
        ({"actor_class": type("LocalActor", (Actor,), {})}, "LocalActor"),
    ],
    ids=["lambda-hook", "partial-of-lambda", "lock-param", "local-class"],
)
def test_unpicklable_spawn_parameters_of_a_process_actor_are_a_bad_request(tree, params, what):
    future = spawn(**params)
    with pytest.raises(BadRequest, match="picklable") as err:
        future.result(30)
    assert what in str(err.value)
    assert tree.managed_actors == {}
    # The same parameters are fine for a thread actor (nothing is pickled).
    proxy = spawn(concurrency="thread", **params).result(10)
    assert send(proxy, "ping").result(10) == "pong"


def test_spawn_refuses_an_aid_or_name_in_use(tree):
    first = spawn(name="only-one", concurrency="thread").result(10)
    with pytest.raises(BadRequest, match="taken"):
        spawn(aid=first.aid, concurrency="thread").result(10)
    with pytest.raises(BadRequest, match="taken"):
        spawn(name="only-one", concurrency="thread").result(10)
    with pytest.raises(BadRequest, match="taken"):
        spawn(aid=tree.aid, concurrency="thread").result(10)
    assert list(tree.managed_actors) == [first.aid]


# -- send() ---------------------------------------------------------------------------------


@pytest.fixture
def worker(tree):
    return spawn(name="worker", concurrency="thread").result(10)


@pytest.mark.parametrize(
    "target", [None, 3, "", b"worker", ["worker"], 1.5, {"aid": "x"}], ids=repr
)
def test_send_refuses_a_bad_target_naming_it(worker, target):
    with pytest.raises(TypeError, match="target"):
        send(target, "ping")


@pytest.mark.parametrize("action", ["", None, 3, b"ping", ["ping"]], ids=repr)
def test_send_refuses_a_bad_action_naming_it(worker, action):
    with pytest.raises(TypeError, match="action"):
        send(worker, action)


@pytest.mark.parametrize(
    ("target", "action", "what"),
    [
        ("worker", "\ud800", "action"),
        ("\udcff", "ping", "target"),
    ],
    ids=["action", "target"],
)
def test_send_refuses_names_utf8_cannot_carry_naming_them(worker, target, action, what):
    """A lone surrogate in a target or action raises a raw UnicodeEncodeError
    today (from protobuf), which names neither."""
    with pytest.raises((TypeError, BadRequest), match=what):
        send(target, action)


def test_send_arguments_utf8_cannot_carry_are_a_bad_request(worker):
    """Today: a raw UnicodeEncodeError from protobuf, not the codec's BadRequest."""
    with pytest.raises(BadRequest):
        send(worker, "echo", "\ud800")
    with pytest.raises(BadRequest):
        send(worker, "echo", message={"\udc80": 1})


def test_send_unencodable_arguments_with_pickle_off_names_their_type(nopickle_arb):
    proxy = spawn(concurrency="thread").result(10)
    with pytest.raises(PermissionDenied, match=r"builtins\.set"):
        send(proxy, "echo", {1, 2})
    with pytest.raises(PermissionDenied, match=r"builtins\.complex"):
        send(proxy, "echo", message=1j)
    with pytest.raises(PermissionDenied, match="pickle is off"):
        send(proxy, "echo", [1, {"k": frozenset()}])
    assert send(proxy, "echo", [1, {"k": ()}]).result(10) == [1, {"k": ()}]


def test_send_unpicklable_arguments_are_a_bad_request_naming_their_type(worker):
    with pytest.raises(BadRequest, match=r"_thread\.lock"):
        send(worker, "echo", threading.Lock())
    with pytest.raises(BadRequest, match="function"):
        send(worker, "echo", message=lambda: 1)


def test_send_to_unknown_actors_and_commands(worker):
    with pytest.raises(ActorNotFound, match="nobody"):
        send("nobody", "ping").result(10)
    with pytest.raises(CommandNotFound, match="no_such_command"):
        send(worker, "no_such_command").result(10)
    with pytest.raises(TypeError):
        send(worker, "echo", 1, 2, 3).result(10)


def test_send_to_an_address_where_nothing_listens_is_not_available_at_once(tree):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    ghost = ActorProxy("ghost", None, ("127.0.0.1", port))
    started = time.monotonic()
    with pytest.raises(ActorNotAvailable, match=str(port)):
        send(ghost, "ping").result(10)
    assert time.monotonic() - started < 5
    # The tree is unharmed, and the next try fails as fast.
    assert send("arbiter", "ping").result(10) == "pong"
    started = time.monotonic()
    with pytest.raises(ActorNotAvailable):
        send(ghost, "echo", 1).result(10)
    assert time.monotonic() - started < 5


def test_send_to_a_proxy_of_this_node_with_an_unknown_aid(tree):
    stranger = ActorProxy("not-here", None, tree.address)
    with pytest.raises(ActorNotAvailable, match="not-here"):
        send(stranger, "ping").result(10)


# -- command() ------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [3, "name", b"x", [print]], ids=repr)
def test_command_needs_a_function(fn):
    with pytest.raises(TypeError, match="function"):
        command(fn)
    with pytest.raises(TypeError, match="function"):
        command()(fn)


@pytest.mark.parametrize("ack", ["no", 1, None, 0.0], ids=repr)
def test_command_ack_must_be_a_bool(ack):
    with pytest.raises(TypeError, match="ack"):
        command(ack=ack)


def _named(request: Any) -> int:
    return 1


def test_command_ack_must_be_a_bool_when_given_with_the_function():
    """``command(fn, ack='no')`` skips the check today and registers a command
    whose ack is the truthy string 'no'."""
    with pytest.raises(TypeError, match="ack"):
        command(_named, ack="no")


class _CallableObject:
    def __call__(self, request: Any) -> int:
        return 2


@pytest.mark.parametrize(
    "fn", [functools.partial(_named), _CallableObject()], ids=["partial", "callable-object"]
)
def test_command_of_a_callable_without_a_name_is_a_clear_type_error(fn):
    """Today: a raw AttributeError ('... has no attribute __name__')."""
    with pytest.raises(TypeError, match="name"):
        command()(fn)


# -- get_actor ------------------------------------------------------------------------------


def test_get_actor_outside_an_actor_is_none():
    assert get_actor() is None


@pytest.mark.parametrize("aid", [None, 3, ["a"], b"arbiter"], ids=repr)
def test_arbiter_get_actor_refuses_a_non_str_naming_it(tree, aid):
    """Actor.get_actor raises TypeError for a non-str; the arbiter's override
    answers None (or a raw 'unhashable type' TypeError for a list) instead."""
    with pytest.raises(TypeError, match="get_actor"):
        tree.get_actor(aid)


def test_arbiter_get_actor_finds_by_aid_and_name(tree, worker):
    assert tree.get_actor("worker").aid == worker.aid
    assert tree.get_actor(worker.aid).aid == worker.aid
    assert tree.get_actor("arbiter").aid == tree.aid
    assert tree.get_actor("nobody") is None


def ask_get_actor(actor: Any, aid: Any) -> str:
    """Run inside an actor: what get_actor(aid) raises."""
    try:
        actor.get_actor(aid)
    except TypeError as exc:
        return str(exc)
    return "accepted"


def test_actor_get_actor_refuses_a_non_str(worker):
    assert "get_actor" in send(worker, "run", ask_get_actor, 3).result(10)


# -- add_monitor ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "exc_type", "match"),
    [
        ({"num_workers": -1}, ValueError, "num_workers"),
        ({"num_workers": "2"}, ValueError, "num_workers"),
        ({"num_workers": True}, ValueError, "num_workers"),
        ({"num_workers": 1.5}, ValueError, "num_workers"),
        ({"max_restarts": -1}, ValueError, "max_restarts"),
        ({"max_restarts": "x"}, ValueError, "max_restarts"),
        ({"max_restarts": False}, ValueError, "max_restarts"),
        ({"restart_window": 0}, ValueError, "restart_window"),
        ({"restart_window": -1.5}, ValueError, "restart_window"),
        ({"restart_window": "1"}, ValueError, "restart_window"),
        ({"restart_window": True}, ValueError, "restart_window"),
        ({"routing": "random"}, ValueError, "routing"),
        ({"routing": None}, ValueError, "routing"),
        ({"routing": ["broadcast"]}, ValueError, "routing"),
        ({"retries": -1}, ValueError, "retries"),
        ({"retries": "2"}, ValueError, "retries"),
        ({"retries": True}, ValueError, "retries"),
        ({"retries": 1.5}, ValueError, "retries"),
        ({"aid": "x"}, TypeError, "aid"),
        ({"name": "x"}, TypeError, "name"),
        ({"concurrency": "fork"}, ValueError, "concurrency"),
        ({"start": 5}, TypeError, "start hook"),
        ({"timeout": -1}, ValueError, "timeout"),
    ],
    ids=lambda v: repr(v)[:40] if isinstance(v, dict) else None,
)
def test_add_monitor_refuses_bad_parameters_naming_them(tree, params, exc_type, match):
    with pytest.raises(exc_type, match=match):
        tree.add_monitor("pool", **params)
    assert tree.monitors == {}


@pytest.mark.parametrize("name", [3, "", None], ids=repr)
def test_add_monitor_needs_a_name(tree, name):
    with pytest.raises(TypeError, match="name"):
        tree.add_monitor(name)


def test_add_monitor_refuses_a_name_in_use(tree):
    tree.add_monitor("pool", num_workers=0)
    with pytest.raises(BadRequest, match="taken"):
        tree.add_monitor("pool", num_workers=0)
    with pytest.raises(BadRequest, match="taken"):
        tree.add_monitor("arbiter", num_workers=0)
    assert list(tree.monitors) == ["pool"]


# -- ActorProxyMonitor.join -----------------------------------------------------------------


def test_join_waits_then_times_out_as_documented(tree, worker):
    monitor = tree.managed_actors[worker.aid]
    with pytest.raises(ActorTimeout, match="still alive"):
        monitor.join(0.05)
    send(worker, "stop").result(10)
    monitor.join(10)
    assert not monitor.is_alive()


@pytest.mark.parametrize(
    ("timeout", "exc_type"),
    [
        ("1", TypeError),
        (True, TypeError),
        ([1], TypeError),
        (-1, ValueError),
        (math.nan, ValueError),
    ],
    ids=repr,
)
def test_join_refuses_a_bad_timeout_naming_it(tree, worker, timeout, exc_type):
    """join('1') raises a raw "unsupported operand type(s) for +" today; join(True)
    says "still alive after Trues"; join(-1) "still alive after -1s"; join(nan)
    "Invalid value NaN". Each should say that the timeout is wrong."""
    monitor = tree.managed_actors[worker.aid]
    with pytest.raises(exc_type, match="timeout"):
        monitor.join(timeout)
