"""``python -m actorgrpc``: start an arbiter from the command line."""

from __future__ import annotations

import argparse
import sys

from actorgrpc.arbiter import arbiter


def main(argv: list[str] | None = None) -> int:
    """Start an arbiter in the foreground, print its address, serve until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="actorgrpc", description="Start an actorgrpc arbiter.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    args = parser.parse_args(argv)

    def announce(arb: object) -> None:
        host, port = arb.address  # type: ignore[attr-defined]
        print(f"arbiter {arb.aid} listening on {host}:{port}", flush=True)  # type: ignore[attr-defined]

    arb = arbiter(host=args.host, port=args.port, start=announce)
    assert arb is not None
    arb.start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
