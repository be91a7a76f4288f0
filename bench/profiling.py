"""Where the time goes: cProfile inside the actors, for docs/performance.md.

    python -m bench.profiling [--n 3000] [--duration 3] [--keep DIR]

The first three are profiled in the sending and in the receiving actor's
process (on the IO loop's thread, where a process actor's commands, routing
and gRPC glue all run):

- ``rtt``: a process actor times ``--n`` pings to another, one at a time;
- ``d1000``: a process actor keeps 1,000 pings in flight to another;
- ``echo1MB``: a process actor times echoes of 1 MB from another;
- ``notify``: the arbiter's IO loop, and the thread actors (their profiles
  added up), while 300 thread and 10 process actors idle and notify once a
  second.

cProfile counts wall time on a process actor's IO loop (its only busy Python
thread) and, for thread actors, each thread's CPU time (``time.thread_time``)
so that waits for the GIL or a lock cost nothing. For each scenario it prints
the share of busy time (profiled time less the loop's sleep in ``epoll.poll``)
by area, the top functions by own time, then the actorgrpc functions with
their own time (tottime) and with what they call (cumtime). grpc's Cython coroutines
are invisible to cProfile: their time is counted in the Python frame that
awaits them (``grpc/aio/_call.py _write`` on a client stream,
``Outbox._resume`` on a server stream, which steps ``context.write``). cProfile
slows Python code more than C code, so Python's share is overstated; use the
ranking, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actorgrpc import arbiter, send
from bench.actors import spawn_all

__all__ = ["main", "summarize"]

IDLE = ("select.epoll", "poll")


def _area(filename: str, name: str) -> str:
    if "/actorgrpc/" in filename and "/actorgrpc/v1/" not in filename:
        return "actorgrpc"
    if "/grpc/" in filename or "cygrpc" in name or "grpc._cython" in name:
        return "grpc"
    if "google/protobuf" in filename or "google._upb" in name:
        return "protobuf"
    if any(k in filename for k in ("/asyncio/", "selectors.py")) or any(
        k in name for k in ("_asyncio", "_contextvars", "select.epoll")
    ):
        return "asyncio"
    if "/psutil/" in filename or "psutil" in name:
        return "psutil (info for notify)"
    if "/bench/" in filename:
        return "bench (the load)"
    return "other (builtins, inspect, ...)"


def _where(filename: str, line: int, name: str) -> str:
    for marker in ("/actorgrpc/", "site-packages/", "python3.11/"):
        if marker in filename:
            filename = filename.split(marker)[-1]
            break
    return f"{filename}:{line} {name}" if filename != "~" else name


def summarize(paths: list[Path], top: int = 12) -> str:
    """A Markdown summary of one profile (or of several, added up)."""
    profile: Any = pstats.Stats(*(str(p) for p in paths))
    stats: dict[Any, Any] = profile.stats
    total = idle = 0.0
    areas: dict[str, float] = {}
    rows: list[tuple[float, float, int, str, str]] = []
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in stats.items():
        total += tottime
        if filename == "~" and IDLE[0] in name and IDLE[1] in name:
            idle += tottime
            continue
        area = _area(filename, name)
        areas[area] = areas.get(area, 0.0) + tottime
        rows.append((tottime, cumtime, ncalls, area, _where(filename, line, name)))
    busy = total - idle
    rows.sort(reverse=True)
    out = [f"busy {busy:.2f}s of {total:.2f}s profiled ({idle:.2f}s idle in epoll)", ""]
    out += ["| area | % of busy time |", "|---|---:|"]
    for area, t in sorted(areas.items(), key=lambda kv: -kv[1]):
        out.append(f"| {area} | {100 * t / busy:.1f} |")
    out += ["", "| top functions (own time) | area | calls | own % |", "|---|---|---:|---:|"]
    for tottime, _cum, ncalls, area, where in rows[:top]:
        out.append(f"| `{where}` | {area} | {ncalls} | {100 * tottime / busy:.1f} |")
    out += ["", "| actorgrpc function | calls | own % | with callees % |", "|---|---:|---:|---:|"]
    for tottime, cumtime, ncalls, _, where in [r for r in rows if r[3] == "actorgrpc"][:top]:
        out.append(
            f"| `{where}` | {ncalls} | {100 * tottime / busy:.1f} | {100 * cumtime / busy:.1f} |"
        )
    return "\n".join(out)


def _profile(
    actors: dict[str, list[Any]],
    directory: Path,
    scenario: str,
    run: Callable[[], Any],
    cpu: bool = False,
) -> dict[str, list[Path]]:
    for group in actors.values():
        for reply in [send(actor, "profile_start", cpu=cpu) for actor in group]:
            reply.result(10)
    try:
        run()
    finally:
        paths: dict[str, list[Path]] = {}
        for role, group in actors.items():
            paths[role] = [directory / f"{scenario}-{role}-{i}.prof" for i in range(len(group))]
            replies = [
                send(actor, "profile_stop", str(path))
                for actor, path in zip(group, paths[role], strict=True)
            ]
            for reply in replies:
                reply.result(30)
    return paths


SCENARIOS = ("rtt", "d1000", "echo1MB", "notify")


def main(argv: list[str] | None = None) -> int:
    """Profile the scenarios and print the summaries."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.profiling",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--n", type=int, default=3000, help="round trips of the rtt scenario")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of timed scenarios")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--threads", type=int, default=300, help="thread actors of 'notify'")
    parser.add_argument("--keep", type=Path, help="keep the .prof files in this directory")
    args = parser.parse_args(argv)
    only = [s for s in args.only.split(",") if s]
    directory = args.keep or Path(tempfile.mkdtemp(prefix="actorgrpc-profile-"))
    directory.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, list[Path]]] = {}
    arb = arbiter()
    assert arb is not None
    with arb:
        a, b = spawn_all(2, "process")
        pair = {"sender": [a], "receiver": [b]}
        send(a, "time_pings", b, 200, 5.0).result(30)  # warm
        if "rtt" in only:
            results["rtt"] = _profile(
                pair, directory, "rtt", lambda: send(a, "time_pings", b, args.n, 30.0).result(90)
            )
        if "d1000" in only:
            results["d1000"] = _profile(
                pair,
                directory,
                "d1000",
                lambda: send(a, "pipeline", b, 1000, 10_000_000, args.duration).result(90),
            )
        if "echo1MB" in only:
            results["echo1MB"] = _profile(
                pair,
                directory,
                "echo1MB",
                lambda: send(a, "time_echo", b, 1_000_000, 200, args.duration).result(90),
            )
        if "notify" in only:
            # The arbiter's IO loop while a tree idles: notifies from thread
            # actors (in process) and process actors (over gRPC).
            spawn_all(10, "process")
            threads = []
            for _ in range(0, args.threads, 100):
                threads += spawn_all(100, "thread")
            time.sleep(1.0)
            results["notify"] = _profile(
                {"arbiter": ["arbiter"], f"{len(threads)} thread actors, added up": threads},
                directory,
                "notify",
                lambda: time.sleep(args.duration),
                cpu=True,
            )
    for scenario, roles in results.items():
        for role, paths in roles.items():
            print(f"\n### {scenario}, {role}\n")
            print(summarize(paths))
    print(f"\nprofiles in {directory} (open with `python -m pstats`)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
