"""The ``actorgrpc`` command line, run as a real subprocess against live arbiters."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import psutil
import pytest

from actorgrpc import Arbiter, send, spawn
from actorgrpc.core.proxy import format_address
from actorgrpc.testing import running_arbiter, wait_for

TESTS = Path(__file__).resolve().parent
#: Generous: two cores shared with other test runs.
CLI_TIMEOUT = 60.0
ANNOUNCE = re.compile(r"^arbiter (\S+) listening on (\S+):(\d+)$")


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m actorgrpc ARGS`` to completion (killed and reaped on timeout)."""
    return subprocess.run(
        [sys.executable, "-m", "actorgrpc", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        cwd=cwd,
    )


def ok(*args: str, cwd: Path | None = None) -> str:
    """Run the CLI, expect success and a quiet stderr; its stdout."""
    done = cli(*args, cwd=cwd)
    assert done.returncode == 0, f"actorgrpc {args} exited {done.returncode}: {done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def ok_json(*args: str) -> Any:
    return json.loads(ok(*args))


def fails(*args: str, code: int | None = None, cwd: Path | None = None) -> str:
    """Run the CLI, expect a non-zero exit with one line on stderr, no traceback; that line."""
    done = cli(*args, cwd=cwd)
    assert done.returncode != 0, f"actorgrpc {args} succeeded: {done.stdout}"
    if code is not None:
        assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"actorgrpc {args[0]}: error: "), lines[0]
    assert done.stdout == ""
    return lines[0]


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ps_rows(text: str) -> dict[str, list[str]]:
    """``actorgrpc ps`` output: the header's columns must be there; rows by aid."""
    header, *rows = text.strip().splitlines()
    assert header.split() == [
        "AID",
        "NAME",
        "KIND",
        "LANGUAGE",
        "PID",
        "STATE",
        "ADDRESS",
        "UPTIME",
        "MEMORY",
        "COMMANDS",
    ]
    return {row.split()[0]: row.split() for row in rows}


def gone(procs: list[psutil.Process]) -> bool:
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def test_cli_reads_the_error_trailer_the_server_writes() -> None:
    from actorgrpc import cli
    from actorgrpc.remote import status

    assert cli.ERROR_METADATA_KEY == status.ERROR_METADATA_KEY


# -- help --------------------------------------------------------------------------


def test_help_of_every_subcommand() -> None:
    expected = {
        (): ["run", "ps", "info", "send", "ping"],
        ("run",): ["module:function", "--host", "--port"],
        ("ps",): ["ADDRESS", "--timeout"],
        ("info",): ["ADDRESS", "TARGET"],
        ("send",): ["ADDRESS", "TARGET", "ACTION", "JSON", "--kw KEY=JSON"],
        ("ping",): ["ADDRESS", "TARGET"],
    }
    for sub, words in expected.items():
        out = ok(*sub, "--help")
        assert out.startswith(f"usage: actorgrpc {' '.join(sub)}".rstrip()), out
        for word in words:
            assert word in out, (sub, word, out)


# -- against the arb fixture -------------------------------------------------------


def test_ping(arb: Arbiter) -> None:
    helper = spawn(name="cli-pinged", concurrency="thread").result(10)
    assert ok("ping", format_address(arb.address)) == "pong\n"
    assert ok("ping", format_address(arb.address), "cli-pinged") == "pong\n"
    assert ok("ping", format_address(arb.address), helper.aid, "--timeout", "30") == "pong\n"


