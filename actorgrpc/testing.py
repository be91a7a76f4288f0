"""Helpers for testing code built on actorgrpc, as ``trio.testing`` is for trio.

Nothing here is needed to run actors; these are the pieces that a test suite
of an actorgrpc application writes again and again, and that actorgrpc's own
suite uses:

- ``running_arbiter(**params)``: an arbiter on a free loopback port for the
  length of a ``with`` block, and no actor process of it left afterwards;
- ``authenticated_channel(address)`` and ``auth_metadata()``: a plain grpc
  channel (or the call metadata) that carries the tree's secret, for raw gRPC
  calls to the Mailbox, Supervisor and health services;
- ``wait_for(condition)``: poll until something becomes true, with a deadline,
  instead of sleeping for a guessed while;
- ``actor_processes()``: the live child processes of this process, for a leak
  check after each test;
- ``same(a, b)``: equality with the same types all the way down, to check
  that a value came back through the wire exactly as it went.

For example, with pytest::

    from actorgrpc import send, spawn
    from actorgrpc.testing import running_arbiter, wait_for

    def test_worker_counts():
        with running_arbiter() as arb:
            worker = spawn(name='worker').result(30)
            send(worker, 'ping').result(10)
            wait_for(lambda: arb.info()['actors'], what='the worker in the arbiter info')
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import grpc
import psutil

from actorgrpc import ActorProxy, ActorProxyMonitor, Arbiter, arbiter
from actorgrpc.core.proxy import format_address
from actorgrpc.remote.security import SECRET_ENV, TLSConfig
from actorgrpc.remote.security import auth_metadata as _secret_metadata

__all__ = [
    "STOP_TIMEOUT",
    "actor_processes",
    "auth_metadata",
    "authenticated_channel",
    "running_arbiter",
    "same",
    "wait_for",
]

_T = TypeVar("_T")

#: Seconds ``running_arbiter`` gives the processes of a stopped arbiter to be gone.
STOP_TIMEOUT = 15.0


def wait_for(
    condition: Callable[[], _T],
    timeout: float = 10.0,
    what: str = "condition",
    interval: float = 0.01,
) -> _T:
    """Call ``condition()`` until it returns something truthy, and return that.

    It is called at once, then every ``interval`` seconds. After ``timeout``
    seconds without a truthy value, raises AssertionError naming ``what``
    (write it as the thing awaited: ``what='the worker to stop'``).
    Exceptions raised by ``condition`` propagate at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def actor_processes() -> list[psutil.Process]:
    """The live descendants of this process, less multiprocessing's helpers.

    That is every actor process of an arbiter running here (whatever start
    method spawned it), and any other subprocess still running; not the
    forkserver or the resource tracker, which outlive arbiters by design, nor
    zombies. An empty list after a test means it left no process behind.
    """
    me = psutil.Process(os.getpid())
    out = []
    for child in me.children(recursive=True):
        try:
            if child.ppid() == me.pid:
                cmdline = " ".join(child.cmdline())
                if "forkserver" in cmdline or "resource_tracker" in cmdline:
                    continue
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            out.append(child)
        except psutil.NoSuchProcess:
            continue
    return out


