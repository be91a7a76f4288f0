"""A client of a tree that is already running: ``connect()`` and its ``Client``.

A second process (a web server, a notebook, the command line) talks to a
running tree as a process actor's child does: a Transport of its own whose
``arbiter_address`` is the tree's, its IO loop on a daemon thread. It is not
an actor: it sends anonymously (a command it calls sees ``request.caller``
None, the core's "outside client"), and its replies come back on the
mailbox streams it opened. It never becomes this process's current
transport, so an arbiter in the same process keeps its own, and
``actorgrpc.send`` keeps meaning "the tree of this process".
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from actorgrpc.core.actor import check_spawn_params
from actorgrpc.core.commands import find_command
from actorgrpc.core.errors import (
    ActorError,
    ActorNotAvailable,
    ActorNotFound,
    ActorTimeout,
    PermissionDenied,
    rebuild,
)
from actorgrpc.core.futures import ActorFuture, new_future, running_loop
from actorgrpc.core.interfaces import current_transport, set_current_transport
from actorgrpc.core.proxy import ActorProxy, format_address, parse_address
from actorgrpc.core.settings import Settings
from actorgrpc.remote import wire
from actorgrpc.remote.connection import open_channel
from actorgrpc.remote.security import SECRET_ENV, TLSConfig
from actorgrpc.remote.status import STATUS_BY_CODE
from actorgrpc.remote.transport import Transport
from actorgrpc.v1 import mailbox_pb2, supervisor_pb2, supervisor_pb2_grpc

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "DEFAULT_TIMEOUT",
    "Client",
    "client_tls",
    "connect",
    "summary_dict",
    "unavailable_error",
]

#: Seconds ``connect`` waits for the tree to answer, and ``actors()`` for the tree.
DEFAULT_TIMEOUT = 10.0
_MAILBOX = mailbox_pb2.DESCRIPTOR.services_by_name["Mailbox"].full_name
_SUPERVISOR = supervisor_pb2.DESCRIPTOR.services_by_name["Supervisor"].full_name
#: An ActorError class for each gRPC status a failed call may end with.
_ERROR_BY_STATUS = {status: code for code, status in STATUS_BY_CODE.items()}
# What an HTTP/2 client says first (the preface, then an empty SETTINGS frame):
# a gRPC server answers it with its own SETTINGS.
_H2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def connect(
    address: str | tuple[str, int],
    *,
    secret: str | None = None,
    tls: TLSConfig | Mapping[str, Any] | None = None,
    pickle: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> Client:
    """A client of the tree whose arbiter serves at ``address``; use it with ``with``.

    ::

        with connect('127.0.0.1:8060', secret=SECRET) as tree:
            tree.send('worker', 'ping').result(5)           # 'pong'
            proxy = tree.spawn(concurrency='thread').result(10)
            tree.send(proxy, 'echo', 'hi').result(5)         # 'hi'

        async with connect('127.0.0.1:8060') as tree:         # in a coroutine
            await tree.send('worker', 'ping')

    ``address`` is ``'host:port'`` or a ``(host, port)`` tuple (``arb.address``).
    ``secret`` defaults to ``$ACTORGRPC_SECRET``. ``tls`` is the mapping
    ``arbiter(tls=...)`` takes (its ``cert`` and ``key`` identify the client,
    as mutual TLS needs), or just ``{'ca': ...}`` to check a tree that does not
    ask for client certificates. ``pickle`` (True) lets values without a typed
    form travel pickled, both ways. Entering checks the tree within
    ``timeout`` seconds: a wrong secret raises PermissionDenied, a tree that
    speaks TLS when the client does not (or the other way round), or nothing
    listening, raise ActorNotAvailable, no answer ActorTimeout.

    The client is thread-safe and meant to live long: open one per process
    and share it. Without ``with``, call ``open()`` and ``close()``.
    """
    return Client(address, secret=secret, tls=tls, pickle=pickle, timeout=timeout)


class Client:
    """A connection to a running tree from outside it (made by :func:`connect`).

    Its methods return what plain code and actors get inside a tree: from
    plain code a future with ``.result(timeout)`` (awaitable too), and in a
    coroutine an asyncio future of the caller's loop, to ``await``. Proxies in
    replies are ordinary ActorProxy objects: pass them to ``send``, or in
    messages. A command the client calls sees ``request.caller`` None.
    """

    def __init__(
        self,
        address: str | tuple[str, int],
        *,
        secret: str | None = None,
        tls: TLSConfig | Mapping[str, Any] | None = None,
        pickle: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if isinstance(address, tuple):
            address = format_address(address)
        if not isinstance(address, str):
            raise TypeError(f"connect: address must be 'host:port', not {address!r}")
        #: The tree's address, as ``host:port``.
        self.address = format_address(parse_address(address))
        if secret is None:
            secret = os.environ.get(SECRET_ENV) or None
        if secret is None:
            raise ValueError(
                f"connect: no secret given and ${SECRET_ENV} is not set; every tree has one "
                "(arb.secret; `actorgrpc run` prints it)"
            )
        if not isinstance(secret, str) or not secret or not secret.isprintable():
            raise ValueError("connect: the secret must be a non-empty printable str")
        if not isinstance(pickle, bool):
            raise TypeError(f"connect: pickle must be True or False, not {pickle!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ValueError(f"connect: timeout must be a number of seconds > 0, not {timeout!r}")
        #: Seconds to wait for the tree when connecting, and for ``actors()``.
        self.timeout = float(timeout)
        self._tls = client_tls(tls)
        self._settings = Settings(allow_pickle=pickle, secret=secret, tls=self._tls)
        self._lock = threading.Lock()
        self._transport: Transport | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._supervisor: Any = None

    def __repr__(self) -> str:
        state = "open" if self._transport is not None else "closed"
        return f"<Client of {self.address} {state}>"

    # -- life ---------------------------------------------------------------

    def open(self) -> Client:
        """Connect: start the IO thread and check the tree; raises when it does not answer.

        Blocks up to ``timeout`` seconds (``async with`` runs it in a thread).
        """
        with self._lock:
            if self._thread is not None:
                raise RuntimeError(f"this client of {self.address} is already open")
            self._ready.clear()
            self._failure = None
            thread = self._thread = threading.Thread(
                target=lambda: asyncio.run(self._main()), name="actorgrpc-client", daemon=True
            )
            thread.start()
            self._ready.wait()
            failure = self._failure
            if failure is None:
                return self
            thread.join()
            self._thread = None
        if isinstance(failure, grpc.aio.AioRpcError):
            raise self._explain(failure, probe=True) from None
        raise failure

    def close(self) -> None:
        """Close the streams, the IO loop and its thread; pending requests fail.

        Waits until they are gone; closing a closed client does nothing.
        """
        with self._lock:
            thread, transport, stop = self._thread, self._transport, self._stop
            if thread is None:
                return
            self._transport = None
            if transport is not None and stop is not None:
                try:
                    transport.loop.call_soon_threadsafe(stop.set)
                except RuntimeError:  # the loop has ended already
                    pass
            if thread is not threading.current_thread():
                thread.join()
            self._thread = None

    def __enter__(self) -> Client:
        # An open client (``connect(...).open()``) may be entered too.
        return self if self._transport is not None else self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Client:
        if self._transport is not None:
            return self
        return await asyncio.to_thread(self.open)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.close)

    async def _main(self) -> None:
        """The IO thread's life: start, check the tree, serve requests until close()."""
        settings = self._settings
        self._stop = stop = asyncio.Event()
        transport: Transport | None = None
        channel: grpc.aio.Channel | None = None
        try:
            transport = mine = Transport(settings, arbiter_address=parse_address(self.address))
            previous = current_transport()
            await mine.start()
            # start() makes it this process's transport: give that back (an
            # arbiter's, or none), so that plain code's send() keeps its tree.
            if current_transport() is mine:
                set_current_transport(previous)
            channel = open_channel(settings, self.address)
            health: Any = health_pb2_grpc.HealthStub(channel)  # its stub types no methods
            answer = await health.Check(
                health_pb2.HealthCheckRequest(service=_MAILBOX),
                timeout=self.timeout,
                metadata=mine.metadata,
            )
            if answer.status != health_pb2.HealthCheckResponse.SERVING:
                raise ActorNotAvailable(f"{self.address} is shutting down")
        except BaseException as exc:
            self._failure = exc
            if channel is not None:
                await channel.close(None)
            if transport is not None and transport.loop is not None:
                await transport.close(grace=0)
            self._ready.set()
            return
        assert transport is not None and channel is not None  # for mypy: started above
        self._supervisor = supervisor_pb2_grpc.SupervisorStub(channel)
        self._transport = transport
        self._ready.set()
        try:
            await stop.wait()
        finally:
            await channel.close(None)
            await transport.close(grace=0.1)

    def _explain(self, err: grpc.aio.AioRpcError, probe: bool = False) -> ActorError:
        """The ActorError a failed call to the tree's server means.

        ``probe``: when UNAVAILABLE, ask the server whether it speaks TLS
        (blocking: never on the IO loop).
        """
        code, details = err.code(), " ".join((err.details() or "").split())
        if code == grpc.StatusCode.UNAVAILABLE:
            if probe:
                return unavailable_error(self.address, details, self._tls, min(self.timeout, 2.0))
            return ActorNotAvailable(f"{self.address}: {details}")
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return PermissionDenied(f"{self.address} refused this client: wrong secret ({details})")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return ActorTimeout(f"no answer from {self.address} within {self.timeout:g}s")
        if code in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND):
            return ActorNotFound(
                f"{self.address} is not an actorgrpc node ({details or code.name})"
            )
        error_code = _ERROR_BY_STATUS.get(code)
        if error_code is not None:
            return rebuild(error_code, code.name, f"{self.address}: {details}", "")
        return ActorError(f"{self.address}: {code.name}: {details}")

    def _transport_or_raise(self) -> Transport:
        transport = self._transport
        if transport is None:
            raise RuntimeError(
                f"this client of {self.address} is not open: use `with connect(...)` or open()"
            )
        return transport

    # -- talking to the tree -------------------------------------------------

    def send(
        self, target: ActorProxy | str, action: str, *args: Any, **kwargs: Any
    ) -> ActorFuture[Any]:
        """Send ``action`` to ``target`` (a proxy, an aid, a name or 'arbiter').

        A future of the reply, or None for a command declared ``ack=False``.
        """
        cmd = find_command(action) if isinstance(action, str) else None
        ack = cmd.ack if cmd is not None else True
        fut = self._transport_or_raise().request(None, target, action, args, kwargs, ack=ack)
        return cast("ActorFuture[Any]", fut)

    def spawn(self, **kwargs: Any) -> ActorFuture[ActorProxy]:
        """Spawn an actor in the tree: a future with ``.aid`` set at once, of its proxy.

        The keywords of ``actorgrpc.spawn``; hooks and an ``actor_class`` travel
        pickled, so the tree must be able to import them.
        """
        params = check_spawn_params(kwargs)
        transport = self._transport_or_raise()
        fut = transport.request(None, "arbiter", "spawn", (), params, ack=True, tagged=True)
        fut.aid = params["aid"]
        return cast("ActorFuture[ActorProxy]", fut)

    def info(self, target: ActorProxy | str = "arbiter") -> ActorFuture[dict[str, Any]]:
        """A future of ``target``'s ``info()`` dict (the arbiter's: the whole tree's)."""
        return self.send(target, "info")

    def actors(self) -> ActorFuture[list[dict[str, Any]]]:
        """A future of the tree as the arbiter sees it: one dict per actor, the arbiter first.

        Keys: ``aid``, ``name`` ('' when unnamed), ``proxy`` (an ActorProxy),
        ``address``, ``kind``, ``language``, ``pid``, ``state`` (ACTOR_STATES)
        and ``info_state`` ('running', ...), ``uptime``, ``memory_rss``,
        ``commands_handled``, ``last_notified``, ``supervisor``, ``info`` (its
        latest ``info()``, or ``{'unreadable': why}``) and ``node``: '' while a
        tree runs on one host (the cluster layer will name the actor's node).
        """
        transport = self._transport_or_raise()
        stub, timeout, allow_pickle = self._supervisor, self.timeout, self._settings.allow_pickle
        fut, settle = new_future(
            "arbiter", f"from {self.address} to Supervisor.Info", running_loop()
        )

        def decode(value: Any) -> Any:
            return wire.decode(value, allow_pickle=allow_pickle)

        async def call() -> None:
            try:
                response = await stub.Info(
                    supervisor_pb2.InfoRequest(), timeout=timeout, metadata=transport.metadata
                )
                settle(True, [summary_dict(s, decode) for s in response.actors])
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                    settle(False, _not_an_arbiter(self.address))
                else:
                    settle(False, self._explain(err))
            except Exception as exc:
                settle(False, exc)

        _on_loop(transport, call)
        return cast("ActorFuture[list[dict[str, Any]]]", fut)


