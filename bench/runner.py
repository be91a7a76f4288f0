"""Each group in a subprocess of its own, bounded in time, with nothing left behind.

The parent side (``run_group``) starts ``python -m bench.runner GROUP SIZES OUT``
in a new session, relays its progress lines, stops it at its time limit, and
afterwards kills whatever it left: its process group, then any process that
carries this run's marker in its environment (Thespian's admin daemonizes
into a session of its own). The child side (``main``) runs one group and
writes its measurements to OUT as it goes.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import psutil

from bench.common import PROGRESS_PREFIX, Recorder, Sizes

__all__ = ["GROUPS", "REFERENCE_GROUPS", "GroupRun", "main", "run_group"]

#: Group name -> "module:function" running it as ``function(sizes, recorder)``.
GROUPS: dict[str, str] = {
    "raw": "bench.raw_grpc:run",
    "references": "bench.references:run",
    "latency": "bench.latency:run",
    "throughput": "bench.throughput:run",
    "noack": "bench.throughput:run_noack",
    "payloads": "bench.payloads:run",
    "spawn": "bench.spawning:run",
    "scale": "bench.scale:run",
    "ray": "bench.latency:run_ray",
}
#: Groups that measure references, not actorgrpc.
REFERENCE_GROUPS = ("raw", "references", "ray")
#: Seconds each group may take (full run, smoke run) before it is stopped.
TIME_LIMITS: dict[str, tuple[float, float]] = {
    "raw": (75, 25),
    "references": (60, 25),
    "latency": (60, 25),
    "throughput": (75, 25),
    "noack": (40, 20),
    "payloads": (45, 20),
    "spawn": (90, 30),
    "scale": (180, 30),
    "ray": (120, 60),
}
MARKER = "ACTORGRPC_BENCH_RUN"
#: Where actorgrpc reads a tree's secret (actorgrpc.security.SECRET_ENV).
SECRET_ENV = "ACTORGRPC_SECRET"
ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass
class GroupRun:
    """What one group's subprocess produced."""

    group: str
    results: dict[str, dict[str, Any]]
    errors: list[str]
    seconds: float
    log: Path
    leftovers: int = 0


def run_group(
    group: str,
    sizes: Sizes,
    workdir: Path,
    on_progress: Callable[[str, str], None],
    limit: float | None = None,
    root: Path = ROOT,
) -> GroupRun:
    """Run one group in a subprocess; stop it after ``limit`` seconds.

    ``root`` is the checkout it runs in: its ``bench`` and ``actorgrpc`` are
    the ones imported (the directory comes first on the child's path).
    """
    if limit is None:
        limit = TIME_LIMITS[group][1 if sizes.smoke else 0]
    out = workdir / f"{group}.json"
    log = workdir / f"{group}.log"
    marker = f"{os.getpid()}-{group}-{time.time_ns()}"
    # Arbiters read the tree's secret from the environment, and the outside
    # clients send it: one fresh secret per group.
    env = dict(
        os.environ, PYTHONUNBUFFERED="1", **{MARKER: marker, SECRET_ENV: secrets.token_urlsafe(32)}
    )
    t0 = time.perf_counter()
    errors: list[str] = []
    with open(log, "a", encoding="utf-8") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.runner", group, sizes.to_json(), str(out)],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=logf,
            text=True,
            start_new_session=True,
        )
        assert proc.stdout is not None
        reader = threading.Thread(
            target=_relay,
            args=(proc.stdout, logf, lambda text: on_progress(group, text)),
            daemon=True,
        )
        reader.start()
        try:
            try:
                proc.wait(limit)
            except subprocess.TimeoutExpired:
                errors.append(f"{group}: stopped after its time limit of {limit:.0f}s")
        finally:
            # At the time limit, or on Ctrl-C (the group has a session of its own).
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait(5)
            leftovers = _reap(proc.pid, marker)
        reader.join(2)
    if proc.returncode not in (0, None) and not errors:
        errors.append(f"{group}: exited with code {proc.returncode} (log: {log})")
    results: dict[str, dict[str, Any]] = {}
    if out.exists():
        data = json.loads(out.read_text())
        results = data.get("results", {})
        errors.extend(data.get("errors", []))
    elif not errors:
        errors.append(f"{group}: wrote no results (log: {log})")
    return GroupRun(group, results, errors, time.perf_counter() - t0, log, leftovers)


def _relay(stream: IO[str], logf: IO[str], show: Callable[[str], None]) -> None:
    for line in stream:
        if line.startswith(PROGRESS_PREFIX):
            show(line[len(PROGRESS_PREFIX) :].rstrip("\n"))
        else:
            logf.write(line)
            logf.flush()


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _reap(pgid: int, marker: str) -> int:
    """Kill what a finished group left behind; return how many actor-like processes that was.

    multiprocessing's forkserver and resource tracker leave on their own when
    the group's process ends: they get a moment to do so, and are not counted.
    """
    deadline = time.monotonic() + 3.0
    found = _stragglers(pgid, marker)
    while found and time.monotonic() < deadline:
        time.sleep(0.05)
        found = _stragglers(pgid, marker)
    leaked = 0
    for proc in found:
        try:
            cmdline = " ".join(proc.cmdline())
            if "forkserver" not in cmdline and "resource_tracker" not in cmdline:
                leaked += 1
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(found, timeout=5)
    return leaked


def _stragglers(pgid: int, marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid == os.getpid() or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if os.getpgid(proc.pid) == pgid or proc.environ().get(MARKER) == marker:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def main(argv: list[str]) -> int:
    """The child side: run one group, writing its results to a file."""
    group, sizes_json, out = argv
    recorder = Recorder(Path(out))
    recorder.save()
    module_name, func_name = GROUPS[group].split(":")
    code = 0
    try:
        run: Callable[[Sizes, Recorder], None] = getattr(
            importlib.import_module(module_name), func_name
        )
        run(Sizes.from_json(sizes_json), recorder)
    except Exception as exc:
        traceback.print_exc()
        recorder.error(group, exc)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave at once: a stray non-daemon thread must not keep the group alive.
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
