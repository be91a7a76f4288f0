"""Fuzzing every method of every server of a live tree with hostile bytes.

A tree with a secret, a process actor and a thread actor receives thousands of
random byte strings, truncated and bit-flipped messages, and well-formed but
hostile envelopes and supervisor requests, on every method (Mailbox Send and
Stream, Supervisor Handshake, Notify, Info, Lookup, health Check), on the
arbiter's server and on the process actor's own server, with the secret,
without it and with wrong ones. Every call must end with a status (an error
for garbage) within its deadline; the servers must keep answering; no actor may
change; nothing may be logged as an unhandled exception, in the test process or
in the actor's.

Everything random comes from ``case(seed, i)``: set ``ACTORGRPC_FUZZ_SEED`` (and
``ACTORGRPC_FUZZ_CALLS``) to replay a run, and print ``case(seed, i)`` to see the
input a problem report points at.
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast

import grpc
import psutil
import pytest
from actorgrpc.v1 import mailbox_pb2, supervisor_pb2, value_pb2
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2

from actorgrpc import ACTOR_STATES, arbiter, send, spawn
from actorgrpc.core.proxy import format_address
from actorgrpc.testing import auth_metadata, running_arbiter, wait_for

SECRET = "fuzz-secret-" + "f" * 24
SEED = int(os.environ.get("ACTORGRPC_FUZZ_SEED", "20240611"))
CALLS = int(os.environ.get("ACTORGRPC_FUZZ_CALLS", "3000"))
#: Wall-clock budget of the fuzz loop; the test fails if it does not get far enough.
BUDGET = float(os.environ.get("ACTORGRPC_FUZZ_BUDGET", "40"))
UNARY_TIMEOUT = 5.0
STREAM_TIMEOUT = 8.0

PROC_AID, PROC_NAME = "fuzzproc", "fuzz-process"
THREAD_AID, THREAD_NAME = "fuzzthread", "fuzz-thread"
REAL_TARGETS = [PROC_AID, PROC_NAME, THREAD_AID, THREAD_NAME, "arbiter"]

SEND = "/actorgrpc.v1.Mailbox/Send"
STREAM = "/actorgrpc.v1.Mailbox/Stream"
HANDSHAKE = "/actorgrpc.v1.Supervisor/Handshake"
NOTIFY = "/actorgrpc.v1.Supervisor/Notify"
INFO = "/actorgrpc.v1.Supervisor/Info"
LOOKUP = "/actorgrpc.v1.Supervisor/Lookup"
HEALTH = "/grpc.health.v1.Health/Check"
# Multicallables made without serializers send and return raw bytes; grpc's stubs
# cannot infer that (their type parameters come from the serializers).
RawUnary: TypeAlias = "grpc.UnaryUnaryMultiCallable[bytes, bytes]"
RawStream: TypeAlias = "grpc.StreamStreamMultiCallable[bytes, bytes]"
SUPERVISOR_METHODS = (HANDSHAKE, NOTIFY, INFO, LOOKUP)
METHODS = {
    "arbiter": (SEND, STREAM, HANDSHAKE, NOTIFY, INFO, LOOKUP, HEALTH),
    # The process actor serves no Supervisor: those calls must answer UNIMPLEMENTED.
    "process": (SEND, STREAM, HEALTH, HANDSHAKE, INFO),
}
MESSAGE_TYPES: dict[str, type[Message]] = {
    SEND: mailbox_pb2.Envelope,
    STREAM: mailbox_pb2.Envelope,
    HANDSHAKE: supervisor_pb2.HandshakeRequest,
    NOTIFY: supervisor_pb2.NotifyRequest,
    INFO: supervisor_pb2.InfoRequest,
    LOOKUP: supervisor_pb2.LookupRequest,
    HEALTH: health_pb2.HealthCheckRequest,
}
ERROR_KEY = "actorgrpc-error-bin"
#: Commands a holder of the secret may legitimately use to change the tree: the
#: fuzz sends them only without the secret (where they must be refused).
DANGEROUS = ["stop", "kill_actor", "spawn", "run"]
SAFE_ACTIONS = ["ping", "echo", "info", "notify", "run", "kill_actor"]
#: What a log line of an unhandled exception looks like.
UNHANDLED_MARKS = (
    "Traceback",
    "Exception not handled",
    "Unhandled",
    "never retrieved",
    "Unexpected",
)

# -- the actors' hooks and probes (module level: the process actor unpickles them) ----------

_LOGGED: list[str] = []


class _Probe(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        _LOGGED.append(f"{record.levelname} {record.name}: {text}")


def mark_and_watch(actor: Any) -> None:
    """Start hook: a marker in ``extra``, and (in a child process) a log probe."""
    actor.extra["marker"] = actor.aid
    if actor.is_process():
        probe = _Probe(logging.WARNING)
        logging.getLogger().addHandler(probe)


def logged_problems(actor: Any) -> list[str]:
    """Run in the process actor: what it logged that looks like an unhandled exception."""
    gc.collect()  # "Task exception was never retrieved" shows at collection
    return [
        t
        for t in _LOGGED
        if t.startswith(("ERROR", "CRITICAL")) or any(m in t for m in UNHANDLED_MARKS)
    ]


# -- deterministic hostile inputs ----------------------------------------------------------


@dataclass
class Case:
    """One fuzz call."""

    index: int
    server: str  # "arbiter" or "process"
    method: str
    auth: str  # "good", "none", "wrong", "malformed"
    family: str  # "random", "mutated", "hostile", "deep"
    messages: list[bytes] = field(default_factory=list)  # one for unary calls

    def metadata(self) -> tuple[tuple[str, str], ...]:
        if self.auth == "good":
            return auth_metadata(SECRET)
        if self.auth == "none":
            return ()
        if self.auth == "wrong":
            return auth_metadata("not-the-secret-" + "w" * 20)
        variants = [
            ("authorization", f"Bearer {SECRET} "),
            ("authorization", f"bearer {SECRET}"),
            ("authorization", SECRET),
            ("authorization", f"Bearer {SECRET[:-1]}"),
            ("authorization", f"Bearer {SECRET}x"),
            ("authorization", "Bearer "),
            ("authorization", ""),
            ("authorization", f"Basic {SECRET}"),
            ("x-authorization", f"Bearer {SECRET}"),
        ]
        return (variants[self.index % len(variants)],)

    def describe(self) -> str:
        sizes = [len(m) for m in self.messages]
        first = self.messages[0][:48].hex() if self.messages else ""
        return (
            f"case({SEED}, {self.index}): {self.server} {self.method} auth={self.auth} "
            f"{self.family} sizes={sizes} first={first}"
        )


def _text(rng: random.Random, size: int = 12) -> str:
    alphabet = "abcxyz019 _-:./[]\x00\n\t\u00e9\u4e16\U0001f389\u200b\ufeff"
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(size + 1)))


def _address(rng: random.Random) -> str:
    return rng.choice(
        [
            "",
            ":",
            "host:",
            ":80",
            "127.0.0.1",
            "127.0.0.1:1",
            "127.0.0.1:99999999",
            "[::1]",
            "[::1]:5",
            "h:-1",
            "h:\u0663",
            "h:\u00b2",
            "h:" + "9" * 5000,
            "[[::1]]:1",
            "a:b:c:1",
            _text(rng, 20),
            f"{_text(rng, 6)}:{rng.randrange(70000)}",
        ]
    )


def _big_int_text(rng: random.Random) -> str:
    return rng.choice(
        [
            "",
            "-",
            "+",
            "1e5",
            "0x10",
            " 7 ",
            "1_000",
            "\u0663",
            "9" * 5000,
            "-" + "9" * 4400,
            "nan",
            "1.5",
            "\x00",
            str(rng.randrange(-(2**200), 2**200)),
            _text(rng, 8),
        ]
    )


def _pickle_garbage(rng: random.Random) -> bytes:
    """Random bytes, or a truncated or bit-flipped pickle of harmless data."""
    if rng.random() < 0.3:
        return rng.randbytes(rng.randrange(64))
    data = bytearray(
        pickle.dumps(
            rng.choice([[1, "a", None], {"k": (1, 2)}, {1, 2}, 3.5, b"x" * 40, 10**30]),
            protocol=rng.randrange(6),
        )
    )
    if rng.random() < 0.5:
        return bytes(data[: rng.randrange(len(data))])
    for _ in range(rng.randrange(1, 4)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def _value(rng: random.Random, depth: int = 0) -> value_pb2.Value:
    v = value_pb2.Value()
    roll = rng.randrange(14 if depth < 4 else 11)
    if roll == 0:
        pass  # nothing set: reads as None
    elif roll == 1:
        v.int_value = rng.choice([0, -1, 2**63 - 1, -(2**63), rng.randrange(-(2**63), 2**63)])
    elif roll == 2:
        v.double_value = rng.choice([0.0, -0.0, 1e308, float("inf"), float("-inf"), float("nan")])
    elif roll == 3:
        v.string_value = _text(rng, 30)
    elif roll == 4:
        v.bytes_value = rng.randbytes(rng.randrange(50))
    elif roll == 5:
        v.big_int_value = _big_int_text(rng)
    elif roll == 6:
        v.pickled_value.data = _pickle_garbage(rng)
        v.pickled_value.type_name = _text(rng, 10)
    elif roll == 7:
        v.actor_value.aid = rng.choice([*REAL_TARGETS, _text(rng)])
        v.actor_value.name = _text(rng)
        v.actor_value.address = _address(rng)
    elif roll == 8:
        v.bool_value = rng.random() < 0.5
    elif roll == 9:
        v.null_value = value_pb2.NULL_VALUE_UNSPECIFIED  # 0
    elif roll == 10:
        v.list_value.SetInParent()  # an empty list, or a tuple flag alone
        v.list_value.tuple = rng.random() < 0.5
    elif roll in (11, 12):
        v.list_value.SetInParent()
        v.list_value.tuple = rng.random() < 0.5
        for _ in range(rng.randrange(4)):
            v.list_value.items.add().CopyFrom(_value(rng, depth + 1))
    else:
        v.map_value.SetInParent()
        for _ in range(rng.randrange(4)):
            v.map_value.fields[_text(rng, 6)].CopyFrom(_value(rng, depth + 1))
    return v


def _deep_value(lists: int, dicts: int) -> value_pb2.Value:
    """Built by hand: deeper than actorgrpc's own encoder would make."""
    value = value_pb2.Value(int_value=1)
    for _ in range(lists):
        outer = value_pb2.Value()
        outer.list_value.items.append(value)
        value = outer
    for _ in range(dicts):
        outer = value_pb2.Value()
        outer.map_value.fields["k"].CopyFrom(value)
        value = outer
    return value


