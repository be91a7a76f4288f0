"""actorgrpc.testing: the helpers the suite (and users' suites) stand on."""

from __future__ import annotations

import copy
import math
import os
import time
from typing import Any

import grpc
import psutil
import pytest
from actorgrpc.v1 import mailbox_pb2, mailbox_pb2_grpc
from conftest import SPAWN_T, T

from actorgrpc import ACTOR_STATES, ActorProxy, ActorProxyMonitor, Arbiter, arbiter, send, spawn
from actorgrpc.testing import (
    actor_processes,
    auth_metadata,
    authenticated_channel,
    running_arbiter,
    same,
    wait_for,
)

SECRET_ENV = "ACTORGRPC_SECRET"
PING = mailbox_pb2.Envelope(target="arbiter", action="ping")


# -- wait_for ------------------------------------------------------------------------


def test_wait_for_returns_the_first_truthy_value() -> None:
    calls: list[int] = []

    def third_time_lucky() -> list[int]:
        calls.append(len(calls) + 1)
        return [calls[-1]] if len(calls) >= 3 else []

    assert wait_for(third_time_lucky, interval=0) == [3]
    assert calls == [1, 2, 3]  # called until truthy, not once more


def test_wait_for_fails_after_its_deadline_naming_what() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"timed out after 0\.1s waiting for the moon"):
        wait_for(lambda: 0, timeout=0.1, what="the moon")
    assert 0.1 <= time.monotonic() - started < 5


def test_wait_for_lets_the_conditions_errors_through() -> None:
    def broken() -> bool:
        raise KeyError("not a timeout")

    with pytest.raises(KeyError, match="not a timeout"):
        wait_for(broken, timeout=5)


# -- the secret --------------------------------------------------------------------------


def test_auth_metadata_is_the_bearer_header_of_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    assert auth_metadata("s" * 20) == (("authorization", "Bearer " + "s" * 20),)
    monkeypatch.setenv(SECRET_ENV, "from-the-env-" + "e" * 10)
    assert auth_metadata() == (("authorization", "Bearer from-the-env-" + "e" * 10),)
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(ValueError, match=SECRET_ENV):
        auth_metadata()


def test_authenticated_channel_carries_the_secret(arb: Arbiter) -> None:
    host, port = arb.address
    for address in (arb.address, f"{host}:{port}"):
        with authenticated_channel(address) as ch:
            reply = mailbox_pb2_grpc.MailboxStub(ch).Send(PING, timeout=T)
            assert reply.result.string_value == "pong"
    with authenticated_channel(arb.address, "wrong-" + "w" * 20) as ch:
        with pytest.raises(grpc.RpcError) as err:
            mailbox_pb2_grpc.MailboxStub(ch).Send(PING, timeout=T)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_authenticated_channel_over_tls(mutual_tls: dict[str, Any]) -> None:
    tls = mutual_tls
    with running_arbiter(tls=tls) as arb:
        # The arbiter's own TLS settings identify the client, as mutual TLS wants.
        with authenticated_channel(arb.address, tls=tls) as ch:
            reply = mailbox_pb2_grpc.MailboxStub(ch).Send(PING, timeout=T)
            assert reply.result.string_value == "pong"
        # Plain grpc credentials do too.
        creds = grpc.ssl_channel_credentials(
            root_certificates=tls["ca"].read_bytes(),
            private_key=tls["key"].read_bytes(),
            certificate_chain=tls["cert"].read_bytes(),
        )
        with authenticated_channel(arb.address, tls=creds) as ch:
            reply = mailbox_pb2_grpc.MailboxStub(ch).Send(PING, timeout=T)
            assert reply.result.string_value == "pong"


# -- running_arbiter and actor_processes ----------------------------------------------------


def test_running_arbiter_runs_one_and_leaves_no_process() -> None:
    with running_arbiter(secret="running-arbiter-" + "r" * 10, colour="green") as arb:
        assert arb.state == ACTOR_STATES.RUN
        assert arb.address[0] == "127.0.0.1" and arb.address[1] > 0
        assert arb.secret == "running-arbiter-" + "r" * 10
        assert arb.params == {"colour": "green"}
        assert arbiter() is arb
        proxy = spawn(name="testing-worker").result(SPAWN_T)
        assert arb.managed_actors is not None  # an arbiter always has it (Actor's is Optional)
        worker = psutil.Process(arb.managed_actors[proxy.aid].pid)
        assert worker.pid != os.getpid()
        assert worker.pid in {p.pid for p in actor_processes()}
        assert send(proxy, "ping").result(T) == "pong"
    assert arb.state == ACTOR_STATES.CLOSE
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE
    assert worker.pid not in {p.pid for p in actor_processes()}
    # The next one is a new arbiter.
    with running_arbiter() as again:
        assert again is not arb


def test_running_arbiter_refuses_a_second_one_while_one_runs(arb: Arbiter) -> None:
    with pytest.raises(RuntimeError, match="already"), running_arbiter():
        pass
    assert send("arbiter", "ping").result(T) == "pong"


# -- same ----------------------------------------------------------------------------------


PROXY = ActorProxy("a1", "worker", ("127.0.0.1", 1))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (True, 1),
        (1, 1.0),
        ((1,), [1]),
        (-0.0, 0.0),
        ({"k": (1, 2)}, {"k": [1, 2]}),
        ({"a": 1}, {"a": 1, "b": 2}),
        ([1, 2], [1, 2, 3]),
        (PROXY, ActorProxy("a1", None, ("127.0.0.1", 1))),
        (PROXY, ActorProxy("a1", "worker", ("127.0.0.1", 2))),
        (PROXY, ActorProxyMonitor("a1", "worker", ("127.0.0.1", 1), None, "thread")),
        ("1", b"1"),
    ],
    ids=repr,
)
def test_same_tells_apart_what_equality_confuses(a: object, b: object) -> None:
    assert not same(a, b)
    assert not same(b, a)


@pytest.mark.parametrize(
    "value",
    [
        None,
        0,
        -0.0,
        math.inf,
        math.nan,
        [math.nan, {"n": math.nan}],
        "héllo",
        b"\x00",
        (1, [2, (3,)]),
        {"a": {"b": [None, PROXY]}},
    ],
    ids=repr,
)
def test_same_holds_for_a_value_and_its_copy(value: object) -> None:
    assert same(value, copy.deepcopy(value))
