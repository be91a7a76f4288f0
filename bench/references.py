"""References that are not gRPC: ``multiprocessing.Pipe``, pykka, Thespian and Ray.

- Pipe: the floor of a hop between two processes (a child echoing objects).
- pykka: ``ask`` from the main thread to a ThreadingActor (one process).
- Thespian (``multiprocTCPBase``): ``ask`` from outside to an actor process,
  ``createActor`` until the actor answers, and memory of an actor process.
- Ray (only when importable): actor method call, throughput, actor creation;
  measured by the ``ray`` group (``bench.latency.run_ray``), which runs last.

This group imports neither grpc nor actorgrpc, so that Thespian's forks start
from a process with no gRPC state.
"""

from __future__ import annotations

import collections
import importlib
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import psutil
import pykka

from bench.common import Recorder, Sizes, distribution, free_port, rate, scalar, skipped

__all__ = ["RAY_MISSING", "pykka_asks", "pykka_window", "ray_figures", "run"]

#: Requests in flight for the reference throughput figures.
DEPTH = 100


def run(sizes: Sizes, rec: Recorder) -> None:
    """Measure the references."""
    _pipe(sizes, rec)
    _pykka(sizes, rec)
    _thespian(sizes, rec)


# -- multiprocessing.Pipe ---------------------------------------------------------


def _pipe_echo(conn: Connection) -> None:
    while True:
        message = conn.recv()
        if message is None:
            return
        conn.send(message)


def _pipe(sizes: Sizes, rec: Recorder) -> None:
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    child = ctx.Process(target=_pipe_echo, args=(there,), daemon=True)
    child.start()
    try:
        with rec.attempt(f"Pipe: round trips (n={sizes.n})"):

            def round_trip(i: int) -> None:
                here.send(("ping", i))
                here.recv()

            rec["pipe.rtt"] = distribution(
                _timed(round_trip, sizes.n, sizes.latency_seconds, warmup=20)
            )
        with rec.attempt(f"Pipe: {DEPTH} in flight ({sizes.duration}s)"):
            t0 = time.perf_counter()
            stop_at = t0 + sizes.duration
            for i in range(DEPTH):
                here.send(("ping", i))
            sent, done = DEPTH, 0
            while done < sent:
                if not here.poll(10):
                    raise RuntimeError("the Pipe child stopped answering")
                here.recv()
                done += 1
                if time.perf_counter() < stop_at:
                    here.send(("ping", sent))
                    sent += 1
            rec["pipe.rate_d100"] = rate(done, time.perf_counter() - t0, depth=DEPTH)
    finally:
        here.send(None)
        child.join(5)
        if child.is_alive():
            child.kill()
            child.join(5)


# -- pykka ---------------------------------------------------------------------------


