"""An A/B of two versions of actorgrpc in one run: ``python -m bench --against REV``.

The other version is checked out from git (a temporary worktree) and each
group runs in turns, this checkout then that one (the order swapped every
round), so that both meet the same minutes of a shared, noisy machine. Each
side's targets are computed from its own run, each figure against the
references measured beside it; the table shows both, and the change.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import report
from bench.common import Sizes
from bench.runner import ROOT, run_group

__all__ = ["run_ab"]

#: The groups whose targets an A/B judges (issue 13): round trips, thread
#: latency and throughput, 1,000 in flight, spawn; plus their references.
AB_GROUPS = ("raw", "references", "latency", "throughput", "spawn")


def _worktree(rev: str, into: Path) -> Path:
    path = into / "other"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev],
        check=True,
        capture_output=True,
    )
    return path


def _remove_worktree(path: Path) -> None:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
        check=False,
        capture_output=True,
    )


def _targets(results: dict[str, dict[str, Any]], meta: dict[str, Any]) -> dict[str, float]:
    """Each target's current figure (a ratio, or the value itself), by its text."""
    out = {}
    for entry in report.build(results, meta)["figures"].values():
        for target in entry["targets"]:
            if target["current"] is not None:
                out[f"{entry['label']}: {target['text']}"] = target["current"]
    return out


def _values(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Each measured figure's value (p50, or the value), by its key."""
    out = {}
    for key, record in results.items():
        value = record.get("p50", record.get("value")) if isinstance(record, dict) else None
        if isinstance(value, int | float):
            out[key] = float(value)
    return out


def run_ab(
    rev: str,
    groups: list[str],
    sizes: Sizes,
    rounds: int,
    workdir: Path,
    show: Callable[[str, str], None],
) -> dict[str, Any]:
    """Run ``groups`` ``rounds`` times on each side; the document of both sides' targets."""
    other = _worktree(rev, Path(tempfile.mkdtemp(prefix="actorgrpc-ab-")))
    sides = {"this": ROOT, rev: other}
    per_round: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    values: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    errors: list[str] = []
    try:
        for n in range(rounds):
            order = list(sides) if n % 2 == 0 else list(reversed(sides))
            merged: dict[str, dict[str, dict[str, Any]]] = {side: {} for side in sides}
            for group in groups:
                for side in order:
                    where = workdir / f"round{n}" / side.replace("/", "_")
                    where.mkdir(parents=True, exist_ok=True)
                    show(group, f"round {n + 1} of {rounds}, {side}")
                    run = run_group(group, sizes, where, show, root=sides[side])
                    merged[side].update(run.results)
                    errors.extend(f"{side}: {e}" for e in run.errors)
            for side in sides:
                per_round[side].append(_targets(merged[side], {"groups": groups}))
                values[side].append(_values(merged[side]))
    finally:
        _remove_worktree(other)
    rows = []
    for key in per_round["this"][0] if per_round["this"] else []:
        old = [r[key] for r in per_round[rev] if key in r]
        new = [r[key] for r in per_round["this"] if key in r]
        if not old or not new:
            continue
        a, b = statistics.median(old), statistics.median(new)
        rows.append({"target": key, rev: a, "this": b, "change": (b - a) / a if a else None})
    figures = []
    for key in sorted(values["this"][0]) if values["this"] else []:
        old = [r[key] for r in values[rev] if key in r]
        new = [r[key] for r in values["this"] if key in r]
        if old and new:
            figures.append({"figure": key, rev: old, "this": new})
    return {
        "against": rev,
        "rounds": rounds,
        "groups": groups,
        "rows": rows,
        "figures": figures,
        "errors": errors,
    }


def table(doc: dict[str, Any]) -> str:
    """The A/B as a Markdown table: each target's figure on both sides, and the change."""
    rev = doc["against"]
    lines = [
        f"| target (median of {doc['rounds']} rounds, each side against its own references) "
        f"| {rev} | this | change |",
        "|---|---:|---:|---:|",
    ]
    for row in doc["rows"]:
        change = "" if row["change"] is None else f"{row['change'] * 100:+.1f}%"
        lines.append(f"| {row['target']} | {row[rev]:.3g} | {row['this']:.3g} | {change} |")
    return "\n".join(lines)


def write(doc: dict[str, Any], path: Path) -> None:
    """Save the A/B document as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
