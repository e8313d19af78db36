import { randomBytes } from 'node:crypto';
import {
  bucketOf,
  bucketsPerWindow,
  type CounterOperation,
  type CounterStore,
  type CounterValue,
  exactDistinctLimit,
} from '@vigil/engine';
import { Redis } from 'ioredis';
import { aggregationCodes, counterScript, lastStringCode } from './counter-script.js';
import type { RedisClient } from './redis-client.js';

export interface RedisCounterStoreOptions {
  /**
   * Prefix of every key (default `vigil:`): one per deployment sharing a Redis. It must not
   * contain `{` or `}`, which would move the keys' hash tag.
   */
  keyPrefix?: string;
  /** Distinct values counted exactly per key before switching to HyperLogLog (default 1,000). */
  exactDistinctLimit?: number;
  /**
   * Buckets kept beyond a window before the script deletes them (default 2), so a node whose
   * clock runs a little behind another's still reads the whole window.
   */
  skewBuckets?: number;
  /** How often the dropped-counter registry is checked for drops made by other nodes, ms (default 1,000). */
  refreshMs?: number;
}

/** Raised while the store cannot serve (Redis unreachable, registry not loaded); callers fall back. */
export class RedisUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RedisUnavailableError';
  }
}

/** The counter script defined on the client for one number of keys. */
type ScriptCommand = (...args: (string | number)[]) => Promise<unknown[]>;

/**
 * One command per number of keys, so the first argument is the first key: ioredis routes (and
 * auto-pipelines) a command on a cluster by its first argument, which with a variable key count
 * would be the count.
 */
const scriptName = (keys: number) => `vigilCounters${keys}`;
/** Key generation of a counter that was never dropped. */
const firstGeneration = '0';
/**
 * How long an event's mark keeps a retried call from counting it again (see the script). A retry
 * comes from the local-counting queue once Redis answers again, within seconds of its return.
 */
const eventMarkMs = 2 * 60 * 1000;

/**
 * `CounterStore` on Redis or Redis Cluster (docs/SCALE-OUT.md, "Redis"): the same 60-bucket
 * sliding windows and exact-then-HyperLogLog distinct counts as `MemoryCounterStore`, in keys
 * that expire by TTL one bucket after their window.
 *
 * One `apply` is one script call on a single Redis. On a cluster, a script can only touch keys of
 * one slot, so the operations are grouped by entity (tenant and feature key, the keys' hash tag)
 * and one script per entity is sent; auto-pipelining puts those of one tick into one write per
 * node, so the call still waits for one round trip.
 */
export class RedisCounterStore implements CounterStore {
  readonly #client: RedisClient;
  readonly #scripts: ScriptCommand[] = [];
  readonly #cluster: boolean;
  readonly #prefix: string;
  readonly #registryKey: string;
  readonly #versionKey: string;
  readonly #limit: string;
  readonly #slack: string;
  /** Counter id -> key generation, for counters dropped at least once. */
  #generations = new Map<string, string>();
  /** The registry version last read (null: no drop yet); undefined reads the registry again. */
  #registryVersion: string | null | undefined;
  #loaded = false;
  #ready: Promise<void>;
  #timer: NodeJS.Timeout | undefined;
  #refreshing = false;
  /** Bumped by every local drop, so a refresh that raced one does not undo it. */
  #dropEpoch = 0;

  constructor(client: RedisClient, options: RedisCounterStoreOptions = {}) {
    const prefix = options.keyPrefix ?? 'vigil:';
    if (/[{}]/.test(prefix)) throw new Error('RedisCounterStore: keyPrefix must not contain { or }');
    this.#client = client;
    this.#cluster = !(client instanceof Redis);
    this.#prefix = prefix;
    // Both registry keys share a hash tag, so `drop` updates them in one script.
    this.#registryKey = `${prefix}{dropped}`;
    this.#versionKey = `${prefix}{dropped}:version`;
    this.#limit = String(options.exactDistinctLimit ?? exactDistinctLimit);
    this.#slack = String(options.skewBuckets ?? 2);
    this.#ready = this.#refresh();
    // `ready()` is optional to await; a failed first load is retried by the timer.
    this.#ready.catch(() => {});
    this.#timer = setInterval(() => void this.#refresh().catch(() => {}), options.refreshMs ?? 1000);
    this.#timer.unref();
  }

