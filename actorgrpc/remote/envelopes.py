"""Envelopes: the wire form of requests, replies and errors, and the core's codec of them.

An ``actorgrpc.v1.Envelope`` carries one request or reply, or a batch of
them (``expand``). ``CODEC`` is what the actor core reads and answers
envelopes with (``actorgrpc.core.interfaces.Codec``); ``EncodedInfo`` is an
actor's info as its notify carries it, read only when someone asks.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

from actorgrpc.core.errors import ActorError, ResourceExhausted, describe, rebuild
from actorgrpc.core.proxy import ActorProxy
from actorgrpc.remote import wire
from actorgrpc.v1 import mailbox_pb2, value_pb2

__all__ = [
    "BATCH",
    "CANCEL",
    "CODEC",
    "REPLY",
    "REQUEST",
    "EncodedInfo",
    "Envelope",
    "EnvelopeCodec",
    "check_size",
    "drop_reply",
    "error_from_pb",
    "error_to_pb",
    "expand",
    "gather_replies",
    "make_error_reply",
    "make_reply",
]

log = logging.getLogger("actorgrpc")

Envelope = mailbox_pb2.Envelope
REQUEST = mailbox_pb2.ENVELOPE_KIND_REQUEST
REPLY = mailbox_pb2.ENVELOPE_KIND_REPLY
BATCH = mailbox_pb2.ENVELOPE_KIND_BATCH
CANCEL = mailbox_pb2.ENVELOPE_KIND_CANCEL

#: Most envelopes, and most bytes, carried in one stream message.
MAX_BATCH = 512
MAX_BATCH_BYTES = 1024 * 1024


def expand(env: mailbox_pb2.Envelope) -> Iterable[mailbox_pb2.Envelope]:
    """The envelopes a stream message carries (itself, or its batch)."""
    # A sequence, not a generator: one per stream message, on the hot path.
    return env.batch if env.kind == BATCH else (env,)


# Results whose encoding is a few bytes.
_SMALL = frozenset({type(None), bool, int, float})


def _fits(result: Any, limit: int) -> bool:
    """True when a reply carrying ``result`` is surely within ``limit`` bytes.

    Spares the common replies ``ByteSize``, which in upb serializes the
    whole message: for a 1 MB result, a second serialization.
    """
    t = type(result)
    if t in _SMALL:
        return True
    if t is bytes:
        return len(result) + 64 <= limit
    if t is str:
        return 4 * len(result) + 64 <= limit  # UTF-8: at most 4 bytes a character
    return False


def make_reply(
    request_id: int, result: Any, allow_pickle: bool, limit: int = 0
) -> mailbox_pb2.Envelope:
    """A reply carrying ``result``; an unencodable or oversized one becomes an error reply."""
    env = Envelope(id=request_id, kind=REPLY)
    try:
        wire.encode_into(env.result, result, allow_pickle=allow_pickle)
        if limit and not _fits(result, limit):
            check_size(env, limit, "reply")
    except Exception as exc:
        return make_error_reply(request_id, exc)
    return env


def check_size(env: mailbox_pb2.Envelope, limit: int, what: str, action: str = "") -> None:
    """Raise ResourceExhausted when ``env`` is bigger than ``limit`` bytes."""
    size = env.ByteSize()
    if size > limit:
        what = f"{what} for {action!r}" if action else what
        raise ResourceExhausted(
            f"{what} of {size} bytes exceeds the limit of {limit} bytes (max_message_size)"
        )


def make_error_reply(request_id: int, exc: BaseException) -> mailbox_pb2.Envelope:
    """A reply carrying the error ``exc``."""
    return Envelope(id=request_id, kind=REPLY, error=error_to_pb(exc))


def drop_reply(env: mailbox_pb2.Envelope) -> None:
    """The reply callback of requests sent without ack: only errors are logged."""
    if env.HasField("error"):
        log.warning(
            "error in a command sent without ack: %s: %s", env.error.type, env.error.message
        )


def error_to_pb(exc: BaseException) -> mailbox_pb2.Error:
    """Describe an exception for the wire."""
    code, type_name, message, tb = describe(exc)
    return mailbox_pb2.Error(
        # The core's ErrorCode numbers are the wire's (tests/remote keep them equal).
        code=cast("mailbox_pb2.ErrorCode", code),
        type=type_name,
        message=message,
        traceback=tb,
    )


def error_from_pb(error: mailbox_pb2.Error) -> ActorError:
    """Rebuild the exception a peer described."""
    return rebuild(error.code, error.type, error.message, error.traceback)


def _read_args(
    env: mailbox_pb2.Envelope, allow_pickle: bool
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    raw = env.args
    decode = wire.decode
    args = tuple([decode(v, allow_pickle=allow_pickle) for v in raw]) if raw else ()
    kwargs = wire.decode_kwargs(env.kwargs, allow_pickle=allow_pickle) if env.kwargs else {}
    return args, kwargs


def _caller(env: mailbox_pb2.Envelope) -> ActorProxy | None:
    return wire.proxy_from_ref(env.sender) if env.HasField("sender") else None


class EncodedInfo(Mapping[str, Any]):
    """An actor's ``info()`` as a ``Value``: decoded (pickle off) when first read.

    Notifies are many and most are never looked at; Info reads a few typed
    fields straight off ``value`` (decoding every actor's info made it slow
    on big trees).
    """

    __slots__ = ("_decoded", "value")

    def __init__(self, value: value_pb2.Value) -> None:
        self.value = value
        self._decoded: dict[str, Any] | None = None

    def _dict(self) -> dict[str, Any]:
        if self._decoded is None:
            decoded = wire.decode(self.value, allow_pickle=False)
            if not isinstance(decoded, dict):
                raise TypeError(f"info is not a map: {decoded!r}"[:200])
            self._decoded = decoded
        return self._decoded

    def __getitem__(self, key: str) -> Any:
        return self._dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())


def _pack_info(info: dict[str, Any], allow_pickle: bool) -> EncodedInfo:
    return EncodedInfo(wire.encode(info, allow_pickle=allow_pickle))


def gather_replies(
    request_id: int, replies: Sequence[mailbox_pb2.Envelope], limit: int
) -> mailbox_pb2.Envelope:
    """One reply whose result lists the ``replies``' results, copied, not decoded.

    The first error among them is the reply instead; so is a list too deep
    for a peer to read or bigger than ``limit`` bytes.
    """
    out = Envelope(id=request_id, kind=REPLY)
    items = out.result.list_value
    items.SetInParent()  # an empty list is still a list
    for reply in replies:
        if reply.HasField("error"):
            return Envelope(id=request_id, kind=REPLY, error=reply.error)
        items.items.add().CopyFrom(reply.result)
    try:
        wire.check_depth(out.result)
        check_size(out, limit, "the gathered reply")
    except ActorError as exc:
        return make_error_reply(request_id, exc)
    return out


class EnvelopeCodec:
    """The core's codec (``actorgrpc.core.interfaces.Codec``) for ``actorgrpc.v1`` envelopes."""

    # Plain functions: the actor calls them once per request.
    read_args = staticmethod(_read_args)
    caller = staticmethod(_caller)
    chain = operator.attrgetter("chain")  # a C function: the fastest read there is
    reply = staticmethod(make_reply)
    error_reply = staticmethod(make_error_reply)
    pack_info = staticmethod(_pack_info)
    gather = staticmethod(gather_replies)


#: The one codec every transport uses.
CODEC = EnvelopeCodec()
