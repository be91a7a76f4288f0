"""``python -m actorgrpc`` and the ``actorgrpc`` console script: see actorgrpc.cli."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``actorgrpc`` command line; return its exit code."""
    from actorgrpc.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