def _ref(rng: random.Random) -> value_pb2.ActorRef:
    return value_pb2.ActorRef(
        aid=rng.choice([*REAL_TARGETS, _text(rng)]), name=_text(rng), address=_address(rng)
    )


def _envelope(rng: random.Random, dangerous: bool, depth: int = 0) -> mailbox_pb2.Envelope:
    env = mailbox_pb2.Envelope()
    env.id = rng.choice([0, 1, 7, 2**64 - 1, rng.randrange(2**64)])
    # Any int on purpose, out of the enum's range too: the stubs take only an EnvelopeKind.
    env.kind = rng.choice([0, 0, 1, 1, 1, 2, 3, 4, 99, 2**31 - 1, -1])  # type: ignore[assignment]
    if rng.random() < 0.3:
        env.sender.CopyFrom(_ref(rng))
    env.target = rng.choice(
        [*REAL_TARGETS, *REAL_TARGETS, "", _text(rng), "x" * 10_000, "ARBITER", PROC_AID + " "]
    )
    actions = DANGEROUS if dangerous else SAFE_ACTIONS
    env.action = rng.choice(
        [*actions, *actions, "", _text(rng), "x" * 5000, "_receive", "__init__", "PING", "ping\x00"]
    )
    for _ in range(rng.randrange(4)):
        env.args.add().CopyFrom(_value(rng))
    if env.action == "kill_actor" and not dangerous:
        del env.args[:]  # never name a real actor
        env.args.add().string_value = "ghost-" + _text(rng, 6)
    if env.action == "run" and not dangerous:
        for arg in env.args[:1]:
            if arg.WhichOneof("kind") == "pickled_value":
                arg.string_value = "not callable"
    for _ in range(rng.randrange(3)):
        key = rng.choice(["message", "aid", "info", "fn", _text(rng, 5)])
        env.kwargs[key].CopyFrom(_value(rng))
    env.no_reply = rng.random() < 0.15
    if rng.random() < 0.1:
        env.result.CopyFrom(_value(rng))
    if rng.random() < 0.1:
        # Any int on purpose, out of the enum's range too: the stubs take only an ErrorCode.
        env.error.code = rng.randrange(12)  # type: ignore[assignment]
        env.error.message = _text(rng)
    batched = env.kind == mailbox_pb2.ENVELOPE_KIND_BATCH or rng.random() < 0.05
    if batched and depth < 2:
        for _ in range(rng.randrange(5)):
            env.batch.add().CopyFrom(_envelope(rng, dangerous, depth + 1))
    return env


