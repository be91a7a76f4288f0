"""Node.js through the protos alone: clients/node as a client and as an actor.

The node programs (clients/node/examples) run as real subprocesses against a
live arbiter on loopback; they know nothing of Python, only protos/.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from actorgrpc.v1 import supervisor_pb2, supervisor_pb2_grpc

from actorgrpc import (
    ACTOR_ACTION_TIMEOUT,
    ACTOR_STATES,
    MONITOR_TASK_PERIOD,
    ActorNotAvailable,
    ActorNotFound,
    ActorProxy,
    CommandNotFound,
    arbiter,
    command,
    send,
    spawn,
)
from actorgrpc.core.proxy import format_address
from actorgrpc.remote import wire
from actorgrpc.testing import auth_metadata, wait_for

NODE_DIR = Path(__file__).resolve().parents[2] / "clients" / "node"
NODE = shutil.which("node")
START_TIMEOUT = 60  # seconds: two cores shared with other test runs


# -- commands the Python actors of these tests answer -------------------------


@command()
def node_describe(request, *args, **kwargs):
    """How the arguments arrived in Python, what they were, and Python-only values back."""
    if "fail" in kwargs:
        raise ValueError(kwargs["fail"])
    return {
        "types": [type(a).__name__ for a in args],
        "reprs": [repr(a) for a in args if not isinstance(a, ActorProxy)],
        "refs": [a.aid for a in args if isinstance(a, ActorProxy)],
        "kwargs": {k: type(v).__name__ for k, v in kwargs.items()},
        "caller": request.caller.aid if request.caller is not None else None,
        "echo": list(args),
        "extras": {
            "tuple": (1, 2),
            "set": {1, 2},  # no typed form: pickled, opaque to JavaScript
            "big": 2**80,
            "float": 3.5,
            "proxy": request.actor.proxy,
        },
    }


@command()
async def node_relay(request, target, action, *args):
    """Send on from inside an actor and answer with the reply."""
    return await send(target, action, *args)


# -- node processes -------------------------------------------------------------


def tree_secret(arb) -> str | None:
    """The tree's shared secret, when the arbiter has one (sent as a bearer token)."""
    for owner in (arb, getattr(arb, "transport", None)):
        for attr in ("secret", "_secret"):
            value = getattr(owner, attr, None)
            if isinstance(value, str) and value:
                return value
    return None


@pytest.fixture(scope="session")
def node_dir() -> Path:
    """clients/node with its dependencies installed (npm ci when missing)."""
    if NODE is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        npm = shutil.which("npm")
        assert npm is not None, "npm is needed to install clients/node"
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=600
        )
    return NODE_DIR


