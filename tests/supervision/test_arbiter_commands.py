"""The arbiter's command loop: user commands sent to the arbiter never stall its IO loop.

The IO loop owns the process's gRPC server and channels, so a command that
blocks there stalls the Supervisor service, thread actors' remote traffic and
plain code's sends. User commands (and ``run``) on the arbiter run on a loop
of their own thread instead; the blocking commands here wait on an Event the
test sets, never on a sleep.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from actorgrpc.v1 import mailbox_pb2, mailbox_pb2_grpc, supervisor_pb2, supervisor_pb2_grpc
from conftest import SPAWN_T, T

from actorgrpc import ActorNotAvailable, CommandError, arbiter, command, get_actor, send, spawn
from actorgrpc.testing import authenticated_channel, running_arbiter, wait_for

#: The name of the command loop's thread (what threading.enumerate() shows).
COMMAND_THREAD = "actorgrpc-arbiter-commands"
#: Seconds anything may take to answer while a command blocks on the arbiter:
#: a ping takes milliseconds, a stalled IO loop never answers.
QUICK = 5

# Per test: set once the blocking code runs, and set by the test to let it return.
BLOCKS: dict[str, tuple[threading.Event, threading.Event]] = {}


def new_block(key: str) -> tuple[threading.Event, threading.Event]:
    """A fresh (entered, release) pair for the blocking code called with ``key``."""
    BLOCKS[key] = (threading.Event(), threading.Event())
    return BLOCKS[key]


def wait_blocked(key: str) -> str:
    """Block this thread until the test releases ``key``; the thread's name."""
    entered, release = BLOCKS[key]
    entered.set()
    release.wait(60)  # bounded: a failing test must not hang the run
    return threading.current_thread().name


@command()
def arbc_block(request: Any, key: str) -> list[Any]:
    """A sync command that blocks until released."""
    where = wait_blocked(key)
    return [key, where, get_actor() is request.actor is arbiter()]


def block_in_run(actor: Any, key: str) -> str:
    """A blocking callable, for the run command."""
    return wait_blocked(key)


async def ping_from_here(actor: Any, target: Any) -> Any:
    """Run in a process actor: ping ``target`` from there."""
    return await send(target, "ping")


def assert_nothing_stalls(arb: Any, thread_actor: Any, process_actor: Any) -> None:
    """Plain code, a thread actor reached from another process, and raw gRPC get answers."""
    assert send("arbiter", "ping").result(QUICK) == "pong"
    assert send(process_actor, "run", ping_from_here, thread_actor).result(QUICK) == "pong"
    with authenticated_channel(arb.address) as ch:
        tree = supervisor_pb2_grpc.SupervisorStub(ch).Info(
            supervisor_pb2.InfoRequest(), timeout=QUICK
        )
        assert {"arbiter", thread_actor.name, process_actor.name} <= {
            a.ref.name for a in tree.actors
        }
        ping = mailbox_pb2.Envelope(target="arbiter", action="ping")
        reply = mailbox_pb2_grpc.MailboxStub(ch).Send(ping, timeout=QUICK)
        assert reply.result.string_value == "pong"


@pytest.mark.parametrize("how", ["command", "run"])
def test_a_blocking_command_on_the_arbiter_stalls_nobody(arb, how):
    t = spawn(concurrency="thread", name=f"arbc-t-{how}").result(SPAWN_T)
    p = spawn(name=f"arbc-p-{how}").result(SPAWN_T)
    entered, release = new_block(how)
    if how == "command":
        fut = send("arbiter", "arbc_block", how)
    else:
        fut = send("arbiter", "run", block_in_run, how)
    try:
        assert entered.wait(T)
        assert_nothing_stalls(arb, t, p)
        # info() runs on the IO loop, and sees the command in progress.
        assert send("arbiter", "info").result(QUICK)["events"]["commands_in_progress"] == 1
        assert not fut.done()
    finally:
        release.set()
    expected = [how, COMMAND_THREAD, True] if how == "command" else COMMAND_THREAD
    assert fut.result(T) == expected
    wait_for(
        lambda: send("arbiter", "info").result(T)["events"]["commands_in_progress"] == 0,
        what="no command in progress",
    )


@command()
def arbc_where(request: Any, tag: str) -> list[str]:
    """Where this command ran, and what it was given."""
    return [tag, threading.current_thread().name]


