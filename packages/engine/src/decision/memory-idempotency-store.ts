import type { DecisionResponse } from '@vigil/protocol';
import type { IdempotencyClaim, IdempotencyKind, IdempotencyStore } from '../ports/idempotency-store.js';

interface Entry {
  /** The holder of a pending marker; undefined once completed. */
  owner: object | undefined;
  response: DecisionResponse | null;
  expiresAt: number;
}

/** State several {@link MemoryIdempotencyStore} handles share (as nodes share one Redis). */
class Entries {
  readonly map = new Map<string, Entry>();
  constructor(
    readonly maxEntries: number,
    readonly now: () => number,
  ) {}
}

export interface MemoryIdempotencyStoreOptions {
  /** Most ids kept; past it the oldest written go first (default 200,000). */
  maxEntries?: number;
  now?: () => number;
}

/**
 * `IdempotencyStore` in process: what one node alone needs, and the reference the Redis adapter is
 * tested against. Handles made with {@link another} share the ids and hold claims of their own,
 * as nodes do on one Redis.
 */
export class MemoryIdempotencyStore implements IdempotencyStore {
  readonly #entries: Entries;
  /** Identifies this handle's pending markers. */
  readonly #owner = {};

  constructor(options: MemoryIdempotencyStoreOptions | Entries = {}) {
    this.#entries =
      options instanceof Entries
        ? options
        : new Entries(options.maxEntries ?? 200_000, options.now ?? Date.now);
  }

  /** Another handle on the same ids, with claims of its own (another node). */
  another(): MemoryIdempotencyStore {
    return new MemoryIdempotencyStore(this.#entries);
  }

  async claim(
    tenantId: string,
    kind: IdempotencyKind,
    eventId: string,
    pendingTtlMs: number,
  ): Promise<IdempotencyClaim> {
    const key = keyOf(tenantId, kind, eventId);
    const entry = this.#live(key);
    if (entry !== undefined) {
      return entry.owner === undefined ? { state: 'done', response: entry.response } : { state: 'pending' };
    }
    this.#set(key, { owner: this.#owner, response: null, expiresAt: this.#entries.now() + pendingTtlMs });
    return { state: 'claimed' };
  }

  async complete(
    tenantId: string,
    kind: IdempotencyKind,
    eventId: string,
    response: DecisionResponse | null,
    ttlMs: number,
  ): Promise<void> {
    this.#set(keyOf(tenantId, kind, eventId), {
      owner: undefined,
      response,
      expiresAt: this.#entries.now() + ttlMs,
    });
  }

  async release(tenantId: string, kind: IdempotencyKind, eventId: string): Promise<void> {
    const key = keyOf(tenantId, kind, eventId);
    if (this.#live(key)?.owner === this.#owner) this.#entries.map.delete(key);
  }

  /** Ids held (pending or done), expired ones included until they are next looked at. */
  get size(): number {
    return this.#entries.map.size;
  }

  #live(key: string): Entry | undefined {
    const entry = this.#entries.map.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt > this.#entries.now()) return entry;
    this.#entries.map.delete(key);
    return undefined;
  }

  #set(key: string, entry: Entry): void {
    const { map, maxEntries } = this.#entries;
    map.delete(key);
    map.set(key, entry);
    const now = this.#entries.now();
    // Oldest written first: drop while over the limit or while the oldest has expired.
    for (const [oldKey, old] of map) {
      if (map.size <= maxEntries && old.expiresAt > now) return;
      map.delete(oldKey);
    }
  }
}

function keyOf(tenantId: string, kind: IdempotencyKind, eventId: string): string {
  return `${kind}\u0000${tenantId}\u0000${eventId}`;
}
