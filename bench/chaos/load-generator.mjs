// The load generator of `npm run chaos` (bench/chaos.mjs), run as its own process so that the
// load does not share an event loop with the orchestrator that kills and restarts nodes.
//
// It speaks HTTP/1.1 over plain keep-alive TCP sockets (node:net) with pre-built request bytes:
// a decision request costs the generator a few microseconds, so one generator can offer several
// times what a node can answer. One request is in flight per connection (no pipelining).
//
// Open loop: each stream has a rate schedule (requests per second over time) and a request is due
// at fixed spacing whatever the server does; latency is measured from the time the request was
// due, so a stalled server shows in the latency (no coordinated omission). A due request takes an
// idle connection, or opens a new one up to `maxConnections`, or waits in a queue; one still
// queued when its client timeout passes is dropped as "unsent". A request whose answer has not come
// within the client timeout is recorded as timed out at once; its connection stays busy until the
// late answer arrives (and is thrown away), or is closed after `abandonMs`.
//
// Closed loop (capacity): `connections` sockets each send the next request as soon as the answer
// to the previous one arrives.
//
// Several nodes (`plan.ports`, the multi-node drills): requests go round-robin over the nodes, as
// a load balancer sends them, each on an idle connection to its node or a new one. A request whose
// connection fails (refused, reset, closed before the answer) is sent again, with the same event
// id, to the next node while its client timeout allows, and its node is skipped for
// `ejectMs` (a load balancer's passive health check). Such retries and the connection errors seen
// are counted; only a request that got no answer on any node is recorded as a connection error.
//
// Protocol: the parent forks this file, sends { type: 'run', plan }; the generator runs the plan
// and writes its per-request records into `plan.outDir` (see `writeResults`), then sends
// { type: 'done', ... }. It exits when the parent goes away.
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { generateEvents } from '../reference-policy.mjs';

/** Status codes the generator records where no HTTP status came back. */
export const TIMEOUT = 0;
export const CONNECTION_ERROR = 1;
export const UNSENT = 2;

/** Flag bits of a record. */
export const FLAG_DEGRADED = 1;
export const FLAG_RULE_ERRORS = 2;
export const FLAG_SHED = 4;
export const FLAG_RETRY_AFTER = 8;
export const FLAG_REPLAY = 16;
/** Sent again to another node after its connection failed. */
export const FLAG_RETRIED = 32;

const abandonMs = 10_000;
/** How long a node whose connection failed gets no new requests. */
const ejectMs = 1_000;

// ---------------------------------------------------------------------------------------------
// Records: growable typed arrays, one slot per request.

class Records {
  constructor(capacity = 1 << 16) {
    this.count = 0;
    this.#allocate(capacity);
  }

  #allocate(capacity) {
    const grow = (Type, old) => {
      const next = new Type(capacity);
      if (old !== undefined) next.set(old.subarray(0, this.count));
      return next;
    };
    this.due = grow(Float64Array, this.due);
    this.sendDelay = grow(Float32Array, this.sendDelay);
    this.latency = grow(Float32Array, this.latency);
    this.serverLatency = grow(Float32Array, this.serverLatency);
    this.status = grow(Uint16Array, this.status);
    this.flags = grow(Uint8Array, this.flags);
    this.code = grow(Uint8Array, this.code);
    this.stream = grow(Uint8Array, this.stream);
    this.capacity = capacity;
  }

  add(stream, due) {
    if (this.count === this.capacity) this.#allocate(this.capacity * 2);
    const index = this.count;
    this.count += 1;
    this.stream[index] = stream;
    this.due[index] = due;
    this.latency[index] = Number.NaN;
    this.serverLatency[index] = Number.NaN;
    this.sendDelay[index] = Number.NaN;
    this.status[index] = UNSENT;
    return index;
  }
}

/** Error codes seen in bodies, by index (index 0: none). */
const codes = [''];
const codeIndex = new Map([['', 0]]);
function indexOfCode(code) {
  let index = codeIndex.get(code);
  if (index === undefined) {
    index = codes.length;
    codes.push(code);
    codeIndex.set(code, index);
  }
  return index;
}

// ---------------------------------------------------------------------------------------------
// Request bytes

