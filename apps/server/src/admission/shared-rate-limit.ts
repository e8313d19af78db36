import { type Logger, noopLogger } from '@vigil/engine';
import { normalCall } from '../resilience/breakers.js';
import type { ComponentGuard } from '../resilience/component-guard.js';
import type { TenantQuota } from './admission-control.js';

/** Where leases come from: a token bucket per tenant shared by the nodes (`RedisRateLimiter`). */
export interface RateLeaseSource {
  /** Takes up to `want` whole tokens; resolves with those granted and the (fractional) tokens left. */
  take(
    tenantId: string,
    rps: number,
    burst: number,
    want: number,
  ): Promise<{ granted: number; remaining: number }>;
}

export interface SharedRateLimitOptions {
  source: RateLeaseSource;
  /** Breaker and fault injection around the source (the `counter_store` guard: same Redis). */
  guard?: ComponentGuard;
  /** One lease takes this many ms of the tenant's rate (default 50), at most a quarter of its burst. */
  leaseMs?: number;
  /** Leased tokens unused for longer are dropped, ms (default 1,000). */
  idleMs?: number;
  /** After the source failed, how long a tenant uses its local bucket before trying again, ms (default 1,000). */
  retryMs?: number;
  /** The same clock as the `AdmissionControl`'s (default `performance.now`). */
  now?: () => number;
  logger?: Logger;
}

/** How a tenant's rate is enforced on this node now. */
export const LeaseMode = {
  /** No lease arrived yet: up to one batch is admitted on credit, paid by the first leases. */
  starting: 0,
  /** From the leased tokens. */
  leased: 1,
  /** The source failed: the node's local token bucket at the tenant's full rate. */
  local: 2,
} as const;
export type LeaseMode = (typeof LeaseMode)[keyof typeof LeaseMode];

/**
 * A tenant's `rate_limit` held across every node (docs/SCALE-OUT.md, "Rate limits"), with no
 * round trip on the path of a request the tenant's rate allows: each node takes tokens from the
 * tenant's shared bucket in small batches (leases) and admits from its local share; when the share
 * falls under one batch it asks for more in the background, while it still serves from what it
 * has. At most one lease per tenant is in flight. A tenant seen for the first time is admitted on
 * one batch of credit (the debt is paid by the next leases), so its first request does not wait.
 *
 * A request the share cannot cover (a burst faster than the leases, a large batch) waits for a
 * lease sized for it, one round trip, unless the shared bucket was dry at the last lease and has
 * not had time to refill: then it is refused at once, so a flood costs no round trips.
 *
 * Leases are triggered by admissions, like the local buckets' lazy refill: no timers. When the
 * source fails (Redis down, breaker open), the tenant falls back to the node's local bucket at its
 * full rate (`AdmissionControl`), and a lease is tried again every `retryMs`; the first that
 * succeeds switches it back. Bound on what all nodes admit over any period T:
 * `burst + rps·T + nodes·3 batches` (each node's unspent share and first credit), plus, during a
 * Redis outage, each node's full local rate.
 */
export class SharedRateLimit {
  readonly #source: RateLeaseSource;
  readonly #guard: ComponentGuard | undefined;
  readonly #leaseMs: number;
  readonly #idleMs: number;
  readonly #retryMs: number;
  readonly #logger: Logger;
  readonly now: () => number;
  readonly #inFlight = new Set<Promise<void>>();
  #failing = false;

  constructor(options: SharedRateLimitOptions) {
    this.#source = options.source;
    this.#guard = options.guard;
    this.#leaseMs = options.leaseMs ?? 50;
    this.#idleMs = options.idleMs ?? 1000;
    this.#retryMs = options.retryMs ?? 1000;
    this.#logger = options.logger ?? noopLogger;
    this.now = options.now ?? performance.now.bind(performance);
  }

