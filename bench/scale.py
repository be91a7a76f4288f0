"""Scale: 1,000 thread actors and 50 process actors alive in one tree.

- memory per actor: RSS growth of the arbiter's process per thread actor;
  RSS (and USS, what it alone holds) of each process actor's process;
- the arbiter process's CPU (psutil ``cpu_times`` over a window) while the
  actors idle and notify, as % of one core per 100 actors, with the process
  actors only and with the whole tree (thread actors run their notifies in the
  arbiter's process, so they are counted in);
- the time of ``Supervisor.Info`` over the whole tree, from an outside client.
"""

from __future__ import annotations

import time

import psutil

from actorgrpc import ActorProxy, arbiter, send
from bench.actors import client_samples, spawn_all, wait_for
from bench.common import Recorder, Sizes, distribution, progress, scalar
from bench.wire_client import run_client

__all__ = ["run"]

#: Actors spawned at once while building the tree.
CHUNK = 100


def run(sizes: Sizes, rec: Recorder) -> None:
    """Build the tree and measure it."""
    arb = arbiter()
    assert arb is not None
    me = psutil.Process()
    settle = 0.3 if sizes.smoke else 1.5
    with arb:
        wait_for(settle)
        progress(f"the arbiter's CPU alone ({sizes.cpu_window}s)")
        base = _cpu(me, sizes.cpu_window)
        processes: list[ActorProxy] = []
        threads: list[ActorProxy] = []
        with rec.attempt(f"{sizes.processes} process actors"):
            while len(processes) < sizes.processes:
                processes += spawn_all(min(CHUNK // 4, sizes.processes - len(processes)), "process")
            wait_for(settle)
            progress(f"the arbiter's CPU with {len(processes)} idle process actors")
            cpu = _cpu(me, sizes.cpu_window)
            rec["scale.cpu_idle_per100"] = scalar(
                max(0.0, cpu - base) * 100 / len(processes),
                cpu_percent=cpu,
                baseline=base,
                actors=len(processes),
            )
            uss, rss = _process_memory(processes)
            rec["scale.memory_process"] = scalar(rss, uss=uss, actors=len(processes), measure="rss")
        with rec.attempt(f"{sizes.threads} thread actors"):
            before = me.memory_info().rss
            t = time.perf_counter()
            while len(threads) < sizes.threads:
                threads += spawn_all(min(CHUNK, sizes.threads - len(threads)), "thread")
                progress(f"{len(threads)} thread actors")
            spawned_in = time.perf_counter() - t
            grown = me.memory_info().rss - before
            rec["scale.memory_thread"] = scalar(
                grown / len(threads), actors=len(threads), spawn_seconds=spawned_in
            )
            wait_for(settle)
            actors = len(threads) + len(processes)
            progress(f"the arbiter's CPU with {actors} idle actors")
            cpu = _cpu(me, sizes.cpu_window)
            rec["scale.cpu_tree_per100"] = scalar(
                max(0.0, cpu - base) * 100 / actors,
                cpu_percent=cpu,
                baseline=base,
                threads=len(threads),
                processes=len(processes),
            )
        n = 3 if sizes.smoke else 5
        tree = len(threads) + len(processes) + 1
        with rec.attempt(f"Supervisor.Info over {tree} actors (n={n})"):
            host, port = arb.address
            task = {"op": "info", "address": f"{host}:{port}", "n": n, "seconds": 5}
            (result,) = run_client([task], 120)
            rec["scale.info_tree"] = distribution(
                client_samples(result), actors=client_samples(result, "actors")
            )
        progress(f"stopping {tree - 1} actors")
        # Leaving the block stops the tree: the arbiter stops every actor at once.


def _cpu(proc: psutil.Process, seconds: float) -> float:
    """The process's CPU over ``seconds``, in % of one core."""
    before = proc.cpu_times()
    t = time.perf_counter()
    time.sleep(seconds)
    after = proc.cpu_times()
    used = (after.user + after.system) - (before.user + before.system)
    return 100.0 * used / (time.perf_counter() - t)


def _process_memory(proxies: list[ActorProxy]) -> tuple[float, float]:
    """Mean USS and RSS of the processes hosting ``proxies``."""
    uss, rss = [], []
    for reply in [send(p, "info") for p in proxies]:
        pid = reply.result(30)["actor"]["pid"]
        full = psutil.Process(pid).memory_full_info()
        uss.append(full.uss)
        rss.append(full.rss)
    return sum(uss) / len(uss), sum(rss) / len(rss)
