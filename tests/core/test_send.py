"""send: replies, ack=False, the caller, proxies in messages, typed and pickled values, load."""

from __future__ import annotations

import asyncio
import math
import threading
from dataclasses import dataclass

import pytest
from conftest import KINDS, SPAWN_T, T, get_extra, ipv6_loopback

from actorgrpc import (
    ActorError,
    ActorProxy,
    CommandError,
    PermissionDenied,
    arbiter,
    command,
    send,
    spawn,
)
from actorgrpc.testing import same, wait_for


@dataclass(frozen=True)
class Token:
    """Defined in this module: a process actor must import it to unpickle it."""

    name: str
    n: int


# -- commands of this module ------------------------------------------------------


@command()
def snd_whoami(request):
    """The caller as the receiver sees it."""
    c = request.caller
    return None if c is None else {"aid": c.aid, "name": c.name, "address": c.address}


@command()
async def snd_ask_whoami(request, other):
    """Ask ``other`` who is calling it; answer what it said."""
    return await send(other, "snd_whoami")


@command()
async def snd_relay(request, target, action, *args):
    """Send ``action`` to ``target`` (a proxy received in this very message)."""
    assert isinstance(target, ActorProxy)
    return await send(target, action, *args)


@command()
async def snd_relay_all(request, targets):
    """Ping every proxy of a dict received in the message."""
    return {k: await send(v, "echo", k) for k, v in targets.items()}


@command()
def snd_record(request, sender, seq):
    """Append (sender, seq) to the actor's log; answer seq."""
    request.actor.extra.setdefault("log", []).append((sender, seq))
    return seq


@command()
def snd_log(request):
    """The log snd_record built."""
    return list(request.actor.extra.get("log", []))


@command(ack=False)
def snd_set(request, key, value):
    request.actor.extra[key] = value


@command()
async def snd_fan_out(request, target, label, n):
    """Send n snd_record requests to target at once; answer their replies."""
    futs = [send(target, "snd_record", label, i) for i in range(n)]
    return list(await asyncio.gather(*futs))


@command()
def snd_make_set(request):
    """Answer a value that needs pickle."""
    return {1, 2}


@command()
def snd_type_of(request, value):
    """The qualified type name of what arrived."""
    t = type(value)
    return f"{t.__module__}.{t.__qualname__}"


# -- replies --------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_send_returns_a_future_of_the_reply(arb, kind):
    p = spawn(concurrency=kind, name=f"snd-{kind}").result(SPAWN_T)
    fut = send(p, "ping")
    assert fut is not None and hasattr(fut, "result")
    assert fut.result(T) == "pong"
    assert send(p.aid, "ping").result(T) == "pong"
    assert send(f"snd-{kind}", "ping").result(T) == "pong"
    assert send("arbiter", "ping").result(T) == "pong"
    assert send(arb.aid, "ping").result(T) == "pong"


