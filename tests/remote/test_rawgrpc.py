"""The wire as any gRPC client sees it: plain generated stubs, no actorgrpc client code."""

from __future__ import annotations

import asyncio
import queue

import grpc
import pytest
from actorgrpc.v1 import mailbox_pb2, mailbox_pb2_grpc, supervisor_pb2, value_pb2
from conftest import SPAWN_T, T, ok_envelope
from grpc_health.v1 import health_pb2, health_pb2_grpc

from actorgrpc import ACTOR_STATES, ActorNotFound, BadRequest, command, spawn
from actorgrpc.core.proxy import format_address
from actorgrpc.testing import authenticated_channel

Envelope = mailbox_pb2.Envelope
Value = value_pb2.Value
REQUEST = mailbox_pb2.ENVELOPE_KIND_REQUEST
REPLY = mailbox_pb2.ENVELOPE_KIND_REPLY
BATCH = mailbox_pb2.ENVELOPE_KIND_BATCH
ERROR_KEY = "actorgrpc-error-bin"


@command()
def raw_fail(request, text):
    raise ValueError(text)


@command()
def raw_add(request, a, b):
    return a + b


@command()
def raw_record(request, seq):
    request.actor.extra.setdefault("log", []).append(seq)
    return seq


@command()
def raw_log(request):
    return request.actor.extra.get("log", [])


@command()
def raw_whoami(request):
    """The caller's aid and address as the command sees them."""
    c = request.caller
    return None if c is None else [c.aid, f"{c.address[0]}:{c.address[1]}"]


@command()
def raw_whoami_twice(request):
    """How reading a malformed caller twice goes: it must not turn into None."""
    seen = []
    for _ in range(2):
        try:
            seen.append(request.caller is None)
        except BadRequest:
            seen.append("refused")
    seen.append("<malformed sender>" in repr(request))  # a repr does not raise
    return seen


@command()
async def raw_late(request, seconds):
    """Answer after ``seconds``: a reply that comes after the client half-closed."""
    await asyncio.sleep(seconds)
    return "late"


def s(text: str) -> Value:
    return Value(string_value=text)


def i(n: int) -> Value:
    return Value(int_value=n)


def request(target: str, action: str, *args: Value, id: int = 0, **kwargs: Value) -> Envelope:
    env = Envelope(id=id, kind=REQUEST, target=target, action=action, args=list(args))
    for k, v in kwargs.items():
        env.kwargs[k].CopyFrom(v)
    return env


# -- Mailbox.Send -----------------------------------------------------------------------


def test_send_ping_and_echo_to_the_arbiter(mailbox):
    reply = ok_envelope(mailbox.Send(request("arbiter", "ping", id=7), timeout=T))
    assert reply.kind == REPLY
    assert reply.id == 7
    assert reply.result.string_value == "pong"
    reply = ok_envelope(mailbox.Send(request("arbiter", "echo", s("hi")), timeout=T))
    assert reply.result.string_value == "hi"
    reply = ok_envelope(mailbox.Send(request("arbiter", "echo", message=i(-5)), timeout=T))
    assert reply.result.int_value == -5


def test_send_with_no_kind_is_a_request(mailbox):
    reply = ok_envelope(mailbox.Send(Envelope(target="arbiter", action="ping"), timeout=T))
    assert reply.result.string_value == "pong"


def test_send_typed_values(mailbox):
    nested = Value(
        map_value=value_pb2.MapValue(
            fields={
                "list": Value(list_value=value_pb2.ListValue(items=[i(1), s("two")], tuple=True)),
                "bytes": Value(bytes_value=b"\x00\xff"),
                "big": Value(big_int_value=str(2**70)),
                "none": Value(null_value=value_pb2.NULL_VALUE_UNSPECIFIED),
                "float": Value(double_value=2.5),
                "bool": Value(bool_value=True),
            }
        )
    )
    reply = ok_envelope(mailbox.Send(request("arbiter", "echo", nested), timeout=T))
    assert reply.result == nested


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_send_to_spawned_actors_by_name_through_the_arbiter(arb, mailbox, kind):
    p = spawn(concurrency=kind, name=f"raw-{kind}").result(SPAWN_T)
    reply = ok_envelope(mailbox.Send(request(f"raw-{kind}", "raw_add", i(40), i(2)), timeout=T))
    assert reply.result.int_value == 42
    reply = ok_envelope(mailbox.Send(request(p.aid, "ping"), timeout=T))
    assert reply.result.string_value == "pong"
    # Outside clients have no actor: the command sees no caller.
    reply = ok_envelope(mailbox.Send(request(p.aid, "info"), timeout=T))
    info = reply.result.map_value.fields
    assert info["actor"].map_value.fields["aid"].string_value == p.aid