def _supervisor_message(rng: random.Random, method: str) -> Any:
    if method == HANDSHAKE:
        return supervisor_pb2.HandshakeRequest(
            aid=rng.choice([*REAL_TARGETS, "", _text(rng), "y" * 200]),
            name=rng.choice([PROC_NAME, THREAD_NAME, "arbiter", "", _text(rng)]),
            address=_address(rng),
            pid=rng.choice([0, -1, 2**63 - 1, rng.randrange(2**31)]),
            # Never exactly "external": a well-formed external handshake registers an actor.
            kind=rng.choice(
                [
                    "process",
                    "thread",
                    "monitor",
                    "arbiter",
                    "",
                    "External",
                    "external ",
                    "externa",
                    _text(rng),
                ]
            ),
            language=_text(rng),
            spawn_token=rng.choice(["", "0" * 32, rng.randbytes(16).hex(), _text(rng)]),
            commands=[_text(rng) for _ in range(rng.randrange(3))],
        )
    if method == NOTIFY:
        msg = supervisor_pb2.NotifyRequest(
            aid=rng.choice([*REAL_TARGETS, "", _text(rng)]),
            state=rng.choice([0, 3, 5, 6, -1, 2**31 - 1, rng.randrange(-(2**31), 2**31)]),
            error=rng.choice(["", _text(rng), "ValueError: boom"]),
            traceback=_text(rng),
            session_token=rng.choice(["", "0" * 32, rng.randbytes(16).hex()]),
        )
        if rng.random() < 0.5:
            msg.info.CopyFrom(_value(rng))
        return msg
    if method == INFO:
        return supervisor_pb2.InfoRequest()
    if method == LOOKUP:
        return supervisor_pb2.LookupRequest(
            target=rng.choice([*REAL_TARGETS, "", _text(rng), "z" * 10_000])
        )
    return health_pb2.HealthCheckRequest(
        service=rng.choice(["", "actorgrpc.v1.Mailbox", "actorgrpc.v1.Supervisor", _text(rng)])
    )


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randrange(1, 5)):
        op = rng.randrange(6)
        if op == 0 and buf:
            del buf[rng.randrange(len(buf)) :]  # truncate
        elif op == 1 and buf:
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif op == 2:
            buf.insert(rng.randrange(len(buf) + 1), rng.randrange(256))
        elif op == 3 and buf:
            del buf[rng.randrange(len(buf))]
        elif op == 4 and buf:
            start = rng.randrange(len(buf))
            buf[start:start] = buf[start : start + rng.randrange(1, 16)]  # duplicate a chunk
        else:
            buf[rng.randrange(len(buf) + 1) :] = rng.randbytes(rng.randrange(1, 12))
    return bytes(buf)