@pytest.mark.parametrize("kind", KINDS)
def test_send_without_ack_returns_none_and_takes_effect(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    assert send(p, "snd_set", "x", 1) is None
    wait_for(lambda: send(p, "run", get_extra, "x").result(T) == 1, what="snd_set")


@pytest.mark.parametrize("kind", KINDS)
def test_sender_order_is_kept_across_ack_and_no_ack(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    for round_ in range(10):
        for i in range(50):
            assert send(p, "snd_set", "last", (round_, i)) is None
        # Sent after the no-ack requests by the same sender: they ran first.
        assert send(p, "run", get_extra, "last").result(T) == (round_, 49)


# -- the caller and proxies in messages ------------------------------------------


@pytest.mark.parametrize("kind_a", KINDS)
@pytest.mark.parametrize("kind_b", KINDS)
def test_caller_is_the_senders_proxy(arb, kind_a, kind_b):
    a = spawn(concurrency=kind_a, name="snd-a").result(SPAWN_T)
    b = spawn(concurrency=kind_b, name="snd-b").result(SPAWN_T)
    # A asks B who called; B answers with A's own reference.
    seen = send(a, "snd_ask_whoami", b).result(T)
    assert seen == {"aid": a.aid, "name": "snd-a", "address": a.address}
    # By name as well (routed through the arbiter for a process actor).
    assert send(a, "snd_ask_whoami", "snd-b").result(T)["aid"] == a.aid


def test_caller_from_plain_code_is_the_arbiter(arb):
    p = spawn().result(SPAWN_T)
    seen = send(p, "snd_whoami").result(T)
    assert seen == {"aid": arb.aid, "name": arb.name, "address": arb.address}


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_an_ipv6_tree_has_one_form_of_each_address(host):
    # The arbiter's address as it says it and as its actors see it on the wire
    # are the same (with brackets or without, the host is written one way).
    with arbiter(host=host) as a:
        assert a.address[0] == "::1"
        p = spawn().result(SPAWN_T)
        assert p.address[0] == "::1"
        assert send(p, "snd_whoami").result(T) == {
            "aid": a.aid,
            "name": a.name,
            "address": a.address,
        }
        assert send(p, "snd_ask_whoami", "arbiter").result(T)["aid"] == p.aid


@pytest.mark.parametrize("kind_a", KINDS)
@pytest.mark.parametrize("kind_b", KINDS)
def test_proxy_received_in_a_message_is_usable_at_once(arb, kind_a, kind_b):
    a = spawn(concurrency=kind_a).result(SPAWN_T)
    b = spawn(concurrency=kind_b).result(SPAWN_T)
    assert send(a, "snd_relay", b, "echo", "through a").result(T) == "through a"
    assert send(a, "snd_relay", b, "ping").result(T) == "pong"
    # B sees A as its caller, not the arbiter.
    assert send(a, "snd_relay", b, "snd_whoami").result(T)["aid"] == a.aid


def test_proxies_nested_in_values_are_usable(arb):
    a = spawn().result(SPAWN_T)
    b = spawn().result(SPAWN_T)
    c = spawn(concurrency="thread").result(SPAWN_T)
    assert send(a, "snd_relay_all", {"b": b, "c": c, "self": a}).result(T) == {
        "b": "b",
        "c": "c",
        "self": "self",
    }


# -- values -------------------------------------------------------------------------

PROXY = ActorProxy("feedbeef", "nobody", ("127.0.0.1", 1))

VALUES = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**63,
    -(2**64) - 1,
    3**100,
    1.5,
    -0.0,
    1e-310,
    math.inf,
    -math.inf,
    "",
    "plain",
    "unicode: héllo 世界 🎉 \u200b \x00",
    b"",
    bytes(range(256)),
    [],
    [1, "a", None],
    (),
    (1, (2, [3, (4,)])),
    {},
    {"a": 1, "nested": {"list": [1, (2, 3)], "bytes": b"\x01"}, "": None},
    PROXY,
    [PROXY, {"p": PROXY}],
]


@pytest.mark.parametrize("kind", KINDS)
def test_typed_values_round_trip_through_echo(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    futs = [send(p, "echo", v) for v in VALUES]
    for value, fut in zip(VALUES, futs, strict=True):
        back = fut.result(T)
        assert same(back, value), (value, back)
    # As a keyword argument, and all together in one message.
    assert same(send(p, "echo", message=VALUES).result(T), VALUES)
    assert same(send(p, "echo", tuple(VALUES)).result(T), tuple(VALUES))


@pytest.mark.parametrize("kind", KINDS)
def test_nan_round_trips(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    back = send(p, "echo", [math.nan, {"n": math.nan}]).result(T)
    assert math.isnan(back[0]) and math.isnan(back[1]["n"])


@pytest.mark.parametrize("kind", KINDS)
def test_large_bytes_round_trip(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    blob = bytes(range(256)) * 4096  # 1 MiB
    assert send(p, "echo", blob).result(T) == blob


PICKLED = [Token("t", 1), {1, 2, 3}, frozenset({"x"}), {1: "one", 2: "two"}, complex(1, -1)]


@pytest.mark.parametrize("kind", KINDS)
def test_pickled_values_round_trip_when_pickle_is_on(arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    for value in PICKLED:
        back = send(p, "echo", value).result(T)
        assert back == value and type(back) is type(value)
    # The receiver got the real object, not bytes.
    assert send(p, "snd_type_of", Token("t", 2)).result(T) == f"{__name__}.Token"
    assert send(p, "snd_type_of", {1}).result(T) == "builtins.set"
    assert send(p, "snd_make_set").result(T) == {1, 2}


@pytest.mark.parametrize(
    ("value", "type_name"),
    [({1, 2}, "builtins.set"), ({1: "a"}, "builtins.dict"), (Token("t", 1), "Token")],
)
def test_untyped_values_are_refused_with_pickle_off(nopickle_arb, value, type_name):
    p = spawn(concurrency="thread").result(SPAWN_T)
    with pytest.raises(ActorError) as info:
        send(p, "echo", value)
    assert type_name in str(info.value)
    assert isinstance(info.value, PermissionDenied)
    with pytest.raises(PermissionDenied, match=type_name):
        send(p, "echo", message=[value])
    # Typed values still go.
    assert same(send(p, "echo", VALUES).result(T), VALUES)


@pytest.mark.parametrize("kind", KINDS)
def test_untyped_reply_with_pickle_off_is_an_error_naming_the_type(nopickle_arb, kind):
    p = spawn(concurrency=kind).result(SPAWN_T)
    with pytest.raises(PermissionDenied, match=r"builtins\.set"):
        send(p, "snd_make_set").result(T)
    assert send(p, "ping").result(T) == "pong"


# -- many senders at once -------------------------------------------------------------


def test_a_thousand_concurrent_sends_keep_each_senders_order(arb):
    sink = spawn(name="snd-sink").result(SPAWN_T)
    fan_p = spawn().result(SPAWN_T)
    fan_t = spawn(concurrency="thread").result(SPAWN_T)
    n_threads, per_thread, per_actor = 4, 150, 200

    # Two actors fan out at once, while four plain threads send.
    actor_futs = [
        send(fan_p, "snd_fan_out", sink, "proc", per_actor),
        send(fan_t, "snd_fan_out", "snd-sink", "thread-actor", per_actor),
    ]
    answers: dict[str, list] = {}
    barrier = threading.Barrier(n_threads)

    def sender(label):
        barrier.wait(T)
        futs = [send(sink, "snd_record", label, i) for i in range(per_thread)]
        answers[label] = [f.result(T) for f in futs]

    threads = [threading.Thread(target=sender, args=(f"t{i}",)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive()

    for label in (f"t{i}" for i in range(n_threads)):
        assert answers[label] == list(range(per_thread))
    for fut in actor_futs:
        assert fut.result(60) == list(range(per_actor))

    log = send(sink, "snd_log").result(T)
    assert len(log) == n_threads * per_thread + 2 * per_actor == 1000
    by_sender: dict[str, list[int]] = {}
    for who, seq in log:
        by_sender.setdefault(who, []).append(seq)
    assert set(by_sender) == {"t0", "t1", "t2", "t3", "proc", "thread-actor"}
    for who, seqs in by_sender.items():
        expected = list(range(per_actor if who in ("proc", "thread-actor") else per_thread))
        assert seqs == expected, f"{who}'s requests ran out of order"


def test_concurrent_sends_to_a_thread_actor(arb):
    sink = spawn(concurrency="thread").result(SPAWN_T)
    futs = {label: [] for label in ("a", "b")}

    def sender(label):
        futs[label] = [send(sink, "snd_record", label, i) for i in range(200)]

    threads = [threading.Thread(target=sender, args=(x,)) for x in futs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for label in futs:
        assert [f.result(T) for f in futs[label]] == list(range(200))
    log = send(sink, "snd_log").result(T)
    for label in futs:
        assert [s for who, s in log if who == label] == list(range(200))


# -- bad arguments -----------------------------------------------------------------------


@pytest.mark.parametrize("target", [None, 42, "", b"aid", ["x"]])
def test_bad_target_is_a_type_error(arb, target):
    with pytest.raises(TypeError, match="target"):
        send(target, "ping")


@pytest.mark.parametrize("action", [None, "", 3, b"ping"])
def test_bad_action_is_a_type_error(arb, action):
    with pytest.raises(TypeError, match="action"):
        send("arbiter", action)


def test_command_error_from_a_relayed_send_reaches_the_first_sender(arb):
    a = spawn().result(SPAWN_T)
    b = spawn(concurrency="thread").result(SPAWN_T)
    with pytest.raises(CommandError) as info:
        send(a, "snd_relay", b, "run", 42).result(T)
    assert isinstance(info.value, TypeError)
