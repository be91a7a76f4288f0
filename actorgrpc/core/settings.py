"""The settings of a tree: chosen once at the arbiter, carried unchanged to every actor."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from actorgrpc.core.consts import DEFAULT_MAX_MESSAGE_SIZE
from actorgrpc.core.flow import DEFAULT_MAILBOX_LIMIT

__all__ = ["DEFAULT_REQUEST_TIMEOUT", "Settings"]

#: Seconds a request may take by default (Orleans' 30 s), unless ``timeout()`` says.
DEFAULT_REQUEST_TIMEOUT = 30.0


@dataclass(frozen=True)
class Settings:
    """What every process of a tree runs with; frozen, and pickled to process actors.

    The arbiter validates them (``arbiter(...)``'s parameters); its transport,
    its actors and every child process read this one object.
    """

    #: The interface servers bind (the arbiter's; its children bind the same).
    host: str = "127.0.0.1"
    #: Whether pickled values are accepted and sent.
    allow_pickle: bool = True
    #: Largest message accepted or sent, in bytes.
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    #: Requests queued for one actor, or one outgoing stream, before senders wait.
    mailbox_limit: int = DEFAULT_MAILBOX_LIMIT
    #: Seconds plain code waits for room in a full mailbox before failing.
    send_wait: float = 30.0
    #: The tree's secret (None: calls are not checked). Travels inside the
    #: pickled spawn spec (a pipe to the child), never in argv or env.
    secret: str | None = None
    #: TLS certificates (the remote layer's ``TLSConfig``), or None for plaintext.
    tls: object | None = None
    #: Logging level of child processes.
    log_level: int = logging.WARNING
    #: Seconds every request may take before its future fails with
    #: ActorTimeout (None: no deadline), unless ``actorgrpc.timeout()`` says.
    request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT
