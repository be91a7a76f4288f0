'use strict';
// The actorgrpc.v1 contract, loaded at run time from the .proto files with
// @grpc/proto-loader: no generated code, nothing but the protos.

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

// clients/node/lib -> the repository's protos/ (override with ACTORGRPC_PROTOS).
const PROTOS_DIR = process.env.ACTORGRPC_PROTOS || path.resolve(__dirname, '..', '..', '..', 'protos');

const LOADER_OPTIONS = {
  keepCase: true, // field names as in the .proto (snake_case)
  longs: String, // 64-bit integers arrive as decimal strings: no precision lost
  enums: String, // enum values arrive as their names
  defaults: true, // unset scalars arrive as their default values
  oneofs: true, // Value.kind names the member that is set
};

const packageDefinition = protoLoader.loadSync(
  ['actorgrpc/v1/value.proto', 'actorgrpc/v1/mailbox.proto', 'actorgrpc/v1/supervisor.proto'],
  { ...LOADER_OPTIONS, includeDirs: [PROTOS_DIR] },
);
const v1 = grpc.loadPackageDefinition(packageDefinition).actorgrpc.v1;

/** Enum value names by number, from the loaded descriptors. */
function enumNames(fullName) {
  const out = {};
  for (const { name, number } of packageDefinition[fullName].type.value) out[number] = name;
  return out;
}

const ERROR_CODE_NAMES = enumNames('actorgrpc.v1.ErrorCode');
const ERROR_CODE_NUMBERS = Object.fromEntries(
  Object.entries(ERROR_CODE_NAMES).map(([number, name]) => [name, Number(number)]),
);

/** Channel and server options: loopback peers, messages up to the runtime's limit. */
const CHANNEL_OPTIONS = {
  'grpc.max_send_message_length': 6 * 1024 * 1024,
  'grpc.max_receive_message_length': 6 * 1024 * 1024,
  'grpc.enable_retries': 0,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
};

module.exports = {
  grpc,
  v1,
  packageDefinition,
  PROTOS_DIR,
  LOADER_OPTIONS,
  CHANNEL_OPTIONS,
  ERROR_CODE_NAMES,
  ERROR_CODE_NUMBERS,
};