def _message(rng: random.Random, method: str, family: str, dangerous: bool) -> bytes:
    if family == "random":
        return rng.randbytes(rng.choice([0, 1, 2, 3, 5, 8, 16, 64, 256, 2048]))
    if method in (SEND, STREAM):
        if family == "deep":
            # At the edge of what a protobuf parser accepts (100 nested messages).
            env = mailbox_pb2.Envelope(
                id=rng.randrange(1, 1000), target=rng.choice(REAL_TARGETS), action="echo"
            )
            env.args.add().CopyFrom(_deep_value(rng.choice([46, 47, 48]), rng.choice([0, 1])))
            message = env
        else:
            message = _envelope(rng, dangerous)
    else:
        message = _supervisor_message(rng, method)
    data = message.SerializeToString()
    if family == "mutated":
        data = _mutate(rng, data)
    return data


def case(seed: int, index: int) -> Case:
    """The ``index``-th call of the fuzz run ``seed`` (the same on every machine)."""
    rng = random.Random(f"{seed}:{index}")
    server = "process" if rng.random() < 0.25 else "arbiter"
    method = rng.choice(METHODS[server])
    who = rng.random()
    how = "good" if who < 0.75 else "none" if who < 0.85 else "wrong" if who < 0.93 else "malformed"
    family = rng.choices(["random", "mutated", "hostile", "deep"], weights=[25, 30, 42, 3])[0]
    dangerous = how != "good"
    count = rng.randrange(1, 7) if method == STREAM else 1
    messages = [_message(rng, method, family, dangerous) for _ in range(count)]
    return Case(index, server, method, how, family, messages)


# -- the tree and the checks ----------------------------------------------------------------


@dataclass
class Tree:
    arb: Any
    process: Any
    thread: Any
    pid: int
    channels: dict[str, grpc.Channel]


@pytest.fixture
def tree():
    with running_arbiter(secret=SECRET) as arb:
        process = spawn(aid=PROC_AID, name=PROC_NAME, start=mark_and_watch).result(30)
        thread = spawn(
            aid=THREAD_AID, name=THREAD_NAME, concurrency="thread", start=mark_and_watch
        ).result(10)
        addresses = {"arbiter": arb.address, "process": process.address}
        channels = {k: grpc.insecure_channel(format_address(a)) for k, a in addresses.items()}
        try:
            yield Tree(arb, process, thread, arb.managed_actors[PROC_AID].pid, channels)
        finally:
            for ch in channels.values():
                ch.close()


def check_alive(t: Tree) -> list[str]:
    """Every server answers ping and health, directly and through the arbiter."""
    problems = []
    ping = mailbox_pb2.Envelope(action="ping")
    for server, target in (
        ("arbiter", "arbiter"),
        ("arbiter", PROC_AID),
        ("arbiter", THREAD_NAME),
        ("process", ""),
        ("process", PROC_AID),
    ):
        ping.target = target
        try:
            # No serializers: grpc sends and returns bytes as they are.
            raw = cast(RawUnary, t.channels[server].unary_unary(SEND))(
                ping.SerializeToString(), timeout=10, metadata=auth_metadata(SECRET)
            )
            result = mailbox_pb2.Envelope.FromString(raw).result.string_value
            if result != "pong":
                problems.append(f"ping {target!r} on the {server} server answered {result!r}")
        except grpc.RpcError as exc:
            problems.append(
                f"ping {target!r} on the {server} server: {exc.code().name} {exc.details()}"
            )
    for server, ch in t.channels.items():
        try:
            raw = cast(RawUnary, ch.unary_unary(HEALTH))(
                health_pb2.HealthCheckRequest().SerializeToString(),
                timeout=10,
                metadata=auth_metadata(SECRET),
            )
            status = health_pb2.HealthCheckResponse.FromString(raw).status
            if status != health_pb2.HealthCheckResponse.SERVING:
                problems.append(f"the {server} server's health is {status}")
        except grpc.RpcError as exc:
            problems.append(f"health of the {server} server: {exc.code().name} {exc.details()}")
    for actor in (t.process, t.thread):
        try:
            if send(actor, "ping").result(10) != "pong":
                problems.append(f"send({actor.aid}, 'ping') did not answer pong")
        except Exception as exc:
            problems.append(f"send({actor.aid}, 'ping'): {type(exc).__name__}: {exc}")
    return problems