class _PykkaEcho(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return message


def pykka_asks(n: int, seconds: float) -> list[float]:
    """Seconds per ``ask`` from this thread to a pykka actor, one at a time."""
    ref = _PykkaEcho.start()
    try:
        return _timed(lambda i: ref.ask(i, timeout=5), n, seconds, warmup=20)
    finally:
        ref.stop(timeout=5)


def pykka_window(seconds: float) -> tuple[int, float]:
    """Asks answered, and seconds, with DEPTH asks in flight to a pykka actor."""
    ref = _PykkaEcho.start()
    try:
        t0 = time.perf_counter()
        stop_at = t0 + seconds
        window: collections.deque[Any] = collections.deque(
            ref.ask(i, block=False) for i in range(DEPTH)
        )
        done = 0
        while window:
            window.popleft().get(timeout=10)
            done += 1
            if time.perf_counter() < stop_at:
                window.append(ref.ask(done, block=False))
        return done, time.perf_counter() - t0
    finally:
        ref.stop(timeout=5)


def _pykka(sizes: Sizes, rec: Recorder) -> None:
    with rec.attempt(f"pykka: ask round trips (n={sizes.n})"):
        rec["pykka.ask_rtt"] = distribution(pykka_asks(sizes.n, sizes.latency_seconds))
    with rec.attempt(f"pykka: {DEPTH} asks in flight ({sizes.duration}s)"):
        done, seconds = pykka_window(sizes.duration)
        rec["pykka.rate_d100"] = rate(done, seconds, depth=DEPTH)
    with rec.attempt(f"pykka: actor start until it answers (n={sizes.spawn_n * 4})"):
        samples = []
        for _ in range(sizes.spawn_n * 4):
            t = time.perf_counter()
            started = _PykkaEcho.start()
            started.ask("ping", timeout=5)
            samples.append(time.perf_counter() - t)
            started.stop(timeout=5)
        rec["pykka.start"] = distribution(samples)
    with rec.attempt(f"pykka: memory of {sizes.memory_actors} actors"):
        me = psutil.Process()
        before = me.memory_info().rss
        refs = [_PykkaEcho.start() for _ in range(sizes.memory_actors)]
        for r in refs:
            r.ask("ping", timeout=10)
        grown = me.memory_info().rss - before
        pykka.ActorRegistry.stop_all(timeout=10)
        rec["pykka.memory_per_actor"] = scalar(grown / len(refs), actors=len(refs))


# -- Thespian ------------------------------------------------------------------------

try:
    from thespian.actors import Actor as _ThespianActor  # type: ignore[import-untyped]
    from thespian.actors import ActorExitRequest, ActorSystem
except ImportError:  # pragma: no cover - thespian is in the bench extra
    _ThespianActor = object
    ActorSystem = None


class ThespianEcho(_ThespianActor):  # type: ignore[misc]
    """Echoes what it gets; answers ``'memory'`` with its process's RSS and USS."""

    def receiveMessage(self, message: Any, sender: Any) -> None:
        if message == "memory":
            full = psutil.Process().memory_full_info()
            self.send(sender, (full.rss, full.uss))
        elif isinstance(message, (str, int, tuple, bytes)):
            self.send(sender, message)


def _thespian(sizes: Sizes, rec: Recorder) -> None:
    if ActorSystem is None:
        for key in (
            "thespian.ask_rtt",
            "thespian.rate_d100",
            "thespian.create",
            "thespian.memory_per_actor",
        ):
            rec[key] = skipped("thespian is not installed")
        return
    me = psutil.Process()
    before = {p.pid for p in me.children()}
    asys = ActorSystem("multiprocTCPBase", {"Admin Port": free_port()})
    try:
        with rec.attempt(f"Thespian: createActor until it answers (n={sizes.spawn_n})"):
            samples = []
            for _ in range(sizes.spawn_n):
                t = time.perf_counter()
                actor = asys.createActor(ThespianEcho)
                if asys.ask(actor, "ping", 10) != "ping":
                    raise RuntimeError("a new Thespian actor did not answer")
                samples.append(time.perf_counter() - t)
                asys.tell(actor, ActorExitRequest())
            rec["thespian.create"] = distribution(samples)
        actor = asys.createActor(ThespianEcho)
        with rec.attempt("Thespian: memory of an actor process"):
            rss, uss = asys.ask(actor, "memory", 10)
            rec["thespian.memory_per_actor"] = scalar(float(rss), uss=uss, measure="rss")
        n = min(sizes.n, 1000)
        with rec.attempt(f"Thespian: ask round trips (n={n})"):

            def ask(i: int) -> None:
                if asys.ask(actor, i, 10) is None:
                    raise RuntimeError("Thespian ask timed out")

            rec["thespian.ask_rtt"] = distribution(_timed(ask, n, sizes.latency_seconds, warmup=20))
        with rec.attempt(f"Thespian: {DEPTH} in flight ({sizes.duration}s)"):
            t0 = time.perf_counter()
            stop_at = t0 + sizes.duration
            for i in range(DEPTH):
                asys.tell(actor, i)
            sent, done = DEPTH, 0
            while done < sent:
                if asys.listen(10) is None:
                    raise RuntimeError("Thespian stopped answering")
                done += 1
                if time.perf_counter() < stop_at:
                    asys.tell(actor, sent)
                    sent += 1
            rec["thespian.rate_d100"] = rate(done, time.perf_counter() - t0, depth=DEPTH)
    finally:
        asys.shutdown()
        # The admin process ends after shutdown returns: reap it here rather
        # than leave it to whoever adopts it.
        psutil.wait_procs([p for p in me.children() if p.pid not in before], timeout=5)


# -- Ray -------------------------------------------------------------------------------


RAY_MISSING = "ray is not installed (optional: pip install ray)"
#: Bytes of Ray's object store (calls here carry a few bytes).
RAY_OBJECT_STORE = 200 * 1024 * 1024


def _ray_start(temp_dir: str) -> tuple[Any, Any]:
    """Ray, started, and an Echo actor class; ImportError when Ray is absent.

    Ray keeps its session (logs, sockets) under ``temp_dir``, not /tmp/ray,
    where every run would leave one behind.
    """
    ray: Any = importlib.import_module("ray")
    # A small object store: by default Ray maps 30% of the machine's memory,
    # and giving that back leaves this VM slower at forking for a while
    # (process spawn measured after it was ~25% slower).
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        object_store_memory=RAY_OBJECT_STORE,
        _temp_dir=temp_dir,
    )

    @ray.remote
    class Echo:
        def ping(self, message: Any = None) -> Any:
            return message

    return ray, Echo


