"""A process actor's child: how it starts, serves and ends.

``process_main`` is the entry point a ProcessRunner starts in the child (the
forkserver has imported ``PRELOAD`` already): it imports the modules that
define commands, starts the child's own transport, runs the actor, and
exits with its exit code, written first where its runner reads it (the
forkserver, which reports it otherwise, may be gone by then).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import os
import signal
import sys
from typing import NoReturn

from actorgrpc.core.actor import set_system_figures
from actorgrpc.core.consts import ACTOR_ACTION_TIMEOUT, ACTOR_STATES
from actorgrpc.hosting.system import system_info
from actorgrpc.remote.transport import Transport
from actorgrpc.supervision.runners import TERMINATED_EXIT_CODE, ActorSpec

__all__ = ["PRELOAD", "in_actor_process", "process_main"]

log = logging.getLogger("actorgrpc")

#: Modules the forkserver imports before its first fork: a child then costs a
#: fork, not imports of grpc, protobuf and the runtime.
PRELOAD = (
    "actorgrpc.hosting.child",
    "actorgrpc.remote.server",
    "actorgrpc.remote.connection",
)

_in_actor_process = False


def in_actor_process() -> bool:
    """True inside a spawned actor's process."""
    return _in_actor_process


def process_main(spec: ActorSpec) -> None:
    """Entry point of a process actor (runs in the child)."""
    global _in_actor_process
    _in_actor_process = True
    if spec.environ is not None:  # the arbiter's, as it was at the spawn
        os.environ.clear()
        os.environ.update(spec.environ)
    # Ctrl-C reaches the whole process group: the arbiter decides, not us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=spec.settings.log_level, format="%(asctime)s %(name)s %(process)d: %(message)s"
    )
    for module in spec.command_modules:
        if module in ("__main__", "__mp_main__") or module in sys.modules:
            continue
        try:
            importlib.import_module(module)
        except Exception as exc:
            log.warning("actor %s: cannot import %s for its commands: %r", spec.aid, module, exc)
    set_system_figures(system_info)
    code = asyncio.run(_process_actor(spec))
    sys.stdout.flush()
    sys.stderr.flush()
    _exit(spec, code)


def _exit(spec: ActorSpec, code: int) -> NoReturn:
    """End the child with ``code``, told first to its runner (as the OS will tell it: 0-255)."""
    if spec.exit_code is not None:
        spec.exit_code.value = code & 0xFF
    os._exit(code)


async def _process_actor(spec: ActorSpec) -> int:
    transport = Transport(spec.settings, arbiter_address=spec.arbiter_address)
    await transport.start()
    actor = spec.make_actor(transport, transport.supervisor_client())
    transport.main_actor = actor
    # Requests whose stream breaks say how their actor ended: the arbiter knows.
    transport.obituary_soon = transport.obituary_from_arbiter
    loop = asyncio.get_running_loop()

    def terminated() -> None:
        # SIGTERM (terminate()) stops a running actor gracefully, with an exit
        # code that says who asked; one still starting just ends.
        if actor.state < ACTOR_STATES.RUN:
            _exit(spec, TERMINATED_EXIT_CODE)
        actor.stop(None, TERMINATED_EXIT_CODE)

    loop.add_signal_handler(signal.SIGTERM, terminated)
    parent = multiprocessing.parent_process()
    if parent is not None and parent.sentinel is not None:
        sentinel = parent.sentinel

        def orphaned() -> None:
            loop.remove_reader(sentinel)
            log.warning("actor %s: the arbiter is gone; exiting", spec.aid)
            actor.stop(exit_code=3)
            loop.call_later(ACTOR_ACTION_TIMEOUT / 2, _exit, spec, 3)

        loop.add_reader(sentinel, orphaned)
    try:
        await actor.main()
    except Exception as exc:
        # Tell the supervisor why, so that the death record has a reason.
        log.exception("actor %s failed", spec.aid)
        await actor.report_failure(exc)
    finally:
        await transport.close(grace=0.5)
    return actor.exit_code or 0
