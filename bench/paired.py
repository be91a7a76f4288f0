"""References measured in turns with the figures they judge.

A machine shared with others is faster in one minute than in the next, so a
ratio between figures measured a minute apart carries that drift. For the
figures with a ratio target, the latency and throughput groups therefore
measure the reference again, in turns with actorgrpc: a few hundred round
trips of the reference, then as many of actorgrpc, and again, several times.
Each side's samples are pooled, and the ratio is taken between the pools.

The references run as they do in their own groups: raw gRPC from a plain
grpc.aio client process to the echo service in another process; pykka in a
process of its own (``python -m bench.paired KIND PARAMS_JSON``, which
prints what it measured as JSON). Ray, also measured through this module,
is compared differently: see ``bench.latency.run_ray``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["LATENCY_TURNS", "TURNS", "in_turns", "raw_bidi", "reference"]

#: Turns of each side, for throughput.
TURNS = 4
#: Turns of each side, for round trips: more and shorter, because this
#: machine's speed changes from one second to the next (the p50 of one turn
#: of 500 pings moved by up to 30% between neighbouring turns, on both
#: sides): finer interleaving lets both sides sample the same moments.
LATENCY_TURNS = 10
_ROOT = Path(__file__).resolve().parent.parent


def in_turns(
    turns: int, theirs: Callable[[int], Any], ours: Callable[[int], Any]
) -> tuple[list[Any], list[Any]]:
    """Call ``theirs(i)`` then ``ours(i)`` for each turn; the pooled results of each."""
    pooled_theirs: list[Any] = []
    pooled_ours: list[Any] = []
    for i in range(turns):
        pooled_theirs.extend(theirs(i))
        pooled_ours.extend(ours(i))
    return pooled_theirs, pooled_ours


def raw_bidi(address: str, n: int, seconds: float) -> list[float]:
    """Raw gRPC bidi ping-pong round trips from a client process to the echo service."""
    # Imported here: the reference processes of this module load no gRPC.
    from bench.actors import client_samples
    from bench.wire_client import run_client

    (result,) = run_client(
        [{"op": "raw_stream_latency", "address": address, "n": n, "seconds": seconds}],
        seconds + 30,
    )
    return list(client_samples(result))


def reference(kind: str, limit: float = 180.0, **params: Any) -> Any:
    """Run a reference (``pykka_rtt``, ``pykka_rate``, ``ray_figures``) in a process of
    its own; what it measured."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.paired", kind, json.dumps(params)],
        cwd=_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=limit,
        check=False,
    )
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"reference {kind} failed: {tail}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _measure(kind: str, params: dict[str, Any]) -> Any:
    from bench import references
    from bench.common import Sizes

    if kind == "pykka_rtt":
        return references.pykka_asks(params["n"], params["seconds"])
    if kind == "pykka_rate":
        return list(references.pykka_window(params["seconds"]))
    if kind == "ray_figures":
        return references.ray_figures(Sizes.from_json(params["sizes"]))
    raise ValueError(f"unknown reference {kind!r}")


def main(argv: list[str]) -> int:
    """``python -m bench.paired KIND PARAMS_JSON``: print the reference's result as JSON."""
    print(json.dumps(_measure(argv[0], json.loads(argv[1]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
