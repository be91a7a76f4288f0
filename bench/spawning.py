"""Spawning: from the call until the new actor (or arbiter) answers a ping.

- one process actor, one thread actor (several times each, p50 and p99);
- 50 of each kind at once (the time for all, per actor);
- an arbiter started in this process (``with arbiter():``), and one started
  from a new interpreter (``python -m actorgrpc run``) as timed by an outside
  client polling ``Mailbox.Send``.
"""

from __future__ import annotations

import sys
import time

from actorgrpc import arbiter, send, spawn
from bench.actors import client_samples, kill_all, spawn_all
from bench.common import Recorder, Sizes, distribution, free_port, scalar
from bench.wire_client import run_client

__all__ = ["run"]


def run(sizes: Sizes, rec: Recorder) -> None:
    """Measure spawn and start times."""
    with rec.attempt(f"arbiter: new interpreter until it answers (n={sizes.cold_starts})"):
        tasks = []
        for _ in range(sizes.cold_starts):
            port = free_port()
            cmd = [sys.executable, "-m", "actorgrpc", "run", "--port", str(port)]
            tasks.append({"op": "cold_start", "cmd": cmd, "port": port, "probe": "mailbox"})
        results = run_client(tasks, 40 * len(tasks))
        rec["spawn.arbiter_cold"] = distribution([client_samples(r, "seconds") for r in results])
    with rec.attempt(f"arbiter: start in process until it answers (n={sizes.arbiter_starts})"):
        samples = []
        for _ in range(sizes.arbiter_starts):
            t = time.perf_counter()
            arb = arbiter()
            assert arb is not None
            with arb:
                send("arbiter", "ping").result(10)
                samples.append(time.perf_counter() - t)
        rec["spawn.arbiter_inproc"] = distribution(samples)

    arb = arbiter()
    assert arb is not None
    with arb:
        spawn_all(1, "process")  # the forkserver starts on first use: not timed
        for kind, n in (("process", sizes.spawn_n), ("thread", sizes.spawn_n * 4)):
            with rec.attempt(f"spawn a {kind} actor until it answers (n={n})"):
                samples = []
                for _ in range(n):
                    t = time.perf_counter()
                    proxy = spawn(concurrency=kind).result(60)
                    send(proxy, "ping").result(10)
                    samples.append(time.perf_counter() - t)
                    kill_all([proxy])
                rec[f"spawn.{kind}"] = distribution(samples)
        for kind in ("process", "thread"):
            with rec.attempt(f"spawn {sizes.spawn_batch} {kind} actors at once"):
                t = time.perf_counter()
                proxies = spawn_all(sizes.spawn_batch, kind)
                seconds = time.perf_counter() - t
                rec[f"spawn.{kind}_batch"] = scalar(
                    seconds / len(proxies), total=seconds, actors=len(proxies)
                )
                kill_all(proxies)
