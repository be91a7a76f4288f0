"""Round trips: one request in flight, p50 and p99.

- an outside client (plain grpc.aio, generated stubs, another process) to a
  process actor: unary ``Mailbox.Send`` and ping-pong on ``Mailbox.Stream``;
- the arbiter to a process actor: ``send(proxy, 'ping')`` from plain code, and
  ``await send`` inside a command running in the arbiter;
- a process actor to another (a command in A times its sends to B);
- a thread actor to another in the arbiter's process, and plain code to a
  thread actor.
"""

from __future__ import annotations

import time

from actorgrpc import ActorProxy, arbiter, send
from bench.actors import address_of, client_samples, spawn_all
from bench.common import Recorder, Sizes, distribution
from bench.wire_client import run_client

__all__ = ["run"]


def run(sizes: Sizes, rec: Recorder) -> None:
    """Measure the round trips."""
    arb = arbiter()
    assert arb is not None
    limit = sizes.latency_seconds + 30
    with arb:
        a, b = spawn_all(2, "process")
        t1, t2 = spawn_all(2, "thread")
        with rec.attempt(f"outside client -> process actor: Send and Stream (n={sizes.n})"):
            task = {
                "address": address_of(b),
                "target": b.aid,
                "n": sizes.n,
                "seconds": sizes.latency_seconds,
            }
            unary, stream = run_client(
                [{"op": "unary_latency", **task}, {"op": "stream_latency", **task}], 2 * limit + 10
            )
            rec["lat.client_unary"] = distribution(client_samples(unary))
            rec["lat.client_stream"] = distribution(client_samples(stream))
        with rec.attempt(f"arbiter -> process actor, plain code (n={sizes.n})"):
            rec["lat.arbiter_process_plain"] = distribution(_plain(b, sizes))
        with rec.attempt(f"arbiter -> process actor, in a command (n={sizes.n})"):
            samples = send("arbiter", "time_pings", b, sizes.n, sizes.latency_seconds).result(limit)
            rec["lat.arbiter_process_async"] = distribution(samples)
        with rec.attempt(f"process actor -> process actor (n={sizes.n})"):
            samples = send(a, "time_pings", b, sizes.n, sizes.latency_seconds).result(limit)
            rec["lat.process_process"] = distribution(samples)
        with rec.attempt(f"thread actor -> thread actor (n={sizes.n})"):
            samples = send(t1, "time_pings", t2, sizes.n, sizes.latency_seconds).result(limit)
            rec["lat.thread_thread"] = distribution(samples)
        with rec.attempt(f"plain code -> thread actor (n={sizes.n})"):
            rec["lat.arbiter_thread_plain"] = distribution(_plain(t2, sizes))


def _plain(target: ActorProxy, sizes: Sizes) -> list[float]:
    for _ in range(20):
        send(target, "ping").result(5)
    samples = []
    deadline = time.perf_counter() + sizes.latency_seconds
    for _ in range(sizes.n):
        t = time.perf_counter()
        send(target, "ping").result(5)
        samples.append(time.perf_counter() - t)
        if t > deadline:
            break
    return samples
