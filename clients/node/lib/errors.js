'use strict';
// actorgrpc errors: the Error message, its gRPC status, and the
// `actorgrpc-error-bin` trailer that carries it on a failed Mailbox.Send.

const { grpc, ERROR_CODE_NAMES, ERROR_CODE_NUMBERS } = require('./proto');

const ERROR_METADATA_KEY = 'actorgrpc-error-bin';
const Status = grpc.status;

/** Each ErrorCode and the gRPC status it shows as (docs/protocol.md). */
const STATUS_BY_CODE = {
  ERROR_CODE_UNSPECIFIED: Status.UNKNOWN,
  ERROR_CODE_COMMAND_FAILED: Status.UNKNOWN,
  ERROR_CODE_UNKNOWN_COMMAND: Status.UNIMPLEMENTED,
  ERROR_CODE_NO_SUCH_ACTOR: Status.NOT_FOUND,
  ERROR_CODE_ACTOR_NOT_AVAILABLE: Status.UNAVAILABLE,
  ERROR_CODE_TIMEOUT: Status.DEADLINE_EXCEEDED,
  ERROR_CODE_BAD_REQUEST: Status.INVALID_ARGUMENT,
  ERROR_CODE_RESOURCE_EXHAUSTED: Status.RESOURCE_EXHAUSTED,
  ERROR_CODE_PERMISSION_DENIED: Status.PERMISSION_DENIED,
};
/** The reverse, for failures that carry no actorgrpc Error (e.g. a dead peer). */
const CODE_BY_STATUS = {
  [Status.UNKNOWN]: 'ERROR_CODE_COMMAND_FAILED',
  [Status.UNIMPLEMENTED]: 'ERROR_CODE_UNKNOWN_COMMAND',
  [Status.NOT_FOUND]: 'ERROR_CODE_NO_SUCH_ACTOR',
  [Status.UNAVAILABLE]: 'ERROR_CODE_ACTOR_NOT_AVAILABLE',
  [Status.CANCELLED]: 'ERROR_CODE_ACTOR_NOT_AVAILABLE',
  [Status.DEADLINE_EXCEEDED]: 'ERROR_CODE_TIMEOUT',
  [Status.INVALID_ARGUMENT]: 'ERROR_CODE_BAD_REQUEST',
  [Status.RESOURCE_EXHAUSTED]: 'ERROR_CODE_RESOURCE_EXHAUSTED',
  [Status.PERMISSION_DENIED]: 'ERROR_CODE_PERMISSION_DENIED',
  [Status.UNAUTHENTICATED]: 'ERROR_CODE_PERMISSION_DENIED', // a missing or wrong secret
};
const STATUS_NAMES = Object.fromEntries(Object.entries(Status).map(([name, number]) => [number, name]));

/**
 * An actorgrpc failure. `code` is the gRPC status number (as on grpc-js
 * errors), `status` its name, `error` the actorgrpc.v1.Error
 * ({code: 'ERROR_CODE_...', type, message, traceback}).
 */
class ActorGrpcError extends Error {
  constructor(error, grpcCode) {
    const err = {
      code: normalizeCode(error.code),
      type: error.type || '',
      message: error.message || '',
      traceback: error.traceback || '',
    };
    super(err.type ? `${err.type}: ${err.message}` : err.message);
    this.name = 'ActorGrpcError';
    this.error = err;
    this.code = grpcCode === undefined ? STATUS_BY_CODE[err.code] : grpcCode;
    this.status = STATUS_NAMES[this.code] || String(this.code);
  }

  /** The actorgrpc ErrorCode name. */
  get errorCode() {
    return this.error.code;
  }
}

function normalizeCode(code) {
  if (typeof code === 'number') return ERROR_CODE_NAMES[code] || 'ERROR_CODE_UNSPECIFIED';
  return code in ERROR_CODE_NUMBERS ? code : 'ERROR_CODE_COMMAND_FAILED';
}

/** An actorgrpc.v1.Error for `err` (an ActorGrpcError keeps its code). */
function errorToPb(err) {
  if (err instanceof ActorGrpcError) return { ...err.error };
  if (err instanceof Error) {
    return { code: 'ERROR_CODE_COMMAND_FAILED', type: err.name || 'Error', message: err.message, traceback: err.stack || '' };
  }
  return { code: 'ERROR_CODE_COMMAND_FAILED', type: 'Error', message: String(err), traceback: '' };
}

// -- the Error message on the protobuf wire ----------------------------------
// grpc-js hands trailing metadata over as raw bytes; proto-loader gives no
// codec for single messages, and Error is four fields, so read and write it here:
//   1: code (varint)   2: type   3: message   4: traceback (length-delimited UTF-8)

function writeVarint(out, n) {
  let v = BigInt.asUintN(64, BigInt(n));
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v) byte |= 0x80;
    out.push(byte);
  } while (v);
}

function serializeError(error) {
  const out = [];
  const code = ERROR_CODE_NUMBERS[normalizeCode(error.code)];
  if (code) {
    out.push(0x08);
    writeVarint(out, code);
  }
  [error.type, error.message, error.traceback].forEach((text, i) => {
    if (!text) return;
    const bytes = Buffer.from(text, 'utf8');
    out.push(((i + 2) << 3) | 2);
    writeVarint(out, bytes.length);
    for (const b of bytes) out.push(b);
  });
  return Buffer.from(out);
}

function deserializeError(buf) {
  const error = { code: 'ERROR_CODE_UNSPECIFIED', type: '', message: '', traceback: '' };
  let pos = 0;
  const varint = () => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= buf.length) throw new RangeError('truncated varint');
      const byte = buf[pos++];
      result |= BigInt(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return result;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const key = Number(varint());
    const field = key >> 3;
    const wire = key & 7;
    if (wire === 0) {
      const v = Number(varint());
      if (field === 1) error.code = ERROR_CODE_NAMES[v] || 'ERROR_CODE_UNSPECIFIED';
    } else if (wire === 2) {
      const len = Number(varint());
      const text = buf.subarray(pos, pos + len).toString('utf8');
      pos += len;
      if (field >= 2 && field <= 4) error[['type', 'message', 'traceback'][field - 2]] = text;
    } else if (wire === 1) {
      pos += 8;
    } else if (wire === 5) {
      pos += 4;
    } else {
      throw new RangeError(`unsupported wire type ${wire}`);
    }
  }
  return error;
}

/** The gRPC status object a server returns for an actorgrpc Error. */
function statusFor(error) {
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_METADATA_KEY, serializeError(error));
  return {
    code: STATUS_BY_CODE[normalizeCode(error.code)],
    details: `${error.type}: ${error.message}`,
    metadata,
  };
}

/** An ActorGrpcError from a grpc-js call error, reading the trailer when present. */
function fromServiceError(err) {
  const raw = err.metadata ? err.metadata.get(ERROR_METADATA_KEY) : [];
  if (raw.length) {
    try {
      return new ActorGrpcError(deserializeError(Buffer.from(raw[0])), err.code);
    } catch (_) {
      // an unreadable trailer: fall back to the status
    }
  }
  const code = CODE_BY_STATUS[err.code] || 'ERROR_CODE_COMMAND_FAILED';
  return new ActorGrpcError({ code, type: `grpc.${STATUS_NAMES[err.code] || err.code}`, message: err.details || err.message }, err.code);
}

module.exports = {
  ActorGrpcError,
  ERROR_METADATA_KEY,
  STATUS_BY_CODE,
  errorToPb,
  serializeError,
  deserializeError,
  statusFor,
  fromServiceError,
};
