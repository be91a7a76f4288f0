"""The arbiter, assembled: ``arbiter()`` and the Arbiter that runs a tree.

This is where the layers meet: the parameters become one frozen Settings,
the remote layer's Transport serves them, and the supervision layer's
ArbiterBase does the arbiter's work on it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import threading
from typing import TYPE_CHECKING, Any

from actorgrpc.core.actor import set_system_figures
from actorgrpc.core.consts import DEFAULT_MAX_MESSAGE_SIZE
from actorgrpc.core.flow import DEFAULT_MAILBOX_LIMIT
from actorgrpc.core.settings import DEFAULT_REQUEST_TIMEOUT, Settings
from actorgrpc.hosting.child import PRELOAD, in_actor_process, process_main
from actorgrpc.hosting.system import system_info
from actorgrpc.remote.security import TLSConfig, check_listen, resolve_secret
from actorgrpc.remote.transport import Transport
from actorgrpc.supervision.arbiter import ArbiterBase
from actorgrpc.supervision.runners import START_METHODS

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

__all__ = ["Arbiter", "arbiter"]

log = logging.getLogger("actorgrpc")

_arbiter: Arbiter | None = None
_lock = threading.Lock()


def arbiter(**params: Any) -> Arbiter:
    """This process's arbiter, created on first call.

    Inside a spawned actor's process there is no arbiter, and it returns
    None (pulsar's rule; the annotation names what all other code gets).
    Run it in the foreground until ``stop()`` (pulsar style)::

        arbiter(start=setup).start()

    or in the background, for scripts, the REPL and tests::

        with arbiter() as arb:
            proxy = spawn(name='worker').result(10)

    or in the background of a coroutine, whose loop it does not block (it
    starts and stops in a worker thread; futures are then awaitable)::

        async with arbiter() as arb:
            proxy = await spawn(name='worker')

    Parameters: ``host`` ('127.0.0.1') and ``port`` (0: a free one) to bind,
    hooks ``start``, ``stopping`` and ``periodic_task`` for the arbiter itself,
    ``name`` ('arbiter'), ``pickle`` (True: allow pickled values),
    ``start_method`` ('forkserver' or 'spawn') for process actors,
    ``max_message_size`` in bytes, ``max_mailbox`` (requests queued for one
    actor before senders wait), ``secret`` (default ``$ACTORGRPC_SECRET`` or
    a new one), ``tls`` (``{'cert', 'key', 'ca', 'mutual'}``), ``insecure``
    (allow a non-loopback host without TLS), ``log_level``,
    ``request_timeout`` (30.0: seconds every request of the tree may take
    before its future fails with ActorTimeout, unless an
    ``actorgrpc.timeout()`` block says otherwise; None for none); others land
    in ``params``.

    The arbiter's loop is this process's IO loop, which also runs its gRPC
    server and channels: the standard commands that look after the tree
    (``ping``, ``echo``, ``info``, ``notify``, ``stop``, ``spawn``,
    ``kill_actor``) run there. Every other command sent to the arbiter, users'
    own and ``run``, runs on its command loop: an event loop on a thread of
    its own (``actorgrpc-arbiter-commands``, made on first need, ended with
    the arbiter), started in the order they came, so that a slow one stalls
    neither the server nor thread actors nor plain code's sends. There
    ``get_actor()`` is the arbiter and ``send``/``spawn`` return awaitable
    futures. The caller of a command still running when the arbiter stops gets
    ActorNotAvailable; an async one is cancelled, a sync one is left to return
    on its thread. The ``periodic_task`` hook runs on the command loop too
    (a tick is skipped while the last one still runs); ``start`` and
    ``stopping`` run on the IO loop (they begin and end the
    tree's life and use its state): keep them from blocking, or hand slow
    work to an actor.
    """
    global _arbiter
    if in_actor_process():
        return None  # type: ignore[return-value]  # pulsar: no arbiter in an actor's process
    with _lock:
        if _arbiter is not None and not _arbiter.finished:
            if params:
                raise RuntimeError(
                    "an arbiter already exists in this process; call arbiter() "
                    "without parameters to get it"
                )
            return _arbiter
        _arbiter = Arbiter(**params)
        return _arbiter


def _forget(arb: Arbiter) -> None:
    global _arbiter
    with _lock:
        if _arbiter is arb:
            _arbiter = None


class Arbiter(ArbiterBase):
    """The root of a tree: it hosts the Supervisor service and spawns actors.

    Made by ``arbiter(**params)`` (see there for the parameters); run it with
    ``start()`` in the foreground, or ``with`` (``async with`` in a coroutine)
    in the background.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "arbiter",
        pickle: bool = True,
        start_method: str = "forkserver",
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_mailbox: int = DEFAULT_MAILBOX_LIMIT,
        log_level: int | str = logging.WARNING,
        secret: str | None = None,
        tls: TLSConfig | Mapping[str, Any] | None = None,
        insecure: bool = False,
        request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
        start: Any = None,
        stopping: Any = None,
        periodic_task: Any = None,
        **params: Any,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise TypeError(f"arbiter: host must be a non-empty str, not {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
            raise ValueError(f"arbiter: port must be an int from 0 to 65535, not {port!r}")
        if not isinstance(name, str) or not name:
            raise TypeError(f"arbiter: name must be a non-empty str, not {name!r}")
        if start_method not in START_METHODS:
            raise ValueError(
                f"arbiter: start_method must be one of {START_METHODS}, not {start_method!r}"
            )
        if (
            isinstance(max_message_size, bool)
            or not isinstance(max_message_size, int)
            or max_message_size < 1024
        ):
            raise ValueError(
                f"arbiter: max_message_size must be an int >= 1024, not {max_message_size!r}"
            )
        for flag, value in (("pickle", pickle), ("insecure", insecure)):
            if not isinstance(value, bool):
                raise TypeError(f"arbiter: {flag} must be True or False, not {value!r}")
        if isinstance(log_level, str) and log_level.upper() in logging.getLevelNamesMapping():
            log_level = logging.getLevelNamesMapping()[log_level.upper()]
        if isinstance(log_level, bool) or not isinstance(log_level, int):
            raise TypeError(f"arbiter: log_level must be a logging level, not {log_level!r}")
        if isinstance(max_mailbox, bool) or not isinstance(max_mailbox, int) or max_mailbox < 2:
            raise ValueError(f"arbiter: max_mailbox must be an int >= 2, not {max_mailbox!r}")
        if request_timeout is not None and (
            isinstance(request_timeout, bool)
            or not isinstance(request_timeout, int | float)
            or not 0 < request_timeout < math.inf
        ):
            raise ValueError(
                f"arbiter: request_timeout must be a number of seconds > 0 or None, "
                f"not {request_timeout!r}"
            )
        hooks = {"start": start, "stopping": stopping, "periodic_task": periodic_task}
        for key, hook in hooks.items():
            if hook is not None and not callable(hook):
                raise TypeError(
                    f"arbiter: the {key} hook must be callable, not {type(hook).__name__}"
                )
        tls_config = TLSConfig.load(tls)
        check_listen(host, tls_config, insecure)
        #: The tree's secret: every call must carry ``authorization: Bearer <secret>``.
        self.secret: str = resolve_secret(secret)
        settings = Settings(
            host=host,
            allow_pickle=pickle,
            max_message_size=max_message_size,
            mailbox_limit=max_mailbox,
            secret=self.secret,
            tls=tls_config,
            log_level=log_level,
            request_timeout=None if request_timeout is None else float(request_timeout),
        )
        set_system_figures(system_info)
        self._transport_impl = Transport(settings, port=port)
        super().__init__(
            transport=self._transport_impl,
            name=name,
            hooks={k: v for k, v in hooks.items() if v is not None},
            params=params,
            start_method=start_method,
            child_entry=process_main,
            preload=PRELOAD,
        )
        #: Logging level of the tree's child processes.
        self.log_level = log_level
        self._thread: threading.Thread | None = None

    # -- running ------------------------------------------------------------

    def start(self) -> None:
        """Run the arbiter in this thread until ``stop()``, SIGINT or SIGTERM."""
        if self._thread is not None or self._ready.is_set():
            raise RuntimeError("this arbiter is already running")
        asyncio.run(self._main(foreground=True))
        if self._error is not None:
            raise self._error

    def __enter__(self) -> Arbiter:
        if self._thread is not None or self._ready.is_set():
            raise RuntimeError("this arbiter is already running")
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._main(foreground=False)),
            name="actorgrpc-arbiter",
            daemon=True,
        )
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Arbiter:
        # Starting waits for the server: in a thread, so the caller's loop runs on.
        return await asyncio.to_thread(self.__enter__)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Stopping waits for every actor to end: in a thread too.
        await asyncio.to_thread(self.__exit__, exc_type, exc, tb)

    def stop(self, exc: BaseException | None = None, exit_code: int | None = None) -> None:
        """Stop every actor, then the arbiter; from plain code, wait until done."""
        super().stop(exc, exit_code)
        thread = self._thread
        if (
            thread is not None
            and thread is not threading.current_thread()
            and not self._transport.in_io_thread()
            and not self.on_command_loop()  # the arbiter's end waits for that thread
        ):
            thread.join()

    async def _main(self, foreground: bool) -> None:
        transport = self._transport_impl
        try:
            await transport.start(self.supervisor)
        except BaseException as exc:
            self._error = exc if isinstance(exc, Exception) else RuntimeError(str(exc))
            self._ready.set()
            self._finished.set()
            _forget(self)
            return
        transport.arbiter_address = transport.address
        transport.resolver = self.supervisor.lookup
        transport.obituary = self.supervisor.obituary
        transport.obituary_soon = self.supervisor.obituary_soon
        transport.on_connection_lost = self.supervisor.address_lost
        transport.main_actor = self
        loop = asyncio.get_running_loop()
        if foreground:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stop)
        self._ready.set()
        try:
            await self.main()
        finally:
            await transport.close(grace=0.5)
            self._finished.set()
            _forget(self)
