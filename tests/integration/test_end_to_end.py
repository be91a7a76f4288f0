"""End to end: a small tree doing work, as a user script would build it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from actorgrpc.v1 import supervisor_pb2, supervisor_pb2_grpc
from conftest import SPAWN_T, T, actorgrpc_threads

from actorgrpc import ACTOR_STATES, Actor, arbiter, command, send, spawn
from actorgrpc.testing import actor_processes, authenticated_channel, wait_for


@command()
def e2e_add(request, a, b):
    """The README's command."""
    return a + b


@command()
def e2e_tally(request, who, value):
    counts = request.actor.extra.setdefault("reports", {})
    counts[who] = counts.get(who, 0) + 1
    request.actor.extra["total"] = request.actor.extra.get("total", 0) + value
    return request.actor.extra["total"]


@command()
def e2e_square(request, x):
    return x * x


async def e2e_work(actor: Actor) -> None:
    """A worker's periodic task: square a number (asking itself), tell the tally by name."""
    n = actor.extra.get("n", 0) + 1
    actor.extra["n"] = n
    value = await send(actor.proxy, "e2e_square", n)
    await send("e2e-tally", "e2e_tally", actor.name, value)


def reports():
    return send("e2e-tally", "info").result(T)["extra"].get("reports", {})


def test_readme_tour():
    with arbiter() as arb:
        worker = spawn(name="adder").result(SPAWN_T)
        helper = spawn(concurrency="thread").result(SPAWN_T)
        assert send(worker, "e2e_add", 2, 3).result(T) == 5
        assert send("adder", "ping").result(T) == "pong"
        assert send(helper, "info").result(T)["actor"]["concurrency"] == "thread"
        assert arb.state == ACTOR_STATES.RUN
    assert actor_processes() == []
    assert actorgrpc_threads() == []


def test_a_tree_at_work():
    with arbiter() as arb:
        tally = spawn(name="e2e-tally", concurrency="thread").result(SPAWN_T)
        workers = [spawn(name=f"e2e-worker-{i}", periodic_task=e2e_work) for i in (1, 2)]
        workers = [w.result(SPAWN_T) for w in workers]
        wait_for(
            lambda: all(reports().get(w.name, 0) >= 2 for w in workers),
            timeout=20,
            what="two reports from each worker",
        )

        # The whole tree, as any gRPC client sees it.
        with authenticated_channel(arb.address) as ch:
            stub = supervisor_pb2_grpc.SupervisorStub(ch)
            tree = stub.Info(supervisor_pb2.InfoRequest(), timeout=T)
        names = {a.ref.name for a in tree.actors}
        assert names == {"arbiter", "e2e-tally", "e2e-worker-1", "e2e-worker-2"}
        assert all(a.state == ACTOR_STATES.RUN for a in tree.actors)

        # One worker stops; the others carry on.
        assert send(workers[0], "stop").result(T) is None
        wait_for(lambda: workers[0].aid in arb.terminated_actors, what="worker 1 to end")
        assert arb.terminated_actors[workers[0].aid]["state"] == ACTOR_STATES.CLOSE
        before = reports()["e2e-worker-2"]
        wait_for(lambda: reports()["e2e-worker-2"] > before, timeout=20, what="worker 2 to go on")
        assert send(tally, "ping").result(T) == "pong"
        assert set(arb.managed_actors) == {tally.aid, workers[1].aid}
    assert actor_processes() == []
    assert actorgrpc_threads() == []
    assert {r["state"] for r in arb.terminated_actors.values()} == {ACTOR_STATES.CLOSE}


SCRIPT = textwrap.dedent(
    """
    import sys
    from dataclasses import dataclass

    from actorgrpc import arbiter, command, send, spawn
    import userlib

    @dataclass
    class Order:
        item: str
        qty: int

    @command()
    def double(request, x):
        return 2 * x

    @command()
    def total(request, order):
        # A type defined in the script itself, unpickled in the child.
        return f"{order.qty} x {order.item}"

    if __name__ == "__main__":
        with arbiter() as arb:
            p = spawn(name="script-worker").result(30)
            t = spawn(concurrency="thread").result(30)
            print(send(p, "double", 21).result(10))
            print(send(p, "triple", 5).result(10))
            print(send(p, "total", Order("apple", 3)).result(10))
            print(send(t, "double", 4).result(10))
            pids = [send(a, "run", userlib.where).result(10) for a in (p, t)]
            print(pids[0] != pids[1])
        print("done")
    """
)

USERLIB = textwrap.dedent(
    """
    import os
    from actorgrpc import command

    @command()
    def triple(request, x):
        return 3 * x

    def where(actor):
        return os.getpid()
    """
)


def test_user_script_commands_run_in_process_actors(tmp_path):
    """Children import the modules that define commands, the script's own __main__ included."""
    (tmp_path / "script.py").write_text(SCRIPT)
    (tmp_path / "userlib.py").write_text(USERLIB)
    out = subprocess.run(
        [sys.executable, "script.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split("\n") == ["42", "15", "3 x apple", "8", "True", "done", ""]
