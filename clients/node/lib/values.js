'use strict';
// JavaScript <-> actorgrpc.v1.Value, the typed values every language reads.
//
//   null / undefined         <-> null_value
//   boolean                  <-> bool_value
//   Number, safe integer     <-> int_value  (other Numbers: double_value)
//   BigInt                    -> int_value when it fits 64 bits, else big_int_value
//   int_value                 -> Number when safe, else BigInt; big_int_value -> BigInt
//   Double(x)                 -> double_value even when x is integral (2.0 stays a float)
//   string                   <-> string_value
//   Buffer / Uint8Array      <-> bytes_value (decoded as Buffer)
//   Array                    <-> list_value (Tuple([...]) sets the tuple flag;
//                                a tuple arrives as a plain Array)
//   plain object / Map       <-> map_value.fields (string keys only)
//   ActorRef                 <-> actor_value {aid, name, address}
//   Pickled                  <-> pickled_value: opaque, unreadable in JavaScript,
//                                but it can be passed back to Python unchanged

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** A reference to an actor: usable as a send target by whoever receives it. */
class ActorRef {
  constructor(aid, name = '', address = '') {
    this.aid = String(aid);
    this.name = name || '';
    this.address = address || '';
  }

  toJSON() {
    return { $actor: { aid: this.aid, name: this.name, address: this.address } };
  }
}

/** A pickled Python object: JavaScript cannot read it, only hold and return it. */
class Pickled {
  constructor(data, typeName = '') {
    this.data = Buffer.from(data || []);
    this.typeName = typeName || '';
  }

  toJSON() {
    return { $pickled: this.typeName };
  }
}

/** A Number sent as double_value even when it is integral. */
class Double {
  constructor(value) {
    this.value = Number(value);
  }
}

/** An Array sent with the tuple flag (a Python tuple on the other side): Tuple.from([1, 2]). */
class Tuple extends Array {}

function isPlainObject(value) {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function encodeInteger(big) {
  return big >= INT64_MIN && big <= INT64_MAX ? { int_value: big.toString() } : { big_int_value: big.toString() };
}

/**
 * Encode a JavaScript value as an actorgrpc.v1.Value (a plain object for grpc-js).
 * Throws a TypeError for values with no typed form (functions, symbols, class
 * instances, maps with non-string keys).
 */
function encode(value, depth = 0) {
  if (depth > 100) throw new TypeError('value nested too deeply to encode');
  if (value === null || value === undefined) return { null_value: 'NULL_VALUE_UNSPECIFIED' };
  switch (typeof value) {
    case 'boolean':
      return { bool_value: value };
    case 'number':
      return Number.isSafeInteger(value) ? { int_value: String(value) } : { double_value: value };
    case 'bigint':
      return encodeInteger(value);
    case 'string':
      return { string_value: value };
    case 'object':
      break;
    default:
      throw new TypeError(`cannot encode a value of type ${typeof value}`);
  }
  if (value instanceof Double) return { double_value: value.value };
  if (value instanceof ActorRef) {
    return { actor_value: { aid: value.aid, name: value.name, address: value.address } };
  }
  if (value instanceof Pickled) return { pickled_value: { data: value.data, type_name: value.typeName } };
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return { bytes_value: Buffer.from(value) };
  if (Array.isArray(value)) {
    return {
      list_value: { items: value.map((item) => encode(item, depth + 1)), tuple: value instanceof Tuple },
    };
  }
  const entries = value instanceof Map ? [...value.entries()] : isPlainObject(value) ? Object.entries(value) : null;
  if (entries === null) {
    const name = (value.constructor && value.constructor.name) || 'object';
    throw new TypeError(`cannot encode a value of type ${name}: it has no typed form`);
  }
  const fields = {};
  for (const [key, item] of entries) {
    if (typeof key !== 'string') throw new TypeError(`map keys must be strings, not ${typeof key}`);
    fields[key] = encode(item, depth + 1);
  }
  return { map_value: { fields } };
}

function decodeInt(text) {
  const big = BigInt(text);
  return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
}

/** Decode an actorgrpc.v1.Value (as grpc-js hands it over) into a JavaScript value. */
function decode(value) {
  if (value === null || value === undefined) return null;
  switch (value.kind) {
    case undefined:
    case null:
    case 'null_value':
      return null;
    case 'bool_value':
      return Boolean(value.bool_value);
    case 'int_value':
      return decodeInt(value.int_value);
    case 'double_value':
      return Number(value.double_value);
    case 'string_value':
      return value.string_value;
    case 'bytes_value':
      return Buffer.from(value.bytes_value);
    case 'list_value':
      return (value.list_value.items || []).map(decode);
    case 'map_value': {
      const out = {};
      for (const [key, item] of Object.entries(value.map_value.fields || {})) out[key] = decode(item);
      return out;
    }
    case 'actor_value': {
      const { aid, name, address } = value.actor_value;
      return new ActorRef(aid, name, address);
    }
    case 'big_int_value':
      return BigInt(value.big_int_value);
    case 'pickled_value':
      return new Pickled(value.pickled_value.data, value.pickled_value.type_name);
    default:
      throw new TypeError(`unknown Value kind ${value.kind}`);
  }
}

/** Encode keyword arguments for Envelope.kwargs (map<string, Value>). */
function encodeKwargs(kwargs) {
  const out = {};
  for (const [key, item] of Object.entries(kwargs || {})) out[key] = encode(item);
  return out;
}

/** Decode Envelope.kwargs into a plain object. */
function decodeKwargs(fields) {
  const out = {};
  for (const [key, item] of Object.entries(fields || {})) out[key] = decode(item);
  return out;
}

/** JSON.stringify that also writes BigInt ({$bigint}) and Buffer ({$bytes}, base64). */
function toJSON(value) {
  return JSON.stringify(value, function replacer(key, item) {
    const raw = this[key];
    if (typeof raw === 'bigint') return { $bigint: raw.toString() };
    if (Buffer.isBuffer(raw)) return { $bytes: raw.toString('base64') };
    if (typeof raw === 'number' && !Number.isFinite(raw)) return { $double: String(raw) };
    return item;
  });
}

module.exports = {
  ActorRef,
  Pickled,
  Double,
  Tuple,
  encode,
  decode,
  encodeKwargs,
  decodeKwargs,
  toJSON,
};
