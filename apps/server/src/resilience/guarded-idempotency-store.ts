import type { IdempotencyClaim, IdempotencyKind, IdempotencyStore, Logger } from '@vigil/engine';
import type { DecisionResponse } from '@vigil/protocol';
import { normalCall } from './breakers.js';
import type { ComponentGuard } from './component-guard.js';

/**
 * The shared idempotency store behind a component guard (docs/RELIABILITY.md, "Idempotency and rate
 * limits without Redis"). The guard is `counter_store`'s: both live in the same Redis, so one
 * breaker opens for both, and a `counter_store` drill exercises both fallbacks. While the breaker
 * is open every call fails at once, without waiting for a command timeout; the decision service then
 * answers from the node's own index and the decision log. Failures are logged when they start and
 * when the store answers again, not per call.
 */
export class GuardedIdempotencyStore implements IdempotencyStore {
  #failing = false;

  constructor(
    private readonly store: IdempotencyStore,
    private readonly guard: ComponentGuard,
    private readonly logger: Logger,
  ) {}

  claim(
    tenantId: string,
    kind: IdempotencyKind,
    eventId: string,
    pendingTtlMs: number,
  ): Promise<IdempotencyClaim> {
    return this.#run(tenantId, () => this.store.claim(tenantId, kind, eventId, pendingTtlMs));
  }

  complete(
    tenantId: string,
    kind: IdempotencyKind,
    eventId: string,
    response: DecisionResponse | null,
    ttlMs: number,
  ): Promise<void> {
    return this.#run(tenantId, () => this.store.complete(tenantId, kind, eventId, response, ttlMs));
  }

  release(tenantId: string, kind: IdempotencyKind, eventId: string): Promise<void> {
    return this.#run(tenantId, () => this.store.release(tenantId, kind, eventId));
  }

  async #run<T>(tenantId: string, call: () => Promise<T>): Promise<T> {
    const guard = this.guard;
    let value: T;
    try {
      if (guard.quiet) {
        // Nothing injected and the breaker closed: the call alone, its outcome told to the breaker.
        try {
          value = await call();
        } catch (error) {
          guard.breaker.failure(normalCall, error);
          throw error;
        }
        guard.breaker.success(normalCall);
      } else {
        value = await guard.run(tenantId, call);
      }
    } catch (error) {
      if (!this.#failing) {
        this.#failing = true;
        this.logger.warn(
          { err: error },
          'shared idempotency store unavailable; event ids are checked on this node and in the decision log',
        );
      }
      throw error;
    }
    if (this.#failing) {
      this.#failing = false;
      this.logger.info({}, 'shared idempotency store answers again');
    }
    return value;
  }
}