/** Per event: the body before and after the id, so each request costs two concatenations. */
function eventParts(count, timeoutMs) {
  return generateEvents(count, 20261126).map(({ fields }) => ({
    head: '{"type":"payment","id":"',
    tail: `","fields":${JSON.stringify(fields)},"timeout_ms":${timeoutMs}}`,
  }));
}

class Stream {
  constructor(index, spec, host, port) {
    this.index = index;
    this.name = spec.name;
    this.segments = spec.segments ?? [];
    this.timeoutMs = spec.timeoutMs;
    this.clientTimeoutMs = spec.clientTimeoutMs;
    this.idPrefix = spec.idPrefix;
    this.headers = `POST /v1/decisions HTTP/1.1\r\nhost: ${host}:${port}\r\nauthorization: Bearer ${spec.apiKey}\r\ncontent-type: application/json\r\ncontent-length: `;
    this.events = eventParts(spec.eventCount ?? 2000, spec.timeoutMs);
    this.sequence = 0;
    /** Offset (ms from the start) at which the next request is due. */
    this.nextDue = this.#firstDue(0);
    /** Answered, not shed: "event id\tdecision id" lines for the decision-log check. */
    this.answered = [];
  }

  /** The rate (req/s) at offset `at`, and when that rate ends. */
  #rateAt(at) {
    for (const segment of this.segments) {
      if (at >= segment.from && at < segment.to) return { rps: segment.rps, until: segment.to };
    }
    return { rps: 0, until: at };
  }

  /** The first offset at or after `at` with a rate above 0; infinity when there is none. */
  #firstDue(at) {
    let first = Number.POSITIVE_INFINITY;
    for (const segment of this.segments) {
      if (segment.rps > 0 && segment.to > at) first = Math.min(first, Math.max(at, segment.from));
    }
    return first;
  }

  /** Moves `nextDue` one request on. */
  advance() {
    const { rps, until } = this.#rateAt(this.nextDue);
    const next = this.nextDue + 1000 / rps;
    this.nextDue = next < until ? next : this.#firstDue(until);
  }

  /** The bytes of the next request and its event id. */
  request() {
    const event = this.events[this.sequence % this.events.length];
    const id = `${this.idPrefix}-${this.sequence}`;
    this.sequence += 1;
    const body = event.head + id + event.tail;
    return { id, bytes: `${this.headers}${Buffer.byteLength(body)}\r\n\r\n${body}` };
  }
}

// ---------------------------------------------------------------------------------------------
// Connections

/**
 * One keep-alive socket with at most one request in flight. Responses are parsed by hand: the
 * status line, `content-length` (or chunked), `retry-after`, `connection: close`, and a few fields
 * of the body found by position.
 */
