"""Properties of actorgrpc.wire, checked with hypothesis: hostile and odd values, tested.

Every typed value (None, bool, int of any size, float, str, bytes, list, tuple,
dict with str keys, ActorProxy, nested) must come back exactly as it went, with
its types: through encode/decode, through the Value's bytes, inside an Envelope,
and through real actors. Everything else must fail with an ActorError that names
what was wrong, never a RecursionError or a raw library exception.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from enum import IntEnum
from typing import Any

import pytest
from actorgrpc.v1 import mailbox_pb2, value_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actorgrpc import (
    ActorError,
    ActorProxy,
    ActorProxyMonitor,
    BadRequest,
    PermissionDenied,
    arbiter,
    send,
    spawn,
)
from actorgrpc.core.proxy import parse_address
from actorgrpc.remote import wire
from actorgrpc.testing import same

SECRET = "wire-properties-" + "p" * 16
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

PROPS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(PROPS, max_examples=60)


# -- comparing: same() (actorgrpc.testing), and the kinds a Value uses -------------------


def kinds(value: value_pb2.Value) -> set[str]:
    """Every oneof member used in ``value``, recursively."""
    kind = value.WhichOneof("kind")
    out = {kind or "unset"}
    if kind == "list_value":
        for item in value.list_value.items:
            out |= kinds(item)
    elif kind == "map_value":
        for item in value.map_value.fields.values():
            out |= kinds(item)
    return out


# -- strategies ---------------------------------------------------------------------------

hosts = st.sampled_from(
    ["127.0.0.1", "localhost", "::1", "10.1.2.3", "fe80::1", "example.org", "actor-7.internal"]
)
proxies = st.builds(
    ActorProxy,
    aid=st.text(max_size=24),
    # An ActorRef's empty name reads as "no name" (None), as names are never empty.
    name=st.none() | st.text(min_size=1, max_size=24),
    address=st.tuples(hosts, st.integers(min_value=0, max_value=65535)),
)
ints = st.one_of(
    st.integers(),
    st.integers(min_value=INT64_MIN - 2**70, max_value=INT64_MAX + 2**70),
    st.sampled_from([INT64_MIN, INT64_MAX, INT64_MIN - 1, INT64_MAX + 1, 2**64, -(2**64)]),
    # Up to about 1000 decimal digits: far beyond 64 bits.
    st.integers(min_value=1, max_value=3300).map(lambda bits: 2**bits - 1),
    st.integers(min_value=1, max_value=3300).map(lambda bits: -(2**bits) + 7),
)
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [math.inf, -math.inf, math.nan, -0.0, 0.0, 5e-324, 1.7976931348623157e308]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    floats,
    st.text(),  # hypothesis' text has no surrogates: every str that UTF-8 can carry
    st.binary(),
    proxies,
)
keys = st.text(max_size=12)
# max_leaves bounds the depth too: at most 25 containers deep, within what a
# protobuf parser accepts (see test_whatever_encode_accepts_the_wire_carries).
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=5).map(tuple),
        st.dictionaries(keys, inner, max_size=5),
    ),
    max_leaves=25,
)


# -- typed values round-trip exactly ------------------------------------------------------


@PROPS
@given(values, st.booleans())
def test_typed_values_round_trip_exactly(value, allow_pickle):
    encoded = wire.encode(value, allow_pickle=allow_pickle)
    # Typed values never need pickle, so they travel with pickle off as well.
    assert "pickled_value" not in kinds(encoded)
    back = wire.decode(encoded, allow_pickle=allow_pickle)
    assert same(back, value), (value, back)


@PROPS
@given(values)
def test_typed_values_round_trip_through_their_bytes(value):
    data = wire.encode(value, allow_pickle=False).SerializeToString()
    back = wire.decode(value_pb2.Value.FromString(data), allow_pickle=False)
    assert same(back, value), (value, back)


@PROPS
@given(st.lists(values, max_size=4), st.dictionaries(keys, values, max_size=4))
def test_arguments_round_trip_inside_an_envelope(args, kwargs):
    env = mailbox_pb2.Envelope(id=1, target="t", action="echo")
    wire.encode_args(args, env.args, allow_pickle=False)
    wire.encode_kwargs(kwargs, env.kwargs, allow_pickle=False)
    parsed = mailbox_pb2.Envelope.FromString(env.SerializeToString())
    got_args = [wire.decode(v, allow_pickle=False) for v in parsed.args]
    got_kwargs = wire.decode_kwargs(parsed.kwargs, allow_pickle=False)
    assert same(got_args, list(args))
    assert same(got_kwargs, dict(kwargs))


@PROPS
@given(ints)
def test_ints_keep_their_value_and_pick_the_right_kind(n):
    encoded = wire.encode(n)
    expected = "int_value" if INT64_MIN <= n <= INT64_MAX else "big_int_value"
    assert encoded.WhichOneof("kind") == expected
    back = wire.decode(value_pb2.Value.FromString(encoded.SerializeToString()))
    assert type(back) is int and back == n


@PROPS
@given(st.booleans() | st.integers(min_value=-1, max_value=1) | st.sampled_from([0.0, 1.0, -0.0]))
def test_bool_int_and_float_never_turn_into_each_other(value):
    back = wire.decode(value_pb2.Value.FromString(wire.encode(value).SerializeToString()))
    assert same(back, value)


@PROPS
@given(floats)
def test_floats_including_inf_and_nan(x):
    back = wire.decode(value_pb2.Value.FromString(wire.encode(x).SerializeToString()))
    assert type(back) is float
    if math.isnan(x):
        assert math.isnan(back)
    else:
        assert back == x and math.copysign(1.0, back) == math.copysign(1.0, x)


@PROPS
@given(proxies)
def test_proxies_round_trip_with_aid_name_and_address(proxy):
    back = wire.decode(value_pb2.Value.FromString(wire.encode(proxy).SerializeToString()))
    assert type(back) is ActorProxy
    assert (back.aid, back.name, back.address) == (proxy.aid, proxy.name, proxy.address)


def test_a_monitor_travels_as_a_plain_proxy():
    monitor = ActorProxyMonitor("m1", "pool", ("127.0.0.1", 9), None, "external")
    back = wire.decode(wire.encode([monitor]))
    assert type(back[0]) is ActorProxy
    assert (back[0].aid, back[0].name, back[0].address) == ("m1", "pool", ("127.0.0.1", 9))


def test_ints_beyond_the_decimal_text_limit_fail_clearly():
    """An int too long for Python's int/str conversion limit (4300 digits by default)
    either round-trips or is refused with a BadRequest, not a raw ValueError."""
    huge = 10**5000
    try:
        encoded = wire.encode(huge)
    except ActorError as exc:
        assert isinstance(exc, BadRequest), exc
        assert "int" in str(exc)
        return
    except Exception as exc:  # pragma: no cover - the failure this test exists for
        pytest.fail(f"encode(10**5000) raised a raw {type(exc).__name__}: {exc}")
    assert wire.decode(encoded) == huge


# -- what has no typed form -----------------------------------------------------------------


class Colour(IntEnum):
    RED = 1


class Label(str):
    """A str subclass: not a plain str, so it keeps its type via pickle."""


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    __hash__ = None  # type: ignore[assignment]


untyped = st.one_of(
    st.sets(st.integers(), max_size=4),
    st.frozensets(st.text(max_size=4), max_size=4),
    st.complex_numbers(allow_nan=False),
    st.decimals(allow_nan=False),
    st.fractions(),
    st.binary(max_size=8).map(bytearray),
    st.dictionaries(st.integers(), st.integers(), min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3).map(OrderedDict),
    st.integers(min_value=0, max_value=10).map(range),
    st.just(Colour.RED),
    st.text(max_size=5).map(Label),
    st.builds(Point, st.integers(), st.integers()),
)


def _wrap(value: Any, how: int) -> Any:
    return [[value], (value,), {"k": [1, value]}, value][how]


@PROPS
@given(untyped, st.integers(min_value=0, max_value=3))
def test_untyped_values_with_pickle_off_are_refused_naming_their_type(value, how):
    with pytest.raises(PermissionDenied) as err:
        wire.encode(_wrap(value, how), allow_pickle=False)
    assert type(value).__qualname__ in str(err.value)
    assert "pickle is off" in str(err.value)


@PROPS
@given(untyped, st.integers(min_value=0, max_value=3))
def test_untyped_values_with_pickle_on_round_trip_with_their_type(value, how):
    wrapped = _wrap(value, how)
    encoded = wire.encode(wrapped)
    assert "pickled_value" in kinds(encoded)
    back = wire.decode(value_pb2.Value.FromString(encoded.SerializeToString()))
    assert back == wrapped
    inner = back if how == 3 else back[0] if how in (0, 1) else back["k"][1]
    assert type(inner) is type(value)


def _generator() -> Any:
    yield 1


def _local_class_instance() -> Any:
    class Local:
        pass

    return Local()


@pytest.mark.parametrize("how", range(4))
@pytest.mark.parametrize(
    ("value", "type_part"),
    [
        (lambda: 1, "function"),
        (threading.Lock(), "lock"),
        (_generator(), "generator"),
        (_local_class_instance(), "Local"),
    ],
    ids=["lambda", "lock", "generator", "local-class"],
)
def test_unpicklable_values_are_a_bad_request_naming_their_type(value, type_part, how):
    with pytest.raises(BadRequest) as err:
        wire.encode(_wrap(value, how))
    message = str(err.value)
    assert type_part in message and "cannot be pickled" in message
    # With pickle off the policy answers first, still naming the type.
    with pytest.raises(PermissionDenied, match=type_part):
        wire.encode(_wrap(value, how), allow_pickle=False)


# -- nesting ------------------------------------------------------------------------------


def nest(depth: int, shape: str) -> Any:
    """1 inside ``depth`` lists, tuples or dicts; "lists-in-a-dict": lists, then one dict."""
    value: Any = 1
    for _ in range(depth):
        value = (
            [value]
            if shape in ("list", "lists-in-a-dict")
            else ((value,) if shape == "tuple" else {"k": value})
        )
    return {"k": value} if shape == "lists-in-a-dict" else value


@FEW
@given(st.integers(min_value=5000, max_value=30_000), st.sampled_from(["list", "tuple", "dict"]))
def test_too_deep_nesting_is_a_bad_request_not_a_recursion_error(depth, shape):
    value = nest(depth, shape)
    for encode in (
        lambda: wire.encode(value),
        lambda: wire.encode_into(value_pb2.Value(), value),
        lambda: wire.encode_args([value], mailbox_pb2.Envelope().args),
        lambda: wire.encode_kwargs({"v": value}, mailbox_pb2.Envelope().kwargs),
    ):
        with pytest.raises(BadRequest, match="nested too deeply"):
            encode()


def test_self_containing_values_are_a_bad_request():
    loop: list[Any] = []
    loop.append(loop)
    cycle: dict[str, Any] = {}
    cycle["me"] = [cycle]
    for value in (loop, cycle):
        with pytest.raises(BadRequest, match="nested too deeply"):
            wire.encode(value, allow_pickle=False)


@FEW
@given(st.integers(min_value=5000, max_value=20_000))
def test_decoding_a_too_deep_value_is_a_bad_request(depth):
    value = value_pb2.Value()
    cur = value
    for _ in range(depth):
        cur = cur.list_value.items.add()
    cur.int_value = 1
    with pytest.raises(BadRequest, match="nested too deeply"):
        wire.decode(value)


@FEW
@given(
    st.integers(min_value=1, max_value=1200),
    st.sampled_from(["list", "tuple", "dict", "lists-in-a-dict"]),
)
def test_whatever_encode_accepts_the_wire_carries(depth, shape):
    """A value is either refused by encode (BadRequest) or can be read back by a
    peer, alone in an envelope and inside a batch (how streams carry envelopes).

    protobuf parsers stop at 100 nested messages (upb's and grpc's default), so a
    value encode accepts but no peer can parse breaks the stream it travels on
    (see test_a_too_deep_value_does_not_break_the_stream_it_travels_on, and in
    test_fuzz.py the same from a client holding the secret).
    """
    value = nest(depth, shape)
    env = mailbox_pb2.Envelope(id=1, target="t", action="echo")
    try:
        wire.encode_args([value], env.args)
    except BadRequest:
        return
    data = env.SerializeToString()
    try:
        parsed = mailbox_pb2.Envelope.FromString(data)
    except Exception as exc:
        pytest.fail(
            f"encode accepted a {shape} nested {depth} deep that no peer can parse: "
            f"{type(exc).__name__}: {exc}"
        )
    batch = mailbox_pb2.Envelope(kind=mailbox_pb2.ENVELOPE_KIND_BATCH)
    batch.batch.add().MergeFromString(data)
    try:
        mailbox_pb2.Envelope.FromString(batch.SerializeToString())
    except Exception as exc:
        pytest.fail(
            f"encode accepted a {shape} nested {depth} deep that no peer can parse "
            f"inside a batch: {type(exc).__name__}: {exc}"
        )
    assert same(wire.decode(parsed.args[0]), value)


# -- strings UTF-8 cannot carry -------------------------------------------------------------

surrogate_text = st.text(
    alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3
)


@FEW
@given(st.text(max_size=4), surrogate_text, st.integers(min_value=0, max_value=3))
def test_strings_with_lone_surrogates_are_a_bad_request(prefix, bad, where):
    text = prefix + bad
    value = [text, [text], {"k": text}, {text: 1}][where]
    with pytest.raises(BadRequest):
        wire.encode(value)


# -- hostile Values from the wire: decode answers a value or an ActorError ----------------

garbage_addresses = st.one_of(
    st.text(max_size=30),
    st.builds(lambda h, p: f"{h}:{p}", st.text(max_size=10), st.text(max_size=8)),
    st.sampled_from(
        [
            "",
            ":",
            "host:",
            ":80",
            "[::1]",
            "1.2.3.4:99999999999",
            "h:-1",
            "h:٣",
            "h:²",
            "h:" + "9" * 5000,
            "[[::1]]:1",
            "a:b:c:1",
        ]
    ),
)
garbage_big_ints = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "-",
            "+",
            "1e5",
            "0x10",
            " 7 ",
            "1_000",
            "٣",
            "9" * 5000,
            "-" + "9" * 4400,
            "nan",
            "inf",
            "1.5",
            "\x00",
        ]
    ),
    st.integers().map(str),
)
garbage_pickles = st.one_of(
    st.binary(max_size=64),
    # Truncated or bit-flipped pickles of harmless data.
    st.tuples(
        st.sampled_from([[1, "a", None], {"k": (1, 2)}, {1, 2}, 3.5, b"x" * 40]),
        st.integers(min_value=0, max_value=5),
        st.integers(min_value=0, max_value=63),
        st.integers(min_value=0, max_value=7),
    ).map(lambda t: _mutated_pickle(*t)),
)


def _mutated_pickle(obj: Any, protocol: int, pos: int, bit: int) -> bytes:
    import pickle

    data = bytearray(pickle.dumps(obj, protocol=protocol))
    if pos % 2:
        return bytes(data[: pos % len(data)])
    data[pos % len(data)] ^= 1 << bit
    return bytes(data)


def _leaf(draw: Any) -> value_pb2.Value:
    v = value_pb2.Value()
    choice = draw(st.integers(min_value=0, max_value=5))
    if choice == 0:
        v.big_int_value = draw(garbage_big_ints)
    elif choice == 1:
        v.actor_value.aid = draw(st.text(max_size=8))
        v.actor_value.address = draw(garbage_addresses)
    elif choice == 2:
        v.pickled_value.data = draw(garbage_pickles)
        v.pickled_value.type_name = draw(st.text(max_size=10))
    elif choice == 3:
        pass  # nothing set: reads as None
    elif choice == 4:
        v.int_value = draw(st.integers(min_value=INT64_MIN, max_value=INT64_MAX))
    else:
        v.string_value = draw(st.text(max_size=10))
    return v


@st.composite
def hostile_values(draw: Any, depth: int = 0) -> value_pb2.Value:
    if depth >= 4 or draw(st.booleans()):
        return _leaf(draw)
    v = value_pb2.Value()
    if draw(st.booleans()):
        v.list_value.SetInParent()
        v.list_value.tuple = draw(st.booleans())
        for _ in range(draw(st.integers(min_value=0, max_value=3))):
            v.list_value.items.add().CopyFrom(draw(hostile_values(depth + 1)))
    else:
        v.map_value.SetInParent()
        for _ in range(draw(st.integers(min_value=0, max_value=3))):
            v.map_value.fields[draw(keys)].CopyFrom(draw(hostile_values(depth + 1)))
    return v


@PROPS
@given(hostile_values(), st.booleans())
def test_decoding_hostile_values_gives_a_value_or_an_actor_error(value, allow_pickle):
    try:
        wire.decode(value, allow_pickle=allow_pickle)
    except (BadRequest, PermissionDenied):
        pass


@PROPS
@given(garbage_pickles, st.text(max_size=10))
def test_pickled_values_with_pickle_off_are_refused_unread(data, type_name):
    value = value_pb2.Value()
    value.pickled_value.data = data
    value.pickled_value.type_name = type_name
    with pytest.raises(PermissionDenied, match="pickle is off"):
        wire.decode(value, allow_pickle=False)
    try:
        wire.decode(value, allow_pickle=True)
    except BadRequest as exc:
        assert "cannot unpickle" in str(exc)


@PROPS
@given(st.binary(max_size=300), st.booleans())
def test_random_bytes_read_as_a_value_decode_or_fail_cleanly(data, allow_pickle):
    from google.protobuf.message import DecodeError

    try:
        value = value_pb2.Value.FromString(data)
    except DecodeError:
        return
    try:
        wire.decode(value, allow_pickle=allow_pickle)
    except (BadRequest, PermissionDenied):
        pass


@PROPS
@given(garbage_addresses)
def test_bad_actor_references_are_a_bad_request(address):
    ref = value_pb2.Value()
    ref.actor_value.aid = "x"
    ref.actor_value.address = address
    try:
        host, port = parse_address(address)
    except ValueError:
        with pytest.raises(BadRequest, match="bad actor reference"):
            wire.decode(ref)
        return
    proxy = wire.decode(ref)
    assert proxy.address == (host, port)


# -- end to end: values through real actors -------------------------------------------------

untyped_builtins = st.one_of(
    st.sets(st.integers(), max_size=3),
    st.frozensets(st.text(max_size=3), max_size=3),
    st.complex_numbers(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.fractions(),
)


def test_values_echo_exactly_through_a_thread_and_a_process_actor(caplog):
    caplog.set_level(logging.WARNING)
    with arbiter(secret=SECRET) as arb:
        process = spawn(name="wire-echo-process").result(30)
        thread = spawn(name="wire-echo-thread", concurrency="thread").result(10)

        @settings(FEW, max_examples=40)
        @given(values, st.booleans())
        def typed(value, as_kwarg):
            for actor in (process, thread):
                fut = send(actor, "echo", message=value) if as_kwarg else send(actor, "echo", value)
                back = fut.result(15)
                assert same(back, value), (actor, value, back)

        @settings(FEW, max_examples=15)
        @given(untyped_builtins)
        def pickled(value):
            for actor in (process, thread):
                back = send(actor, "echo", [value]).result(15)
                assert back == [value] and type(back[0]) is type(value)

        typed()
        pickled()
        assert send(process, "ping").result(10) == "pong"
        assert sorted(arb.managed_actors) == sorted([process.aid, thread.aid])
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not problems, problems


def _outcome(fut: Any, timeout: float = 15) -> Any:
    """The result of a future, or ``(exception type name, message)``."""
    try:
        return fut.result(timeout)
    except Exception as exc:
        return (type(exc).__name__, str(exc))


def test_a_too_deep_value_does_not_break_the_stream_it_travels_on(caplog):
    """A value nested deeper than a peer can parse must be refused as a BadRequest
    before it leaves, not sent: on the mailbox stream it makes the receiver drop the
    whole stream, failing every other request in flight on it."""
    caplog.set_level(logging.WARNING)
    with arbiter(secret=SECRET) as arb:
        process = spawn(name="wire-deep").result(30)
        in_flight = [send(process, "echo", i) for i in range(20)]
        try:
            deep = _outcome(send(process, "echo", nest(60, "list")))
        except Exception as exc:  # refused at once, in send(): fine if it is a BadRequest
            deep = (type(exc).__name__, str(exc))
        others = [_outcome(f) for f in in_flight]
        after = _outcome(send(process, "ping"), 10)
        alive = process.aid in arb.managed_actors
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    # Plain comparisons (pytest's traceback formatting trips over this failure's stack).
    problems = []
    if not (isinstance(deep, tuple) and deep[0] == "BadRequest" and "nested too deeply" in deep[1]):
        problems.append(f"the too-deep value gave {deep!r}, not a BadRequest 'nested too deeply'")
    if others != list(range(20)):
        problems.append(f"requests in flight on the same stream got {others[:3]}...")
    if after != "pong" or not alive:
        problems.append(f"afterwards: ping -> {after!r}, actor registered: {alive}")
    if logged:
        problems.append(f"logged: {logged}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
