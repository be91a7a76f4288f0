"""Throughput: replies per second with many requests in flight, and no-ack messages.

- a process actor keeping 1, 10, 100 and 1,000 pings in flight to another
  (one mailbox stream between their processes);
- an outside stream client (plain grpc.aio, one envelope per message) at the
  same depths, to a process actor;
- 8 process actors sending to one, 100 in flight each;
- a thread actor to another, 100 in flight, in turns with pykka (``bench.paired``);
- no-ack: a process actor sends ``hit`` (``@command(ack=False)``) many times,
  then asks the receiver how many it counted; every message must be there.
"""

from __future__ import annotations

from actorgrpc import arbiter, send
from bench.actors import address_of, client_samples, spawn_all
from bench.common import Recorder, Sizes, rate
from bench.paired import TURNS, in_turns, reference
from bench.wire_client import run_client

__all__ = ["run", "run_noack"]

#: Upper bound of requests of one throughput figure (the duration stops it first).
MAX_COUNT = 5_000_000


def run(sizes: Sizes, rec: Recorder) -> None:
    """Measure pipelined throughput."""
    arb = arbiter()
    assert arb is not None
    limit = sizes.duration + 40
    with arb:
        a, b = spawn_all(2, "process")
        for depth in sizes.depths:
            with rec.attempt(f"process -> process actor, {depth} in flight ({sizes.duration}s)"):
                got = send(a, "pipeline", b, depth, MAX_COUNT, sizes.duration).result(limit)
                _check(got)
                rec[f"tput.process_d{depth}"] = rate(got["count"], got["seconds"], depth=depth)
        with rec.attempt(f"outside stream client -> process actor, depths {list(sizes.depths)}"):
            tasks = [
                {
                    "op": "stream_rate",
                    "address": address_of(b),
                    "target": b.aid,
                    "depth": depth,
                    "seconds": sizes.duration,
                }
                for depth in sizes.depths
            ]
            results = run_client(tasks, len(tasks) * limit)
            for depth, result in zip(sizes.depths, results, strict=True):
                client_samples(result, "count")
                rec[f"tput.client_d{depth}"] = rate(
                    int(result["count"]), result["seconds"], depth=depth
                )
        with rec.attempt(f"{sizes.senders} process actors -> one actor, 100 in flight each"):
            senders = [a, *spawn_all(sizes.senders - 1, "process")]
            replies = [send(s, "pipeline", b, 100, MAX_COUNT, sizes.duration) for s in senders]
            results = [r.result(limit) for r in replies]
            for got in results:
                _check(got)
            total = sum(got["count"] for got in results)
            seconds = max(got["seconds"] for got in results)
            rec["tput.senders"] = rate(total, seconds, senders=len(senders), depth=100)
        with rec.attempt(f"thread -> thread, 100 in flight, turns with pykka ({sizes.duration}s)"):
            t1, t2 = spawn_all(2, "thread")
            seconds = sizes.duration / TURNS

            def ours(_: int) -> list[tuple[int, float]]:
                got = send(t1, "pipeline", t2, 100, MAX_COUNT, seconds).result(limit)
                _check(got)
                return [(got["count"], got["seconds"])]

            def pykka(_: int) -> list[tuple[int, float]]:
                done, took = reference("pykka_rate", seconds=seconds)
                return [(done, took)]

            theirs, mine = in_turns(TURNS, pykka, ours)
            rec["tput.pykka_paired"] = rate(*_pooled(theirs), depth=100)
            rec["tput.thread_d100"] = rate(*_pooled(mine), depth=100)


def run_noack(sizes: Sizes, rec: Recorder) -> None:
    """Measure no-ack messages counted at the receiver."""
    arb = arbiter()
    assert arb is not None
    with arb:
        a, b = spawn_all(2, "process")
        with rec.attempt(
            f"no-ack: {sizes.noack} hits, process -> process, counted at the receiver"
        ):
            # A short flood first: connections and code paths warm.
            send(a, "flood", b, min(1000, sizes.noack), 10.0).result(60)
            got = send(a, "flood", b, sizes.noack, 20.0).result(90)
            rec["noack.process"] = rate(
                got["counted"], got["seconds"], sent=got["sent"], lost=got["sent"] - got["counted"]
            )
            if got["counted"] != got["sent"]:
                raise RuntimeError(
                    f"sent {got['sent']} no-ack messages, the receiver counted {got['counted']}"
                )


def _pooled(turns: list[tuple[int, float]]) -> tuple[int, float]:
    return sum(c for c, _ in turns), sum(t for _, t in turns)


def _check(got: dict[str, int | float]) -> None:
    if got["errors"]:
        raise RuntimeError(f"{got['errors']} of {got['count']} requests failed")