class Connection {
  constructor(generator, node) {
    this.generator = generator;
    /** Index of the node (in `plan.ports`) this connection goes to. */
    this.node = node;
    /** The request in flight: its event id and bytes, to send again elsewhere if this fails. */
    this.payload = null;
    this.busy = false;
    this.closed = false;
    this.record = -1;
    this.eventId = '';
    this.stream = null;
    this.sentAt = 0;
    /** True once the request was recorded as timed out: the late answer is thrown away. */
    this.expired = false;
    /** Set when the answer being read carries `connection: close`. */
    this.closing = false;
    this.pending = '';
    this.connecting = true;
    generator.connecting += 1;
    this.socket = connect({ host: generator.host, port: generator.ports[node], noDelay: true });
    this.socket.setEncoding('latin1');
    this.connected = new Promise((resolve) => {
      this.socket.once('connect', () => {
        this.#connectDone();
        resolve(true);
      });
      this.socket.once('close', () => resolve(false));
    });
    this.socket.on('data', (chunk) => this.#onData(chunk));
    this.socket.on('error', () => this.#onClose());
    this.socket.on('close', () => this.#onClose());
  }

  send(stream, record, now, payload) {
    const { id, bytes } = payload ?? stream.request();
    this.payload = payload ?? { id, bytes };
    this.busy = true;
    this.expired = false;
    this.stream = stream;
    this.record = record;
    this.eventId = id;
    this.sentAt = now;
    this.socket.write(bytes);
  }

  #connectDone() {
    if (!this.connecting) return;
    this.connecting = false;
    this.generator.connecting -= 1;
  }

  #onClose() {
    this.#connectDone();
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    if (this.busy && !this.expired && !this.generator.retry(this))
      this.generator.finish(this, CONNECTION_ERROR, 0, 0, 0);
    this.busy = false;
    this.generator.forget(this);
  }

  #onData(chunk) {
    this.pending = this.pending.length === 0 ? chunk : this.pending + chunk;
    for (;;) {
      const headerEnd = this.pending.indexOf('\r\n\r\n');
      if (headerEnd < 0) return;
      const head = this.pending.slice(0, headerEnd).toLowerCase();
      const status = Number(head.slice(9, 12));
      let bodyStart = headerEnd + 4;
      let body;
      let consumed;
      const lengthAt = head.indexOf('\r\ncontent-length:');
      if (lengthAt >= 0) {
        const length = Number.parseInt(
          head.slice(lengthAt + 17, head.indexOf('\r\n', lengthAt + 2) >>> 0),
          10,
        );
        if (this.pending.length < bodyStart + length) return;
        body = this.pending.slice(bodyStart, bodyStart + length);
        consumed = bodyStart + length;
      } else if (head.includes('\r\ntransfer-encoding: chunked')) {
        body = '';
        for (;;) {
          const sizeEnd = this.pending.indexOf('\r\n', bodyStart);
          if (sizeEnd < 0) return;
          const size = Number.parseInt(this.pending.slice(bodyStart, sizeEnd), 16);
          if (this.pending.length < sizeEnd + 2 + size + 2) return;
          body += this.pending.slice(sizeEnd + 2, sizeEnd + 2 + size);
          bodyStart = sizeEnd + 2 + size + 2;
          if (size === 0) break;
        }
        consumed = bodyStart;
      } else {
        body = '';
        consumed = bodyStart;
      }
      this.pending = this.pending.slice(consumed);
      const retryAfter = head.includes('\r\nretry-after:');
      const replay = head.includes('\r\nidempotent-replay: true');
      // The server closes after this answer: the connection must not take the next request.
      this.closing = head.includes('\r\nconnection: close');
      const closeAfter = this.closing;
      if (this.busy) this.#answer(status, body, retryAfter, replay);
      if (closeAfter) {
        this.#onClose();
        return;
      }
    }
  }

  #answer(status, body, retryAfter, replay) {
    if (this.expired) {
      this.busy = false;
      if (!this.closing) this.generator.release(this);
      return;
    }
    let flags = (retryAfter ? FLAG_RETRY_AFTER : 0) | (replay ? FLAG_REPLAY : 0);
    let code = 0;
    if (status === 200) {
      // Top-level keys found by position: inside a JSON string every quote is escaped, so
      // `"degraded":[` can only be the key itself.
      const degradedAt = body.indexOf('"degraded":[');
      if (degradedAt >= 0 && body.charCodeAt(degradedAt + 12) !== 93 /* ] */) {
        flags |= FLAG_DEGRADED;
        const degradedEnd = body.indexOf(']', degradedAt);
        if (body.slice(degradedAt, degradedEnd).includes('"shed"')) flags |= FLAG_SHED;
      }
      const latencyAt = body.lastIndexOf('"latency_ms":');
      if (latencyAt >= 0) {
        this.generator.records.serverLatency[this.record] = Number.parseFloat(
          body.slice(latencyAt + 13, latencyAt + 30),
        );
      }
      const errorsAt = body.lastIndexOf('"errors":[');
      if (errorsAt >= 0 && body.charCodeAt(errorsAt + 10) !== 93) flags |= FLAG_RULE_ERRORS;
      if ((flags & FLAG_SHED) === 0) {
        const idAt = body.indexOf('"decision_id":"');
        if (idAt >= 0) {
          const decisionId = body.slice(idAt + 15, body.indexOf('"', idAt + 15));
          this.stream.answered.push(`${this.eventId}\t${decisionId}`);
        }
      }
    } else {
      try {
        code = indexOfCode(String(JSON.parse(body)?.error?.code ?? ''));
      } catch {
        code = indexOfCode('(no JSON body)');
      }
    }
    this.generator.finish(this, status, flags, code, performance.now());
  }
}

// ---------------------------------------------------------------------------------------------
// The generator

class Generator {
  constructor(plan) {
    this.host = plan.host;
    this.ports = plan.ports ?? [plan.port];
    /** Per node: until when it gets no new requests (after a failed connection). */
    this.ejectedUntil = this.ports.map(() => 0);
    /** The node the next request goes to (round-robin). */
    this.nextNode = 0;
    /** Connection failures with a request in flight, and how many of those were sent again. */
    this.connectionFailures = 0;
    this.retried = 0;
    /** Retried requests waiting for a connection: record -> { id, bytes } (same event id). */
    this.retryPayloads = new Map();
    /** Answers per node. */
    this.answersByNode = this.ports.map(() => 0);
    this.maxConnections = plan.maxConnections ?? 1024;
    this.records = new Records();
    this.streams = plan.streams.map((spec, index) => new Stream(index, spec, plan.host, plan.port));
    /** Idle connections per node. */
    this.idle = this.ports.map(() => []);
    this.all = new Set();
    /** Due requests waiting for a connection: [stream, record] pairs, oldest first. */
    this.queue = [];
    this.queueHead = 0;
    /** Sockets still connecting; at most `maxConnecting`, so a burst does not open hundreds at once. */
    this.connecting = 0;
    this.maxConnecting = plan.maxConnecting ?? 16;
    this.origin = 0;
    this.closedLoop = false;
    this.stopped = false;
    this.opened = 0;
  }

  now() {
    return performance.now() - this.origin;
  }

  open(node = this.#pickNode()) {
    const connection = new Connection(this, node);
    this.all.add(connection);
    this.opened += 1;
    return connection;
  }

  forget(connection) {
    this.all.delete(connection);
    const idle = this.idle[connection.node];
    const at = idle.indexOf(connection);
    if (at >= 0) idle.splice(at, 1);
    if (this.closedLoop && !this.stopped) this.#closedLoopSend(this.open(), connection.stream);
  }

