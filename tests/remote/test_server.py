"""The server of a process, through real gRPC on loopback: what test_rawgrpc.py and
test_fuzz.py leave out.

Those already show Send's replies and its NOT_FOUND, UNIMPLEMENTED, UNKNOWN,
INVALID_ARGUMENT and PERMISSION_DENIED trailers, a batch refused by Send,
INVALID_ARGUMENT for garbage on every unary method and on Stream, health,
reflection, and UNAUTHENTICATED without the secret (with test_security.py).
Here: every error code's status, long details, non-requests, what a stream
answers before an unreadable message and how it says which one, garbage on
the other streaming methods (health Watch, reflection), a server with no
Supervisor service, health and reflection behind the secret, a server with no
secret, a stream that outlives its server, and a stream that parks the
requests for a full target while it reads on for the others (test_backpressure.py
has the rest of backpressure).
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from actorgrpc.v1 import mailbox_pb2, mailbox_pb2_grpc, supervisor_pb2, supervisor_pb2_grpc
from conftest import SPAWN_T, T, served
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from actorgrpc import (
    ActorNotAvailable,
    ActorNotFound,
    ActorProxy,
    ActorTimeout,
    BadRequest,
    CommandNotFound,
    PermissionDenied,
    ResourceExhausted,
    command,
    spawn,
)
from actorgrpc.core.flow import Gate
from actorgrpc.core.settings import Settings
from actorgrpc.remote.status import ERROR_METADATA_KEY, STATUS_BY_CODE
from actorgrpc.testing import authenticated_channel, wait_for

Envelope = mailbox_pb2.Envelope
REQUEST = mailbox_pb2.ENVELOPE_KIND_REQUEST
REPLY = mailbox_pb2.ENVELOPE_KIND_REPLY
STREAM = "/actorgrpc.v1.Mailbox/Stream"
WATCH = "/grpc.health.v1.Health/Watch"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
GARBAGE = b"\xff\xff\xff"
SERVING = health_pb2.HealthCheckResponse.SERVING

# -- helpers ---------------------------------------------------------------------------


class Hole:
    """A local actor that takes requests and never answers them (a LocalActor)."""

    def __init__(self, aid: str) -> None:
        self.aid = aid
        self.name = "hole"
        self.named = False  # not registered by name
        self.proxy = ActorProxy(aid, "hole", ("127.0.0.1", 0))
        self.gate = Gate(2)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.received: list[Any] = []

    def on_own_loop(self) -> bool:
        return False

    def deliver(self, env, on_reply, running, *, inline=True, caller=None, origin=None) -> None:
        self.received.append(env)

    def send(self, target, action, *args, **kwargs) -> Any:
        raise NotImplementedError


@command()
def srv_raise(request, kind: str, message: str) -> None:
    raise ERRORS[kind](message)


ERRORS: dict[str, type[Exception]] = {
    "ActorNotFound": ActorNotFound,
    "ActorNotAvailable": ActorNotAvailable,
    "ActorTimeout": ActorTimeout,
    "BadRequest": BadRequest,
    "ResourceExhausted": ResourceExhausted,
    "PermissionDenied": PermissionDenied,
    "CommandNotFound": CommandNotFound,
    "RuntimeError": RuntimeError,
}


def request(target: str, action: str, *args: str, id: int = 0, **fields: Any) -> Any:
    env = Envelope(id=id, kind=REQUEST, target=target, action=action, **fields)
    for arg in args:
        env.args.add().string_value = arg
    return env


def trailer_error(exc: Any) -> Any:
    trailers = dict(exc.trailing_metadata() or ())
    assert ERROR_METADATA_KEY in trailers, trailers
    return mailbox_pb2.Error.FromString(trailers[ERROR_METADATA_KEY])


def raw_stream(channel: Any, method: str, messages: list[bytes]) -> tuple[list[bytes], Any]:
    """Write raw messages on a stream-stream method; (raw replies, the RpcError or None)."""
    call = channel.stream_stream(method)(iter(messages), timeout=T)
    replies: list[bytes] = []
    try:
        for raw in call:
            replies.append(raw)
    except grpc.RpcError as exc:
        return replies, exc
    return replies, None


# -- Mailbox.Send --------------------------------------------------------------------


def test_send_answers_even_a_request_marked_no_reply(arb, mailbox):
    # A unary call always has an answer: no_reply is ignored on Send, for the
    # arbiter's own actor and for one the arbiter forwards to.
    spawn(name="srv-forwarded").result(SPAWN_T)
    for n, target in enumerate(("arbiter", "srv-forwarded")):
        reply = mailbox.Send(request(target, "ping", id=41 + n, no_reply=True), timeout=T)
        assert (reply.kind, reply.id, reply.result.string_value) == (REPLY, 41 + n, "pong")


@pytest.mark.parametrize(
    ("kind", "status", "type_name"),
    [
        ("ActorNotFound", grpc.StatusCode.NOT_FOUND, "actorgrpc.ActorNotFound"),
        ("ActorNotAvailable", grpc.StatusCode.UNAVAILABLE, "actorgrpc.ActorNotAvailable"),
        ("ActorTimeout", grpc.StatusCode.DEADLINE_EXCEEDED, "actorgrpc.ActorTimeout"),
        ("BadRequest", grpc.StatusCode.INVALID_ARGUMENT, "actorgrpc.BadRequest"),
        ("ResourceExhausted", grpc.StatusCode.RESOURCE_EXHAUSTED, "actorgrpc.ResourceExhausted"),
        ("PermissionDenied", grpc.StatusCode.PERMISSION_DENIED, "actorgrpc.PermissionDenied"),
        ("CommandNotFound", grpc.StatusCode.UNIMPLEMENTED, "actorgrpc.CommandNotFound"),
        ("RuntimeError", grpc.StatusCode.UNKNOWN, "RuntimeError"),
    ],
)
def test_send_maps_each_error_to_its_status_with_the_error_in_the_trailer(
    mailbox, kind, status, type_name
):
    env = request("arbiter", "srv_raise", kind, f"raised {kind} on purpose", id=9)
    with pytest.raises(grpc.RpcError) as info:
        mailbox.Send(env, timeout=T)
    assert info.value.code() == status
    assert info.value.details() == f"{type_name}: raised {kind} on purpose"
    error = trailer_error(info.value)
    assert (error.type, error.message) == (type_name, f"raised {kind} on purpose")
    assert STATUS_BY_CODE[error.code] == status
    assert ERRORS[kind] is not RuntimeError or error.traceback  # a failed command says where


def test_send_cuts_long_details_but_its_trailer_keeps_the_whole_message(mailbox):
    message = "m" * 1500
    with pytest.raises(grpc.RpcError) as info:
        mailbox.Send(request("arbiter", "srv_raise", "BadRequest", message), timeout=T)
    details = info.value.details()
    assert len(details) == 1000
    assert details == f"actorgrpc.BadRequest: {message}"[:1000]
    assert trailer_error(info.value).message == message


def test_send_refuses_an_envelope_that_is_not_a_request(mailbox):
    with pytest.raises(grpc.RpcError) as info:
        mailbox.Send(Envelope(id=3, kind=REPLY, target="arbiter", action="ping"), timeout=T)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "expected a request, got kind 2" in info.value.details()
    assert trailer_error(info.value).code == mailbox_pb2.ERROR_CODE_BAD_REQUEST


def test_send_to_a_process_without_that_actor_names_the_process():
    with served() as t, authenticated_channel(t.address_text) as ch:
        stub = mailbox_pb2_grpc.MailboxStub(ch)
        for target in ("srv-nobody", ""):  # "": the process's own actor, which it has not
            with pytest.raises(grpc.RpcError) as info:
                stub.Send(request(target, "ping"), timeout=T)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
            assert f"no actor {target!r} at {t.address_text}" in info.value.details()


# -- unreadable messages ---------------------------------------------------------------


def test_a_stream_answers_what_it_read_before_an_unreadable_message_and_names_it(channel):
    good = [request("arbiter", "ping", id=n).SerializeToString() for n in (1, 3)]
    replies, error = raw_stream(channel, STREAM, [good[0], GARBAGE, good[1]])
    assert [Envelope.FromString(r).id for r in replies] == [1]
    assert error is not None
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f"{STREAM}: message 2 of the stream is unreadable (DecodeError)"


def test_garbage_on_health_watch_is_invalid_argument(channel):
    call = channel.unary_stream(WATCH)(GARBAGE, timeout=T)
    with pytest.raises(grpc.RpcError) as info:
        next(iter(call))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == f"{WATCH}: unreadable request (DecodeError)"


def test_health_watch_with_a_good_request_streams_the_status(channel):
    stub: Any = health_pb2_grpc.HealthStub(channel)
    call = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=T)
    try:
        assert next(iter(call)).status == SERVING
    finally:
        call.cancel()


def test_garbage_on_the_reflection_stream_is_invalid_argument_after_what_it_could_read(channel):
    ask = reflection_pb2.ServerReflectionRequest(list_services="").SerializeToString()
    replies, error = raw_stream(channel, REFLECTION, [ask, GARBAGE, ask])
    assert len(replies) == 1
    names = {
        s.name
        for s in reflection_pb2.ServerReflectionResponse.FromString(
            replies[0]
        ).list_services_response.service
    }
    assert "actorgrpc.v1.Mailbox" in names
    assert error is not None
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f"{REFLECTION}: message 2 of the stream is unreadable (DecodeError)"


# -- the services a server offers -----------------------------------------------------


def list_services(channel: grpc.Channel) -> set[str]:
    stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=T
    )
    return {s.name for s in next(iter(responses)).list_services_response.service}


def test_a_server_without_a_supervisor_offers_no_supervisor_service():
    with served() as t, authenticated_channel(t.address_text) as ch:
        assert list_services(ch) == {
            "actorgrpc.v1.Mailbox",
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        }
        health: Any = health_pb2_grpc.HealthStub(ch)
        for service in ("", "actorgrpc.v1.Mailbox"):
            check = health_pb2.HealthCheckRequest(service=service)
            assert health.Check(check, timeout=T).status == SERVING
        with pytest.raises(grpc.RpcError) as info:
            health.Check(health_pb2.HealthCheckRequest(service="actorgrpc.v1.Supervisor"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        supervisor = supervisor_pb2_grpc.SupervisorStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            supervisor.Info(supervisor_pb2.InfoRequest(), timeout=T)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_health_and_reflection_need_the_secret_too(arb):
    with grpc.insecure_channel(arb.transport.address_text) as ch:
        health: Any = health_pb2_grpc.HealthStub(ch)
        calls = {
            "Check": lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=T),
            "Watch": lambda: next(iter(health.Watch(health_pb2.HealthCheckRequest(), timeout=T))),
            "reflection": lambda: list_services(ch),
        }
        for what, call in calls.items():
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, what
            assert "missing or wrong secret" in info.value.details(), what


def test_a_server_without_a_secret_takes_calls_without_one():
    with served(Settings(secret=None)) as t, grpc.insecure_channel(t.address_text) as ch:
        stub = mailbox_pb2_grpc.MailboxStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            stub.Send(request("srv-nobody", "ping"), timeout=T)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND  # answered, not UNAUTHENTICATED
        assert "grpc.health.v1.Health" in list_services(ch)


# -- streams ---------------------------------------------------------------------------


class OpenStream:
    """A Mailbox.Stream call whose request side stays open until close()."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._outgoing: queue.Queue[Any] = queue.Queue()
        self.call = mailbox_pb2_grpc.MailboxStub(channel).Stream(self._requests(), timeout=T)
        self.replies = iter(self.call)

    def _requests(self) -> Iterator[Any]:
        while (item := self._outgoing.get()) is not None:
            yield item

    def write(self, *envelopes: Any) -> None:
        for env in envelopes:
            self._outgoing.put(env)

    def close(self) -> None:
        self._outgoing.put(None)
        self.call.cancel()