  /**
   * Resolves once the dropped-counter registry is loaded; until then `apply` fails with
   * {@link RedisUnavailableError}. Rejects if the first load fails (loading is retried in the
   * background).
   */
  ready(): Promise<void> {
    return this.#ready;
  }

  apply(at: number, operations: readonly CounterOperation[], eventKey?: string): Promise<CounterValue[]> {
    if (operations.length === 0) return Promise.resolve([]);
    if (!this.#loaded)
      return Promise.reject(new RedisUnavailableError('Redis counter store: drop registry not loaded yet'));
    if (this.#cluster) return this.#applyByEntity(at, operations, eventKey);
    const args: (string | number)[] = new Array(5 + 5 * operations.length);
    this.#fill(args, at, operations, operations.length, undefined, eventKey);
    return this.#script(operations.length)(...args).then(
      (replies) => toResults(replies, operations),
      unavailable,
    );
  }

  /**
   * Forgets the counters on every node: each gets a new key generation, recorded in a registry
   * that other nodes re-read within `refreshMs`; the old generation's keys are never read again
   * and expire by their TTL (no key scan, which a cluster cannot do cheaply).
   */
  async drop(counterIds: readonly string[]): Promise<void> {
    if (counterIds.length === 0) return;
    const fields: string[] = [];
    for (const id of counterIds) fields.push(id, `g${randomBytes(6).toString('base64url')}`);
    try {
      await this.#client.eval(
        "redis.call('HSET', KEYS[1], unpack(ARGV)) return redis.call('INCR', KEYS[2])",
        2,
        this.#registryKey,
        this.#versionKey,
        ...fields,
      );
    } catch (error) {
      throw unavailable(error);
    }
    for (let index = 0; index < fields.length; index += 2)
      this.#generations.set(fields[index] as string, fields[index + 1] as string);
    this.#dropEpoch++;
  }