  /** The next node in turn that is not ejected (any node when all are). */
  #pickNode() {
    const count = this.ports.length;
    const now = performance.now();
    for (let step = 0; step < count; step += 1) {
      const node = (this.nextNode + step) % count;
      if (this.ejectedUntil[node] <= now) {
        this.nextNode = (node + 1) % count;
        return node;
      }
    }
    const node = this.nextNode;
    this.nextNode = (node + 1) % count;
    return node;
  }

  /**
   * The connection failed with a request in flight: with several nodes, eject its node for a while
   * and queue the request (same event id) in front, for another node. Returns false when it is
   * not retried (one node, closed loop, stopped, or past its client timeout).
   */
  retry(connection) {
    this.connectionFailures += 1;
    if (this.ports.length < 2 || this.closedLoop || this.stopped) return false;
    this.ejectedUntil[connection.node] = performance.now() + ejectMs;
    const record = connection.record;
    if (this.now() - this.records.due[record] >= connection.stream.clientTimeoutMs) return false;
    this.retried += 1;
    this.records.flags[record] |= FLAG_RETRIED;
    this.retryPayloads.set(record, connection.payload);
    // In front of the queue: it was due before everything queued now.
    if (this.queueHead >= 2) {
      this.queueHead -= 2;
      this.queue[this.queueHead] = connection.stream;
      this.queue[this.queueHead + 1] = record;
    } else this.queue.unshift(connection.stream, record);
    queueMicrotask(() => this.#dispatch(this.now()));
    return true;
  }

  /** Records the outcome of the connection's request and frees the connection. */
  finish(connection, status, flags, code, at) {
    const records = this.records;
    const record = connection.record;
    const latency = at - this.origin - records.due[record];
    // An answer after the client timeout is a timeout, also when the timeout scan had not run yet.
    const late =
      status !== CONNECTION_ERROR && !this.closedLoop && latency >= connection.stream.clientTimeoutMs;
    records.status[record] = late ? TIMEOUT : status;
    records.flags[record] = late ? 0 : flags | (records.flags[record] & FLAG_RETRIED);
    if (!late && status >= 100) this.answersByNode[connection.node] += 1;
    records.code[record] = late ? 0 : code;
    if (status !== CONNECTION_ERROR && !late) records.latency[record] = latency;
    connection.busy = false;
    if (!connection.closed && !connection.closing) this.release(connection);
  }

  /** A connection is free again: it goes to the idle pool and takes the next queued request. */
  release(connection) {
    if (this.closedLoop) {
      if (!this.stopped) this.#closedLoopSend(connection, connection.stream);
      return;
    }
    this.idle[connection.node].push(connection);
    this.#dispatch(this.now());
  }

  #send(connection, stream, record, now) {
    const payload = this.retryPayloads.get(record);
    if (payload !== undefined) this.retryPayloads.delete(record);
    else this.records.sendDelay[record] = now - this.records.due[record];
    connection.send(stream, record, now, payload);
  }

  /** An idle connection to the next node in turn, or a new one; undefined when none may be opened. */
  #connectionFor() {
    const node = this.#pickNode();
    const idle = this.idle[node].pop();
    if (idle !== undefined) return idle;
    if (this.all.size >= this.maxConnections || this.connecting >= this.maxConnecting) {
      // No new connection allowed: any idle one of a node that is not ejected.
      const now = performance.now();
      for (let other = 0; other < this.ports.length; other += 1) {
        if (this.ejectedUntil[other] > now) continue;
        const connection = this.idle[other].pop();
        if (connection !== undefined) return connection;
      }
      return undefined;
    }
    return this.open(node);
  }

  #closedLoopSend(connection, stream) {
    const now = this.now();
    const record = this.records.add(stream.index, now);
    this.#send(connection, stream, record, now);
  }

  /** Queues every request due by now (open loop) and sends what it can. */
  tick() {
    const now = this.now();
    for (const stream of this.streams) {
      while (stream.nextDue <= now) {
        const record = this.records.add(stream.index, stream.nextDue);
        stream.advance();
        this.queue.push(stream, record);
      }
    }
    this.#dispatch(now);
  }

  /**
   * Sends queued requests, oldest first, on idle connections or new ones (while fewer than
   * `maxConnecting` are connecting and fewer than `maxConnections` are open). A request still
   * queued after its client timeout is dropped: its status stays UNSENT.
   */
  #dispatch(now) {
    const queue = this.queue;
    while (this.queueHead < queue.length) {
      const stream = queue[this.queueHead];
      const record = queue[this.queueHead + 1];
      if (now - this.records.due[record] >= stream.clientTimeoutMs) {
        // A retry that found no connection in time failed on its connection error.
        if (this.retryPayloads.delete(record)) this.records.status[record] = CONNECTION_ERROR;
        this.queueHead += 2;
        continue;
      }
      const connection = this.#connectionFor();
      if (connection === undefined) break;
      this.queueHead += 2;
      this.#send(connection, stream, record, now);
    }
    if (this.queueHead > 4096 && this.queueHead * 2 > queue.length) {
      this.queue = queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  /** Opens `count` connections before the load starts, so the first second is not a connect storm. */
  async prewarm(count) {
    const opened = Array.from({ length: count }, (_, index) => this.open(index % this.ports.length));
    await Promise.all(opened.map((connection) => connection.connected));
    for (const connection of opened) if (!connection.closed) this.idle[connection.node].push(connection);
  }

  /** Client timeouts: records the request as timed out; the connection waits for the late answer. */
  expire() {
    const now = this.now();
    for (const connection of this.all) {
      if (!connection.busy) continue;
      const record = connection.record;
      if (!connection.expired && now - this.records.due[record] >= connection.stream.clientTimeoutMs) {
        connection.expired = true;
        this.records.status[record] = TIMEOUT;
      } else if (now - connection.sentAt >= abandonMs) {
        connection.socket.destroy();
      }
    }
    // Queued requests past their client timeout stay UNSENT; they are skipped when dequeued.
  }

  async runOpen(durationMs, startAt, initialConnections) {
    await this.prewarm(initialConnections);
    await waitUntil(startAt);
    this.origin = performance.now();
    const sender = setInterval(() => this.tick(), 1);
    const expirer = setInterval(() => this.expire(), 5);
    await new Promise((resolve) => setTimeout(resolve, durationMs));
    clearInterval(sender);
    this.stopped = true;
    // Let the last requests answer or time out.
    const lastTimeout = Math.max(...this.streams.map((stream) => stream.clientTimeoutMs));
    const drainUntil = performance.now() + lastTimeout + 20;
    while (performance.now() < drainUntil && [...this.all].some((connection) => connection.busy)) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      this.expire();
    }
    this.expire();
    clearInterval(expirer);
    this.#closeAll();
  }

  /** Closed loop: `steps` of { connections, ms } one after the other on one stream; rps per step. */
  async runClosed(steps) {
    this.closedLoop = true;
    this.origin = performance.now();
    const stream = this.streams[0];
    const results = [];
    for (const step of steps) {
      this.stopped = false;
      const first = this.records.count;
      const startedAt = this.now();
      for (let index = 0; index < step.connections; index += 1) {
        const connection = this.open(index % this.ports.length);
        connection.stream = stream;
        this.#closedLoopSend(connection, stream);
      }
      await new Promise((resolve) => setTimeout(resolve, step.ms));
      this.stopped = true;
      const endedAt = this.now();
      // Wait for the requests in flight, then count this step's answers.
      const drainUntil = performance.now() + 2000;
      while (performance.now() < drainUntil && [...this.all].some((connection) => connection.busy)) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      this.#closeAll();
      let ok = 0;
      let other = 0;
      for (let index = first; index < this.records.count; index += 1) {
        if (this.records.due[index] >= endedAt) continue;
        if (this.records.status[index] === 200) ok += 1;
        else other += 1;
      }
      const seconds = (endedAt - startedAt) / 1000;
      results.push({ ...step, ok_rps: Math.round(ok / seconds), other_rps: Math.round(other / seconds) });
    }
    return results;
  }

  #closeAll() {
    for (const connection of [...this.all]) {
      connection.closed = true;
      connection.socket.destroy();
    }
    this.all.clear();
    for (const idle of this.idle) idle.length = 0;
  }
}

