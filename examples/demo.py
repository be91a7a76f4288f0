"""The demo tree `make run` starts: process and thread actors talking to each other.

    python examples/demo.py [--port PORT] [--for SECONDS]

It spawns a thread actor that keeps a tally and two process workers; each
worker, on its periodic task, squares a number and reports to the tally by
name. The tree is printed with pids and addresses, then the grpcurl lines to
inspect it; it serves until Ctrl-C (or SECONDS), then stops cleanly.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from actorgrpc import Actor, arbiter, command, send, spawn


@command()
def tally(request, who: str, value: int) -> int:
    """Count a report in the tally actor's extra; answer the total so far."""
    counts = request.actor.extra.setdefault("reports", {})
    counts[who] = counts.get(who, 0) + 1
    request.actor.extra["total"] = request.actor.extra.get("total", 0) + value
    return request.actor.extra["total"]


@command()
def square(request, x: int) -> int:
    """Answer x squared."""
    return x * x


async def work(actor: Actor) -> None:
    """A worker's periodic task: square a number, tell the tally."""
    n = actor.extra.get("n", 0) + 1
    actor.extra["n"] = n
    value = await send(actor.proxy, "square", n)
    await send("tally", "tally", actor.name, value)


async def setup(arb: Actor) -> None:
    """The arbiter's start hook: build the tree, then print it."""
    await spawn(name="tally", concurrency="thread")
    workers = [spawn(name=f"worker-{i}", periodic_task=work) for i in (1, 2)]
    for w in workers:
        await w
    print_tree(arb)


def print_tree(arb: Actor) -> None:
    host, port = arb.address
    grpcurl = (
        ".venv/bin/grpcurl"
        if os.path.exists(".venv/bin/grpcurl")
        else (shutil.which("grpcurl") or "grpcurl")
    )
    print(f"actorgrpc arbiter {arb.aid} serving on {host}:{port} (pid {os.getpid()})\n")
    print(f"  {'name':<10} {'aid':<10} {'kind':<8} {'pid':>7}  address")
    print(f"  {arb.name:<10} {arb.aid:<10} {'arbiter':<8} {os.getpid():>7}  {host}:{port}")
    for m in arb.managed_actors.values():
        where = f"{m.address[0]}:{m.address[1]}"
        print(f"  {m.name or '':<10} {m.aid:<10} {m.kind:<8} {m.pid:>7}  {where}")
    addr = f"{host}:{port}"
    secret = getattr(arb, "secret", None)
    auth = ""
    if secret:
        print(
            f"\nThe tree's secret (every call must carry it):\n  export ACTORGRPC_SECRET={secret}"
        )
        auth = '-H "authorization: Bearer $ACTORGRPC_SECRET" '
    print("\nInspect it with grpcurl:")
    print(f"  {grpcurl} -plaintext {auth}{addr} list")
    print(f"  {grpcurl} -plaintext {auth}{addr} actorgrpc.v1.Supervisor/Info")
    print(
        f'  {grpcurl} -plaintext {auth}-d \'{{"target":"arbiter","action":"ping"}}\' '
        f"{addr} actorgrpc.v1.Mailbox/Send"
    )
    print(
        f'  {grpcurl} -plaintext {auth}-d \'{{"target":"tally","action":"info"}}\' '
        f"{addr} actorgrpc.v1.Mailbox/Send"
    )
    print("\nOr with the actorgrpc command line:")
    print(f"  .venv/bin/actorgrpc ps {addr}")
    print(f"  .venv/bin/actorgrpc send {addr} worker-1 square 12")
    print("\nServing until Ctrl-C.", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    parser.add_argument(
        "--for",
        dest="seconds",
        type=float,
        default=0,
        help="stop by itself after SECONDS (default: serve until Ctrl-C)",
    )
    args = parser.parse_args()

    def start(arb: Actor):
        if args.seconds:
            arb._loop.call_later(args.seconds, arb.stop)
        return setup(arb)

    arb = arbiter(port=args.port, start=start)
    assert arb is not None
    arb.start()
    print("stopped cleanly.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
