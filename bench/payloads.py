"""Payload sizes: a process actor echoes 100 B, 10 KB and 1 MB of bytes from another."""

from __future__ import annotations

from actorgrpc import arbiter, send
from bench.actors import spawn_all
from bench.common import Recorder, Sizes, distribution, payload_label

__all__ = ["run"]


def run(sizes: Sizes, rec: Recorder) -> None:
    """Measure echo round trips by payload size."""
    arb = arbiter()
    assert arb is not None
    with arb:
        a, b = spawn_all(2, "process")
        for size in sizes.payloads:
            label = payload_label(size)
            with rec.attempt(f"process -> process actor, echo {label} (n={sizes.payload_n})"):
                samples = send(
                    a, "time_echo", b, size, sizes.payload_n, sizes.latency_seconds
                ).result(sizes.latency_seconds + 60)
                rec[f"payload.{label}"] = distribution(samples, bytes=size)