class Program:
    """A subprocess, its stdout read into lines by a thread, its stderr into a file."""

    def __init__(
        self, argv: list[str], cwd: Path, stderr_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.stderr_path = stderr_path
        self._stderr = stderr_path.open("wb")
        self.popen = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def first_line(self, timeout: float = START_TIMEOUT) -> str:
        """The first line it prints; fails if it exits first."""
        wait_for(
            lambda: self.lines or self.popen.poll() is not None,
            timeout=timeout,
            what=f"a line from {self.popen.args!r}",
        )
        assert self.lines, (
            f"{self.popen.args!r} exited with {self.popen.returncode}: {self.stderr()}"
        )
        return self.lines[0]

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def end(self) -> None:
        """Stop it (SIGTERM, then SIGKILL) and reap it."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(15)
        self._reader.join(5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self._stderr.close()


class NodeActor(Program):
    """examples/actor.js, registered with the arbiter."""

    aid: str
    name: str
    address: str


class Node:
    """Starts node programs for a test and ends them all after it."""

    def __init__(self, cwd: Path, tmp: Path, arbiter_address: str, secret: str | None) -> None:
        self.cwd = cwd
        self.tmp = tmp
        self.arbiter_address = arbiter_address
        self.env = dict(os.environ)
        if secret:
            self.env["ACTORGRPC_SECRET"] = secret
        self.processes: list[Program] = []

    def actor(self, name: str) -> NodeActor:
        """Start examples/actor.js and wait until it has registered."""
        assert NODE is not None  # node_dir skipped the test otherwise
        proc = NodeActor(
            [NODE, "examples/actor.js", "--arbiter", self.arbiter_address, "--name", name],
            self.cwd,
            self.tmp / f"actor-{name}-{len(self.processes)}.stderr",
            self.env,
        )
        self.processes.append(proc)
        ref = json.loads(proc.first_line())
        proc.aid, proc.name, proc.address = ref["aid"], ref["name"], ref["address"]
        assert proc.name == name
        return proc

    def client(self, *targets: str) -> list[dict[str, Any]]:
        """Run examples/client.js against the arbiter; its JSON lines."""
        assert NODE is not None  # node_dir skipped the test otherwise
        argv = [NODE, "examples/client.js", "--command", "node_describe", self.arbiter_address]
        done = subprocess.run(
            [*argv, *targets],
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
        )
        assert done.returncode == 0, f"client.js failed ({done.returncode}): {done.stderr}"
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    def end_all(self) -> None:
        for proc in self.processes:
            proc.end()
        left = [p.pid for p in self.processes if p.popen.poll() is None]
        assert not left, f"node processes left behind: {left}"


@pytest.fixture
def node(arb, node_dir: Path, tmp_path: Path) -> Iterator[Node]:
    """Node programs against the test's arbiter, all ended and reaped after the test."""
    nodes = Node(node_dir, tmp_path, format_address(arb.address), tree_secret(arb))
    try:
        yield nodes
    finally:
        nodes.end_all()


def by_op(lines: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(line["target"], line["op"]): line for line in lines}


def result(lines: dict[tuple[str, str], dict[str, Any]], target: str, op: str) -> Any:
    line = lines[(target, op)]
    assert "error" not in line, f"{target} {op}: {line['error']}"
    return line["result"]


# -- Node.js as a client ----------------------------------------------------------


def test_node_client_talks_to_python_actors(arb, node) -> None:
    proc = spawn(name="pyproc").result(START_TIMEOUT)
    thread = spawn(name="pythread", concurrency="thread").result(START_TIMEOUT)
    lines = by_op(node.client("pyproc", "pythread"))

    for actor, concurrency in ((proc, "process"), (thread, "thread")):
        target = actor.name
        assert target is not None  # spawned with a name
        assert result(lines, target, "ping") == "pong"
        assert result(lines, target, "echo") == {"text": "hi", "n": [1, 2.5, None]}
        info = result(lines, target, "info")
        assert (info["aid"], info["name"]) == (actor.aid, target)
        assert (info["concurrency"], info["language"]) == (concurrency, "python")

        described = result(lines, target, "describe")
        # JavaScript -> Python: every typed kind arrives as its Python type.
        assert described["types"] == [
            "NoneType", "bool", "int", "int", "float", "float", "str", "bytes",
            "list", "tuple", "dict", "int", "int", "int", "ActorProxy",
        ]  # fmt: skip
        assert [ast.literal_eval(r) for r in described["reprs"]] == [
            None, True, 42, -7, 1.5, 2.0, "héllo ✓", b"\x00\x01\xff",
            [1, "two", [3]], (1, "x"), {"a": 1, "b": {"c": [True]}}, 2**62, -(2**63), 2**100,
        ]  # fmt: skip
        assert described["refs"] == [arb.aid]
        assert described["kwargs"] == {"flag": "bool", "ratio": "float", "ref": "ActorProxy"}
        assert described["caller"] is None  # an outside client sends no sender
        # Python -> JavaScript: and back again.
        assert described["js_types"] == [
            "null", "boolean", "number", "number", "number", "number", "string", "Buffer",
            "Array", "Array", "object", "bigint", "bigint", "bigint", "ActorRef",
        ]  # fmt: skip
        echo = described["echo"]
        assert echo[:7] == [None, True, 42, -7, 1.5, 2, "héllo ✓"]
        assert echo[7] == {"$bytes": "AAH/"}
        assert echo[8:11] == [[1, "two", [3]], [1, "x"], {"a": 1, "b": {"c": [True]}}]
        assert echo[11:14] == [
            {"$bigint": str(2**62)},
            {"$bigint": str(-(2**63))},
            {"$bigint": str(2**100)},
        ]
        assert echo[14]["$actor"]["aid"] == arb.aid
        assert described["js_extras"] == {
            "tuple": "Array",
            "set": "Pickled",
            "big": "bigint",
            "float": "number",
            "proxy": "ActorRef",
        }
        extras = described["extras"]
        assert extras["tuple"] == [1, 2]
        assert extras["set"] == {"$pickled": "builtins.set"}
        assert extras["big"] == {"$bigint": str(2**80)}
        assert extras["float"] == 3.5
        assert extras["proxy"]["$actor"] == {
            "aid": actor.aid, "name": target, "address": format_address(actor.address),
        }  # fmt: skip

    tree = {a["name"]: a for a in result(lines, "arbiter", "tree")}
    assert tree["arbiter"]["kind"] == "arbiter"
    assert (tree["pyproc"]["kind"], tree["pyproc"]["language"]) == ("process", "python")
    assert (tree["pythread"]["kind"], tree["pythread"]["state"]) == ("thread", ACTOR_STATES.RUN)

    # Failures: the gRPC status, and the actorgrpc Error from the trailer.
    missing = lines[("no-such-actor", "ping")]["error"]
    assert (missing["grpc_code"], missing["status"]) == (
        grpc.StatusCode.NOT_FOUND.value[0],
        "NOT_FOUND",
    )
    assert (missing["code"], missing["type"]) == (
        "ERROR_CODE_NO_SUCH_ACTOR",
        "actorgrpc.ActorNotFound",
    )
    unknown = lines[("pyproc", "no_such_command")]["error"]
    assert (unknown["status"], unknown["code"]) == ("UNIMPLEMENTED", "ERROR_CODE_UNKNOWN_COMMAND")
    assert "no_such_command" in unknown["message"]
    failed = lines[("pyproc", "describe_fail")]["error"]
    assert (failed["status"], failed["code"]) == ("UNKNOWN", "ERROR_CODE_COMMAND_FAILED")
    assert (failed["type"], failed["message"]) == ("ValueError", "on purpose")
    assert "in node_describe" in failed["traceback"]


# -- Node.js as an actor ----------------------------------------------------------


def test_node_actor_joins_the_tree(arb, node) -> None:
    js = node.actor("jsactor")
    monitor = arb.managed_actors[js.aid]
    assert (monitor.kind, monitor.language, monitor.state) == ("external", "node", ACTOR_STATES.RUN)
    assert monitor.pid == js.pid
    assert format_address(monitor.address) == js.address

    listed = {a["aid"]: a for a in arb.info()["actors"]}
    entry = listed[js.aid]
    assert (entry["name"], entry["language"], entry["kind"]) == ("jsactor", "node", "external")
    assert entry["info"]["actor"]["concurrency"] == "external"
    assert entry["info"]["actor"]["language"] == "node"
    assert entry["info"]["system"]["memory_rss"] > 0

    # The same through the wire: Supervisor.Info and Lookup.
    with grpc.insecure_channel(format_address(arb.address)) as channel:
        stub = supervisor_pb2_grpc.SupervisorStub(channel)
        tree = stub.Info(
            supervisor_pb2.InfoRequest(), timeout=30, metadata=auth_metadata(tree_secret(arb))
        )
        summary = {s.ref.aid: s for s in tree.actors}[js.aid]
        assert (summary.language, summary.kind, summary.ref.name) == ("node", "external", "jsactor")
        assert (summary.pid, summary.state, summary.info_state) == (
            js.pid,
            ACTOR_STATES.RUN,
            "running",
        )
        assert summary.memory_rss > 0
        assert summary.supervisor == arb.aid
        assert wire.decode(summary.info)["actor"]["aid"] == js.aid
        found = stub.Lookup(
            supervisor_pb2.LookupRequest(target="jsactor"),
            timeout=30,
            metadata=auth_metadata(tree_secret(arb)),
        )
        assert (found.ref.aid, found.ref.address) == (js.aid, js.address)

    # Its notifies keep coming: the info it reports moves on.
    handled = entry["info"]["actor"]["commands_handled"]
    assert send(js.aid, "ping").result(30) == "pong"
    wait_for(
        lambda: arb.managed_actors[js.aid].info["actor"]["commands_handled"] > handled,
        timeout=30,
        what="a notify reporting the ping",
    )


def test_python_sends_to_node_actor(arb, node) -> None:
    js = node.actor("jsrev")
    assert send(js.aid, "ping").result(30) == "pong"
    assert send("jsrev", "reverse", "abc").result(30) == "cba"
    assert send("jsrev", "echo", message="kw").result(30) == "kw"
    proxy = arb.get_actor(js.aid).proxy
    assert send(proxy, "reverse", "straight to its address").result(30) == "sserdda sti ot thgiarts"

    values = [
        None,
        True,
        7,
        -(2**63),
        2**70,
        1.5,
        "ü",
        b"\x00\xfe",
        [1, [2]],
        {"a": {"b": None}},
        proxy,
    ]
    assert send("jsrev", "echo", values).result(30) == values
    assert send("jsrev", "types", *values, {1}).result(30) == [
        "null", "boolean", "number", "bigint", "bigint", "number", "string", "Buffer",
        "Array", "object", "ActorRef", "Pickled",
    ]  # fmt: skip
    caller = send("jsrev", "whoami").result(30)
    assert isinstance(caller, ActorProxy) and caller.aid == arb.aid

    # Many requests in flight: they travel (and come back) batched on one stream.
    futures = [send(js.aid, "echo", i) for i in range(300)]
    assert [f.result(60) for f in futures] == list(range(300))
    events = send(js.aid, "info").result(30)["events"]
    assert events["batches_received"] >= 1 and events["batches_sent"] >= 1

    with pytest.raises(CommandNotFound):
        send("jsrev", "no_such_command").result(30)
    with pytest.raises(TypeError, match="reverse needs a string"):
        send("jsrev", "reverse", 5).result(30)

    # From inside Python actors: a process and a thread.
    for concurrency in ("process", "thread"):
        relay_actor = spawn(concurrency=concurrency).result(START_TIMEOUT)
        assert (
            send(relay_actor, "node_relay", "jsrev", "reverse", concurrency).result(30)
            == concurrency[::-1]
        )
        assert send(relay_actor, "node_relay", js.aid, "ping").result(30) == "pong"
        seen = send(relay_actor, "node_relay", "jsrev", "whoami").result(30)
        assert seen.aid == relay_actor.aid


def test_node_actor_asks_python_actors(arb, node) -> None:
    proc = spawn(name="pyasked").result(START_TIMEOUT)
    thread = spawn(name="pyasked-thread", concurrency="thread").result(START_TIMEOUT)
    js = node.actor("jsask")
    for target in ("pyasked", thread.aid):
        answer = send("jsask", "ask", target, "node_describe", 1, "x", [2.5]).result(30)
        assert answer["types"] == ["int", "str", "list"]
        assert answer["caller"] == js.aid  # the node actor sends as itself
    assert send("jsask", "ask", "arbiter", "ping").result(30) == "pong"
    assert send("jsask", "ask", proc.aid, "echo", {"k": (1, 2)}).result(30) == {"k": [1, 2]}
    # Errors come back through the node actor with their code.
    with pytest.raises(CommandNotFound):
        send("jsask", "ask", "pyasked", "no_such_command").result(30)
    with pytest.raises(ActorNotFound):
        send("jsask", "ask", "nobody-here", "ping").result(30)
    with pytest.raises(ValueError, match="from node"):
        send("jsask", "ask", "pyasked", "node_describe", fail="from node").result(30)


# -- the node actor's life --------------------------------------------------------


def test_sigkilled_node_actor_is_seen_dead(arb, node) -> None:
    js = node.actor("jskilled")
    assert js.aid in arb.managed_actors
    js.popen.kill()
    killed = time.monotonic()
    js.wait(15)
    wait_for(
        lambda: js.aid not in arb.managed_actors,
        timeout=2 * MONITOR_TASK_PERIOD + 0.5 - (time.monotonic() - killed),
        what="the arbiter to drop the killed node actor",
    )
    record = arb.terminated_actors[js.aid]
    assert (record["name"], record["kind"], record["state"]) == (
        "jskilled",
        "external",
        ACTOR_STATES.TERMINATE,
    )
    assert "presumed dead" in record["how"]  # missed notifies, or its stream broke
    with pytest.raises((ActorNotFound, ActorNotAvailable)):
        send("jskilled", "ping").result(30)


def test_frozen_node_actor_misses_its_notifies_then_leaves(arb, node) -> None:
    js = node.actor("jsfrozen")
    js.popen.send_signal(signal.SIGSTOP)  # its stream stays open: only its notifies stop
    try:
        stopped = time.monotonic()
        wait_for(
            lambda: js.aid not in arb.managed_actors,
            timeout=2 * MONITOR_TASK_PERIOD + 0.5 - (time.monotonic() - stopped),
            what="the arbiter to drop the frozen node actor",
        )
        assert arb.terminated_actors[js.aid]["how"] == "missed its notifies: presumed dead"
    finally:
        js.popen.send_signal(signal.SIGCONT)
    # Thawed, it hears from its next notify that the tree has forgotten it: it leaves.
    assert js.wait(30) == 0


def test_node_actor_stops_on_command_and_on_sigterm(arb, node) -> None:
    by_command = node.actor("jsstop")
    by_signal = node.actor("jsterm")
    assert send("jsstop", "stop").result(30) is True
    assert by_command.wait(30) == 0
    by_signal.popen.send_signal(signal.SIGTERM)
    assert by_signal.wait(30) == 0
    for js in (by_command, by_signal):
        # It said CLOSE before exiting: a clean end, at once.
        record = arb.terminated_actors[js.aid]
        assert (record["state"], record["how"]) == (ACTOR_STATES.CLOSE, "stopped")
        assert js.aid not in arb.managed_actors


def test_arbiter_stop_stops_node_actor(arb, node) -> None:
    js = node.actor("jsorphan")
    started = time.monotonic()
    arb.stop()
    assert js.wait(30) == 0
    assert arb.terminated_actors[js.aid]["how"] == "stopped"
    # The arbiter did not have to wait for a timeout to give up on it.
    assert time.monotonic() - started < ACTOR_ACTION_TIMEOUT


def test_package_lock_is_committed(node_dir: Path) -> None:
    lock = json.loads((node_dir / "package-lock.json").read_text())
    deps = lock["packages"][""]["dependencies"]
    assert set(deps) == {"@grpc/grpc-js", "@grpc/proto-loader"}


SECRET_CLIENT = """
const { Client } = require('./lib');
(async () => {
  const client = new Client(process.argv[1]);
  try {
    console.log(JSON.stringify({ result: await client.send(process.argv[2], 'reverse', ['abc']) }));
  } catch (err) {
    console.log(JSON.stringify({ status: err.status, code: err.error.code }));
  }
  client.close();
})();
"""


def test_node_with_the_tree_secret(node_dir: Path, tmp_path: Path) -> None:
    secret = "node-test-secret-" + "x" * 16
    with arbiter(secret=secret) as tree:
        address = format_address(tree.address)
        nodes = Node(node_dir, tmp_path, address, secret)
        try:
            js = nodes.actor("jssecret")  # its calls carry the secret, and it checks ours
            assert send("jssecret", "reverse", "abc").result(30) == "cba"
            assert send("jssecret", "ask", "arbiter", "ping").result(30) == "pong"

            def client(env_secret: str) -> dict[str, Any]:
                assert NODE is not None  # node_dir skipped the test otherwise
                env = dict(nodes.env, ACTORGRPC_SECRET=env_secret)
                done = subprocess.run(
                    [NODE, "-e", SECRET_CLIENT, address, js.aid],
                    cwd=node_dir,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert done.returncode == 0, done.stderr
                return json.loads(done.stdout)

            assert client(secret) == {"result": "cba"}
            for wrong in ("", "not-the-secret-at-all"):
                assert client(wrong) == {
                    "status": "UNAUTHENTICATED",
                    "code": "ERROR_CODE_PERMISSION_DENIED",
                }
        finally:
            nodes.end_all()


ARBITER_SCRIPT = """
import sys, threading
from actorgrpc import arbiter
from actorgrpc.core.proxy import format_address
with arbiter() as a:
    owners = (a, getattr(a, "transport", None))
    found = [getattr(o, k, None) for o in owners for k in ("secret", "_secret")]
    secret = next((v for v in found if isinstance(v, str) and v), "")
    print(format_address(a.address), secret, flush=True)
    threading.Event().wait()
"""


def test_node_actor_leaves_when_its_arbiter_dies(node_dir: Path, tmp_path: Path) -> None:
    tree = Program([sys.executable, "-c", ARBITER_SCRIPT], node_dir, tmp_path / "arbiter.stderr")
    nodes = None
    try:
        address, _, secret = tree.first_line().strip().partition(" ")
        nodes = Node(node_dir, tmp_path, address, secret or None)
        js = nodes.actor("jsalone")
        tree.popen.kill()
        tree.wait(30)
        # Its notifies fail: it stops by itself after a few periods, cleanly.
        assert js.wait(30) == 0
    finally:
        if nodes is not None:
            nodes.end_all()
        tree.popen.kill()
        tree.end()


TLS_CLIENT = """
const { Client } = require('./lib/client');
const [address, target, ca, cert, key] = process.argv.slice(1);
const tls = cert ? { ca, cert, key } : { ca };
const c = new Client(address, { tls, timeout: 20 });
c.send(target, 'echo', ['over tls'])
  .then((result) => console.log(JSON.stringify({ result })))
  .catch((err) => console.log(JSON.stringify({ status: err.status })))
  .finally(() => c.close());
"""


def test_node_client_over_mutual_tls(node_dir: Path, mutual_tls: dict[str, Any]) -> None:
    tls = paths = mutual_tls
    with arbiter(tls=tls) as tree:
        proxy = spawn(name="tls-echo").result(30)
        address = format_address(tree.address)

        def client(*pems: Path) -> dict[str, Any]:
            assert NODE is not None  # node_dir skipped the test otherwise
            done = subprocess.run(
                [NODE, "-e", TLS_CLIENT, address, proxy.aid, *map(str, pems)],
                cwd=node_dir,
                env=dict(os.environ, ACTORGRPC_SECRET=tree.secret),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            return json.loads(done.stdout)

        assert client(paths["ca"], paths["cert"], paths["key"]) == {"result": "over tls"}
        # Trusting the tree is not enough under mutual TLS: it wants our certificate.
        assert client(paths["ca"]) == {"status": "UNAVAILABLE"}
