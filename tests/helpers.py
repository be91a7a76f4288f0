"""Shared helpers of the core-runtime tests: fixtures, probes run inside actors, gRPC stubs.

Functions here are module-level so that process actors can unpickle them (the
``run`` command pickles its function by reference; the child imports this module).
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from actorgrpc.v1 import mailbox_pb2, mailbox_pb2_grpc, supervisor_pb2_grpc
from conftest import authed_channel

from actorgrpc import ACTOR_STATES, Arbiter, arbiter, get_actor

#: Seconds to wait for a reply: generous, the machine is small and shared.
T = 15
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


# -- fixtures ------------------------------------------------------------------


@pytest.fixture
def nopickle_arb() -> Iterator[Arbiter]:
    """A running arbiter with pickle off."""
    a = arbiter(pickle=False)
    assert a is not None
    with a:
        yield a


@pytest.fixture
def channel(arb: Arbiter) -> Iterator[grpc.Channel]:
    """A plain (synchronous) grpc channel to the arbiter."""
    host, port = arb.address
    with authed_channel(f"{host}:{port}") as ch:
        yield ch


@pytest.fixture
def mailbox(channel: grpc.Channel) -> mailbox_pb2_grpc.MailboxStub:
    """A Mailbox stub on the arbiter."""
    return mailbox_pb2_grpc.MailboxStub(channel)


@pytest.fixture
def supervisor(channel: grpc.Channel) -> supervisor_pb2_grpc.SupervisorStub:
    """A Supervisor stub on the arbiter."""
    return supervisor_pb2_grpc.SupervisorStub(channel)


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


def running_state() -> int:
    """ACTOR_STATES.RUN (a helper for readability in assertions)."""
    return int(ACTOR_STATES.RUN)


def ok_envelope(reply: mailbox_pb2.Envelope) -> mailbox_pb2.Envelope:
    """Assert a reply envelope carries no error; return it."""
    assert not reply.HasField("error"), f"{reply.error.type}: {reply.error.message}"
    return reply
