"""actorgrpc.wire: the typed-value codec, tested directly (no arbiter)."""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from enum import IntEnum

import pytest
from actorgrpc.v1 import mailbox_pb2, value_pb2

from actorgrpc import ActorProxy, BadRequest, PermissionDenied
from actorgrpc.core.proxy import format_address, parse_address
from actorgrpc.remote import wire
from actorgrpc.testing import same


@dataclass
class Point:
    """A value with no typed form: it travels pickled."""

    x: int
    y: int


class Colour(IntEnum):
    RED = 1


PROXY = ActorProxy("a1b2c3d4", "worker", ("127.0.0.1", 4321))

# (value, the oneof member it must use)
TYPED: list[tuple[object, str]] = [
    (None, "null_value"),
    (True, "bool_value"),
    (False, "bool_value"),
    (0, "int_value"),
    (-1, "int_value"),
    (2**63 - 1, "int_value"),
    (-(2**63), "int_value"),
    (2**63, "big_int_value"),
    (-(2**63) - 1, "big_int_value"),
    (3**200, "big_int_value"),
    (-(7**99), "big_int_value"),
    (1.5, "double_value"),
    (-0.0, "double_value"),
    (1e308, "double_value"),
    (5e-324, "double_value"),
    (math.inf, "double_value"),
    (-math.inf, "double_value"),
    ("", "string_value"),
    ("hello", "string_value"),
    ("héllo wörld 世界 🎉 \x00 \u200b", "string_value"),
    (b"", "bytes_value"),
    (bytes(range(256)), "bytes_value"),
    ([], "list_value"),
    ([1, "a", None, 2.5], "list_value"),
    ((), "list_value"),
    ((1, (2, (3,))), "list_value"),
    ({}, "map_value"),
    ({"a": 1, "b": [1, {"c": (None, b"x")}], "": "empty key", "ü": "ü"}, "map_value"),
    ([{"k": [(), [], {}]}, ({"t": (1, 2)},)], "list_value"),
    (PROXY, "actor_value"),
]


@pytest.mark.parametrize(
    ("value", "kind"), TYPED, ids=[f"{k}-{i}" for i, (_, k) in enumerate(TYPED)]
)
@pytest.mark.parametrize("allow_pickle", [True, False])
def test_typed_values_round_trip_exactly(value, kind, allow_pickle):
    encoded = wire.encode(value, allow_pickle=allow_pickle)
    assert encoded.WhichOneof("kind") == kind
    # Through bytes, as on the wire.
    data = encoded.SerializeToString()
    back = wire.decode(value_pb2.Value.FromString(data), allow_pickle=allow_pickle)
    assert same(back, value), (back, value)


def test_nan_round_trips_as_nan():
    back = wire.decode(wire.encode(math.nan))
    assert isinstance(back, float) and math.isnan(back)
    back = wire.decode(wire.encode([math.nan, {"x": math.nan}]))
    assert math.isnan(back[0]) and math.isnan(back[1]["x"])


def test_bool_is_not_an_int_and_int_is_not_a_float():
    assert wire.encode(True).WhichOneof("kind") == "bool_value"
    assert type(wire.decode(wire.encode(1))) is int
    assert type(wire.decode(wire.encode(1.0))) is float
    assert type(wire.decode(wire.encode(True))) is bool


def test_tuple_flag_is_on_the_wire():
    assert wire.encode((1, 2)).list_value.tuple is True
    assert wire.encode([1, 2]).list_value.tuple is False


def test_big_int_is_decimal_text():
    assert wire.encode(2**64).big_int_value == str(2**64)
    assert wire.encode(-(2**64)).big_int_value == str(-(2**64))


def test_decode_gives_fresh_objects():
    value = {"a": [1, 2]}
    encoded = wire.encode(value)
    one, two = wire.decode(encoded), wire.decode(encoded)
    one["a"].append(3)
    assert two == {"a": [1, 2]}
    assert value == {"a": [1, 2]}


def test_empty_value_reads_as_none():
    assert wire.decode(value_pb2.Value()) is None


def test_actor_value_has_aid_name_and_address():
    ref = wire.encode(PROXY).actor_value
    assert (ref.aid, ref.name, ref.address) == ("a1b2c3d4", "worker", "127.0.0.1:4321")
    nameless = wire.decode(wire.encode(ActorProxy("abc", None, ("127.0.0.1", 1))))
    assert nameless.name is None


