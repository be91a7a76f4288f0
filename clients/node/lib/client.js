'use strict';

// A small client of an actorgrpc tree: Mailbox.Send to any actor, and the
// arbiter's Supervisor.Info and Lookup.
//
//   const { Client } = require('./lib/client');
//   const c = new Client('127.0.0.1:50051');      // the arbiter's address
//   await c.send('worker', 'ping');                // 'pong'
//   await c.send('worker', 'add', [2, 3]);         // 5
//   (await c.info()).actors                        // the tree
//   c.close();

const fs = require('fs');
const { grpc, v1, CHANNEL_OPTIONS } = require('./proto');
const values = require('./values');
const { fromServiceError } = require('./errors');

const DEFAULT_TIMEOUT = 30; // seconds
/** The environment variable holding the tree's shared secret, and its metadata key. */
const SECRET_ENV = 'ACTORGRPC_SECRET';
const AUTH_HEADER = 'authorization';

function deadline(seconds) {
  return new Date(Date.now() + seconds * 1000);
}

function refFromPb(ref) {
  return ref ? new values.ActorRef(ref.aid, ref.name, ref.address) : null;
}

function summaryFromPb(s) {
  return {
    ref: refFromPb(s.ref),
    aid: s.ref ? s.ref.aid : '',
    name: s.ref ? s.ref.name : '',
    address: s.ref ? s.ref.address : '',
    kind: s.kind,
    language: s.language,
    pid: Number(s.pid),
    state: s.state,
    info_state: s.info_state,
    uptime: s.uptime,
    memory_rss: Number(s.memory_rss),
    commands_handled: Number(s.commands_handled),
    last_notified: s.last_notified,
    supervisor: s.supervisor,
    info: values.decode(s.info),
  };
}

/** PEM bytes from a Buffer, a string of PEM text, or a file path. */
function pem(value) {
  if (value == null) return null;
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === 'string' && value.includes('-----BEGIN')) return Buffer.from(value);
  return fs.readFileSync(value);
}

function tlsCredentials({ ca = null, cert = null, key = null }) {
  return grpc.credentials.createSsl(pem(ca), pem(key), pem(cert));
}

class Client {
  /**
   * @param {string} address "host:port" of an actorgrpc server (the arbiter's
   *   to reach any actor by aid or name; Supervisor calls need the arbiter).
   * @param {object} [options] `timeout` (seconds, default 30), `sender`
   *   (an ActorRef put in every envelope: the actor this client speaks for)
   *   and `secret` (the tree's shared secret, sent as `authorization: Bearer
   *   <secret>` on every call; default $ACTORGRPC_SECRET, none when unset),
   *   and `tls` ({ca, cert, key}: PEM Buffers or file paths) for a tree that
   *   serves TLS (cert and key too under mutual TLS).
   */
  constructor(address, { timeout = DEFAULT_TIMEOUT, sender = null, secret = process.env[SECRET_ENV], tls = null } = {}) {
    this.address = address;
    this.timeout = timeout;
    this.sender = sender;
    this._metadata = new grpc.Metadata();
    if (secret) this._metadata.set(AUTH_HEADER, `Bearer ${secret}`);
    this._ids = 0;
    const credentials = tls ? tlsCredentials(tls) : grpc.credentials.createInsecure();
    this._mailbox = new v1.Mailbox(address, credentials, CHANNEL_OPTIONS);
    this._supervisor = null;
  }

  _supervisorStub() {
    if (!this._supervisor) {
      // Share the Mailbox stub's channel.
      this._supervisor = new v1.Supervisor(this.address, null, { channelOverride: this._mailbox.getChannel() });
    }
    return this._supervisor;
  }

  _unary(stub, method, request, timeout) {
    return new Promise((resolve, reject) => {
      const options = { deadline: deadline(timeout || this.timeout) };
      stub[method](request, this._metadata.clone(), options, (err, response) => {
        if (err) reject(fromServiceError(err));
        else resolve(response);
      });
    });
  }

  /**
   * Send `action` to `target` (an aid, a name or an ActorRef) with positional
   * `args` and keyword `kwargs`; resolves to the decoded result, rejects with
   * an ActorGrpcError (`.code` the gRPC status, `.error` the actorgrpc Error).
   */
  async send(target, action, args = [], kwargs = {}, { timeout, sender } = {}) {
    const envelope = {
      id: String(++this._ids),
      kind: 'ENVELOPE_KIND_REQUEST',
      target: target instanceof values.ActorRef ? target.aid : String(target),
      action,
      args: args.map((a) => values.encode(a)),
      kwargs: values.encodeKwargs(kwargs),
    };
    const from = sender || this.sender;
    if (from) envelope.sender = { aid: from.aid, name: from.name || '', address: from.address || '' };
    const reply = await this._unary(this._mailbox, 'Send', envelope, timeout);
    return values.decode(reply.result);
  }

  /** Supervisor.Info: {actors: [summary, ...], terminated: {aid: record}}. */
  async info({ timeout } = {}) {
    const response = await this._unary(this._supervisorStub(), 'Info', {}, timeout);
    return {
      actors: response.actors.map(summaryFromPb),
      terminated: values.decode(response.terminated) || {},
    };
  }

  /** Supervisor.Lookup: the ActorRef of an aid or name (rejects with NOT_FOUND). */
  async lookup(target, { timeout } = {}) {
    const response = await this._unary(this._supervisorStub(), 'Lookup', { target }, timeout);
    return refFromPb(response.ref);
  }

  /** Any Supervisor RPC (Handshake, Notify, Info, Lookup): the raw response. */
  supervisor(method, request, { timeout } = {}) {
    return this._unary(this._supervisorStub(), method, request, timeout);
  }

  /** Close the channel. */
  close() {
    this._mailbox.close();
  }
}

module.exports = { Client, refFromPb, summaryFromPb, DEFAULT_TIMEOUT, SECRET_ENV, AUTH_HEADER };