def check_unchanged(t: Tree) -> list[str]:
    """The tree is exactly as the fixture made it."""
    problems = []
    arb = t.arb
    if sorted(arb.managed_actors) != sorted([PROC_AID, THREAD_AID]):
        problems.append(f"managed actors are now {sorted(arb.managed_actors)}")
    for aid in (PROC_AID, THREAD_AID):
        monitor = arb.managed_actors.get(aid)
        if monitor is not None and monitor.state != ACTOR_STATES.RUN:
            problems.append(f"{aid} is in state {monitor.state}")
    if dict(arb.registered) != {"arbiter": arb.aid, PROC_NAME: PROC_AID, THREAD_NAME: THREAD_AID}:
        problems.append(f"registered names are now {dict(arb.registered)}")
    if arb.terminated_actors:
        problems.append(f"death records appeared: {list(arb.terminated_actors)}")
    if (
        not psutil.pid_exists(t.pid)
        or arb.managed_actors.get(PROC_AID, None) is None
        or arb.managed_actors[PROC_AID].pid != t.pid
    ):
        problems.append("the process actor's process changed")
    for actor in (t.process, t.thread):
        try:
            info = send(actor, "info").result(10)
            if info["extra"] != {"marker": actor.aid} or info["actor"]["aid"] != actor.aid:
                problems.append(f"{actor.aid}: extra {info['extra']}, aid {info['actor']['aid']}")
        except Exception as exc:
            problems.append(f"info of {actor.aid}: {type(exc).__name__}: {exc}")
    return problems


def bad_records(records: list[logging.LogRecord]) -> list[str]:
    out = []
    for r in records:
        text = r.getMessage()
        if r.exc_info:
            text += "\n" + logging.Formatter().formatException(r.exc_info)
        if r.levelno >= logging.ERROR or r.exc_info or any(m in text for m in UNHANDLED_MARKS):
            out.append(f"{r.levelname} {r.name}: {text.splitlines()[0]}")
    return out


@dataclass
class Findings:
    """Problems grouped by what went wrong, each with its first reproducer."""

    groups: dict[str, list[str]] = field(default_factory=dict)

    def add(self, what: str, where: str) -> None:
        self.groups.setdefault(what, []).append(where)

    def report(self) -> str:
        lines = []
        for what, where in sorted(self.groups.items(), key=lambda kv: -len(kv[1])):
            lines.append(f"- {what}  [{len(where)}x] first: {where[0]}")
        return "\n".join(lines)


def _status_of(call: Any) -> tuple[grpc.StatusCode, str, Any]:
    try:
        return grpc.StatusCode.OK, "", call()
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or "", exc


def _parse_all(c: Case) -> list[Any] | None:
    """The messages as the server will read them, or None if one cannot be read."""
    kind = MESSAGE_TYPES[c.method]
    try:
        return [kind.FromString(m) for m in c.messages]
    except Exception:
        return None


