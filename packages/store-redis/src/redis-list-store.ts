import { randomBytes } from 'node:crypto';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import {
  type ListDefinition,
  type ListEntry,
  ListIndex,
  ListIndexes,
  type ListQuery,
  type ListStore,
  type ListWriteResult,
  type LocalListIndex,
} from '@vigil/engine';
import { Redis } from 'ioredis';
import type { RedisClient } from './redis-client.js';
import { RedisUnavailableError } from './redis-counter-store.js';

export interface RedisListStoreOptions {
  /** Prefix of every key and of the change channel (default `vigil:`); no `{` or `}`. */
  keyPrefix?: string;
  now?: () => number;
  /** How often the mirror is checked against Redis for changes whose message was missed, ms (default 1,000). */
  checkIntervalMs?: number;
  /** How often expired entries are swept from the mirror and from Redis, ms (default 1,000; 0: never). */
  sweepIntervalMs?: number;
  /** Entries per pipeline of a bulk write (default 5,000): each command holds Redis a few ms at most. */
  chunkSize?: number;
  /** Writes of at most this many entries are sent to the other nodes as a delta (default 1,000). */
  deltaLimit?: number;
}

/** Where a list stands in this node's mirror: its key generation and the last change applied. */
interface MirrorState {
  gen: string;
  /** Version of the list's last change applied here (the list's `n` counter in Redis). */
  version: number;
  /** Whether any entry with a TTL was written: only such lists are swept in Redis. */
  expiring: boolean;
  /** Where the sweep of this list in Redis goes on. */
  sweepCursor: string;
}

/** A change message: `<version>\n<generation>\n<JSON body>`. */
interface ChangeBody {
  op: 'def' | 'drop' | 'tenant' | 'put' | 'del' | 'reload';
  t: string;
  n?: string;
  /** The writing store, so it knows its own bulk writes. */
  o?: string;
  d?: ListDefinition;
  e?: [string, number | null][];
  x?: string[];
}

interface Change {
  version: number;
  gen: string;
  body: ChangeBody;
}

/**
 * Definition fields are `<gen>\t<type>\t<json>`. A new definition, or a new type, gets the
 * proposed generation (and starts with no entries); otherwise the list keeps its generation.
 * KEYS: defs, version. ARGV: field, proposed gen, type, json, channel, body.
 */
const putListScript = `
local old = redis.call('HGET', KEYS[1], ARGV[1])
local gen = ARGV[2]
local previous = ''
if old then
  local g, t = string.match(old, '^([^\\t]*)\\t([^\\t]*)\\t')
  if t == ARGV[3] then gen = g else previous = g end
end
redis.call('HSET', KEYS[1], ARGV[1], gen .. '\\t' .. ARGV[3] .. '\\t' .. ARGV[4])
redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[5], '0\\n' .. gen .. '\\n' .. ARGV[6])
return {gen, previous}
`;

/** KEYS: defs, version. ARGV: field, channel, body. Returns the generation removed, or false. */
const dropListScript = `
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return false end
local gen = string.match(old, '^([^\\t]*)')
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[2], '0\\n' .. gen .. '\\n' .. ARGV[3])
return gen
`;

/** KEYS: defs, version. ARGV: field prefix, channel, body. Returns field, gen, field, gen, ... */
const dropTenantScript = `
local removed = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i], 1, #ARGV[1]) == ARGV[1] then
    removed[#removed + 1] = all[i]
    removed[#removed + 1] = string.match(all[i + 1], '^([^\\t]*)')
    redis.call('HDEL', KEYS[1], all[i])
  end
end
redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[2], '0\\n\\n' .. ARGV[3])
return removed
`;

/**
 * Upserts entries and announces them, in one step. KEYS: entries hash, value index, version.
 * ARGV: channel, gen, body, then value and stored text per entry.
 */
const putEntriesScript = `
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[2], 0, ARGV[i])
end
local version = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[1], version .. '\\n' .. ARGV[2] .. '\\n' .. ARGV[3])
return version
`;

/** KEYS: entries, value index, version. ARGV: channel, gen, body, value. */
const deleteEntryScript = `
if redis.call('HDEL', KEYS[1], ARGV[4]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[4])
local version = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[1], version .. '\\n' .. ARGV[2] .. '\\n' .. ARGV[3])
return version
`;

/** After a bulk write: KEYS: version. ARGV: channel, gen, body. */
const announceScript = `
local version = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], version .. '\\n' .. ARGV[2] .. '\\n' .. ARGV[3])
return version
`;

/**
 * One step of the sweep of a list: HSCAN from cursor ARGV[2] for about ARGV[3] entries, removing
 * those expired at ARGV[1]. KEYS: entries, value index. Returns the next cursor ('0' at the end).
 * Expired entries are removed some time after they expire (they never match or export before).
 */