def test_ps_info_and_send_with_actors(arb: Arbiter) -> None:
    proc = spawn(name="cli-proc").result(30)
    thread = spawn(name="cli-thread", concurrency="thread").result(10)
    proc_pid = send(proc, "info").result(10)["actor"]["pid"]
    assert proc_pid != os.getpid()
    addr = format_address(arb.address)

    rows = ps_rows(ok("ps", addr))
    assert set(rows) == {arb.aid, proc.aid, thread.aid}
    assert rows[arb.aid][:7] == [
        arb.aid,
        "arbiter",
        "arbiter",
        "python",
        str(os.getpid()),
        "running",
        addr,
    ]
    assert rows[proc.aid][:7] == [
        proc.aid,
        "cli-proc",
        "process",
        "python",
        str(proc_pid),
        "running",
        f"{proc.address[0]}:{proc.address[1]}",
    ]
    assert rows[thread.aid][:7] == [
        thread.aid,
        "cli-thread",
        "thread",
        "python",
        str(os.getpid()),
        "running",
        addr,
    ]
    assert rows[arb.aid][-2] == "MiB", rows[arb.aid]  # memory of the arbiter's process
    for row in rows.values():
        assert row[-1].isdigit(), row  # commands handled

    tree = ok_json("info", addr)
    by_aid = {a["aid"]: a for a in tree["actors"]}
    assert set(by_aid) == {arb.aid, proc.aid, thread.aid}
    assert "terminated" in tree
    summary = by_aid[proc.aid]
    assert (summary["name"], summary["kind"], summary["pid"]) == ("cli-proc", "process", proc_pid)
    assert summary["info_state"] == "running"
    assert summary["info"]["actor"]["aid"] == proc.aid
    assert summary["info"]["actor"]["pid"] == proc_pid
    assert by_aid[arb.aid]["info"]["actor"]["name"] == "arbiter"

    info = ok_json("info", addr, "cli-proc")
    assert info["actor"]["aid"] == proc.aid
    assert info["actor"]["pid"] == proc_pid
    assert info["actor"]["is_process"] is True
    assert "system" in info

    assert ok_json("send", addr, proc.aid, "echo", "--kw", 'message={"a": [1, null]}') == {
        "a": [1, None]
    }
    assert ok_json("send", addr, "cli-thread", "echo", '"hi"') == "hi"
    # A process actor's own node has a Mailbox but no Supervisor.
    line = fails("ps", f"{proc.address[0]}:{proc.address[1]}", code=1)
    assert "does not serve" in line


def test_send_values(arb: Arbiter) -> None:
    addr = format_address(arb.address)
    payload = [1, -2.5, "x é", None, True, {"k": [1, {"n": None}]}, [], 2**70]
    assert ok_json("send", addr, "arbiter", "echo", json.dumps(payload)) == payload
    assert ok_json("send", addr, "arbiter", "echo", "-5") == -5
    assert ok_json("send", addr, "arbiter", "echo", "--kw", "message=false") is False
    # An ActorProxy in a reply prints as {aid, name, address}.
    ref = ok_json(
        "send",
        addr,
        "arbiter",
        "spawn",
        "--kw",
        'name="cli-spawned"',
        "--kw",
        'concurrency="thread"',
    )
    assert set(ref) == {"aid", "name", "address"}
    assert ref["name"] == "cli-spawned"
    assert ref["address"] == addr  # a thread actor lives in the arbiter's process
    assert send("cli-spawned", "ping").result(10) == "pong"
    assert send(ref["aid"], "ping").result(10) == "pong"


def test_errors(arb: Arbiter) -> None:
    addr = format_address(arb.address)
    # Nothing listens there.
    nobody = f"127.0.0.1:{free_port()}"
    assert "cannot reach 127.0.0.1:" in fails("ping", nobody, code=1)
    assert "cannot reach" in fails("ps", nobody, code=1)
    # Malformed addresses.
    assert "bad ADDRESS" in fails("ping", "nonsense", code=2)
    assert "bad ADDRESS" in fails("info", "127.0.0.1:http", code=2)
    assert "out of range" in fails("send", "127.0.0.1:70000", "arbiter", "ping", code=2)
    # No such actor: NOT_FOUND.
    line = fails("send", addr, "cli-ghost", "ping", code=1)
    assert "NOT_FOUND" in line and "cli-ghost" in line
    assert "NOT_FOUND" in fails("info", addr, "cli-ghost", code=1)
    # An actor that ended: UNAVAILABLE, with how it ended (not "cannot reach").
    dead = spawn(name="cli-dead", concurrency="thread").result(10)
    assert send(dead, "stop").result(10) is None
    wait_for(lambda: arb.get_actor(dead.aid) is None, 30, "the stopped actor to be gone")
    line = fails("send", addr, "cli-dead", "ping", code=1)
    assert "UNAVAILABLE" in line and f"cli-dead ({dead.aid}) ended" in line, line
    # No such command: UNIMPLEMENTED.
    line = fails("send", addr, "arbiter", "cli_no_such_command", code=1)
    assert "UNIMPLEMENTED" in line and "cli_no_such_command" in line
    # The command raised: the remote type and message.
    line = fails("send", addr, "arbiter", "echo", "1", "2", "3", code=1)
    assert "command 'echo' failed on 'arbiter': TypeError:" in line
    assert "positional argument" in line
    # Arguments that are not JSON.
    assert "argument 2 is not valid JSON" in fails(
        "send", addr, "arbiter", "echo", "1", "hello", code=2
    )
    assert "KEY=JSON" in fails("send", addr, "arbiter", "echo", "--kw", "message", code=2)
    assert "--kw message is not valid JSON" in fails(
        "send", addr, "arbiter", "echo", "--kw", "message={", code=2
    )


