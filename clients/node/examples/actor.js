#!/usr/bin/env node
'use strict';
// A Node.js actor joining a Python actorgrpc tree.
//
//   node examples/actor.js --arbiter 127.0.0.1:50051 --name jsworker
//
// Prints one JSON line {aid, name, address} once registered, then serves until
// it is sent `stop`, the arbiter stops, or it gets SIGTERM / SIGINT.

const { Actor, ActorRef, Pickled } = require('../lib');

function parseArgs(argv) {
  const out = { arbiter: '', name: '', aid: '' };
  for (let i = 0; i < argv.length; i += 1) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in out) || i + 1 >= argv.length) throw new Error(`usage: actor.js --arbiter HOST:PORT [--name NAME] [--aid AID] (bad ${argv[i]})`);
    out[key] = argv[(i += 1)];
  }
  if (!out.arbiter) throw new Error('usage: actor.js --arbiter HOST:PORT [--name NAME] [--aid AID]');
  return out;
}

/** The JavaScript type a decoded value has. */
function typeName(value) {
  if (value === null) return 'null';
  if (Buffer.isBuffer(value)) return 'Buffer';
  if (Array.isArray(value)) return 'Array';
  if (value instanceof ActorRef) return 'ActorRef';
  if (value instanceof Pickled) return 'Pickled';
  return typeof value;
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const actor = new Actor(options);

  // Commands of its own.
  actor.command('reverse', (request, s) => {
    if (typeof s !== 'string') throw new TypeError(`reverse needs a string, not ${typeName(s)}`);
    return [...s].reverse().join('');
  });
  // Send to another actor (Python or not) and answer with its reply.
  actor.command('ask', (request, target, action, ...args) => actor.send(target, action, args, request.kwargs));
  // How the arguments arrived here, as JavaScript types.
  actor.command('types', (request, ...args) => args.map(typeName));
  // Who is asking (the envelope's sender, or null for an outside client).
  actor.command('whoami', (request) => request.caller);

  await actor.start();
  process.stdout.write(`${JSON.stringify({ aid: actor.aid, name: actor.name, address: actor.address })}\n`);

  const shutdown = () => {
    setTimeout(() => process.exit(1), 5000).unref(); // should a graceful stop hang
    actor.stop();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  await actor.stopped;
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`actor.js: ${err.stack || err}\n`);
  process.exit(1);
});