function waitUntil(epochMs) {
  const wait = epochMs - Date.now();
  return wait > 0 ? new Promise((resolve) => setTimeout(resolve, wait)) : Promise.resolve();
}

/**
 * Writes one binary file per record array (`<name>.bin`, little-endian, `count` entries) and
 * `answered-<stream>.tsv` per stream, into `outDir`.
 */
function writeResults(generator, outDir) {
  const records = generator.records;
  const count = records.count;
  for (const name of ['due', 'sendDelay', 'latency', 'serverLatency', 'status', 'flags', 'code', 'stream']) {
    const array = records[name].subarray(0, count);
    writeFileSync(
      join(outDir, `${name}.bin`),
      new Uint8Array(array.buffer, array.byteOffset, array.byteLength),
    );
  }
  for (const stream of generator.streams) {
    writeFileSync(join(outDir, `answered-${stream.index}.tsv`), stream.answered.join('\n'));
  }
  return {
    count,
    codes,
    connections_opened: generator.opened,
    connection_failures: generator.connectionFailures,
    retried: generator.retried,
    answers_by_node: generator.answersByNode,
    origin_epoch_ms: performance.timeOrigin + generator.origin,
  };
}

async function run(plan) {
  const generator = new Generator(plan);
  if (plan.mode === 'closed') {
    const steps = await generator.runClosed(plan.steps);
    return { steps };
  }
  // The generator's own event-loop delay: high when the machine starves it of CPU, which then
  // shows as latency that is not the server's.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  await generator.runOpen(plan.durationMs, plan.startAt, plan.initialConnections ?? 64);
  loopDelay.disable();
  return {
    ...writeResults(generator, plan.outDir),
    loop_delay_p99_ms: Math.round(loopDelay.percentile(99) / 1e4) / 100,
    loop_delay_max_ms: Math.round(loopDelay.max / 1e4) / 100,
  };
}

process.on('disconnect', () => process.exit(0));
process.on('message', (message) => {
  if (message?.type !== 'run') return;
  run(message.plan).then(
    (result) => process.send({ type: 'done', result }),
    (error) =>
      process.send({ type: 'failed', message: error instanceof Error ? error.stack : String(error) }),
  );
});
process.send?.({ type: 'ready' });
