"""The raw gRPC reference: a minimal grpc.aio echo service in a separate process.

The service carries bytes with no codec (generic handlers), one message per
request, so it is the floor that any protocol on the same grpcio pays:
``/bench.Echo/Unary`` answers each request, ``/bench.Echo/Stream`` echoes each
message of a bidi stream. ``python -m bench.raw_grpc serve [--port P]`` runs
it, prints ``PORT <n>``, and serves until its stdin closes or SIGTERM.

The group (``run``) measures from this process, a grpc.aio client on one event
loop: unary and bidi ping-pong round trips, stream throughput at each depth,
payload round trips, server start (in process and from a cold interpreter),
and the server's CPU under a paced unary load standing in for notifies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import psutil

from bench.common import Recorder, Sizes, distribution, free_port, payload_label, rate, scalar
from bench.wire_client import (
    CHANNEL_OPTIONS,
    SMALL,
    cold_start,
    stream_latency,
    stream_rate,
    unary_latency,
)

__all__ = ["echo_process", "echo_server", "run"]

#: The info dictionary an actor notifies is about this big.
NOTIFY_BYTES = 1500


async def _unary(request: bytes, context: Any) -> bytes:
    return request


async def _stream(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    async for message in requests:
        yield message


async def echo_server(port: int = 0) -> tuple[grpc.aio.Server, int]:
    """Start the echo service on the running loop; return it and its port."""
    server = grpc.aio.server(options=CHANNEL_OPTIONS)
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary),
        "Stream": grpc.stream_stream_rpc_method_handler(_stream),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", handlers),))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, bound


async def _serve(port: int) -> None:
    server, bound = await echo_server(port)
    print(f"PORT {bound}", flush=True)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    # The parent holds our stdin: when it closes (or the parent dies) we stop.
    stdin = sys.stdin.fileno()
    loop.add_reader(stdin, lambda: None if os.read(stdin, 1) else done.set())
    await done.wait()
    await server.stop(0.5)


# -- the group --------------------------------------------------------------------


def run(sizes: Sizes, rec: Recorder) -> None:
    """Measure the raw gRPC references."""
    asyncio.run(_run(sizes, rec))


async def _run(sizes: Sizes, rec: Recorder) -> None:
    with rec.attempt("raw gRPC: server cold starts"):
        samples = []
        for _ in range(sizes.cold_starts):
            port = free_port()
            cmd = [sys.executable, "-m", "bench.raw_grpc", "serve", "--port", str(port)]
            samples.append(await cold_start(cmd, port, "echo"))
        rec["raw.server_start_cold"] = distribution(samples)
    with rec.attempt("raw gRPC: server starts in process"):
        samples = []
        for _ in range(sizes.arbiter_starts):
            t = time.perf_counter()
            server, port = await echo_server()
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await channel.unary_unary("/bench.Echo/Unary")(b"x", timeout=10)
                samples.append(time.perf_counter() - t)
            await server.stop(0)
        rec["raw.server_start_inproc"] = distribution(samples)

    with echo_process() as (address, pid):
        async with grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
            await _against(channel, psutil.Process(pid), sizes, rec)


@contextlib.contextmanager
def echo_process() -> Iterator[tuple[str, int]]:
    """The echo service in a process of its own: its ``host:port`` and pid."""
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.raw_grpc", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the echo server did not start: {line!r}")
        yield f"127.0.0.1:{int(line.split()[1])}", server.pid
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


async def _against(
    channel: grpc.aio.Channel, server: psutil.Process, sizes: Sizes, rec: Recorder
) -> None:
    unary = channel.unary_unary("/bench.Echo/Unary")
    stream = channel.stream_stream("/bench.Echo/Stream")

    def small(_: int) -> bytes:
        return SMALL

    with rec.attempt(f"raw gRPC: unary round trips (n={sizes.n})"):
        rec["raw.unary_rtt"] = distribution(
            await unary_latency(unary, small, sizes.n, sizes.latency_seconds)
        )
    with rec.attempt(f"raw gRPC: bidi ping-pong (n={sizes.n})"):
        rec["raw.bidi_rtt"] = distribution(
            await stream_latency(stream, small, sizes.n, sizes.latency_seconds)
        )
    for depth in sizes.depths:
        with rec.attempt(f"raw gRPC: stream, {depth} in flight ({sizes.duration}s)"):
            got = await stream_rate(stream, small, depth, sizes.duration)
            rec[f"raw.stream_d{depth}"] = rate(int(got["count"]), got["seconds"], depth=depth)
    for size in sizes.payloads:
        label = payload_label(size)
        payload = b"p" * size

        def make(_: int, payload: bytes = payload) -> bytes:
            return payload

        with rec.attempt(f"raw gRPC: bidi ping-pong with {label} (n={sizes.payload_n})"):
            rec[f"raw.payload_{label}"] = distribution(
                await stream_latency(stream, make, sizes.payload_n, sizes.latency_seconds),
                bytes=size,
            )
    with rec.attempt(f"raw gRPC: server CPU at {sizes.notify_rate} unary calls/s"):
        percent = await _paced_cpu(unary, server, sizes.notify_rate, sizes.cpu_window * 2)
        rec["raw.notify_cpu_per100"] = scalar(
            percent * 100 / sizes.notify_rate, rate=sizes.notify_rate, cpu_percent=percent
        )


async def _paced_cpu(unary: Any, server: psutil.Process, per_second: int, seconds: float) -> float:
    """The server's CPU (% of a core) while it answers ``per_second`` calls of NOTIFY_BYTES."""
    payload = b"i" * NOTIFY_BYTES
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[Any]] = set()
    before = server.cpu_times()
    t0 = loop.time()
    for i in range(int(per_second * seconds)):
        # Spread the calls evenly, as notifies of many actors are.
        delay = t0 + i / per_second - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.ensure_future(unary(payload, timeout=10))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=10)
    after = server.cpu_times()
    elapsed = loop.time() - t0
    used = (after.user + after.system) - (before.user + before.system)
    return 100.0 * used / elapsed


def main(argv: list[str]) -> int:
    """``python -m bench.raw_grpc serve [--port P]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.raw_grpc")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