def test_a_stream_open_when_its_server_closes_ends_with_ok():
    hole = Hole("srv-hole")
    with served() as t, authenticated_channel(t.address_text) as ch:
        t.registry.register(hole)
        stream = OpenStream(ch)
        try:
            stream.write(request("srv-hole", "ping", id=1), request("srv-nobody", "ping", id=2))
            answered = next(stream.replies)
            assert (answered.id, answered.error.code) == (2, mailbox_pb2.ERROR_CODE_NO_SUCH_ACTOR)
            wait_for(lambda: hole.received, timeout=T, what="the hole to get its request")
            asyncio.run_coroutine_threadsafe(t.close(0.1), t.loop).result(T)
            # The call ends cleanly, without the reply that never came.
            assert list(stream.replies) == []
            assert stream.call.code() == grpc.StatusCode.OK
        finally:
            stream.close()


def test_a_stream_parks_requests_for_a_full_target_and_reads_on_for_others():
    hole = Hole("srv-full")
    with served() as t, authenticated_channel(t.address_text) as ch:
        t.registry.register(hole)
        hole.gate.update(hole.gate.limit)  # full: its requests must wait
        stream = OpenStream(ch)
        try:
            n = 5
            stream.write(*(request("srv-full", "ping", id=k, no_reply=True) for k in range(n)))
            # The same stream is read on: a request to another target is answered.
            stream.write(request("srv-nobody", "ping", id=n))
            answered = next(stream.replies)
            assert (answered.id, answered.error.code) == (n, mailbox_pb2.ERROR_CODE_NO_SUCH_ACTOR)
            # The first went in (and found the target full); the others are parked.
            assert [env.id for env in hole.received] == [0]
            hole.gate.update(0)  # room again: they are delivered, in order
            wait_for(lambda: len(hole.received) == n, timeout=T, what="the other requests")
            assert [env.id for env in hole.received] == list(range(n))
        finally:
            stream.close()
