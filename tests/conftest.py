"""What the whole suite shares: fixtures, probes run inside actors, and the leak check.

The generic helpers (``running_arbiter``, ``authenticated_channel``,
``auth_metadata``, ``wait_for``, ``actor_processes``, ``same``) live in the
public module ``actorgrpc.testing``; tests import them from there. What is
here is particular to this suite.

Probes are module-level functions: the ``run`` command pickles a function by
reference, and a process actor unpickles it by importing its module, this
one, as ``conftest`` (tests/ is on ``sys.path``: ``pythonpath`` in
pyproject.toml, and multiprocessing hands a child its parent's ``sys.path``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from actorgrpc.v1 import mailbox_pb2, mailbox_pb2_grpc, supervisor_pb2_grpc

from actorgrpc import Arbiter, arbiter, get_actor
from actorgrpc.core.interfaces import current_transport, set_current_transport
from actorgrpc.core.settings import Settings
from actorgrpc.remote.transport import Transport
from actorgrpc.testing import actor_processes, authenticated_channel, running_arbiter, wait_for

# Every arbiter of the run, and every tool a test starts (CLI, Node, grpcurl),
# shares this secret.
TEST_SECRET = os.environ.setdefault("ACTORGRPC_SECRET", "actorgrpc-test-secret-0123456789")

#: Seconds to wait for a reply: generous, the machine is small and shared.
T = 15
_R = TypeVar("_R")
#: Seconds to wait for a spawn.
SPAWN_T = 30
KINDS = ("process", "thread")


def actorgrpc_threads() -> list[str]:
    """Names of the live threads the runtime started in this process."""
    return [t.name for t in threading.enumerate() if t.name.startswith("actorgrpc-")]


def actorgrpc_stacks() -> str:
    """The stacks of the runtime's threads, for failure messages."""
    frames = sys._current_frames()
    out = []
    for t in threading.enumerate():
        if t.name.startswith("actorgrpc-") and t.ident in frames:
            out.append(f"--- {t.name}\n" + "".join(traceback.format_stack(frames[t.ident])))
    return "\n".join(out)


def ok_envelope(reply: mailbox_pb2.Envelope) -> mailbox_pb2.Envelope:
    """Assert a reply envelope carries no error; return it."""
    assert not reply.HasField("error"), f"{reply.error.type}: {reply.error.message}"
    return reply


@contextmanager
def loop_thread(
    loop: asyncio.AbstractEventLoop, timeout: float = 10.0
) -> Iterator[asyncio.AbstractEventLoop]:
    """Run ``loop`` forever on a thread of its own; then stop it, join the thread, close it."""
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        assert not thread.is_alive()
        loop.close()


@contextmanager
def served(settings: Settings | None = None, keep_current: bool = True) -> Iterator[Transport]:
    """A started Transport with no arbiter (as a process actor's), on a loop of its own thread.

    Closed after. With ``keep_current``, the transport that was this
    process's current one (a running arbiter's) stays current: the new one is
    only a peer.
    """
    previous = current_transport()
    with loop_thread(asyncio.new_event_loop()) as loop:
        transport = Transport(settings or Settings(secret=TEST_SECRET))
        asyncio.run_coroutine_threadsafe(transport.start(), loop).result(T)
        if keep_current and previous is not None:
            set_current_transport(previous)
        try:
            yield transport
        finally:
            if not transport.closing.is_set():
                asyncio.run_coroutine_threadsafe(transport.close(0.1), loop).result(T)


def on_loop(transport: Transport, fn: Callable[[], _R]) -> _R:
    """``fn()`` run on the transport's IO loop; its result (or its exception)."""

    async def call() -> _R:
        return fn()

    return asyncio.run_coroutine_threadsafe(call(), transport.loop).result(T)


