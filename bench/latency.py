"""Round trips: one request in flight, p50 and p99.

- an outside client (plain grpc.aio, generated stubs, another process) to a
  process actor: unary ``Mailbox.Send`` and ping-pong on ``Mailbox.Stream``;
- the arbiter to a process actor: ``send(proxy, 'ping')`` from plain code, and
  ``await send`` inside a command running in the arbiter;
- a process actor to another (a command in A times its sends to B), in turns
  with raw gRPC bidi ping-pong (``bench.paired``);
- a thread actor to another in the arbiter's process, in turns with pykka,
  and plain code to a thread actor.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable

from actorgrpc import ActorProxy, arbiter, send
from bench.actors import address_of, client_samples, spawn_all
from bench.common import Recorder, Sizes, distribution, skipped
from bench.paired import LATENCY_TURNS, in_turns, raw_bidi, reference
from bench.raw_grpc import echo_process
from bench.references import RAY_MISSING
from bench.wire_client import run_client

__all__ = ["run", "run_ray"]


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
        turns = LATENCY_TURNS
        n, seconds = max(1, sizes.n // turns), sizes.latency_seconds / turns

        def pings(sender: ActorProxy, target: ActorProxy) -> Callable[[int], list[float]]:
            return lambda _: send(sender, "time_pings", target, n, seconds).result(limit)

        with rec.attempt(f"process actor -> process actor, in turns with raw gRPC (n={sizes.n})"):
            with echo_process() as (address, _):
                raw, ours = in_turns(turns, lambda _: raw_bidi(address, n, seconds), pings(a, b))
            rec["lat.raw_bidi_paired"] = distribution(raw)
            rec["lat.process_process"] = distribution(ours)
        with rec.attempt(f"thread actor -> thread actor, in turns with pykka (n={sizes.n})"):
            pykka, ours = in_turns(
                turns, lambda _: reference("pykka_rtt", n=n, seconds=seconds), pings(t1, t2)
            )
            rec["lat.pykka_paired"] = distribution(pykka)
            rec["lat.thread_thread"] = distribution(ours)
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


#: What the ``ray`` group records.
RAY_KEYS = ("ray.create", "ray.call_rtt", "ray.rate_d100", "ray.process_process")


def run_ray(sizes: Sizes, rec: Recorder) -> None:
    """Process -> process round trips, then Ray's figures right after them.

    The last group of a run: after Ray has run, this VM forks and faults pages
    in more slowly for a while (process spawn measured after it was ~25%
    slower), so nothing else is measured after it, and the pings it is
    compared with come just before it rather than in turns after it. Ray runs
    in a process of its own (``bench.paired``).
    """
    if importlib.util.find_spec("ray") is None:
        for key in RAY_KEYS:
            rec[key] = skipped(RAY_MISSING)
        return
    arb = arbiter()
    assert arb is not None
    limit = sizes.latency_seconds + 30
    n = max(1, min(sizes.n, 1000))
    with arb:
        a, b = spawn_all(2, "process")
        send(a, "time_pings", b, 100, sizes.latency_seconds).result(limit)  # warm
        with rec.attempt(f"process -> process pings, then Ray's figures (n={n})"):
            # Ours first, Ray right after: what Ray leaves behind must not
            # fall on the pings (see the docstring).
            ours = send(a, "time_pings", b, n, sizes.latency_seconds).result(limit)
            figures = reference("ray_figures", sizes=sizes.to_json())
            for key in RAY_KEYS[:3]:
                rec[key] = figures[key]
            rec["ray.process_process"] = distribution(ours)