def test_send_straight_to_a_process_actors_own_server(arb):
    p = spawn(name="raw-direct").result(SPAWN_T)
    with authenticated_channel(p.address) as ch:
        stub = mailbox_pb2_grpc.MailboxStub(ch)
        reply = ok_envelope(stub.Send(request(p.aid, "ping"), timeout=T))
        assert reply.result.string_value == "pong"
        reply = ok_envelope(stub.Send(request("raw-direct", "echo", s("x")), timeout=T))
        assert reply.result.string_value == "x"
        # No target: the process's own actor.
        reply = ok_envelope(stub.Send(request("", "ping"), timeout=T))
        assert reply.result.string_value == "pong"
        # A target not there: it reached no actor, and the error says so.
        with pytest.raises(grpc.RpcError) as info:
            stub.Send(request("raw-elsewhere", "ping"), timeout=T)
        error = trailer_error(info.value)
        assert (error.code, error.undelivered) == (mailbox_pb2.ERROR_CODE_NO_SUCH_ACTOR, True)
        # A command that raises ActorNotFound ran: not undelivered.
        with pytest.raises(grpc.RpcError) as info:
            stub.Send(request("raw-direct", "raw_not_found"), timeout=T)
        error = trailer_error(info.value)
        assert (error.code, error.undelivered) == (mailbox_pb2.ERROR_CODE_NO_SUCH_ACTOR, False)


@command()
def raw_not_found(request) -> None:
    raise ActorNotFound("no actor 'raw-elsewhere' here, says the command")


def test_sender_reference_is_the_callers_and_a_malformed_one_is_refused_when_read(mailbox):
    env = request("arbiter", "raw_whoami")
    env.sender.aid, env.sender.address = "raw-peer", "127.0.0.1:4567"
    reply = ok_envelope(mailbox.Send(env, timeout=T))
    assert [v.string_value for v in reply.result.list_value.items] == [
        "raw-peer",
        "127.0.0.1:4567",
    ]
    env.sender.address = "no port here"
    with pytest.raises(grpc.RpcError) as info:
        mailbox.Send(env, timeout=T)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "bad actor reference 'raw-peer'" in info.value.details()
    env.action = "raw_whoami_twice"
    twice = ok_envelope(mailbox.Send(env, timeout=T)).result.list_value.items
    assert [v.string_value for v in twice[:2]] == ["refused", "refused"]
    assert twice[2].bool_value
    # A command that does not ask who called runs as usual.
    env.action = "ping"
    assert ok_envelope(mailbox.Send(env, timeout=T)).result.string_value == "pong"


def trailer_error(exc: grpc.RpcError) -> mailbox_pb2.Error:
    # grpc's stubs type a metadatum as an object with .key and .value; at runtime it is
    # a (key, value) namedtuple, as dict() needs.
    trailers: dict[str, bytes] = dict(exc.trailing_metadata() or ())  # type: ignore[arg-type]
    assert ERROR_KEY in trailers, trailers
    return mailbox_pb2.Error.FromString(trailers[ERROR_KEY])


def test_failed_send_unknown_command(mailbox):
    with pytest.raises(grpc.RpcError) as info:
        mailbox.Send(request("arbiter", "raw_no_such_command"), timeout=T)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    error = trailer_error(info.value)
    assert error.code == mailbox_pb2.ERROR_CODE_UNKNOWN_COMMAND
    assert "raw_no_such_command" in error.message


def test_failed_send_command_raised(arb, mailbox):
    spawn(name="raw-failer").result(SPAWN_T)
    with pytest.raises(grpc.RpcError) as info:
        mailbox.Send(request("raw-failer", "raw_fail", s("broken on purpose")), timeout=T)
    assert info.value.code() == grpc.StatusCode.UNKNOWN
    assert "broken on purpose" in info.value.details()
    error = trailer_error(info.value)
    assert error.code == mailbox_pb2.ERROR_CODE_COMMAND_FAILED
    assert error.type == "ValueError"
    assert error.message == "broken on purpose"
    assert "raw_fail" in error.traceback
    # Still alive.
    reply = ok_envelope(mailbox.Send(request("raw-failer", "ping"), timeout=T))
    assert reply.result.string_value == "pong"


def test_failed_send_no_such_actor(mailbox):
    with pytest.raises(grpc.RpcError) as info:
        mailbox.Send(request("raw-nobody", "ping"), timeout=T)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert trailer_error(info.value).code == mailbox_pb2.ERROR_CODE_NO_SUCH_ACTOR


def test_failed_send_bad_value(mailbox):
    bad = Value(big_int_value="not a number")
    with pytest.raises(grpc.RpcError) as info:
        mailbox.Send(request("arbiter", "echo", bad), timeout=T)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert trailer_error(info.value).code == mailbox_pb2.ERROR_CODE_BAD_REQUEST