def test_a_wrong_secret(arb: Arbiter) -> None:
    wrong = ("--secret", "not-the-secret-0123456789")
    line = fails("ping", format_address(arb.address), *wrong, code=1)
    assert "refused this client: wrong secret" in line, line


def test_a_tls_tree_says_it_speaks_tls(mutual_tls: dict[str, Any]) -> None:
    ca, cert, key = (str(mutual_tls[k]) for k in ("ca", "cert", "key"))
    with running_arbiter(tls=mutual_tls) as arb:
        addr = format_address(arb.address)
        # ping goes through connect(), send and info through a channel of their own.
        for args in (("ping", addr), ("send", addr, "arbiter", "ping")):
            line = fails(*args, code=1)
            assert "speaks mutual TLS and this client does not" in line, line
        line = fails("info", addr, "--cacert", ca, code=1)
        assert "asks for a client certificate" in line, line
        assert ok("ping", addr, "--cacert", ca, "--cert", cert, "--key", key) == "pong\n"
    with running_arbiter(tls={**mutual_tls, "mutual": False}) as arb:
        addr = format_address(arb.address)
        assert "speaks TLS and this client does not" in fails("ps", addr, code=1)
        assert ok_json("send", addr, "arbiter", "echo", '"tls"', "--cacert", ca) == "tls"


def test_an_unknown_command_is_told_with_the_closest_known_one(arb: Arbiter) -> None:
    actor = spawn().result(30)  # a process actor: its answer crosses the wire twice
    line = fails("send", format_address(arb.address), actor.aid, "pnig", code=1)
    assert "UNIMPLEMENTED" in line and "unknown command 'pnig': did you mean 'ping'?" in line


# -- actorgrpc run -------------------------------------------------------------------


class Run:
    """A running ``actorgrpc run`` subprocess and what it announced."""

    def __init__(
        self,
        proc: subprocess.Popen[str],
        stderr: IO[str],
        pump: threading.Thread,
        aid: str,
        address: str,
    ) -> None:
        self.proc = proc
        self.stderr = stderr
        self.pump = pump
        self.aid = aid
        self.address = address

    def family(self) -> list[psutil.Process]:
        """The process and every descendant it has now."""
        me = psutil.Process(self.proc.pid)
        return [me, *me.children(recursive=True)]

    def stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


