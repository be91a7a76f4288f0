"""A script that spawns process actors at import time, with no ``__main__`` guard.

multiprocessing's forkserver and spawn start methods have a process actor's
child import the script that started the arbiter; without the guard, the
script spawns again there, which multiprocessing refuses. The user is told so
in one line, without multiprocessing's bootstrap error and its tracebacks, and
nothing is left running.
"""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest

from actorgrpc.testing import wait_for

SCRIPT = """\
from actorgrpc import arbiter, spawn

with arbiter(start_method={method!r}):
    spawn().result(30)
print("spawned")
"""


def _in_session(sid: int) -> list[psutil.Process]:
    """The live processes of session ``sid``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (OSError, psutil.Error):
            pass
    return found


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_spawning_at_import_time_is_explained_in_one_line(tmp_path, method):
    script = tmp_path / "unguarded.py"
    script.write_text(SCRIPT.format(method=method))
    # A session of its own: whatever it starts can be found after it exits.
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1 and "spawned" not in out
    last = err.strip().splitlines()[-1]
    assert last.endswith(
        f"ended before it started: its process re-ran {script}, which spawns process actors "
        "when imported: put that code under `if __name__ == '__main__':`"
    ), err
    # The script's own uncaught error, and nothing from the child.
    assert err.count("Traceback") == 1 and "bootstrapping" not in err, err
    assert err.count("spawns process actors") == 1, err
    wait_for(lambda: not _in_session(proc.pid), timeout=15, what="the script's processes to exit")