def run_case(t: Tree, c: Case, findings: Findings) -> None:
    ch = t.channels[c.server]
    where = c.describe()
    md = c.metadata()
    parsed = _parse_all(c)
    if c.method == STREAM:
        stream_call: RawStream = ch.stream_stream(STREAM)
        code, details, out = _status_of(
            lambda: list(stream_call(iter(c.messages), timeout=STREAM_TIMEOUT, metadata=md))
        )
    else:
        unary_call: RawUnary = ch.unary_unary(c.method)
        code, details, out = _status_of(
            lambda: unary_call.with_call(c.messages[0], timeout=UNARY_TIMEOUT, metadata=md)
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        findings.add(f"{c.method}: no status within its deadline (a hang)", where)
        return
    if c.server == "process" and c.method in SUPERVISOR_METHODS:
        # No such method there, with or without the secret (gRPC answers before auth).
        if code != grpc.StatusCode.UNIMPLEMENTED:
            findings.add(f"{c.method} on an actor's server: {code.name}, not UNIMPLEMENTED", where)
        return
    if c.auth != "good":
        if code != grpc.StatusCode.UNAUTHENTICATED:
            findings.add(f"{c.method} with auth={c.auth}: {code.name}, not UNAUTHENTICATED", where)
        return
    if "Unexpected <class" in details or code in (grpc.StatusCode.INTERNAL,):
        exc_name = details.split("'")[1] if "'" in details else details[:40]
        findings.add(f"{c.method}: unhandled {exc_name} in the servicer ({code.name})", where)
        return
    if parsed is None:
        if code == grpc.StatusCode.OK:
            findings.add(
                f"{c.method}: an unreadable message was answered OK (silently dropped)", where
            )
        return
    if c.method == SEND and code not in (grpc.StatusCode.OK,):
        trailer = dict(out.trailing_metadata() or ()).get(ERROR_KEY) if out is not None else None
        if trailer is None:
            findings.add(f"Send: {code.name} without the {ERROR_KEY} trailer", where)
        else:
            error = mailbox_pb2.Error.FromString(trailer)
            from actorgrpc.remote.status import STATUS_BY_CODE

            if STATUS_BY_CODE.get(error.code) != code:
                findings.add(
                    f"Send: status {code.name} ({details[:60]}) but error code "
                    f"{mailbox_pb2.ErrorCode.Name(error.code)}",
                    where,
                )
            if error.code == mailbox_pb2.ERROR_CODE_ACTOR_NOT_AVAILABLE:
                findings.add(f"Send: a live actor was not available: {error.message[:80]}", where)
    if c.method == STREAM and code == grpc.StatusCode.OK:
        try:
            out = [mailbox_pb2.Envelope.FromString(raw) for raw in out]
        except Exception as exc:
            findings.add(f"Stream: a reply that cannot be read: {exc}", where)
            return
        wanted = [
            e.id
            for m in parsed
            for e in (m.batch if m.kind == mailbox_pb2.ENVELOPE_KIND_BATCH else [m])
            if not e.no_reply
        ]
        got = [
            e.id
            for m in out
            for e in (m.batch if m.kind == mailbox_pb2.ENVELOPE_KIND_BATCH else [m])
        ]
        lost = [
            e.error.message
            for m in out
            for e in (m.batch if m.kind == mailbox_pb2.ENVELOPE_KIND_BATCH else [m])
            if e.error.code == mailbox_pb2.ERROR_CODE_ACTOR_NOT_AVAILABLE
        ]
        if lost:
            findings.add(f"Stream: a live actor was not available: {lost[0][:80]}", where)
        if sorted(got) != sorted(wanted):
            findings.add(
                "Stream: replies do not match the requests (lost or extra replies)",
                f"{where} wanted={len(wanted)} got={len(got)}",
            )


def test_fuzz_every_method_of_every_server(tree, caplog):
    caplog.set_level(logging.WARNING)
    findings = Findings()
    started = time.monotonic()
    seen_logs = 0
    done = 0
    child_seen = 0
    for i in range(CALLS):
        if time.monotonic() - started > BUDGET:
            break
        c = case(SEED, i)
        run_case(tree, c, findings)
        done += 1
        records = caplog.records
        for line in bad_records(records[seen_logs:]):
            findings.add(f"logged: {line[:160]}", c.describe())
        seen_logs = len(records)
        if i % 250 == 249:
            for problem in check_alive(tree):
                findings.add(f"not alive: {problem}", f"after {c.describe()}")
            lines = send(tree.process, "run", logged_problems).result(15)
            for line in lines[child_seen:]:
                findings.add(
                    f"logged in the process actor: {line.splitlines()[0][:160]}",
                    f"calls up to {c.describe()}",
                )
            child_seen = len(lines)
    elapsed = time.monotonic() - started
    gc.collect()
    for line in bad_records(caplog.records[seen_logs:]):
        findings.add(f"logged: {line[:160]}", "at the end")
    for problem in check_alive(tree):
        findings.add(f"not alive at the end: {problem}", "at the end")
    for problem in check_unchanged(tree):
        findings.add(f"changed: {problem}", "at the end")
    lines = send(tree.process, "run", logged_problems).result(15)
    for line in lines[child_seen:]:
        findings.add(f"logged in the process actor: {line.splitlines()[0][:160]}", "at the end")
    print(f"fuzz: {done} calls in {elapsed:.1f}s, seed {SEED}")
    assert done >= min(CALLS, 1000), f"only {done} calls in {BUDGET}s: the servers are too slow"
    assert not findings.groups, (
        f"{sum(len(v) for v in findings.groups.values())} problems in {done} calls "
        f"(seed {SEED}):\n{findings.report()}"
    )


# -- the problems the fuzz finds, one input each ----------------------------------------------


@pytest.fixture
def thread_tree():
    with running_arbiter(secret=SECRET) as arb:
        thread = spawn(aid=THREAD_AID, name=THREAD_NAME, concurrency="thread").result(10)
        with grpc.insecure_channel(format_address(arb.address)) as ch:
            yield arb, thread, ch


@pytest.mark.parametrize("method", [SEND, HANDSHAKE, NOTIFY, INFO, LOOKUP, HEALTH])
def test_unreadable_request_is_invalid_argument_not_an_unhandled_exception(
    thread_tree, caplog, method
):
    """Bytes that are not a message of the method's type must be answered
    INVALID_ARGUMENT, without an 'Unexpected [DecodeError]' traceback in the log."""
    caplog.set_level(logging.WARNING)
    _arb, _thread, ch = thread_tree
    with pytest.raises(grpc.RpcError) as err:
        ch.unary_unary(method)(
            b"\xff\xff\xff", timeout=UNARY_TIMEOUT, metadata=auth_metadata(SECRET)
        )
    code, details = err.value.code(), err.value.details()
    logged = bad_records(caplog.records)
    assert (code, logged) == (grpc.StatusCode.INVALID_ARGUMENT, []), (code, details, logged)


def test_unreadable_stream_message_is_not_silently_dropped(thread_tree, caplog):
    """A Stream message that cannot be read must end the call with an error
    status (INVALID_ARGUMENT); today the call ends OK and the message, and every
    one after it, vanish without a word."""
    caplog.set_level(logging.WARNING)
    _arb, _thread, ch = thread_tree
    good = [
        mailbox_pb2.Envelope(id=n, target=THREAD_AID, action="ping").SerializeToString()
        for n in (1, 3)
    ]
    messages = [good[0], b"\xff\xff\xff", good[1]]
    try:
        replies = list(
            ch.stream_stream(STREAM)(
                iter(messages), timeout=STREAM_TIMEOUT, metadata=auth_metadata(SECRET)
            )
        )
        outcome: Any = ("OK", sorted(mailbox_pb2.Envelope.FromString(r).id for r in replies))
    except grpc.RpcError as exc:
        outcome = (exc.code().name, exc.details())
    assert outcome[0] == "INVALID_ARGUMENT", outcome
    assert not bad_records(caplog.records)


def test_an_envelope_at_the_parser_limit_does_not_break_the_arbiters_stream_to_an_actor(caplog):
    """A client sends, with the secret, an envelope the arbiter can read on its own
    (a value 48 lists and 1 dict deep: 99 nested messages) while other traffic
    flows to a process actor. The arbiter forwards it, batched with that traffic;
    the actor's server cannot parse the batch (one level deeper) and drops the
    whole stream, so unrelated requests in flight fail with ActorNotAvailable
    ("it closed the stream"). Expected: the edge envelope is refused
    (INVALID_ARGUMENT) or delivered, and nobody else's request fails.
    """
    caplog.set_level(logging.WARNING)
    with arbiter(secret=SECRET) as arb:
        process = spawn(aid=PROC_AID, name=PROC_NAME).result(30)
        edge = mailbox_pb2.Envelope(id=10_000, target=PROC_AID, action="echo")
        edge.args.append(_deep_value(48, 1))
        mailbox_pb2.Envelope.FromString(edge.SerializeToString())  # readable on its own
        futures: list[Any] = []
        stop = threading.Event()

        def traffic() -> None:
            while not stop.is_set() and len(futures) < 20_000:
                futures.append(send(process, "ping"))

        def failed_yet() -> bool:
            return any(f.done() and f.exception() is not None for f in futures[-2000:])

        flood = threading.Thread(target=traffic)
        flood.start()
        edge_codes = []
        try:
            with grpc.insecure_channel(format_address(arb.address)) as ch:
                # Until the edge envelope has been batched with the traffic (a few
                # tries, as a rule), or 60 tries.
                for _ in range(60):
                    code, _details, _out = _status_of(
                        lambda: ch.unary_unary(SEND)(
                            edge.SerializeToString(),
                            timeout=UNARY_TIMEOUT,
                            metadata=auth_metadata(SECRET),
                        )
                    )
                    edge_codes.append(code.name)
                    if code != grpc.StatusCode.OK or failed_yet():
                        break
        finally:
            stop.set()
            flood.join(30)
        outcomes: dict[str, int] = {}
        for fut in futures:
            try:
                key = fut.result(15)
            except Exception as exc:
                key = f"{type(exc).__name__}: {str(exc).split(':')[-1].strip()}"
            outcomes[key] = outcomes.get(key, 0) + 1
        after = send(process, "ping").result(10)
    gc.collect()
    assert (outcomes, set(edge_codes) <= {"OK", "INVALID_ARGUMENT"}, after) == (
        {"pong": len(futures)},
        True,
        "pong",
    ), edge_codes
    assert not bad_records(caplog.records)


@pytest.mark.parametrize(
    ("target", "action", "status"),
    [
        ("x" * 10_000, "ping", grpc.StatusCode.NOT_FOUND),
        (THREAD_AID, "y" * 5000, grpc.StatusCode.UNIMPLEMENTED),
    ],
    ids=["long-target", "long-action"],
)
def test_a_long_target_or_action_still_gets_its_own_status(thread_tree, target, action, status):
    """Error messages quote the target or action in full, twice (grpc-message and
    the actorgrpc-error-bin trailer): past 8 KiB of metadata the client gets
    RESOURCE_EXHAUSTED "received metadata size exceeds ... limit" instead of the
    real status. Expected: names quoted in errors are cut short."""
    _arb, _thread, ch = thread_tree
    env = mailbox_pb2.Envelope(target=target, action=action)
    with pytest.raises(grpc.RpcError) as err:
        ch.unary_unary(SEND)(
            env.SerializeToString(), timeout=UNARY_TIMEOUT, metadata=auth_metadata(SECRET)
        )
    assert err.value.code() == status, err.value.details()[:200]
    trailer = dict(err.value.trailing_metadata() or ()).get(ERROR_KEY)
    assert trailer is not None
    assert len(mailbox_pb2.Error.FromString(trailer).message) < 1000


def test_an_external_actor_cannot_take_a_name_in_use_as_its_aid():
    """Registering an external actor whose aid is the *name* of another actor
    must be refused: today it succeeds, and from then on sends by that name go
    to the impostor (lookup tries aids before names) and hang there."""
    # A peer that accepts connections and never answers: the impostor stays "alive".
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    silent.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(silent.accept()[0])
            except OSError:
                continue

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()

    def hang_up() -> None:
        stop.set()
        acceptor.join(5)
        silent.close()
        for conn in accepted:
            conn.close()

    try:
        with arbiter(secret=SECRET) as arb:
            victim = spawn(name="victim").result(30)
            request = supervisor_pb2.HandshakeRequest(
                aid="victim", address=f"127.0.0.1:{silent.getsockname()[1]}", kind="external"
            )
            with grpc.insecure_channel(format_address(arb.address)) as ch:
                code, details, _out = _status_of(
                    lambda: ch.unary_unary(HANDSHAKE)(
                        request.SerializeToString(),
                        timeout=UNARY_TIMEOUT,
                        metadata=auth_metadata(SECRET),
                    )
                )
            target = arb.get_actor("victim")
            reached = target is not None and target.aid == victim.aid
            try:
                answer = send("victim", "ping").result(3)
            except Exception as exc:
                answer = f"{type(exc).__name__}: {exc}"
            hang_up()  # the impostor's stream breaks: it is presumed dead, the arbiter stops fast
    finally:
        hang_up()
    assert (code, reached, answer) == (grpc.StatusCode.INVALID_ARGUMENT, True, "pong"), (
        code,
        details,
        reached,
        answer,
    )


@pytest.mark.parametrize("address", ["127.0.0.1:99999999", "127.0.0.1:65536", "[::1]:123456"])
def test_an_external_handshake_with_an_impossible_port_is_refused(thread_tree, address):
    arb, _thread, ch = thread_tree
    request = supervisor_pb2.HandshakeRequest(aid="ext-port", address=address, kind="external")
    with pytest.raises(grpc.RpcError) as err:
        ch.unary_unary(HANDSHAKE)(
            request.SerializeToString(), timeout=UNARY_TIMEOUT, metadata=auth_metadata(SECRET)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ext-port" not in arb.managed_actors


def test_hostile_external_handshakes_register_only_what_they_say(thread_tree, caplog):
    """Well-formed external handshakes do register (that is their purpose); odd
    ones are refused, and those at unreachable addresses end as presumed dead,
    leaving the rest of the tree alone."""
    caplog.set_level(logging.WARNING)
    arb, thread, ch = thread_tree
    call = ch.unary_unary(HANDSHAKE)
    outcomes = {}
    for aid, address in [
        ("ext-ok", "127.0.0.1:1"),
        ("", "127.0.0.1:1"),
        ("x" * 129, "127.0.0.1:1"),
        ("ext\nnl", "127.0.0.1:1"),
        ("ext-bad-address", ":5"),
        (THREAD_AID, "127.0.0.1:1"),
        (arb.aid, "127.0.0.1:1"),
    ]:
        request = supervisor_pb2.HandshakeRequest(aid=aid, address=address, kind="external")
        code, _details, _out = _status_of(
            lambda r=request: call(
                r.SerializeToString(), timeout=UNARY_TIMEOUT, metadata=auth_metadata(SECRET)
            )
        )
        outcomes[aid[:10]] = code
    assert (
        outcomes
        == {
            "ext-ok": grpc.StatusCode.OK,
            "": grpc.StatusCode.INVALID_ARGUMENT,
            "x" * 10: grpc.StatusCode.INVALID_ARGUMENT,
            "ext\nnl": grpc.StatusCode.INVALID_ARGUMENT,
            "ext-bad-ad": grpc.StatusCode.INVALID_ARGUMENT,
            THREAD_AID[:10]: grpc.StatusCode.NOT_FOUND,  # a spawned aid needs its spawn token
            arb.aid[:10]: grpc.StatusCode.INVALID_ARGUMENT,
        }
    )
    # Nothing listens at 127.0.0.1:1: its mailbox stream breaks and it is presumed dead.
    wait_for(
        lambda: "ext-ok" in arb.terminated_actors, timeout=15, what="ext-ok to be presumed dead"
    )
    assert sorted(arb.managed_actors) == [THREAD_AID]
    assert send(thread, "ping").result(10) == "pong"
    assert not bad_records(caplog.records)