def _process_actors(arb: Arbiter) -> list[psutil.Process]:
    """The processes of the process actors of ``arb``'s tree, as they run now."""
    monitors: list[ActorProxyMonitor] = list((arb.managed_actors or {}).values())
    for pool in arb.monitors.values():
        monitors.extend((pool.managed_actors or {}).values())
    out = []
    for monitor in monitors:
        if monitor.kind != "process" or not monitor.pid:
            continue
        try:
            out.append(psutil.Process(monitor.pid))
        except psutil.NoSuchProcess:
            continue
    return out


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@contextmanager
def running_arbiter(**params: Any) -> Iterator[Arbiter]:
    """A running arbiter for the ``with`` block; stopped, with its processes gone, after.

    ``params`` go to ``arbiter()``: by default it listens on a free port of
    127.0.0.1 and takes its secret from ``$ACTORGRPC_SECRET`` (or makes one:
    read it as ``arb.secret``). On exit it stops every actor and itself, and
    checks that no process actor of its tree is still running: any that is,
    is killed, and AssertionError names it.

    Raises RuntimeError inside an actor process (where ``arbiter()`` gives
    None), or when this process already runs an arbiter.
    """
    arb = arbiter(**params)
    if arb is None:
        raise RuntimeError("running_arbiter: an actor process cannot run an arbiter of its own")
    watched: list[psutil.Process] = []
    with arb:
        try:
            yield arb
        finally:
            watched = _process_actors(arb)
    try:
        wait_for(
            lambda: not [p for p in watched if _running(p)],
            timeout=STOP_TIMEOUT,
            what="the arbiter's actor processes to exit",
        )
    except AssertionError:
        left = [p for p in watched if _running(p)]
        described = [(p.pid, " ".join(p.cmdline())[:80]) for p in left]
        for p in left:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        raise AssertionError(f"running_arbiter: processes left behind: {described}") from None


def auth_metadata(secret: str | None = None) -> tuple[tuple[str, str], ...]:
    """The call metadata that carries ``secret``: ``(('authorization', 'Bearer …'),)``.

    ``secret`` defaults to ``$ACTORGRPC_SECRET``, the one an arbiter started
    without a secret of its own uses. Pass it as ``metadata=`` to a raw gRPC call.
    Raises ValueError when no secret is given and the variable is not set.
    """
    if secret is None:
        secret = os.environ.get(SECRET_ENV)
        if secret is None:
            raise ValueError(f"auth_metadata: no secret given and ${SECRET_ENV} is not set")
    return _secret_metadata(secret)


class _AddMetadata(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds fixed metadata to every call of a channel."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def _details(self, details: Any) -> Any:
        return details._replace(metadata=[*(details.metadata or ()), *self._metadata])

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


def authenticated_channel(
    address: str | tuple[str, int],
    secret: str | None = None,
    tls: grpc.ChannelCredentials | TLSConfig | Mapping[str, Any] | None = None,
) -> grpc.Channel:
    """A plain (synchronous) grpc channel whose every call carries the secret.

    ``address`` is ``'host:port'`` or a ``(host, port)`` tuple, as
    ``Arbiter.address`` and ``ActorProxy.address`` give it. ``secret``
    defaults to ``$ACTORGRPC_SECRET`` (see ``auth_metadata``). ``tls`` makes
    it a secure channel: grpc channel credentials, or the ``TLSConfig`` or
    dict given to ``arbiter(tls=...)`` (its certificate identifies the client,
    as mutual TLS needs). Use it as a context manager, or close it::

        with authenticated_channel(arb.address) as channel:
            stub = mailbox_pb2_grpc.MailboxStub(channel)
    """
    target = address if isinstance(address, str) else format_address(address)
    if tls is None:
        channel = grpc.insecure_channel(target)
    else:
        if isinstance(tls, grpc.ChannelCredentials):
            credentials = tls
        else:
            config = TLSConfig.load(tls)
            if config is None:  # load() gives None only for None
                raise TypeError(f"tls must be credentials, a TLSConfig or a dict, not {tls!r}")
            credentials = config.channel_credentials()
        channel = grpc.secure_channel(target, credentials)
    return grpc.intercept_channel(channel, _AddMetadata(auth_metadata(secret)))


def same(a: object, b: object) -> bool:
    """Equal, with the same types all the way down.

    Stricter than ``==`` as the wire must be: ``True`` is not ``1``, ``(1,)``
    is not ``[1]``, ``-0.0`` is not ``0.0``, and a NaN is the same as a NaN.
    Lists, tuples and dicts are compared item by item; ActorProxy objects by
    aid, name and address.
    """
    if type(a) is not type(b):
        return False
    # Both are of one type from here on: each isinstance check holds for both.
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, ActorProxy) and isinstance(b, ActorProxy):
        return (a.aid, a.name, a.address) == (b.aid, b.name, b.address)
    return bool(a == b)
