"""Who may talk, TLS, impersonation, pickle policy, size limits and backpressure."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Any

import grpc
import psutil
import pytest
import trustme
from actorgrpc.v1 import mailbox_pb2, mailbox_pb2_grpc, supervisor_pb2, supervisor_pb2_grpc
from conftest import served

from actorgrpc import (
    ActorError,
    CommandNotFound,
    PermissionDenied,
    ResourceExhausted,
    arbiter,
    command,
    send,
    spawn,
)
from actorgrpc.core.settings import Settings
from actorgrpc.testing import auth_metadata, running_arbiter, wait_for

SECRET = "s3cret-" + "x" * 20


def channel(address, tls=None):
    target = "{}:{}".format(*address)
    if tls is None:
        return grpc.insecure_channel(target)
    return grpc.secure_channel(target, tls)


def ping_envelope(target="arbiter"):
    return mailbox_pb2.Envelope(target=target, action="ping")


@pytest.fixture
def secured():
    with running_arbiter(secret=SECRET) as arb:
        yield arb


def secret_of(pid: int) -> bool:
    proc = psutil.Process(pid)
    return SECRET in " ".join(proc.cmdline()) or any(SECRET in v for v in proc.environ().values())


# -- the secret --------------------------------------------------------------------


def test_calls_need_the_secret(secured, caplog):
    proxy = spawn().result(30)
    with channel(secured.address) as ch:
        mailbox = mailbox_pb2_grpc.MailboxStub(ch)
        supervisor = supervisor_pb2_grpc.SupervisorStub(ch)
        for call in (
            lambda md: mailbox.Send(ping_envelope(), timeout=10, metadata=md),
            lambda md: supervisor.Info(supervisor_pb2.InfoRequest(), timeout=10, metadata=md),
            lambda md: list(mailbox.Stream(iter([ping_envelope()]), timeout=10, metadata=md)),
        ):
            for metadata in ((), auth_metadata("wrong-" + "y" * 20)):
                with pytest.raises(grpc.RpcError) as err:
                    call(metadata)
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "missing or wrong secret" in err.value.details()
        assert (
            mailbox.Send(
                ping_envelope(), timeout=10, metadata=auth_metadata(SECRET)
            ).result.string_value
            == "pong"
        )
    # The children's servers check it too, and the tree still works.
    with channel(proxy.address) as ch, pytest.raises(grpc.RpcError) as err:
        mailbox_pb2_grpc.MailboxStub(ch).Send(ping_envelope(proxy.aid), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert send(proxy, "ping").result(10) == "pong"
    assert any("missing or wrong secret" in r.getMessage() for r in caplog.records)


def test_children_get_the_secret_out_of_sight(secured):
    proxy = spawn().result(30)
    pid = secured.managed_actors[proxy.aid].pid
    assert not secret_of(pid)
    assert send(proxy, "ping").result(10) == "pong"


def test_secret_from_the_environment(monkeypatch):
    monkeypatch.setenv("ACTORGRPC_SECRET", "from-env-" + "z" * 20)
    with arbiter(secret=None) as arb:
        assert arb.secret == "from-env-" + "z" * 20


def test_bad_secret_and_bind_rejected():
    with pytest.raises(ValueError, match="at least 16"):
        arbiter(secret="short")
    with pytest.raises(ValueError, match="without TLS"):
        arbiter(host="0.0.0.0", secret=SECRET)


def test_insecure_bind_is_allowed_when_asked(caplog):
    with arbiter(host="0.0.0.0", secret=SECRET, insecure=True) as arb:
        assert arb.address[1] > 0
        with channel(("127.0.0.1", arb.address[1])) as ch:
            reply = mailbox_pb2_grpc.MailboxStub(ch).Send(
                ping_envelope(), timeout=10, metadata=auth_metadata(SECRET)
            )
        assert reply.result.string_value == "pong"
    assert any("without TLS" in r.getMessage() for r in caplog.records)


# -- TLS ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("pki")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    other = trustme.CA()
    return {
        "ca": folder / "ca.pem",
        "cert": folder / "cert.pem",
        "key": folder / "key.pem",
        "ca_pem": ca.cert_pem.bytes(),
        "cert_pem": cert.cert_chain_pems[0].bytes(),
        "key_pem": cert.private_key_pem.bytes(),
        "other_ca_pem": other.cert_pem.bytes(),
    }


@pytest.mark.parametrize("mutual", [False, True])
def test_tls_tree(pki, mutual):
    tls = {"cert": pki["cert"], "key": pki["key"], "ca": pki["ca"], "mutual": mutual}
    with arbiter(secret=SECRET, tls=tls) as arb:
        process = spawn().result(30)
        thread = spawn(concurrency="thread").result(10)
        assert send(process, "ping").result(10) == "pong"
        assert send(thread, "ping").result(10) == "pong"
        good = grpc.ssl_channel_credentials(
            root_certificates=pki["ca_pem"],
            private_key=pki["key_pem"],
            certificate_chain=pki["cert_pem"],
        )
        with channel(arb.address, good) as ch:
            reply = mailbox_pb2_grpc.MailboxStub(ch).Send(
                ping_envelope(process.aid), timeout=10, metadata=auth_metadata(SECRET)
            )
            assert reply.result.string_value == "pong"
        # Plaintext, or a client that does not trust our CA, gets nowhere.
        strangers = [None, grpc.ssl_channel_credentials(root_certificates=pki["other_ca_pem"])]
        if mutual:  # trusts us, but shows no certificate
            strangers.append(grpc.ssl_channel_credentials(root_certificates=pki["ca_pem"]))
        for creds in strangers:
            with channel(arb.address, creds) as ch, pytest.raises(grpc.RpcError) as err:
                mailbox_pb2_grpc.MailboxStub(ch).Send(
                    ping_envelope(), timeout=5, metadata=auth_metadata(SECRET)
                )
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_tls_config_errors(pki, tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        arbiter(tls={"cert": tmp_path / "nope.pem", "key": pki["key"]})
    with pytest.raises(ValueError, match="mutual TLS needs a ca"):
        arbiter(tls={"cert": pki["cert"], "key": pki["key"], "mutual": True})
    with pytest.raises(TypeError, match="unknown keys"):
        arbiter(tls={"certificate": pki["cert"]})


# -- impersonation -------------------------------------------------------------------


def test_no_one_speaks_for_another_actor(secured):
    proxy = spawn(name="victim").result(30)
    with channel(secured.address) as ch:
        sup = supervisor_pb2_grpc.SupervisorStub(ch)
        # Taking over a spawned actor's aid needs its one-time spawn token.
        with pytest.raises(grpc.RpcError) as err:
            sup.Handshake(
                supervisor_pb2.HandshakeRequest(
                    aid=proxy.aid, address="127.0.0.1:1", kind="external"
                ),
                timeout=10,
                metadata=auth_metadata(SECRET),
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        # So does notifying for it without the session its handshake got.
        with pytest.raises(grpc.RpcError) as err:
            sup.Notify(
                supervisor_pb2.NotifyRequest(aid=proxy.aid, state=6),
                timeout=10,
                metadata=auth_metadata(SECRET),
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # An external actor cannot take a name in use either.
        with pytest.raises(grpc.RpcError) as err:
            sup.Handshake(
                supervisor_pb2.HandshakeRequest(
                    aid="impostor", name="victim", address="127.0.0.1:1", kind="external"
                ),
                timeout=10,
                metadata=auth_metadata(SECRET),
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "taken" in err.value.details()
    assert secured.managed_actors[proxy.aid].state == 3
    assert send("victim", "ping").result(10) == "pong"


# -- pickle --------------------------------------------------------------------------


class Opaque:
    def __init__(self, value):
        self.value = value


def peek(actor):
    return actor.aid


def test_pickle_off():
    with arbiter(secret=SECRET, pickle=False) as arb:
        proxy = spawn().result(30)
        with pytest.raises(PermissionDenied, match=r"test_security\.Opaque"):
            send(proxy, "echo", Opaque(1))
        with pytest.raises(PermissionDenied, match="pickle is off"):
            send(proxy, "run", peek)
        assert send(proxy, "echo", {"typed": [1, 2.5, "x", b"y", None]}).result(10) == {
            "typed": [1, 2.5, "x", b"y", None]
        }
        # A pickled value sent by a peer that ignores the policy is refused too.
        value = mailbox_pb2.Envelope(target=proxy.aid, action="echo")
        value.args.add().pickled_value.data = b"\x80\x04K\x01."
        with channel(arb.address) as ch, pytest.raises(grpc.RpcError) as err:
            mailbox_pb2_grpc.MailboxStub(ch).Send(value, timeout=10, metadata=auth_metadata(SECRET))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert send(proxy, "ping").result(10) == "pong"


# -- limits --------------------------------------------------------------------------


@command()
def big_reply(request, size: int) -> bytes:
    return b"x" * size


def test_message_size_limit(secured):
    proxy = spawn().result(30)
    limit = 4 * 1024 * 1024
    with pytest.raises(ResourceExhausted, match="exceeds the limit"):
        send(proxy, "echo", b"x" * (limit + 1))
    with pytest.raises(ResourceExhausted, match="reply of"):
        send(proxy, "big_reply", limit + 1).result(10)
    assert len(send(proxy, "echo", b"x" * (limit - 1000)).result(30)) == limit - 1000
    # From outside, the stream of envelopes goes on after an oversized one.
    big = mailbox_pb2.Envelope(id=1, target=proxy.aid, action="echo")
    big.args.add().bytes_value = b"x" * (limit + 10)
    with channel(secured.address) as ch:
        replies = list(
            mailbox_pb2_grpc.MailboxStub(ch).Stream(
                iter([big, mailbox_pb2.Envelope(id=2, target=proxy.aid, action="ping")]),
                timeout=30,
                metadata=auth_metadata(SECRET),
            )
        )
    by_id = {r.id: r for r in replies}
    assert by_id[1].error.code == mailbox_pb2.ERROR_CODE_RESOURCE_EXHAUSTED
    assert by_id[2].result.string_value == "pong"
    assert send(proxy, "ping").result(10) == "pong"


@pytest.mark.parametrize("limit", [1024, 4 * 1024 * 1024])
def test_a_command_name_over_the_limit_is_refused_at_the_sender(limit):
    # Envelopes without arguments are measured only when their names are long.
    with arbiter(max_message_size=limit):
        proxy = spawn(concurrency="thread").result(30)
        with pytest.raises(ResourceExhausted, match="exceeds the limit"):
            send(proxy, "é" * (limit // 2))
        with pytest.raises(CommandNotFound):
            send(proxy, "é" * (limit // 8)).result(10)
        assert send(proxy, "ping").result(10) == "pong"


@command(ack=False)
def drip(request, i: int) -> None:
    extra = request.actor.extra
    extra["n"] = extra.get("n", 0) + 1
    if i % 1000 == 0:
        time.sleep(0.002)  # a slow reader


@command()
def dripped(request) -> int:
    return request.actor.extra.get("n", 0)


def test_million_no_ack_sends_keep_memory_bounded():
    count = int(os.environ.get("ACTORGRPC_FLOOD", "1000000"))
    with arbiter(secret=SECRET, max_mailbox=1000) as arb:
        proxy = spawn().result(30)
        receiver = psutil.Process(arb.managed_actors[proxy.aid].pid)
        before = receiver.memory_info().rss
        peak = before
        for i in range(count):
            send(proxy, "drip", i)
            if i % 25_000 == 0:
                peak = max(peak, receiver.memory_info().rss)
        wait_for(
            lambda: send(proxy, "dripped").result(60) == count,
            timeout=120,
            what="every message to arrive",
        )
        assert peak - before < 64 * 1024 * 1024, (before, peak)


@command()
def hold(request, seconds: float) -> str:
    time.sleep(seconds)
    return "held"


def test_full_mailbox_makes_the_sender_wait_then_fail(secured):
    transport = secured.transport
    proxy = spawn(concurrency="thread").result(10)
    settings = transport.settings
    transport.settings = dataclasses.replace(settings, send_wait=0.3)
    try:
        sent = [send(proxy, "hold", 5)]
        with pytest.raises(ResourceExhausted, match="stayed full"):
            for _ in range(settings.mailbox_limit + 10):
                sent.append(send(proxy, "hold", 0))
        assert sent[0].result(30) == "held"
    finally:
        transport.settings = settings
    assert send(proxy, "ping").result(30) == "pong"
    for fut in sent:
        try:
            fut.result(60)
        except ActorError:
            pass
    assert sys.getrefcount(proxy) > 0


def test_handshakes_per_connection_are_limited(secured):
    from actorgrpc.remote.supervisor_service import HANDSHAKES_PER_SECOND

    codes = []
    with channel(secured.address) as ch:
        sup = supervisor_pb2_grpc.SupervisorStub(ch)
        for i in range(HANDSHAKES_PER_SECOND + 10):
            request = supervisor_pb2.HandshakeRequest(aid=f"nobody-{i}", spawn_token="x")
            try:
                sup.Handshake(request, timeout=10, metadata=auth_metadata(SECRET))
            except grpc.RpcError as err:
                codes.append(err.code())
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes  # the flood is cut off
    assert grpc.StatusCode.NOT_FOUND in codes  # before that, each got its own answer
    # Others are not starved: a new connection is served at once.
    with channel(secured.address) as ch:
        reply = mailbox_pb2_grpc.MailboxStub(ch).Send(
            ping_envelope(), timeout=10, metadata=auth_metadata(SECRET)
        )
    assert reply.result.string_value == "pong"


def test_an_external_actor_cannot_be_taken_over(secured):
    with (
        served(Settings(secret=SECRET)) as home,
        served(Settings(secret=SECRET)) as impostor,
        channel(secured.address) as ch,
    ):
        sup = supervisor_pb2_grpc.SupervisorStub(ch)

        def handshake(address: str, name: str = "ext-victim") -> Any:
            request = supervisor_pb2.HandshakeRequest(
                aid="ext-victim", name=name, address=address, kind="external", language="test"
            )
            return sup.Handshake(request, timeout=10, metadata=auth_metadata(SECRET))

        handshake(home.address_text)
        entry = secured.managed_actors["ext-victim"]
        # The same aid again (its token is the empty one it chose): refused.
        with pytest.raises(grpc.RpcError) as err:
            handshake(impostor.address_text)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert entry.address == home.address
        assert secured.registered["ext-victim"] == "ext-victim"
        # External names are capped like spawned ones.
        with pytest.raises(grpc.RpcError) as err:
            sup.Handshake(
                supervisor_pb2.HandshakeRequest(
                    aid="ext-long", name="n" * 129, address=home.address_text, kind="external"
                ),
                timeout=10,
                metadata=auth_metadata(SECRET),
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "128" in err.value.details()
