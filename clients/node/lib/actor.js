'use strict';
// A Node.js actor in an actorgrpc tree, written against the protos alone.
//
//   const { Actor } = require('./lib/actor');
//   const actor = new Actor({ arbiter: '127.0.0.1:50051', name: 'jsworker' });
//   actor.command('reverse', (request, s) => [...s].reverse().join(''));
//   await actor.start();        // serve Mailbox, Handshake, first Notify (RUN)
//   await actor.send('pyworker', 'ping');   // 'pong', from a Python actor
//   await actor.stopped;        // resolves once stopped by `stop`, stop() or the arbiter
//
// Life: serve actorgrpc.v1.Mailbox on 127.0.0.1:0 -> Supervisor.Handshake
// (kind "external", language "node") -> Supervisor.Notify(state RUN, info)
// every `notify_period` seconds -> on stop, Notify(state CLOSE) and close.

const crypto = require('crypto');
const { grpc, v1, CHANNEL_OPTIONS } = require('./proto');
const values = require('./values');
const { Client, SECRET_ENV, AUTH_HEADER } = require('./client');
const { ActorGrpcError, errorToPb, statusFor } = require('./errors');

/** Actor states, numbered as Python's ACTOR_STATES. */
const STATES = { INITIAL: 0, INACTIVE: 1, STARTING: 2, RUN: 3, STOPPING: 4, CLOSE: 5, TERMINATE: 6 };
const STATE_NAMES = ['initial', 'inactive', 'starting', 'running', 'stopping', 'closed', 'terminated'];
const REQUEST_KINDS = new Set(['ENVELOPE_KIND_REQUEST', 'ENVELOPE_KIND_UNSPECIFIED']);
/** Most replies written in one batch message (as the Python runtime). */
const MAX_BATCH = 512;
/** Requests of one stream under way at most: beyond, reading pauses (gRPC flow control then slows the sender). */
const MAX_PENDING = 1024;
/** Notifies in a row the arbiter may miss before this actor gives up on it. */
const MAX_NOTIFY_FAILURES = 3;

function actorError(code, type, message) {
  return new ActorGrpcError({ code, type, message });
}

class Actor {
  /**
   * @param {object} options `arbiter` ("host:port", required), `name` (unique
   *   in the tree; may be empty), `aid` (default: random hex), `host`
   *   ('127.0.0.1') and `port` (0: a free one) to serve on, `timeout`
   *   (seconds for calls to the arbiter and for sends, default 30), `secret`
   *   (the tree's shared secret: sent on every call, and required of every
   *   call to this actor; default $ACTORGRPC_SECRET, none when unset).
   */
  constructor({ arbiter, name = '', aid = '', host = '127.0.0.1', port = 0, timeout = 30, secret = process.env[SECRET_ENV] } = {}) {
    if (!arbiter) throw new TypeError('Actor needs the arbiter address ("host:port")');
    this.arbiterAddress = arbiter;
    this.name = name || '';
    this.aid = aid || crypto.randomBytes(6).toString('hex');
    this.host = host;
    this.port = port;
    this.timeout = timeout;
    this._secret = secret || '';
    this._expectedAuth = secret ? Buffer.from(`Bearer ${secret}`) : null;
    this._session = '';
    this.address = '';
    this.state = STATES.INITIAL;
    this.notifyPeriod = 1;
    this.arbiterRef = null;
    /** Free-form data shown in info().extra. */
    this.extra = {};
    this._commands = new Map();
    this._commandsHandled = 0;
    this._inFlight = 0;
    this._batches = { received: 0, sent: 0 };
    this._startedAt = 0;
    this._server = null;
    this._streams = new Set();
    this._clients = new Map();
    this._arbiter = null;
    this._notifyTimer = null;
    this._notifying = false;
    this._notifyFailures = 0;
    this._cpu = { at: process.hrtime.bigint(), usage: process.cpuUsage() };
    this._stopping = null;
    this._onIdle = null;
    this.stopped = new Promise((resolve) => {
      this._resolveStopped = resolve;
    });

    // The standard commands.
    this.command('ping', () => 'pong');
    this.command('echo', (request, message) => (message === undefined ? (request.kwargs.message ?? null) : message));
    this.command('info', () => this.info());
    this.command('stop', () => {
      setImmediate(() => this.stop());
      return true;
    });
  }

