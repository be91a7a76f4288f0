"""`python -m bench --smoke`: every figure is measured, with its ratio, and nothing is left behind.

Not a timed test: the numbers of a smoke run mean nothing; what matters is
that the benchmark runs through, reports every figure of its catalogue and
stops everything it started.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Figures a smoke run may skip, and the module whose absence allows it.
OPTIONAL = {"ray.": "ray", "thespian.": "thespian"}


def _importable(module: str) -> bool:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def _catalogue() -> list[str]:
    code = "from bench.report import FIGURES; print('\\n'.join(f.key for f in FIGURES))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
    )
    return out.stdout.split()


def _left_behind(bench_pid: int) -> list[str]:
    """Live processes that carry the marker of that bench run's groups."""
    left = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            marker = proc.environ().get("ACTORGRPC_BENCH_RUN", "")
            if marker.startswith(f"{bench_pid}-"):
                left.append(f"{proc.pid} {' '.join(proc.cmdline())[:100]}")
        except (psutil.Error, OSError):
            continue
    return left


@pytest.mark.timeout(300)
def test_smoke_run_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        pytest.fail(f"the smoke run did not finish in 240s:\n{stderr[-3000:]}")
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{stdout[-2000:]}\n{stderr[-3000:]}"
    assert not _left_behind(proc.pid), _left_behind(proc.pid)

    doc = json.loads(out.read_text())
    assert doc["meta"]["errors"] == []
    figures = doc["figures"]
    assert sorted(figures) == sorted(_catalogue())
    optional = {prefix for prefix, module in OPTIONAL.items() if not _importable(module)}
    for key, entry in figures.items():
        assert "value" in entry and "ratio" in entry, key
        may_skip = any(key.startswith(prefix) for prefix in optional)
        if entry["skipped"] and may_skip:
            continue
        assert not entry["missing"], f"{key} was not measured"
        assert isinstance(entry["value"], (int, float)), f"{key}: {entry}"
        # A ratio is missing only when its reference was skipped (Ray, when not installed).
        if entry["ratio"] is None:
            ref = figures[entry["ref"]]
            assert ref["skipped"] and any(entry["ref"].startswith(p) for p in optional), key
    # The table went to stdout, progress to stderr.
    assert "process actor -> process actor" in stdout
    assert "latency:" in stderr


def test_only_runs_the_groups_asked_for(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    args = ["--smoke", "--only", "noack", "--no-refs", "--json", str(out)]
    subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    doc = json.loads(out.read_text())
    assert doc["meta"]["groups"] == ["noack"]
    noack = doc["figures"]["noack.process"]
    assert noack["detail"]["lost"] == 0
    assert noack["ratio"] is None  # its reference was not run
    assert doc["figures"]["lat.process_process"]["missing"]
