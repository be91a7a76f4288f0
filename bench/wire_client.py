"""Plain grpc.aio clients: the loops that time round trips and streams.

The same loops drive the raw gRPC echo reference (bytes, no codec) and an
outside client of actorgrpc (the generated ``Mailbox`` and ``Supervisor``
stubs), so both sides of each ratio are measured the same way. A group that
runs an arbiter cannot also be a grpc.aio client on another event loop of the
same process (design notes, section 1): it runs these loops in a separate
process with ``run_client(tasks)``, which calls ``python -m bench.wire_client``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from actorgrpc.v1 import mailbox_pb2, mailbox_pb2_grpc, supervisor_pb2, supervisor_pb2_grpc

__all__ = [
    "CHANNEL_OPTIONS",
    "SMALL",
    "cold_start",
    "run_client",
    "stream_latency",
    "stream_rate",
    "unary_latency",
]

CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]
#: Reconnect quickly while waiting for a server that is starting.
_EAGER_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 5),
    ("grpc.min_reconnect_backoff_ms", 5),
    ("grpc.max_reconnect_backoff_ms", 20),
]
WARMUP = 20
#: Bytes of the request of the small-message raw gRPC figures.
SMALL = b"x" * 16
ROOT = Path(__file__).resolve().parent.parent
#: Where the tree's secret comes from (set by bench.runner for each group).
SECRET_ENV = "ACTORGRPC_SECRET"

Make = Callable[[int], Any]
Call = Callable[[Any], Awaitable[Any]]
OpenStream = Callable[[], Any]


def auth() -> tuple[tuple[str, str], ...]:
    """The call metadata carrying the tree's secret (none when no secret is set)."""
    secret = os.environ.get(SECRET_ENV)
    return (("authorization", f"Bearer {secret}"),) if secret else ()


def _one(_: Any) -> int:
    return 1


async def unary_latency(call: Call, make: Make, n: int, seconds: float) -> list[float]:
    """Seconds per call of ``n`` calls, one at a time (at most ``seconds`` in all)."""
    for i in range(WARMUP):
        await call(make(i))
    out: list[float] = []
    deadline = time.perf_counter() + seconds
    for i in range(n):
        t = time.perf_counter()
        await call(make(i))
        out.append(time.perf_counter() - t)
        if t > deadline:
            break
    return out


async def stream_latency(
    open_stream: OpenStream, make: Make, n: int, seconds: float
) -> list[float]:
    """Seconds per ping-pong on one long-lived stream: write one, read one."""
    call = open_stream()
    try:
        for i in range(WARMUP):
            await call.write(make(i))
            await call.read()
        out: list[float] = []
        deadline = time.perf_counter() + seconds
        for i in range(n):
            t = time.perf_counter()
            await call.write(make(i))
            reply = await call.read()
            out.append(time.perf_counter() - t)
            if reply is grpc.aio.EOF:
                raise RuntimeError("the server ended the stream")
            if t > deadline:
                break
        await _finish(call)
        return out
    finally:
        call.cancel()


async def stream_rate(
    open_stream: OpenStream,
    make: Make,
    depth: int,
    seconds: float,
    replies_in: Callable[[Any], int] = _one,
    max_count: int = 10_000_000,
) -> dict[str, float]:
    """Replies per second on one stream with ``depth`` requests in flight.

    One request per message; ``replies_in`` counts the replies a message
    carries (actorgrpc batches them).
    """
    call = open_stream()
    window = asyncio.Semaphore(depth)
    state = {"sent": 0, "done": 0, "last": 0.0}
    t0 = time.perf_counter()
    stop_at = t0 + seconds

    async def writer() -> None:
        i = 0
        while time.perf_counter() < stop_at and i < max_count:
            await window.acquire()
            await call.write(make(i))
            i += 1
            state["sent"] = i
        await call.done_writing()

    async def reader() -> None:
        while True:
            message = await call.read()
            if message is grpc.aio.EOF:
                return
            k = replies_in(message)
            state["done"] += k
            state["last"] = time.perf_counter()
            for _ in range(k):
                window.release()

    try:
        await asyncio.wait_for(asyncio.gather(writer(), reader()), seconds + 30)
    finally:
        call.cancel()
    if state["done"] != state["sent"]:
        raise RuntimeError(f"sent {state['sent']} requests, got {state['done']} replies")
    return {"count": state["done"], "seconds": state["last"] - t0}


async def _finish(call: Any) -> None:
    with contextlib.suppress(asyncio.TimeoutError, grpc.aio.AioRpcError):
        await call.done_writing()
        await asyncio.wait_for(_drain(call), 5)


async def _drain(call: Any) -> None:
    while await call.read() is not grpc.aio.EOF:
        pass


# -- cold starts ----------------------------------------------------------------


