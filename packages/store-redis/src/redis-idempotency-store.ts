import { randomBytes } from 'node:crypto';
import type { IdempotencyClaim, IdempotencyKind, IdempotencyStore } from '@vigil/engine';
import type { DecisionResponse } from '@vigil/protocol';
import type { RedisClient } from './redis-client.js';
import { RedisUnavailableError } from './redis-counter-store.js';

export interface RedisIdempotencyStoreOptions {
  /** Prefix of every key (default `vigil:`); must not contain `{` or `}`. */
  keyPrefix?: string;
}

/**
 * Takes the id when it is free: returns nil when this call set the pending marker, else the value
 * held (a pending marker or an answer). A script rather than `SET NX GET` so that Redis 6.2 works.
 */
const claimScript = `
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false`;

/** Deletes the key only while it holds this caller's own pending marker. */
const releaseScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

type ClaimCommand = (key: string, marker: string, ttlMs: number) => Promise<string | null>;
type ReleaseCommand = (key: string, marker: string) => Promise<number>;

/** Value prefixes: a pending marker `p<owner>`, a decision's answer `d<json>`, a reported event `e`. */
const pendingTag = 'p';
const decisionTag = 'd';
const eventDone = 'e';

/**
 * `IdempotencyStore` on Redis or Redis Cluster (docs/SCALE-OUT.md, "Idempotency"). One key per
 * tenant, kind and event id:
 *
 * ```
 * <prefix>idem:<kind>:<len(tenant)>:{<tenant>:<event id>}
 * ```
 *
 * The braces are the hash tag: every command touches one key, so any slot works, and the tag
 * spreads ids over a cluster's masters. The tenant's length makes the key unambiguous.
 *
 * `claim` is one script call (`EVALSHA`): a pending marker `p<owner>` set with the pending TTL, or
 * the value held. `complete` is one `SET ... PX <ttl>` of the answer's JSON; `release` one script
 * that deletes the key only while it holds this store's marker (a marker that expired and was
 * taken by another node is left alone). Failures reject with {@link RedisUnavailableError}.
 */
export class RedisIdempotencyStore implements IdempotencyStore {
  readonly #client: RedisClient;
  readonly #prefix: string;
  readonly #marker: string;
  readonly #claim: ClaimCommand;
  readonly #release: ReleaseCommand;

  constructor(client: RedisClient, options: RedisIdempotencyStoreOptions = {}) {
    this.#client = client;
    this.#prefix = `${options.keyPrefix ?? 'vigil:'}idem:`;
    // One owner per store (per node): claims of one node for one id never overlap, as the
    // node's own index makes its concurrent duplicates wait for the first.
    this.#marker = pendingTag + randomBytes(9).toString('base64url');
    const commands = client as unknown as Record<string, unknown>;
    if (typeof commands.vigilIdempotencyClaim !== 'function') {
      client.defineCommand('vigilIdempotencyClaim', { numberOfKeys: 1, lua: claimScript });
      client.defineCommand('vigilIdempotencyRelease', { numberOfKeys: 1, lua: releaseScript });
    }
    this.#claim = (commands.vigilIdempotencyClaim as ClaimCommand).bind(client);
    this.#release = (commands.vigilIdempotencyRelease as ReleaseCommand).bind(client);
  }

  claim(
    tenantId: string,
    kind: IdempotencyKind,
    eventId: string,
    pendingTtlMs: number,
  ): Promise<IdempotencyClaim> {
    return this.#claim(
      this.#key(tenantId, kind, eventId),
      this.#marker,
      Math.max(1, Math.ceil(pendingTtlMs)),
    ).then(claimOf, unavailable);
  }

  complete(
    tenantId: string,
    kind: IdempotencyKind,
    eventId: string,
    response: DecisionResponse | null,
    ttlMs: number,
  ): Promise<void> {
    const value = response === null ? eventDone : decisionTag + JSON.stringify(response);
    return this.#client
      .set(this.#key(tenantId, kind, eventId), value, 'PX', Math.max(1, Math.ceil(ttlMs)))
      .then(nothing, unavailable);
  }

  release(tenantId: string, kind: IdempotencyKind, eventId: string): Promise<void> {
    return this.#release(this.#key(tenantId, kind, eventId), this.#marker).then(nothing, unavailable);
  }

  #key(tenantId: string, kind: IdempotencyKind, eventId: string): string {
    return `${this.#prefix}${kind}:${tenantId.length}:{${tenantId}:${eventId}}`;
  }
}

const claimed: IdempotencyClaim = { state: 'claimed' };
const pending: IdempotencyClaim = { state: 'pending' };
const eventAnswer: IdempotencyClaim = { state: 'done', response: null };

function claimOf(held: string | null): IdempotencyClaim {
  if (held === null) return claimed;
  if (held.startsWith(pendingTag)) return pending;
  if (held === eventDone) return eventAnswer;
  return { state: 'done', response: JSON.parse(held.slice(decisionTag.length)) as DecisionResponse };
}

function nothing(): void {}

function unavailable(error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  throw new RedisUnavailableError(`Redis idempotency store: ${message}`, { cause: error });
}