def test_proxy_of_a_monitor_encodes_as_plain_proxy():
    from actorgrpc import ActorProxyMonitor

    monitor = ActorProxyMonitor("m1", "mon", ("127.0.0.1", 99), None, "thread")
    back = wire.decode(wire.encode(monitor))
    assert type(back) is ActorProxy
    assert (back.aid, back.name, back.address) == ("m1", "mon", ("127.0.0.1", 99))


PICKLED = [
    Point(1, 2),
    {1, 2, 3},
    frozenset({"a"}),
    {1: "one", 2: "two"},
    {"a": 1, 2: "mixed keys"},
    complex(1, 2),
    Colour.RED,
    [Point(0, 0), {"s": {4}}],
]


@pytest.mark.parametrize("value", PICKLED, ids=lambda v: type(v).__name__)
def test_values_without_typed_form_are_pickled_when_allowed(value):
    encoded = wire.encode(value, allow_pickle=True)
    back = wire.decode(value_pb2.Value.FromString(encoded.SerializeToString()), allow_pickle=True)
    assert back == value
    assert type(back) is type(value)


def test_pickled_value_names_its_type():
    encoded = wire.encode(Point(1, 2))
    assert encoded.WhichOneof("kind") == "pickled_value"
    assert encoded.pickled_value.type_name == f"{__name__}.Point"
    assert pickle.loads(encoded.pickled_value.data) == Point(1, 2)


def test_int_enum_keeps_its_identity():
    # A subclass of int must not be flattened to a plain int.
    back = wire.decode(wire.encode(Colour.RED))
    assert back is Colour.RED


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ({1, 2}, "builtins.set"),
        ({1: "a"}, "builtins.dict"),
        (Point(1, 2), "Point"),
        ([1, [2, {3}]], "builtins.set"),
    ],
)
def test_encode_with_pickle_off_names_the_type(value, type_name):
    with pytest.raises(PermissionDenied) as info:
        wire.encode(value, allow_pickle=False)
    assert type_name in str(info.value)
    assert "pickle" in str(info.value)


def test_decode_pickled_with_pickle_off_is_refused_with_the_type():
    encoded = wire.encode(Point(3, 4), allow_pickle=True)
    with pytest.raises(PermissionDenied) as info:
        wire.decode(encoded, allow_pickle=False)
    assert "Point" in str(info.value)


def test_unpicklable_value_raises_bad_request_naming_the_type():
    with pytest.raises(BadRequest) as info:
        wire.encode(lambda: None)
    assert "function" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_too_deep_nesting_is_a_bad_request():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(BadRequest):
        wire.encode(deep)


def test_bad_big_int_text_is_a_bad_request():
    with pytest.raises(BadRequest):
        wire.decode(value_pb2.Value(big_int_value="12x4"))


def test_garbage_pickle_is_a_bad_request():
    bad = value_pb2.Value(pickled_value=value_pb2.Pickled(data=b"not a pickle", type_name="x.Y"))
    with pytest.raises(BadRequest) as info:
        wire.decode(bad)
    assert "x.Y" in str(info.value)


def test_kwargs_round_trip():
    env = mailbox_pb2.Envelope()
    kwargs = {"a": 1, "b": (2, 3), "c": {"d": None}, "e": b"\x00", "f": PROXY}
    wire.encode_kwargs(kwargs, env.kwargs)
    back = wire.decode_kwargs(mailbox_pb2.Envelope.FromString(env.SerializeToString()).kwargs)
    assert same(back, kwargs)


def test_kwargs_with_pickle_off_refuse_untyped_values():
    env = mailbox_pb2.Envelope()
    with pytest.raises(PermissionDenied) as info:
        wire.encode_kwargs({"s": {1}}, env.kwargs, allow_pickle=False)
    assert "builtins.set" in str(info.value)


@pytest.mark.parametrize(
    ("address", "text"),
    [
        (("127.0.0.1", 80), "127.0.0.1:80"),
        (("localhost", 50051), "localhost:50051"),
        (("::1", 9000), "[::1]:9000"),
    ],
)
def test_addresses_format_and_parse_back(address, text):
    assert format_address(address) == text
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["", "127.0.0.1", "127.0.0.1:", ":80", "host:port", "h:-1"])
def test_malformed_addresses_raise_value_error(text):
    with pytest.raises(ValueError, match="host:port"):
        parse_address(text)


def test_ref_with_bad_address_is_a_bad_request():
    bad = value_pb2.Value(actor_value=value_pb2.ActorRef(aid="x", address="nowhere"))
    with pytest.raises(BadRequest) as info:
        wire.decode(bad)
    assert "'x'" in str(info.value)
