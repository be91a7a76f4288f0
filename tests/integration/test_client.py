"""``actorgrpc.connect()``: a client of a tree that another process runs, over real gRPC.

One tree for the module, run by ``actorgrpc run client_tree:setup`` in a
subprocess; the TLS trees, and the arbiter beside a client, run here.
"""

from __future__ import annotations

import asyncio
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil
import pytest
from conftest import SPAWN_T, T

from actorgrpc import (
    ActorError,
    ActorNotAvailable,
    ActorProxy,
    Client,
    PermissionDenied,
    arbiter,
    connect,
    send,
    spawn,
)
from actorgrpc.testing import actor_processes, running_arbiter, wait_for

HERE = Path(__file__).resolve().parent
#: The module tree's secret: not $ACTORGRPC_SECRET, which the in-process arbiters use.
TREE_SECRET = "client-tree-secret-0123456789"
ANNOUNCE = re.compile(r"^arbiter (\S+) listening on (\S+)$")
#: Seconds within which a connect that cannot succeed must have failed.
QUICK = 5.0


@dataclass
class Tree:
    """The module's tree: its process, its arbiter's aid and address."""

    proc: subprocess.Popen[str]
    aid: str
    address: str

    def family(self) -> set[int]:
        """The pids of the tree's process and of every process it has now."""
        try:
            me = psutil.Process(self.proc.pid)
            return {me.pid, *(c.pid for c in me.children(recursive=True))}
        except psutil.NoSuchProcess:
            return set()


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _alive(pids: set[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            continue
    return out


@pytest.fixture(scope="module")
def tree() -> Iterator[Tree]:
    """``actorgrpc run`` in a subprocess, for the whole module; stopped with SIGTERM after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "actorgrpc", "run", "client_tree:setup", "--secret", TREE_SECRET],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=HERE,
    )
    assert proc.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    pump = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
    pump.start()
    try:
        line = lines.get(timeout=60)
        match = ANNOUNCE.match((line or "").rstrip("\n"))
        assert match, f"actorgrpc run said {line!r}"
        running = Tree(proc, match.group(1), match.group(2))
        yield running
        family = running.family()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        pump.join(10)
        proc.stdout.close()
    wait_for(lambda: not _alive(family), 30, "the tree's processes to end")


@pytest.fixture(autouse=True)
def no_process_left_behind(tree: Tree) -> Iterator[None]:
    """conftest's check, less the module's tree (and the actors in it), which outlives tests."""
    yield
    wait_for(
        lambda: not [p for p in actor_processes() if p.pid not in tree.family()],
        15,
        "processes other than the tree's to exit",
    )


class Meanwhile:
    """Sees whether the running loop runs while ``async with`` enters.

    The loop's default executor gets one worker, held until a task of the
    loop has read ``probe()``: an entry that runs in a thread (to_thread) can
    only start after that, one that blocks the loop is done before it.
    """

    def __init__(self, probe: Callable[[], bool]) -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
        self._gate = threading.Event()
        self._held = loop.run_in_executor(None, self._gate.wait, T)
        #: What ``probe()`` answered when the task ran.
        self.seen: list[bool] = []
        self._task = asyncio.create_task(self._look(probe))

    async def _look(self, probe: Callable[[], bool]) -> None:
        self.seen.append(probe())
        self._gate.set()

    async def done(self) -> list[bool]:
        await self._task
        await self._held
        return self.seen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "actorgrpc-client"]


# -- the tree from another process --------------------------------------------------


def test_send_spawn_info_and_actors(tree: Tree) -> None:
    with connect(tree.address, secret=TREE_SECRET) as c:
        assert isinstance(c, Client)
        assert c.send("arbiter", "ping").result(T) == "pong"
        assert c.send("client-named", "echo", (1, [2])).result(T) == (1, [2])
        # A command the client calls has no caller: the client is no actor.
        assert c.send("arbiter", "client_caller").result(T) is None

        # ActorFuture does not declare the aid its spawn futures carry.
        thread_fut: Any = c.spawn(concurrency="thread")
        process_fut: Any = c.spawn(name="client-proc")
        assert thread_fut.aid and process_fut.aid
        helper, worker = thread_fut.result(SPAWN_T), process_fut.result(SPAWN_T)
        assert isinstance(helper, ActorProxy) and helper.aid == thread_fut.aid
        assert worker.aid == process_fut.aid and worker.name == "client-proc"
        assert c.send(helper, "echo", "thread").result(T) == "thread"
        assert c.send(worker, "echo", "process").result(T) == "process"
        assert c.send("client-proc", "ping").result(T) == "pong"

        info = c.info(worker).result(T)
        assert info["actor"]["aid"] == worker.aid and info["actor"]["is_process"] is True
        assert c.info().result(T)["actor"]["aid"] == tree.aid

        listed = {a["aid"]: a for a in c.actors().result(T)}
        assert set(listed) >= {tree.aid, helper.aid, worker.aid}
        assert listed[tree.aid]["kind"] == "arbiter"
        assert (listed[helper.aid]["kind"], listed[worker.aid]["kind"]) == ("thread", "process")
        for aid in (tree.aid, helper.aid, worker.aid):
            entry = listed[aid]
            assert entry["info_state"] == "running", entry
            assert entry["node"] == ""
            assert entry["proxy"].aid == aid
        assert listed[worker.aid]["name"] == "client-proc"
        assert listed[worker.aid]["pid"] in tree.family()
        # Proxies listed are ordinary proxies.
        assert c.send(listed[worker.aid]["proxy"], "ping").result(T) == "pong"

        for proxy in (helper, worker):
            assert c.send("arbiter", "kill_actor", proxy.aid).result(SPAWN_T) == (
                f"killed {proxy.aid}"
            )


def test_async_with(tree: Tree) -> None:
    async def main() -> None:
        client = connect(tree.address, secret=TREE_SECRET)

        def is_open() -> bool:
            try:
                client.send("arbiter", "ping")
            except RuntimeError:  # not open yet
                return False
            return True

        meanwhile = Meanwhile(is_open)
        async with client as c:
            # The loop ran while the client connected: entering did not block it.
            assert await meanwhile.done() == [False]
            fut = c.send("arbiter", "ping")
            assert isinstance(fut, asyncio.Future)  # of this loop, to await
            assert await fut == "pong"
            spawned: Any = c.spawn(concurrency="thread")
            helper = await spawned
            assert helper.aid == spawned.aid
            assert await c.send(helper, "echo", "async") == "async"
            assert (await c.info(helper))["actor"]["concurrency"] == "thread"
            assert helper.aid in {a["aid"] for a in await c.actors()}
            assert await c.send("arbiter", "kill_actor", helper.aid) == f"killed {helper.aid}"
        assert not client_threads()

    asyncio.run(main())


def test_two_clients_at_once(tree: Tree) -> None:
    with connect(tree.address, secret=TREE_SECRET) as one:
        with connect(tree.address, secret=TREE_SECRET) as two:
            helper = one.spawn(concurrency="thread").result(SPAWN_T)
            # A proxy one client got is good for the other.
            assert two.send(helper, "ping").result(T) == "pong"
            futures = [c.send("client-named", "echo", n) for n in range(20) for c in (one, two)]
            assert [f.result(T) for f in futures] == [n for n in range(20) for _ in (0, 1)]
        assert len(client_threads()) == 1
        assert one.send("arbiter", "kill_actor", helper.aid).result(SPAWN_T)
    assert not client_threads()


def _sockets() -> set[tuple[Any, Any, str]]:
    return {(c.laddr, c.raddr, c.status) for c in psutil.Process().net_connections("tcp")}


def test_closing_leaves_no_thread_or_socket(tree: Tree) -> None:
    tree_port = int(tree.address.rpartition(":")[2])
    sockets = _sockets()
    with connect(tree.address, secret=TREE_SECRET) as c:  # grpc's own helper threads start
        c.send("arbiter", "ping").result(T)
    threads = set(threading.enumerate())
    with connect(tree.address, secret=TREE_SECRET) as c:
        assert c.send("client-named", "ping").result(T) == "pong"
        opened = _sockets() - sockets
        assert [s for s in opened if s[2] == psutil.CONN_LISTEN], opened  # its own server
        streams = {laddr for laddr, raddr, _ in opened if raddr and raddr.port == tree_port}
        assert streams, opened
    assert set(threading.enumerate()) == threads
    assert _sockets() <= sockets

    def tree_sees_them_end() -> bool:
        theirs = psutil.Process(tree.proc.pid).net_connections("tcp")
        return not [s for s in theirs if s.raddr and s.raddr in streams]

    wait_for(tree_sees_them_end, T, "the tree to close its side of the client's streams")
    with pytest.raises(RuntimeError, match="not open"):
        c.send("arbiter", "ping")


def test_a_client_beside_an_arbiter(tree: Tree) -> None:
    with running_arbiter() as arb:
        with (
            connect(tree.address, secret=TREE_SECRET) as far,
            connect(arb.address) as near,  # the secret of $ACTORGRPC_SECRET
        ):
            assert far.info().result(T)["actor"]["aid"] == tree.aid
            assert near.info().result(T)["actor"]["aid"] == arb.aid
            # Plain code's send and spawn still mean this process's tree.
            assert send("arbiter", "info").result(T)["actor"]["aid"] == arb.aid
            local = spawn(concurrency="thread").result(SPAWN_T)
            assert local.aid in {a["aid"] for a in near.actors().result(T)}
            assert local.aid not in {a["aid"] for a in far.actors().result(T)}
            assert near.send(local, "ping").result(T) == "pong"
        assert send(local, "ping").result(T) == "pong"
    assert not client_threads()


# -- when it cannot connect ------------------------------------------------------------


def _fails(address: str, **kwargs: Any) -> ActorError:
    """Connecting to ``address`` fails quickly; the error."""
    started = time.monotonic()
    with pytest.raises(ActorError) as caught, connect(address, **kwargs):
        pass
    assert time.monotonic() - started < QUICK
    assert not client_threads()
    return caught.value


def test_a_wrong_secret(tree: Tree) -> None:
    error = _fails(tree.address)  # $ACTORGRPC_SECRET: another tree's
    assert isinstance(error, PermissionDenied)
    assert "wrong secret" in str(error)
    assert "wrong secret" in str(_fails(tree.address, secret="not-the-secret-0123456789"))


def test_nothing_listening() -> None:
    error = _fails(f"127.0.0.1:{free_port()}")
    assert isinstance(error, ActorNotAvailable)
    assert "cannot reach 127.0.0.1:" in str(error)
    # An address that may drop packets: the deadline ends the wait.
    _fails("192.0.2.1:9", timeout=1)


def test_a_tls_tree_reached_without_tls(mutual_tls: dict[str, Any], tree: Tree) -> None:
    ca_only = {"ca": mutual_tls["ca"]}
    with running_arbiter(tls=mutual_tls) as arb:
        address = f"127.0.0.1:{arb.address[1]}"
        assert "speaks mutual TLS and this client does not" in str(_fails(address))
        assert "client certificate" in str(_fails(address, tls=ca_only))
        with connect(address, tls=mutual_tls) as c:
            assert c.send("arbiter", "ping").result(T) == "pong"
    with running_arbiter(tls={**mutual_tls, "mutual": False}) as arb:
        address = f"127.0.0.1:{arb.address[1]}"
        assert "speaks TLS and this client does not" in str(_fails(address))
        with connect(address, tls=ca_only) as c:
            assert c.send("arbiter", "ping").result(T) == "pong"
    # And the other way round: TLS to a plaintext tree.
    line = str(_fails(tree.address, secret=TREE_SECRET, tls=ca_only))
    assert "does not speak TLS" in line


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="host:port"):
        connect("nonsense")
    with pytest.raises(ValueError, match="timeout"):
        connect("127.0.0.1:1", timeout=0)
    with pytest.raises(ValueError, match="'ca'"):
        connect("127.0.0.1:1", tls={})
    with pytest.raises(RuntimeError, match="not open"):
        connect("127.0.0.1:1").send("arbiter", "ping")


def test_no_secret_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACTORGRPC_SECRET")
    with pytest.raises(ValueError, match="ACTORGRPC_SECRET"):
        connect("127.0.0.1:1")


# -- async with arbiter() ------------------------------------------------------------


def test_async_with_arbiter() -> None:
    async def main() -> None:
        arb = arbiter()
        meanwhile = Meanwhile(lambda: arb.running)
        async with arb:
            assert await meanwhile.done() == [False]  # the loop ran while it started
            assert arb.running
            helper = await spawn(concurrency="thread")
            assert await send(helper, "echo", "in a coroutine") == "in a coroutine"
            worker = await spawn()
            assert await send(worker, "ping") == "pong"
        assert arb.finished

    asyncio.run(main())
    assert not [t for t in threading.enumerate() if t.name == "actorgrpc-arbiter"]