def ipv6_loopback() -> bool:
    """True where this machine can bind ::1."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


# -- fixtures ------------------------------------------------------------------


@pytest.fixture
def mutual_tls(tmp_path: Path) -> dict[str, Any]:
    """``arbiter(tls=...)`` for mutual TLS on 127.0.0.1: PEM files of a fresh CA (trustme)."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    issued.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    issued.private_key_pem.write_to_path(str(paths["key"]))
    return {"cert": paths["cert"], "key": paths["key"], "ca": paths["ca"], "mutual": True}


@pytest.fixture
def arb() -> Iterator[Arbiter]:
    """A running arbiter on a free loopback port, stopped after the test."""
    with running_arbiter() as a:
        yield a


@pytest.fixture
def nopickle_arb() -> Iterator[Arbiter]:
    """A running arbiter with pickle off."""
    with running_arbiter(pickle=False) as a:
        yield a


@pytest.fixture
def channel(arb: Arbiter) -> Iterator[grpc.Channel]:
    """A plain (synchronous) grpc channel to the arbiter, carrying the secret."""
    with authenticated_channel(arb.address) as ch:
        yield ch


@pytest.fixture
def mailbox(channel: grpc.Channel) -> mailbox_pb2_grpc.MailboxStub:
    """A Mailbox stub on the arbiter."""
    return mailbox_pb2_grpc.MailboxStub(channel)


@pytest.fixture
def supervisor(channel: grpc.Channel) -> supervisor_pb2_grpc.SupervisorStub:
    """A Supervisor stub on the arbiter."""
    return supervisor_pb2_grpc.SupervisorStub(channel)


@pytest.fixture(autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Every test must leave no actor process running."""
    yield
    try:
        wait_for(lambda: not actor_processes(), timeout=15, what="actor processes to exit")
    except AssertionError:
        left = [(p.pid, " ".join(p.cmdline())[:80]) for p in actor_processes()]
        for p in actor_processes():
            p.kill()
        raise AssertionError(f"processes left behind: {left}") from None


# -- probes: run inside actors with send(p, 'run', probe) ----------------------


def predicates(actor: Any) -> dict[str, Any]:
    """The actor's predicates and state, as seen from inside it."""
    return {
        "aid": actor.aid,
        "state": actor.state,
        "info_state": actor.info_state,
        "is_running": actor.is_running(),
        "started": actor.started(),
        "after_run": actor.after_run(),
        "closed": actor.closed(),
        "stopped": actor.stopped(),
        "is_arbiter": actor.is_arbiter(),
        "is_monitor": actor.is_monitor(),
        "is_process": actor.is_process(),
        "get_actor_is_me": get_actor() is actor,
        "class": type(actor).__name__,
    }


def arbiter_here(actor: Any) -> Any:
    """What ``arbiter()`` returns inside the actor, as a repr (None stays None)."""
    a = arbiter()
    return None if a is None else repr(a)


def params_of(actor: Any) -> dict[str, Any]:
    """The actor's params."""
    return dict(actor.params)


def set_extra(actor: Any, key: str, value: Any) -> bool:
    """Put ``value`` in the actor's extra."""
    actor.extra[key] = value
    return True


def get_extra(actor: Any, key: str, default: Any = None) -> Any:
    """Read the actor's extra."""
    return actor.extra.get(key, default)


# -- the end of the session ----------------------------------------------------


@pytest.hookimpl(trylast=True)  # after pytest's own, which tears down fixtures
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop multiprocessing's forkserver and resource tracker before pytest exits.

    They would stop on their own once this process is gone, but a second or
    so later: whoever checks for processes right after the run would see them.
    Not while an actor process still runs (an interrupted run): the
    forkserver's stop waits for every process it forked.
    """
    from multiprocessing import forkserver, resource_tracker

    if actor_processes():
        return

    for helper in (forkserver._forkserver, resource_tracker._resource_tracker):
        stop = getattr(helper, "_stop", None)  # CPython's own hook for its tests
        if stop is not None:
            stop()