def _on_loop(transport: Transport, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run the coroutine ``make()`` makes on the transport's IO loop (from any thread)."""
    try:
        asyncio.run_coroutine_threadsafe(make(), transport.loop)
    except RuntimeError:  # the loop closed under us: the client is closing
        raise ActorNotAvailable("the client is closed") from None


def _not_an_arbiter(address: str) -> ActorNotFound:
    return ActorNotFound(
        f"{address} does not serve {_SUPERVISOR}: it is not a tree's arbiter "
        "(a process actor's own node?); connect to the arbiter's address"
    )


def summary_dict(
    summary: supervisor_pb2.ActorSummary, decode: Callable[[Any], Any]
) -> dict[str, Any]:
    """One ActorSummary of Supervisor.Info as a plain dict; ``decode`` reads its info Value.

    An info that cannot be read (a pickled value the reader refuses or
    cannot load) shows as ``{'unreadable': why}``, as the arbiter's own
    records do.
    """
    ref = summary.ref
    info: Any = None
    if summary.HasField("info"):
        try:
            info = decode(summary.info)
        except ActorError as exc:
            info = {"unreadable": f"{type(exc).__name__}: {exc}"}
    return {
        "aid": ref.aid,
        "name": ref.name,
        "proxy": wire.proxy_from_ref(ref),
        "address": ref.address,
        "node": "",
        "kind": summary.kind,
        "language": summary.language,
        "pid": summary.pid,
        "state": summary.state,
        "info_state": summary.info_state,
        "uptime": summary.uptime,
        "memory_rss": summary.memory_rss,
        "commands_handled": summary.commands_handled,
        "last_notified": summary.last_notified,
        "supervisor": summary.supervisor,
        "info": info,
    }


# -- TLS ------------------------------------------------------------------------


@dataclass(frozen=True)
class _TrustOnly(TLSConfig):
    """TLS for a client with no certificate of its own: it checks the tree's against ``ca``.

    A Transport always serves too; the client's server is never told to
    anyone (the client sends anonymously), and without a certificate it cannot
    serve TLS, so it takes loopback-only local credentials.
    """

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Credentials that check the tree's certificate and present none."""
        return grpc.ssl_channel_credentials(root_certificates=self.ca)

    def server_credentials(self) -> grpc.ServerCredentials:
        """Loopback-only credentials for the client's own unadvertised server."""
        return grpc.local_server_credentials(grpc.LocalConnectionType.LOCAL_TCP)


def client_tls(tls: TLSConfig | Mapping[str, Any] | None) -> TLSConfig | None:
    """A client's TLS: as ``arbiter(tls=...)`` takes it, or ``{'ca': ...}`` alone.

    ValueError or TypeError when it is neither.
    """
    if tls is None or isinstance(tls, TLSConfig) or not isinstance(tls, Mapping):
        return TLSConfig.load(tls)
    if tls.get("cert") is not None or tls.get("key") is not None:
        return TLSConfig.load(tls)
    unknown = set(tls) - {"cert", "key", "ca", "mutual"}
    if unknown:
        raise TypeError(f"tls: unknown keys {sorted(unknown)}; use cert, key, ca")
    ca = tls.get("ca")
    if isinstance(ca, str | Path):
        try:
            ca = Path(ca).read_bytes()
        except OSError as exc:
            raise ValueError(f"tls: cannot read the ca file {ca!s}: {exc.strerror}") from None
    if not isinstance(ca, bytes) or not ca:
        raise ValueError(
            "tls: give the tree's 'ca' certificate (and the client's 'cert' and 'key' "
            "under mutual TLS)"
        )
    return _TrustOnly(cert=b"", key=b"", ca=ca)


def _probe(address: str, timeout: float) -> str:
    """What speaks at ``address``: 'tls', 'mutual' (TLS that wants a client certificate),
    'plain', or '' when nothing answers.

    It only asks whether TLS is spoken: it checks no certificate and sends
    nothing but a TLS hello and an HTTP/2 preface.
    """
    host, port = parse_address(address)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            try:
                secured = context.wrap_socket(raw)
            except ssl.SSLError:
                return "plain"  # no TLS hello came back
            with secured:
                secured.sendall(_H2_HELLO)
                try:
                    answer = secured.recv(9)
                except ssl.SSLError:  # an alert: certificate required
                    return "mutual"
                # A TLS server that wants a certificate ends the connection here.
                return "tls" if answer else "mutual"
    except OSError:
        return ""


def unavailable_error(
    address: str, details: str, tls: TLSConfig | None, timeout: float = 2.0
) -> ActorNotAvailable:
    """Why a call to ``address`` was UNAVAILABLE: nothing listens, or TLS on one side only.

    ``tls`` is what the caller connected with; when the server closed the
    connection, it is asked (within ``timeout`` seconds) whether it speaks TLS.
    """
    if "refused" not in details.lower():
        spoken = _probe(address, timeout)
        if tls is None and spoken == "tls":
            return ActorNotAvailable(
                f"{address} speaks TLS and this client does not: give it the tree's CA "
                "certificate (tls={'ca': ...}; --cacert)"
            )
        if tls is None and spoken == "mutual":
            return ActorNotAvailable(
                f"{address} speaks mutual TLS and this client does not: give it the tree's CA "
                "certificate and a client certificate of that CA (tls={'ca', 'cert', 'key'}; "
                "--cacert, --cert, --key)"
            )
        if isinstance(tls, _TrustOnly) and spoken == "mutual":
            return ActorNotAvailable(
                f"{address} speaks mutual TLS: it asks for a client certificate of its CA, and "
                "this client has none (tls={'ca', 'cert', 'key'}; --cert, --key)"
            )
        if tls is not None and spoken == "plain":
            return ActorNotAvailable(
                f"{address} does not speak TLS and this client does: connect without tls "
                "(no --cacert, --cert, --key)"
            )
        if tls is not None and spoken:
            return ActorNotAvailable(f"the TLS handshake with {address} failed: {details}")
    return ActorNotAvailable(
        f"cannot reach {address}: is an actorgrpc node listening there? ({details})"
    )
