"""The supervisor link's plain data (``core.interfaces``) and its wire form, both ways.

``Handshake`` <-> ``HandshakeRequest`` and ``Notice`` <-> ``NotifyRequest``:
the Supervisor client writes them, the Supervisor service reads them. A
notice's info travels as the ``Value`` it was packed into
(``envelopes.EncodedInfo``), decoded only when someone reads it.
"""

from __future__ import annotations

from actorgrpc.core.interfaces import Handshake, Notice
from actorgrpc.remote import wire
from actorgrpc.remote.envelopes import EncodedInfo
from actorgrpc.v1 import supervisor_pb2

__all__ = ["handshake_from_pb", "handshake_to_pb", "notice_from_pb", "notice_to_pb"]

# The fields that are the same, by name and meaning, on both sides.
_HANDSHAKE = ("aid", "name", "address", "pid", "kind", "language", "spawn_token")
_NOTICE = ("aid", "state", "session_token", "error", "traceback")


def handshake_to_pb(request: Handshake) -> supervisor_pb2.HandshakeRequest:
    """The wire form of a handshake."""
    return supervisor_pb2.HandshakeRequest(**{f: getattr(request, f) for f in _HANDSHAKE})


def handshake_from_pb(request: supervisor_pb2.HandshakeRequest) -> Handshake:
    """A handshake as the supervisor reads it."""
    return Handshake(**{f: getattr(request, f) for f in _HANDSHAKE})


def notice_to_pb(notice: Notice) -> supervisor_pb2.NotifyRequest:
    """The wire form of a notify."""
    out = supervisor_pb2.NotifyRequest(**{f: getattr(notice, f) for f in _NOTICE})
    info = notice.info
    if isinstance(info, EncodedInfo):
        out.info.CopyFrom(info.value)
    elif info is not None:
        out.info.CopyFrom(wire.encode(dict(info), allow_pickle=False))
    return out


def notice_from_pb(request: supervisor_pb2.NotifyRequest) -> Notice:
    """A notify as the supervisor reads it (its info decoded only when asked for)."""
    info = EncodedInfo(request.info) if request.HasField("info") else None
    return Notice(**{f: getattr(request, f) for f in _NOTICE}, info=info)