const sweepScript = `
local page = redis.call('HSCAN', KEYS[1], ARGV[2], 'COUNT', tonumber(ARGV[3]))
local found = page[2]
local now = tonumber(ARGV[1])
for i = 1, #found, 2 do
  local expiry = string.match(found[i + 1], '^([^\\t]*)')
  if expiry ~= '' and tonumber(expiry) <= now then
    redis.call('HDEL', KEYS[1], found[i])
    redis.call('ZREM', KEYS[2], found[i])
  end
end
return page[1]
`;

type Script = (...args: (string | number)[]) => Promise<unknown>;

const scripts = {
  vigilListPut: { lua: putListScript, keys: 2 },
  vigilListDrop: { lua: dropListScript, keys: 2 },
  vigilListDropTenant: { lua: dropTenantScript, keys: 2 },
  vigilListPutEntries: { lua: putEntriesScript, keys: 3 },
  vigilListDeleteEntry: { lua: deleteEntryScript, keys: 3 },
  vigilListAnnounce: { lua: announceScript, keys: 1 },
  vigilListSweep: { lua: sweepScript, keys: 2 },
} as const;

/**
 * `ListStore` on Redis or Redis Cluster (docs/LISTS.md, "Lists shared through Redis"): Redis holds
 * the definitions and entries, and every node keeps a mirror of every list in memory (the engine's
 * `ListIndexes`), so `in_list` is answered synchronously, never waiting on Redis.
 *
 * Layout (prefix `vigil:`): the definitions in one hash `{lists}:defs` (with a change counter
 * `{lists}:version`), and per list and key generation, in one Cluster slot (the hash tag is the
 * tenant and list name), a hash of entries (`value -> expiry\tupdatedAt\tnote`), a sorted set of
 * values for exports in value order, and a version counter.
 *
 * Every write announces itself on the `lists` channel in the same script that makes it, with the
 * list's new version: small writes carry their entries (a delta other nodes apply), bulk writes
 * ask the other nodes to reload the list (HSCAN in pages). A node that sees a gap in a list's
 * versions, or a generation it does not know, reloads that list; a check every second (the
 * definitions' counter and an entries' change hint, then the lists' versions) and a full comparison
 * after every reconnection of the subscriber catch messages lost while disconnected.
 * Writes fail with {@link RedisUnavailableError} while Redis does not answer; lookups keep
 * answering from the mirror.
 */
export class RedisListStore implements ListStore, LocalListIndex {
  readonly indexes: ListIndexes;
  readonly #client: RedisClient;
  readonly #subscriber: RedisClient;
  readonly #prefix: string;
  readonly #channel: string;
  readonly #defsKey: string;
  readonly #versionKey: string;
  readonly #changesKey: string;
  readonly #origin = randomBytes(6).toString('base64url');
  readonly #chunkSize: number;
  readonly #deltaLimit: number;
  readonly #states = new Map<string, MirrorState>();
  /** Lists being reloaded: the changes that arrived meanwhile, applied after it. */
  readonly #reloading = new Map<string, { pending: Change[]; again: boolean; done: Promise<void> }>();
  /**
   * Reloads started and finished per list, so a bulk write knows whether one overlapped it (its
   * chunks written meanwhile went to the index the reload replaced).
   */
  readonly #reloads = new Map<string, number>();
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #scripts = new Map<string, Script>();
  /** Bulk writes not announced yet (Redis failed meanwhile), by list: their generation. */
  readonly #unannounced = new Map<string, string>();
  #loaded = false;
  #ready: Promise<void>;
  #resolveReady: () => void = () => {};
  /** The definitions' counter at the last full check; undefined checks again. */
  #checkedVersion: string | null | undefined;
  /** The entries' change hint at the last check of every list's version. */
  #checkedChanges: string | null | undefined;
  /** Set when the lists' versions must be compared at the next check whatever the hint says. */
  #dirty = false;
  #checking: Promise<void> | undefined;
  /** Bumped by every definition change applied here, so a check that overlapped one does not undo it. */
  #definitionsChanged = 0;
  #closed = false;

  constructor(client: RedisClient, options: RedisListStoreOptions = {}) {
    const prefix = options.keyPrefix ?? 'vigil:';
    if (/[{}]/.test(prefix)) throw new Error('RedisListStore: keyPrefix must not contain { or }');
    this.indexes = new ListIndexes(options.now);
    this.#client = client;
    this.#prefix = prefix;
    this.#channel = `${prefix}lists`;
    this.#defsKey = `${prefix}{lists}:defs`;
    this.#versionKey = `${prefix}{lists}:version`;
    this.#changesKey = `${prefix}{lists}:changes`;
    this.#chunkSize = options.chunkSize ?? 5000;
    this.#deltaLimit = options.deltaLimit ?? 1000;
    this.#ready = new Promise((resolve) => {
      this.#resolveReady = resolve;
    });
    // All defined at once, before any call: a Cluster's auto-pipeline made in the same tick as a
    // definition would lack the new command.
    const commands = client as unknown as Record<string, Script | undefined>;
    for (const [name, { lua, keys }] of Object.entries(scripts)) {
      if (typeof commands[name] !== 'function') client.defineCommand(name, { lua, numberOfKeys: keys });
      this.#scripts.set(name, (commands[name] as Script).bind(client));
    }
    // A connection of its own: a subscribed connection takes no other commands. On a single
    // server, ioredis's own resubscription is off: it sends SUBSCRIBE after every reconnection
    // without handling its failure, and with no offline queue a connection lost again at that
    // moment made an unhandled rejection (seen in CI), which would end a node. The 'ready' handler
    // below subscribes instead, and handles the failure.
    this.#subscriber =
      client instanceof Redis ? client.duplicate({ autoResubscribe: false }) : client.duplicate();
    this.#subscriber.on('error', () => {});
    this.#subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.#channel) this.#receive(message);
    });
    // Subscribed on every (re)connection; messages sent while disconnected are caught by a check.
    this.#subscriber.on('ready', () => {
      this.#subscriber.subscribe(this.#channel).then(
        () => {
          // Messages are lost only with a connection: after a new one, everything is compared.
          this.#checkedVersion = undefined;
          this.#requestCheck();
        },
        () => {},
      );
    });
    const check = setInterval(() => this.#requestCheck(), options.checkIntervalMs ?? 1000);
    check.unref();
    this.#timers.push(check);
    const sweepMs = options.sweepIntervalMs ?? 1000;
    if (sweepMs > 0) {
      const sweep = setInterval(() => void this.sweep().catch(() => {}), sweepMs);
      sweep.unref();
      this.#timers.push(sweep);
    }
  }

  /** Resolves once every list is in the mirror (loading is retried every check until it is). */
  ready(): Promise<void> {
    this.#requestCheck();
    return this.#ready;
  }

  /** Whether the mirror has been loaded once. */
  get loaded(): boolean {
    return this.#loaded;
  }

  contains(tenantId: string, list: string, value: unknown): boolean {
    return this.indexes.contains(tenantId, list, value);
  }

  names(tenantId: string): readonly string[] {
    return this.indexes.names(tenantId);
  }

  async lists(tenantId: string): Promise<ListDefinition[]> {
    return this.indexes.definitions(tenantId);
  }

  async list(tenantId: string, name: string): Promise<ListDefinition | undefined> {
    return this.indexes.get(tenantId, name)?.definition;
  }

  async putList(definition: ListDefinition): Promise<void> {
    this.#checkLoaded();
    const { tenantId, name } = definition;
    const field = listField(tenantId, name);
    const proposed = randomBytes(8).toString('base64url');
    const body: ChangeBody = { op: 'def', t: tenantId, n: name, d: definition };
    const [gen, previous] = (await this.#call(
      'vigilListPut',
      this.#defsKey,
      this.#versionKey,
      field,
      proposed,
      definition.type,
      JSON.stringify(definition),
      this.#channel,
      JSON.stringify(body),
    )) as [string, string];
    this.#definitionsChanged++;
    const state = this.#states.get(field);
    if (gen === proposed) {
      this.#fresh(definition, gen);
    } else if (state?.gen === gen) {
      this.indexes.define(definition);
    } else {
      // Another node made this list and its message has not arrived yet: read it whole.
      await this.#reload(tenantId, name);
    }
    if (previous !== '') await this.#deleteKeys(tenantId, name, previous).catch(() => {});
  }

  async deleteList(tenantId: string, name: string): Promise<boolean> {
    this.#checkLoaded();
    const field = listField(tenantId, name);
    const body: ChangeBody = { op: 'drop', t: tenantId, n: name };
    const gen = (await this.#call(
      'vigilListDrop',
      this.#defsKey,
      this.#versionKey,
      field,
      this.#channel,
      JSON.stringify(body),
    )) as string | null;
    this.#definitionsChanged++;
    this.#forget(tenantId, name);
    if (gen === null) return false;
    // The generation is gone from the definitions, so nothing reads these keys again.
    await this.#deleteKeys(tenantId, name, gen).catch(() => {});
    return true;
  }

  async putEntries(tenantId: string, name: string, entries: readonly ListEntry[]): Promise<ListWriteResult> {
    this.#checkLoaded();
    const field = listField(tenantId, name);
    const state = this.#states.get(field);
    if (state === undefined || this.indexes.get(tenantId, name) === undefined)
      throw new Error(`no list '${name}'`);
    if (entries.length === 0) return { added: 0, updated: 0 };
    const gen = state.gen;
    const keys = this.#listKeys(tenantId, name, gen);
    if (entries.some((entry) => entry.expiresAt !== null)) state.expiring = true;
    if (entries.length <= this.#deltaLimit) {
      const body: ChangeBody = {
        op: 'put',
        t: tenantId,
        n: name,
        e: entries.map((entry) => [entry.value, entry.expiresAt]),
      };
      const args: (string | number)[] = [
        keys.entries,
        keys.values,
        keys.version,
        this.#channel,
        gen,
        JSON.stringify(body),
      ];
      for (const entry of entries) args.push(entry.value, stored(entry));
      // Counted before the write: this write's own message may reach the mirror before its reply.
      const added = this.#notLive(tenantId, name, entries);
      const version = Number(await this.#call('vigilListPutEntries', ...args));
      if (this.#pending(field, gen, version)) this.#applyEntries(tenantId, name, gen, entries);
      this.#advance(field, gen, version);
      this.#hint();
      return { added, updated: entries.length - added };
    }
    // A bulk write: pipelines of `chunkSize` entries, two in flight, then one announcement that
    // asks the other nodes to reload the list.
    const startVersion = state.version;
    const startReloads = this.#reloads.get(field) ?? 0;
    let added = 0;
    const inFlight: { chunk: readonly ListEntry[]; written: Promise<[Error | null, unknown][] | null> }[] =
      [];
    const settle = async () => {
      const { chunk, written } = inFlight.shift() as (typeof inFlight)[number];
      let failure: unknown;
      try {
        failure = (await written)?.find(([error]) => error !== null)?.[0] ?? undefined;
      } catch (error) {
        failure = error;
      }
      if (failure !== undefined) throw failure;
      // Counted as applied: this write's own announcement comes after its last chunk.
      added += this.#applyEntries(tenantId, name, gen, chunk);
    };
    try {
      for (let start = 0; start < entries.length; start += this.#chunkSize) {
        if (start > 0) await yieldToEventLoop();
        const chunk = entries.slice(start, start + this.#chunkSize);
        const hash: string[] = new Array(chunk.length * 2);
        const values: (string | number)[] = new Array(chunk.length * 2);
        for (let index = 0; index < chunk.length; index++) {
          const entry = chunk[index] as ListEntry;
          hash[2 * index] = entry.value;
          hash[2 * index + 1] = stored(entry);
          values[2 * index] = 0;
          values[2 * index + 1] = entry.value;
        }
        const pipeline = this.#client.pipeline();
        pipeline.hset(keys.entries, ...hash);
        pipeline.zadd(keys.values, ...values);
        inFlight.push({ chunk, written: pipeline.exec() });
        if (inFlight.length >= 2) await settle();
      }
      while (inFlight.length > 0) await settle();
    } catch (error) {
      for (const { written } of inFlight) written.catch(() => {});
      // Part of the import may be in Redis: this node reloads the list at its next check, and the
      // other nodes are told (now, or by the check once Redis answers).
      this.#markStale(field, gen);
      await this.#flushAnnouncements().catch(() => {});
      throw unavailable(error);
    }
    const version = await this.#announceBulk(tenantId, name, gen).catch((error: unknown) => {
      this.#markStale(field, gen);
      throw unavailable(error);
    });
    const now = this.#states.get(field);
    if (
      now?.gen === gen &&
      now.version === startVersion &&
      version === startVersion + 1 &&
      (this.#reloads.get(field) ?? 0) === startReloads &&
      !this.#reloading.has(field)
    )
      now.version = version;
    // Another change to this list interleaved with the import: read it whole rather than guess.
    else await this.#reload(tenantId, name);
    return { added, updated: entries.length - added };
  }

  async deleteEntry(tenantId: string, name: string, value: string): Promise<boolean> {
    this.#checkLoaded();
    const field = listField(tenantId, name);
    const state = this.#states.get(field);
    if (state === undefined) return false;
    const gen = state.gen;
    const keys = this.#listKeys(tenantId, name, gen);
    const body: ChangeBody = { op: 'del', t: tenantId, n: name, x: [value] };
    const version = Number(
      await this.#call(
        'vigilListDeleteEntry',
        keys.entries,
        keys.values,
        keys.version,
        this.#channel,
        gen,
        JSON.stringify(body),
        value,
      ),
    );
    // With nothing removed in Redis, a later change is the one to keep: none can add the value.
    const held =
      (version === 0 || this.#pending(field, gen, version)) &&
      (this.indexes.get(tenantId, name)?.index.delete(value) ?? false);
    if (version > 0) {
      this.#advance(field, gen, version);
      this.#hint();
    }
    return version > 0 || held;
  }

  async entries(
    tenantId: string,
    name: string,
    page: { after?: string; limit: number },
  ): Promise<ListEntry[]> {
    const state = this.#states.get(listField(tenantId, name));
    if (state === undefined || page.limit <= 0) return [];
    const keys = this.#listKeys(tenantId, name, state.gen);
    const found: ListEntry[] = [];
    let after = page.after;
    // Expired entries not yet swept are skipped, so a page may take several reads to fill.
    for (;;) {
      const want = page.limit - found.length;
      let values: string[];
      let details: (string | null)[];
      try {
        values = await this.#client.zrangebylex(
          keys.values,
          after === undefined ? '-' : `(${after}`,
          '+',
          'LIMIT',
          0,
          want,
        );
        if (values.length === 0) return found;
        details = await this.#client.hmget(keys.entries, ...values);
      } catch (error) {
        throw unavailable(error);
      }
      const now = this.indexes.now();
      for (let index = 0; index < values.length; index++) {
        const text = details[index];
        if (text === null || text === undefined) continue;
        const entry = parseStored(values[index] as string, text);
        if (entry.expiresAt === null || entry.expiresAt > now) found.push(entry);
      }
      if (found.length >= page.limit || values.length < want) return found;
      after = values.at(-1);
    }
  }

  async lookup(tenantId: string, queries: readonly ListQuery[]): Promise<boolean[]> {
    return queries.map((query) => this.indexes.contains(tenantId, query.list, query.value));
  }

  async size(tenantId: string, name: string): Promise<number> {
    return this.indexes.get(tenantId, name)?.index.size ?? 0;
  }

  async deleteTenant(tenantId: string): Promise<void> {
    this.#checkLoaded();
    const body: ChangeBody = { op: 'tenant', t: tenantId };
    const removed = (await this.#call(
      'vigilListDropTenant',
      this.#defsKey,
      this.#versionKey,
      `${tenantId}\u0000`,
      this.#channel,
      JSON.stringify(body),
    )) as string[];
    this.#forgetTenant(tenantId);
    for (let index = 0; index < removed.length; index += 2) {
      const field = removed[index] as string;
      const name = field.slice(tenantId.length + 1);
      await this.#deleteKeys(tenantId, name, removed[index + 1] as string).catch(() => {});
    }
  }

  /**
   * Removes expired entries from the mirror (up to `budget`) and from Redis (a step of about
   * `budget` entries per list that has entries with a TTL); runs on a timer.
   */
  async sweep(budget = 20_000): Promise<void> {
    this.indexes.sweep(budget);
    if (!this.#loaded) return;
    const now = this.indexes.now();
    const calls: Promise<void>[] = [];
    for (const [field, state] of this.#states) {
      if (!state.expiring) continue;
      const [tenantId, name] = splitField(field);
      const keys = this.#listKeys(tenantId, name, state.gen);
      calls.push(
        this.#call('vigilListSweep', keys.entries, keys.values, now, state.sweepCursor, budget).then(
          (next) => {
            state.sweepCursor = String(next);
          },
        ),
      );
    }
    await Promise.all(calls);
  }

  /** Stops the timers and the subscription; the client is the caller's to close. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#timers) clearInterval(timer);
    this.#subscriber.disconnect();
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

  /** The keys of one list generation; the hash tag puts them in one Cluster slot. */
  #listKeys(tenantId: string, name: string, gen: string) {
    // Lengths first keep the layout unambiguous whatever the names hold; the tag starts with `l`
    // so it is never empty.
    const base = `${this.#prefix}l:${gen}:${tenantId.length}:{l${tenantId}\u0000${name}}`;
    return {
      entries: `${base}:e`,
      values: `${base}:v`,
      version: `${base}:n`,
    };
  }

  #checkLoaded(): void {
    if (!this.#loaded) throw new RedisUnavailableError('Redis list store: lists not loaded from Redis yet');
  }

  async #call(name: keyof typeof scripts, ...args: (string | number)[]): Promise<unknown> {
    const command = this.#scripts.get(name) as Script;
    try {
      return await command(...args);
    } catch (error) {
      throw unavailable(error);
    }
  }

  /**
   * After a bulk write failed half-way: this node reloads the list at its next check (its version
   * in Redis is past -1), and the other nodes are told once Redis answers.
   */
  #markStale(field: string, gen: string): void {
    const state = this.#states.get(field);
    if (state?.gen === gen) state.version = -1;
    this.#unannounced.set(field, gen);
    this.#dirty = true;
  }

  /** Announces the bulk writes whose announcement failed; run by each check. */
  async #flushAnnouncements(): Promise<void> {
    for (const [field, gen] of [...this.#unannounced]) {
      const [tenantId, name] = splitField(field);
      await this.#announceBulk(tenantId, name, gen);
      if (this.#unannounced.get(field) === gen) this.#unannounced.delete(field);
    }
  }

  async #announceBulk(tenantId: string, name: string, gen: string): Promise<number> {
    const body: ChangeBody = { op: 'reload', t: tenantId, n: name, o: this.#origin };
    const version = Number(
      await this.#call(
        'vigilListAnnounce',
        this.#listKeys(tenantId, name, gen).version,
        this.#channel,
        gen,
        JSON.stringify(body),
      ),
    );
    this.#hint();
    return version;
  }

  /**
   * Tells the other nodes' checks that entries changed: a hint, in another slot than the list, so
   * sent after the change; a node that lost the change's message lost its connection too, and
   * compares every list after reconnecting whatever the hint says.
   */
  #hint(): void {
    this.#client.incr(this.#changesKey).catch(() => {});
  }

  async #deleteKeys(tenantId: string, name: string, gen: string): Promise<void> {
    const keys = this.#listKeys(tenantId, name, gen);
    // One command per key: on a cluster they are in one slot, but ioredis checks each DEL alone.
    await this.#client.del(keys.entries, keys.values, keys.version);
  }

  /** How many of `entries` the mirror does not hold live: those a write adds. */
  #notLive(tenantId: string, name: string, entries: readonly ListEntry[]): number {
    const index = this.indexes.get(tenantId, name)?.index;
    const now = this.indexes.now();
    let count = 0;
    for (const entry of entries) if (index?.hasLive(entry.value, now) !== true) count++;
    return count;
  }

  /** Puts entries into the mirror; returns how many were not live before. */
  #applyEntries(
    tenantId: string,
    name: string,
    gen: string,
    entries: readonly { value: string; expiresAt: number | null }[],
  ): number {
    const list = this.indexes.get(tenantId, name);
    if (list === undefined || this.#states.get(listField(tenantId, name))?.gen !== gen) return 0;
    const now = this.indexes.now();
    let added = 0;
    for (const entry of entries) if (list.index.set(entry.value, entry.expiresAt, now)) added++;
    return added;
  }

  /**
   * Whether this node's own write of `version` is still to be applied to its mirror: its message
   * may have come first (on the subscriber's connection), and later changes after it, which the
   * write must not undo.
   */
  #pending(field: string, gen: string, version: number): boolean {
    const state = this.#states.get(field);
    return state?.gen === gen && (state.version < version || this.#reloading.has(field));
  }

  /** After this node's own write got `version`: the mirror is at it unless changes are pending. */
  #advance(field: string, gen: string, version: number): void {
    const state = this.#states.get(field);
    if (state?.gen === gen && version === state.version + 1 && !this.#reloading.has(field))
      state.version = version;
    // Otherwise earlier changes are on their way: they, then this write's own message, apply in order.
  }

  /** A list that starts empty under a new generation. */
  #fresh(definition: ListDefinition, gen: string): void {
    this.indexes.remove(definition.tenantId, definition.name);
    this.indexes.define(definition);
    this.#states.set(listField(definition.tenantId, definition.name), {
      gen,
      version: 0,
      expiring: false,
      sweepCursor: '0',
    });
  }

  #forget(tenantId: string, name: string): boolean {
    this.#states.delete(listField(tenantId, name));
    return this.indexes.remove(tenantId, name);
  }

  #forgetTenant(tenantId: string): void {
    for (const list of this.indexes.all(tenantId))
      this.#states.delete(listField(tenantId, list.definition.name));
    this.indexes.removeTenant(tenantId);
  }

  #receive(message: string): void {
    const first = message.indexOf('\n');
    const second = message.indexOf('\n', first + 1);
    if (first < 0 || second < 0) return;
    let body: ChangeBody;
    try {
      body = JSON.parse(message.slice(second + 1)) as ChangeBody;
    } catch {
      return;
    }
    const change: Change = {
      version: Number(message.slice(0, first)),
      gen: message.slice(first + 1, second),
      body,
    };
    // The first load reads everything; what changes meanwhile is caught by its version check.
    if (this.#loaded) this.#apply(change);
  }

  /** Applies one change to the mirror, or reloads the list when the change cannot be applied in order. */
  #apply(change: Change): void {
    const { body, gen, version } = change;
    if (body.op === 'tenant' || body.op === 'drop' || body.op === 'def') this.#definitionsChanged++;
    if (body.op === 'tenant') {
      this.#forgetTenant(body.t);
      // A list of the tenant made again since is found by the check.
      this.#checkedVersion = undefined;
      return;
    }
    const name = body.n;
    if (name === undefined) return;
    const field = listField(body.t, name);
    const reloading = this.#reloading.get(field);
    if (reloading !== undefined) {
      reloading.pending.push(change);
      return;
    }
    // This node's own import: it updated its mirror as it wrote, and settles the version itself.
    if (body.op === 'reload' && body.o === this.#origin) return;
    const state = this.#states.get(field);
    if (body.op === 'drop') {
      if (state?.gen === gen) this.#forget(body.t, name);
      return;
    }
    if (body.op === 'def') {
      if (body.d === undefined) return;
      if (state?.gen === gen) this.indexes.define(body.d);
      // A new list (or a new type) starts empty; one this node knew under another generation
      // may have been made again with entries already, so it is read whole.
      else if (state === undefined) this.#fresh(body.d, gen);
      else void this.#reload(body.t, name).catch(() => {});
      return;
    }
    if (state === undefined || state.gen !== gen || version !== state.version + 1) {
      if (state?.gen === gen && version <= state.version) return;
      void this.#reload(body.t, name).catch(() => {});
      return;
    }
    if (body.op === 'put' && body.e !== undefined) {
      const entries = body.e.map(([value, expiresAt]) => ({ value, expiresAt }));
      if (entries.some((entry) => entry.expiresAt !== null)) state.expiring = true;
      this.#applyEntries(body.t, name, gen, entries);
    } else if (body.op === 'del' && body.x !== undefined) {
      const list = this.indexes.get(body.t, name);
      for (const value of body.x) list?.index.delete(value);
    } else if (body.op === 'reload') {
      void this.#reload(body.t, name).catch(() => {});
      return;
    }
    state.version = version;
  }

  /**
   * Reads one list whole from Redis into a new index and swaps it in; changes that arrive
   * meanwhile are applied after, in order. Lookups use the previous index until the swap.
   */
  #reload(tenantId: string, name: string): Promise<void> {
    const field = listField(tenantId, name);
    const running = this.#reloading.get(field);
    if (running !== undefined) {
      running.again = true;
      return running.done;
    }
    const entry = { pending: [] as Change[], again: false, done: Promise.resolve() };
    this.#reloading.set(field, entry);
    entry.done = (async () => {
      try {
        do {
          entry.again = false;
          this.#reloads.set(field, (this.#reloads.get(field) ?? 0) + 1);
          await this.#readList(tenantId, name);
        } while (entry.again && !this.#closed);
      } finally {
        this.#reloads.set(field, (this.#reloads.get(field) ?? 0) + 1);
        this.#reloading.delete(field);
        for (const change of entry.pending) this.#apply(change);
      }
    })();
    return entry.done;
  }

  async #readList(tenantId: string, name: string): Promise<void> {
    const field = listField(tenantId, name);
    let text: string | null;
    try {
      text = await this.#client.hget(this.#defsKey, field);
    } catch (error) {
      throw unavailable(error);
    }
    if (text === null) {
      this.#forget(tenantId, name);
      return;
    }
    const parsed = parseDefinition(text);
    if (parsed === undefined) return;
    const { gen, definition } = parsed;
    const keys = this.#listKeys(tenantId, name, gen);
    const index = new ListIndex(definition.type);
    let version: number;
    let expiring = false;
    try {
      // The version first: what is read after it is at least that new.
      version = Number((await this.#client.get(keys.version)) ?? 0);
      let cursor = '0';
      do {
        const [next, pairs] = await this.#client.hscan(keys.entries, cursor, 'COUNT', 5000);
        cursor = next;
        const now = this.indexes.now();
        for (let at = 0; at + 1 < pairs.length; at += 2) {
          const text = pairs[at + 1] as string;
          const tab = text.indexOf('\t');
          const expiresAt = tab === 0 ? null : Number(text.slice(0, tab));
          if (expiresAt !== null) expiring = true;
          if (expiresAt === null || expiresAt > now) index.set(pairs[at] as string, expiresAt, now);
        }
      } while (cursor !== '0');
    } catch (error) {
      throw unavailable(error);
    }
    if (this.#closed) return;
    // The list may have been dropped or made again while it was read: its message is pending.
    const held = this.indexes.get(tenantId, name);
    if (held !== undefined && held.definition.type !== definition.type) this.indexes.remove(tenantId, name);
    const indexed = this.indexes.define(definition);
    indexed.index = index;
    this.#states.set(field, { gen, version, expiring, sweepCursor: '0' });
  }

  #requestCheck(): void {
    if (this.#closed || this.#checking !== undefined) return;
    this.#checking = this.#check()
      .catch(() => {
        this.#checkedVersion = undefined;
      })
      .finally(() => {
        this.#checking = undefined;
      });
  }

  /**
   * Compares the mirror with Redis: when the definitions' counter moved (or on the first load, or
   * after the subscriber reconnected) every definition is read; when the entries' hint moved too,
   * every list's version. Lists that differ are reloaded.
   */
  async #check(): Promise<void> {
    if (this.#unannounced.size > 0) await this.#flushAnnouncements();
    let counter: string | null;
    let changes: string | null;
    try {
      [counter, changes] = (await this.#client.mget(this.#versionKey, this.#changesKey)) as [
        string | null,
        string | null,
      ];
    } catch (error) {
      throw unavailable(error);
    }
    if (this.#loaded && counter === this.#checkedVersion) {
      if (changes === this.#checkedChanges && !this.#dirty) return;
      this.#dirty = false;
      await this.#checkVersions();
      this.#checkedChanges = changes;
      return;
    }
    const epoch = this.#definitionsChanged;
    let definitions: Record<string, string>;
    try {
      definitions = await this.#client.hgetall(this.#defsKey);
    } catch (error) {
      throw unavailable(error);
    }
    const wanted = new Set<string>();
    const reloads: [string, string][] = [];
    for (const [field, text] of Object.entries(definitions)) {
      const parsed = parseDefinition(text);
      if (parsed === undefined) continue;
      wanted.add(field);
      if (this.#states.get(field)?.gen !== parsed.gen) reloads.push(splitField(field));
    }
    // A definition changed here meanwhile is newer than what was read: it is checked next time.
    const current = epoch === this.#definitionsChanged;
    if (current)
      for (const field of [...this.#states.keys()])
        if (!wanted.has(field) && !this.#reloading.has(field)) this.#forget(...splitField(field));
    await this.#reloadAll(reloads);
    this.#dirty = false;
    await this.#checkVersions();
    this.#checkedChanges = changes;
    this.#checkedVersion = current && epoch === this.#definitionsChanged ? counter : undefined;
    if (!this.#loaded) {
      this.#loaded = true;
      this.#resolveReady();
    }
  }

  /** Reloads the lists whose version in Redis is past the mirror's (a message was missed). */
  async #checkVersions(): Promise<void> {
    const fields = [...this.#states.keys()];
    if (fields.length === 0) return;
    const keys = fields.map((field) => {
      const [tenantId, name] = splitField(field);
      return this.#listKeys(tenantId, name, (this.#states.get(field) as MirrorState).gen).version;
    });
    let versions: (string | null)[] = [];
    try {
      const client = this.#client;
      // One MGET per 1,000 lists on a single server; on a cluster the keys are in many slots, and
      // auto-pipelining sends the GETs to each master together.
      if (client instanceof Redis)
        for (let at = 0; at < keys.length; at += 1000)
          versions.push(...(await client.mget(keys.slice(at, at + 1000))));
      else versions = await Promise.all(keys.map((key) => client.get(key)));
    } catch (error) {
      throw unavailable(error);
    }
    const reloads: [string, string][] = [];
    fields.forEach((field, index) => {
      const state = this.#states.get(field);
      if (state !== undefined && Number(versions[index] ?? 0) > state.version && !this.#reloading.has(field))
        reloads.push(splitField(field));
    });
    await this.#reloadAll(reloads);
  }

  /** A few lists at a time. */
  async #reloadAll(lists: [string, string][]): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < lists.length) {
        const [tenantId, name] = lists[next++] as [string, string];
        await this.#reload(tenantId, name);
      }
    };
    await Promise.all(Array.from({ length: Math.min(4, lists.length) }, worker));
  }
}

function listField(tenantId: string, name: string): string {
  return `${tenantId}\u0000${name}`;
}

function splitField(field: string): [string, string] {
  const nul = field.indexOf('\u0000');
  return [field.slice(0, nul), field.slice(nul + 1)];
}

/**
 * An entry as stored in the list's hash: `expiry\tupdatedAt\t=note`, the expiry empty for none and
 * the note with its marker left out for none (so an empty note and none stay apart).
 */
function stored(entry: ListEntry): string {
  return `${entry.expiresAt ?? ''}\t${entry.updatedAt}\t${entry.note === null ? '' : `=${entry.note}`}`;
}

function parseStored(value: string, text: string): ListEntry {
  const first = text.indexOf('\t');
  const second = text.indexOf('\t', first + 1);
  const note = text.slice(second + 1);
  return {
    value,
    expiresAt: first === 0 ? null : Number(text.slice(0, first)),
    note: note === '' ? null : note.slice(1),
    updatedAt: Number(text.slice(first + 1, second)),
  };
}

function parseDefinition(text: string): { gen: string; definition: ListDefinition } | undefined {
  const first = text.indexOf('\t');
  const second = text.indexOf('\t', first + 1);
  if (first < 0 || second < 0) return undefined;
  try {
    return { gen: text.slice(0, first), definition: JSON.parse(text.slice(second + 1)) as ListDefinition };
  } catch {
    return undefined;
  }
}

function unavailable(error: unknown): never {
  if (error instanceof RedisUnavailableError) throw error;
  const message = error instanceof Error ? error.message : String(error);
  throw new RedisUnavailableError(`Redis list store: ${message}`, { cause: error });
}