def test_batch_through_send_is_refused(mailbox):
    batch = Envelope(kind=BATCH, batch=[request("arbiter", "ping", id=1)])
    with pytest.raises(grpc.RpcError) as info:
        mailbox.Send(batch, timeout=T)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_pickled_value_refused_by_an_arbiter_with_pickle_off():
    from actorgrpc import arbiter

    with arbiter(pickle=False) as a, authenticated_channel(a.address) as ch:
        stub = mailbox_pb2_grpc.MailboxStub(ch)
        one = value_pb2.Pickled(data=b"\x80\x05K\x01.", type_name="builtins.int")
        pickled = Value(pickled_value=one)
        with pytest.raises(grpc.RpcError) as info:
            stub.Send(request("arbiter", "echo", pickled), timeout=T)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        error = trailer_error(info.value)
        assert error.code == mailbox_pb2.ERROR_CODE_PERMISSION_DENIED
        assert "builtins.int" in error.message


# -- Mailbox.Stream ----------------------------------------------------------------------


class OpenStream:
    """A Mailbox.Stream call whose request side stays open until close()."""

    def __init__(self, stub: mailbox_pb2_grpc.MailboxStub, timeout: float = T * 2) -> None:
        self._outgoing: queue.Queue = queue.Queue()
        self.call = stub.Stream(self._requests(), timeout=timeout)

    def _requests(self):
        while (item := self._outgoing.get()) is not None:
            yield item

    def write(self, *envelopes: Envelope) -> None:
        for env in envelopes:
            self._outgoing.put(env)

    def read(self, n: int) -> list[Envelope]:
        return collect(self.call, n)

    def close(self) -> None:
        self._outgoing.put(None)
        self.call.cancel()


@pytest.fixture
def stream(mailbox):
    s = OpenStream(mailbox)
    yield s
    s.close()


def collect(responses, n: int) -> list[Envelope]:
    """Read replies, expanding batches, until n have come (or the call ends)."""
    out: list[Envelope] = []
    for message in responses:
        out.extend(message.batch if message.kind == BATCH else [message])
        if len(out) >= n:
            break
    return out


def test_stream_with_several_requests_and_a_batch(arb, stream):
    spawn(name="raw-stream", concurrency="thread").result(SPAWN_T)
    spawn(name="raw-stream-p").result(SPAWN_T)
    stream.write(
        request("arbiter", "ping", id=1),
        request("raw-stream", "echo", s("one"), id=2),
        Envelope(
            kind=BATCH,
            batch=[
                request("raw-stream", "raw_add", i(1), i(2), id=3),
                request("raw-stream-p", "raw_add", i(10), i(20), id=4),
                request("arbiter", "raw_no_such_command", id=5),
                request("raw-stream-p", "echo", s("five"), id=6),
            ],
        ),
        request("raw-nobody", "ping", id=7),
        request("raw-stream-p", "raw_fail", s("in a stream"), id=8),
    )
    replies = {r.id: r for r in stream.read(8)}
    assert set(replies) == set(range(1, 9))
    assert all(r.kind == REPLY for r in replies.values())
    assert ok_envelope(replies[1]).result.string_value == "pong"
    assert ok_envelope(replies[2]).result.string_value == "one"
    assert ok_envelope(replies[3]).result.int_value == 3
    assert ok_envelope(replies[4]).result.int_value == 30
    assert replies[5].error.code == mailbox_pb2.ERROR_CODE_UNKNOWN_COMMAND
    assert ok_envelope(replies[6]).result.string_value == "five"
    assert replies[7].error.code == mailbox_pb2.ERROR_CODE_NO_SUCH_ACTOR
    assert replies[8].error.code == mailbox_pb2.ERROR_CODE_COMMAND_FAILED
    assert replies[8].error.type == "ValueError"
    assert "raw_fail" in replies[8].error.traceback


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_stream_requests_start_in_the_order_written(arb, stream, kind):
    spawn(name="raw-order", concurrency=kind).result(SPAWN_T)
    n = 300
    stream.write(*(request("raw-order", "raw_record", i(k), id=k + 1) for k in range(n)))
    replies = stream.read(n)
    assert sorted(r.id for r in replies) == list(range(1, n + 1))
    assert all(ok_envelope(r).result.int_value == r.id - 1 for r in replies)
    stream.write(request("raw-order", "raw_log", id=n + 1))
    (log,) = stream.read(1)
    assert [v.int_value for v in ok_envelope(log).result.list_value.items] == list(range(n))


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_stream_answers_everything_written_before_half_close(arb, mailbox, kind):
    # grpcurl and most clients write all their requests, then half-close, then
    # read: every reply must still come back before the call ends.
    spawn(name="raw-halfclose", concurrency=kind).result(SPAWN_T)
    n = 300
    requests = [request("raw-halfclose", "echo", i(k), id=k + 1) for k in range(n)]
    replies = collect(mailbox.Stream(iter(requests), timeout=T * 2), n)
    assert sorted(r.id for r in replies) == list(range(1, n + 1))


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_stream_waits_for_replies_still_running_at_half_close(arb, mailbox, kind):
    # The client half-closes at once; the command answers later: the call
    # must stay open for that reply, then end with OK.
    spawn(name="raw-late", concurrency=kind).result(SPAWN_T)
    call = mailbox.Stream(iter([request("raw-late", "raw_late", Value(double_value=0.3), id=1)]))
    replies = collect(call, 1)
    assert [ok_envelope(r).result.string_value for r in replies] == ["late"]
    assert call.code() == grpc.StatusCode.OK


