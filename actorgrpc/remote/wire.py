"""Typed values: the one codec between Python objects and ``actorgrpc.v1.Value``.

None, bool, int, float, str, bytes, list, tuple, dict with str keys and
ActorProxy have typed forms that every language reads. Anything else is
pickled, for Python peers only, when pickle is allowed; otherwise it is
refused with an error naming the type.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from typing import Any

from google.protobuf.unknown_fields import UnknownFieldSet

from actorgrpc.core.errors import BadRequest, PermissionDenied
from actorgrpc.core.proxy import ActorProxy, format_address, parse_address
from actorgrpc.v1 import value_pb2

__all__ = [
    "check_depth",
    "decode",
    "decode_kwargs",
    "encode",
    "encode_args",
    "encode_into",
    "encode_kwargs",
    "proxy_from_ref",
    "ref_from_proxy",
]

#: Containers (lists, tuples, dicts) one value may nest: well inside the 100
#: levels protobuf parsers accept, with room for envelopes and batches.
MAX_DEPTH = 32
_DECIMAL = re.compile(r"-?[0-9]+")
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_Value = value_pb2.Value
_NULL = value_pb2.NULL_VALUE_UNSPECIFIED


def ref_from_proxy(proxy: ActorProxy) -> value_pb2.ActorRef:
    """The wire form of an actor reference."""
    return value_pb2.ActorRef(
        aid=proxy.aid, name=proxy.name or "", address=format_address(proxy.address)
    )


_proxies: dict[tuple[str, str, str], ActorProxy] = {}


def proxy_from_ref(ref: value_pb2.ActorRef) -> ActorProxy:
    """An ActorProxy from its wire form."""
    key = (ref.aid, ref.name, ref.address)
    proxy = _proxies.get(key)
    if proxy is not None:
        return proxy
    try:
        address = parse_address(ref.address)
    except ValueError as exc:
        raise BadRequest(f"bad actor reference {ref.aid!r}: {exc}") from None
    proxy = ActorProxy(ref.aid, ref.name or None, address)
    if len(_proxies) > 4096:  # a cache of the peers one talks to, not a registry
        _proxies.clear()
    _proxies[key] = proxy
    return proxy


def encode(value: Any, *, allow_pickle: bool = True) -> value_pb2.Value:
    """Encode a Python value; raises BadRequest for a value with no form."""
    out = _Value()
    encode_into(out, value, allow_pickle=allow_pickle)
    return out


def encode_into(out: value_pb2.Value, value: Any, *, allow_pickle: bool = True) -> None:
    """Encode a Python value into an existing Value message (no copy)."""
    try:
        _fill(out, value, allow_pickle, MAX_DEPTH)
    except BadRequest:
        raise
    except UnicodeEncodeError as exc:
        raise BadRequest(
            f"a str that UTF-8 cannot carry ({exc.reason}): {exc.object[:40]!r}"
        ) from None
    except ValueError as exc:  # int -> str beyond Python's digit limit
        raise BadRequest(f"cannot encode the value: {exc}") from None


def _fill(out: value_pb2.Value, value: Any, allow_pickle: bool, depth: int) -> None:
    # Exact type checks first: the common cases stay fast and subclasses
    # (IntEnum, str subclasses, namedtuples) keep their Python identity via pickle.
    t = type(value)
    if value is None:
        out.null_value = _NULL
    elif t is bool:
        out.bool_value = value
    elif t is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            out.int_value = value
        else:
            out.big_int_value = str(value)
    elif t is float:
        out.double_value = value
    elif t is str:
        out.string_value = value
    elif t is bytes:
        out.bytes_value = value
    elif t is list or t is tuple:
        if not depth:
            raise _too_deep()
        lst = out.list_value
        lst.SetInParent()
        lst.tuple = t is tuple
        for item in value:
            _fill(lst.items.add(), item, allow_pickle, depth - 1)
    elif t is dict and all(type(k) is str for k in value):
        if not depth:
            raise _too_deep()
        fields = out.map_value.fields
        out.map_value.SetInParent()
        for k, v in value.items():
            _fill(fields[k], v, allow_pickle, depth - 1)
    elif isinstance(value, ActorProxy):
        out.actor_value.CopyFrom(ref_from_proxy(value.proxy))
    else:
        _pickle_into(out, value, allow_pickle)


def _too_deep() -> BadRequest:
    return BadRequest(f"value nested too deeply (more than {MAX_DEPTH} containers)")


def _pickle_into(out: value_pb2.Value, value: Any, allow_pickle: bool) -> None:
    name = f"{type(value).__module__}.{type(value).__qualname__}"
    if not allow_pickle:
        raise PermissionDenied(
            f"cannot send a value of type {name}: it has no typed form and pickle is off"
        )
    try:
        data = pickle.dumps(value, protocol=5)
    except Exception as exc:
        raise BadRequest(
            f"cannot send a value of type {name}: it cannot be pickled ({exc})"
        ) from None
    out.pickled_value.data = data
    out.pickled_value.type_name = name


def decode(value: value_pb2.Value, *, allow_pickle: bool = True) -> Any:
    """Decode a Value into a fresh Python object."""
    return _read(value, allow_pickle, MAX_DEPTH)


def _read(value: value_pb2.Value, allow_pickle: bool, depth: int) -> Any:
    kind = value.WhichOneof("kind")
    if kind is None:
        if len(UnknownFieldSet(value)):
            # A kind from a newer protocol: refuse it rather than read it as null.
            raise BadRequest("a Value of a kind this runtime does not know (a newer protocol?)")
        return None
    if kind == "null_value":
        return None
    if kind == "list_value":
        if not depth:
            raise _too_deep()
        items = [_read(v, allow_pickle, depth - 1) for v in value.list_value.items]
        return tuple(items) if value.list_value.tuple else items
    if kind == "map_value":
        if not depth:
            raise _too_deep()
        return {k: _read(v, allow_pickle, depth - 1) for k, v in value.map_value.fields.items()}
    if kind == "actor_value":
        return proxy_from_ref(value.actor_value)
    if kind == "big_int_value":
        text = value.big_int_value
        if not _DECIMAL.fullmatch(text):
            raise BadRequest(f"bad big integer {text[:40]!r}")
        try:
            return int(text)
        except ValueError:
            raise BadRequest(f"big integer of {len(text)} digits is over the limit") from None
    if kind == "pickled_value":
        return _unpickle(value.pickled_value, allow_pickle)
    return getattr(value, kind)


def check_depth(value: value_pb2.Value, depth: int = MAX_DEPTH) -> None:
    """Raise BadRequest when ``value`` nests deeper than the runtime sends."""
    kind = value.WhichOneof("kind")
    if kind == "list_value" or kind == "map_value":
        if not depth:
            raise _too_deep()
        items = value.list_value.items if kind == "list_value" else value.map_value.fields.values()
        for item in items:
            check_depth(item, depth - 1)


def _unpickle(p: value_pb2.Pickled, allow_pickle: bool) -> Any:
    if not allow_pickle:
        raise PermissionDenied(
            f"refused a pickled {p.type_name or 'value'}: pickle is off on this actor"
        )
    try:
        return pickle.loads(p.data)
    except Exception as exc:
        raise BadRequest(f"cannot unpickle a {p.type_name or 'value'}: {exc!r}") from None


def encode_args(args: Any, into: Any, *, allow_pickle: bool = True) -> None:
    """Append positional arguments to a ``repeated Value`` field."""
    for value in args:
        encode_into(into.add(), value, allow_pickle=allow_pickle)


def encode_kwargs(kwargs: Mapping[str, Any], into: Any, *, allow_pickle: bool = True) -> None:
    """Fill a ``map<string, Value>`` field with keyword arguments."""
    for key, val in kwargs.items():
        try:
            slot = into[key]
        except (TypeError, ValueError):
            raise BadRequest(f"bad keyword argument name {key!r}") from None
        encode_into(slot, val, allow_pickle=allow_pickle)


def decode_kwargs(
    fields: Mapping[str, value_pb2.Value], *, allow_pickle: bool = True
) -> dict[str, Any]:
    """Read a ``map<string, Value>`` field back into a dict."""
    return {k: decode(v, allow_pickle=allow_pickle) for k, v in fields.items()}