def _timed(call: Callable[[int], object], n: int, seconds: float, warmup: int = 0) -> list[float]:
    """Seconds per ``call(i)``, one at a time, after ``warmup`` untimed calls.

    At most ``n`` calls, and none started after ``seconds``.
    """
    for i in range(warmup):
        call(i)
    samples = []
    deadline = time.perf_counter() + seconds
    for i in range(n):
        t = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - t)
        if t > deadline:
            break
    return samples


def ray_figures(sizes: Sizes) -> dict[str, Any]:
    """Ray's figures (actor creation, calls, calls in flight), as records of the report.

    Run by the ``ray`` group in a process of its own (``bench.paired``).
    """
    # Short: Ray's socket paths under it must fit in a Unix socket address.
    temp_dir = tempfile.mkdtemp(prefix="agb-ray-", dir=os.environ.get("RAY_TMPDIR") or "/tmp")
    try:
        return _ray_measure(sizes, temp_dir)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def _ray_measure(sizes: Sizes, temp_dir: str) -> dict[str, Any]:
    ray, echo = _ray_start(temp_dir)
    out: dict[str, Any] = {}
    try:
        samples = []
        for _ in range(sizes.spawn_n):
            t = time.perf_counter()
            created = echo.remote()
            ray.get(created.ping.remote("ping"), timeout=60)
            samples.append(time.perf_counter() - t)
            ray.kill(created)
        out["ray.create"] = distribution(samples)
        actor = echo.remote()
        ray.get(actor.ping.remote(), timeout=60)  # it has started

        def call(i: int) -> None:
            ray.get(actor.ping.remote(i), timeout=10)

        n = min(sizes.n, 1000)
        out["ray.call_rtt"] = distribution(_timed(call, n, sizes.latency_seconds, warmup=20))
        t0 = time.perf_counter()
        stop_at = t0 + sizes.duration
        window = collections.deque(actor.ping.remote(i) for i in range(DEPTH))
        done = 0
        while window:
            ray.get(window.popleft(), timeout=10)
            done += 1
            if time.perf_counter() < stop_at:
                window.append(actor.ping.remote(done))
        out["ray.rate_d100"] = rate(done, time.perf_counter() - t0, depth=DEPTH)
        return out
    finally:
        ray.shutdown()