@pytest.fixture
def run_cli() -> Iterator[Callable[..., Run]]:
    """Start ``actorgrpc run ARGS`` and wait for its address line; reaped after the test."""
    started: list[tuple[subprocess.Popen[str], IO[str], threading.Thread]] = []

    def start(*args: str, cwd: Path | None = None) -> Run:
        err = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed at teardown
        proc = subprocess.Popen(
            [sys.executable, "-m", "actorgrpc", "run", *args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=cwd,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None
        pump = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
        pump.start()
        started.append((proc, err, pump))
        deadline = time.monotonic() + CLI_TIMEOUT
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"actorgrpc run {args}: no address line in {CLI_TIMEOUT}s"
                ) from None
            if line is None:
                err.seek(0)
                raise AssertionError(
                    f"actorgrpc run {args} exited {proc.wait(10)} before announcing: {err.read()}"
                )
            match = ANNOUNCE.match(line.rstrip("\n"))
            if match:
                aid, host, port = match.groups()
                return Run(proc, err, pump, aid, f"{host}:{port}")

    yield start

    for proc, err, pump in started:
        if proc.poll() is None:  # the test failed half-way: stop it, and what it spawned
            family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(True)]
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                for p in family:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        p.kill()
                proc.wait(10)
            # mypy cannot infer a lambda whose default binds the loop variable (B023).
            wait_for(lambda family=family: gone(family), 30, "actorgrpc run's processes to end")  # type: ignore[misc]
        pump.join(10)
        assert proc.stdout is not None
        proc.stdout.close()
        err.close()


def test_run_stops_cleanly_on_sigterm(run_cli: Callable[..., Run]) -> None:
    run = run_cli()
    assert run.address.startswith("127.0.0.1:")
    assert ok("ping", run.address) == "pong\n"
    rows = ps_rows(ok("ps", run.address))
    assert list(rows) == [run.aid]
    assert rows[run.aid][4] == str(run.proc.pid)
    family = run.family()
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(CLI_TIMEOUT) == 0, run.stderr_text()
    wait_for(lambda: gone(family), 30, "actorgrpc run's processes to end")
    assert "Traceback" not in run.stderr_text()
    assert "cannot reach" in fails("ping", run.address, code=1)


def test_run_with_a_start_hook(run_cli: Callable[..., Run]) -> None:
    # tests/cli/ is the current directory: the CLI imports cli_hook from there, and
    # so does the process actor the hook spawns (for the cli_greet command).
    run = run_cli("cli_hook:setup", cwd=TESTS)
    rows = ps_rows(ok("ps", run.address))
    hooked = [row for row in rows.values() if row[1] == "hooked"]
    assert len(hooked) == 1 and hooked[0][2] == "process", rows
    hooked_pid = int(hooked[0][4])
    family = run.family()
    assert hooked_pid in [p.pid for p in family]
    assert ok_json("send", run.address, "hooked", "cli_greet", '"cli"') == "hello cli from hooked"
    # Values JSON has no form for: bytes, tuples, actor references, big ints, pickles.
    assert ok_json("send", run.address, "arbiter", "cli_values") == {
        "bytes": base64.b64encode(b"\x00\xffhi").decode(),
        "tuple": [1, [2, 3]],
        "proxy": {"aid": run.aid, "name": "arbiter", "address": run.address},
        "big": 2**70,
        "opaque": {"$pickled": "cli_hook.Opaque"},
        "nan": "NaN",
        "inf": "-Infinity",
    }
    run.proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert run.proc.wait(CLI_TIMEOUT) == 0, run.stderr_text()
    wait_for(lambda: gone(family), 30, "actorgrpc run's actors to end")
    assert "Traceback" not in run.stderr_text()


def test_run_refuses_bad_hooks_and_params() -> None:
    assert "has no attribute 'nope'" in fails("run", "cli_hook:nope", cwd=TESTS, code=2)
    assert "is not callable" in fails("run", "cli_hook:NOT_CALLABLE", cwd=TESTS, code=2)
    assert "cannot import 'cli_no_such_module'" in fails("run", "cli_no_such_module:x", code=2)
    assert "module:function" in fails("run", "cli_hook", cwd=TESTS, code=2)
    assert "port" in fails("run", "--port", "70000", code=2)


def test_run_exits_non_zero_when_its_start_hook_fails() -> None:
    done = cli("run", "cli_hook:broken", cwd=TESTS)
    assert done.returncode == 1, done.stderr
    assert "listening" not in done.stdout
    # The runtime logs the hook's traceback; the CLI's own word is the last line.
    assert done.stderr.strip().splitlines()[-1] == (
        "actorgrpc run: error: the arbiter stopped on an error: "
        "RuntimeError: cli_hook.broken failed on purpose"
    )
