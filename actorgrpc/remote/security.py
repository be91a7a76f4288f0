"""Who may talk to a tree: the shared secret, TLS, and where a server may listen.

Every arbiter has a secret (given, read from ``ACTORGRPC_SECRET``, or
generated). Every call to every server of the tree carries it in the
``authorization: Bearer <secret>`` metadata, checked by a server interceptor;
children receive it inside their pickled spawn spec, never in argv or the
environment. TLS (and mutual TLS) protects it on the network.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

__all__ = [
    "AUTH_HEADER",
    "SECRET_ENV",
    "AuthInterceptor",
    "TLSConfig",
    "check_listen",
    "resolve_secret",
]

log = logging.getLogger("actorgrpc")

#: The environment variable an arbiter (and the CLI) read the secret from.
SECRET_ENV = "ACTORGRPC_SECRET"
#: The metadata key carrying ``Bearer <secret>``.
AUTH_HEADER = "authorization"


def resolve_secret(secret: str | None) -> str:
    """The secret to use: the one given, else ``$ACTORGRPC_SECRET``, else a new one."""
    if secret is None:
        secret = os.environ.get(SECRET_ENV) or secrets.token_urlsafe(32)
    if not isinstance(secret, str) or len(secret) < 16 or not secret.isprintable():
        raise ValueError("secret must be a printable str of at least 16 characters")
    return secret


def auth_metadata(secret: str) -> tuple[tuple[str, str], ...]:
    """The call metadata that proves knowledge of ``secret``."""
    return ((AUTH_HEADER, f"Bearer {secret}"),)


def _read(value: str | bytes | Path | None, what: str) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str | Path):
        try:
            return Path(value).read_bytes()
        except OSError as exc:
            raise ValueError(
                f"tls: cannot read the {what} file {value!s}: {exc.strerror}"
            ) from None
    raise TypeError(f"tls: the {what} must be a path or bytes, not {type(value).__name__}")


@dataclass(frozen=True)
class TLSConfig:
    """Certificates for a tree's servers and clients (PEM bytes).

    ``cert`` and ``key`` serve every process of the tree and identify it as a client;
    ``ca`` is what peers are checked against; ``mutual`` makes servers
    require client certificates signed by ``ca``.
    """

    cert: bytes
    key: bytes
    ca: bytes | None = None
    mutual: bool = False

    @classmethod
    def load(cls, value: TLSConfig | Mapping[str, Any] | None) -> TLSConfig | None:
        """From a TLSConfig, or a dict: ``cert``, ``key``, ``ca`` (paths or bytes), ``mutual``."""
        if value is None or isinstance(value, TLSConfig):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"tls must be a dict or a TLSConfig, not {type(value).__name__}")
        unknown = set(value) - {"cert", "key", "ca", "mutual"}
        if unknown:
            raise TypeError(f"tls: unknown keys {sorted(unknown)}; use cert, key, ca, mutual")
        cert, key = _read(value.get("cert"), "cert"), _read(value.get("key"), "key")
        if not cert or not key:
            raise ValueError("tls needs both a cert and a key")
        mutual = bool(value.get("mutual", False))
        ca = _read(value.get("ca"), "ca")
        if mutual and not ca:
            raise ValueError("tls: mutual TLS needs a ca to check client certificates against")
        return cls(cert=cert, key=key, ca=ca, mutual=mutual)

    def server_credentials(self) -> grpc.ServerCredentials:
        """Credentials for a process's server."""
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)], root_certificates=self.ca, require_client_auth=self.mutual
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Credentials for a process's channels (presenting its certificate)."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_listen(host: str, tls: TLSConfig | None, insecure: bool) -> None:
    """Refuse to serve beyond loopback without TLS, unless told ``insecure=True``."""
    if is_loopback(host) or tls is not None:
        return
    if not insecure:
        raise ValueError(
            f"refusing to listen on {host} without TLS: the secret would cross the network "
            "in clear. Pass tls={'cert':..., 'key':..., 'ca':...}, or insecure=True if you "
            "really mean it"
        )
    log.warning(
        "listening on %s without TLS (insecure=True): anyone on the path can "
        "read the secret and the messages",
        host,
    )


Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Rejects every call that does not carry the tree's secret."""

    def __init__(self, secret: str) -> None:
        self._expected = f"Bearer {secret}".encode()

    def _allowed(self, metadata: Any) -> bool:
        for key, value in metadata or ():
            if key == AUTH_HEADER:
                given = value.encode() if isinstance(value, str) else bytes(value)
                return hmac.compare_digest(given, self._expected)
        return False

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None or self._allowed(handler_call_details.invocation_metadata):
            return handler
        return _rejecting(handler, handler_call_details.method)


def _rejecting(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    async def reject(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        log.warning(
            "rejected a call to %s from %s: missing or wrong secret", method, context.peer()
        )
        await context.abort(
            grpc.StatusCode.UNAUTHENTICATED,
            f"{method}: missing or wrong secret (send metadata '{AUTH_HEADER}: Bearer <secret>')",
        )

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(reject)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(reject)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(reject)
    return grpc.unary_unary_rpc_method_handler(reject)
