"""What every group shares: sizes, statistics, progress lines and the result record.

Nothing here imports grpc or actorgrpc, so that the reference groups (pykka,
Thespian, Pipe) run in processes where neither is loaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import socket
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "PROGRESS_PREFIX",
    "Recorder",
    "Sizes",
    "distribution",
    "free_port",
    "payload_label",
    "progress",
    "rate",
    "scalar",
    "skipped",
]

#: Lines a group writes on stdout with this prefix are progress, shown by the runner.
PROGRESS_PREFIX = "@@bench-progress "


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much each group measures. Every loop stops at its count or its time."""

    #: Round trips per latency figure (at most; ``latency_seconds`` bounds them too).
    n: int = 2000
    latency_seconds: float = 3.0
    #: Seconds per throughput figure.
    duration: float = 2.0
    #: Requests in flight on one stream.
    depths: tuple[int, ...] = (1, 10, 100, 1000)
    #: Senders to one actor.
    senders: int = 8
    #: Messages of the no-ack flood.
    noack: int = 50_000
    #: Actors spawned one after the other (latency distribution of a spawn).
    spawn_n: int = 10
    #: Actors spawned at once (of each kind).
    spawn_batch: int = 50
    #: Arbiter starts measured (in-process, and from a cold interpreter).
    arbiter_starts: int = 10
    cold_starts: int = 3
    #: The scale tree.
    threads: int = 1000
    processes: int = 50
    #: Seconds of each CPU window: longer than an idle actor's notify interval
    #: (actor.IDLE_NOTIFY_PERIODS periods), so that every actor notifies in it.
    cpu_window: float = 10.5
    #: Calls per second of the raw gRPC "notify" load.
    notify_rate: int = 500
    #: Payload sizes in bytes and round trips per payload.
    payloads: tuple[int, ...] = (100, 10_000, 1_000_000)
    payload_n: int = 300
    #: Reference actors for memory per actor (pykka).
    memory_actors: int = 1000
    smoke: bool = False

    @classmethod
    def pick(
        cls, smoke: bool = False, n: int | None = None, duration: float | None = None
    ) -> Sizes:
        """The full run (about 2 minutes on 2 cores) or the smoke run, with overrides.

        ``n`` sets the round trips per latency figure (and a seventh of them
        per payload); ``duration`` the seconds per throughput figure (and one
        and a half times it as the time bound of a latency figure).
        """
        out = cls.tiny() if smoke else cls()
        if n is not None:
            out = dataclasses.replace(out, n=n, payload_n=max(5, n // 7))
        if duration is not None:
            out = dataclasses.replace(
                out, duration=duration, latency_seconds=max(0.5, duration * 1.5)
            )
        return out

    @classmethod
    def tiny(cls) -> Sizes:
        """The smoke run: every figure, a handful of samples each."""
        return cls(
            n=30,
            latency_seconds=0.5,
            duration=0.2,
            senders=2,
            noack=500,
            spawn_n=2,
            spawn_batch=3,
            arbiter_starts=2,
            cold_starts=1,
            threads=20,
            processes=2,
            cpu_window=0.3,
            notify_rate=50,
            payload_n=5,
            memory_actors=50,
            smoke=True,
        )

    def to_json(self) -> str:
        """The sizes as JSON (tuples become lists)."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Sizes:
        """Sizes back from ``to_json``."""
        data = json.loads(text)
        for key in ("depths", "payloads"):
            data[key] = tuple(data[key])
        return cls(**data)


def payload_label(size: int) -> str:
    """``100`` -> ``'100B'``, ``10_000`` -> ``'10KB'``, ``1_000_000`` -> ``'1MB'``."""
    for unit, scale in (("MB", 1_000_000), ("KB", 1_000)):
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size}B"


def progress(text: str) -> None:
    """Tell the runner what is running now (shown on its stderr)."""
    sys.stdout.write(f"{PROGRESS_PREFIX}{text}\n")
    sys.stdout.flush()


def free_port() -> int:
    """A loopback port free at the time of asking."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def distribution(samples: Iterable[float], **extra: Any) -> dict[str, Any]:
    """A measured distribution of seconds: p50, p99, mean, min, max, n."""
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    return {
        "p50": _percentile(ordered, 0.5),
        "p99": _percentile(ordered, 0.99),
        "mean": sum(ordered) / len(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "n": len(ordered),
        **extra,
    }


def rate(count: int, seconds: float, **extra: Any) -> dict[str, Any]:
    """A measured rate: ``count`` events in ``seconds``."""
    return {
        "value": count / seconds if seconds > 0 else 0.0,
        "count": count,
        "seconds": seconds,
        **extra,
    }


def scalar(value: float, **extra: Any) -> dict[str, Any]:
    """A single measured value."""
    return {"value": value, **extra}


def skipped(reason: str) -> dict[str, Any]:
    """A figure that could not be measured in this run, and why."""
    return {"value": None, "skipped": reason}


class Recorder:
    """Where a group puts its measurements; saved after each one.

    Saving as it goes keeps what was measured when a group is stopped at its
    time limit.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.results: dict[str, dict[str, Any]] = {}
        self.errors: list[str] = []

    def __setitem__(self, key: str, record: dict[str, Any]) -> None:
        self.results[key] = record
        self.save()

    def error(self, what: str, exc: BaseException) -> None:
        """Note a failed measurement; the group goes on with the next one."""
        self.errors.append(f"{what}: {type(exc).__name__}: {exc}")
        self.save()

    @contextlib.contextmanager
    def attempt(self, what: str) -> Iterator[None]:
        """Announce ``what`` as progress; on failure note it and go on."""
        progress(what)
        try:
            yield
        except Exception as exc:
            self.error(what, exc)

    def save(self) -> None:
        """Write the results file atomically."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"results": self.results, "errors": self.errors}))
        os.replace(tmp, self.path)