def test_stream_request_without_reply_gets_none(arb, stream):
    spawn(name="raw-noreply", concurrency="thread").result(SPAWN_T)
    quiet = request("raw-noreply", "ping", id=1)
    quiet.no_reply = True
    stream.write(quiet, request("raw-noreply", "ping", id=2))
    assert [r.id for r in stream.read(1)] == [2]


# -- Supervisor --------------------------------------------------------------------------


def test_supervisor_info_lists_the_tree(arb, supervisor):
    p = spawn(name="raw-info-p").result(SPAWN_T)
    t = spawn(name="raw-info-t", concurrency="thread").result(SPAWN_T)
    response = supervisor.Info(supervisor_pb2.InfoRequest(), timeout=T)
    actors = {a.ref.aid: a for a in response.actors}
    assert response.actors[0].ref.aid == arb.aid
    assert response.actors[0].kind == "arbiter"
    assert set(actors) == {arb.aid, p.aid, t.aid}
    for proxy, kind in ((p, "process"), (t, "thread")):
        summary = actors[proxy.aid]
        assert summary.kind == kind
        assert summary.ref.name == proxy.name
        assert summary.ref.address == format_address(proxy.address)
        assert summary.state == ACTOR_STATES.RUN
        assert summary.info_state == "running"
        assert summary.pid > 0
        assert summary.supervisor == arb.aid
        assert summary.language == "python"
        actor_info = summary.info.map_value.fields["actor"].map_value.fields
        assert actor_info["aid"].string_value == proxy.aid


def test_supervisor_lookup(arb, supervisor):
    p = spawn(name="raw-lookup").result(SPAWN_T)
    ref = supervisor.Lookup(supervisor_pb2.LookupRequest(target="raw-lookup"), timeout=T).ref
    assert (ref.aid, ref.name, ref.address) == (p.aid, "raw-lookup", format_address(p.address))
    ref = supervisor.Lookup(supervisor_pb2.LookupRequest(target=p.aid), timeout=T).ref
    assert ref.aid == p.aid
    ref = supervisor.Lookup(supervisor_pb2.LookupRequest(target="arbiter"), timeout=T).ref
    assert ref.aid == arb.aid and ref.address == format_address(arb.address)
    with pytest.raises(grpc.RpcError) as info:
        supervisor.Lookup(supervisor_pb2.LookupRequest(target="raw-nobody"), timeout=T)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_supervisor_refuses_a_handshake_it_did_not_spawn(supervisor):
    with pytest.raises(grpc.RpcError) as info:
        supervisor.Handshake(
            supervisor_pb2.HandshakeRequest(
                aid="raw-impostor", address="127.0.0.1:1", kind="process"
            ),
            timeout=T,
        )
    assert info.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)


def test_notify_from_an_unknown_actor_is_not_known(supervisor):
    notify = supervisor_pb2.NotifyRequest(aid="raw-unknown", state=3)
    response = supervisor.Notify(notify, timeout=T)
    assert response.known is False


# -- health and reflection ------------------------------------------------------------------


@pytest.mark.parametrize("service", ["", "actorgrpc.v1.Mailbox", "actorgrpc.v1.Supervisor"])
def test_health_of_the_arbiter(channel, service):
    stub = health_pb2_grpc.HealthStub(channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=T)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_health_of_a_process_actor(arb):
    p = spawn().result(SPAWN_T)
    with authenticated_channel(p.address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for service in ("", "actorgrpc.v1.Mailbox"):
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=T)
            assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services(channel):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=T
    )
    names = {s.name for s in next(iter(responses)).list_services_response.service}
    assert {"actorgrpc.v1.Mailbox", "actorgrpc.v1.Supervisor", "grpc.health.v1.Health"} <= names
