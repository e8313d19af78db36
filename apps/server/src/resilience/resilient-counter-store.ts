import {
  type CounterOperation,
  type CounterStore,
  type CounterValue,
  type Logger,
  MemoryCounterStore,
  noopLogger,
} from '@vigil/engine';
import { normalCall } from './breakers.js';
import type { ComponentGuard } from './component-guard.js';

/**
 * Results of `CounterStore.apply`; `degraded` is set when they come from the local fallback, so
 * they cover only what this node counted since the primary store failed. The feature stage then
 * names itself in the decision's `degraded` while still giving the rules these values.
 */
export type CounterResults = CounterValue[] & { degraded?: true };

/** Update operations counted locally, to be replayed into the primary store. */
interface Pending {
  readonly at: number;
  readonly operations: readonly CounterOperation[];
  /** The event's key: a replay of an update the store may already have applied is not counted twice. */
  readonly eventKey: string | undefined;
}

/** A tenant's pending updates, oldest first, and the counters they touched locally. */
class TenantBacklog {
  entries: Pending[] = [];
  head = 0;
  readonly counters = new Set<string>();

  get size(): number {
    return this.entries.length - this.head;
  }

  push(entry: Pending): void {
    this.entries.push(entry);
    for (const operation of entry.operations) this.counters.add(operation.counter.id);
  }

  peek(): Pending | undefined {
    return this.entries[this.head];
  }

