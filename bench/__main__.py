"""``python -m bench``: run the benchmark groups, print the table, write the JSON.

    python -m bench                      # everything (under 5 minutes on 2 cores)
    python -m bench --only latency       # one group, plus the references it needs
    python -m bench --smoke --json out.json   # every figure, a few samples each
    python -m bench --against REV --rounds 3  # an A/B of this checkout and git REV

Run it from the repository root: actors in child processes import the
benchmark's commands from ``bench.commands``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import report
from bench.common import Sizes
from bench.runner import GROUPS, REFERENCE_GROUPS, ROOT, run_group

#: The order groups run in: references first, the heaviest tree last, then Ray,
#: whose after-effects slow this VM down (bench.latency.run_ray).
ORDER = (
    "raw",
    "references",
    "latency",
    "throughput",
    "noack",
    "payloads",
    "spawn",
    "scale",
    "ray",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="actorgrpc benchmarks, each figure with its ratio to references "
        "measured in the same run.",
    )
    parser.add_argument(
        "--only",
        metavar="GROUPS",
        help=f"comma-separated groups to run, of: {', '.join(ORDER)} "
        "(the reference groups raw and references are added unless --no-refs)",
    )
    parser.add_argument(
        "--no-refs", action="store_true", help="do not add the reference groups to --only"
    )
    parser.add_argument("--n", type=int, help="round trips per latency figure (default 2000)")
    parser.add_argument("--duration", type=float, help="seconds per throughput figure (default 2)")
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny run (seconds) that still makes every figure"
    )
    parser.add_argument(
        "--against",
        metavar="REV",
        help="an A/B instead: run the target groups in turns here and at git REV",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of an A/B (default 3; each side per round)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=ROOT / "bench" / "results.json",
        help="where to write the results",
    )
    return parser


def _groups(only: str | None, no_refs: bool) -> list[str]:
    if not only:
        return list(ORDER)
    wanted = {g.strip() for g in only.split(",") if g.strip()}
    unknown = wanted - set(GROUPS)
    if unknown:
        raise SystemExit(
            f"unknown group(s): {', '.join(sorted(unknown))}; choose from {', '.join(ORDER)}"
        )
    if not no_refs and wanted - set(REFERENCE_GROUPS):
        wanted |= set(REFERENCE_GROUPS)
    return [g for g in ORDER if g in wanted]


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    """Run the groups; print the table; write the JSON."""
    args = _parser().parse_args(argv)
    groups = _groups(args.only, args.no_refs)
    # SIGTERM unwinds like Ctrl-C, so that the running group is stopped too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sizes = Sizes.pick(args.smoke, args.n, args.duration)
    workdir = Path(tempfile.mkdtemp(prefix="actorgrpc-bench-"))
    t0 = time.perf_counter()
    load_before = os.getloadavg()

    def show(group: str, text: str) -> None:
        sys.stderr.write(f"[{time.perf_counter() - t0:6.1f}s] {group}: {text}\n")
        sys.stderr.flush()

    if args.against:
        from bench import ab

        ab_groups = [g for g in groups if g in ab.AB_GROUPS] if args.only else list(ab.AB_GROUPS)
        doc = ab.run_ab(args.against, ab_groups, sizes, args.rounds, workdir, show)
        out = args.json.with_name("ab.json") if args.json.name == "results.json" else args.json
        ab.write(doc, out)
        print(ab.table(doc))
        print(f"\nwritten to {out}")
        if doc["errors"]:
            sys.stderr.write("\nerrors:\n" + "".join(f"  {e}\n" for e in doc["errors"]))
            sys.stderr.write(f"logs of each group are kept in {workdir}\n")
            return 1
        shutil.rmtree(workdir, ignore_errors=True)
        return 0

    results: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    timings: dict[str, float] = {}
    for i, group in enumerate(groups, 1):
        show(group, f"starting (group {i} of {len(groups)})")
        try:
            run = run_group(group, sizes, workdir, show)
        except KeyboardInterrupt:
            sys.stderr.write(f"interrupted during {group}; its processes are stopped\n")
            return 130
        results.update(run.results)
        errors.extend(run.errors)
        timings[group] = round(run.seconds, 2)
        if run.leftovers:
            errors.append(f"{group}: {run.leftovers} process(es) left behind (killed)")
    meta = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "versions": {
            n: _version(n) for n in ("grpcio", "protobuf", "pykka", "thespian", "ray", "actorgrpc")
        },
        "groups": groups,
        "group_seconds": timings,
        "seconds": round(time.perf_counter() - t0, 2),
        "sizes": dataclasses.asdict(sizes),
        "errors": errors,
        "ratio": "value / reference value, both from this run; lower is better for times, "
        "memory and CPU, higher for rates",
    }
    doc = report.build(results, meta)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=1) + "\n")
    print(report.table(doc))
    print(f"\n{len(results)} measurements in {meta['seconds']}s; written to {args.json}")
    if errors:
        sys.stderr.write("\nerrors:\n" + "".join(f"  {e}\n" for e in errors))
        sys.stderr.write(f"logs of each group are kept in {workdir}\n")
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