  /** Stops the registry refresh; the client is the caller's to close. */
  close(): void {
    clearInterval(this.#timer);
  }

  /** Keys of this store's prefix (for tests and cleanup): one SCAN over every master. */
  async keys(): Promise<string[]> {
    const nodes = this.#client instanceof Redis ? [this.#client] : this.#client.nodes('master');
    const found: string[] = [];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, batch] = await node.scan(cursor, 'MATCH', `${this.#prefix}*`, 'COUNT', 1000);
        cursor = next;
        found.push(...batch);
      } while (cursor !== '0');
    }
    return found;
  }

  /** The key of one counter's state for one feature key (its sub-keys append a suffix). */
  stateKey(counterId: string, key: string): string {
    const generation = this.#generations.get(counterId) ?? firstGeneration;
    const nul = counterId.indexOf('\u0000');
    const tenant = nul < 0 ? counterId : counterId.slice(0, nul);
    // Lengths first make the layout unambiguous whatever the id and key hold; the tag starts with
    // `t` so it is never empty, and holds tenant and key, so one entity's counters share a slot.
    return `${this.#prefix}${generation}:${key.length}:${counterId.length}:{t${tenant}\u0000${key}}${counterId}`;
  }

  /** The script command for `keys` keys, defined on the client at its first use. */
  #script(keys: number): ScriptCommand {
    let command = this.#scripts[keys];
    if (command === undefined) {
      const name = scriptName(keys);
      const client = this.#client as unknown as Record<string, ScriptCommand | undefined>;
      if (typeof client[name] !== 'function')
        this.#client.defineCommand(name, { lua: counterScript, numberOfKeys: keys });
      command = (client[name] as ScriptCommand).bind(this.#client);
      this.#scripts[keys] = command;
    }
    return command;
  }

  /** Writes the keys and arguments of the first `count` operations (or the listed ones) into `args`. */
  #fill(
    args: (string | number)[],
    at: number,
    operations: readonly CounterOperation[],
    count: number,
    indexes: readonly number[] | undefined,
    eventKey: string | undefined,
  ): void {
    args[count] = at;
    args[1 + count] = this.#limit;
    args[2 + count] = this.#slack;
    args[3 + count] = eventKey ?? '';
    args[4 + count] = eventMarkMs;
    for (let slot = 0; slot < count; slot++) {
      const operation = operations[indexes === undefined ? slot : (indexes[slot] as number)];
      const { counter, value } = operation as CounterOperation;
      const aggregation = counter.aggregation;
      const strings = isText(operation as CounterOperation);
      const letter = strings ? lastStringCode : aggregationCodes[aggregation];
      let text = '';
      let update = (operation as CounterOperation).update;
      if (update) {
        if (aggregation === 'distinct' || strings) {
          if (value === null) update = false;
          else text = String(value);
        } else if (aggregation !== 'count' && aggregation !== 'first_seen') {
          if (typeof value !== 'number' || Number.isNaN(value)) update = false;
          else text = String(value);
        }
      }
      const base = 5 + count + 4 * slot;
      args[slot] = this.stateKey(counter.id, (operation as CounterOperation).key);
      args[base] = update ? letter.toUpperCase() : letter;
      args[base + 1] = bucketOf(at, counter.windowMs);
      args[base + 2] = Math.ceil(counter.windowMs + counter.windowMs / bucketsPerWindow);
      args[base + 3] = text;
    }
  }

  /** Cluster: one script per entity (hash tag), sent together, answers merged in order. */
  async #applyByEntity(
    at: number,
    operations: readonly CounterOperation[],
    eventKey: string | undefined,
  ): Promise<CounterValue[]> {
    const groups = new Map<string, number[]>();
    for (let index = 0; index < operations.length; index++) {
      const operation = operations[index] as CounterOperation;
      const id = operation.counter.id;
      const nul = id.indexOf('\u0000');
      const tag = `${nul < 0 ? id : id.slice(0, nul)}\u0000${operation.key}`;
      const group = groups.get(tag);
      if (group === undefined) groups.set(tag, [index]);
      else group.push(index);
    }
    const results: CounterValue[] = new Array(operations.length);
    const calls: Promise<void>[] = [];
    for (const indexes of groups.values()) {
      const args: (string | number)[] = new Array(5 + 5 * indexes.length);
      this.#fill(args, at, operations, indexes.length, indexes, eventKey);
      calls.push(
        this.#script(indexes.length)(...args).then((replies) => {
          for (let slot = 0; slot < indexes.length; slot++) {
            const index = indexes[slot] as number;
            results[index] = toValue(replies[slot], operations[index] as CounterOperation);
          }
        }),
      );
    }
    try {
      await Promise.all(calls);
    } catch (error) {
      throw unavailable(error);
    }
    return results;
  }

  async #refresh(): Promise<void> {
    if (this.#refreshing) return;
    this.#refreshing = true;
    const epoch = this.#dropEpoch;
    try {
      const version = await this.#client.get(this.#versionKey);
      if (version === this.#registryVersion) return;
      // Read the registry after its version: a drop writes the registry first, so what is read
      // is at least as new as `version`.
      const registry = await this.#client.hgetall(this.#registryKey);
      const generations = new Map<string, string>(Object.entries(registry));
      if (epoch !== this.#dropEpoch) {
        // This node dropped counters while the registry was read: keep its newer generations and
        // read the registry again next time.
        for (const [id, generation] of this.#generations) generations.set(id, generation);
        this.#registryVersion = undefined;
      } else this.#registryVersion = version;
      this.#generations = generations;
      this.#loaded = true;
    } catch (error) {
      throw unavailable(error);
    } finally {
      this.#refreshing = false;
    }
  }
}

/** Whether an operation is `last` of strings: its value goes and comes back as text. */
function isText(operation: CounterOperation): boolean {
  return operation.counter.aggregation === 'last' && operation.counter.valueType === 'string';
}

function toValue(reply: unknown, operation: CounterOperation): CounterValue {
  if (reply === null || reply === undefined) return null;
  if (isText(operation)) return String(reply);
  if (typeof reply === 'number') return reply;
  const number = Number(reply);
  if (!Number.isNaN(number)) return number;
  // Lua prints infinities as `inf`; a sum can overflow to one.
  if (reply === 'inf') return Number.POSITIVE_INFINITY;
  if (reply === '-inf') return Number.NEGATIVE_INFINITY;
  return Number.NaN;
}

function toResults(replies: unknown[], operations: readonly CounterOperation[]): CounterValue[] {
  const results: CounterValue[] = new Array(replies.length);
  for (let index = 0; index < replies.length; index++)
    results[index] = toValue(replies[index], operations[index] as CounterOperation);
  return results;
}

function unavailable(error: unknown): never {
  if (error instanceof RedisUnavailableError) throw error;
  const message = error instanceof Error ? error.message : String(error);
  throw new RedisUnavailableError(`Redis counter store: ${message}`, { cause: error });
}