  /** The actor's reference: {aid, name, address}. */
  get ref() {
    return new values.ActorRef(this.aid, this.name, this.address);
  }

  /**
   * Register a command: `fn(request, ...args)`, sync or async, where
   * `request` is {actor, caller (an ActorRef or null), action, args, kwargs}.
   * Its return value is the reply; what it throws becomes an error reply.
   */
  command(name, fn) {
    if (typeof fn !== 'function') throw new TypeError(`command ${name}: needs a function`);
    this._commands.set(name, fn);
    return this;
  }

  // -- life ----------------------------------------------------------------

  /** Serve the Mailbox, register with the arbiter and report RUN. */
  async start() {
    if (this.state !== STATES.INITIAL) throw new Error('this actor has already started');
    this.state = STATES.STARTING;
    this._server = new grpc.Server(CHANNEL_OPTIONS);
    this._server.addService(v1.Mailbox.service, {
      Stream: (call) => (this._authorized(call) ? this._serveStream(call) : call.emit('error', this._unauthenticated())),
      Send: (call, callback) => (this._authorized(call) ? this._serveSend(call, callback) : callback(this._unauthenticated())),
    });
    const port = await new Promise((resolve, reject) => {
      this._server.bindAsync(`${this.host}:${this.port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      );
    });
    this.address = `${this.host}:${port}`;
    this._arbiter = this._client(this.arbiterAddress);
    try {
      const response = await this._arbiter.supervisor('Handshake', {
        aid: this.aid,
        name: this.name,
        address: this.address,
        pid: process.pid,
        kind: 'external',
        language: 'node',
        commands: [...this._commands.keys()].sort(),
      });
      this.arbiterRef = response.arbiter ? new values.ActorRef(response.arbiter.aid, response.arbiter.name, response.arbiter.address) : null;
      this.notifyPeriod = response.notify_period > 0 ? response.notify_period : 1;
      this._session = response.session_token || ''; // every Notify must carry it
      this._startedAt = Date.now();
      this.state = STATES.RUN;
      await this._notify();
    } catch (err) {
      await this._close();
      throw err;
    }
    this._notifyTimer = setInterval(() => this._tick(), this.notifyPeriod * 1000);
    return this;
  }

  /**
   * Stop: Notify(CLOSE), answer what is under way, end the streams, stop
   * serving. Idempotent; resolves once stopped (as does `actor.stopped`).
   */
  stop() {
    if (!this._stopping) this._stopping = this._stop();
    return this._stopping;
  }

  async _stop() {
    const wasRunning = this.state === STATES.RUN;
    this.state = STATES.STOPPING; // from now on, new requests are refused
    clearInterval(this._notifyTimer);
    // Let the commands under way finish (a little while at most).
    if (this._inFlight > 0) {
      await Promise.race([new Promise((resolve) => (this._onIdle = resolve)), delay(2000)]);
    }
    // Tell the arbiter before the streams end, so that it reads as a clean stop.
    this.state = STATES.CLOSE;
    if (wasRunning) {
      try {
        await this._notify({ timeout: 2 });
      } catch (_) {
        // the arbiter is gone: nobody to tell
      }
    }
    // Let the streams write their last replies (the `stop` reply among them), then end them.
    for (const stream of this._streams) stream.finish();
    await Promise.race([Promise.all([...this._streams].map((s) => s.done)), delay(2000)]);
    await this._close();
  }

  async _close() {
    if (this._server) {
      const server = this._server;
      await Promise.race([new Promise((resolve) => server.tryShutdown(() => resolve())), delay(1000)]);
      server.forceShutdown();
    }
    for (const client of this._clients.values()) client.close();
    this._clients.clear();
    if (this.state < STATES.CLOSE) this.state = STATES.CLOSE;
    this._resolveStopped();
  }

  _tick() {
    if (this._notifying || this.state !== STATES.RUN) return;
    this._notifying = true;
    this._notify({ timeout: 2 * this.notifyPeriod })
      .then((response) => {
        this._notifyFailures = 0;
        if (!response.known) this.stop(); // the arbiter no longer knows this actor
      })
      .catch(() => {
        if (++this._notifyFailures >= MAX_NOTIFY_FAILURES) this.stop(); // the arbiter is gone
      })
      .finally(() => {
        this._notifying = false;
      });
  }

  _notify({ timeout } = {}) {
    return this._arbiter.supervisor(
      'Notify',
      { aid: this.aid, state: this.state, info: values.encode(this.info()), session_token: this._session },
      { timeout },
    );
  }

  // -- info ----------------------------------------------------------------

  /** Shaped like Python's Actor.info(): actor, events, extra, system. */
  info() {
    const now = process.hrtime.bigint();
    const usage = process.cpuUsage();
    const elapsed = Number(now - this._cpu.at) / 1000; // microseconds
    const used = usage.user - this._cpu.usage.user + usage.system - this._cpu.usage.system;
    this._cpu = { at: now, usage };
    const memory = process.memoryUsage();
    return {
      actor: {
        name: this.name,
        aid: this.aid,
        state: this.state,
        info_state: STATE_NAMES[this.state],
        concurrency: 'external',
        language: 'node',
        pid: process.pid,
        thread: '',
        address: this.address,
        uptime: this._startedAt ? Math.round(Date.now() - this._startedAt) / 1000 : 0,
        commands_handled: this._commandsHandled,
        is_process: true,
        supervisor: this.arbiterRef ? this.arbiterRef.aid : '',
      },
      events: {
        running: this.state === STATES.RUN,
        streams: this._streams.size,
        commands_in_progress: this._inFlight,
        batches_received: this._batches.received,
        batches_sent: this._batches.sent,
      },
      extra: { ...this.extra },
      system: {
        pid: process.pid,
        memory_rss: memory.rss,
        heap_total: memory.heapTotal,
        heap_used: memory.heapUsed,
        cpu_percent: elapsed > 0 ? new values.Double(Math.round((1000 * used) / elapsed) / 10) : new values.Double(0),
        node_version: process.version,
      },
    };
  }

  // -- sending -------------------------------------------------------------

  _client(address) {
    let client = this._clients.get(address);
    if (!client) {
      client = new Client(address, { timeout: this.timeout, sender: this.ref, secret: this._secret });
      this._clients.set(address, client);
    }
    return client;
  }

  /**
   * Send `action` to `target`: an aid or a name (the arbiter forwards it) or
   * an ActorRef (sent straight to its address). Resolves to the result.
   */
  send(target, action, args = [], kwargs = {}, options = {}) {
    const direct = target instanceof values.ActorRef && target.address;
    const client = direct ? this._client(target.address) : this._arbiter;
    if (!client) return Promise.reject(new Error('the actor has not started'));
    return client.send(target, action, args, kwargs, { sender: this.ref, ...options });
  }

  // -- receiving -----------------------------------------------------------

  /** True when the call carries the tree's secret (or no secret is set). */
  _authorized(call) {
    if (!this._expectedAuth) return true;
    const given = call.metadata.get(AUTH_HEADER).map((v) => Buffer.from(v));
    return given.length === 1 && given[0].length === this._expectedAuth.length && crypto.timingSafeEqual(given[0], this._expectedAuth);
  }

  _unauthenticated() {
    return { code: grpc.status.UNAUTHENTICATED, details: `missing or wrong secret (send metadata '${AUTH_HEADER}: Bearer <secret>')` };
  }

  /** Run the request `env`; resolves to its reply envelope (never rejects). */
  async _handle(env) {
    const reply = { id: env.id, kind: 'ENVELOPE_KIND_REPLY' };
    this._commandsHandled += 1;
    this._inFlight += 1;
    try {
      if (!REQUEST_KINDS.has(env.kind)) {
        throw actorError('ERROR_CODE_BAD_REQUEST', 'actorgrpc.BadRequest', `expected a request, got ${env.kind}`);
      }
      if (env.target && env.target !== this.aid && env.target !== this.name) {
        throw actorError('ERROR_CODE_NO_SUCH_ACTOR', 'actorgrpc.ActorNotFound', `no actor '${env.target}' at ${this.address}`);
      }
      if (this.state > STATES.RUN && env.action !== 'stop') {
        throw actorError('ERROR_CODE_ACTOR_NOT_AVAILABLE', 'actorgrpc.ActorNotAvailable', `actor ${this.aid} is stopping`);
      }
      const fn = this._commands.get(env.action);
      if (!fn) {
        throw actorError('ERROR_CODE_UNKNOWN_COMMAND', 'actorgrpc.CommandNotFound', `unknown command '${env.action}'`);
      }
      let args;
      let kwargs;
      try {
        args = (env.args || []).map(values.decode);
        kwargs = values.decodeKwargs(env.kwargs);
      } catch (err) {
        throw actorError('ERROR_CODE_BAD_REQUEST', 'actorgrpc.BadRequest', err.message);
      }
      const s = env.sender;
      const caller = s && s.aid ? new values.ActorRef(s.aid, s.name, s.address) : null;
      const result = await fn({ actor: this, caller, action: env.action, args, kwargs }, ...args);
      try {
        reply.result = values.encode(result);
      } catch (err) {
        throw actorError('ERROR_CODE_BAD_REQUEST', 'actorgrpc.BadRequest', `cannot encode the result: ${err.message}`);
      }
    } catch (err) {
      reply.error = errorToPb(err);
    } finally {
      this._inFlight -= 1;
      if (this._inFlight === 0 && this._onIdle) this._onIdle();
    }
    return reply;
  }

  /** Mailbox.Stream: requests in (maybe batched), replies out (batched when several are ready). */
  _serveStream(call) {
    const stream = { pending: 0, paused: false, readDone: false, finishing: false, closed: false, queue: [], flushing: false };
    stream.done = new Promise((resolve) => {
      stream.resolve = resolve;
    });
    const close = () => {
      if (stream.closed) return;
      stream.closed = true;
      this._streams.delete(stream);
      stream.resolve();
    };
    const maybeEnd = () => {
      if (!stream.closed && (stream.readDone || stream.finishing) && stream.pending === 0 && !stream.queue.length) {
        call.end();
        close();
      }
    };
    const flush = () => {
      stream.flushing = false;
      if (stream.closed) return;
      while (stream.queue.length) {
        const items = stream.queue.splice(0, MAX_BATCH);
        if (items.length === 1) {
          call.write(items[0]);
        } else {
          this._batches.sent += 1;
          call.write({ kind: 'ENVELOPE_KIND_BATCH', batch: items });
        }
      }
      maybeEnd();
    };
    const queueReply = (env) => {
      stream.queue.push(env);
      if (!stream.flushing) {
        stream.flushing = true;
        setImmediate(flush); // replies ready in the same turn leave in one batch
      }
    };
    stream.finish = () => {
      stream.finishing = true;
      maybeEnd();
    };
    this._streams.add(stream);
    call.on('data', (message) => {
      const batched = message.kind === 'ENVELOPE_KIND_BATCH';
      if (batched) this._batches.received += 1;
      const envelopes = batched ? message.batch : [message];
      for (const env of envelopes) {
        if (env.kind === 'ENVELOPE_KIND_REPLY') continue; // nothing is asked on a served stream
        stream.pending += 1;
        if (stream.pending >= MAX_PENDING && !stream.paused) {
          stream.paused = true;
          call.pause();
        }
        this._handle(env).then((reply) => {
          stream.pending -= 1;
          if (stream.paused && stream.pending <= MAX_PENDING / 2) {
            stream.paused = false;
            call.resume();
          }
          if (!env.no_reply && !stream.closed) queueReply(reply);
          else maybeEnd();
        });
      }
    });
    call.on('end', () => {
      stream.readDone = true;
      maybeEnd();
    });
    call.on('error', close);
    call.on('cancelled', close);
    call.on('close', close);
  }

  /** Mailbox.Send: one request, one reply; errors as a gRPC status with the Error trailer. */
  _serveSend(call, callback) {
    const env = call.request;
    if (env.kind === 'ENVELOPE_KIND_BATCH') {
      callback(statusFor({ code: 'ERROR_CODE_BAD_REQUEST', type: 'actorgrpc.BadRequest', message: 'Send takes one envelope, not a batch' }));
      return;
    }
    this._handle(env).then((reply) => {
      if (reply.error) callback(statusFor(reply.error));
      else callback(null, reply);
    });
  }
}

function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

module.exports = { Actor, STATES, STATE_NAMES };