  shift(): void {
    this.head++;
    // Compact now and then so a long backlog does not keep its replayed entries.
    if (this.head >= 1024 && this.head * 2 >= this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}

export interface ResilientCounterStoreOptions {
  primary: CounterStore;
  /** Fault injection and the breaker of `counter_store`. */
  guard: ComponentGuard;
  /** Most events held for replay, over all tenants; past it a tenant's oldest is dropped. */
  maxQueued?: number;
  /** Least time between two attempts to replay into the primary store, ms. */
  replayIntervalMs?: number;
  /** Told about each event dropped from the replay queue. */
  onDropped?: (tenantId: string) => void;
  logger?: Logger;
  now?: () => number;
}

/**
 * The tenant of a batch of operations: feature counter ids start with it (`counterIdOf`:
 * `<tenant>\0<feature>\0<version>`), as `CounterStore.apply` has no tenant argument.
 */
function tenantOf(operations: readonly CounterOperation[]): string | null {
  const id = operations[0]?.counter.id;
  if (id === undefined) return null;
  const end = id.indexOf('\u0000');
  return end < 0 ? null : id.slice(0, end);
}

/**
 * A counter store that keeps counting when its primary store fails or is slow to come back.
 *
 * While the primary answers, every call goes to it. When a call fails, or the `counter_store`
 * breaker is open, the call is applied to a local in-memory store instead and its results are
 * marked `degraded`; its updates are queued per tenant (bounded; oldest dropped). From then on that
 * tenant counts locally, in order, until its queue has been replayed into the primary: a replay is
 * attempted at most every `replayIntervalMs` (the breaker's half-open probe is the first replayed
 * event), replays each queued event exactly once, and then forgets the tenant's local counters.
 */
export class ResilientCounterStore implements CounterStore {
  readonly #primary: CounterStore;
  readonly #guard: ComponentGuard;
  readonly #local = new MemoryCounterStore();
  readonly #backlogs = new Map<string, TenantBacklog>();
  readonly #maxQueued: number;
  readonly #replayIntervalMs: number;
  readonly #onDropped: (tenantId: string) => void;
  readonly #logger: Logger;
  readonly #now: () => number;
  #queued = 0;
  #replaying: Promise<void> | undefined;
  #lastReplayAt = Number.NEGATIVE_INFINITY;
  /** Events dropped from the replay queue since start. */
  dropped = 0;

  constructor(options: ResilientCounterStoreOptions) {
    this.#primary = options.primary;
    this.#guard = options.guard;
    this.#maxQueued = options.maxQueued ?? 100_000;
    this.#replayIntervalMs = options.replayIntervalMs ?? 250;
    this.#onDropped = options.onDropped ?? (() => {});
    this.#logger = options.logger ?? noopLogger;
    this.#now = options.now ?? Date.now;
  }

  /** Events counted locally and not yet replayed into the primary store. */
  get queued(): number {
    return this.#queued;
  }

  /** Tenants counting locally now. */
  get degradedTenants(): string[] {
    return [...this.#backlogs.keys()];
  }

  async apply(
    at: number,
    operations: readonly CounterOperation[],
    eventKey?: string,
  ): Promise<CounterResults> {
    const guard = this.#guard;
    if (this.#backlogs.size === 0 && guard.quiet) {
      // Nothing injected, breaker closed, nobody counting locally: straight to the primary.
      let results: CounterResults;
      try {
        results = await this.#primary.apply(at, operations, eventKey);
      } catch (error) {
        guard.breaker.failure(normalCall, error);
        return this.#fallback(tenantOf(operations), at, operations, eventKey, error);
      }
      guard.breaker.success(normalCall);
      return results;
    }
    const tenantId = tenantOf(operations);
    if (tenantId !== null && this.#backlogs.has(tenantId)) {
      const results = this.#fallback(tenantId, at, operations, eventKey, undefined);
      this.#replaySoon();
      return results;
    }
    try {
      return await guard.run(tenantId, () => this.#primary.apply(at, operations, eventKey));
    } catch (error) {
      return this.#fallback(tenantId, at, operations, eventKey, error);
    }
  }

  async drop(counterIds: readonly string[]): Promise<void> {
    await this.#local.drop(counterIds);
    const dropped = new Set(counterIds);
    // Queued updates of dropped counters must not bring them back in the primary store.
    for (const backlog of this.#backlogs.values()) {
      for (let index = backlog.head; index < backlog.entries.length; index++) {
        const entry = backlog.entries[index] as Pending;
        if (entry.operations.some((operation) => dropped.has(operation.counter.id))) {
          backlog.entries[index] = {
            at: entry.at,
            operations: entry.operations.filter((operation) => !dropped.has(operation.counter.id)),
            eventKey: entry.eventKey,
          };
        }
      }
    }
    await this.#guard.run(null, () => this.#primary.drop(counterIds));
  }

  /** Replays what can be replayed now; resolves when the attempt is over (for tests and drain). */
  async replay(): Promise<void> {
    this.#replaying ??= this.#replayAll().finally(() => {
      this.#replaying = undefined;
    });
    await this.#replaying;
  }

  #fallback(
    tenantId: string | null,
    at: number,
    operations: readonly CounterOperation[],
    eventKey: string | undefined,
    error: unknown,
  ): CounterResults {
    const results: CounterResults = this.#local.applyNow(at, operations);
    results.degraded = true;
    if (tenantId === null) return results;
    const updates = operations.filter((operation) => operation.update);
    if (updates.length === 0) return results;
    let backlog = this.#backlogs.get(tenantId);
    if (backlog === undefined) {
      backlog = new TenantBacklog();
      this.#backlogs.set(tenantId, backlog);
      this.#logger.warn(
        { tenant: tenantId, err: error },
        'counter store failed; counting locally until it recovers',
      );
    }
    backlog.push({ at, operations: updates, eventKey });
    this.#queued++;
    if (this.#queued > this.#maxQueued) {
      backlog.shift();
      this.#queued--;
      this.dropped++;
      this.#onDropped(tenantId);
    }
    return results;
  }

  #replaySoon(): void {
    if (this.#replaying !== undefined) return;
    const now = this.#now();
    if (now - this.#lastReplayAt < this.#replayIntervalMs) return;
    this.#lastReplayAt = now;
    void this.replay();
  }

  async #replayAll(): Promise<void> {
    for (const [tenantId, backlog] of [...this.#backlogs]) {
      try {
        for (let entry = backlog.peek(); entry !== undefined; entry = backlog.peek()) {
          const { at, operations, eventKey } = entry;
          if (operations.length > 0)
            await this.#guard.run(tenantId, () => this.#primary.apply(at, operations, eventKey));
          backlog.shift();
          this.#queued--;
        }
      } catch {
        // Still failing: the tenant keeps counting locally; a later call tries again. With the
        // breaker open the store is down for every tenant, so the others wait for the next attempt.
        if (!this.#guard.breaker.closed) return;
        continue;
      }
      // Everything this node counted locally for the tenant is in the primary now.
      this.#backlogs.delete(tenantId);
      await this.#local.drop([...backlog.counters]);
      this.#logger.info({ tenant: tenantId }, 'counter store recovered; local counts replayed');
    }
  }
}
