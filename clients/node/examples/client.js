#!/usr/bin/env node
'use strict';
// A Node.js client of a Python actorgrpc tree.
//
//   node examples/client.js [--command describe] 127.0.0.1:50051 worker [other ...]
//
// For each target: ping, echo, info, and a custom Python command (`describe`
// unless --command names another; it answers how its arguments arrived) with
// typed arguments of every kind; then the tree (Supervisor.Info) and a few
// failures. Prints one JSON line per result: {target, op, result} or
// {target, op, error}; ops are named after the standard commands, 'describe'
// and 'describe_fail' (the custom command raising, asked with kwarg `fail`).

const { Client, Double, Tuple, values } = require('../lib');

function emit(line) {
  process.stdout.write(`${values.toJSON(line)}\n`);
}

/** The JavaScript type of a decoded value (to show what Python's answer became). */
function typeName(value) {
  if (value === null) return 'null';
  if (Buffer.isBuffer(value)) return 'Buffer';
  if (Array.isArray(value)) return 'Array';
  if (value instanceof values.ActorRef) return 'ActorRef';
  if (value instanceof values.Pickled) return 'Pickled';
  return typeof value;
}

async function attempt(target, op, fn) {
  try {
    emit({ target, op, result: await fn() });
  } catch (err) {
    emit({ target, op, error: { grpc_code: err.code, status: err.status, ...err.error } });
  }
}

async function main() {
  const argv = process.argv.slice(2);
  let describe = 'describe';
  if (argv[0] === '--command') {
    describe = argv[1];
    argv.splice(0, 2);
  }
  const [address, ...targets] = argv;
  if (!address || !targets.length || !describe) {
    throw new Error('usage: client.js [--command NAME] ARBITER_HOST:PORT TARGET [TARGET ...]');
  }
  const client = new Client(address, { timeout: 30 });
  const arbiter = await client.lookup('arbiter');
  for (const target of targets) {
    await attempt(target, 'ping', () => client.send(target, 'ping'));
    await attempt(target, 'echo', () => client.send(target, 'echo', [{ text: 'hi', n: [1, 2.5, null] }]));
    await attempt(target, 'info', async () => (await client.send(target, 'info')).actor);
    // Every typed kind, positional and keyword.
    const args = [
      null, // null_value
      true, // bool_value
      42, // int_value
      -7, // int_value (sint64: zigzag)
      1.5, // double_value
      new Double(2), // double_value, though integral
      'héllo ✓', // string_value
      Buffer.from([0, 1, 255]), // bytes_value
      [1, 'two', [3]], // list_value
      Tuple.from([1, 'x']), // list_value with the tuple flag
      { a: 1, b: { c: [true] } }, // map_value
      2n ** 62n, // int_value from a BigInt
      -(2n ** 63n), // the smallest int64
      2n ** 100n, // big_int_value
      arbiter, // actor_value
    ];
    await attempt(target, 'describe', async () => {
      const result = await client.send(target, describe, args, { flag: false, ratio: 0.25, ref: arbiter });
      // What Python answered with, as JavaScript saw it.
      result.js_types = result.echo.map(typeName);
      if (result.extras) {
        result.js_extras = Object.fromEntries(Object.entries(result.extras).map(([k, v]) => [k, typeName(v)]));
      }
      return result;
    });
  }
  await attempt('arbiter', 'tree', async () =>
    (await client.info()).actors.map((a) => ({ aid: a.aid, name: a.name, kind: a.kind, language: a.language, state: a.state })),
  );
  await attempt('no-such-actor', 'ping', () => client.send('no-such-actor', 'ping'));
  await attempt(targets[0], 'no_such_command', () => client.send(targets[0], 'no_such_command'));
  await attempt(targets[0], 'describe_fail', () => client.send(targets[0], describe, [], { fail: 'on purpose' }));
  client.close();
}

main().catch((err) => {
  process.stderr.write(`client.js: ${err.stack || err}\n`);
  process.exit(1);
});
