"""Process figures for ``info()['system']``, from psutil."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import psutil

__all__ = ["system_info"]

# Thread actors share a process: compute its figures at most this often.
_MAX_AGE = 0.5
_lock = threading.Lock()
_cache: dict[str, Any] = {"pid": 0, "at": 0.0, "info": {}, "proc": None}


def system_info() -> dict[str, Any]:
    """Memory, CPU, threads, open files and sockets of this process.

    ``open_files`` counts regular files; ``connections`` counts sockets of
    every kind (TCP, UDP, Unix), or -1 when they cannot be read.
    """
    now = time.monotonic()
    with _lock:
        pid = os.getpid()
        if _cache["pid"] != pid:  # first call, or a forked child
            _cache.update(pid=pid, at=0.0, proc=psutil.Process(pid))
        if now - _cache["at"] > _MAX_AGE:
            _cache["info"] = _read(_cache["proc"])
            _cache["at"] = now
        return dict(_cache["info"])


def _read(proc: psutil.Process) -> dict[str, Any]:
    with proc.oneshot():
        mem = proc.memory_info()
        info: dict[str, Any] = {
            "pid": proc.pid,
            "memory_rss": mem.rss,
            "memory_vms": mem.vms,
            "cpu_percent": proc.cpu_percent(None),
            "num_threads": proc.num_threads(),
        }
        try:
            info["open_files"], info["connections"] = _open_files_and_sockets(proc)
        except (psutil.Error, OSError):
            info["open_files"] = info["connections"] = -1
    return info


def _open_files_and_sockets(proc: psutil.Process) -> tuple[int, int]:
    if not sys.platform.startswith("linux"):
        return len(proc.open_files()), len(proc.net_connections("all"))
    # One pass over /proc/PID/fd. psutil's net_connections() parses the whole
    # host's socket tables in Python: ~9 ms per call in an actor process
    # here, which delayed each spawn's first notify by as much.
    files = sockets = 0
    fds = f"/proc/{proc.pid}/fd"
    for name in os.listdir(fds):
        try:
            target = os.readlink(f"{fds}/{name}")
        except OSError:  # closed since the listing
            continue
        if target.startswith("socket:"):
            sockets += 1
        elif target.startswith("/") and os.path.isfile(target):
            files += 1
    return files, sockets