@command()
async def arbc_relay(request: Any, target: Any) -> dict[str, Any]:
    """Await sends to another actor and to the arbiter itself, and a spawn, from the arbiter."""
    me = get_actor()
    child = await spawn(concurrency="thread")
    return {
        "thread": threading.current_thread().name,
        "arbiter": me is request.actor and me is arbiter(),
        "peer": await send(target, "ping"),
        "self_ping": await send("arbiter", "ping"),
        "self_command": await send("arbiter", "arbc_where", "inner"),
        "child": await send(child, "ping"),
        # The arbiter's own coroutines are awaited from here too (they run on the IO loop).
        "killed": await request.actor.kill_actor(child.aid) == f"killed {child.aid}",
    }


def test_a_command_on_the_command_loop_awaits_sends_and_spawns(arb):
    t = spawn(concurrency="thread").result(SPAWN_T)
    assert send("arbiter", "arbc_relay", t).result(T) == {
        "thread": COMMAND_THREAD,
        "arbiter": True,
        "peer": "pong",
        "self_ping": "pong",
        "self_command": ["inner", COMMAND_THREAD],
        "child": "pong",
        "killed": True,
    }


noted: list[str] = []


@command()
def arbc_note(request: Any, tag: str) -> str:
    """Note ``tag`` in the order the commands run; where it ran."""
    noted.append(tag)
    return threading.current_thread().name


def test_commands_from_one_sender_run_in_the_order_sent(arb):
    noted.clear()
    futures = [send("arbiter", "arbc_note", str(i)) for i in range(50)]
    assert [f.result(T) for f in futures] == [COMMAND_THREAD] * 50
    assert noted == [str(i) for i in range(50)]


@command()
def arbc_raise(request: Any, which: str) -> None:
    """Raise ValueError or SystemExit, naming the thread it ran on."""
    where = threading.current_thread().name
    raise ValueError(where) if which == "value" else SystemExit(where)


@command()
async def arbc_raise_async(request: Any, which: str) -> None:
    """arbc_raise, from an async command."""
    await asyncio.sleep(0)
    arbc_raise(request, which)


@pytest.mark.parametrize("name", ["arbc_raise", "arbc_raise_async"])
def test_errors_and_system_exit_on_the_command_loop_are_error_replies(arb, name):
    with pytest.raises(ValueError, match=COMMAND_THREAD):
        send("arbiter", name, "value").result(T)
    with pytest.raises(CommandError, match=COMMAND_THREAD) as info:
        send("arbiter", name, "exit").result(T)
    assert info.value.remote_type == "SystemExit"
    # The command loop goes on.
    assert send("arbiter", "arbc_where", "after").result(T) == ["after", COMMAND_THREAD]


@command()
async def arbc_forever(request: Any, key: str) -> None:
    """An async command that never ends by itself."""
    BLOCKS[key][0].set()
    await asyncio.Event().wait()


def command_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == COMMAND_THREAD]


def test_the_arbiter_stops_with_commands_still_running():
    sync_started, release = new_block("stop-sync")
    async_started, _ = new_block("stop-async")
    with running_arbiter() as arb:
        blocked = send("arbiter", "arbc_block", "stop-sync")
        forever = send("arbiter", "arbc_forever", "stop-async")
        assert sync_started.wait(T)
        # The async one waits behind the sync one (one thread, in order).
        assert not async_started.is_set()
        assert len(command_threads()) == 1
        stopper = threading.Thread(target=arb.stop)
        stopper.start()
        try:
            # Both callers are told at once, while the sync command still blocks.
            with pytest.raises(ActorNotAvailable):
                blocked.result(T)
            with pytest.raises(ActorNotAvailable):
                forever.result(T)
        finally:
            release.set()
        stopper.join(T)
        assert not stopper.is_alive()
    assert arb.finished
    assert command_threads() == []


def blocking_tick(actor: Any) -> None:
    """The arbiter's periodic_task hook: once the test asks, blocks until released."""
    block = BLOCKS.get("tick")
    if block is not None and not block[0].is_set():
        wait_blocked("tick")


def test_a_blocking_periodic_task_of_the_arbiter_stalls_nobody():
    BLOCKS.pop("tick", None)
    with running_arbiter(periodic_task=blocking_tick) as arb:
        t = spawn(concurrency="thread", name="arbc-tick-t").result(SPAWN_T)
        p = spawn(name="arbc-tick-p").result(SPAWN_T)
        entered, release = new_block("tick")
        try:
            assert entered.wait(T)
            assert_nothing_stalls(arb, t, p)
        finally:
            release.set()
    assert command_threads() == []