async def cold_start(cmd: list[str], port: int, probe: str, limit: float = 20.0) -> float:
    """Seconds from starting ``cmd`` until its server on ``port`` answers ``probe``.

    ``probe`` is ``'echo'`` (the raw echo service) or ``'mailbox'`` (Mailbox.Send
    ping to the arbiter). The server is stopped afterwards.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=_EAGER_OPTIONS)
    try:
        if probe == "echo":
            echo = channel.unary_unary("/bench.Echo/Unary")

            async def ask() -> None:
                await echo(b"x", timeout=0.5, wait_for_ready=True)

        else:
            send = mailbox_pb2_grpc.MailboxStub(channel).Send
            ping = mailbox_pb2.Envelope(target="arbiter", action="ping")

            async def ask() -> None:
                await send(ping, timeout=0.5, wait_for_ready=True, metadata=auth())

        while True:
            try:
                await ask()
                return time.perf_counter() - t0
            except grpc.aio.AioRpcError:
                if time.perf_counter() - t0 > limit or proc.poll() is not None:
                    raise RuntimeError(f"{cmd} did not answer within {limit}s") from None
                await asyncio.sleep(0.002)
    finally:
        await channel.close()
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# -- tasks against actorgrpc (the client process) ------------------------------------


def _envelope(target: str, action: str, payload: bytes | None = None) -> Make:
    env = mailbox_pb2.Envelope(kind=mailbox_pb2.ENVELOPE_KIND_REQUEST, target=target, action=action)
    if payload is not None:
        env.args.add().bytes_value = payload

    def make(i: int) -> mailbox_pb2.Envelope:
        env.id = i + 1
        return env

    return make


def _small(_: int) -> bytes:
    return SMALL


def _replies_in(message: mailbox_pb2.Envelope) -> int:
    if message.kind == mailbox_pb2.ENVELOPE_KIND_BATCH:
        return len(message.batch)
    return 1


async def _task(task: dict[str, Any]) -> dict[str, Any]:
    op = task["op"]
    if op == "cold_start":
        return {"seconds": await cold_start(task["cmd"], task["port"], task["probe"])}
    channel = grpc.aio.insecure_channel(task["address"], options=CHANNEL_OPTIONS)
    try:
        if op == "info":
            stub = supervisor_pb2_grpc.SupervisorStub(channel)
            samples, actors = [], 0
            deadline = time.perf_counter() + task["seconds"]
            for _ in range(task["n"]):
                t = time.perf_counter()
                response = await stub.Info(
                    supervisor_pb2.InfoRequest(), timeout=60, metadata=auth()
                )
                samples.append(time.perf_counter() - t)
                actors = len(response.actors)
                if t > deadline:
                    break
            return {"samples": samples, "actors": actors}
        if op == "raw_stream_latency":  # the echo service of bench.raw_grpc
            stream = channel.stream_stream("/bench.Echo/Stream")
            return {"samples": await stream_latency(stream, _small, task["n"], task["seconds"])}
        mailbox = mailbox_pb2_grpc.MailboxStub(channel)
        make = _envelope(task["target"], task.get("action", "ping"))
        metadata = auth()

        def send(env: mailbox_pb2.Envelope) -> Any:
            return mailbox.Send(env, metadata=metadata)

        def stream() -> Any:
            return mailbox.Stream(metadata=metadata)

        if op == "unary_latency":
            return {"samples": await unary_latency(send, make, task["n"], task["seconds"])}
        if op == "stream_latency":
            return {"samples": await stream_latency(stream, make, task["n"], task["seconds"])}
        if op == "stream_rate":
            return await stream_rate(
                stream, make, task["depth"], task["seconds"], replies_in=_replies_in
            )
        raise ValueError(f"unknown client task {op!r}")
    finally:
        await channel.close()


async def _run_tasks(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for task in tasks:
        try:
            out.append(await _task(task))
        except Exception as exc:
            out.append({"error": f"{type(exc).__name__}: {exc}"})
    return out


def run_client(tasks: list[dict[str, Any]], limit: float) -> list[dict[str, Any]]:
    """Run client tasks in a separate process; one result dict per task.

    A task that failed has an ``error`` key; the whole client is stopped after
    ``limit`` seconds.
    """
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        out = Path(tmp) / "out.json"
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.wire_client", json.dumps(tasks), str(out)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            proc.wait(limit)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
            raise TimeoutError(f"the client process did not finish within {limit:.0f}s") from None
        if not out.exists():
            raise RuntimeError(f"the client process failed (exit code {proc.returncode})")
        results: list[dict[str, Any]] = json.loads(out.read_text())
        return results


def main(argv: list[str]) -> int:
    """``python -m bench.wire_client TASKS_JSON OUT``."""
    tasks, out = json.loads(argv[0]), Path(argv[1])
    results = asyncio.run(_run_tasks(tasks))
    out.write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