  /** Tokens one lease brings: `leaseMs` of the rate, at least 1, at most a quarter of the burst. */
  batchOf(rps: number, burst: number): number {
    return Math.max(1, Math.min(Math.ceil((rps * this.#leaseMs) / 1000), Math.floor(burst / 4)));
  }

  /**
   * Whether the tenant's leased share holds what a request of `tokens` needs (at least one, at most
   * the burst): true or false at once (the caller then calls {@link take}), or a promise when it
   * waits for a lease, whose true means the tokens are taken already (so that requests waiting
   * together cannot all count the same tokens); false comes with `retryAfterSeconds` set; null
   * when the tenant is on its local bucket. Starts a lease when the share runs low.
   */
  check(
    quota: TenantQuota,
    rps: number,
    burst: number,
    tokens: number,
  ): boolean | null | Promise<boolean | null> {
    const now = this.now();
    const batch = this.batchOf(rps, burst);
    if (quota.leaseMode === LeaseMode.leased && quota.lease > 0 && now - quota.leasedAt > this.#idleMs) {
      // Tokens leased long ago would let this node burst past the others: dropped.
      quota.lease = 0;
    }
    if (quota.leaseInFlight === undefined && quota.lease < batch && now >= quota.nextLeaseAt)
      this.#lease(quota, rps, burst, batch);
    if (quota.leaseMode === LeaseMode.local) return null;
    const needed = Math.max(1, Math.min(tokens, burst));
    if (this.#covers(quota, needed, batch)) return true;
    if (quota.leaseInFlight === undefined && now < quota.nextLeaseAt) return this.#refuse(quota, rps, needed);
    return this.#wait(quota, rps, burst, tokens, needed, batch);
  }

  /** Takes an admitted request's tokens from the leased share (it may go into debt); negative gives back. */
  take(quota: TenantQuota, tokens: number): void {
    quota.lease -= tokens;
  }

  /** Resolves once no lease is in flight and those waiting for one went on (tests, diagnostics). */
  async settled(): Promise<void> {
    do {
      await Promise.all(this.#inFlight);
      await new Promise((resolve) => setImmediate(resolve));
    } while (this.#inFlight.size > 0);
  }

  #covers(quota: TenantQuota, needed: number, batch: number): boolean {
    const credit = quota.leaseMode === LeaseMode.starting ? batch : 0;
    return quota.lease + credit >= needed;
  }

  #refuse(quota: TenantQuota, rps: number, needed: number): false {
    const short = needed - quota.lease - Math.max(0, quota.sharedRemaining);
    quota.retryAfterSeconds = Math.max(1, Math.ceil(short / rps));
    return false;
  }

  /** Waits for leases (at most three) until the share covers `needed`, the bucket is dry, or the source fails. */
  async #wait(
    quota: TenantQuota,
    rps: number,
    burst: number,
    tokens: number,
    needed: number,
    batch: number,
  ): Promise<boolean | null> {
    quota.waiting += needed;
    try {
      for (let leases = 0; leases < 3; leases++) {
        if (quota.leaseInFlight === undefined) {
          if (this.now() < quota.nextLeaseAt) break;
          this.#lease(quota, rps, burst, batch);
        }
        await quota.leaseInFlight;
        if (quota.leaseMode === LeaseMode.local) return null;
        if (this.#covers(quota, needed, batch)) {
          quota.lease -= tokens;
          return true;
        }
      }
    } finally {
      quota.waiting -= needed;
    }
    return this.#refuse(quota, rps, needed);
  }

  /** Asks for enough to refill the share to two batches, pay its debt and serve those waiting. */
  #lease(quota: TenantQuota, rps: number, burst: number, batch: number): void {
    const want = Math.max(1, 2 * batch + quota.waiting - quota.lease);
    const tenantId = quota.tenantId;
    const lease = this.#guarded(tenantId, () => this.#source.take(tenantId, rps, burst, want)).then(
      (grant) => {
        const at = this.now();
        quota.lease += grant.granted;
        quota.leaseMode = LeaseMode.leased;
        quota.leasedAt = at;
        quota.sharedRemaining = grant.remaining;
        // The shared bucket ran dry: ask again once it holds about a batch, not on every request.
        quota.nextLeaseAt =
          grant.granted < want
            ? at + Math.min(1000, Math.max(5, ((batch - grant.remaining) * 1000) / rps))
            : 0;
        if (this.#failing) {
          this.#failing = false;
          this.#logger.info({}, 'shared rate limits answer again');
        }
      },
      (error: unknown) => {
        quota.leaseMode = LeaseMode.local;
        quota.nextLeaseAt = this.now() + this.#retryMs;
        if (!this.#failing) {
          this.#failing = true;
          this.#logger.warn({ err: error }, 'shared rate limits unavailable; tenants are limited per node');
        }
      },
    );
    const tracked: Promise<void> = lease.finally(() => {
      quota.leaseInFlight = undefined;
      this.#inFlight.delete(tracked);
    });
    quota.leaseInFlight = tracked;
    this.#inFlight.add(tracked);
  }

  async #guarded<T>(tenantId: string, call: () => Promise<T>): Promise<T> {
    const guard = this.#guard;
    if (guard === undefined) return call();
    if (!guard.quiet) return guard.run(tenantId, call);
    let value: T;
    try {
      value = await call();
    } catch (error) {
      guard.breaker.failure(normalCall, error);
      throw error;
    }
    guard.breaker.success(normalCall);
    return value;
  }
}
